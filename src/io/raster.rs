//! PNG, BMP, JPEG and TIFF images as one-slice volumes, and PNG writers for exports.
//!
//! A 2D image is a volume of dims [1, height, width] with 1 mm spacing marked `spacing_assumed` (plain
//! images carry no trustworthy pixel size), unit raw, modality "OT".
//!
//! Grey levels: 8- and 16-bit grey keep their stored values (0..=255, 0..=65535); an alpha channel is
//! ignored. Colour (RGB, RGBA, and palette images, whose palette image expands to RGB) becomes grey by the
//! ITU-R BT.601 luma weights, `0.299 R + 0.587 G + 0.114 B`, in the image's own scale and not rounded:
//! the weights sum to 1, so an image whose channels are equal keeps its grey values exactly.
//!
//! Spacing: PNG pHYs / TIFF resolution are deliberately not used. Export tools stamp 72 or 96 dpi on
//! everything, which would give a plausible-looking but false 0.35 mm pixel; 1 mm flagged as assumed is
//! honest. A multi-page TIFF gives its first page.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use super::{write_atomic, LoadError};
use crate::imaging::{Modality, Unit, Volume};

/// File names (lower-cased) this module reads.
pub fn is_raster_name(name: &str) -> bool {
    [".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff"].iter().any(|e| name.ends_with(e))
}

/// Largest width or height accepted, checked from the header before any pixel buffer exists.
const MAX_SIDE: u32 = 65_535;
/// Decoder working memory allowed (image's default is 512 MiB; 16-bit colour scans can exceed it).
const MAX_DECODE_BYTES: u64 = 2 << 30;

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "png",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Tiff => "tiff",
        _ => "image",
    }
}

/// Decodes `path` (PNG, BMP, JPEG or TIFF, recognised by content first, else by name), refusing absurd
/// dimensions from the header before allocating. Shared with the mask loader.
pub(crate) fn decode_image(path: &Path) -> Result<(DynamicImage, ImageFormat), LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| LoadError::io(path, e))?;
    if meta.len() == 0 {
        return Err(LoadError::new(path, "empty file"));
    }
    let reader = ImageReader::open(path)
        .map_err(|e| LoadError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| LoadError::io(path, e))?;
    let format = match reader.format() {
        Some(f @ (ImageFormat::Png | ImageFormat::Bmp | ImageFormat::Jpeg | ImageFormat::Tiff)) => f,
        Some(other) => {
            return Err(LoadError::new(
                path,
                format!("{other:?} images are not supported (PNG, BMP, JPEG or TIFF only)"),
            ))
        }
        None => return Err(LoadError::new(path, "not a PNG, BMP, JPEG or TIFF image")),
    };
    let name = format_name(format).to_ascii_uppercase();
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let decoder = reader
        .into_decoder()
        .map_err(|e| LoadError::new(path, format!("cannot read {name} header ({e})")))?;
    let (w, h) = decoder.dimensions();
    Volume::check_dims([1, h as usize, w as usize]).map_err(|e| LoadError::new(path, e.to_string()))?;
    let img = DynamicImage::from_decoder(decoder)
        .map_err(|e| LoadError::new(path, format!("cannot decode {name} image ({e})")))?;
    Ok((img, format))
}

/// BT.601 luma of one pixel, in the channels' own scale.
pub(crate) fn luma(r: f64, g: f64, b: f64) -> f32 {
    (0.299 * r + 0.587 * g + 0.114 * b) as f32
}

