//! NIfTI-1 volumes and label maps (`.nii`, `.nii.gz`), read and written.
//!
//! # Display convention
//! Every loader hands out the convention DICOM volumes use: array (z, y, x) with x towards the patient's
//! Left, y towards Posterior, z towards Superior, and [`Affine`] in LPS millimetres. NIfTI stores world
//! coordinates in RAS, so the LPS affine is the RAS one with its first two rows negated. The voxels are
//! brought to LPS by permuting and flipping axes only: each index axis goes to the world axis its
//! direction is closest to (the permutation with the largest total |cosine|), so an oblique volume keeps
//! its voxels unresampled and its true (oblique) affine.
//!
//! # Geometry
//! sform if `sform_code > 0`, else qform (quaternion) if `qform_code > 0`, else none: a file with neither
//! has no defined orientation, so its array order is kept as stored, `affine` is `None`, and spacing comes
//! from `pixdim` (1 mm, `spacing_assumed`, when that is unusable).
//!
//! # Why our own header code
//! The `nifti` crate reads the whole voxel block before a caller can vet the dimensions, needs nalgebra
//! for its affines (and panics on a negative pixdim), and writes only to paths, not through
//! [`write_atomic`]. The NIfTI-1 header is a fixed 348-byte record; reading and writing it explicitly
//! (byte offsets in `header_offset` below) is short and lets every bad file become one [`LoadError`].

use std::io::{Read, Write};
use std::path::Path;

use super::{write_atomic, LoadError};
use crate::imaging::{Affine, Mask, Modality, Unit, Volume};

/// NIfTI-1 header byte offsets (all fields little- or big-endian as `sizeof_hdr` reveals).
#[allow(dead_code)]
mod header_offset {
    pub const SIZEOF_HDR: usize = 0; // i32 = 348
    pub const DIM_INFO: usize = 39; // u8
    pub const DIM: usize = 40; // i16[8]
    pub const INTENT_CODE: usize = 68; // i16
    pub const DATATYPE: usize = 70; // i16
    pub const BITPIX: usize = 72; // i16
    pub const PIXDIM: usize = 76; // f32[8], pixdim[0] = qfac
    pub const VOX_OFFSET: usize = 108; // f32
    pub const SCL_SLOPE: usize = 112; // f32
    pub const SCL_INTER: usize = 116; // f32
    pub const XYZT_UNITS: usize = 123; // u8
    pub const DESCRIP: usize = 148; // char[80]
    pub const QFORM_CODE: usize = 252; // i16
    pub const SFORM_CODE: usize = 254; // i16
    pub const QUATERN_B: usize = 256; // f32 b, c, d, then qoffset x, y, z
    pub const SROW_X: usize = 280; // f32[4], then srow_y at 296, srow_z at 312
    pub const MAGIC: usize = 344; // "n+1\0" (single file) or "ni1\0" (header/image pair)
    pub const SIZE: usize = 348;
}
use header_offset as H;

/// Bytes before the voxels in the files we write: header plus the 4-byte "no extensions" flag.
const WRITE_VOX_OFFSET: usize = 352;

/// Headers claiming more dimensions than these are refused before any allocation.
const MAX_DIMS: usize = 7;

struct Header {
    big_endian: bool,
    dims: [usize; 3],
    datatype: i16,
    pixdim: [f32; 8],
    vox_offset: usize,
    slope: f64,
    inter: f64,
    xyzt_units: u8,
    intent_code: i16,
    qform_code: i16,
    sform_code: i16,
    quatern: [f32; 6],
    srow: [[f32; 4]; 3],
    descrip: String,
}

struct Raw<'a> {
    b: &'a [u8],
    big: bool,
}

impl Raw<'_> {
    fn i16(&self, at: usize) -> i16 {
        let v = [self.b[at], self.b[at + 1]];
        if self.big {
            i16::from_be_bytes(v)
        } else {
            i16::from_le_bytes(v)
        }
    }
    fn i32(&self, at: usize) -> i32 {
        let v = [self.b[at], self.b[at + 1], self.b[at + 2], self.b[at + 3]];
        if self.big {
            i32::from_be_bytes(v)
        } else {
            i32::from_le_bytes(v)
        }
    }
    fn f32(&self, at: usize) -> f32 {
        f32::from_bits(self.i32(at) as u32)
    }
}

