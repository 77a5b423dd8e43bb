#!/usr/bin/env python3
"""End-to-end parity of `radlens predict` with PyTorch on FULL-SIZE architectures (random weights,
randomised BatchNorm statistics): the checkpoint is saved exactly as a user would save it (state_dict,
.safetensors or .pth), a model.toml is written beside it, and the probabilities radlens prints/writes
are compared with PyTorch's on the same image. Too large to commit; run by hand and report.

Usage: tools/check_predict_parity.py RADLENS_BINARY IMAGE_PNG [--only NAME,...]
Needs: torch torchvision segmentation-models-pytorch torchxrayvision safetensors numpy pillow
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

torch.manual_seed(0)
torch.set_num_threads(2)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def cases():
    import segmentation_models_pytorch as smp
    import torchvision
    import torchxrayvision as xrv

    def smp_unet(enc):
        return smp.Unet(encoder_name=enc, encoder_weights=None, classes=1)

    return {
        "smp_unet_resnet50": (lambda: smp_unet("resnet50"), "smp-unet", "resnet50", "safetensors", "segmentation", 256, 3),
        "smp_unet_resnet34": (lambda: smp_unet("resnet34"), "smp-unet", "resnet34", "pth", "segmentation", 256, 3),
        "smp_unet_densenet121": (lambda: smp_unet("densenet121"), "smp-unet", "densenet121", "safetensors", "segmentation", 256, 3),
        "densenet121": (lambda: torchvision.models.densenet121(num_classes=3), "densenet121", None, "pth", "classification", 224, 3),
        "vgg16": (lambda: torchvision.models.vgg16(num_classes=3), "vgg16", None, "safetensors", "classification", 224, 3),
        "resnet50": (lambda: torchvision.models.resnet50(num_classes=3), "resnet50", None, "safetensors", "classification", 224, 3),
        "convnext_tiny": (lambda: torchvision.models.convnext_tiny(num_classes=3), "convnext_tiny", None, "safetensors", "classification", 224, 3),
        "xrv_densenet121": (lambda: xrv.models.DenseNet(weights=None, op_threshs=torch.tensor([0.3 + 0.02 * i for i in range(18)])), "xrv-densenet121", None, "pth", "classification", 224, 1),
    }


def main():
    exe, image = sys.argv[1], sys.argv[2]
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    failures = 0
    for name, (build, arch, encoder, fmt, task, size, in_ch) in cases().items():
        if only and name not in only:
            continue
        model = randomise_bn(build())
        if hasattr(model, "classifier") and isinstance(model.classifier, torch.nn.Linear):
            # Keep logits moderate so the probabilities (and xrv's op_norm) are not saturated at 0 / 1,
            # which would make the comparison meaningless.
            with torch.no_grad():
                model.classifier.weight.mul_(0.02 / max(1e-6, model.classifier.weight.abs().max().item()))
        with tempfile.TemporaryDirectory() as d:
            grey = np.array(Image.open(image).convert("L").resize((size, size), Image.BILINEAR), dtype=np.float32)
            img_path = os.path.join(d, "image.png")
            Image.fromarray(grey.astype(np.uint8)).save(img_path)
            sd = {k: v for k, v in model.state_dict().items()}
            if fmt == "pth":
                torch.save(sd, os.path.join(d, "weights.pth"))
            else:
                save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(d, "weights.safetensors"))
            xrv_case = arch == "xrv-densenet121"
            if xrv_case:
                x = torch.from_numpy((grey / 255.0) * 2048.0 - 1024.0)[None, None]
                import torchxrayvision as xrv
                classes = list(xrv.datasets.default_pathologies)
            else:
                x = torch.from_numpy(((grey / 255.0)[None] - MEAN[:, None, None]) / STD[:, None, None])[None].float()
                classes = ["ggo"] if task == "segmentation" else ["COVID-19", "Non-COVID", "Normal"]
            with torch.no_grad():
                out = model(x)
                if task == "segmentation":
                    ref = torch.sigmoid(out)[0, 0].numpy()
                elif xrv_case:
                    ref = out[0].numpy()  # xrv applies sigmoid and op_norm itself when op_threshs are set
                else:
                    ref = torch.softmax(out, 1)[0].numpy()
            toml = [f'name = "{name}"', f'arch = "{arch}"']
            if encoder:
                toml.append(f'encoder = "{encoder}"')
            toml += [
                f'weights = "weights.{fmt}"', f'task = "{task}"',
                f'activation = "{"sigmoid" if task == "segmentation" or xrv_case else "softmax"}"',
                f"input_size = [{size}, {size}]", f"in_channels = {in_ch}",
                f'normalize = "{"xrv" if xrv_case else "imagenet"}"', f"classes = {json.dumps(classes)}",
            ]
            open(os.path.join(d, "model.toml"), "w").write("\n".join(toml) + "\n")
            out_npy = os.path.join(d, "out.npy")
            r = subprocess.run([exe, "predict", "--model", d, img_path, "--out", out_npy, "--device", "cpu"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {name}: radlens exit {r.returncode}: {r.stderr.strip()}")
                failures += 1
                continue
            got = np.load(out_npy)
            diff = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
            ok = diff <= 1e-3
            failures += 0 if ok else 1
            print(f"{'OK  ' if ok else 'FAIL'} {name}: max |p_radlens - p_torch| = {diff:.2e} over {ref.size} values "
                  f"(torch p in {ref.min():.3f}..{ref.max():.3f})")
    print(f"{'all within 1e-3' if failures == 0 else f'{failures} failed'}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
