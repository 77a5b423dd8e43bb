//! Masks: binary and label PNG/BMP/TIFF, palette (index) PNG, NIfTI label maps.
//!
//! How stored values become labels (0 = background):
//! - **Palette PNG** (mode P): the palette *index* is the label, never the colour — COVID-SemiSeg's
//!   multi-class masks store GGO as index 1 (dark red) and consolidation as index 2 (dark green).
//!   Read with the `png` crate untransformed, since `image` expands palettes to RGB.
//! - **Grey** (any bit depth; also colour images whose three channels are equal everywhere):
//!   values all in {0, 255} (or {0, 65535} at 16 bits) → binary, the bright value becoming 1;
//!   otherwise values all below 128 → small integer labels, kept as they are ({0,1}, {0..k});
//!   otherwise (e.g. a JPEG-smoothed mask with many grey levels) → thresholded: half of full scale
//!   (128, or 32768 at 16 bits) and above is 1. The threshold is silent: no warning channel exists here,
//!   so callers that care compare `present_labels()` with what they expect.
//! - **Colour** (RGB/RGBA with any channel differing): any non-black pixel is 1.
//! - **NIfTI** (`.nii`, `.nii.gz`): [`load_nifti_labels`], in the same display orientation as the image.

use std::io::BufReader;
use std::path::Path;

use image::DynamicImage;

use super::nifti::load_nifti_labels;
use super::raster::decode_image;
use super::LoadError;
use crate::imaging::{Mask, Volume};

/// Loads a mask or label map (see the module docs for how values become labels).
pub fn load_mask(path: &Path) -> Result<Mask, LoadError> {
    let name = super::lower_name(path);
    if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        return load_nifti_labels(path);
    }
    if has_png_signature(path) {
        return load_png_mask(path);
    }
    let (img, _) = decode_image(path)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let labels = match img {
        DynamicImage::ImageLuma8(b) => grey_labels(b.into_raw().into_iter().map(u16::from).collect(), 8),
        DynamicImage::ImageLumaA8(b) => {
            grey_labels(b.as_raw().chunks_exact(2).map(|p| p[0] as u16).collect(), 8)
        }
        DynamicImage::ImageLuma16(b) => grey_labels(b.into_raw(), 16),
        DynamicImage::ImageLumaA16(b) => grey_labels(b.as_raw().chunks_exact(2).map(|p| p[0]).collect(), 16),
        DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgba16(_) => {
            let rgb = img.to_rgb16();
            colour_labels(rgb.as_raw(), 3, 16)
        }
        other => {
            let rgb = other.to_rgb8();
            let raw: Vec<u16> = rgb.as_raw().iter().map(|&v| v as u16).collect();
            colour_labels(&raw, 3, 8)
        }
    };
    Mask::new(labels, [1, h, w])
        .ok_or_else(|| LoadError::new(path, "mask size does not match its dimensions"))
}

/// Loads a mask and checks it lies on `volume`'s grid.
pub fn load_mask_for(path: &Path, volume: &Volume) -> Result<Mask, LoadError> {
    let mask = load_mask(path)?;
    check_mask_grid(&mask, volume, path)?;
    Ok(mask)
}

/// A mask must have exactly its image's grid; anything else is an error naming the mask file.
pub fn check_mask_grid(mask: &Mask, volume: &Volume, mask_path: &Path) -> Result<(), LoadError> {
    let [mz, my, mx] = mask.dims();
    let [vz, vy, vx] = volume.dims();
    if [mz, my, mx] == [vz, vy, vx] {
        return Ok(());
    }
    let reason = if mz == 1 && vz == 1 {
        format!("mask is {mx} x {my} but the image is {vx} x {vy} (width x height)")
    } else {
        format!("mask is {mx} x {my} x {mz} but the image is {vx} x {vy} x {vz} (x by y by z)")
    };
    Err(LoadError::new(mask_path, reason))
}

fn has_png_signature(path: &Path) -> bool {
    use std::io::Read;
    let mut sig = [0u8; 8];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut sig)).is_ok() && sig == *b"\x89PNG\r\n\x1a\n"
}

