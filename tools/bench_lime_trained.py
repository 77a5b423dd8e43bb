#!/usr/bin/env python3
"""LIME on a trained model, radlens against the `lime` package (benchmark only; never at run time).

The model is the shipped CT U-Net (weights/ct-infection-unet: milesial's UNet, base width 16, 1 channel,
128x128, unit normalisation), rebuilt in PyTorch from the same safetensors file. The image is a demo CT
slice resized to 128x128 and saved as PNG, so both sides see identical pixels. The target, as radlens's
default for segmentation models, is the sum of the logits over the predicted mask (p > 0.5) of the
unperturbed image. lime_image.LimeImageExplainer runs with its defaults (quickshift kernel 4, max_dist
200, ratio 0.2; superpixel-mean fill; kernel width 0.25; 1,000 samples) and batch 16, as radlens;
radlens runs `radlens explain --method lime` (adaptive, cap 1,000). Prints both wall times, the sample
counts, the agreement of radlens's superpixel weights with lime's (Spearman) and, as the yardstick,
lime's agreement with itself under another seed.

Usage: python3 tools/bench_lime_trained.py RADLENS_BINARY [--slice assets/demo/ct/slice_7.jpg] [--threads 2]
"""
import json, os, re, subprocess, sys, tempfile, time

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from scipy.stats import spearmanr
from lime import lime_image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import UNet  # noqa: E402

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
argv = sys.argv[1:]
binary = argv[0]
slice_path = argv[argv.index("--slice") + 1] if "--slice" in argv else os.path.join(root, "assets/demo/ct/slice_7.jpg")
threads = int(argv[argv.index("--threads") + 1]) if "--threads" in argv else 2
torch.set_num_threads(threads)

model_dir = os.path.join(root, "weights/ct-infection-unet")
net = UNet(n_channels=1, n_classes=1, bilinear=False, w=16)
state = {k: v.float() for k, v in load_file(os.path.join(model_dir, "weights.safetensors")).items()}
loaded = net.load_state_dict(state, strict=False)
assert not loaded.unexpected_keys and all(k.endswith("num_batches_tracked") for k in loaded.missing_keys), loaded
net.eval()

work = tempfile.mkdtemp(prefix="radlens_lime_trained_")
grey = Image.open(slice_path).convert("L").resize((128, 128), Image.BILINEAR)
png = os.path.join(work, "ct128.png")
grey.save(png)
g = np.asarray(grey).astype(np.float64)

with torch.no_grad():
    logits = net(torch.from_numpy(g / 255.0).float()[None, None])[0, 0]
mask = torch.sigmoid(logits) > 0.5
print(f"predicted region: {int(mask.sum())} pixels")


def classifier_fn(images):
    x = torch.from_numpy(images[..., 0] / 255.0).float()[:, None]
    with torch.no_grad():
        out = net(x)[:, 0]
    return (out * mask).sum(dim=(1, 2)).double().numpy()[:, None]


def run_lime(seed):
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    t = time.perf_counter()
    exp = explainer.explain_instance(np.dstack([g, g, g]).astype(np.uint8), classifier_fn, labels=(0,), top_labels=None,
                                     hide_color=None, num_samples=1000, batch_size=16, random_seed=seed)
    secs = time.perf_counter() - t
    weights = dict(exp.local_exp[0])
    return secs, exp.segments, np.array([weights.get(i, 0.0) for i in range(exp.segments.max() + 1)])


run_lime(2)  # warm-up (torch's first batches are slower)
lime_secs, segments, lime_w = run_lime(0)
_, segments2, lime_w2 = run_lime(1)
assert (segments == segments2).all()

out = os.path.join(work, "heat.npy")
sp = os.path.join(work, "sp.npy")
t = time.perf_counter()
r = subprocess.run([binary, "explain", "--model", os.path.join(model_dir, "model.toml"), "--method", "lime",
                    png, "--out", out, "--superpixels", sp, "--samples", "1000", "--device", "cpu"],
                   capture_output=True, text=True, env={**os.environ, "RAYON_NUM_THREADS": str(threads)})
radlens_secs = time.perf_counter() - t
if r.returncode != 0:
    sys.exit(f"radlens failed: {r.stderr.strip()}")
used = re.search(r"\((\d+) samples\)", r.stdout)
heat, labels = np.load(out), np.load(sp).astype(int)
# The same superpixels on both sides (radlens's quickshift equals skimage's, numbered in raster order):
# match each radlens superpixel to the lime segment it covers, then compare the weights.
pairs = {(int(a), int(b)) for a, b in zip(labels.ravel(), segments.ravel())}
bijective = len(pairs) == labels.max() + 1 == segments.max() + 1
rl_w = np.array([heat[labels == i].mean() for i in range(labels.max() + 1)])
lime_of = dict(pairs)
rho = spearmanr(rl_w, [lime_w[lime_of[i]] for i in range(len(rl_w))]).correlation if bijective else float("nan")
rho_lime = spearmanr(lime_w, lime_w2).correlation
result = {
    "superpixels": int(segments.max() + 1), "radlens_superpixels": int(labels.max() + 1),
    "same_superpixels": bool(bijective),
    "lime_seconds": round(lime_secs, 2), "lime_samples": 1000,
    "radlens_seconds": round(radlens_secs, 2), "radlens_samples": int(used.group(1)) if used else None,
    "speedup": round(lime_secs / radlens_secs, 2),
    "spearman_radlens_vs_lime": round(float(rho), 3), "spearman_lime_seed0_vs_seed1": round(float(rho_lime), 3),
}
print(json.dumps(result, indent=1))
