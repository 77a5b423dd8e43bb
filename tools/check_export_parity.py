#!/usr/bin/env python3
"""Checks that `radlens export` writes exactly what pydicom computes (stored values × slope + intercept).

Usage: tools/check_export_parity.py [RADLENS_BINARY] [DATA_DIR]
Defaults: target/release/radlens and ../shared/data. Exports every DICOM file of
dicom_ct_samples and the LIDC series folder to .npy and compares with pydicom (+ pylibjpeg decoders),
voxel for voxel. Prints one line per study and exits non-zero on any difference.
Needs: pip install pydicom numpy pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg
"""
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
import pydicom


def pydicom_volume(paths):
    slices = []
    for p in paths:
        ds = pydicom.dcmread(p)
        arr = ds.pixel_array.astype(np.float64)
        arr = arr * float(getattr(ds, "RescaleSlope", 1)) + float(getattr(ds, "RescaleIntercept", 0))
        frames = arr if arr.ndim == 3 else arr[None]
        pos = getattr(ds, "ImagePositionPatient", None)
        slices.append((float(pos[2]) if pos is not None else 0.0, frames))
    slices.sort(key=lambda s: s[0])
    return np.concatenate([f for _, f in slices]).astype(np.float32)


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else "target/release/radlens"
    data = sys.argv[2] if len(sys.argv) > 2 else "../shared/data"
    studies = [(p, [p]) for p in sorted(glob.glob(f"{data}/dicom_ct_samples/*/*.dcm"))]
    lidc = f"{data}/ct_lidc_idri_0001/dicom"
    studies.append((lidc, sorted(glob.glob(f"{lidc}/*.dcm"))))
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for study, files in studies:
            out = os.path.join(tmp, "x.npy")
            r = subprocess.run([exe, "export", study, "--out", out], capture_output=True, text=True)
            try:
                ref = pydicom_volume(files)
            except Exception as e:  # pydicom cannot decode it either
                print(f"SKIP  {study}: pydicom cannot decode ({e})")
                continue
            if r.returncode != 0:
                print(f"FAIL  {study}: radlens exit {r.returncode}: {r.stderr.strip()}")
                failures += 1
                continue
            got = np.load(out)
            same = got.shape == ref.shape and np.array_equal(got, ref)
            diff = float(np.abs(got.astype(np.float64) - ref).max()) if got.shape == ref.shape else float("nan")
            print(f"{'OK   ' if same else 'FAIL '} {study}: shape {got.shape}, max |diff| {diff}")
            failures += 0 if same else 1
    print(f"{len(studies) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
