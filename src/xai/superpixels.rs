//! Superpixels for the perturbation methods: quickshift (lime's default), SLIC and Felzenszwalb, on the
//! 8-bit grey image at the model's input size (H×W, row-major, values 0..=255).
//!
//! Every function returns labels `0..n` (contiguous, numbered in raster order of first appearance).
//!
//! Grey images: lime hands skimage an RGB image and skimage's quickshift converts it to CIE Lab. Our
//! image is one grey plane replicated to three equal channels, for which Lab's a* and b* are zero (up to
//! rounding), so [`quickshift`] works on Lab lightness L* alone — the same distances skimage computes,
//! without the two zero channels.

/// How to cut the image into superpixels.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Segmentation {
    /// skimage's quickshift; lime's default is `kernel_size = 4, max_dist = 200, ratio = 0.2`.
    Quickshift {
        kernel_size: f64,
        max_dist: f64,
        ratio: f64,
    },
    Slic {
        n_segments: usize,
        compactness: f64,
    },
    Felzenszwalb {
        scale: f64,
        sigma: f64,
        min_size: usize,
    },
    /// Labels given by the caller (H×W); relabelled to `0..n`.
    Given(Vec<u32>),
}

impl Default for Segmentation {
    /// lime_image's default segmentation.
    fn default() -> Self {
        Segmentation::Quickshift { kernel_size: 4.0, max_dist: 200.0, ratio: 0.2 }
    }
}

/// The superpixel algorithms a user can pick by name (`radlens explain --segmentation`, the viewer's
/// parameters panel), in the order shown.
pub const SEGMENTATION_NAMES: [&str; 3] = ["quickshift", "slic", "felzenszwalb"];

impl Segmentation {
    /// An algorithm by name with its usual parameters: quickshift as lime_image (kernel 4, max_dist 200,
    /// ratio 0.2); SLIC with skimage's 100 segments and compactness 10; Felzenszwalb with scale 100,
    /// sigma 0.5, min_size 50 (skimage's scale 1 cuts a CT slice into thousands of regions, too many
    /// players for 1,000 samples).
    pub fn from_name(name: &str) -> Result<Segmentation, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "quickshift" => Ok(Segmentation::default()),
            "slic" => Ok(Segmentation::Slic { n_segments: 100, compactness: 10.0 }),
            "felzenszwalb" => Ok(Segmentation::Felzenszwalb { scale: 100.0, sigma: 0.5, min_size: 50 }),
            other => Err(format!(
                "unknown superpixel algorithm '{other}' (one of {})",
                SEGMENTATION_NAMES.join(", ")
            )),
        }
    }

    /// The labels of `grey` (h×w) and their count.
    pub fn labels(&self, grey: &[f32], h: usize, w: usize) -> (Vec<u32>, usize) {
        let labels = match self {
            Segmentation::Quickshift { kernel_size, max_dist, ratio } => {
                quickshift(grey, h, w, *kernel_size, *max_dist, *ratio)
            }
            Segmentation::Slic { n_segments, compactness } => slic(grey, h, w, *n_segments, *compactness),
            Segmentation::Felzenszwalb { scale, sigma, min_size } => {
                felzenszwalb(grey, h, w, *scale, *sigma, *min_size)
            }
            Segmentation::Given(l) => relabel(l),
        };
        let n = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
        (labels, n)
    }
}

/// Renumbers arbitrary labels to `0..n` in raster order of first appearance.
pub fn relabel(labels: &[u32]) -> Vec<u32> {
    let mut map = std::collections::HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let next = map.len() as u32;
            *map.entry(l).or_insert(next)
        })
        .collect()
}

/// CIE L* (D65, sRGB companding) of an 8-bit grey value, as skimage's `rgb2lab` computes it for
/// R = G = B.
fn lab_lightness(v: f32) -> f64 {
    let v = v as f64 / 255.0;
    let lin = if v > 0.04045 { ((v + 0.055) / 1.055).powf(2.4) } else { v / 12.92 };
    // Rows of sRGB→XYZ sum to the white point, so Y/Yn is the linear value itself.
    let f = if lin > 0.008856 { lin.cbrt() } else { 7.787 * lin + 16.0 / 116.0 };
    116.0 * f - 16.0
}

