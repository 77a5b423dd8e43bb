#!/usr/bin/env python3
"""Reference side of `radlens bench xai`: the same random weights, image and target explained by the
packages radlens is compared with. Prints one JSON object {method: seconds} on stdout.

DIR (written by radlens) holds weights.safetensors (PyTorch names), grey.npy (H, W) 8-bit grey values,
superpixels.npy (radlens's quickshift with lime's defaults, for shap), and mask.npy for a region target.

- gradcam++ / scorecam: pytorch-grad-cam GradCAMPlusPlus / ScoreCAM (batch_size 16), ClassifierOutputTarget
  or SemanticSegmentationTarget(0, mask)
- lime: lime_image.LimeImageExplainer, SAMPLES samples, batch_size 16, hide_color None (superpixel mean),
  its own quickshift (4, 200, 0.2) on the grey image as RGB
- kernelshap: shap.KernelExplainer over radlens's superpixels (mean fill, all-hidden background),
  nsamples=SAMPLES
- ig: captum IntegratedGradients, 50 steps (Gauss-Legendre), zero baseline, internal_batch_size 16

Usage: tools/bench_xai_torch.py --dir DIR --arch densenet121|smp-unet-resnet50 --target CLASS|mask|sum
       --samples N --cam-layer PATH --scorecam-layer PATH --methods a,b,c [--threads T]
"""
import argparse
import json
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)


def module(model, path):
    m = model
    for part in path.split("."):
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m


def build(arch, weights):
    if arch == "densenet121":
        import torchvision
        model = torchvision.models.densenet121(num_classes=3)
    else:
        import segmentation_models_pytorch as smp
        model = smp.Unet("resnet50", encoder_weights=None, classes=1)
    sd = load_file(weights)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"weights do not fit {arch}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


class Scalar(torch.nn.Module):
    """The model reduced to the target's score, (N, 1): for captum / lime / shap on a U-Net."""

    def __init__(self, model, target, mask):
        super().__init__()
        self.model, self.target, self.mask = model, target, mask

    def forward(self, x):
        y = self.model(x)
        if self.target == "mask":
            return (y[:, 0] * self.mask).sum((1, 2))[:, None]
        if self.target == "sum":
            return y.flatten(1).sum(1)[:, None]
        return y[:, int(self.target)][:, None]


def main():
    ap = argparse.ArgumentParser()
    for a in ["--dir", "--arch", "--target", "--cam-layer", "--scorecam-layer", "--methods"]:
        ap.add_argument(a, required=True)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = build(a.arch, f"{a.dir}/weights.safetensors")
    grey = np.load(f"{a.dir}/grey.npy").astype(np.float32)
    h, w = grey.shape
    x = torch.from_numpy(((grey[None, None] / 255.0 - MEAN) / STD).astype(np.float32))
    mask = torch.from_numpy(np.load(f"{a.dir}/mask.npy")).float() if a.target == "mask" else None
    scalar = Scalar(model, a.target, mask).eval()

    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SemanticSegmentationTarget
    if a.target == "mask":
        cam_targets = [SemanticSegmentationTarget(0, mask.numpy())]
    elif a.target == "sum":
        cam_targets = [lambda out: out.sum()]
    else:
        cam_targets = [ClassifierOutputTarget(int(a.target))]

    def scores(batch_nchw):
        with torch.no_grad():
            return scalar(torch.from_numpy(batch_nchw)).numpy()

    out = {}
    for method in a.methods.split(","):
        t0 = time.perf_counter()
        if method == "gradcam++":
            from pytorch_grad_cam import GradCAMPlusPlus
            GradCAMPlusPlus(model=model, target_layers=[module(model, a.cam_layer)])(input_tensor=x, targets=cam_targets)
        elif method == "scorecam":
            from pytorch_grad_cam import ScoreCAM
            cam = ScoreCAM(model=model, target_layers=[module(model, a.scorecam_layer)])
            cam.batch_size = 16
            cam(input_tensor=x, targets=cam_targets)
        elif method in ("lime", "lime-adaptive"):
            if "lime" in out:
                continue
            from lime import lime_image
            rgb = np.dstack([grey, grey, grey]).astype(np.double)

            def classifier_fn(imgs):
                b = (np.asarray(imgs, dtype=np.float32).transpose(0, 3, 1, 2) / 255.0 - MEAN) / STD
                return scores(b.astype(np.float32))

            t0 = time.perf_counter()
            lime_image.LimeImageExplainer(random_state=0).explain_instance(
                rgb, classifier_fn, labels=(0,), top_labels=None, hide_color=None, num_samples=a.samples,
                batch_size=16, random_seed=0)
            method = "lime"
        elif method == "kernelshap":
            import shap
            labels = np.load(f"{a.dir}/superpixels.npy").astype(np.int64)
            m = int(labels.max()) + 1
            means = np.array([grey[labels == j].mean() for j in range(m)], dtype=np.float32)
            fill = means[labels]

            def f(z):
                z = np.asarray(z)
                res = []
                for i in range(0, len(z), 16):
                    imgs = np.where(z[i:i + 16][:, labels] > 0.5, grey[None], fill[None]).astype(np.float32)
                    b = ((imgs[:, None] / 255.0 - MEAN) / STD).astype(np.float32)
                    res.append(scores(b)[:, 0])
                return np.concatenate(res)

            t0 = time.perf_counter()
            shap.KernelExplainer(f, np.zeros((1, m))).shap_values(np.ones((1, m)), nsamples=a.samples, silent=True)
        elif method == "ig":
            from captum.attr import IntegratedGradients
            IntegratedGradients(scalar).attribute(x, target=0, n_steps=50, method="gausslegendre",
                                                  internal_batch_size=16)
        else:
            raise SystemExit(f"unknown method {method}")
        out[method] = time.perf_counter() - t0
        print(f"{a.arch} {method}: {out[method]:.2f} s", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
