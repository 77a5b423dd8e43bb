#!/usr/bin/env python3
"""Reference superpixels for tests/xai_perturb.rs (skimage; run once, never at run time).

Writes to tests/fixtures/xai/perturb/:
  cxr64.u8            a 64x64 crop (rows 96..160, cols 96..160) of a COVID-QU-Ex CXR, raw 8-bit, row-major
  quickshift_k{K}_d{D}_r{R}.u16  skimage quickshift on the grey image replicated to RGB, labels as
                      little-endian u16 (lime's defaults K=4, D=200, R=0.2, and two finer settings)
  slic.u16            skimage slic(grey/255, n_segments=50, compactness=0.1, channel_axis=None, start_label=0)
  felzenszwalb.u16    skimage felzenszwalb(grey/255, scale=100, sigma=0.5, min_size=20)
Usage: python3 tools/make_xai_perturb_fixtures.py [path/to/cxr.png]
"""
import sys, os
import numpy as np
from PIL import Image
from skimage.segmentation import quickshift, slic, felzenszwalb

src = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/cxr_covid_qu_ex_infection/images/covid_01902.png"
out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "xai", "perturb")
os.makedirs(out, exist_ok=True)
g = np.asarray(Image.open(src).convert("L"))[96:160, 96:160].copy()
assert g.shape == (64, 64)
g.astype(np.uint8).tofile(os.path.join(out, "cxr64.u8"))
rgb = np.dstack([g, g, g])  # uint8 -> img_as_float /255 inside, as lime passes it
# lime's defaults give one segment on this smooth 64x64 crop; two finer settings make the comparison
# meaningful.
qs_settings = [(4, 200, 0.2), (2, 6, 0.5), (2, 4, 1.0)]
qss = [quickshift(rgb, kernel_size=k, max_dist=d, ratio=r) for k, d, r in qs_settings]
f = g.astype(np.float64) / 255.0
sl = slic(f, n_segments=50, compactness=0.1, channel_axis=None, start_label=0)
fz = felzenszwalb(f, scale=100, sigma=0.5, min_size=20)
named = [(f"quickshift_k{k}_d{d}_r{r}", q) for (k, d, r), q in zip(qs_settings, qss)]
for name, lab in named + [("slic", sl), ("felzenszwalb", fz)]:
    lab.astype("<u2").tofile(os.path.join(out, name + ".u16"))
    print(name, "segments:", len(np.unique(lab)))
