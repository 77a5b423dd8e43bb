//! Fast 2-D convolution on the CPU, as candle custom ops with their own backward.
//!
//! candle 0.11 computes a convolution as an im2col into (pixels × in·k²) followed by a matmul and a
//! layout change back to NCHW, and its backward as direct-loop transposed convolutions that always
//! produce the weight gradient too. Here one image's output columns are cut into cache-sized tiles;
//! each tile is unfolded (im2col, or read in place for 1×1 stride-1 convolutions) and multiplied with
//! the `gemm` crate straight into NCHW output, with the bias and ReLU applied while the tile is still in
//! cache. Tiles are shared out over rayon's threads so that a single image keeps every core busy.
//!
//! The backward is two GEMMs over the same tiles: the input gradient `Wᵀ·dY` scattered back with
//! col2im (or written in place for 1×1), and the weight gradient `dY·colsᵀ` summed over tiles. Each is
//! computed only when the corresponding argument is tracked (a `Var` or computed from one): Grad-CAM
//! and the other gradient explainers need only the input gradient.
//!
//! Results equal a direct convolution up to float summation order (tests/conv_ops.rs compares with
//! candle's reference `conv2d` and its autograd).

use std::ops::Range;
use std::sync::Arc;

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

mod winograd;

/// Stride, zero padding, dilation and groups of a convolution (as `nn.Conv2d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvParams {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Default for ConvParams {
    fn default() -> Self {
        ConvParams { stride: 1, padding: 0, dilation: 1, groups: 1 }
    }
}

/// Every size of one convolution call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    co: usize,
    kh: usize,
    kw: usize,
    p: ConvParams,
    oh: usize,
    ow: usize,
}

impl Geom {
    fn new(x: (usize, usize, usize, usize), wt: (usize, usize, usize, usize), p: ConvParams) -> Result<Self> {
        let (n, c, h, w) = x;
        let (co, cg, kh, kw) = wt;
        if p.stride == 0 || p.dilation == 0 || p.groups == 0 {
            bail!("conv2d: stride, dilation and groups must be positive ({p:?})")
        }
        if c % p.groups != 0 || co % p.groups != 0 || cg * p.groups != c {
            bail!("conv2d: input {c} channels, weight {co}×{cg}, groups {} do not match", p.groups)
        }
        if kh == 0 || kw == 0 {
            bail!("conv2d: empty {kh}×{kw} kernel")
        }
        let (eh, ew) = (p.dilation * (kh - 1) + 1, p.dilation * (kw - 1) + 1);
        if h + 2 * p.padding < eh || w + 2 * p.padding < ew {
            bail!("conv2d: {h}×{w} input (padding {}) smaller than the {eh}×{ew} kernel", p.padding)
        }
        let oh = (h + 2 * p.padding - eh) / p.stride + 1;
        let ow = (w + 2 * p.padding - ew) / p.stride + 1;
        Ok(Geom { n, c, h, w, co, kh, kw, p, oh, ow })
    }

    /// Output pixels per image.
    fn pixels(&self) -> usize {
        self.oh * self.ow
    }

    /// Rows of the unfolded matrix for one group: (in/groups)·kh·kw.
    fn k_group(&self) -> usize {
        self.c / self.p.groups * self.kh * self.kw
    }

    fn k_total(&self) -> usize {
        self.c * self.kh * self.kw
    }

    fn co_group(&self) -> usize {
        self.co / self.p.groups
    }

