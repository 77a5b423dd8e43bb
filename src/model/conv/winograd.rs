//! Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, 2016) for the forward pass of stride-1,
//! undilated, ungrouped 3×3 convolutions with many input channels and constant weights (inference):
//! each 2×2 output block costs 16 multiplications per (input, output) channel pair instead of 36, as
//! 16 GEMMs over blocks of tiles, with the input and output transforms done while a block is in cache.
//! The transforms use only additions and halvings, so the results differ from the direct convolution
//! by float rounding only (tested against it to 1e-5 of the output's scale).
//!
//! The transformed weights (16/9 of the kernel) are computed once per weight tensor and kept in a
//! bounded process-wide cache keyed by the tensor's id; candle tensors that are not `Var`s never change,
//! so an id always names the same values. Weights being trained (`Var`s) take the im2col path.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use candle_core::TensorId;
use rayon::prelude::*;

use super::{gemm_f32, split, threads, Geom, SharedMut};

/// Whether F(2×2, 3×3) applies and pays (measured on the 2-core machine against the im2col path):
/// a 3×3 stride-1 undilated ungrouped convolution with at least 256 input channels, 64 output
/// channels and 64 tiles of 2×2 outputs (2× faster at 256→256 channels on 16×16, 1.5× at 3072→256;
/// with fewer channels the transforms cost more than the multiplications saved).
pub(super) fn applicable(g: &Geom) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.p.stride == 1
        && g.p.dilation == 1
        && g.p.groups == 1
        && g.c >= 256
        && g.co >= 64
        && g.oh >= 2
        && g.ow >= 2
        && g.n * g.oh.div_ceil(2) * g.ow.div_ceil(2) >= 64
}

/// Bytes of transformed weights kept; the oldest entries go first beyond it.
const CACHE_BYTES: usize = 512 << 20;