fn parse_header(path: &Path, b: &[u8; H::SIZE]) -> Result<Header, LoadError> {
    let le = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let be = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let big = match (le, be) {
        (348, _) => false,
        (_, 348) => true,
        (540, _) | (_, 540) => {
            return Err(LoadError::new(path, "NIfTI-2 files are not supported (only NIfTI-1)"))
        }
        _ => return Err(LoadError::new(path, "not a NIfTI-1 file (header size is not 348)")),
    };
    let r = Raw { b, big };
    match &b[H::MAGIC..H::MAGIC + 4] {
        b"n+1\0" => {}
        b"ni1\0" => {
            return Err(LoadError::new(
                path,
                "NIfTI header/image pairs (.hdr/.img) are not supported; use a single .nii",
            ))
        }
        _ => return Err(LoadError::new(path, "not a NIfTI-1 file (bad magic)")),
    }
    let ndim = r.i16(H::DIM);
    if !(1..=MAX_DIMS as i16).contains(&ndim) {
        return Err(LoadError::new(path, format!("NIfTI header gives {ndim} dimensions (must be 1 to 7)")));
    }
    let mut all = [1usize; 7];
    for (i, d) in all.iter_mut().enumerate().take(ndim as usize) {
        let v = r.i16(H::DIM + 2 * (i + 1));
        if v < 1 {
            return Err(LoadError::new(path, format!("NIfTI dimension {} is {v}", i + 1)));
        }
        *d = v as usize;
    }
    if all[3..].iter().any(|&d| d > 1) {
        return Err(LoadError::new(
            path,
            format!(
                "NIfTI image has {} volumes (dims {:?}); only 3D images (or 4D with one volume) are supported",
                all[3..].iter().product::<usize>(),
                &all[..ndim as usize]
            ),
        ));
    }
    let mut pixdim = [0f32; 8];
    for (i, p) in pixdim.iter_mut().enumerate() {
        *p = r.f32(H::PIXDIM + 4 * i);
    }
    let vox = r.f32(H::VOX_OFFSET);
    if !vox.is_finite() || vox < H::SIZE as f32 {
        return Err(LoadError::new(path, format!("NIfTI vox_offset {vox} lies inside the header")));
    }
    let slope = r.f32(H::SCL_SLOPE) as f64;
    let inter = r.f32(H::SCL_INTER) as f64;
    // NIfTI: slope 0 means "no scaling"; nibabel reads NaN the same way.
    let (slope, inter) = if slope == 0.0 || !slope.is_finite() {
        (1.0, 0.0)
    } else {
        (slope, if inter.is_finite() { inter } else { 0.0 })
    };
    let mut quatern = [0f32; 6];
    for (i, q) in quatern.iter_mut().enumerate() {
        *q = r.f32(H::QUATERN_B + 4 * i);
    }
    let mut srow = [[0f32; 4]; 3];
    for (row, s) in srow.iter_mut().enumerate() {
        for (c, v) in s.iter_mut().enumerate() {
            *v = r.f32(H::SROW_X + 16 * row + 4 * c);
        }
    }
    Ok(Header {
        big_endian: big,
        dims: [all[0], all[1], all[2]],
        datatype: r.i16(H::DATATYPE),
        pixdim,
        vox_offset: vox as usize,
        slope,
        inter,
        xyzt_units: b[H::XYZT_UNITS],
        intent_code: r.i16(H::INTENT_CODE),
        qform_code: r.i16(H::QFORM_CODE),
        sform_code: r.i16(H::SFORM_CODE),
        quatern,
        srow,
        descrip: {
            let d = &b[H::DESCRIP..H::DESCRIP + 80];
            String::from_utf8_lossy(&d[..d.iter().position(|&c| c == 0).unwrap_or(80)]).into_owned()
        },
    })
}

/// (type name, bytes per voxel) of the datatypes we read.
fn datatype_info(code: i16) -> Option<(&'static str, usize)> {
    Some(match code {
        2 => ("uint8", 1),
        4 => ("int16", 2),
        8 => ("int32", 4),
        16 => ("float32", 4),
        64 => ("float64", 8),
        256 => ("int8", 1),
        512 => ("uint16", 2),
        768 => ("uint32", 4),
        1024 => ("int64", 8),
        1280 => ("uint64", 8),
        _ => return None,
    })
}