    /// A 1×1 stride-1 unpadded convolution reads its input matrix in place.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.p.stride == 1 && self.p.padding == 0
    }

    /// Tiles (image, output columns) sized so that one unfolded tile is about 2 MB (it stays in L2/L3
    /// while the GEMM packs it), with at least as many tiles as threads.
    fn tiles(&self, threads: usize) -> Vec<(usize, Range<usize>)> {
        let pix = self.pixels().max(1);
        let mut chunk = ((1usize << 19) / self.k_total().max(1)).max(64).min(pix);
        if self.n * pix.div_ceil(chunk) < threads {
            chunk = pix.div_ceil(threads.div_ceil(self.n)).max(1);
        }
        let mut tiles = Vec::new();
        for img in 0..self.n {
            let mut j = 0;
            while j < pix {
                let end = (j + chunk).min(pix);
                tiles.push((img, j..end));
                j = end;
            }
        }
        tiles
    }

    /// Unfolds output columns `cols` of one image `x` (c, h, w) into `buf` (k_total × len, row-major,
    /// row `ci·kh·kw + ky·kw + kx` as PyTorch's weight order), zeros where the kernel meets padding.
    fn im2col(&self, x: &[f32], cols: &Range<usize>, buf: &mut Vec<f32>) {
        let len = cols.len();
        // Every element is written below (copied or zeroed), so a reused buffer is not cleared first:
        // zeroing the whole tile and then copying over it cost a tenth of a small U-Net's forward.
        buf.resize(self.k_total() * len, 0.0);
        let mut row = 0;
        for ci in 0..self.c {
            let plane = &x[ci * self.h * self.w..(ci + 1) * self.h * self.w];
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let dst = &mut buf[row * len..(row + 1) * len];
                    // `walk` reports runs in increasing tile order; the gaps between them are padding.
                    let mut filled = 0;
                    self.walk(cols, ky, kx, |d, s, n| {
                        dst[filled..d].fill(0.0);
                        dst[d..d + n].copy_from_slice(&plane[s..s + n]);
                        filled = d + n;
                    });
                    dst[filled..].fill(0.0);
                    row += 1;
                }
            }
        }
    }

    /// The unfolded matrix of output columns `cols` of image `img` of `x` (k_total × cols, as a pointer
    /// and its row stride): read in place for pointwise convolutions, else unfolded into `buf`.
    fn unfolded(
        &self,
        x: &[f32],
        img: usize,
        cols: &Range<usize>,
        buf: &mut Vec<f32>,
    ) -> (*const f32, usize) {
        let ximg = &x[img * self.c * self.h * self.w..(img + 1) * self.c * self.h * self.w];
        if self.pointwise() {
            (ximg[cols.start..].as_ptr(), self.pixels())
        } else {
            self.im2col(ximg, cols, buf);
            (buf.as_ptr(), cols.len())
        }
    }

    /// The adjoint of [`Geom::im2col`]: adds `buf` back onto the input positions it was read from.
    fn col2im(&self, buf: &[f32], cols: &Range<usize>, dx: &mut [f32]) {
        let len = cols.len();
        let mut row = 0;
        for ci in 0..self.c {
            let plane = &mut dx[ci * self.h * self.w..(ci + 1) * self.h * self.w];
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let src_row = &buf[row * len..(row + 1) * len];
                    self.walk(cols, ky, kx, |d, s, n| {
                        for (o, g) in plane[s..s + n].iter_mut().zip(&src_row[d..d + n]) {
                            *o += g;
                        }
                    });
                    row += 1;
                }
            }
        }
    }

    /// For kernel tap (ky, kx), walks the output columns `cols` row by row and calls
    /// `f(tile_offset, plane_offset, n)` for each run of `n` outputs that read `n` consecutive inputs
    /// (whole in-bounds row segments for stride 1, single elements otherwise); taps on padding are skipped.
    #[inline]
    fn walk(&self, cols: &Range<usize>, ky: usize, kx: usize, mut f: impl FnMut(usize, usize, usize)) {
        let (s, pad, d) = (self.p.stride as isize, self.p.padding as isize, self.p.dilation as isize);
        let (h, w, ow) = (self.h as isize, self.w as isize, self.ow);
        let mut j = cols.start;
        while j < cols.end {
            let oy = j / ow;
            let ox0 = j % ow;
            let seg = (ow - ox0).min(cols.end - j);
            let dst0 = j - cols.start;
            let iy = oy as isize * s + ky as isize * d - pad;
            if iy >= 0 && iy < h {
                let row = iy as usize * self.w;
                let shift = kx as isize * d - pad; // ix = ox·s + shift
                if s == 1 {
                    // valid ox: 0 ≤ ox + shift < w
                    let lo = (ox0 as isize).max(-shift);
                    let hi = ((ox0 + seg) as isize).min(w - shift);
                    if lo < hi {
                        let n = (hi - lo) as usize;
                        f(dst0 + (lo as usize - ox0), row + (lo + shift) as usize, n);
                    }
                } else {
                    for ox in ox0..ox0 + seg {
                        let ix = ox as isize * s + shift;
                        if ix >= 0 && ix < w {
                            f(dst0 + ox - ox0, row + ix as usize, 1);
                        }
                    }
                }
            }
            j += seg;
        }
    }
}

