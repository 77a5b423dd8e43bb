#!/usr/bin/env python3
"""captum reference maps for src/xai/{saliency,integrated_gradients,lrp}.rs.

Rebuilds the PyTorch models of `tests/fixtures/models/{densenet121_narrow,vgg16_narrow}` with the SAME
weights (their `weights.safetensors`, builders as in tools/make_fixtures_classifiers.py), takes the first
item of each fixture's `input.npy`, the top class as target, and writes to
`tests/fixtures/xai/grad/<case>/`:

- `saliency.npy`  captum `Saliency(abs=True)`, then max over channels (H, W)
- `ig.npy`        captum `IntegratedGradients`, 50 steps, `method="gausslegendre"`, zero baseline,
                  summed over channels (H, W)
- `lrp_eps.npy`   captum `LRP()` (EpsilonRule, ε = 1e-9, on every layer), summed over channels; for
                  DenseNet the classifier head is rebuilt from modules (see below)
- `meta.json`     target, f(x), f(0), captum's convergence delta, captum timings

Needs `pip install captum`. Run: python3 tools/make_xai_grad_fixtures.py
"""

import copy
import json
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_fixtures_classifiers import narrow_vgg  # noqa: E402

MODELS = os.path.join(HERE, "..", "tests", "fixtures", "models")
OUT = os.path.join(HERE, "..", "tests", "fixtures", "xai", "grad")


def densenet():
    from torchvision.models import DenseNet

    return DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, bn_size=4, num_classes=5)


def vgg():
    cfg = [4, 4, "M", 8, 8, "M", 8, 8, 8, "M", 16, 16, 16, "M", 16, 16, 16, "M"]
    return narrow_vgg(cfg, False, 32, 4)


class FlatLinear(torch.nn.Linear):
    def forward(self, x):
        return super().forward(x.flatten(1))


def main():
    from captum.attr import LRP, IntegratedGradients, Saliency

    torch.set_num_threads(2)
    for case, build, lrp in [("densenet121_narrow", densenet, True), ("vgg16_narrow", vgg, True)]:
        m = build()
        m.load_state_dict(load_file(os.path.join(MODELS, case, "weights.safetensors")))
        m.eval()
        x = torch.from_numpy(np.load(os.path.join(MODELS, case, "input.npy"))[:1]).float()
        with torch.no_grad():
            y = m(x)
            y0 = m(torch.zeros_like(x))
        t = int(y[0].argmax())
        d = os.path.join(OUT, case)
        os.makedirs(d, exist_ok=True)
        sal = Saliency(m).attribute(x, target=t, abs=True)
        np.save(os.path.join(d, "saliency.npy"), sal[0].max(0).values.detach().numpy().astype(np.float32))
        t0 = time.perf_counter()
        ig, delta = IntegratedGradients(m).attribute(x, target=t, n_steps=50, method="gausslegendre",
                                                     internal_batch_size=16, return_convergence_delta=True)
        ig_s = time.perf_counter() - t0
        np.save(os.path.join(d, "ig.npy"), ig[0].sum(0).detach().numpy().astype(np.float32))
        meta = dict(target=t, score=float(y[0, t]), score_baseline=float(y0[0, t]),
                    ig_sum=float(ig.sum()), ig_delta=float(delta), captum_ig_seconds=ig_s)
        if lrp:
            lm = copy.deepcopy(m)
            if case.startswith("densenet"):
                # DenseNet.forward ends in F.relu / F.adaptive_avg_pool2d, which captum's LRP cannot hook
                # (it would pass relevance through the pool as a plain gradient); the same computation
                # as modules gets captum's ε rule there too.
                # (captum cannot take an nn.Flatten either: the classifier flattens its own input.)
                from captum.attr._utils.lrp_rules import EpsilonRule

                head = FlatLinear(lm.classifier.in_features, lm.classifier.out_features)
                head.load_state_dict(lm.classifier.state_dict())
                head.rule = EpsilonRule()
                lm = torch.nn.Sequential(lm.features, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), head).eval()
            r = LRP(lm).attribute(x, target=t)
            np.save(os.path.join(d, "lrp_eps.npy"), r[0].sum(0).detach().numpy().astype(np.float32))
            meta["lrp_sum"] = float(r.sum())
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
        print(case, meta)


if __name__ == "__main__":
    main()