/// Opens `path`, transparently un-gzipping (by content, not name: a `.nii.gz` that is not gzip is caught).
fn open_stream(path: &Path) -> Result<Box<dyn Read>, LoadError> {
    let mut f = std::fs::File::open(path).map_err(|e| LoadError::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = read_full(&mut f, &mut magic).map_err(|e| LoadError::io(path, e))?;
    if n == 0 {
        return Err(LoadError::new(path, "empty file"));
    }
    let gz_name = super::lower_name(path).ends_with(".gz");
    let is_gz = n == 2 && magic == [0x1f, 0x8b];
    if gz_name && !is_gz {
        return Err(LoadError::new(path, "named .gz but not gzip-compressed"));
    }
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let chained = head.chain(f);
    Ok(if is_gz {
        Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(chained)))
    } else {
        Box::new(std::io::BufReader::new(chained))
    })
}

/// Like `read_exact`, but reports how much it got instead of failing at end of file.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn stream_err(path: &Path, e: std::io::Error) -> LoadError {
    LoadError::new(path, format!("cannot read NIfTI data ({e})"))
}

/// Header and scaled voxel values (NIfTI order: i fastest, then j, then k).
fn read_nifti_f32(path: &Path) -> Result<(Header, Vec<f32>), LoadError> {
    let mut s = open_stream(path)?;
    let mut hb = [0u8; H::SIZE];
    let n = read_full(&mut s, &mut hb).map_err(|e| stream_err(path, e))?;
    if n == 0 {
        return Err(LoadError::new(path, "empty file"));
    }
    if n < H::SIZE {
        return Err(LoadError::new(path, format!("file ends inside the NIfTI header ({n} of 348 bytes)")));
    }
    let h = parse_header(path, &hb)?;
    let [nx, ny, nz] = h.dims;
    Volume::check_dims([nz, ny, nx]).map_err(|e| LoadError::new(path, e.to_string()))?;
    let Some((type_name, bpv)) = datatype_info(h.datatype) else {
        return Err(LoadError::new(path, format!("unsupported NIfTI datatype code {}", h.datatype)));
    };
    let count = nx * ny * nz;
    // Skip extensions up to vox_offset.
    let skip = (h.vox_offset - H::SIZE) as u64;
    let skipped =
        std::io::copy(&mut (&mut s).take(skip), &mut std::io::sink()).map_err(|e| stream_err(path, e))?;
    if skipped < skip {
        return Err(LoadError::new(path, "file ends before the voxel data (vox_offset)"));
    }
    let want = count * bpv;
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(want)
        .map_err(|_| LoadError::new(path, format!("cannot allocate {want} bytes")))?;
    (&mut s).take(want as u64).read_to_end(&mut bytes).map_err(|e| stream_err(path, e))?;
    if bytes.len() < want {
        return Err(LoadError::new(
            path,
            format!("file is truncated: {} of {want} bytes of {type_name} voxel data", bytes.len()),
        ));
    }
    let big = h.big_endian;
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            bytes
                .chunks_exact($n)
                .map(|c| {
                    let a: [u8; $n] = c.try_into().expect("chunk size");
                    let v = if big { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) };
                    (v as f64 * h.slope + h.inter) as f32
                })
                .collect::<Vec<f32>>()
        };
    }
    let data = match h.datatype {
        2 => bytes.iter().map(|&v| (v as f64 * h.slope + h.inter) as f32).collect(),
        256 => bytes.iter().map(|&v| (v as i8 as f64 * h.slope + h.inter) as f32).collect(),
        4 => conv!(i16, 2),
        512 => conv!(u16, 2),
        8 => conv!(i32, 4),
        768 => conv!(u32, 4),
        16 => conv!(f32, 4),
        64 => conv!(f64, 8),
        1024 => conv!(i64, 8),
        1280 => conv!(u64, 8),
        _ => unreachable!("datatype_info vetted the code"),
    };
    Ok((h, data))
}