/// Splits `0..len` into `parts` contiguous, nearly equal ranges (no empty ones).
fn split(len: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, len.max(1));
    (0..parts).map(|i| i * len / parts..(i + 1) * len / parts).filter(|r| !r.is_empty()).collect()
}

/// A pointer that worker threads may share; every use writes a region no other thread touches.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: only used for disjoint writes (see each use).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// dst (m×n, row stride `dst_rs`) = [dst +] lhs (m×k) · rhs (k×n), every matrix given by (pointer,
/// row stride, column stride). Single-threaded: the callers parallelise over tiles.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const f32,
    rhs_rs: usize,
    rhs_cs: usize,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        if accumulate { 1.0 } else { 0.0 },
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// The id of a weight that can never change (not a `Var`, no graph behind it).
fn constant_id(weight: &Tensor) -> Option<candle_core::TensorId> {
    (!weight.is_variable() && !weight.track_op()).then(|| weight.id())
}

/// [`forward_f32`], or Winograd's F(2×2, 3×3) for a constant weight where it applies.
fn forward_any(
    g: &Geom,
    x: &[f32],
    w: &[f32],
    weight_id: Option<candle_core::TensorId>,
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    match weight_id {
        Some(id) if winograd::applicable(g) => {
            winograd::forward(g, x, &winograd::weights_for(id, w, g.co, g.c), bias, residual, relu)
        }
        _ => forward_f32(g, x, w, bias, residual, relu),
    }
}

/// y = act(conv(x, w) + bias) for contiguous f32 NCHW `x` and (co, c/g, kh, kw) `w`.
/// With `residual` (the output's shape), y = act(conv(x, w) + bias + residual): a ResNet block's
/// shortcut added while the tile is in cache.
fn forward_f32(
    g: &Geom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    relu: bool,
) -> Vec<f32> {
    let pix = g.pixels();
    // Not zero-initialised: the GEMMs below overwrite every element (every image, tile and group), and
    // nothing reads `out` before that.
    let total = g.n * g.co * pix;
    let mut out: Vec<f32> = Vec::with_capacity(total);
    let tiles = g.tiles(threads());
    let (kg, cog) = (g.k_group(), g.co_group());
    let out_ptr = SharedMut(out.as_mut_ptr());
    split(tiles.len(), threads()).into_par_iter().for_each(|range| {
        let out_ptr = out_ptr;
        let mut buf = Vec::new();
        for (img, cols) in &tiles[range] {
            let len = cols.len();
            let (rhs, rhs_rs) = g.unfolded(x, *img, cols, &mut buf);
            for grp in 0..g.p.groups {
                // SAFETY: this tile's output columns of image `img` are written by this thread only;
                // all offsets stay inside `out`, `w` and the unfolded matrix.
                unsafe {
                    gemm_f32(
                        cog,
                        len,
                        kg,
                        out_ptr.0.add((img * g.co + grp * cog) * pix + cols.start),
                        pix,
                        false,
                        w[grp * cog * kg..].as_ptr(),
                        kg,
                        1,
                        rhs.add(grp * kg * rhs_rs),
                        rhs_rs,
                        1,
                    );
                }
            }
            if bias.is_some() || relu || residual.is_some() {
                for co in 0..g.co {
                    let at = (img * g.co + co) * pix + cols.start;
                    // SAFETY: as above, this tile's columns belong to this thread.
                    let row = unsafe { std::slice::from_raw_parts_mut(out_ptr.0.add(at), len) };
                    let b = bias.map_or(0.0, |b| b[co]);
                    match (residual, relu) {
                        (Some(r), true) => {
                            row.iter_mut().zip(&r[at..at + len]).for_each(|(v, r)| *v = (*v + b + r).max(0.0))
                        }
                        (Some(r), false) => {
                            row.iter_mut().zip(&r[at..at + len]).for_each(|(v, r)| *v += b + r)
                        }
                        (None, true) => row.iter_mut().for_each(|v| *v = (*v + b).max(0.0)),
                        (None, false) => row.iter_mut().for_each(|v| *v += b),
                    }
                }
            }
        }
    });
    // SAFETY: the tiles cover every output column of every image and the groups every output
    // channel, so all `total` elements were written above.
    unsafe { out.set_len(total) };
    out
}