#[derive(Default)]
struct Cache {
    map: HashMap<TensorId, Arc<Vec<f32>>>,
    order: VecDeque<TensorId>,
    bytes: usize,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// U for the weight tensor `id`, from the cache or computed (and cached) now.
pub(super) fn weights_for(id: TensorId, w: &[f32], co: usize, c: usize) -> Arc<Vec<f32>> {
    if let Ok(mut guard) = CACHE.lock() {
        let cache = guard.get_or_insert_with(Cache::default);
        if let Some(u) = cache.map.get(&id) {
            if u.len() == 16 * co * c {
                return u.clone();
            }
        }
    }
    let u = Arc::new(transform_weights(w, co, c));
    if let Ok(mut guard) = CACHE.lock() {
        let cache = guard.get_or_insert_with(Cache::default);
        let size = u.len() * 4;
        while cache.bytes + size > CACHE_BYTES {
            let Some(old) = cache.order.pop_front() else { break };
            if let Some(v) = cache.map.remove(&old) {
                cache.bytes -= v.len() * 4;
            }
        }
        if size <= CACHE_BYTES {
            if let Some(prev) = cache.map.insert(id, u.clone()) {
                cache.bytes -= prev.len() * 4;
            } else {
                cache.order.push_back(id);
            }
            cache.bytes += size;
        }
    }
    u
}

/// U = G·g·Gᵀ for every (co, ci): (16, co, c), position k = 4·row + column.
fn transform_weights(w: &[f32], co: usize, c: usize) -> Vec<f32> {
    let plane = co * c;
    let mut u = vec![0f32; 16 * plane];
    let ptr = SharedMut(u.as_mut_ptr());
    (0..co).into_par_iter().for_each(|o| {
        let ptr = ptr;
        for i in 0..c {
            let g = &w[(o * c + i) * 9..(o * c + i) * 9 + 9];
            // t = G·g (4×3), G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]]; then U = t·Gᵀ.
            let mut t = [[0f32; 3]; 4];
            for col in 0..3 {
                let (a, b, d) = (g[col], g[3 + col], g[6 + col]);
                t[0][col] = a;
                t[1][col] = 0.5 * (a + b + d);
                t[2][col] = 0.5 * (a - b + d);
                t[3][col] = d;
            }
            for (r, row) in t.iter().enumerate() {
                let (a, b, d) = (row[0], row[1], row[2]);
                let vals = [a, 0.5 * (a + b + d), 0.5 * (a - b + d), d];
                for (cix, v) in vals.into_iter().enumerate() {
                    // SAFETY: (k, o, i) is written by the task that owns output channel o only.
                    unsafe { *ptr.0.add((4 * r + cix) * plane + o * c + i) = v };
                }
            }
        }
    });
    u
}

/// The tiles one task transforms and multiplies: about 2 MB of transformed input, and at least as
/// many blocks as threads.
fn block_tiles(n: usize, c: usize, tiles: usize) -> usize {
    let tb = ((1usize << 19) / (16 * c).max(1)).clamp(32, 256).min(tiles);
    if n * tiles.div_ceil(tb) < threads() {
        return tiles.div_ceil(threads().div_ceil(n)).max(1);
    }
    tb
}

/// y = act(conv3×3(x, w) + bias [+ residual]) with stride 1 and zero padding `g.p.padding`, for
/// contiguous NCHW `x` and the transformed weights `u` of [`weights_for`].
pub(super) fn forward(
    g: &Geom,
    x: &[f32],
    u: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    let (c, co, h, w, oh, ow) = (g.c, g.co, g.h, g.w, g.oh, g.ow);
    let pad = g.p.padding as isize;
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let tiles = th * tw;
    let tb = block_tiles(g.n, c, tiles);
    let blocks: Vec<(usize, usize)> =
        (0..g.n).flat_map(|img| (0..tiles).step_by(tb).map(move |t| (img, t))).collect();
    let total = g.n * co * oh * ow;
    let mut out: Vec<f32> = Vec::with_capacity(total);
    let out_ptr = SharedMut(out.as_mut_ptr());
    split(blocks.len(), threads()).into_par_iter().for_each(|range| {
        let out_ptr = out_ptr;
        let mut v = vec![0f32; 16 * c * tb];
        let mut m = vec![0f32; 16 * co * tb];
        for &(img, t0) in &blocks[range] {
            let nt = tb.min(tiles - t0);
            let xi = &x[img * c * h * w..(img + 1) * c * h * w];
            // Input transform: V[k][ci][t] = (Bᵀ·d·B)[k] of the tile's 4×4 input patch d.
            for ci in 0..c {
                let plane = &xi[ci * h * w..(ci + 1) * h * w];
                for t in 0..nt {
                    let (ty, tx) = ((t0 + t) / tw, (t0 + t) % tw);
                    let (y0, x0) = (2 * ty as isize - pad, 2 * tx as isize - pad);
                    let mut d = [[0f32; 4]; 4];
                    let inside = y0 >= 0 && x0 >= 0 && y0 + 4 <= h as isize && x0 + 4 <= w as isize;
                    for (r, row) in d.iter_mut().enumerate() {
                        let yy = y0 + r as isize;
                        if inside {
                            let at = yy as usize * w + x0 as usize;
                            row.copy_from_slice(&plane[at..at + 4]);
                        } else if yy >= 0 && yy < h as isize {
                            for (cc, val) in row.iter_mut().enumerate() {
                                let xx = x0 + cc as isize;
                                if xx >= 0 && xx < w as isize {
                                    *val = plane[yy as usize * w + xx as usize];
                                }
                            }
                        }
                    }
                    // Bᵀ = [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]] on the rows, then the columns.
                    let mut s = [[0f32; 4]; 4];
                    for cc in 0..4 {
                        s[0][cc] = d[0][cc] - d[2][cc];
                        s[1][cc] = d[1][cc] + d[2][cc];
                        s[2][cc] = d[2][cc] - d[1][cc];
                        s[3][cc] = d[1][cc] - d[3][cc];
                    }
                    for (r, row) in s.iter().enumerate() {
                        let vals = [row[0] - row[2], row[1] + row[2], row[2] - row[1], row[1] - row[3]];
                        for (cc, val) in vals.into_iter().enumerate() {
                            v[((4 * r + cc) * c + ci) * tb + t] = val;
                        }
                    }
                }
            }
            // M[k] (co × nt) = U[k] (co × c) · V[k] (c × nt).
            for k in 0..16 {
                // SAFETY: m and v are this task's own buffers of 16·co·tb and 16·c·tb; u holds 16·co·c.
                unsafe {
                    gemm_f32(
                        co,
                        nt,
                        c,
                        m.as_mut_ptr().add(k * co * tb),
                        tb,
                        false,
                        u[k * co * c..].as_ptr(),
                        c,
                        1,
                        v.as_ptr().add(k * c * tb),
                        tb,
                        1,
                    );
                }
            }
            // Output transform: Y = Aᵀ·M·A, Aᵀ = [[1,1,1,0],[0,1,−1,−1]], then bias, residual, ReLU.
            for o in 0..co {
                let b = bias.map_or(0.0, |b| b[o]);
                let base = (img * co + o) * oh * ow;
                for t in 0..nt {
                    let (ty, tx) = ((t0 + t) / tw, (t0 + t) % tw);
                    let e = |k: usize| m[(k * co + o) * tb + t];
                    let mut r = [[0f32; 4]; 2];
                    for cc in 0..4 {
                        r[0][cc] = e(cc) + e(4 + cc) + e(8 + cc);
                        r[1][cc] = e(4 + cc) - e(8 + cc) - e(12 + cc);
                    }
                    for (dy, row) in r.iter().enumerate() {
                        let yy = 2 * ty + dy;
                        if yy >= oh {
                            continue;
                        }
                        let vals = [row[0] + row[1] + row[2], row[1] - row[2] - row[3]];
                        for (dx, mut val) in vals.into_iter().enumerate() {
                            let xx = 2 * tx + dx;
                            if xx >= ow {
                                continue;
                            }
                            let at = base + yy * ow + xx;
                            val += b;
                            if let Some(res) = residual {
                                val += res[at];
                            }
                            if relu {
                                val = val.max(0.0);
                            }
                            // SAFETY: each output element belongs to one (image, tile) block, handled
                            // by one task.
                            unsafe { *out_ptr.0.add(at) = val };
                        }
                    }
                }
            }
        }
    });
    // SAFETY: the blocks cover every tile of every image; each tile writes its 2×2 outputs inside the
    // image (all oh·ow pixels) for every output channel.
    unsafe { out.set_len(total) };
    out
}