/// skimage's `quickshift(rgb, kernel_size, max_dist, ratio, sigma=0)` on a grey image (see the module
/// note on Lab). Densities are Gaussian-weighted sums over a square window of half-width
/// ⌈3·kernel_size⌉ in (ratio·L*, row, col) space; each pixel links to the nearest pixel of higher
/// density in that window; links longer than `max_dist` are cut; the trees' roots are the segments.
///
/// Ties: skimage breaks density ties with N(0, 1e-5) noise from numpy's generator, which we cannot
/// reproduce; we add a deterministic tie-breaker of the same size (a hash of the pixel index), so flat
/// regions may split differently — the test reports the agreement (adjusted Rand index).
pub fn quickshift(grey: &[f32], h: usize, w: usize, kernel_size: f64, max_dist: f64, ratio: f64) -> Vec<u32> {
    assert_eq!(grey.len(), h * w, "quickshift: {} values for {h}×{w}", grey.len());
    let img: Vec<f64> = grey.iter().map(|&v| lab_lightness(v) * ratio).collect();
    let inv = -0.5 / (kernel_size * kernel_size);
    let kw = (3.0 * kernel_size).ceil() as isize;
    let (hi, wi) = (h as isize, w as isize);
    let mut density = vec![0.0f64; h * w];
    for r in 0..hi {
        for c in 0..wi {
            let v = img[(r * wi + c) as usize];
            let mut d = 0.0;
            for r2 in (r - kw).max(0)..(r + kw + 1).min(hi) {
                for c2 in (c - kw).max(0)..(c + kw + 1).min(wi) {
                    let t = v - img[(r2 * wi + c2) as usize];
                    let dist = t * t + ((r - r2) * (r - r2) + (c - c2) * (c - c2)) as f64;
                    d += (dist * inv).exp();
                }
            }
            density[(r * wi + c) as usize] = d;
        }
    }
    let mut sm = crate::xai::perturb::SplitMix64::new(0x5eed_0f_9a1c);
    for d in density.iter_mut() {
        *d += (sm.next_f64() - 0.5) * 2e-5;
    }
    let mut parent: Vec<usize> = (0..h * w).collect();
    for r in 0..hi {
        for c in 0..wi {
            let i = (r * wi + c) as usize;
            let (v, dens) = (img[i], density[i]);
            let mut closest = f64::INFINITY;
            for r2 in (r - kw).max(0)..(r + kw + 1).min(hi) {
                for c2 in (c - kw).max(0)..(c + kw + 1).min(wi) {
                    let j = (r2 * wi + c2) as usize;
                    if density[j] > dens {
                        let t = v - img[j];
                        let dist = t * t + ((r - r2) * (r - r2) + (c - c2) * (c - c2)) as f64;
                        if dist < closest {
                            closest = dist;
                            parent[i] = j;
                        }
                    }
                }
            }
            if closest.sqrt() > max_dist {
                parent[i] = i;
            }
        }
    }
    // Densities strictly increase along links, so following parents ends at a root.
    let roots: Vec<u32> = (0..h * w)
        .map(|mut i| {
            while parent[i] != i {
                i = parent[i];
            }
            i as u32
        })
        .collect();
    relabel_sorted(&roots)
}

/// Renumbers labels to `0..n` in increasing order of label value (numpy's `unique(return_inverse)`).
fn relabel_sorted(labels: &[u32]) -> Vec<u32> {
    let mut uniq: Vec<u32> = labels.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    labels.iter().map(|l| uniq.binary_search(l).unwrap_or(0) as u32).collect()
}

