//! Training curves as a PNG: losses (train, validation) on the left, the validation score on the right, drawn
//! with plotters into an RGB buffer and written atomically.

use std::path::Path;

use plotters::prelude::*;

use crate::train::EpochLog;

pub use super::register_embedded_font;

/// Writes the loss and validation-score curves of `log` to `path` (900 × 360 PNG); `score_title` names
/// the score (validation Dice or accuracy).
pub fn write_curves(path: &Path, log: &[EpochLog], score_title: &str) -> Result<(), String> {
    if log.is_empty() {
        return Ok(());
    }
    register_embedded_font();
    let (w, h) = (900u32, 360u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let fail = |e: String| format!("{}: cannot draw curves ({e})", path.display());
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let (left, right) = root.split_horizontally(w / 2);
        let last = log.iter().map(|r| r.epoch).max().unwrap_or(1).max(2) as f64;
        let first = log.iter().map(|r| r.epoch).min().unwrap_or(1) as f64;
        let losses = log.iter().flat_map(|r| [r.train_loss, r.val_loss]).filter(|v| v.is_finite());
        let lmax = losses.fold(0.0f64, f64::max).max(1e-6) * 1.05;
        let mut c = ChartBuilder::on(&left)
            .caption("loss", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(first..last, 0.0..lmax)
            .map_err(|e| fail(e.to_string()))?;
        c.configure_mesh().x_desc("epoch").draw().map_err(|e| fail(e.to_string()))?;
        c.draw_series(LineSeries::new(log.iter().map(|r| (r.epoch as f64, r.train_loss)), &BLUE))
            .map_err(|e| fail(e.to_string()))?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
        c.draw_series(LineSeries::new(log.iter().map(|r| (r.epoch as f64, r.val_loss)), &RED))
            .map_err(|e| fail(e.to_string()))?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED));
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(|e| fail(e.to_string()))?;
        let mut d = ChartBuilder::on(&right)
            .caption(score_title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(first..last, 0.0..1.0)
            .map_err(|e| fail(e.to_string()))?;
        d.configure_mesh().x_desc("epoch").draw().map_err(|e| fail(e.to_string()))?;
        d.draw_series(LineSeries::new(log.iter().map(|r| (r.epoch as f64, r.val_score)), &GREEN))
            .map_err(|e| fail(e.to_string()))?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    crate::io::raster::write_png_rgb(path, w, h, &buf).map_err(|e| e.to_string())
}
