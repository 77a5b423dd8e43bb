//! Loading samples once, as 8-bit grey planes at the model's input size (the manifest's pipeline up to
//! normalisation), with their binary masks resized by nearest neighbour, or their class index.

use std::path::Path;

use crate::io::dataset::Sample;
use crate::io::raster::load_raster;
use crate::io::{load_study, LoadError, LoadOptions};
use crate::model::preprocess::{resize_bilinear, to_u8_grey};

/// One cached sample at `size × size`.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    /// Grey values 0..=255, `size²`, row-major.
    pub grey: Vec<f32>,
    /// 0/1 mask, `size²` (segmentation).
    pub mask: Option<Vec<f32>>,
    /// Class index (classification).
    pub label: Option<usize>,
}

fn load_plane(path: &Path) -> Result<(Vec<f32>, usize, usize, bool), LoadError> {
    let vol = load_volume(path)?;
    let [_, h, w] = vol.dims();
    let hu = vol.unit == crate::imaging::Unit::Hu;
    Ok((vol.into_data(), h, w, hu))
}

/// Nearest-neighbour resize of a plane (PyTorch's `floor(dst · in/out)` rule).
pub fn resize_nearest(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(oh * ow);
    for y in 0..oh {
        let sy = ((y as f64 * h as f64 / oh as f64) as usize).min(h - 1);
        for x in 0..ow {
            let sx = ((x as f64 * w as f64 / ow as f64) as usize).min(w - 1);
            out.push(src[sy * w + sx]);
        }
    }
    out
}

/// Loads one sample at `size²`. `window` is the manifest's (HU inputs); masks are binarised with
/// [`binarize`] then resized by nearest neighbour. `classes` maps the label to an index.
pub fn load_item(
    s: &Sample,
    size: usize,
    window: Option<crate::imaging::WindowLevel>,
    want_mask: bool,
    classes: &[String],
) -> Result<Item, LoadError> {
    let (img, h, w, hu) = load_plane(&s.image)?;
    let grey = resize_bilinear(&to_u8_grey(&img, hu, window), h, w, size, size);
    let mask = if want_mask {
        let mp = s.mask.as_ref().ok_or_else(|| LoadError::new(&s.image, "no mask found for this image"))?;
        let (m, mh, mw, _) = load_plane(mp)?;
        if (mh, mw) != (h, w) {
            return Err(LoadError::new(mp, format!("mask is {mw}x{mh} but its image is {w}x{h}")));
        }
        let bin = binarize(&m);
        Some(resize_nearest(&bin, h, w, size, size))
    } else {
        None
    };
    let label = match (&s.label, classes.is_empty()) {
        (Some(l), false) => Some(
            classes
                .iter()
                .position(|c| c == l)
                .ok_or_else(|| LoadError::new(&s.image, format!("label '{l}' is not one of the classes")))?,
        ),
        _ => None,
    };
    Ok(Item { id: s.id.clone(), grey, mask, label })
}

/// Loads a 2-D image (any format `radlens info` reads) as a one-slice volume.
pub fn load_volume(path: &Path) -> Result<crate::imaging::Volume, LoadError> {
    let vol = if crate::io::raster::is_raster_name(&crate::io::lower_name(path)) {
        load_raster(path)?
    } else {
        load_study(path, &LoadOptions::default())?.volume
    };
    if vol.dims()[0] != 1 {
        return Err(LoadError::new(path, format!("expected one 2-D image, found {} slices", vol.dims()[0])));
    }
    Ok(vol)
}

/// 0/1 foreground of a mask plane: 8-bit masks store 0/255 (JPEG noise aside), so foreground is above
/// 127.5 (above 0.5 for 0/1 masks).
pub fn binarize(m: &[f32]) -> Vec<f32> {
    let max = m.iter().cloned().fold(0.0f32, f32::max);
    let cut = if max > 1.0 { 127.5 } else { 0.5 };
    m.iter().map(|&v| if v > cut { 1.0 } else { 0.0 }).collect()
}