/// SLIC on a grey image (values scaled to 0..1 as skimage's `img_as_float` does for 8-bit data):
/// k-means in (intensity/compactness, row/step, col/step) from a regular grid of about `n_segments`
/// centres, 10 iterations over 2·step windows, then connectivity enforced as skimage does
/// (`enforce_connectivity=True`, `min_size_factor=0.5`: components smaller than half the mean segment
/// size join an adjacent segment). Segments are connected.
pub fn slic(grey: &[f32], h: usize, w: usize, n_segments: usize, compactness: f64) -> Vec<u32> {
    assert_eq!(grey.len(), h * w);
    if h * w == 0 {
        return Vec::new();
    }
    let img: Vec<f64> = grey.iter().map(|&v| v as f64 / 255.0).collect();
    let step = ((h * w) as f64 / n_segments.max(1) as f64).sqrt().max(1.0);
    let (ny, nx) =
        (((h as f64) / step).round().max(1.0) as usize, ((w as f64) / step).round().max(1.0) as usize);
    let (sy, sx) = (h as f64 / ny as f64, w as f64 / nx as f64);
    // centres: (intensity, y, x)
    let mut centres: Vec<[f64; 3]> = Vec::with_capacity(ny * nx);
    for i in 0..ny {
        for j in 0..nx {
            let y = ((i as f64 + 0.5) * sy) as usize;
            let x = ((j as f64 + 0.5) * sx) as usize;
            centres.push([img[y.min(h - 1) * w + x.min(w - 1)], y as f64, x as f64]);
        }
    }
    let m = compactness.max(1e-12);
    let mut labels = vec![0u32; h * w];
    let mut dist = vec![f64::INFINITY; h * w];
    let win = (2.0 * step).ceil() as isize;
    for _ in 0..10 {
        dist.iter_mut().for_each(|d| *d = f64::INFINITY);
        for (k, ctr) in centres.iter().enumerate() {
            let (cy, cx) = (ctr[1].round() as isize, ctr[2].round() as isize);
            for y in (cy - win).max(0)..(cy + win + 1).min(h as isize) {
                for x in (cx - win).max(0)..(cx + win + 1).min(w as isize) {
                    let i = y as usize * w + x as usize;
                    let dc = (img[i] - ctr[0]) / m;
                    let (dy, dx) = ((y as f64 - ctr[1]) / step, (x as f64 - ctr[2]) / step);
                    let d = dc * dc + dy * dy + dx * dx;
                    if d < dist[i] {
                        dist[i] = d;
                        labels[i] = k as u32;
                    }
                }
            }
        }
        let mut sums = vec![[0.0f64; 4]; centres.len()];
        for (i, &l) in labels.iter().enumerate() {
            let s = &mut sums[l as usize];
            s[0] += img[i];
            s[1] += (i / w) as f64;
            s[2] += (i % w) as f64;
            s[3] += 1.0;
        }
        for (c, s) in centres.iter_mut().zip(&sums) {
            if s[3] > 0.0 {
                *c = [s[0] / s[3], s[1] / s[3], s[2] / s[3]];
            }
        }
    }
    let min_size = ((h * w) as f64 / n_segments.max(1) as f64 * 0.5) as usize;
    enforce_connectivity(&labels, h, w, min_size.max(1))
}

/// Connected components (4-connectivity) of `labels`; components smaller than `min_size` take the label
/// of the component met just before them in raster order (skimage's `_enforce_label_connectivity_cython`
/// merges into the previous adjacent segment the same way).
fn enforce_connectivity(labels: &[u32], h: usize, w: usize, min_size: usize) -> Vec<u32> {
    let comp = components(labels, h, w);
    let n = comp.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
    let mut size = vec![0usize; n];
    comp.iter().for_each(|&c| size[c as usize] += 1);
    let mut target: Vec<u32> = (0..n as u32).collect();
    // Components are numbered in raster order of their first pixel; a small component joins the one
    // left of or above its first pixel (already resolved, being earlier in raster order).
    let mut first = vec![usize::MAX; n];
    for (i, &c) in comp.iter().enumerate() {
        if first[c as usize] == usize::MAX {
            first[c as usize] = i;
        }
    }
    for c in 0..n {
        if size[c] < min_size {
            let i = first[c];
            let nb = if i % w > 0 {
                Some(i - 1)
            } else if i >= w {
                Some(i - w)
            } else {
                None
            };
            if let Some(j) = nb {
                target[c] = target[comp[j] as usize];
            }
        }
    }
    relabel(&comp.iter().map(|&c| target[c as usize]).collect::<Vec<_>>())
}

/// 4-connected components of equal labels, numbered in raster order.
fn components(labels: &[u32], h: usize, w: usize) -> Vec<u32> {
    let mut comp = vec![u32::MAX; h * w];
    let mut next = 0u32;
    let mut stack = Vec::new();
    for s in 0..h * w {
        if comp[s] != u32::MAX {
            continue;
        }
        comp[s] = next;
        stack.push(s);
        while let Some(i) = stack.pop() {
            let (y, x) = (i / w, i % w);
            let mut nbs = [usize::MAX; 4];
            if x > 0 {
                nbs[0] = i - 1;
            }
            if x + 1 < w {
                nbs[1] = i + 1;
            }
            if y > 0 {
                nbs[2] = i - w;
            }
            if y + 1 < h {
                nbs[3] = i + w;
            }
            for j in nbs {
                if j != usize::MAX && comp[j] == u32::MAX && labels[j] == labels[i] {
                    comp[j] = next;
                    stack.push(j);
                }
            }
        }
        next += 1;
    }
    comp
}