/// For a stride-1, undilated, ungrouped convolution with a square kernel, padding p ≤ k − 1 and an
/// input of at least 32×32 pixels, dx is
/// the forward convolution of dy with the kernel rotated by 180° and its channel axes swapped, padded
/// by k − 1 − p: computed by [`forward_f32`], which writes straight into dx, instead of scattering
/// unfolded columns back (col2im) into one partial dx per thread and adding those up.
fn backward_input_as_forward(g: &Geom, dy: &[f32], w: &[f32]) -> Option<Vec<f32>> {
    let k = g.kh;
    let p = g.p;
    // Small planes with many channels run better through col2im (measured on the 2-core machine).
    if g.h * g.w < 1024
        || g.pointwise()
        || g.kw != k
        || p.stride != 1
        || p.dilation != 1
        || p.groups != 1
        || p.padding + 1 > k
    {
        return None;
    }
    let (c, co) = (g.c, g.co);
    let kk = k * k;
    let mut wt = vec![0f32; c * co * kk];
    wt.par_chunks_mut(co * kk).enumerate().for_each(|(i, row)| {
        for o in 0..co {
            let src = &w[(o * c + i) * kk..(o * c + i + 1) * kk];
            for (j, v) in src.iter().enumerate() {
                row[o * kk + kk - 1 - j] = *v;
            }
        }
    });
    let params = ConvParams { padding: k - 1 - p.padding, ..p };
    let gb = Geom::new((g.n, co, g.oh, g.ow), (c, co, k, k), params).ok()?;
    if (gb.oh, gb.ow) != (g.h, g.w) {
        return None;
    }
    Some(forward_f32(&gb, dy, &wt, None, None, false))
}

