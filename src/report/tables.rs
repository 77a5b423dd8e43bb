//! Plain-text tables in the papers' layouts.
//! - Segmentation (GGO paper): one row per (model, split), columns Dice, precision, recall, accuracy.
//! - Localization (CheXlocalize / GGO paper): rows mIoU, Dice, HD (px), hit rate; one column per
//!   method × model.

/// A cell: mean ± sd (3 decimals), "–" when undefined.
pub fn cell(mean: Option<f64>, sd: Option<f64>) -> String {
    match (mean, sd) {
        (Some(m), Some(s)) => format!("{m:.3} ± {s:.3}"),
        (Some(m), None) => format!("{m:.3}"),
        _ => "–".into(),
    }
}

/// Renders a table: a header row and rows of cells, columns padded to their widest cell.
pub fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c}{}", " ".repeat(width[i].saturating_sub(c.chars().count()))))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header);
    out.push('\n');
    out.push_str(&width.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}

/// One segmentation row: (model, split, [(mean, sd) for Dice, precision, recall, accuracy]).
pub type SegmentationRow = (String, String, [(Option<f64>, Option<f64>); 4]);

/// The segmentation table.
pub fn segmentation_table(rows: &[SegmentationRow]) -> String {
    let header: Vec<String> =
        ["model", "split", "Dice", "precision", "recall", "accuracy"].iter().map(|s| s.to_string()).collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|(m, s, v)| {
            let mut r = vec![m.clone(), s.clone()];
            r.extend(v.iter().map(|(a, b)| cell(*a, *b)));
            r
        })
        .collect();
    render(&header, &body)
}

/// One localization column: (method, model, [(mean, sd) for mIoU, Dice, HD px, hit rate]).
pub type LocalizationColumn = (String, String, [(Option<f64>, Option<f64>); 4]);

/// The localization table: rows mIoU, Dice, HD (px), hit rate; columns method × model.
pub fn localization_table(columns: &[LocalizationColumn]) -> String {
    let mut header = vec!["".to_string()];
    header.extend(columns.iter().map(|(method, model, _)| format!("{method} / {model}")));
    let names = ["mIoU", "Dice", "HD (px)", "hit rate"];
    let body: Vec<Vec<String>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut r = vec![n.to_string()];
            r.extend(columns.iter().map(|(_, _, v)| cell(v[i].0, v[i].1)));
            r
        })
        .collect();
    render(&header, &body)
}
