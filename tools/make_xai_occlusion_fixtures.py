#!/usr/bin/env python3
"""captum `Occlusion` reference maps for src/xai/occlusion.rs (tests/xai_perturb.rs).

Rebuilds the PyTorch models of `tests/fixtures/models/{densenet121_narrow,vgg16_narrow,smp_unet_resnet18}`
with the SAME weights, takes the first item of each fixture's `input.npy` and writes to
`tests/fixtures/xai/occlusion/<case>/`:

- `occlusion.npy`  captum `Occlusion(...).attribute(x, target, sliding_window_shapes=(C, 16, 16),
                   strides=(C, 8, 8), baselines=0)`, channel 0 (every channel is occluded together, so
                   all channels carry the same value) — (H, W) float32
- `meta.json`      target (class index, or "region" with the mask of tests/fixtures/xai/cam/
                   smp_unet_resnet18/mask.npy: the sum of class 0's logits inside it), window, stride,
                   captum's time

Needs `pip install captum segmentation-models-pytorch`. Run: python3 tools/make_xai_occlusion_fixtures.py
"""

import json
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_xai_grad_fixtures import densenet, vgg  # noqa: E402

ROOT = os.path.join(HERE, "..")
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
OUT = os.path.join(ROOT, "tests", "fixtures", "xai", "occlusion")
WINDOW, STRIDE = 16, 8


class RegionTarget(torch.nn.Module):
    """pytorch-grad-cam's SemanticSegmentationTarget as a model output: (N, 1)."""

    def __init__(self, model, mask):
        super().__init__()
        self.model, self.mask = model, mask

    def forward(self, x):
        return (self.model(x)[:, 0] * self.mask).sum((1, 2))[:, None]


def smp():
    from make_fixtures import build_smp_unet

    return build_smp_unet(18, 8, [32, 16, 16, 8, 8], 2)


def main():
    from captum.attr import Occlusion

    torch.set_num_threads(2)
    for case, build in [("densenet121_narrow", densenet), ("vgg16_narrow", vgg), ("smp_unet_resnet18", smp)]:
        m = build()
        sd = load_file(os.path.join(MODELS, case, "weights.safetensors"))
        m.load_state_dict({k: v.float() for k, v in sd.items()})
        m.eval()
        x = torch.from_numpy(np.load(os.path.join(MODELS, case, "input.npy"))[:1]).float()
        if case.startswith("smp"):
            mask = np.load(os.path.join(ROOT, "tests", "fixtures", "xai", "cam", case, "mask.npy"))
            m = RegionTarget(m, torch.from_numpy(mask).float()).eval()
            t, target = 0, "region"
        else:
            with torch.no_grad():
                t = int(m(x)[0].argmax())
            target = t
        c = x.shape[1]
        t0 = time.perf_counter()
        with torch.no_grad():
            a = Occlusion(m).attribute(x, target=t, sliding_window_shapes=(c, WINDOW, WINDOW),
                                       strides=(c, STRIDE, STRIDE), baselines=0, perturbations_per_eval=16)
        seconds = time.perf_counter() - t0
        d = os.path.join(OUT, case)
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "occlusion.npy"), a[0, 0].numpy().astype(np.float32))
        meta = dict(target=target, window=WINDOW, stride=STRIDE, captum_seconds=seconds)
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
        print(case, meta, "range", float(a.min()), float(a.max()))


if __name__ == "__main__":
    main()
