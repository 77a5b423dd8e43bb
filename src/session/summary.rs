//! From results files to tidy rows (export) and to the study's figures (summary): per method the mean ±
//! sd of each Likert item, the share of preferences with a 95% Wilson interval, exact two-sided sign
//! tests between every two methods, and per-participant completion and time; plus plots.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::results::ResultsLog;
use super::study::{FREE_TEXT, PREFERENCE};
use super::SessionError;

/// One answer as a tidy row: the export's columns, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub participant: String,
    pub case: String,
    /// Empty for the comment.
    pub method: String,
    /// 1-based (left to right, or first to last); None for the comment.
    pub position: Option<usize>,
    /// A Likert item's id, `preference` or `comment`.
    pub question: String,
    /// Likert 1–5; preference 1 for the preferred method of the case and 0 for the others; comment text.
    pub value: String,
    /// Seconds the participant spent on the case (so far, for an unfinished case).
    pub seconds: f64,
}

pub const CSV_HEADER: &str = "participant,case,method,position,question,value,seconds";

/// The tidy rows of one results file, cases in the participant's order.
pub fn rows(log: &ResultsLog) -> Vec<Row> {
    let mut out = Vec::new();
    for entry in &log.plan {
        let done = log.done.iter().find(|(c, _)| *c == entry.case).map(|d| d.1);
        for ((case, question, method), position, value, seconds) in &log.answers {
            if *case != entry.case {
                continue;
            }
            let seconds = done.unwrap_or(*seconds);
            let row = |method: String, position: Option<usize>, value: String| Row {
                participant: log.participant.clone(),
                case: case.clone(),
                method,
                position,
                question: question.clone(),
                value,
                seconds,
            };
            if question == PREFERENCE {
                let chosen = value.as_str().unwrap_or_default();
                for (i, m) in entry.methods.iter().enumerate() {
                    out.push(row(m.clone(), Some(i + 1), if m == chosen { "1" } else { "0" }.into()));
                }
            } else if question == FREE_TEXT {
                out.push(row(String::new(), None, value.as_str().unwrap_or_default().to_string()));
            } else {
                let v = match value {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                out.push(row(method.clone().unwrap_or_default(), *position, v));
            }
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Rows as CSV text with the header line.
pub fn to_csv(rows: &[Row]) -> String {
    let mut s = String::from(CSV_HEADER);
    s.push('\n');
    for r in rows {
        let fields = [
            csv_field(&r.participant),
            csv_field(&r.case),
            csv_field(&r.method),
            r.position.map(|p| p.to_string()).unwrap_or_default(),
            csv_field(&r.question),
            csv_field(&r.value),
            format!("{:.3}", r.seconds),
        ];
        s.push_str(&fields.join(","));
        s.push('\n');
    }
    s
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LikertStat {
    pub method: String,
    pub item: String,
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); None for a single answer.
    pub sd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreferenceStat {
    pub method: String,
    /// Cases where this method was shown and a preference given.
    pub shown: usize,
    pub chosen: usize,
    pub share: f64,
    /// 95% Wilson score interval.
    pub ci_low: f64,
    pub ci_high: f64,
}

/// An exact two-sided sign test between two methods on one question, over (participant, case) pairs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignTest {
    pub question: String,
    pub method_a: String,
    pub method_b: String,
    /// Pairs where a was preferred / rated higher.
    pub a_better: usize,
    pub b_better: usize,
    /// Equal ratings (or, for the preference, a third method chosen): left out of the test.
    pub ties: usize,
    pub p_value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParticipantStat {
    pub participant: String,
    pub cases_done: usize,
    pub cases_total: usize,
    pub seconds_total: f64,
    pub seconds_median: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub participants: Vec<ParticipantStat>,
    pub methods: Vec<String>,
    pub likert: Vec<LikertStat>,
    pub preference: Vec<PreferenceStat>,
    pub sign_tests: Vec<SignTest>,
}

/// 95% Wilson score interval for `k` successes in `n` trials; (0, 1) when n = 0.
pub fn wilson_95(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (n, p) = (n as f64, k as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Exact two-sided binomial (sign) test p-value for `a` against `b` successes with p = ½:
/// `min(1, 2 · P(X ≤ min(a, b)))`, X ~ Binomial(a + b, ½). 1 when there are no pairs.
pub fn sign_test_p(a: usize, b: usize) -> f64 {
    let n = a + b;
    if n == 0 {
        return 1.0;
    }
    let k = a.min(b);
    // In logs: ½ⁿ underflows for n > 1074.
    let mut ln_pmf = -(n as f64) * std::f64::consts::LN_2;
    let mut tail = ln_pmf.exp();
    for i in 1..=k {
        ln_pmf += ((n - i + 1) as f64 / i as f64).ln();
        tail += ln_pmf.exp();
    }
    (2.0 * tail).min(1.0)
}

fn mean_sd(v: &[f64]) -> (f64, Option<f64>) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.len() > 1).then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (mean, sd)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
}

/// Computes the summary of several participants' results.
pub fn summarise(logs: &[ResultsLog]) -> Summary {
    let all: Vec<Row> = logs.iter().flat_map(rows).collect();
    let mut methods: Vec<String> = Vec::new();
    let mut items: Vec<String> = Vec::new();
    for log in logs {
        for e in &log.plan {
            for m in &e.methods {
                if !methods.contains(m) {
                    methods.push(m.clone());
                }
            }
        }
    }
    for r in &all {
        if r.question != PREFERENCE && r.question != FREE_TEXT && !items.contains(&r.question) {
            items.push(r.question.clone());
        }
    }
    // (question, method) → [(participant, case, value)]
    let mut by: BTreeMap<(String, String), Vec<(String, String, f64)>> = BTreeMap::new();
    for r in &all {
        if r.question == FREE_TEXT {
            continue;
        }
        if let Ok(v) = r.value.parse::<f64>() {
            by.entry((r.question.clone(), r.method.clone())).or_default().push((
                r.participant.clone(),
                r.case.clone(),
                v,
            ));
        }
    }
    let mut likert = Vec::new();
    for item in &items {
        for m in &methods {
            let Some(v) = by.get(&(item.clone(), m.clone())) else { continue };
            let vals: Vec<f64> = v.iter().map(|x| x.2).collect();
            let (mean, sd) = mean_sd(&vals);
            likert.push(LikertStat { method: m.clone(), item: item.clone(), n: vals.len(), mean, sd });
        }
    }
    let mut preference = Vec::new();
    for m in &methods {
        let Some(v) = by.get(&(PREFERENCE.to_string(), m.clone())) else { continue };
        let chosen = v.iter().filter(|x| x.2 == 1.0).count();
        let (ci_low, ci_high) = wilson_95(chosen, v.len());
        preference.push(PreferenceStat {
            method: m.clone(),
            shown: v.len(),
            chosen,
            share: chosen as f64 / v.len() as f64,
            ci_low,
            ci_high,
        });
    }
    let mut sign_tests = Vec::new();
    let has_pref = by.keys().any(|(q, _)| q == PREFERENCE);
    let questions: Vec<String> =
        has_pref.then(|| PREFERENCE.to_string()).into_iter().chain(items.iter().cloned()).collect();
    for q in &questions {
        for (i, a) in methods.iter().enumerate() {
            for b in &methods[i + 1..] {
                let (Some(va), Some(vb)) = (by.get(&(q.clone(), a.clone())), by.get(&(q.clone(), b.clone())))
                else {
                    continue;
                };
                let (mut a_better, mut b_better, mut ties) = (0, 0, 0);
                for (p, c, x) in va {
                    let Some((_, _, y)) = vb.iter().find(|(p2, c2, _)| p2 == p && c2 == c) else { continue };
                    match x.partial_cmp(y) {
                        Some(std::cmp::Ordering::Greater) => a_better += 1,
                        Some(std::cmp::Ordering::Less) => b_better += 1,
                        _ => ties += 1,
                    }
                }
                if a_better + b_better + ties == 0 {
                    continue;
                }
                sign_tests.push(SignTest {
                    question: q.clone(),
                    method_a: a.clone(),
                    method_b: b.clone(),
                    a_better,
                    b_better,
                    ties,
                    p_value: sign_test_p(a_better, b_better),
                });
            }
        }
    }
    let participants = logs
        .iter()
        .map(|log| {
            let secs: Vec<f64> = log.done.iter().map(|d| d.1).collect();
            ParticipantStat {
                participant: log.participant.clone(),
                cases_done: log.plan.iter().filter(|e| log.is_done(&e.case)).count(),
                cases_total: log.plan.len(),
                seconds_total: secs.iter().sum(),
                seconds_median: median(secs),
            }
        })
        .collect();
    Summary { participants, methods, likert, preference, sign_tests }
}

/// Reads results files; two files of the same participant are refused (answers would count twice).
pub fn read_logs(paths: &[impl AsRef<Path>]) -> Result<Vec<ResultsLog>, SessionError> {
    let mut logs: Vec<ResultsLog> = Vec::new();
    for p in paths {
        let log = ResultsLog::read(p.as_ref())?;
        if let Some(other) = logs.iter().find(|l| l.participant == log.participant) {
            return Err(SessionError::new(
                p.as_ref(),
                format!("participant '{}' also has {}", log.participant, other.path.display()),
            ));
        }
        logs.push(log);
    }
    Ok(logs)
}

fn fmt(v: f64, decimals: usize) -> String {
    format!("{v:.decimals$}")
}

/// The summary as plain-text tables.
pub fn write_tables(s: &Summary, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(out, "participants")?;
    writeln!(
        out,
        "  {:<20} {:>9} {:>12} {:>14}",
        "participant", "completed", "total (s)", "median/case (s)"
    )?;
    for p in &s.participants {
        writeln!(
            out,
            "  {:<20} {:>9} {:>12} {:>14}",
            p.participant,
            format!("{}/{}", p.cases_done, p.cases_total),
            fmt(p.seconds_total, 1),
            p.seconds_median.map(|m| fmt(m, 1)).unwrap_or_else(|| "-".into())
        )?;
    }
    if !s.likert.is_empty() {
        writeln!(out, "likert (1-5): mean ± sd (n)")?;
        for l in &s.likert {
            let sd = l.sd.map(|v| fmt(v, 2)).unwrap_or_else(|| "-".into());
            writeln!(out, "  {:<24} {:<12} {} ± {} ({})", l.item, l.method, fmt(l.mean, 2), sd, l.n)?;
        }
    }
    if !s.preference.is_empty() {
        writeln!(out, "preference: share [95% Wilson CI] (chosen/shown)")?;
        for p in &s.preference {
            writeln!(
                out,
                "  {:<12} {} [{}, {}] ({}/{})",
                p.method,
                fmt(p.share, 3),
                fmt(p.ci_low, 3),
                fmt(p.ci_high, 3),
                p.chosen,
                p.shown
            )?;
        }
    }
    if !s.sign_tests.is_empty() {
        writeln!(out, "sign tests (exact, two-sided)")?;
        for t in &s.sign_tests {
            writeln!(
                out,
                "  {:<24} {} vs {}: {}-{} (ties {}), p = {}",
                t.question,
                t.method_a,
                t.method_b,
                t.a_better,
                t.b_better,
                t.ties,
                fmt(t.p_value, 4)
            )?;
        }
    }
    Ok(())
}

mod plots {
    use plotters::prelude::*;

    use super::Summary;

    const W: u32 = 800;
    const H: u32 = 480;

    fn colour(i: usize) -> RGBColor {
        let p = [
            RGBColor(31, 119, 180),
            RGBColor(255, 127, 14),
            RGBColor(44, 160, 44),
            RGBColor(214, 39, 40),
            RGBColor(148, 103, 189),
            RGBColor(140, 86, 75),
        ];
        p[i % p.len()]
    }

    fn to_err<E: std::fmt::Display>(e: E) -> String {
        e.to_string()
    }

    /// Mean ± sd per Likert item, one bar per method. RGB bytes (W × H).
    pub fn likert(s: &Summary) -> Result<Vec<u8>, String> {
        crate::report::register_embedded_font();
        let mut buf = vec![255u8; (W * H * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
            root.fill(&WHITE).map_err(to_err)?;
            let items: Vec<String> = {
                let mut v: Vec<String> = Vec::new();
                for l in &s.likert {
                    if !v.contains(&l.item) {
                        v.push(l.item.clone());
                    }
                }
                v
            };
            let groups = items.len().max(1) as f64;
            let m = s.methods.len().max(1) as f64;
            let mut chart = ChartBuilder::on(&root)
                .caption("Likert ratings: mean ± sd", ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(40)
                .build_cartesian_2d(0f64..groups, 0f64..5.8f64)
                .map_err(to_err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_desc("rating")
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(to_err)?;
            for (mi, method) in s.methods.iter().enumerate() {
                let c = colour(mi);
                let bars: Vec<_> = s
                    .likert
                    .iter()
                    .filter(|l| &l.method == method)
                    .filter_map(|l| items.iter().position(|i| *i == l.item).map(|g| (g, l)))
                    .collect();
                let width = 0.8 / m;
                chart
                    .draw_series(bars.iter().map(|(g, l)| {
                        let x0 = *g as f64 + 0.1 + mi as f64 * width;
                        Rectangle::new([(x0, 0.0), (x0 + width * 0.9, l.mean)], c.filled())
                    }))
                    .map_err(to_err)?
                    .label(method.as_str())
                    .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
                chart
                    .draw_series(bars.iter().filter_map(|(g, l)| {
                        let sd = l.sd?;
                        let x = *g as f64 + 0.1 + mi as f64 * width + width * 0.45;
                        Some(PathElement::new(
                            vec![(x, l.mean - sd), (x, l.mean + sd)],
                            BLACK.stroke_width(2),
                        ))
                    }))
                    .map_err(to_err)?;
            }
            // Item names above their groups (numeric axes place ticks at round values, not at groups).
            chart
                .draw_series(items.iter().enumerate().map(|(g, name)| {
                    Text::new(name.clone(), (g as f64 + 0.1, 5.6), ("sans-serif", 16).into_font())
                }))
                .map_err(to_err)?;
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(to_err)?;
            root.present().map_err(to_err)?;
        }
        Ok(buf)
    }

    /// Preference share with its 95% Wilson interval per method. RGB bytes (W × H).
    pub fn preference(s: &Summary) -> Result<Vec<u8>, String> {
        crate::report::register_embedded_font();
        let mut buf = vec![255u8; (W * H * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
            root.fill(&WHITE).map_err(to_err)?;
            let n = s.preference.len().max(1) as f64;
            let names: Vec<String> = s.preference.iter().map(|p| p.method.clone()).collect();
            let mut chart = ChartBuilder::on(&root)
                .caption("Preferred explanation: share with 95% CI", ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..n, 0f64..1.12f64)
                .map_err(to_err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_desc("share of cases")
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(to_err)?;
            chart
                .draw_series(s.preference.iter().enumerate().map(|(i, p)| {
                    Rectangle::new([(i as f64 + 0.2, 0.0), (i as f64 + 0.8, p.share)], colour(i).filled())
                }))
                .map_err(to_err)?;
            chart
                .draw_series(s.preference.iter().enumerate().map(|(i, p)| {
                    let x = i as f64 + 0.5;
                    PathElement::new(vec![(x, p.ci_low), (x, p.ci_high)], BLACK.stroke_width(2))
                }))
                .map_err(to_err)?;
            chart
                .draw_series(names.iter().enumerate().map(|(i, name)| {
                    Text::new(name.clone(), (i as f64 + 0.2, 1.09), ("sans-serif", 16).into_font())
                }))
                .map_err(to_err)?;
            root.present().map_err(to_err)?;
        }
        Ok(buf)
    }

    pub const SIZE: (u32, u32) = (W, H);
}

/// Writes `summary.json`, `likert.png` and `preference.png` (when there is something to plot) into
/// `dir`; returns the files written.
pub fn write_outputs(s: &Summary, dir: &Path) -> Result<Vec<std::path::PathBuf>, SessionError> {
    std::fs::create_dir_all(dir).map_err(|e| SessionError::io(dir, e))?;
    let mut written = Vec::new();
    let json = dir.join("summary.json");
    let text = serde_json::to_string_pretty(s).map_err(|e| SessionError::new(&json, e.to_string()))?;
    crate::io::write_atomic(&json, |w| w.write_all(text.as_bytes()))?;
    written.push(json);
    let (w, h) = plots::SIZE;
    if !s.likert.is_empty() {
        let p = dir.join("likert.png");
        let rgb =
            plots::likert(s).map_err(|e| SessionError::new(&p, format!("cannot draw the plot: {e}")))?;
        crate::io::raster::write_png_rgb(&p, w, h, &rgb)?;
        written.push(p);
    }
    if !s.preference.is_empty() {
        let p = dir.join("preference.png");
        let rgb =
            plots::preference(s).map_err(|e| SessionError::new(&p, format!("cannot draw the plot: {e}")))?;
        crate::io::raster::write_png_rgb(&p, w, h, &rgb)?;
        written.push(p);
    }
    Ok(written)
}
