//! Overlap scores of two binary masks from their confusion counts.

use serde::Serialize;

use super::MetricsError;

/// Voxel counts of a prediction against a ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ConfusionCounts {
    /// Predicted and in the ground truth.
    pub true_pos: u64,
    /// Predicted but not in the ground truth.
    pub false_pos: u64,
    /// In the ground truth but not predicted.
    pub false_neg: u64,
    /// Neither predicted nor in the ground truth.
    pub true_neg: u64,
}

/// `num / den`, or 1 when `den` is 0: the empty-denominator convention of the module docs
/// (scikit-learn's `zero_division=1`). `den == 0` implies `num == 0` for every ratio here.
fn ratio_or_one(num: u64, den: u64) -> f64 {
    if den == 0 {
        1.0
    } else {
        num as f64 / den as f64
    }
}

impl ConfusionCounts {
    /// Counts over two masks of equal length.
    pub fn from_masks(pred: &[bool], gt: &[bool]) -> Result<Self, MetricsError> {
        if pred.len() != gt.len() {
            return Err(MetricsError::LengthMismatch { pred: pred.len(), gt: gt.len() });
        }
        let mut c = ConfusionCounts::default();
        for (&p, &g) in pred.iter().zip(gt) {
            match (p, g) {
                (true, true) => c.true_pos += 1,
                (true, false) => c.false_pos += 1,
                (false, true) => c.false_neg += 1,
                (false, false) => c.true_neg += 1,
            }
        }
        Ok(c)
    }

    pub fn total(&self) -> u64 {
        self.true_pos + self.false_pos + self.false_neg + self.true_neg
    }

    /// Dice (F1): 2·TP / (2·TP + FP + FN).
    pub fn dice(&self) -> f64 {
        ratio_or_one(2 * self.true_pos, 2 * self.true_pos + self.false_pos + self.false_neg)
    }

    /// IoU (Jaccard): TP / (TP + FP + FN).
    pub fn iou(&self) -> f64 {
        ratio_or_one(self.true_pos, self.true_pos + self.false_pos + self.false_neg)
    }

    /// Precision (positive predictive value): TP / (TP + FP).
    pub fn precision(&self) -> f64 {
        ratio_or_one(self.true_pos, self.true_pos + self.false_pos)
    }

    /// Recall (sensitivity, true positive rate): TP / (TP + FN).
    pub fn recall(&self) -> f64 {
        ratio_or_one(self.true_pos, self.true_pos + self.false_neg)
    }

    /// Specificity (true negative rate): TN / (TN + FP).
    pub fn specificity(&self) -> f64 {
        ratio_or_one(self.true_neg, self.true_neg + self.false_pos)
    }

    /// Pixel accuracy: (TP + TN) / all voxels.
    pub fn accuracy(&self) -> f64 {
        ratio_or_one(self.true_pos + self.true_neg, self.total())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_counted_4x4() {
        // Row-major 4×4; P = predicted, G = ground truth, B = both, . = neither:
        //   B B B P      tp = 3 (the B), fp = 1 (the P), fn = 2 (the G), tn = 10.
        //   G G . .
        //   . . . .
        //   . . . .
        let pred: Vec<bool> = "BBBPGG..........".chars().map(|c| c == 'B' || c == 'P').collect();
        let gt: Vec<bool> = "BBBPGG..........".chars().map(|c| c == 'B' || c == 'G').collect();
        let c = ConfusionCounts::from_masks(&pred, &gt).unwrap();
        assert_eq!(c, ConfusionCounts { true_pos: 3, false_pos: 1, false_neg: 2, true_neg: 10 });
        // dice = 2·3 / (2·3 + 1 + 2) = 6/9; also 2·IoU / (1 + IoU) = 1 / 1.5.
        assert_eq!(c.dice(), 6.0 / 9.0);
        assert_eq!(c.iou(), 3.0 / 6.0);
        assert_eq!(c.precision(), 3.0 / 4.0);
        assert_eq!(c.recall(), 3.0 / 5.0);
        assert_eq!(c.specificity(), 10.0 / 11.0);
        assert_eq!(c.accuracy(), 13.0 / 16.0);
    }

    #[test]
    fn zero_denominators_score_one() {
        let all_neg = ConfusionCounts { true_neg: 5, ..Default::default() };
        assert_eq!(
            (all_neg.dice(), all_neg.iou(), all_neg.precision(), all_neg.recall()),
            (1.0, 1.0, 1.0, 1.0)
        );
        let all_pos = ConfusionCounts { true_pos: 5, ..Default::default() };
        assert_eq!(all_pos.specificity(), 1.0);
        assert_eq!(ConfusionCounts::default().accuracy(), 1.0);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        assert_eq!(
            ConfusionCounts::from_masks(&[true; 3], &[true; 4]),
            Err(MetricsError::LengthMismatch { pred: 3, gt: 4 })
        );
    }
}
