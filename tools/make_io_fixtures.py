#!/usr/bin/env python3
"""Builds the small fixtures of tests/nifti_raster_mask.rs from the shared real data sets.

Run from the repository root:  python3 tools/make_io_fixtures.py [/work/shared/data]

Needs numpy, nibabel, Pillow. Writes tests/fixtures/nifti/* and tests/fixtures/raster/*, and a
reference.json in each holding what nibabel / Pillow say the loaders must produce. The Rust tests read
only those files, never the shared data.

Display convention the references use (the one radlens shares with DICOM): array (z, y, x) with x
towards patient Left, y towards Posterior, z towards Superior; affine in LPS millimetres.
"""

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data")
NIFTI_OUT = ROOT / "tests/fixtures/nifti"
RASTER_OUT = ROOT / "tests/fixtures/raster"

LIDC = SHARED / "ct_lidc_idri_0001/derived"
CXR = SHARED / "cxr_covid_qu_ex_infection"
SEMISEG = SHARED / "ct_covid_semiseg_infnet/test"

# 64 x 64 x 4 voxels around the main nodule (columns 298-336, rows 340-386, slice 6 of 16).
CROP = (slice(285, 349), slice(331, 395), slice(4, 8))


def to_display(img):
    """nibabel's view of `img` in radlens's display convention: (z, y, x) array and LPS affine."""
    lps = img.as_reoriented(ornt_transform(io_orientation(img.affine), axcodes2ornt(("L", "P", "S"))))
    data = np.asarray(lps.get_fdata(dtype=np.float64))
    aff = lps.affine.copy()
    aff[:2, :] *= -1  # RAS -> LPS world
    return np.transpose(data, (2, 1, 0)), aff


def reference(img):
    arr, aff = to_display(img)
    z, y, x = arr.shape
    probes = [[0, 0, 0], [z - 1, y - 1, x - 1], [2, 30, 31], [1, 5, 60], [3, 47, 12]]
    return {
        "dims": [z, y, x],
        "spacing_mm": [float(np.linalg.norm(aff[:3, i])) for i in (2, 1, 0)],
        "origin_lps": [float(v) for v in aff[:3, 3]],
        # axes_lps[i]: LPS step of index axis i (x, y, z)
        "axes_lps": [[float(v) for v in aff[:3, i]] for i in range(3)],
        "sum": float(arr.sum()),
        "min": float(arr.min()),
        "max": float(arr.max()),
        "probes": [{"zyx": p, "value": float(arr[tuple(p)])} for p in probes],
        "label_counts": {str(int(v)): int((arr == v).sum()) for v in np.unique(arr)} if arr.max() < 16 else None,
    }