/// Grey values of a decoded image, row-major (see the module docs for the rules).
fn grey_values(img: &DynamicImage) -> Vec<f32> {
    match img {
        DynamicImage::ImageLuma8(b) => b.as_raw().iter().map(|&v| v as f32).collect(),
        DynamicImage::ImageLumaA8(b) => b.as_raw().chunks_exact(2).map(|p| p[0] as f32).collect(),
        DynamicImage::ImageLuma16(b) => b.as_raw().iter().map(|&v| v as f32).collect(),
        DynamicImage::ImageLumaA16(b) => b.as_raw().chunks_exact(2).map(|p| p[0] as f32).collect(),
        DynamicImage::ImageRgb8(b) => rgb_luma(b.as_raw(), 3),
        DynamicImage::ImageRgba8(b) => rgb_luma(b.as_raw(), 4),
        DynamicImage::ImageRgb16(b) => rgb_luma(b.as_raw(), 3),
        DynamicImage::ImageRgba16(b) => rgb_luma(b.as_raw(), 4),
        DynamicImage::ImageRgb32F(b) => rgb_luma(b.as_raw(), 3),
        DynamicImage::ImageRgba32F(b) => rgb_luma(b.as_raw(), 4),
        other => rgb_luma(other.to_rgb32f().as_raw(), 3),
    }
}

fn rgb_luma<T: Copy + Into<f64>>(raw: &[T], channels: usize) -> Vec<f32> {
    raw.chunks_exact(channels).map(|p| luma(p[0].into(), p[1].into(), p[2].into())).collect()
}

/// Loads a PNG, BMP, JPEG or TIFF image as a [1, h, w] volume of grey values.
pub fn load_raster(path: &Path) -> Result<Volume, LoadError> {
    let (img, format) = decode_image(path)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let grey = grey_values(&img);
    drop(img);
    let mut v = Volume::new(grey, [1, h, w], [1.0; 3]).map_err(|e| LoadError::new(path, e.to_string()))?;
    v.spacing_assumed = true;
    v.unit = Unit::Raw;
    v.modality = Modality::Other("OT".into());
    v.meta.source_format = format_name(format).into();
    Ok(v)
}

fn write_png(
    path: &Path,
    width: u32,
    height: u32,
    pixels: &[u8],
    colour: image::ExtendedColorType,
) -> Result<(), LoadError> {
    let channels = if colour == image::ExtendedColorType::Rgb8 { 3 } else { 1 };
    let expected = width as usize * height as usize * channels;
    if pixels.len() != expected || expected == 0 {
        return Err(LoadError::new(
            path,
            format!("{} bytes given for a {width} x {height} image with {channels} channel(s)", pixels.len()),
        ));
    }
    write_atomic(path, |w| {
        use image::ImageEncoder;
        image::codecs::png::PngEncoder::new(w)
            .write_image(pixels, width, height, colour)
            .map_err(std::io::Error::other)
    })
}

/// Writes an 8-bit grey PNG (`grey` row-major, `width * height` bytes), atomically.
pub fn write_png_u8(path: &Path, width: u32, height: u32, grey: &[u8]) -> Result<(), LoadError> {
    write_png(path, width, height, grey, image::ExtendedColorType::L8)
}

/// Writes an 8-bit RGB PNG (`rgb` row-major R, G, B, `3 * width * height` bytes), atomically.
pub fn write_png_rgb(path: &Path, width: u32, height: u32, rgb: &[u8]) -> Result<(), LoadError> {
    write_png(path, width, height, rgb, image::ExtendedColorType::Rgb8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_png_round_trip_and_luma_weights() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.png");
        let px: Vec<u8> = (0..12).map(|i| i * 20).collect();
        write_png_u8(&p, 4, 3, &px).unwrap();
        let v = load_raster(&p).unwrap();
        assert_eq!(v.dims(), [1, 3, 4]);
        assert_eq!(v.data(), px.iter().map(|&b| b as f32).collect::<Vec<_>>().as_slice());
        let q = dir.path().join("c.png");
        write_png_rgb(&q, 2, 1, &[255, 0, 0, 10, 10, 10]).unwrap();
        let c = load_raster(&q).unwrap();
        assert!((c.data()[0] - 76.245).abs() < 1e-3);
        assert_eq!(c.data()[1], 10.0);
        assert!(write_png_u8(&p, 4, 4, &px).is_err());
    }
}
