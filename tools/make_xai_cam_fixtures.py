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

At 64² both layers are 2×2, so a second set, `<case>_128/`, runs the same on the input upsampled to 128²
(`F.interpolate` bilinear, align_corners=False, which radlens's `resize_bilinear` reproduces): 4×4 cells.
To stay small its maps are stored as uint16 (`round(map · 65535)`) and its mask as uint8.

Ablation-CAM: pytorch-grad-cam's default `AblationLayer` writes `min(activations) - 1e7` instead of 0 when
the layer's minimum is not exactly 0 (and, for a batch, compounds that value item after item). radlens
zeroes the channel (the paper's definition), so the reference uses an ablation layer that always zeroes;
`ablationcam_default.npy` (64² sets) keeps the stock output for the record.

Eigen-CAM: the stock `EigenCAM` projects on LAPACK's first singular vector, whose sign is arbitrary (on
the 128² densenet set it comes out flipped, and the ReLU then keeps the other side). radlens fixes the sign
as `get_2d_projection_with_sign_correction` does (flip when |min| > |max|), so the reference is EigenCAM with
that projection; `eigencam_default.npy` (64² sets) keeps the stock output.

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
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction  # noqa: E402



class ZeroAblationLayer(AblationLayer):
    """Ablation that always zeroes the channel (the Ablation-CAM paper; what radlens does)."""

    def __call__(self, x):
        output = self.activations
        for i in range(output.size(0)):
            output[i, self.indices[i], :] = 0
        return output


class SignCorrectedEigenCAM(EigenCAM):
    """EigenCAM with the projection's sign fixed (`get_2d_projection_with_sign_correction`), as radlens."""

    def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):
        return get_2d_projection_with_sign_correction(activations)


METHODS = {
    "gradcam": GradCAM,
    "gradcam_pp": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "layercam": LayerCAM,
    "hirescam": HiResCAM,
    "eigencam": SignCorrectedEigenCAM,
    "scorecam": ScoreCAM,
    "ablationcam": AblationCAM,
}


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


def save_map(path, cam, u16):
    if u16:
        np.save(path, np.round(np.clip(cam, 0, 1) * 65535).astype(np.uint16))
    else:
        np.save(path, cam.astype(np.float32))


def run_all(model, x, layer_path, targets, out_dir, u16=False):
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
        save_map(os.path.join(out_dir, f"{name}.npy"), grayscale, u16)
        print(f"  {name}: range {grayscale.min():.3f}..{grayscale.max():.3f}")
    if u16:
        return
    cam = AblationCAM(model=model, target_layers=[layer])
    cam.batch_size = 16
    save_map(os.path.join(out_dir, "ablationcam_default.npy"), cam(input_tensor=x, targets=targets)[0], u16)
    cam = EigenCAM(model=model, target_layers=[layer])
    save_map(os.path.join(out_dir, "eigencam_default.npy"), cam(input_tensor=x, targets=targets)[0], u16)


def fixture_input(case, size):
    """The first image of the fixture's input.npy; upsampled (bilinear, align_corners=False) when `size`."""
    x = torch.from_numpy(np.load(os.path.join(ROOT, "tests/fixtures/models", case, "input.npy"))[:1]).float()
    if size is not None:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


def out_dir(case, size):
    return os.path.join(ROOT, "tests/fixtures/xai/cam", case if size is None else f"{case}_{size}")


def smp_case(size=None):
    from make_fixtures import build_smp_unet

    case = "smp_unet_resnet18"
    model = load_weights(build_smp_unet(18, 8, [32, 16, 16, 8, 8], 2), case)
    x = fixture_input(case, size)
    with torch.no_grad():
        logits = model(x)
    mask = (torch.sigmoid(logits[0, 0]) > 0.5).numpy()
    print(f"{case}: mask {mask.sum()} of {mask.size} pixels")
    out = out_dir(case, size)
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "mask.npy"), mask.astype(np.float32) if size is None else mask.astype(np.uint8))
    run_all(model, x, "encoder.layer4", [SemanticSegmentationTarget(0, mask.astype(np.float32))], out, size is not None)


def densenet_case(size=None):
    from torchvision.models import DenseNet

    case = "densenet121_narrow"
    model = load_weights(DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, bn_size=4,
                                  num_classes=5), case)
    x = fixture_input(case, size)
    with torch.no_grad():
        top = int(model(x)[0].argmax())
    print(f"{case}: top class {top}")
    out = out_dir(case, size)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump({"class": top}, f)
    run_all(model, x, "features.denseblock4", [ClassifierOutputTarget(top)], out, size is not None)


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    for size in (None, 128):
        smp_case(size)
        densenet_case(size)