/// Millimetres per header spatial unit (xyzt_units bits 0-2: 1 metre, 2 mm, 3 micron, 0 unknown = mm).
fn unit_to_mm(xyzt_units: u8) -> f64 {
    match xyzt_units & 0x07 {
        1 => 1000.0,
        3 => 0.001,
        _ => 1.0,
    }
}

/// The voxel→RAS affine as 3 columns (index axes i, j, k) and an origin, from sform or qform.
fn ras_affine(h: &Header) -> Option<([[f64; 3]; 3], [f64; 3])> {
    let mm = unit_to_mm(h.xyzt_units);
    let finite =
        |cols: &[[f64; 3]; 3], o: &[f64; 3]| cols.iter().flatten().chain(o.iter()).all(|v| v.is_finite());
    if h.sform_code > 0 {
        let mut cols = [[0f64; 3]; 3];
        let mut o = [0f64; 3];
        for r in 0..3 {
            for (c, col) in cols.iter_mut().enumerate() {
                col[r] = h.srow[r][c] as f64 * mm;
            }
            o[r] = h.srow[r][3] as f64 * mm;
        }
        if finite(&cols, &o) && det3(&cols).abs() > 1e-12 {
            return Some((cols, o));
        }
    }
    if h.qform_code > 0 {
        let [b, c, d, qx, qy, qz] = h.quatern.map(|v| v as f64);
        let a2 = 1.0 - (b * b + c * c + d * d);
        let (a, b, c, d) = if a2 > 1e-7 {
            (a2.sqrt(), b, c, d)
        } else {
            // Not quite a unit quaternion: a = 0 and (b, c, d) renormalised, as nifti1_io does.
            let n = (b * b + c * c + d * d).sqrt();
            (0.0, b / n, c / n, d / n)
        };
        let rot = [
            [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
            [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
            [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ];
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        // As nifti1_io: a non-positive (or unusable) pixdim counts as 1.
        let step = |p: f32| if p.is_finite() && p > 0.0 { p as f64 } else { 1.0 };
        let scale = [step(h.pixdim[1]), step(h.pixdim[2]), step(h.pixdim[3]) * qfac];
        let mut cols = [[0f64; 3]; 3];
        for (k, col) in cols.iter_mut().enumerate() {
            for r in 0..3 {
                col[r] = rot[r][k] * scale[k] * mm;
            }
        }
        let o = [qx * mm, qy * mm, qz * mm];
        if finite(&cols, &o) && det3(&cols).abs() > 1e-12 {
            return Some((cols, o));
        }
    }
    None
}

fn det3(c: &[[f64; 3]; 3]) -> f64 {
    c[0][0] * (c[1][1] * c[2][2] - c[1][2] * c[2][1]) - c[1][0] * (c[0][1] * c[2][2] - c[0][2] * c[2][1])
        + c[2][0] * (c[0][1] * c[1][2] - c[0][2] * c[1][1])
}

fn norm(v: &[f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

/// How stored axes map to display axes: display axis w (x, y, z) is stored axis `src[w]`, reversed when
/// `flip[w]`.
struct Reorient {
    src: [usize; 3],
    flip: [bool; 3],
}

/// Geometry of a NIfTI file in display convention.
struct Geometry {
    reorient: Reorient,
    affine: Option<Affine>,
    /// (z, y, x)
    spacing_mm: [f64; 3],
    spacing_assumed: bool,
}

fn geometry(h: &Header) -> Geometry {
    let Some((cols_ras, o_ras)) = ras_affine(h) else {
        let mm = unit_to_mm(h.xyzt_units);
        let p = [h.pixdim[1], h.pixdim[2], h.pixdim[3]].map(|v| (v as f64).abs() * mm);
        let ok = p.iter().all(|v| v.is_finite() && *v > 0.0);
        return Geometry {
            reorient: Reorient { src: [0, 1, 2], flip: [false; 3] },
            affine: None,
            spacing_mm: if ok { [p[2], p[1], p[0]] } else { [1.0; 3] },
            spacing_assumed: !ok,
        };
    };
    let to_lps = |v: [f64; 3]| [-v[0], -v[1], v[2]];
    let cols = cols_ras.map(to_lps);
    let origin = to_lps(o_ras);
    // Best permutation: world axis w takes stored axis perm[w]; maximise the summed |cosine|.
    const PERMS: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    let cosine = |a: usize, w: usize| cols[a][w] / norm(&cols[a]);
    let src = PERMS
        .iter()
        .copied()
        .max_by(|p, q| {
            let score = |p: &[usize; 3]| (0..3).map(|w| cosine(p[w], w).abs()).sum::<f64>();
            score(p).total_cmp(&score(q))
        })
        .expect("six permutations");
    let flip = [0, 1, 2].map(|w| cosine(src[w], w) < 0.0);
    let n = h.dims;
    let mut axes = [[0f64; 3]; 3];
    let mut o = origin;
    for w in 0..3 {
        let col = cols[src[w]];
        if flip[w] {
            let steps = (n[src[w]] - 1) as f64;
            for k in 0..3 {
                o[k] += col[k] * steps;
            }
            axes[w] = col.map(|v| -v);
        } else {
            axes[w] = col;
        }
    }
    Geometry {
        reorient: Reorient { src, flip },
        affine: Some(Affine { origin_lps: o, axes_lps: axes }),
        spacing_mm: [norm(&axes[2]), norm(&axes[1]), norm(&axes[0])],
        spacing_assumed: false,
    }
}

/// Stored (i fastest) → display (z, y, x) order.
fn reorient<T: Copy>(data: Vec<T>, dims: [usize; 3], r: &Reorient) -> (Vec<T>, [usize; 3]) {
    if r.src == [0, 1, 2] && r.flip == [false; 3] {
        // Already LPS-aligned (as DICOM-derived files usually are): no second copy of a large volume.
        return (data, [dims[2], dims[1], dims[0]]);
    }
    let out_n = [dims[r.src[0]], dims[r.src[1]], dims[r.src[2]]]; // display (x, y, z) sizes
    let stride = [1, dims[0], dims[0] * dims[1]];
    // Per display axis: start offset and step in the stored buffer.
    let mut start = 0usize;
    let mut step = [0isize; 3];
    for w in 0..3 {
        let s = stride[r.src[w]] as isize;
        if r.flip[w] {
            start += (out_n[w] - 1) * stride[r.src[w]];
            step[w] = -s;
        } else {
            step[w] = s;
        }
    }
    let mut out = Vec::with_capacity(data.len());
    for z in 0..out_n[2] {
        let bz = start as isize + z as isize * step[2];
        for y in 0..out_n[1] {
            let by = bz + y as isize * step[1];
            out.extend((0..out_n[0]).map(|x| data[(by + x as isize * step[0]) as usize]));
        }
    }
    (out, [out_n[2], out_n[1], out_n[0]])
}

/// NIfTI intent codes that say "these voxels are labels", not intensities.
const NIFTI_INTENT_LABEL: i16 = 1002;

/// Loads a `.nii` / `.nii.gz` into display orientation (see the module docs).
///
/// Unit: NIfTI has no reliable "this is CT" field, so the unit is guessed from the values: `Unit::Hu`
/// (and modality CT) when the minimum lies in [-3100, -500] and the maximum in (0, 32767]: air at about
/// -1000 and the usual out-of-field fills (-1024, -2048, -3024) fit, MR and PET (non-negative) and
/// label maps do not. Anything else is `Unit::Raw`, modality "OT". Files radlens wrote say their unit in
/// the description ("radlens HU" / "radlens raw"), which then wins over the guess.
pub fn load_nifti(path: &Path) -> Result<Volume, LoadError> {
    let (h, data) = read_nifti_f32(path)?;
    let g = geometry(&h);
    let (data, dims) = reorient(data, h.dims, &g.reorient);
    let mut v = Volume::new(data, dims, g.spacing_mm).map_err(|e| LoadError::new(path, e.to_string()))?;
    v.affine = g.affine;
    v.spacing_assumed = g.spacing_assumed;
    let (lo, hi) = v.min_max();
    let looks_like_ct = (-3100.0..=-500.0).contains(&lo) && hi > 0.0 && hi <= 32767.0;
    let is_hu = match h.descrip.as_str() {
        "radlens HU" => true,
        "radlens raw" => false,
        _ => h.intent_code != NIFTI_INTENT_LABEL && looks_like_ct,
    };
    if is_hu {
        v.unit = Unit::Hu;
        v.modality = Modality::CT;
    } else {
        v.unit = Unit::Raw;
        v.modality = Modality::Other("OT".into());
    }
    v.meta.source_format = "nifti".into();
    Ok(v)
}

/// Loads a NIfTI label map, reoriented exactly as [`load_nifti`] reorients its image. Every value
/// (after scl_slope/scl_inter) must be an integer in 0..=65535.
pub fn load_nifti_labels(path: &Path) -> Result<Mask, LoadError> {
    let (h, data) = read_nifti_f32(path)?;
    let g = geometry(&h);
    let mut labels = Vec::new();
    labels
        .try_reserve_exact(data.len())
        .map_err(|_| LoadError::new(path, "cannot allocate the label map"))?;
    for (i, &v) in data.iter().enumerate() {
        if !(v.is_finite() && v >= 0.0 && v <= u16::MAX as f32 && v.fract() == 0.0) {
            return Err(LoadError::new(
                path,
                format!("label map voxel {i} is {v}: labels must be whole numbers from 0 to 65535"),
            ));
        }
        labels.push(v as u16);
    }
    let (labels, dims) = reorient(labels, h.dims, &g.reorient);
    Mask::new(labels, dims)
        .ok_or_else(|| LoadError::new(path, "label map size does not match its dimensions"))
}

/// Writes `volume` as float32 NIfTI-1 (`.nii`, or gzip when the name ends in `.gz`), atomically.
///
/// The display axes are written as stored axes (i = x, j = y, k = z), so sform and qform are both
/// `volume.affine` with LPS turned back into RAS; with no affine they describe the display convention
/// from the spacing alone (x to the Left, y Posterior, z Superior, origin 0), so other viewers show it
/// the same way round. Reading the file back gives the same voxels and (that) affine.
pub fn write_nifti(path: &Path, volume: &Volume) -> Result<(), LoadError> {
    let [z, y, x] = volume.dims();
    let header = build_header(path, [x, y, z], volume, 16, 32)?;
    let data = volume.data();
    write_nifti_bytes(path, &header, |w| {
        let mut buf = Vec::with_capacity(64 * 1024);
        for chunk in data.chunks(16 * 1024) {
            buf.clear();
            for v in chunk {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            w.write_all(&buf)?;
        }
        Ok(())
    })
}

/// Writes `mask` as a NIfTI-1 label map on the grid and geometry of `like` (uint8 when every label fits,
/// else uint16), atomically.
pub fn write_nifti_labels(path: &Path, mask: &Mask, like: &Volume) -> Result<(), LoadError> {
    if mask.dims() != like.dims() {
        let [mz, my, mx] = mask.dims();
        let [vz, vy, vx] = like.dims();
        return Err(LoadError::new(
            path,
            format!("mask is {mx} x {my} x {mz} but the volume is {vx} x {vy} x {vz} (x by y by z)"),
        ));
    }
    let [z, y, x] = mask.dims();
    let wide = mask.labels().iter().any(|&l| l > 255);
    let (code, bits) = if wide { (512, 16) } else { (2, 8) };
    let mut header = build_header(path, [x, y, z], like, code, bits)?;
    header[H::INTENT_CODE..H::INTENT_CODE + 2].copy_from_slice(&NIFTI_INTENT_LABEL.to_le_bytes());
    header[H::DESCRIP..H::DESCRIP + 80].fill(0);
    header[H::DESCRIP..H::DESCRIP + 14].copy_from_slice(b"radlens labels");
    let labels = mask.labels();
    write_nifti_bytes(path, &header, |w| {
        if wide {
            let bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
            w.write_all(&bytes)
        } else {
            let bytes: Vec<u8> = labels.iter().map(|&l| l as u8).collect();
            w.write_all(&bytes)
        }
    })
}

fn write_nifti_bytes(
    path: &Path,
    header: &[u8; WRITE_VOX_OFFSET],
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), LoadError> {
    let name = super::lower_name(path);
    if !(name.ends_with(".nii") || name.ends_with(".nii.gz")) {
        return Err(LoadError::new(path, "NIfTI output must be named .nii or .nii.gz"));
    }
    let gz = name.ends_with(".gz");
    write_atomic(path, |w| {
        if gz {
            let mut enc = flate2::write::GzEncoder::new(w, flate2::Compression::new(6));
            enc.write_all(header)?;
            body(&mut enc)?;
            enc.finish()?;
        } else {
            w.write_all(header)?;
            body(w)?;
        }
        Ok(())
    })
}

/// A little-endian NIfTI-1 header (plus the 4 zero extension bytes) for display-order voxels.
fn build_header(
    path: &Path,
    dims_xyz: [usize; 3],
    geometry: &Volume,
    datatype: i16,
    bitpix: i16,
) -> Result<[u8; WRITE_VOX_OFFSET], LoadError> {
    let mut b = [0u8; WRITE_VOX_OFFSET];
    let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    put(H::SIZEOF_HDR, &348i32.to_le_bytes());
    let mut dim = [1i16; 8];
    dim[0] = 3;
    for (k, &n) in dims_xyz.iter().enumerate() {
        dim[k + 1] = i16::try_from(n).map_err(|_| {
            LoadError::new(path, format!("dimension {n} is too large for NIfTI-1 (max 32767)"))
        })?;
    }
    for (i, d) in dim.iter().enumerate() {
        put(H::DIM + 2 * i, &d.to_le_bytes());
    }
    put(H::DATATYPE, &datatype.to_le_bytes());
    put(H::BITPIX, &bitpix.to_le_bytes());

    let affine = geometry.affine.unwrap_or_else(|| {
        let [sz, sy, sx] = geometry.spacing_mm;
        Affine { origin_lps: [0.0; 3], axes_lps: [[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, sz]] }
    });
    let to_ras = |v: [f64; 3]| [-v[0], -v[1], v[2]];
    let cols = affine.axes_lps.map(to_ras);
    let origin = to_ras(affine.origin_lps);
    let spacing = cols.map(|c| norm(&c));
    let (quat, qfac) = quaternion(&cols);
    let pixdim = [qfac as f32, spacing[0] as f32, spacing[1] as f32, spacing[2] as f32, 0.0, 0.0, 0.0, 0.0];
    for (i, p) in pixdim.iter().enumerate() {
        put(H::PIXDIM + 4 * i, &p.to_le_bytes());
    }
    put(H::VOX_OFFSET, &(WRITE_VOX_OFFSET as f32).to_le_bytes());
    put(H::SCL_SLOPE, &1f32.to_le_bytes());
    put(H::SCL_INTER, &0f32.to_le_bytes());
    b[H::XYZT_UNITS] = 2; // millimetres
                          // Read back by load_nifti, so the unit survives a round trip.
    let descrip = if geometry.unit == Unit::Hu { &b"radlens HU"[..] } else { &b"radlens raw"[..] };
    b[H::DESCRIP..H::DESCRIP + descrip.len()].copy_from_slice(descrip);
    let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    put(H::QFORM_CODE, &1i16.to_le_bytes()); // scanner anatomical
    put(H::SFORM_CODE, &1i16.to_le_bytes());
    let q = [quat[0], quat[1], quat[2], origin[0], origin[1], origin[2]];
    for (i, v) in q.iter().enumerate() {
        put(H::QUATERN_B + 4 * i, &(*v as f32).to_le_bytes());
    }
    for r in 0..3 {
        let row = [cols[0][r], cols[1][r], cols[2][r], origin[r]];
        for (c, v) in row.iter().enumerate() {
            put(H::SROW_X + 16 * r + 4 * c, &(*v as f32).to_le_bytes());
        }
    }
    put(H::MAGIC, b"n+1\0");
    Ok(b)
}

/// Quaternion (b, c, d) and qfac of the rotation in `cols` (index-axis columns), as nifti1_io's
/// `nifti_mat44_to_quatern` does: columns normalised, a negative determinant folded into qfac.
fn quaternion(cols: &[[f64; 3]; 3]) -> ([f64; 3], f64) {
    let mut u = cols.map(|c| {
        let n = norm(&c);
        if n > 0.0 {
            c.map(|v| v / n)
        } else {
            c
        }
    });
    let qfac = if det3(&u) < 0.0 {
        u[2] = u[2].map(|v| -v);
        -1.0
    } else {
        1.0
    };
    // r[row][col], col = index axis.
    let r = |row: usize, col: usize| u[col][row];
    let (r11, r12, r13) = (r(0, 0), r(0, 1), r(0, 2));
    let (r21, r22, r23) = (r(1, 0), r(1, 1), r(1, 2));
    let (r31, r32, r33) = (r(2, 0), r(2, 1), r(2, 2));
    let trace1 = r11 + r22 + r33 + 1.0;
    let (a, mut b, mut c, mut d);
    if trace1 > 0.5 {
        a = 0.5 * trace1.sqrt();
        b = 0.25 * (r32 - r23) / a;
        c = 0.25 * (r13 - r31) / a;
        d = 0.25 * (r21 - r12) / a;
    } else {
        let xd = 1.0 + r11 - (r22 + r33);
        let yd = 1.0 + r22 - (r11 + r33);
        let zd = 1.0 + r33 - (r11 + r22);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r12 + r21) / b;
            d = 0.25 * (r13 + r31) / b;
            a = 0.25 * (r32 - r23) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r12 + r21) / c;
            d = 0.25 * (r23 + r32) / c;
            a = 0.25 * (r13 - r31) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r13 + r31) / d;
            c = 0.25 * (r23 + r32) / d;
            a = 0.25 * (r21 - r12) / d;
        }
        if a < 0.0 {
            b = -b;
            c = -c;
            d = -d;
        }
    }
    ([b, c, d], qfac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume_with(axes_lps: [[f64; 3]; 3], origin: [f64; 3]) -> Volume {
        let data: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 * 1.5 - 7.0).collect();
        let mut v = Volume::new(data, [2, 3, 4], [2.0, 0.5, 0.75]).unwrap();
        v.affine = Some(Affine { origin_lps: origin, axes_lps });
        v
    }

    #[test]
    fn qform_only_round_trip_matches_sform() {
        // An oblique-ish proper rotation: the quaternion must reproduce it.
        let (s, c) = (0.3f64.sin(), 0.3f64.cos());
        let axes = [[0.75 * c, 0.75 * s, 0.0], [-0.5 * s, 0.5 * c, 0.0], [0.0, 0.0, 2.0]];
        let v = volume_with(axes, [10.0, -20.0, 30.0]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.nii");
        write_nifti(&p, &v).unwrap();
        // Zero the sform code: the qform alone must give the same geometry.
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[H::SFORM_CODE..H::SFORM_CODE + 2].copy_from_slice(&0i16.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        let back = load_nifti(&p).unwrap();
        let a = back.affine.unwrap();
        for i in 0..3 {
            for k in 0..3 {
                assert!((a.axes_lps[i][k] - axes[i][k]).abs() < 1e-5, "{:?} vs {:?}", a.axes_lps, axes);
            }
        }
        assert_eq!(back.data(), v.data());
    }

    #[test]
    fn left_handed_qform_uses_qfac() {
        // z running inferior: det < 0 in RAS → qfac = -1; reading flips z to display order.
        let axes = [[0.75, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, -2.0]];
        let v = volume_with(axes, [0.0, 0.0, 0.0]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.nii");
        write_nifti(&p, &v).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        assert_eq!(f32::from_le_bytes(bytes[H::PIXDIM..H::PIXDIM + 4].try_into().unwrap()), -1.0);
        bytes[H::SFORM_CODE..H::SFORM_CODE + 2].copy_from_slice(&0i16.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        let back = load_nifti(&p).unwrap();
        let a = back.affine.unwrap();
        assert_eq!(a.axes_lps[2], [0.0, 0.0, 2.0]);
        assert_eq!(a.origin_lps, [0.0, 0.0, -2.0]);
        // Display slice 0 is the stored last slice.
        assert_eq!(back.slice(0), v.slice(1));
    }

    #[test]
    fn reorient_permutes_and_flips() {
        // stored dims (i, j, k) = (2, 3, 1); display x = stored j flipped, y = stored i.
        let data: Vec<u16> = (0..6).collect(); // value = i + 2 j
        let r = Reorient { src: [1, 0, 2], flip: [true, false, false] };
        let (out, dims) = reorient(data, [2, 3, 1], &r);
        assert_eq!(dims, [1, 2, 3]);
        // row y = i, column x = 2 - j
        assert_eq!(out, vec![4, 2, 0, 5, 3, 1]);
    }
}
