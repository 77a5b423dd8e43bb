//! Faithfulness: deletion and insertion curves (Petsiuk et al., RISE, 2018).
//!
//! Pixels are ordered by the map, highest first (ties by row-major order); with superpixel labels
//! the order is by each superpixel's mean map value, whole superpixels at a time. In `steps` equal
//! steps (the last may be smaller):
//! - **deletion** starts from the image and replaces the next pixels by the baseline;
//! - **insertion** starts from the baseline and puts the next pixels of the image back.
//!
//! The baseline ([`Fill`]) is the Gaussian-blurred image (default, σ = [`DEFAULT_BLUR_SIGMA`] px, as
//! the original's insertion) or a constant. After each step the model scores the image: the target's
//! **probability** (a class probability, or a segmentation's mean probability over its target region),
//! so scores lie in [0, 1]. The AUC is the trapezoid area under score vs the fraction of pixels changed
//! (0..1): in [0, 1], comparable between images. A faithful map has a low deletion AUC and a high
//! insertion AUC. All images of a curve are scored in batches of `batch` through the caller's scorer.

/// σ in pixels of the default blurred baseline.
pub const DEFAULT_BLUR_SIGMA: f32 = 5.0;

/// What removed pixels become.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    /// The image blurred with a Gaussian of this σ (pixels).
    Blur(f32),
    /// A constant value (in the image's units).
    Constant(f32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaithfulnessOptions {
    /// Number of steps (curve points − 1); default 20.
    pub steps: usize,
    pub fill: Fill,
    /// Images per scorer call; default 8.
    pub batch: usize,
}

impl Default for FaithfulnessOptions {
    fn default() -> Self {
        FaithfulnessOptions { steps: 20, fill: Fill::Blur(DEFAULT_BLUR_SIGMA), batch: 8 }
    }
}

/// Deletion and insertion curves and their areas.
#[derive(Debug, Clone, PartialEq)]
pub struct Faithfulness {
    pub deletion_auc: f64,
    pub insertion_auc: f64,
    /// Scores after 0, 1, …, steps steps.
    pub deletion_curve: Vec<f64>,
    pub insertion_curve: Vec<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaithfulnessError {
    #[error("image holds {image} pixels, map {map}, grid {h} x {w}")]
    SizeMismatch { image: usize, map: usize, h: usize, w: usize },
    #[error("superpixel labels hold {0} pixels, the image {1}")]
    LabelsMismatch(usize, usize),
    #[error("the scorer returned {got} scores for {expected} images")]
    ScoreCount { expected: usize, got: usize },
    #[error("scoring failed: {0}")]
    Scorer(String),
}

/// Trapezoid area under `curve` sampled at equal steps over [0, 1].
pub fn auc(curve: &[f64]) -> f64 {
    if curve.len() < 2 {
        return curve.first().copied().unwrap_or(0.0);
    }
    let dx = 1.0 / (curve.len() - 1) as f64;
    curve.windows(2).map(|p| (p[0] + p[1]) * 0.5 * dx).sum()
}

/// Separable Gaussian blur (kernel radius ⌈3σ⌉, edges clamped) of an H×W image.
pub fn gaussian_blur(image: &[f32], h: usize, w: usize, sigma: f32) -> Vec<f32> {
    if sigma <= 0.0 || image.len() != h * w || image.is_empty() {
        return image.to_vec();
    }
    let r = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-r..=r).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let norm: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / norm).collect();
    let mut tmp = vec![0.0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (k, &kv) in kernel.iter().enumerate() {
                let xx = (x as isize + k as isize - r).clamp(0, w as isize - 1) as usize;
                acc += kv * image[y * w + xx];
            }
            tmp[y * w + x] = acc;
        }
    }
    let mut out = vec![0.0f32; h * w];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (k, &kv) in kernel.iter().enumerate() {
                let yy = (y as isize + k as isize - r).clamp(0, h as isize - 1) as usize;
                acc += kv * tmp[yy * w + x];
            }
            out[y * w + x] = acc;
        }
    }
    out
}

/// The order in which pixels are changed: by map value (or superpixel mean), highest first.
pub fn pixel_order(map: &[f32], labels: Option<&[u32]>) -> Vec<usize> {
    let key_of = |v: f32| if v.is_finite() { v } else { f32::NEG_INFINITY };
    let mut order: Vec<usize> = (0..map.len()).collect();
    match labels {
        None => order.sort_by(|&a, &b| key_of(map[b]).total_cmp(&key_of(map[a])).then(a.cmp(&b))),
        Some(labels) => {
            let mut sums: std::collections::HashMap<u32, (f64, usize)> = Default::default();
            for (&l, &v) in labels.iter().zip(map) {
                let e = sums.entry(l).or_insert((0.0, 0));
                if v.is_finite() {
                    e.0 += v as f64;
                }
                e.1 += 1;
            }
            let mean = |l: u32| sums.get(&l).map(|(s, n)| s / *n as f64).unwrap_or(f64::NEG_INFINITY);
            order.sort_by(|&a, &b| {
                mean(labels[b]).total_cmp(&mean(labels[a])).then(labels[a].cmp(&labels[b])).then(a.cmp(&b))
            });
        }
    }
    order
}

/// Deletion and insertion curves of `map` (H×W) on `image` (H×W, the values the scorer expects).
/// `score(images)` returns one target probability per image.
pub fn deletion_insertion(
    image: &[f32],
    h: usize,
    w: usize,
    map: &[f32],
    labels: Option<&[u32]>,
    opts: &FaithfulnessOptions,
    mut score: impl FnMut(&[Vec<f32>]) -> Result<Vec<f64>, String>,
) -> Result<Faithfulness, FaithfulnessError> {
    let n = h * w;
    if image.len() != n || map.len() != n {
        return Err(FaithfulnessError::SizeMismatch { image: image.len(), map: map.len(), h, w });
    }
    if let Some(l) = labels {
        if l.len() != n {
            return Err(FaithfulnessError::LabelsMismatch(l.len(), n));
        }
    }
    let baseline = match opts.fill {
        Fill::Blur(sigma) => gaussian_blur(image, h, w, sigma),
        Fill::Constant(c) => vec![c; n],
    };
    let order = pixel_order(map, labels);
    let steps = opts.steps.max(1);
    let per_step = n.div_ceil(steps).max(1);
    let mut curves = Vec::with_capacity(2);
    for (start, end) in [(image, &baseline[..]), (&baseline[..], image)] {
        let mut current = start.to_vec();
        let mut frames = Vec::with_capacity(steps + 1);
        frames.push(current.clone());
        for s in 0..steps {
            for &i in order.iter().skip(s * per_step).take(per_step) {
                current[i] = end[i];
            }
            frames.push(current.clone());
        }
        let mut curve = Vec::with_capacity(frames.len());
        for chunk in frames.chunks(opts.batch.max(1)) {
            let scores = score(chunk).map_err(FaithfulnessError::Scorer)?;
            if scores.len() != chunk.len() {
                return Err(FaithfulnessError::ScoreCount { expected: chunk.len(), got: scores.len() });
            }
            curve.extend(scores);
        }
        curves.push(curve);
    }
    let insertion_curve = curves.pop().unwrap_or_default();
    let deletion_curve = curves.pop().unwrap_or_default();
    Ok(Faithfulness {
        deletion_auc: auc(&deletion_curve),
        insertion_auc: auc(&insertion_curve),
        deletion_curve,
        insertion_curve,
    })
}
