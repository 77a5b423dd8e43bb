#!/usr/bin/env python3
"""Reference CAM maps from pytorch-grad-cam for tests/xai_cam.rs.

    python3 tools/make_xai_cam_fixtures.py     # writes tests/fixtures/xai/cam/<case>/

For each narrow model fixture (tests/fixtures/models/<case>/: the same safetensors weights the Rust test
loads, rebuilt as the real PyTorch modules by the builders of tools/make_fixtures.py and
tools/make_fixtures_classifiers.py), runs GradCAM, GradCAMPlusPlus, XGradCAM, LayerCAM, HiResCAM,
EigenCAM, ScoreCAM and AblationCAM at the manifest's `cam_layer` on the first image of `input.npy`, and saves
each map as pytorch-grad-cam returns it (ReLU, min-max scaled, resized to the input size with cv2) as
`<method>.npy` (float32, H×W), plus the target: `mask.npy` (float32 0/1, H×W, segmentation: predicted mask of
class 0, sigmoid > 0.5, `SemanticSegmentationTarget(0, mask)`) or `meta.json` {"class": top class}
(classification, `ClassifierOutputTarget`).

Ablation-CAM: pytorch-grad-cam's default `AblationLayer` writes `min(activations) - 1e7` instead of 0 when
the layer's minimum is not exactly 0 (and, for a batch, compounds that value item after item). radlens
zeroes the channel (the paper's definition), so the reference uses an ablation layer that always zeroes;
`ablationcam_default.npy` keeps the stock output for the record.

Needs: torch, torchvision, segmentation-models-pytorch, grad-cam, safetensors, numpy.
"""

import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from pytorch_grad_cam import (AblationCAM, EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM,  # noqa: E402
                              ScoreCAM, XGradCAM)
from pytorch_grad_cam.ablation_layer import AblationLayer  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SemanticSegmentationTarget  # noqa: E402

METHODS = {
    "gradcam": GradCAM,
    "gradcam_pp": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "hirescam": HiResCAM,
    "eigencam": EigenCAM,
    "scorecam": ScoreCAM,
    "ablationcam": AblationCAM,
}


class ZeroAblationLayer(AblationLayer):
    """Ablation that always zeroes the channel (the Ablation-CAM paper; what radlens does)."""

    def __call__(self, x):
        output = self.activations
        for i in range(output.size(0)):
            output[i, self.indices[i], :] = 0
        return output


def load_weights(model, case):
    sd = load_file(os.path.join(ROOT, "tests/fixtures/models", case, "weights.safetensors"))
    sd = {k: v.float() for k, v in sd.items()}
    model.load_state_dict(sd, strict=True)
    return model.eval()


def module(model, path):
    m = model
    for part in path.split("."):
        m = getattr(m, part)
    return m


def run_all(model, x, layer_path, targets, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    layer = module(model, layer_path)
    for name, cls in METHODS.items():
        kwargs = {}
        if name == "ablationcam":
            kwargs["ablation_layer"] = ZeroAblationLayer()
        cam = cls(model=model, target_layers=[layer], **kwargs)
        if name in ("scorecam", "ablationcam"):
            cam.batch_size = 16
        grayscale = cam(input_tensor=x, targets=targets)[0]
        np.save(os.path.join(out_dir, f"{name}.npy"), grayscale.astype(np.float32))
        print(f"  {name}: range {grayscale.min():.3f}..{grayscale.max():.3f}")
    cam = AblationCAM(model=model, target_layers=[layer])
    cam.batch_size = 16
    np.save(os.path.join(out_dir, "ablationcam_default.npy"), cam(input_tensor=x, targets=targets)[0].astype(np.float32))


def smp_case():
    from make_fixtures import build_smp_unet

    case = "smp_unet_resnet18"
    model = load_weights(build_smp_unet(18, 8, [32, 16, 16, 8, 8], 2), case)
    x = torch.from_numpy(np.load(os.path.join(ROOT, "tests/fixtures/models", case, "input.npy"))[:1]).float()
    with torch.no_grad():
        logits = model(x)
    mask = (torch.sigmoid(logits[0, 0]) > 0.5).numpy()
    print(f"{case}: mask {mask.sum()} of {mask.size} pixels")
    out = os.path.join(ROOT, "tests/fixtures/xai/cam", case)
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "mask.npy"), mask.astype(np.float32))
    run_all(model, x, "encoder.layer4", [SemanticSegmentationTarget(0, mask.astype(np.float32))], out)


def densenet_case():
    from torchvision.models import DenseNet

    case = "densenet121_narrow"
    model = load_weights(DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, bn_size=4,
                                  num_classes=5), case)
    x = torch.from_numpy(np.load(os.path.join(ROOT, "tests/fixtures/models", case, "input.npy"))[:1]).float()
    with torch.no_grad():
        top = int(model(x)[0].argmax())
    print(f"{case}: top class {top}")
    out = os.path.join(ROOT, "tests/fixtures/xai/cam", case)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump({"class": top}, f)
    run_all(model, x, "features.denseblock4", [ClassifierOutputTarget(top)], out)


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    smp_case()
    densenet_case()
