//! `radlens demo`: a summary of the embedded demo study (with no subcommand the viewer opens it).

use std::io::Write;

use super::{fmt_num, CliError};
use crate::imaging::LabelSelector;
use crate::io::demo::demo_cases;
use crate::metrics::mask_scores;

pub fn run(out: &mut dyn Write) -> Result<(), CliError> {
    let cases = demo_cases().map_err(|e| CliError::Failed(format!("embedded demo study is broken: {e}")))?;
    writeln!(out, "radlens {} — embedded demo study ({} cases)", env!("CARGO_PKG_VERSION"), cases.len())?;
    writeln!(out, "(run `radlens` with no subcommand to open it in the viewer)")?;
    for case in &cases {
        let v = &case.volume;
        let [z, y, x] = v.dims();
        let (min, max) = v.min_max();
        writeln!(out)?;
        writeln!(out, "{}: {}", case.name, case.description)?;
        writeln!(
            out,
            "  image    {z} x {y} x {x} voxels, {} mm/pixel{}, {} values {} .. {}",
            fmt_num(v.spacing_mm[2]),
            if v.spacing_assumed { " (assumed)" } else { "" },
            v.unit.as_str(),
            fmt_num(min as f64),
            fmt_num(max as f64)
        )?;
        let n = v.data().len() as f64;
        for (name, mask) in &case.masks {
            let fg = mask.count(LabelSelector::Any);
            let labels: Vec<String> = mask
                .present_labels()
                .iter()
                .map(|l| format!("{l}: {}", mask.count(LabelSelector::Label(*l))))
                .collect();
            writeln!(
                out,
                "  mask     {name}: {fg} pixels ({:.1}% of the image), labels {{{}}}",
                100.0 * fg as f64 / n,
                labels.join(", ")
            )?;
        }
        // The two masks of a case, compared: a quick check that both decode onto the same grid.
        if let [(a_name, a), (b_name, b), ..] = &case.masks[..] {
            let s = mask_scores(a, b, LabelSelector::Any, v.spacing_mm)
                .map_err(|e| CliError::Failed(e.to_string()))?;
            writeln!(out, "  overlap  {a_name} vs {b_name}: Dice {}", fmt_num(s.dice))?;
        }
    }
    Ok(())
}
