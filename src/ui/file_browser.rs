//! An in-app file and folder browser: the fallback when the native dialog (rfd) cannot open because no
//! xdg-desktop-portal answers — `rfd::FileDialog::pick_file()` then returns `None` at once.
//!
//! egui only. The caller keeps a [`FileBrowser`] while it is open (e.g. inside an `egui::Window` or
//! `egui::Modal`), calls [`FileBrowser::show`] every frame and acts on the [`BrowserAction`] it returns.
//!
//! What it offers: the current folder as an editable path field (Enter goes there, or picks a file typed
//! in), Up, Refresh, a list with folders first then files, sorted by name with numbers in numeric order
//! (`IM2` before `IM10`), hidden entries (`.name`) on request, and a filter for the kinds the purpose
//! opens (switchable to all files). Keys: ↑/↓, Page Up/Down, Home/End move, a letter jumps to the next
//! name starting with it, Enter opens the selected folder or picks the file, Backspace goes up, Escape
//! cancels — while no text field has the keyboard. Double-click opens or picks.
//! "Open folder" picks a DICOM series folder (the selected one, or the current one). A folder that
//! cannot be read leaves the browser where it was with a one-line message; nothing here panics.
//!
//! Save purposes show a file-name field; saving over an existing file needs a second click.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use eframe::egui;

/// What the browser is opened for: decides the file filter, the buttons and the title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowsePurpose {
    /// A study: DICOM file or series folder, NIfTI, PNG/BMP/TIFF/JPEG.
    OpenStudy,
    /// A ground-truth mask: PNG/BMP/TIFF/JPEG or NIfTI label map.
    OpenMask,
    /// A heatmap: .npy, NIfTI or grey PNG/TIFF/BMP.
    OpenHeatmap,
    /// A model manifest (`model.toml` or any `.toml`).
    OpenModel,
    /// A user-study file (`.toml`, see assets/studies/).
    OpenUserStudy,
    /// Where to save the figure (.png).
    SaveFigure,
    /// Where to save a heatmap (.npy, .nii, .nii.gz).
    SaveHeatmap,
    /// Where to save the predicted mask (.png, .nii, .nii.gz).
    SaveMask,
}

impl BrowsePurpose {
    /// Title for the window holding the browser.
    pub fn title(self) -> &'static str {
        match self {
            BrowsePurpose::OpenStudy => "Open study",
            BrowsePurpose::OpenMask => "Open mask",
            BrowsePurpose::OpenHeatmap => "Open heatmap",
            BrowsePurpose::OpenModel => "Open model manifest",
            BrowsePurpose::OpenUserStudy => "Run a user study",
            BrowsePurpose::SaveFigure => "Save figure",
            BrowsePurpose::SaveHeatmap => "Save heatmap",
            BrowsePurpose::SaveMask => "Save mask",
        }
    }

    /// True for the purposes that choose a file name to write.
    pub fn is_save(self) -> bool {
        matches!(self, BrowsePurpose::SaveFigure | BrowsePurpose::SaveHeatmap | BrowsePurpose::SaveMask)
    }

    /// Extensions (lower case, with the dot) of the files this purpose lists and accepts.
    pub fn extensions(self) -> &'static [&'static str] {
        const RASTER_NIFTI: &[&str] = &[".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg", ".nii", ".nii.gz"];
        match self {
            BrowsePurpose::OpenStudy => {
                &[".dcm", ".dicom", ".nii", ".nii.gz", ".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg"]
            }
            BrowsePurpose::OpenMask => RASTER_NIFTI,
            BrowsePurpose::OpenHeatmap => &[".npy", ".nii", ".nii.gz", ".png", ".bmp", ".tif", ".tiff"],
            BrowsePurpose::OpenModel | BrowsePurpose::OpenUserStudy => &[".toml"],
            BrowsePurpose::SaveFigure => &[".png"],
            BrowsePurpose::SaveHeatmap => &[".npy", ".nii", ".nii.gz"],
            BrowsePurpose::SaveMask => &[".png", ".nii", ".nii.gz"],
        }
    }

    /// Whether a file called `name` is one this purpose opens (or may write). For studies, files with
    /// no extension or an all-digit one (`IM0001`, `1.2.840.113619.2.55.3.1`) count too: DICOM files
    /// are often named so.
    pub fn accepts(self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        if self.extensions().iter().any(|e| lower.ends_with(e) && lower.len() > e.len()) {
            return true;
        }
        self == BrowsePurpose::OpenStudy && looks_like_dicom_name(&lower)
    }
}