/// dx = convᵀ(dy, w): the gradient of the convolution with respect to its input.
fn backward_input_f32(g: &Geom, dy: &[f32], w: &[f32]) -> Vec<f32> {
    if let Some(dx) = backward_input_as_forward(g, dy, w) {
        return dx;
    }
    let pix = g.pixels();
    let in_len = g.c * g.h * g.w;
    let tiles = g.tiles(threads());
    let (kg, cog) = (g.k_group(), g.co_group());
    let cg = g.c / g.p.groups;
    if g.pointwise() {
        // dx columns of a tile come from the same dy columns only: disjoint writes.
        let mut dx = vec![0f32; g.n * in_len];
        let dx_ptr = SharedMut(dx.as_mut_ptr());
        split(tiles.len(), threads()).into_par_iter().for_each(|range| {
            let dx_ptr = dx_ptr;
            for (img, cols) in &tiles[range] {
                for grp in 0..g.p.groups {
                    // SAFETY: disjoint (image, columns) per tile; offsets inside dx, w, dy.
                    unsafe {
                        gemm_f32(
                            cg,
                            cols.len(),
                            cog,
                            dx_ptr.0.add((img * g.c + grp * cg) * pix + cols.start),
                            pix,
                            false,
                            w[grp * cog * kg..].as_ptr(),
                            1,
                            kg,
                            dy[(img * g.co + grp * cog) * pix + cols.start..].as_ptr(),
                            pix,
                            1,
                        );
                    }
                }
            }
        });
        return dx;
    }
    // Neighbouring tiles scatter onto overlapping input rows: each thread sums into its own buffer
    // covering the images its tiles touch, and the buffers are added at the end.
    let parts: Vec<(usize, Vec<f32>)> = split(tiles.len(), threads())
        .into_par_iter()
        .map(|range| {
            let first = tiles[range.start].0;
            let last = tiles[range.end - 1].0;
            let mut acc = vec![0f32; (last + 1 - first) * in_len];
            let mut buf = Vec::new();
            for (img, cols) in &tiles[range] {
                let len = cols.len();
                buf.clear();
                buf.resize(g.k_total() * len, 0.0);
                for grp in 0..g.p.groups {
                    // SAFETY: buf holds k_total × len; offsets inside w and dy.
                    unsafe {
                        gemm_f32(
                            kg,
                            len,
                            cog,
                            buf.as_mut_ptr().add(grp * kg * len),
                            len,
                            false,
                            w[grp * cog * kg..].as_ptr(),
                            1,
                            kg,
                            dy[(img * g.co + grp * cog) * pix + cols.start..].as_ptr(),
                            pix,
                            1,
                        );
                    }
                }
                let off = (img - first) * in_len;
                g.col2im(&buf, cols, &mut acc[off..off + in_len]);
            }
            (first, acc)
        })
        .collect();
    if parts.len() == 1 && parts[0].0 == 0 && parts[0].1.len() == g.n * in_len {
        return parts.into_iter().next().map(|p| p.1).unwrap_or_default();
    }
    let mut dx = vec![0f32; g.n * in_len];
    for (first, acc) in parts {
        for (o, v) in dx[first * in_len..first * in_len + acc.len()].iter_mut().zip(&acc) {
            *o += v;
        }
    }
    dx
}

/// dw = Σ over tiles of dy · colsᵀ: the gradient of the convolution with respect to its weight.
fn backward_weight_f32(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let pix = g.pixels();
    let tiles = g.tiles(threads());
    let (kg, cog) = (g.k_group(), g.co_group());
    let parts: Vec<Vec<f32>> = split(tiles.len(), threads())
        .into_par_iter()
        .map(|range| {
            let mut acc = vec![0f32; g.co * kg];
            let mut buf = Vec::new();
            for (img, cols) in &tiles[range] {
                let len = cols.len();
                let (rhs, rhs_rs) = g.unfolded(x, *img, cols, &mut buf);
                for grp in 0..g.p.groups {
                    // SAFETY: acc is this thread's own; offsets inside dy and the unfolded matrix.
                    unsafe {
                        gemm_f32(
                            cog,
                            kg,
                            len,
                            acc.as_mut_ptr().add(grp * cog * kg),
                            kg,
                            true,
                            dy[(img * g.co + grp * cog) * pix + cols.start..].as_ptr(),
                            pix,
                            1,
                            rhs.add(grp * kg * rhs_rs),
                            1,
                            rhs_rs,
                        );
                    }
                }
            }
            acc
        })
        .collect();
    let mut parts = parts.into_iter();
    let mut dw = parts.next().unwrap_or_else(|| vec![0f32; g.co * kg]);
    for p in parts {
        dw.iter_mut().zip(&p).for_each(|(o, v)| *o += v);
    }
    dw
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let Some((start, end)) = l.contiguous_offsets() else { bail!("conv2d: non-contiguous {what}") };
    match s {
        CpuStorage::F32(v) => Ok(&v[start..end]),
        _ => bail!("conv2d: the fast convolution takes an f32 {what}"),
    }
}

fn dims4(l: &Layout, what: &str) -> Result<(usize, usize, usize, usize)> {
    match l.shape().dims() {
        &[a, b, c, d] => Ok((a, b, c, d)),
        d => bail!("conv2d: {what} has shape {d:?}, expected 4 dimensions"),
    }
}

