//! PNG plots for eval (plotters, bitmap backend): box plots of per-image scores per group, and bar
//! comparisons. Text uses the embedded DejaVu Sans (registered once as "sans-serif"), so plots look
//! the same on every machine. PNGs are written atomically with [`crate::io::raster::write_png_rgb`].

use std::path::Path;

use plotters::prelude::*;

use crate::io::raster::write_png_rgb;

const SIZE: (u32, u32) = (900, 560);

fn draw(
    path: &Path,
    draw_into: impl FnOnce(DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<(), String> {
    super::register_embedded_font();
    let (w, h) = SIZE;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw_into(root.clone())?;
        root.present().map_err(|e| e.to_string())?;
    }
    write_png_rgb(path, w, h, &buf).map_err(|e| e.to_string())
}

fn y_range(values: impl Iterator<Item = f64>) -> (f32, f32) {
    let hi = values.filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let hi = if hi <= 1.0 { 1.0 } else { hi * 1.05 };
    (0.0, hi as f32)
}

type CategoricalChart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<
        plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordusize>,
        plotters::coord::types::RangedCoordf32,
    >,
>;

/// One chart with a slot per label on x (labels under the slots) and 0..max(values) on y; `series` draws
/// into it.
fn categorical_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    labels: &[&str],
    values: impl Iterator<Item = f64>,
    series: impl FnOnce(&mut CategoricalChart<'_, '_>) -> Result<(), String>,
) -> Result<(), String> {
    // plotters' segmented integer range is inclusive: 0..n-1 gives n slots.
    let n = labels.len().max(1);
    let (lo, hi) = y_range(values);
    draw(path, |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n - 1).into_segmented(), lo..hi)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).map(|l| l.to_string()).unwrap_or_default(),
                _ => String::new(),
            })
            .y_desc(y_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        series(&mut chart)
    })
}

/// Box plots (median, quartiles, 1.5·IQR whiskers) of each group's values; empty groups are drawn
/// as an empty slot. `groups`: (label, values).
pub fn box_plot(
    path: &Path,
    title: &str,
    y_label: &str,
    groups: &[(String, Vec<f64>)],
) -> Result<(), String> {
    let labels: Vec<&str> = groups.iter().map(|g| g.0.as_str()).collect();
    categorical_chart(
        path,
        title,
        y_label,
        &labels,
        groups.iter().flat_map(|(_, v)| v.iter().copied()),
        |chart| {
            let boxes = groups.iter().enumerate().filter_map(|(i, (_, v))| {
                let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
                (!finite.is_empty()).then(|| {
                    Boxplot::new_vertical(SegmentValue::CenterOf(i), &Quartiles::new(&finite))
                        .width(40)
                        .style(BLUE.stroke_width(2))
                })
            });
            chart.draw_series(boxes).map_err(|e| e.to_string())?;
            Ok(())
        },
    )
}

/// A bar per (label, value); undefined values get no bar.
pub fn bar_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    bars: &[(String, Option<f64>)],
) -> Result<(), String> {
    let labels: Vec<&str> = bars.iter().map(|b| b.0.as_str()).collect();
    categorical_chart(path, title, y_label, &labels, bars.iter().filter_map(|b| b.1), |chart| {
        let data: Vec<(usize, f32)> = bars
            .iter()
            .enumerate()
            .filter_map(|(i, (_, v))| v.filter(|x| x.is_finite()).map(|x| (i, x as f32)))
            .collect();
        chart
            .draw_series(Histogram::vertical(chart).style(BLUE.mix(0.7).filled()).margin(20).data(data))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}
