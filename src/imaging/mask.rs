//! Label masks: ground truth and predictions, on the same (z, y, x) grid as their volume.

use serde::Serialize;

/// Which labels of a label map count as foreground.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum LabelSelector {
    /// Every label > 0 (the default).
    #[default]
    Any,
    /// Exactly this label.
    Label(u16),
}

impl LabelSelector {
    pub fn matches(self, label: u16) -> bool {
        match self {
            LabelSelector::Any => label > 0,
            LabelSelector::Label(l) => label == l,
        }
    }
}

/// A label map indexed (z, y, x): 0 is background, 1.. are labels (for binary masks, 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    labels: Vec<u16>,
    dims: [usize; 3],
}

impl Mask {
    /// `None` when the buffer length does not match the dimensions.
    pub fn new(labels: Vec<u16>, dims: [usize; 3]) -> Option<Self> {
        (labels.len() == dims.iter().product::<usize>()).then_some(Mask { labels, dims })
    }

    /// A binary mask from booleans (true → label 1).
    pub fn from_bools(values: &[bool], dims: [usize; 3]) -> Option<Self> {
        Self::new(values.iter().map(|&b| b as u16).collect(), dims)
    }

    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// Foreground as booleans under the selector.
    pub fn binary(&self, sel: LabelSelector) -> Vec<bool> {
        self.labels.iter().map(|&l| sel.matches(l)).collect()
    }

    /// Slice z as a row-major (y, x) buffer.
    ///
    /// # Panics
    /// If `z` is out of range.
    pub fn slice(&self, z: usize) -> &[u16] {
        let n = self.dims[1] * self.dims[2];
        &self.labels[z * n..(z + 1) * n]
    }

    /// The distinct labels present, background excluded, ascending.
    pub fn present_labels(&self) -> Vec<u16> {
        let mut seen = std::collections::BTreeSet::new();
        seen.extend(self.labels.iter().copied().filter(|&l| l > 0));
        seen.into_iter().collect()
    }

    pub fn count(&self, sel: LabelSelector) -> usize {
        self.labels.iter().filter(|&&l| sel.matches(l)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_picks_labels() {
        let m = Mask::new(vec![0, 1, 2, 2, 0, 1], [1, 2, 3]).unwrap();
        assert_eq!(m.binary(LabelSelector::Any), vec![false, true, true, true, false, true]);
        assert_eq!(m.binary(LabelSelector::Label(2)), vec![false, false, true, true, false, false]);
        assert_eq!(m.present_labels(), vec![1, 2]);
        assert_eq!(m.count(LabelSelector::Label(1)), 2);
        assert!(Mask::new(vec![0; 5], [1, 2, 3]).is_none());
    }
}
