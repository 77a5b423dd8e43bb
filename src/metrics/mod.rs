//! Segmentation and distance metrics. (Placeholder until the metrics branch lands.)

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SegmentationScores { pub dice: f64, pub iou: f64, pub precision: f64, pub recall: f64, pub specificity: f64, pub accuracy: f64, pub hd_mm: Option<f64>, pub hd95_mm: Option<f64>, pub assd_mm: Option<f64> }
pub fn segmentation_scores(_pred: &[bool], _gt: &[bool], _dims: [usize; 3], _spacing_mm: [f64; 3]) -> SegmentationScores { unimplemented!() }