/// Extension-less or numeric-extension names, as DICOM files often have.
fn looks_like_dicom_name(lower: &str) -> bool {
    match lower.rsplit_once('.') {
        None => !lower.is_empty(),
        Some((stem, ext)) => !stem.is_empty() && !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// What the user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrowserAction {
    /// A file (or, for studies, a series folder) to open — or, for save purposes, the file to write.
    Picked(PathBuf),
    /// Cancel button or Escape.
    Cancelled,
}

/// One row of the listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub path: PathBuf,
    pub is_dir: bool,
    /// Size in bytes (files).
    pub size: Option<u64>,
}

/// The browser's state; keep it while the browser is open.
#[derive(Debug, Clone)]
pub struct FileBrowser {
    purpose: BrowsePurpose,
    dir: PathBuf,
    path_text: String,
    file_name: String,
    entries: Vec<DirEntry>,
    /// Indices into `entries` of the rows shown (filters applied), kept in step by `refilter`.
    view: Vec<usize>,
    /// Index into `visible()`.
    selected: Option<usize>,
    show_hidden: bool,
    show_all_files: bool,
    error: Option<String>,
    /// A save target that exists: the next Save replaces it.
    confirm_overwrite: Option<PathBuf>,
    scroll_to_selected: bool,
}

impl FileBrowser {
    /// A browser at `start` (a folder; a file's folder with the file selected). When `start` cannot be
    /// read, the browser opens at the home folder (else `/`) and says why.
    pub fn new(start: PathBuf, purpose: BrowsePurpose) -> Self {
        let mut b = FileBrowser {
            purpose,
            dir: PathBuf::new(),
            path_text: String::new(),
            file_name: String::new(),
            entries: Vec::new(),
            view: Vec::new(),
            selected: None,
            show_hidden: false,
            show_all_files: false,
            error: None,
            confirm_overwrite: None,
            scroll_to_selected: false,
        };
        let (dir, select) = if start.is_file() {
            (
                start.parent().map(Path::to_path_buf).unwrap_or_default(),
                start.file_name().map(|n| n.to_owned()),
            )
        } else {
            (start.clone(), None)
        };
        if !b.navigate(&dir) {
            let first_error = b.error.clone();
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
            if !b.navigate(&home) {
                b.navigate(Path::new("/"));
            }
            b.error = first_error;
        }
        if let Some(name) = select {
            let name = name.to_string_lossy();
            let position = b.visible().iter().position(|e| e.name == name);
            b.selected = position;
            if purpose.is_save() {
                b.file_name = name.into_owned();
            }
        }
        b
    }