/// The forward op on (x, weight), with an optional fused bias (a constant: no gradient) and ReLU.
#[derive(Debug, Clone)]
struct ConvOp {
    params: ConvParams,
    bias: Option<Arc<Vec<f32>>>,
    relu: bool,
    /// The weight's id when it is a constant (not a `Var`): its Winograd transform may be cached.
    weight_id: Option<candle_core::TensorId>,
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "radlens-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(dims4(l1, "input")?, dims4(l2, "weight")?, self.params)?;
        if let Some(b) = &self.bias {
            if b.len() != g.co {
                bail!("conv2d: bias of {} for {} output channels", b.len(), g.co)
            }
        }
        let x = contiguous_f32(s1, l1, "input")?;
        let w = contiguous_f32(s2, l2, "weight")?;
        let bias = self.bias.as_deref().map(|b| b.as_slice());
        let y = forward_any(&g, x, w, self.weight_id, bias, None, self.relu);
        Ok((CpuStorage::F32(y), (g.n, g.co, g.oh, g.ow).into()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = if self.relu { relu_grad(grad, res)? } else { grad.detach().contiguous()? };
        conv_backward(self.params, x, w, &grad)
    }
}

/// `grad` where the ReLU's output `res` is positive, else 0: the ReLU's backward in one pass.
fn relu_grad(grad: &Tensor, res: &Tensor) -> Result<Tensor> {
    let (grad, res) = (grad.detach().contiguous()?, res.detach().contiguous()?);
    if grad.dtype() == DType::F32 && res.dtype() == DType::F32 && grad.device().is_cpu() {
        grad.apply_op2_no_bwd(&res, &ReluGrad)
    } else {
        grad.mul(&res.gt(0f32)?.to_dtype(grad.dtype())?)
    }
}

/// `relu(a + b)` for two tensors of one shape (a residual block's tail when its BatchNorm is not
/// folded): on the CPU in f32 one parallel pass, and one masked pass backward shared by both inputs,
/// where the separate add and ReLU record two full-size tensors and candle's ReLU backward three more.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let fast =
        a.device().is_cpu() && a.dtype() == DType::F32 && b.dtype() == DType::F32 && a.dims() == b.dims();
    if !fast {
        return (a + b)?.relu();
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "radlens-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            bail!("add relu: shapes {:?} and {:?}", l1.shape(), l2.shape())
        }
        let a = contiguous_f32(s1, l1, "input")?;
        let b = contiguous_f32(s2, l2, "input")?;
        Ok((CpuStorage::F32(map2(a, b, |a, b| (a + b).max(0.0))), l1.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = relu_grad(grad, res)?;
        Ok((a.track_op().then(|| g.clone()), b.track_op().then_some(g)))
    }
}

/// `f(a[i], b[i])` for two slices of one length, in parallel chunks.
fn map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0f32; a.len()];
    out.par_chunks_mut(1 << 16).zip(a.par_chunks(1 << 16).zip(b.par_chunks(1 << 16))).for_each(
        |(o, (a, b))| {
            for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                *o = f(a, b);
            }
        },
    );
    out
}

/// (grad, relu output) → grad masked by output > 0.
struct ReluGrad;

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "radlens-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            bail!("relu backward: gradient {:?} for output {:?}", l1.shape(), l2.shape())
        }
        let g = contiguous_f32(s1, l1, "gradient")?;
        let y = contiguous_f32(s2, l2, "output")?;
        Ok((CpuStorage::F32(map2(g, y, |g, y| if y > 0.0 { g } else { 0.0 })), l1.shape().clone()))
    }
}