/// Grey values → labels, by the rules in the module docs.
fn grey_labels(values: Vec<u16>, bits: u32) -> Vec<u16> {
    let full: u16 = if bits == 16 { u16::MAX } else { (1u32 << bits) as u16 - 1 };
    let mut seen = [false; 256];
    let mut wide = false;
    for &v in &values {
        if v < 256 {
            seen[v as usize] = true;
        } else {
            wide = true;
        }
    }
    let only_zero_and_full = values.iter().all(|&v| v == 0 || v == full);
    if full > 1 && only_zero_and_full {
        return values.into_iter().map(|v| (v == full) as u16).collect();
    }
    if !wide && seen[128..].iter().all(|s| !s) {
        return values; // small integer labels
    }
    let half = full / 2 + 1;
    values.into_iter().map(|v| (v >= half) as u16).collect()
}

/// Colour masks: grey when every pixel has equal channels, else any non-black pixel is 1.
fn colour_labels(raw: &[u16], channels: usize, bits: u32) -> Vec<u16> {
    let is_grey = raw.chunks_exact(channels).all(|p| p[0] == p[1] && p[1] == p[2]);
    if is_grey {
        grey_labels(raw.chunks_exact(channels).map(|p| p[0]).collect(), bits)
    } else {
        raw.chunks_exact(channels).map(|p| (p[0] | p[1] | p[2] != 0) as u16).collect()
    }
}

fn load_png_mask(path: &Path) -> Result<Mask, LoadError> {
    let file = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
    let mut decoder = png::Decoder::new_with_limits(BufReader::new(file), png::Limits { bytes: 2 << 30 });
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader =
        decoder.read_info().map_err(|e| LoadError::new(path, format!("cannot read PNG header ({e})")))?;
    let (w, h) = (reader.info().width as usize, reader.info().height as usize);
    Volume::check_dims([1, h, w]).map_err(|e| LoadError::new(path, e.to_string()))?;
    let size = reader.output_buffer_size().ok_or_else(|| LoadError::new(path, "PNG image is too large"))?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(size).map_err(|_| LoadError::new(path, "PNG image is too large"))?;
    buf.resize(size, 0);
    let out = reader
        .next_frame(&mut buf)
        .map_err(|e| LoadError::new(path, format!("cannot decode PNG image ({e})")))?;
    let (colour, depth) = (out.color_type, out.bit_depth);
    let bits = depth as u8 as u32;
    let line = out.line_size;
    // Samples per row, unpacked (1/2/4-bit rows are packed MSB first and padded to whole bytes).
    let samples = |row: &[u8], n: usize| -> Vec<u16> {
        match bits {
            16 => row.chunks_exact(2).take(n).map(|c| u16::from_be_bytes([c[0], c[1]])).collect(),
            8 => row[..n].iter().map(|&v| v as u16).collect(),
            b => {
                let per_byte = (8 / b) as usize;
                let mask = (1u16 << b) - 1;
                (0..n)
                    .map(|i| ((row[i / per_byte] as u16) >> (8 - b as usize * (i % per_byte + 1))) & mask)
                    .collect()
            }
        }
    };
    let channels = colour.samples();
    let mut all = Vec::with_capacity(w * h * channels);
    for y in 0..h {
        all.extend(samples(&buf[y * line..(y + 1) * line], w * channels));
    }
    let labels = match colour {
        png::ColorType::Indexed => all,
        png::ColorType::Grayscale => grey_labels(all, bits),
        png::ColorType::GrayscaleAlpha => grey_labels(all.chunks_exact(2).map(|p| p[0]).collect(), bits),
        png::ColorType::Rgb => colour_labels(&all, 3, bits),
        png::ColorType::Rgba => colour_labels(&all, 4, bits),
    };
    Mask::new(labels, [1, h, w])
        .ok_or_else(|| LoadError::new(path, "mask size does not match its dimensions"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_rules() {
        assert_eq!(grey_labels(vec![0, 255, 255, 0], 8), vec![0, 1, 1, 0]);
        assert_eq!(grey_labels(vec![0, 1, 2, 3], 8), vec![0, 1, 2, 3]);
        assert_eq!(grey_labels(vec![0, 127, 128, 250], 8), vec![0, 0, 1, 1]);
        assert_eq!(grey_labels(vec![0, 65535], 16), vec![0, 1]);
        assert_eq!(grey_labels(vec![0, 1], 1), vec![0, 1]);
        assert_eq!(colour_labels(&[0, 0, 0, 9, 0, 0], 3, 8), vec![0, 1]);
        assert_eq!(colour_labels(&[0, 0, 0, 255, 255, 255], 3, 8), vec![0, 1]);
    }
}
