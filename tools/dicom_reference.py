#!/usr/bin/env python3
"""pydicom reference values for radlens' DICOM loader (tests/dicom.rs compares against them exactly).

For each DICOM file (or series folder) it computes, with pydicom, the voxels radlens should produce:
`pixel_array * RescaleSlope + RescaleIntercept` in float64, cast to float32, MONOCHROME1 mirrored the
way src/io/dicom.rs documents (v -> lo + hi - v over the rescaled stored range), frames stacked along z
(series folders: slices sorted by ImagePositionPatient along the slice normal). It stores the shape,
min, max, float64 sum, 20 values at fixed flat indices (k * (n - 1) // 19) and the SHA-256 of the
float32 little-endian bytes.

Usage:
  python3 tools/dicom_reference.py                 # fixtures -> tests/fixtures/dicom/pydicom_reference.json
  python3 tools/dicom_reference.py --all OUT.json  # every file in /work/shared/data/dicom_ct_samples and
                                                   # the LIDC-IDRI-0001 folder (absolute paths), for
                                                   # `RADLENS_PARITY_JSON=OUT.json cargo test --test dicom
                                                   #  -- --ignored pydicom_parity_external`
Needs pydicom, numpy and pylibjpeg (+ -libjpeg, -openjpeg) for the compressed syntaxes.
"""

import argparse
import glob
import hashlib
import json
import os
import sys

import numpy as np
import pydicom

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "dicom")
SHARED = "/work/shared/data"


def voxels(ds):
    """float32 (frames, rows, cols) voxels as radlens defines them."""
    arr = ds.pixel_array
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    arr = arr.reshape(frames, int(ds.Rows), int(ds.Columns))
    slope = float(ds.get("RescaleSlope", 1.0))
    intercept = float(ds.get("RescaleIntercept", 0.0))
    out = arr.astype(np.float64) * slope + intercept
    out = out.astype(np.float32)
    if str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        bits = int(ds.BitsStored)
        if int(ds.get("PixelRepresentation", 0)) == 1:
            lo, hi = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
        else:
            lo, hi = 0.0, 2.0**bits - 1
        total = (lo * slope + intercept) + (hi * slope + intercept)
        out = (total - out.astype(np.float64)).astype(np.float32)
    return out


def summary(vol):
    flat = np.ascontiguousarray(vol, dtype="<f4").reshape(-1)
    n = flat.size
    idx = [k * (n - 1) // 19 for k in range(20)]
    return {
        "shape": list(vol.shape),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "sum": float(flat.astype(np.float64).sum()),
        "sample_indices": idx,
        "sample_values": [float(flat[i]) for i in idx],
        "sha256": hashlib.sha256(flat.tobytes()).hexdigest(),
    }


def series_volume(folder):
    slices = []
    for f in sorted(os.listdir(folder)):
        p = os.path.join(folder, f)
        try:
            ds = pydicom.dcmread(p)
        except Exception:
            continue
        if "PixelData" not in ds:
            continue
        slices.append(ds)
    o = np.array(slices[0].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(o[:3], o[3:])
    slices.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, dtype=np.float64), normal)))
    return np.concatenate([voxels(d) for d in slices], axis=0)


def entry(path, kind):
    try:
        vol = series_volume(path) if kind == "folder" else voxels(pydicom.dcmread(path))
    except Exception as e:  # a file pydicom cannot decode either: record why
        return {"kind": kind, "error": f"{type(e).__name__}: {e}".splitlines()[0]}
    return {"kind": kind, **summary(vol)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--all", metavar="OUT", help="reference for all shared sample data, written to OUT")
    args = ap.parse_args()
    refs = {}
    if args.all:
        for p in sorted(glob.glob(os.path.join(SHARED, "dicom_ct_samples", "**", "*.dcm"), recursive=True)):
            refs[p] = entry(p, "file")
        lidc = os.path.join(SHARED, "ct_lidc_idri_0001", "dicom")
        refs[lidc] = entry(lidc, "folder")
        out = args.all
    else:
        for p in sorted(glob.glob(os.path.join(FIXTURES, "**", "*.dcm"), recursive=True)):
            if os.path.dirname(p) != FIXTURES and not os.path.basename(os.path.dirname(p)) == "ct1":
                continue
            refs[os.path.relpath(p, FIXTURES)] = entry(p, "file")
        refs["series_shuffled"] = entry(os.path.join(FIXTURES, "series_shuffled"), "folder")
        out = os.path.join(FIXTURES, "pydicom_reference.json")
    with open(out, "w") as f:
        json.dump(refs, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {len(refs)} references to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
