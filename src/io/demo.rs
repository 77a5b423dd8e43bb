//! The embedded demo study: real CT slices with infection masks and a chest X-ray with its masks
//! (sources and licences in `assets/demo/LICENSES.md`), compiled into the binary so that a fresh
//! `cargo run --release` has something real to show with no files at hand.

use std::path::Path;

use super::{load_mask, load_study, LoadError, LoadOptions};
use crate::imaging::{Mask, Volume};

/// (file name, bytes) of every embedded file.
const FILES: &[(&str, &[u8])] = &[
    ("ct_slice_7.jpg", include_bytes!("../../assets/demo/ct/slice_7.jpg")),
    ("ct_slice_7_infection.png", include_bytes!("../../assets/demo/ct/slice_7_infection.png")),
    (
        "ct_slice_7_ggo_consolidation.png",
        include_bytes!("../../assets/demo/ct/slice_7_ggo_consolidation.png"),
    ),
    ("ct_slice_60.jpg", include_bytes!("../../assets/demo/ct/slice_60.jpg")),
    ("ct_slice_60_infection.png", include_bytes!("../../assets/demo/ct/slice_60_infection.png")),
    (
        "ct_slice_60_ggo_consolidation.png",
        include_bytes!("../../assets/demo/ct/slice_60_ggo_consolidation.png"),
    ),
    ("ct_slice_79.jpg", include_bytes!("../../assets/demo/ct/slice_79.jpg")),
    ("ct_slice_79_infection.png", include_bytes!("../../assets/demo/ct/slice_79_infection.png")),
    (
        "ct_slice_79_ggo_consolidation.png",
        include_bytes!("../../assets/demo/ct/slice_79_ggo_consolidation.png"),
    ),
    ("cxr_covid_02108.png", include_bytes!("../../assets/demo/cxr/covid_02108.png")),
    ("cxr_covid_02108_infection.png", include_bytes!("../../assets/demo/cxr/covid_02108_infection.png")),
    ("cxr_covid_02108_lungs.png", include_bytes!("../../assets/demo/cxr/covid_02108_lungs.png")),
];

/// One demo case: an image and its named masks on the same grid.
#[derive(Debug, Clone)]
pub struct DemoCase {
    pub name: String,
    /// What the case shows, for captions.
    pub description: String,
    pub volume: Volume,
    /// (mask name, mask), ground truth first.
    pub masks: Vec<(String, Mask)>,
}

/// Cases: (case name, description, image file, [(mask name, mask file)]).
const CASES: &[(&str, &str, &str, &[(&str, &str)])] = &[
    (
        "ct-slice-7",
        "COVID-19 CT, COVID-SemiSeg test slice 7 (8-bit, not HU)",
        "ct_slice_7.jpg",
        &[
            ("infection", "ct_slice_7_infection.png"),
            ("ggo/consolidation", "ct_slice_7_ggo_consolidation.png"),
        ],
    ),
    (
        "ct-slice-60",
        "COVID-19 CT, COVID-SemiSeg test slice 60 (8-bit, not HU)",
        "ct_slice_60.jpg",
        &[
            ("infection", "ct_slice_60_infection.png"),
            ("ggo/consolidation", "ct_slice_60_ggo_consolidation.png"),
        ],
    ),
    (
        "ct-slice-79",
        "COVID-19 CT, COVID-SemiSeg test slice 79 (8-bit, not HU)",
        "ct_slice_79.jpg",
        &[
            ("infection", "ct_slice_79_infection.png"),
            ("ggo/consolidation", "ct_slice_79_ggo_consolidation.png"),
        ],
    ),
    (
        "cxr-covid-02108",
        "COVID-19 chest X-ray, COVID-QU-Ex validation image 2108",
        "cxr_covid_02108.png",
        &[("infection", "cxr_covid_02108_infection.png"), ("lungs", "cxr_covid_02108_lungs.png")],
    ),
];

/// Decodes the embedded demo through the same loaders a user's files go through (written to a private
/// temporary folder first, so that there is one decoding path to test).
pub fn demo_cases() -> Result<Vec<DemoCase>, LoadError> {
    let dir = tempfile::tempdir().map_err(|e| LoadError::io(Path::new("<demo>"), e))?;
    for (name, bytes) in FILES {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).map_err(|e| LoadError::io(&p, e))?;
    }
    CASES
        .iter()
        .map(|(name, description, image, masks)| {
            let study = load_study(&dir.path().join(image), &LoadOptions::default())?;
            let masks = masks
                .iter()
                .map(|(mask_name, file)| {
                    let p = dir.path().join(file);
                    let m = load_mask(&p)?;
                    super::mask::check_mask_grid(&m, &study.volume, &p)?;
                    Ok((mask_name.to_string(), m))
                })
                .collect::<Result<Vec<_>, LoadError>>()?;
            Ok(DemoCase {
                name: name.to_string(),
                description: description.to_string(),
                volume: study.volume,
                masks,
            })
        })
        .collect()
}
