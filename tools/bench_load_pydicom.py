#!/usr/bin/env python3
"""The pydicom + numpy side of `radlens bench load`: read a DICOM series folder, sort slices by
ImagePositionPatient along the slice normal, stack and rescale to float32 HU. Prints median and best of N.

Usage: tools/bench_load_pydicom.py FOLDER [REPEATS]
"""
import glob
import statistics
import sys
import time

import numpy as np
import pydicom


def load(folder):
    slices = []
    for p in glob.glob(f"{folder}/*"):
        try:
            ds = pydicom.dcmread(p)
        except Exception:
            continue
        if "PixelData" not in ds:
            continue
        iop = np.array(ds.ImageOrientationPatient, dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        slices.append((float(np.dot(normal, np.array(ds.ImagePositionPatient, dtype=float))), ds))
    slices.sort(key=lambda s: s[0])
    vol = np.stack([ds.pixel_array for _, ds in slices]).astype(np.float32)
    ds0 = slices[0][1]
    return vol * np.float32(ds0.RescaleSlope) + np.float32(ds0.RescaleIntercept)


def main():
    folder = sys.argv[1]
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    vol = load(folder)  # warm-up (page cache)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        load(folder)
        times.append(time.perf_counter() - t)
    print(f"pydicom load {folder}: {vol.shape}, median {statistics.median(times)*1e3:.1f} ms, "
          f"best {min(times)*1e3:.1f} ms over {repeats} runs")


if __name__ == "__main__":
    main()
