//! Figures and tables for people: heatmap overlays, the papers' figure grid; CSV, text tables and PNG plots
//! for eval.

pub mod csv;
pub mod curves;
pub mod figure;
pub mod overlay;
pub mod plots;
pub mod tables;

/// The DejaVu Sans font (assets/fonts) embedded once in the binary for every plot and figure.
const EMBEDDED_FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font with plotters as "sans-serif" (once per process). Figures and plots
/// name that family, so they draw text without any system font.
pub fn register_embedded_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The bytes are the embedded, known-good font; should registering fail anyway, plots lose their
        // text (and figure.rs reports FigureError::Text) rather than panic.
        let _ =
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, EMBEDDED_FONT);
    });
}
