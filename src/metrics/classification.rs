//! Classification scores of predicted class probabilities against true class indices: accuracy,
//! per-class precision and recall, and one-vs-rest ROC AUC averaged over the classes (macro-AUC), as the
//! CXR studies report them. Used by `radlens train` (validation and test) and `radlens eval`.

/// One class's scores. `precision` is `None` when the class was never predicted, `recall` and `auc`
/// when it has no true sample (AUC also needs at least one other sample).
#[derive(Debug, Clone, PartialEq)]
pub struct ClassScore {
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub auc: Option<f64>,
    /// True samples of this class.
    pub support: usize,
}

/// Scores over a set of samples.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationScores {
    pub accuracy: f64,
    pub per_class: Vec<ClassScore>,
    /// Mean of the defined per-class precisions / recalls / AUCs.
    pub macro_precision: Option<f64>,
    pub macro_recall: Option<f64>,
    pub macro_auc: Option<f64>,
    pub samples: usize,
}

/// Index of the largest probability (the first on ties); `None` for an empty row.
pub fn argmax(p: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in p.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|b| b.0)
}

/// Area under the ROC curve of `(score, is_positive)` pairs (Mann–Whitney U, ties count ½); `None`
/// without both a positive and a negative.
pub fn roc_auc(scores: &[(f64, bool)]) -> Option<f64> {
    let mut sorted: Vec<(f64, bool)> = scores.iter().copied().filter(|s| s.0.is_finite()).collect();
    let pos = sorted.iter().filter(|s| s.1).count();
    let neg = sorted.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    // Rank sum of the positives, tied scores sharing their mean rank: O(n log n).
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1].0 == sorted[i].0 {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += sorted[i..=j].iter().filter(|s| s.1).count() as f64 * mean_rank;
        i = j + 1;
    }
    let u = rank_sum - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos * neg) as f64)
}

/// Scores `probs` (one row of class probabilities per sample) against `truth` (class indices) over
/// `classes` classes. The predicted class is the most probable one.
pub fn classification_scores(probs: &[Vec<f32>], truth: &[usize], classes: usize) -> ClassificationScores {
    let n = probs.len().min(truth.len());
    let pred: Vec<Option<usize>> = probs[..n].iter().map(|p| argmax(p)).collect();
    let correct = (0..n).filter(|&i| pred[i] == Some(truth[i])).count();
    let per_class: Vec<ClassScore> = (0..classes)
        .map(|c| {
            let tp = (0..n).filter(|&i| truth[i] == c && pred[i] == Some(c)).count();
            let predicted = (0..n).filter(|&i| pred[i] == Some(c)).count();
            let support = (0..n).filter(|&i| truth[i] == c).count();
            let scores: Vec<(f64, bool)> =
                (0..n).filter_map(|i| probs[i].get(c).map(|&p| (p as f64, truth[i] == c))).collect();
            ClassScore {
                precision: (predicted > 0).then(|| tp as f64 / predicted as f64),
                recall: (support > 0).then(|| tp as f64 / support as f64),
                auc: roc_auc(&scores),
                support,
            }
        })
        .collect();
    let mean = |f: &dyn Fn(&ClassScore) -> Option<f64>| {
        let v: Vec<f64> = per_class.iter().filter(|c| c.support > 0).filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    ClassificationScores {
        accuracy: if n == 0 { 0.0 } else { correct as f64 / n as f64 },
        macro_precision: mean(&|c| c.precision),
        macro_recall: mean(&|c| c.recall),
        macro_auc: mean(&|c| c.auc),
        per_class,
        samples: n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_half() {
        assert_eq!(roc_auc(&[(0.9, true), (0.1, false)]), Some(1.0));
        assert_eq!(roc_auc(&[(0.1, true), (0.9, false)]), Some(0.0));
        assert_eq!(roc_auc(&[(0.5, true), (0.5, false)]), Some(0.5));
        // pos {0.8, 0.4}, neg {0.4, 0.2}: pairs 1 + 1 + 0.5 + 1 = 3.5 of 4.
        let a = roc_auc(&[(0.8, true), (0.4, true), (0.4, false), (0.2, false)]).unwrap();
        assert!((a - 0.875).abs() < 1e-12, "{a}");
        assert_eq!(roc_auc(&[(0.3, true)]), None);
    }

    #[test]
    fn scores_by_hand() {
        let probs = vec![
            vec![0.7, 0.2, 0.1], // truth 0, predicted 0
            vec![0.1, 0.8, 0.1], // truth 1, predicted 1
            vec![0.5, 0.4, 0.1], // truth 1, predicted 0
            vec![0.2, 0.2, 0.6], // truth 2, predicted 2
        ];
        let s = classification_scores(&probs, &[0, 1, 1, 2], 3);
        assert_eq!(s.accuracy, 0.75);
        assert_eq!(s.per_class[0].precision, Some(0.5));
        assert_eq!(s.per_class[1].recall, Some(0.5));
        assert_eq!(s.per_class[2].precision, Some(1.0));
        // Class 0 scores: positive 0.7 above all three negatives → AUC 1.
        assert_eq!(s.per_class[0].auc, Some(1.0));
        assert_eq!(s.samples, 4);
    }
}