    /// Sets the suggested file name for save purposes (builder style).
    pub fn with_file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = name.into();
        self
    }

    pub fn purpose(&self) -> BrowsePurpose {
        self.purpose
    }

    /// The folder shown.
    pub fn current_dir(&self) -> &Path {
        &self.dir
    }

    /// The last problem (unreadable folder, bad name), one line; `None` when all is well.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Shows hidden entries (names starting with a dot).
    pub fn set_show_hidden(&mut self, show: bool) {
        self.show_hidden = show;
        self.selected = None;
        self.refilter();
    }

    /// Lists every file, not only the kinds the purpose opens.
    pub fn set_show_all_files(&mut self, all: bool) {
        self.show_all_files = all;
        self.selected = None;
        self.refilter();
    }

    /// The rows shown now: folders first, then files, each sorted by name; filtered.
    pub fn visible(&self) -> Vec<&DirEntry> {
        self.view.iter().map(|&i| &self.entries[i]).collect()
    }

    /// Row `index` of [`Self::visible`], without building the list.
    fn row(&self, index: usize) -> Option<&DirEntry> {
        self.view.get(index).and_then(|&i| self.entries.get(i))
    }

    /// Recomputes the rows shown after the entries or a filter changed (once, not every frame: a DICOM
    /// folder can hold thousands of files).
    fn refilter(&mut self) {
        let (hidden, all, purpose) = (self.show_hidden, self.show_all_files, self.purpose);
        self.view = (0..self.entries.len())
            .filter(|&i| {
                let e = &self.entries[i];
                (hidden || !e.name.starts_with('.')) && (e.is_dir || all || purpose.accepts(&e.name))
            })
            .collect();
    }

    /// The selected row, if any.
    pub fn selected(&self) -> Option<&DirEntry> {
        self.selected.and_then(|i| self.row(i))
    }

    /// Goes to folder `dir`. On failure the browser stays where it was, [`Self::error`] says why, and
    /// `false` comes back.
    pub fn navigate(&mut self, dir: &Path) -> bool {
        match list_dir(dir) {
            Ok(entries) => {
                self.dir = dir.to_path_buf();
                self.path_text = dir.display().to_string();
                self.entries = entries;
                self.refilter();
                self.selected = None;
                self.error = None;
                self.confirm_overwrite = None;
                true
            }
            Err(message) => {
                self.error = Some(message);
                self.path_text = self.dir.display().to_string();
                false
            }
        }
    }

    /// Goes to the parent folder, keeping the folder we came from selected.
    pub fn go_up(&mut self) -> bool {
        let Some(parent) = self.dir.parent().map(Path::to_path_buf) else { return false };
        let came_from = self.dir.file_name().map(|n| n.to_string_lossy().into_owned());
        if !self.navigate(&parent) {
            return false;
        }
        if let Some(name) = came_from {
            let position = self.visible().iter().position(|e| e.is_dir && e.name == name);
            self.selected = position;
            self.scroll_to_selected = true;
        }
        true
    }

    /// Re-reads the current folder.
    pub fn refresh(&mut self) {
        let dir = self.dir.clone();
        let keep = self.selected().map(|e| e.name.clone());
        self.navigate(&dir);
        if let Some(name) = keep {
            let position = self.visible().iter().position(|e| e.name == name);
            self.selected = position;
        }
    }

    /// Opens the entry at `index` of [`Self::visible`]: a folder is entered, a file picked (save purposes:
    /// its name goes into the name field).
    pub fn activate(&mut self, index: usize) -> Option<BrowserAction> {
        let entry = self.row(index)?.clone();
        if entry.is_dir {
            self.navigate(&entry.path);
            return None;
        }
        if self.purpose.is_save() {
            self.file_name = entry.name;
            return self.save_action();
        }
        Some(BrowserAction::Picked(entry.path))
    }

    /// The current or selected folder as a DICOM series folder.
    fn open_folder_action(&self) -> BrowserAction {
        match self.selected() {
            Some(e) if e.is_dir => BrowserAction::Picked(e.path.clone()),
            _ => BrowserAction::Picked(self.dir.clone()),
        }
    }

    /// Checks the file name and the overwrite; `Some(Picked)` when the file may be written.
    fn save_action(&mut self) -> Option<BrowserAction> {
        let name = self.file_name.trim();
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            self.error = Some("type a file name (without folders)".to_string());
            return None;
        }
        if !self.purpose.accepts(name) {
            self.error = Some(format!("the name must end in {}", self.purpose.extensions().join(", ")));
            return None;
        }
        let target = self.dir.join(name);
        if target.is_dir() {
            self.error = Some(format!("a folder has that name: {}", target.display()));
            return None;
        }
        if target.exists() && self.confirm_overwrite.as_ref() != Some(&target) {
            self.error = Some(format!("{name} exists: press Save again to replace it"));
            self.confirm_overwrite = Some(target);
            return None;
        }
        self.error = None;
        Some(BrowserAction::Picked(target))
    }

    /// The path typed into the path field: a folder is entered, an acceptable file picked (open
    /// purposes) or named (save purposes).
    fn go_to_typed(&mut self) -> Option<BrowserAction> {
        let typed = expand_home(self.path_text.trim());
        if typed.is_dir() {
            self.navigate(&typed);
            return None;
        }
        if typed.is_file() {
            let parent = typed.parent().map(Path::to_path_buf).unwrap_or_default();
            let name = typed.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            self.navigate(&parent);
            if self.purpose.is_save() {
                self.file_name = name;
                return None;
            }
            return Some(BrowserAction::Picked(typed));
        }
        self.error = Some(format!("no such folder: {}", typed.display()));
        None
    }

    /// Selects row `index` of [`Self::visible`] (clamped to the last row) and scrolls it into view.
    pub fn select_index(&mut self, index: usize) {
        let n = self.view.len();
        if n > 0 {
            self.selected = Some(index.min(n - 1));
            self.scroll_to_selected = true;
        }
    }

    /// Type-to-find: the next row after the selection whose name starts with `c` (case-insensitive),
    /// wrapping around.
    fn jump_to_letter(&mut self, c: char) {
        let lower: Vec<char> = c.to_lowercase().collect();
        let rows = self.visible();
        let n = rows.len();
        let start = self.selected.map(|i| i + 1).unwrap_or(0);
        let found = (0..n).map(|k| (start + k) % n).find(|&i| {
            let first: Vec<char> =
                rows[i].name.chars().next().map(|f| f.to_lowercase().collect()).unwrap_or_default();
            first == lower
        });
        if let Some(i) = found {
            self.select_index(i);
        }
    }

    fn move_selection(&mut self, delta: isize) {
        let n = self.view.len();
        if n == 0 {
            return;
        }
        let next = match self.selected {
            None if delta > 0 => 0,
            None => n - 1,
            Some(i) => (i as isize + delta).clamp(0, n as isize - 1) as usize,
        };
        self.selected = Some(next);
        self.scroll_to_selected = true;
    }

    /// Draws the browser; returns what the user did this frame.
    #[must_use]
    pub fn show(&mut self, ui: &mut egui::Ui) -> Option<BrowserAction> {
        let mut action = None;

        // Top bar: Up, path field, Refresh.
        let mut path_has_focus = false;
        ui.horizontal(|ui| {
            if ui.button("Up").on_hover_text("Parent folder (Backspace)").clicked() {
                self.go_up();
            }
            let field = egui::TextEdit::singleline(&mut self.path_text)
                .desired_width((ui.available_width() - 70.0).max(100.0))
                .hint_text("folder or file path");
            let resp = ui.add(field).on_hover_text("Type a folder or file path and press Enter");
            // Enter in the field also ends its focus: this frame's Enter belongs to the field.
            path_has_focus = resp.has_focus() || resp.lost_focus();
            if resp.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                action = self.go_to_typed();
            }
            if ui.button("Refresh").clicked() {
                self.refresh();
            }
        });
        ui.horizontal(|ui| {
            let mut hidden = self.show_hidden;
            if ui.checkbox(&mut hidden, "Hidden files").changed() {
                self.set_show_hidden(hidden);
            }
            let mut all = self.show_all_files;
            if ui.checkbox(&mut all, "All files").changed() {
                self.set_show_all_files(all);
            }
            ui.weak(format!("Showing {}", self.purpose.extensions().join(" ")));
        });
        if let Some(err) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, err);
        }
        ui.separator();

        // The listing.
        let bottom_height = 2.0 * ui.spacing().interact_size.y + 3.0 * ui.spacing().item_spacing.y + 8.0;
        let list_height = (ui.available_height() - bottom_height).max(80.0);
        let row_height = ui.spacing().interact_size.y;
        let n_rows = self.view.len();
        let mut scroll = egui::ScrollArea::vertical().id_salt("file_browser_list").max_height(list_height);
        scroll = scroll.auto_shrink([false, false]);
        if self.scroll_to_selected {
            if let Some(sel) = self.selected {
                let pitch = row_height + ui.spacing().item_spacing.y;
                let id = ui.make_persistent_id("file_browser_view");
                let (offset, view) = ui.data(|d| d.get_temp::<(f32, f32)>(id)).unwrap_or((0.0, list_height));
                let top = sel as f32 * pitch;
                if top < offset {
                    scroll = scroll.vertical_scroll_offset(top);
                } else if top + row_height > offset + view {
                    // The row's bottom, not its trailing spacing: past the content's end egui would
                    // rubber-band back.
                    scroll = scroll.vertical_scroll_offset(top + row_height - view);
                }
            }
            self.scroll_to_selected = false;
        }
        let mut clicked = None;
        let mut double_clicked = None;
        if n_rows == 0 {
            ui.weak("Nothing here to open (tick \"All files\" to list everything).");
        }
        let this = &*self;
        let output = scroll.show_rows(ui, row_height, n_rows, |ui, range| {
            for i in range {
                let Some(e) = this.row(i) else { continue };
                let label = if e.is_dir { format!("{}/", e.name) } else { e.name.clone() };
                ui.horizontal(|ui| {
                    let resp = ui.selectable_label(this.selected == Some(i), label);
                    if resp.double_clicked() {
                        double_clicked = Some(i);
                    } else if resp.clicked() {
                        clicked = Some(i);
                    }
                    if let Some(size) = e.size {
                        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                            ui.add_space(12.0); // clear of the scroll bar
                            ui.weak(human_size(size));
                        });
                    }
                });
            }
        });
        let view_id = ui.make_persistent_id("file_browser_view");
        ui.data_mut(|d| {
            d.insert_temp(view_id, (output.state.clamped_offset().y, output.inner_rect.height()))
        });
        if let Some(i) = clicked {
            self.selected = Some(i);
            let file_name = self.row(i).filter(|e| !e.is_dir).map(|e| e.name.clone());
            if let (true, Some(name)) = (self.purpose.is_save(), file_name) {
                self.file_name = name;
                self.confirm_overwrite = None;
            }
        }
        if let Some(i) = double_clicked {
            self.selected = Some(i);
            if action.is_none() {
                action = self.activate(i);
            }
        }
        ui.separator();

        // Bottom bar.
        let mut name_has_focus = false;
        if self.purpose.is_save() {
            ui.horizontal(|ui| {
                let label = ui.label("File name:");
                let resp = ui
                    .add(egui::TextEdit::singleline(&mut self.file_name).desired_width(260.0))
                    .labelled_by(label.id);
                name_has_focus = resp.has_focus() || resp.lost_focus();
                if resp.changed() {
                    self.confirm_overwrite = None;
                }
                if resp.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                    if action.is_none() {
                        action = self.save_action();
                    }
                }
            });
        }
        ui.horizontal(|ui| {
            if self.purpose.is_save() {
                if ui.button("Save").clicked() && action.is_none() {
                    action = self.save_action();
                }
            } else {
                let can_open = self.selected().is_some();
                if ui.add_enabled(can_open, egui::Button::new("Open")).clicked() {
                    if let (Some(i), None) = (self.selected, &action) {
                        action = self.activate(i);
                    }
                }
                if self.purpose == BrowsePurpose::OpenStudy
                    && ui
                        .button("Open folder")
                        .on_hover_text("Open the selected (or this) folder as a DICOM series")
                        .clicked()
                {
                    action = Some(self.open_folder_action());
                }
            }
            if ui.button("Cancel").clicked() {
                action = Some(BrowserAction::Cancelled);
            }
            if let Some(e) = self.selected() {
                ui.weak(e.name.clone());
            }
        });

        // Keyboard, unless a text field has it.
        if !path_has_focus && !name_has_focus && action.is_none() {
            let page = ((list_height / (row_height + ui.spacing().item_spacing.y)) as isize - 1).max(1);
            let none = egui::Modifiers::NONE;
            let (down, up, page_down, page_up, home, end, enter, back, escape, typed) = ui.input_mut(|i| {
                let typed: String = i
                    .events
                    .iter()
                    .filter_map(|e| match e {
                        egui::Event::Text(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect();
                (
                    i.count_and_consume_key(none, egui::Key::ArrowDown) as isize,
                    i.count_and_consume_key(none, egui::Key::ArrowUp) as isize,
                    i.count_and_consume_key(none, egui::Key::PageDown) as isize,
                    i.count_and_consume_key(none, egui::Key::PageUp) as isize,
                    i.consume_key(none, egui::Key::Home),
                    i.consume_key(none, egui::Key::End),
                    i.consume_key(none, egui::Key::Enter),
                    i.consume_key(none, egui::Key::Backspace),
                    i.consume_key(none, egui::Key::Escape),
                    typed,
                )
            });
            let delta = down - up + page * (page_down - page_up);
            if delta != 0 {
                self.move_selection(delta);
            }
            if home {
                self.select_index(0);
            }
            if end {
                self.select_index(usize::MAX);
            }
            if let Some(c) = typed.chars().find(|c| !c.is_control() && !c.is_whitespace()) {
                self.jump_to_letter(c);
            }
            if back {
                self.go_up();
            }
            if enter {
                if let Some(i) = self.selected {
                    action = self.activate(i);
                }
            }
            if escape {
                action = Some(BrowserAction::Cancelled);
            }
            if delta != 0 || home || end || back || enter || !typed.is_empty() {
                ui.ctx().request_repaint();
            }
        }
        action
    }
}

/// Reads a folder: folders first, then files, by natural name order. A message naming the folder and
/// the reason when it cannot be read.
pub fn list_dir(dir: &Path) -> Result<Vec<DirEntry>, String> {
    let read = std::fs::read_dir(dir).map_err(|e| crate::io::LoadError::io(dir, e).to_string())?;
    let mut entries = Vec::new();
    for item in read {
        // An entry vanishing while we list is not an error of the folder.
        let Ok(item) = item else { continue };
        let path = item.path();
        let name = item.file_name().to_string_lossy().into_owned();
        // Follows symlinks; a dangling link shows as a file that will fail to open with its own message.
        let meta = std::fs::metadata(&path).or_else(|_| item.metadata());
        let (is_dir, size) = match meta {
            Ok(m) if m.is_dir() => (true, None),
            Ok(m) => (false, Some(m.len())),
            Err(_) => (false, None),
        };
        entries.push(DirEntry { name, path, is_dir, size });
    }
    entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| natural_cmp(&a.name, &b.name)));
    Ok(entries)
}