/// The input and weight gradients of a convolution given the gradient at its (pre-activation) output,
/// each only when that argument is tracked.
fn conv_backward(
    params: ConvParams,
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    {
        let dx = if x.track_op() {
            Some(grad.apply_op2_no_bwd(
                &w.detach().contiguous()?,
                &ConvBackwardInput { params, input: x.dims4()? },
            )?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(
                x.detach()
                    .contiguous()?
                    .apply_op2_no_bwd(grad, &ConvBackwardWeight { params, weight: w.dims4()? })?,
            )
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// The forward op on (x, weight, residual): `act(conv(x, w) + bias + residual)`, a ResNet block's last
/// convolution with its shortcut and ReLU in one pass. The graph then keeps one tensor where the
/// separate add and ReLU kept three, and the backward skips their two passes.
#[derive(Debug, Clone)]
struct ConvResidualOp {
    params: ConvParams,
    bias: Option<Arc<Vec<f32>>>,
    relu: bool,
    weight_id: Option<candle_core::TensorId>,
}

impl CustomOp3 for ConvResidualOp {
    fn name(&self) -> &'static str {
        "radlens-conv2d-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(dims4(l1, "input")?, dims4(l2, "weight")?, self.params)?;
        if dims4(l3, "residual")? != (g.n, g.co, g.oh, g.ow) {
            bail!("conv2d: residual {:?} for output {:?}", l3.shape(), (g.n, g.co, g.oh, g.ow))
        }
        if let Some(b) = &self.bias {
            if b.len() != g.co {
                bail!("conv2d: bias of {} for {} output channels", b.len(), g.co)
            }
        }
        let x = contiguous_f32(s1, l1, "input")?;
        let w = contiguous_f32(s2, l2, "weight")?;
        let r = contiguous_f32(s3, l3, "residual")?;
        let bias = self.bias.as_deref().map(|b| b.as_slice());
        let y = forward_any(&g, x, w, self.weight_id, bias, Some(r), self.relu);
        Ok((CpuStorage::F32(y), (g.n, g.co, g.oh, g.ow).into()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        r: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = if self.relu { relu_grad(grad, res)? } else { grad.detach().contiguous()? };
        let (dx, dw) = conv_backward(self.params, x, w, &grad)?;
        Ok((dx, dw, r.track_op().then_some(grad)))
    }
}

/// (dy, w) → dx.
struct ConvBackwardInput {
    params: ConvParams,
    input: (usize, usize, usize, usize),
}

impl CustomOp2 for ConvBackwardInput {
    fn name(&self) -> &'static str {
        "radlens-conv2d-backward-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(self.input, dims4(l2, "weight")?, self.params)?;
        if dims4(l1, "gradient")? != (g.n, g.co, g.oh, g.ow) {
            bail!("conv2d backward: gradient {:?} for output {:?}", l1.shape(), (g.n, g.co, g.oh, g.ow))
        }
        let dy = contiguous_f32(s1, l1, "gradient")?;
        let w = contiguous_f32(s2, l2, "weight")?;
        Ok((CpuStorage::F32(backward_input_f32(&g, dy, w)), self.input.into()))
    }
}

/// (x, dy) → dw.
struct ConvBackwardWeight {
    params: ConvParams,
    weight: (usize, usize, usize, usize),
}

impl CustomOp2 for ConvBackwardWeight {
    fn name(&self) -> &'static str {
        "radlens-conv2d-backward-weight"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geom::new(dims4(l1, "input")?, self.weight, self.params)?;
        if dims4(l2, "gradient")? != (g.n, g.co, g.oh, g.ow) {
            bail!("conv2d backward: gradient {:?} for output {:?}", l2.shape(), (g.n, g.co, g.oh, g.ow))
        }
        let x = contiguous_f32(s1, l1, "input")?;
        let dy = contiguous_f32(s2, l2, "gradient")?;
        Ok((CpuStorage::F32(backward_weight_f32(&g, x, dy)), self.weight.into()))
    }
}

/// `act(conv2d(x, weight) + bias)` for NCHW `x` and (out, in/groups, kh, kw) `weight`, as `F.conv2d`
/// (then `F.relu` when `relu`). On the CPU in f32 this is the fast op above, with the bias fused when
/// it is a constant (a tracked bias is added separately so that it receives its gradient); elsewhere
/// candle's own convolution.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: ConvParams,
    relu: bool,
) -> Result<Tensor> {
    let fast = x.device().is_cpu() && x.dtype() == DType::F32 && weight.dtype() == DType::F32;
    if !fast {
        return reference_conv2d(x, weight, bias, params, relu);
    }
    // Check the shapes here so that the error names the sizes before any op is recorded.
    Geom::new(x.dims4()?, weight.dims4()?, params)?;
    let fused_bias = match bias {
        Some(b) if !b.track_op() && b.dtype() == DType::F32 => {
            Some(Arc::new(b.flatten_all()?.to_vec1::<f32>()?))
        }
        _ => None,
    };
    let separate_bias = if fused_bias.is_none() { bias } else { None };
    let fuse_relu = relu && separate_bias.is_none();
    let op = ConvOp { params, bias: fused_bias, relu: fuse_relu, weight_id: constant_id(weight) };
    let mut y = x.contiguous()?.apply_op2(&weight.contiguous()?, op)?;
    if let Some(b) = separate_bias {
        y = super::channel::bias_add(&y, b)?;
    }
    if relu && !fuse_relu {
        y = y.relu()?;
    }
    Ok(y)
}

/// `act(conv2d(x, weight) + bias + residual)` (then ReLU when `relu`): a residual block's last
/// convolution, its shortcut and its ReLU. On the CPU in f32 with a constant (or no) bias this is one
/// fused op; otherwise the same composition of separate ops.
pub fn conv2d_add(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: ConvParams,
    residual: &Tensor,
    relu: bool,
) -> Result<Tensor> {
    let fast = x.device().is_cpu()
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && residual.dtype() == DType::F32
        && bias.is_none_or(|b| !b.track_op() && b.dtype() == DType::F32);
    if !fast {
        let y = conv2d(x, weight, bias, params, false)?;
        return if relu { add_relu(&y, residual) } else { y + residual };
    }
    let g = Geom::new(x.dims4()?, weight.dims4()?, params)?;
    if residual.dims4()? != (g.n, g.co, g.oh, g.ow) {
        bail!("conv2d: residual {:?} for output {:?}", residual.dims(), (g.n, g.co, g.oh, g.ow))
    }
    let bias = match bias {
        Some(b) => Some(Arc::new(b.flatten_all()?.to_vec1::<f32>()?)),
        None => None,
    };
    let op = ConvResidualOp { params, bias, relu, weight_id: constant_id(weight) };
    x.contiguous()?.apply_op3(&weight.contiguous()?, &residual.contiguous()?, op)
}

/// candle's convolution with the same arguments: the fallback off the CPU and the reference in tests.
/// A strided convolution whose height and width leave different remainders gets zero rows/columns at
/// the bottom/right (which only meet the kernel where padding was): candle 0.11's backward otherwise
/// fails with a shape mismatch.
pub fn reference_conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    params: ConvParams,
    relu: bool,
) -> Result<Tensor> {
    let (_, _, kh, kw) = weight.dims4()?;
    let (_, _, h, w) = x.dims4()?;
    let ConvParams { stride: s, padding: p, dilation: d, groups } = params;
    let mut x = x.clone();
    if s > 1 && h + 2 * p > d * (kh - 1) && w + 2 * p > d * (kw - 1) {
        let rem = |n: usize, k: usize| (n + 2 * p - d * (k - 1) - 1) % s;
        let (rh, rw) = (rem(h, kh), rem(w, kw));
        x = match rh.cmp(&rw) {
            std::cmp::Ordering::Equal => x,
            std::cmp::Ordering::Less => x.pad_with_zeros(2, 0, rw - rh)?,
            std::cmp::Ordering::Greater => x.pad_with_zeros(3, 0, rh - rw)?,
        };
    }
    let mut y = x.conv2d(weight, p, s, d, groups)?;
    if let Some(b) = bias {
        y = y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)?;
    }
    if relu {
        y = y.relu()?;
    }
    Ok(y)
}