/// Separable Gaussian blur (truncate at 4σ, reflect at the edges, as scipy's `gaussian_filter`).
pub fn gaussian_blur(img: &[f64], h: usize, w: usize, sigma: f64) -> Vec<f64> {
    if sigma <= 0.0 {
        return img.to_vec();
    }
    let r = (4.0 * sigma + 0.5) as isize;
    let k: Vec<f64> = (-r..=r).map(|i| (-0.5 * (i * i) as f64 / (sigma * sigma)).exp()).collect();
    let ks: f64 = k.iter().sum();
    let k: Vec<f64> = k.iter().map(|v| v / ks).collect();
    let reflect = |i: isize, n: isize| -> usize {
        let mut i = i;
        loop {
            if i < 0 {
                i = -i - 1;
            } else if i >= n {
                i = 2 * n - i - 1;
            } else {
                return i as usize;
            }
        }
    };
    let mut tmp = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            tmp[y * w + x] = (-r..=r)
                .map(|d| k[(d + r) as usize] * img[y * w + reflect(x as isize + d, w as isize)])
                .sum();
        }
    }
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = (-r..=r)
                .map(|d| k[(d + r) as usize] * tmp[reflect(y as isize + d, h as isize) * w + x])
                .sum();
        }
    }
    out
}

/// Felzenszwalb–Huttenlocher graph segmentation as skimage's `felzenszwalb` on a grey image (values
/// 0..1, Gaussian pre-smoothing `sigma`, 8-connected grid graph, edge weight |Δintensity|, merge while
/// the edge is no heavier than either side's internal difference + `scale/255 / size`, then components
/// smaller than `min_size` merge along the lightest edges). Segments are connected.
pub fn felzenszwalb(grey: &[f32], h: usize, w: usize, scale: f64, sigma: f64, min_size: usize) -> Vec<u32> {
    assert_eq!(grey.len(), h * w);
    let img: Vec<f64> = grey.iter().map(|&v| v as f64 / 255.0).collect();
    let img = gaussian_blur(&img, h, w, sigma);
    let k = scale / 255.0;
    let mut edges: Vec<(f64, u32, u32)> = Vec::with_capacity(4 * h * w);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let mut add = |j: usize| edges.push(((img[i] - img[j]).abs(), i as u32, j as u32));
            if x + 1 < w {
                add(i + 1);
            }
            if y + 1 < h {
                add(i + w);
            }
            if y + 1 < h && x + 1 < w {
                add(i + w + 1);
            }
            if y > 0 && x + 1 < w {
                add(i - w + 1);
            }
        }
    }
    edges.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut uf = UnionFind::new(h * w);
    let mut internal = vec![0.0f64; h * w];
    for &(wt, a, b) in &edges {
        let (ra, rb) = (uf.find(a as usize), uf.find(b as usize));
        if ra == rb {
            continue;
        }
        let ta = internal[ra] + k / uf.size[ra] as f64;
        let tb = internal[rb] + k / uf.size[rb] as f64;
        if wt <= ta.min(tb) {
            let r = uf.union(ra, rb);
            internal[r] = wt;
        }
    }
    for &(_, a, b) in &edges {
        let (ra, rb) = (uf.find(a as usize), uf.find(b as usize));
        if ra != rb && (uf.size[ra] < min_size || uf.size[rb] < min_size) {
            uf.union(ra, rb);
        }
    }
    let roots: Vec<u32> = (0..h * w).map(|i| uf.find(i) as u32).collect();
    relabel(&roots)
}

struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind { parent: (0..n).collect(), size: vec![1; n] }
    }
    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) -> usize {
        let (a, b) = if self.size[a] >= self.size[b] { (a, b) } else { (b, a) };
        self.parent[b] = a;
        self.size[a] += self.size[b];
        a
    }
}