/// Name order with digit runs compared as numbers and letters case-insensitively: `IM2` < `IM10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.chars().peekable(), b.chars().peekable());
    loop {
        match (x.peek().copied(), y.peek().copied()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let take = |it: &mut std::iter::Peekable<std::str::Chars>| {
                    let mut s = String::new();
                    while let Some(c) = it.peek().copied().filter(char::is_ascii_digit) {
                        s.push(c);
                        it.next();
                    }
                    s
                };
                let (p, q) = (take(&mut x), take(&mut y));
                let (pt, qt) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                let ord = pt.len().cmp(&qt.len()).then_with(|| pt.cmp(qt));
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            (Some(c), Some(d)) => {
                let ord = c.to_lowercase().cmp(d.to_lowercase());
                if ord != Ordering::Equal {
                    return ord;
                }
                x.next();
                y.next();
            }
        }
    }
}

fn expand_home(typed: &str) -> PathBuf {
    if let Some(rest) = typed.strip_prefix('~') {
        if rest.is_empty() || rest.starts_with('/') {
            if let Some(home) = std::env::var_os("HOME") {
                return PathBuf::from(home).join(rest.trim_start_matches('/'));
            }
        }
    }
    PathBuf::from(typed)
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_and_filters() {
        let mut names = vec!["IM10", "im2", "IM1", "b", "A", "IM02x"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, vec!["A", "b", "IM1", "im2", "IM02x", "IM10"]);
        assert!(BrowsePurpose::OpenStudy.accepts("scan.NII.GZ"));
        assert!(BrowsePurpose::OpenStudy.accepts("IM0001"));
        assert!(BrowsePurpose::OpenStudy.accepts("1.2.840.113619.2.55.3.1"));
        assert!(!BrowsePurpose::OpenStudy.accepts("notes.txt"));
        assert!(!BrowsePurpose::OpenStudy.accepts(".nii"));
        assert!(BrowsePurpose::OpenHeatmap.accepts("gradcam.npy"));
        assert!(!BrowsePurpose::OpenMask.accepts("gradcam.npy"));
        assert!(BrowsePurpose::OpenModel.accepts("model.toml"));
        assert!(BrowsePurpose::SaveMask.accepts("pred.nii.gz"));
        assert!(!BrowsePurpose::SaveFigure.accepts("fig.jpg"));
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
    }
}