def make_nifti():
    NIFTI_OUT.mkdir(parents=True, exist_ok=True)
    hu = nib.load(LIDC / "lidc0001_16slices_hu.nii.gz")
    readers = nib.load(LIDC / "lidc0001_16slices_nodule_readers.nii.gz")

    # slicer keeps dtype and moves the affine's origin to the crop's first voxel.
    crop = hu.slicer[CROP]
    crop = nib.Nifti1Image(np.asarray(crop.dataobj).astype(np.int16), crop.affine, crop.header)
    crop.set_data_dtype(np.int16)
    nib.save(crop, NIFTI_OUT / "lidc_crop_hu.nii.gz")
    lab = readers.slicer[CROP]
    lab = nib.Nifti1Image(np.asarray(lab.dataobj).astype(np.uint8), lab.affine, lab.header)
    lab.set_data_dtype(np.uint8)
    nib.save(lab, NIFTI_OUT / "lidc_crop_readers.nii.gz")

    # The same voxels stored another way round: axes (S->I, R<-L, A<-P) i.e. codes (I, R, A), so every
    # axis is permuted and flipped. Geometry only in the qform (sform_code 0), uint16 with an intercept,
    # so the test also covers the quaternion path and scl_inter.
    reo = crop.as_reoriented(ornt_transform(io_orientation(crop.affine), axcodes2ornt(("I", "R", "A"))))
    vals = np.asarray(reo.get_fdata()) + 1024.0
    assert vals.min() >= 0
    hdr = nib.Nifti1Header()
    out = nib.Nifti1Image(vals.astype(np.uint16), None, hdr)
    out.set_qform(reo.affine, code=1)
    out.set_sform(reo.affine, code=0)
    out.header.set_data_dtype(np.uint16)
    out.header.set_zooms(reo.header.get_zooms())
    out.header.set_xyzt_units("mm")
    out.header["scl_slope"] = 1.0
    out.header["scl_inter"] = -1024.0
    nib.save(out, NIFTI_OUT / "lidc_crop_hu_IRA_qform.nii")
    back = nib.load(NIFTI_OUT / "lidc_crop_hu_IRA_qform.nii")
    assert nib.aff2axcodes(back.affine) == ("I", "R", "A"), nib.aff2axcodes(back.affine)

    # nibabel's canonical RAS (x and y flipped against LPS), big-endian float64 with scl_slope 0.5,
    # geometry in the sform only.
    ras = nib.as_closest_canonical(crop)
    be = nib.Nifti1Image((np.asarray(ras.get_fdata()) * 2.0).astype(">f8"), None, nib.Nifti1Header(endianness=">"))
    be.set_sform(ras.affine, code=2)
    be.set_qform(None, code=0)
    be.header.set_zooms(ras.header.get_zooms())
    be.header.set_xyzt_units("mm")
    be.header["scl_slope"] = 0.5
    be.header["scl_inter"] = 0.0
    nib.save(be, NIFTI_OUT / "lidc_crop_hu_RAS_f64_be.nii.gz")
    back_be = nib.load(NIFTI_OUT / "lidc_crop_hu_RAS_f64_be.nii.gz")
    assert back_be.header.endianness == ">" and nib.aff2axcodes(back_be.affine) == ("R", "A", "S")

    ref = {
        "lidc_crop_hu_RAS_f64_be.nii.gz": reference(back_be),
        "lidc_crop_hu.nii.gz": reference(nib.load(NIFTI_OUT / "lidc_crop_hu.nii.gz")),
        "lidc_crop_hu_IRA_qform.nii": reference(back),
        "lidc_crop_readers.nii.gz": reference(nib.load(NIFTI_OUT / "lidc_crop_readers.nii.gz")),
    }
    (NIFTI_OUT / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")


def copy(src, dst):
    """Byte copy; the shared files are read-only and their mode must not follow them."""
    dst.write_bytes(src.read_bytes())


def make_raster():
    RASTER_OUT.mkdir(parents=True, exist_ok=True)
    for name in ["covid_01902.png", "covid_01903.png"]:
        copy(CXR / "images" / name, RASTER_OUT / f"cxr_{name}")
        copy(CXR / "infection_masks" / name, RASTER_OUT / f"cxr_{name[:-4]}_infection.png")
    copy(SEMISEG / "images/6.jpg", RASTER_OUT / "semiseg_6.jpg")
    copy(SEMISEG / "infection_binary/6.png", RASTER_OUT / "semiseg_6_binary.png")
    copy(SEMISEG / "infection_multiclass/6.png", RASTER_OUT / "semiseg_6_multiclass_palette.png")

    grey = np.asarray(Image.open(CXR / "images/covid_01902.png").convert("L"))
    h, w = grey.shape

    # 16-bit: spread to the full range so values above 255 (and 65535 itself) must survive.
    g16 = grey.astype(np.uint16) * 257
    g16[0, 0] = 65535
    g16[0, 1] = 1000
    Image.fromarray(g16).save(RASTER_OUT / "cxr_16bit.png")

    # RGB with distinct channels, so a wrong luma formula or channel order shows.
    rgb = np.stack([grey, grey // 2, 255 - grey], axis=-1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(RASTER_OUT / "cxr_rgb.png")
    Image.fromarray(grey, "L").save(RASTER_OUT / "cxr_grey.bmp")
    Image.fromarray(grey, "L").save(RASTER_OUT / "cxr_grey.tif", compression="tiff_lzw")

    # A {0,1} mask made from the real {0,255} one.
    inf = np.asarray(Image.open(CXR / "infection_masks/covid_01902.png"))
    Image.fromarray((inf > 127).astype(np.uint8), "L").save(RASTER_OUT / "cxr_covid_01902_infection_01.png")

    multi = np.asarray(Image.open(SEMISEG / "infection_multiclass/6.png"))  # palette indices
    pal = Image.open(SEMISEG / "infection_multiclass/6.png").getpalette()
    ref = {
        "cxr_grey": {"dims": [1, h, w], "sum": int(grey.astype(np.int64).sum()),
                     "probes": [{"yx": [y, x], "value": int(grey[y, x])} for y, x in [(0, 0), (128, 100), (200, 37)]]},
        "cxr_16bit": {"max": int(g16.max()), "sum": int(g16.astype(np.int64).sum()),
                      "probes": [{"yx": [0, 0], "value": 65535}, {"yx": [0, 1], "value": 1000},
                                 {"yx": [128, 100], "value": int(g16[128, 100])}]},
        "cxr_rgb": {"probes": [{"yx": [y, x], "rgb": [int(c) for c in rgb[y, x]]} for y, x in [(128, 100), (200, 37)]]},
        "infection_covid_01902": {"foreground": int((inf > 127).sum())},
        "semiseg_6_multiclass": {
            "dims": [1, int(multi.shape[0]), int(multi.shape[1])],
            "counts": {str(int(v)): int((multi == v).sum()) for v in np.unique(multi)},
            "palette_rgb": [pal[3 * i: 3 * i + 3] for i in range(3)],
        },
        "semiseg_6_binary": {"foreground": int((np.asarray(Image.open(SEMISEG / "infection_binary/6.png")) > 127).sum())},
        "semiseg_6_jpeg": {"dims": [1, int(multi.shape[0]), int(multi.shape[1])],
                           "sum": int(np.asarray(Image.open(SEMISEG / "images/6.jpg").convert("L")).astype(np.int64).sum())},
    }
    (RASTER_OUT / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")


if __name__ == "__main__":
    make_nifti()
    make_raster()
    print("fixtures written to", NIFTI_OUT, "and", RASTER_OUT)
