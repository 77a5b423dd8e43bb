#!/usr/bin/env python3
"""Parity fixtures for the segmentation / ResNet models (tests/models_seg.rs).

    python3 tools/make_fixtures.py                  # writes tests/fixtures/models/<case>/
    python3 tools/make_fixtures.py --full-check DIR # full-size smp Unet resnet34/50, random weights, + torch timing

Every model is the real PyTorch module (torchvision ResNet, segmentation_models_pytorch Unet) or, for the
two architectures that have no pip package, a module written here with exactly the names the Rust side
documents (ResNetUNet: src/model/resnet_unet.rs; milesial's UNet: src/model/unet.rs). Fixtures are
narrow: torchvision's own `_make_layer` rebuilds the stages at a smaller base width, so names and
structure are torchvision's. Weights are seeded random, BatchNorm affine parameters AND running statistics
are randomised so that inference-mode BN matters. Weights are rounded to float16 in torch before the
expected outputs are computed, and stored as float16 safetensors (the .pth case keeps float32).

Needs: torch, torchvision, segmentation-models-pytorch, safetensors, numpy.
"""

import argparse
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck

import segmentation_models_pytorch as smp
from segmentation_models_pytorch.base import SegmentationHead
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")

RESNETS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]), 50: (Bottleneck, [3, 4, 6, 3])}
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


# --------------------------------------------------------------------------------------------- helpers
def narrow_resnet(model, depth, width, with_fc_classes=None):
    """Rebuilds conv1/bn1/layer1..4 of a torchvision ResNet (or smp's ResNetEncoder) at `width`."""
    block, layers = RESNETS[depth]
    model.inplanes = width
    model.dilation = 1
    model.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    model.layer1 = model._make_layer(block, width, layers[0])
    model.layer2 = model._make_layer(block, 2 * width, layers[1], stride=2)
    model.layer3 = model._make_layer(block, 4 * width, layers[2], stride=2)
    model.layer4 = model._make_layer(block, 8 * width, layers[3], stride=2)
    if with_fc_classes is not None:
        model.fc = nn.Linear(8 * width * block.expansion, with_fc_classes)
    return model


def resnet_channels(depth, width):
    e = RESNETS[depth][0].expansion
    return [3, width, width * e, 2 * width * e, 4 * width * e, 8 * width * e]


@torch.no_grad()
def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)

    def u(shape, lo, hi):
        return torch.rand(shape, generator=g) * (hi - lo) + lo

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            fan_in = m.weight[0].numel() if not isinstance(m, nn.ConvTranspose2d) else m.weight.shape[0] * m.weight[0, 0].numel()
            bound = (3.0 / fan_in) ** 0.5 * 1.4
            m.weight.copy_(u(m.weight.shape, -bound, bound))
            if m.bias is not None:
                m.bias.copy_(u(m.bias.shape, -0.1, 0.1))
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.copy_(u(m.weight.shape, 0.5, 1.5))
            m.bias.copy_(u(m.bias.shape, -0.3, 0.3))
            m.running_mean.copy_(u(m.running_mean.shape, -0.3, 0.3))
            m.running_var.copy_(u(m.running_var.shape, 0.5, 2.0))
    return model.eval()


@torch.no_grad()
def round_f16(model):
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            t.copy_(t.half().float())


def fit_to(x, h, w):
    """milesial's F.pad to the skip size (negative differences crop, Python floor division)."""
    dy, dx = h - x.shape[2], w - x.shape[3]
    return F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])


# ------------------------------------------------------------------------- modules without a pip package
class UpBlock(nn.Module):
    """Decoder block of the GGO paper's ResNet U-Net (names as src/model/resnet_unet.rs)."""

    def __init__(self, in_c, skip_c, out_c):
        super().__init__()
        up_c = in_c // 2
        self.up = nn.ConvTranspose2d(in_c, up_c, 2, stride=2)
        self.conv1 = nn.Conv2d(up_c + skip_c, out_c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_c)
        self.conv2 = nn.Conv2d(out_c, out_c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_c)
        self.proj = nn.Conv2d(up_c, out_c, 1, bias=False) if up_c != out_c else None

    def forward(self, x, skip):
        u = fit_to(self.up(x), skip.shape[2], skip.shape[3])
        z = F.relu(self.bn1(self.conv1(torch.cat([u, skip], 1))))
        z = F.relu(self.bn2(self.conv2(z)))
        return z + (self.proj(u) if self.proj is not None else u)


class ResNetUNet(nn.Module):
    def __init__(self, depth=34, classes=1, width=64, decoder_channels=(256, 128, 64, 64)):
        super().__init__()
        enc = torchvision.models.resnet.ResNet(*RESNETS[depth])
        if width != 64:
            narrow_resnet(enc, depth, width)
        del enc.fc, enc.avgpool
        self.encoder = enc
        ch = resnet_channels(depth, width)
        in_c = ch[5]
        blocks = []
        for i, out_c in enumerate(decoder_channels):
            blocks.append(UpBlock(in_c, ch[4 - i], out_c))
            in_c = out_c
        self.decoder = nn.ModuleList(blocks)
        self.final_up = nn.ConvTranspose2d(in_c, in_c // 2, 2, stride=2)
        self.head = nn.Conv2d(in_c // 2, classes, 1)

    def forward(self, x):
        e = self.encoder
        s1 = e.relu(e.bn1(e.conv1(x)))
        l1 = e.layer1(e.maxpool(s1))
        l2 = e.layer2(l1)
        l3 = e.layer3(l2)
        y = e.layer4(l3)
        for blk, skip in zip(self.decoder, [l3, l2, l1, s1]):
            y = blk(y, skip)
        y = fit_to(self.final_up(y), x.shape[2], x.shape[3])
        return self.head(F.relu(y))


class DoubleConv(nn.Module):
    def __init__(self, in_c, out_c, mid_c=None):
        super().__init__()
        mid_c = mid_c or out_c
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_c, mid_c, 3, padding=1, bias=False), nn.BatchNorm2d(mid_c), nn.ReLU(inplace=True),
            nn.Conv2d(mid_c, out_c, 3, padding=1, bias=False), nn.BatchNorm2d(out_c), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, in_c, out_c):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_c, out_c))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, in_c, out_c, bilinear):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_c, out_c, in_c // 2)
        else:
            self.up = nn.ConvTranspose2d(in_c, in_c // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_c, out_c)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        diffY = x2.size()[2] - x1.size()[2]
        diffX = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [diffX // 2, diffX - diffX // 2, diffY // 2, diffY - diffY // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    def __init__(self, in_c, out_c):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    """milesial/Pytorch-UNet's UNet (unet_model.py) with a configurable base width."""

    def __init__(self, n_channels=3, n_classes=1, bilinear=False, w=64):
        super().__init__()
        f = 2 if bilinear else 1
        self.inc = DoubleConv(n_channels, w)
        self.down1 = Down(w, 2 * w)
        self.down2 = Down(2 * w, 4 * w)
        self.down3 = Down(4 * w, 8 * w)
        self.down4 = Down(8 * w, 16 * w // f)
        self.up1 = Up(16 * w, 8 * w // f, bilinear)
        self.up2 = Up(8 * w, 4 * w // f, bilinear)
        self.up3 = Up(4 * w, 2 * w // f, bilinear)
        self.up4 = Up(2 * w, w, bilinear)
        self.outc = OutConv(w, n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


# ----------------------------------------------------------------------------------------------- builders
def build_smp_unet(depth, width, decoder_channels, classes):
    """smp.Unet(resnet{depth}) narrowed: encoder at `width`, decoder/head rebuilt for the new channels."""
    dc = tuple(decoder_channels)
    model = smp.Unet(encoder_name=f"resnet{depth}", encoder_weights=None, encoder_depth=len(dc),
                     decoder_channels=dc, classes=classes)
    reference_keys = set(model.state_dict().keys())
    if width != 64:
        narrow_resnet(model.encoder, depth, width)
        model.encoder._out_channels = resnet_channels(depth, width)
        model.decoder = UnetDecoder(encoder_channels=model.encoder.out_channels, decoder_channels=dc,
                                    n_blocks=len(dc), use_norm="batchnorm", attention_type=None,
                                    add_center_block=False, interpolation_mode="nearest")
        model.segmentation_head = SegmentationHead(in_channels=dc[-1], out_channels=classes, kernel_size=3)
    keys = set(model.state_dict().keys())
    assert keys == reference_keys, f"narrowed smp Unet changed its key set: {keys ^ reference_keys}"
    return model


def manifest(case, arch, encoder, weights, task, activation, input_hw, classes, cam_layer, arch_config):
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    lines = [
        f"# Parity fixture written by tools/make_fixtures.py (narrow, random weights).",
        f"name = {val(case)}",
        f"arch = {val(arch)}",
    ] + ([f"encoder = {val(encoder)}"] if encoder and encoder != "none" and arch in ("smp-unet", "resnet-unet") else []) + [
        f"weights = {val(weights)}",
        f"task = {val(task)}",
        f"activation = {val(activation)}",
        f"input_size = {val(list(input_hw))}",
        "in_channels = 3",
        'normalize = "imagenet"',
        f"classes = {val(classes)}",
        f"cam_layer = {val(cam_layer)}",
        "threshold = 0.5",
        "",
        "[arch_config]",
    ] + [f"{k} = {val(v)}" for k, v in arch_config.items()]
    return "\n".join(lines) + "\n"


def save_case(case, model, x, layers, weights_format, toml_text, f16=True, input_grad=False):
    from safetensors.torch import save_file

    out = os.path.join(ROOT, case)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if os.path.isfile(os.path.join(out, f)):
            os.remove(os.path.join(out, f))
    if f16:
        round_f16(model)
    acts = {}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: acts.__setitem__(n, o.detach().clone())) for n in layers]
    with torch.no_grad():
        y = model(x)
    for h in hooks:
        h.remove()
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    if weights_format == "pth":
        torch.save(model.state_dict(), os.path.join(out, "weights.pth"))
    else:
        if f16:
            sd = {k: v.half() for k, v in sd.items()}
        save_file(sd, os.path.join(out, "weights.safetensors"))
    np.save(os.path.join(out, "input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(out, "output.npy"), y.numpy().astype(np.float32))
    for n, a in acts.items():
        np.save(os.path.join(out, f"{n}.npy"), a.numpy().astype(np.float32))
    if input_grad:
        # d sum(output) / d input: checks candle's backward (strided convs on odd sizes, resizes, crops).
        xg = x.clone().requires_grad_(True)
        model(xg).sum().backward()
        np.save(os.path.join(out, "input_grad.npy"), xg.grad.numpy().astype(np.float32))
    with open(os.path.join(out, "model.toml"), "w") as fh:
        fh.write(toml_text)
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out) if os.path.isfile(os.path.join(out, f)))
    print(f"{case}: output {tuple(y.shape)} max|y| {y.abs().max():.3g}, {size / 1e6:.2f} MB")
    return size


def make_fixtures():
    total = 0
    seg_names = ["lesion"]

    def inp(seed, h, w):
        return torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed))

    # smp Unet on ResNet-18 / 34 / 50.
    for depth, width, dc, hw, fmt, classes in [
        (18, 8, (32, 16, 16, 8, 8), (64, 64), "safetensors", ["lesion", "vessel"]),
        (34, 6, (32, 16, 8, 8, 8), (64, 64), "pth", seg_names),
        (50, 8, (32, 16, 16, 8, 8), (72, 88), "safetensors", seg_names),  # odd stage sizes: 3 → 5 etc.
    ]:
        torch.manual_seed(depth)
        model = randomize(build_smp_unet(depth, width, dc, len(classes)), seed=100 + depth)
        case = f"smp_unet_resnet{depth}"
        toml = manifest(case, "smp-unet", f"resnet{depth}", f"weights.{fmt}", "segmentation", "sigmoid", hw,
                        classes, "encoder.layer4",
                        {"base_width": width, "decoder_channels": list(dc), "encoder_depth": len(dc)})
        total += save_case(case, model, inp(depth, *hw), ["encoder.layer4", "decoder.blocks.2"], fmt, toml,
                           f16=(fmt != "pth"), input_grad=(depth == 50))

    # encoder_depth 3 (smp keeps layer3/layer4 in the state dict but does not run them).
    torch.manual_seed(3)
    dc = (16, 8, 8)
    model = randomize(build_smp_unet(18, 4, dc, 1), seed=103)
    case = "smp_unet_resnet18_depth3"
    toml = manifest(case, "smp-unet", "resnet18", "weights.safetensors", "segmentation", "sigmoid", (48, 40),
                    seg_names, "encoder.layer2", {"base_width": 4, "decoder_channels": list(dc), "encoder_depth": 3})
    total += save_case(case, model, inp(5, 48, 40), ["encoder.layer2", "decoder.blocks.2"], "safetensors", toml)

    # The GGO paper's ResNet U-Net.
    for depth, width, dc, hw in [(18, 8, (32, 16, 8, 8), (64, 64)), (50, 8, (32, 16, 16, 8), (72, 72))]:
        torch.manual_seed(depth)
        model = randomize(ResNetUNet(depth, 1, width, dc), seed=200 + depth)
        case = f"resnet_unet_{depth}"
        toml = manifest(case, "resnet-unet", f"resnet{depth}", "weights.safetensors", "segmentation", "sigmoid",
                        hw, seg_names, "encoder.layer4", {"base_width": width, "decoder_channels": list(dc)})
        total += save_case(case, model, inp(depth + 1, *hw), ["encoder.layer4", "decoder.1"], "safetensors", toml,
                           input_grad=(depth == 50))

    # milesial's U-Net, odd size so that F.pad matters.
    torch.manual_seed(7)
    model = randomize(UNet(3, 1, bilinear=False, w=4), seed=300)
    toml = manifest("unet", "unet", "none", "weights.safetensors", "segmentation", "sigmoid", (60, 68), seg_names,
                    "down4", {"base_width": 4, "bilinear": False})
    total += save_case("unet", model, inp(3, 60, 68), ["down4", "up4"], "safetensors", toml, input_grad=True)

    # milesial's bilinear variant (forward only in candle).
    torch.manual_seed(8)
    model = randomize(UNet(3, 1, bilinear=True, w=4), seed=301)
    toml = manifest("unet_bilinear", "unet", "none", "weights.safetensors", "segmentation", "sigmoid", (60, 68),
                    seg_names, "down4", {"base_width": 4, "bilinear": True})
    total += save_case(os.path.join("unet", "bilinear"), model, inp(4, 60, 68), ["down4", "up4"], "safetensors", toml)

    # torchvision ResNet-50 classifier.
    torch.manual_seed(50)
    model = torchvision.models.resnet50(weights=None)
    model = randomize(narrow_resnet(model, 50, 8, with_fc_classes=3), seed=450)
    toml = manifest("resnet50_cls", "resnet50", "resnet50", "weights.safetensors", "classification", "sigmoid",
                    (64, 64), ["effusion", "nodule", "pneumothorax"], "layer4", {"base_width": 8})
    total += save_case("resnet50_cls", model, inp(50, 64, 64), ["layer4"], "safetensors", toml)
    print(f"total {total / 1e6:.2f} MB")


def full_check(out_dir):
    """Full-size smp Unet resnet34 / resnet50 with random weights; candle must match within 1e-4."""
    from safetensors.torch import save_file

    torch.set_num_threads(2)
    for depth in (34, 50):
        torch.manual_seed(depth)
        model = randomize(smp.Unet(encoder_name=f"resnet{depth}", encoder_weights=None, classes=1), seed=depth)
        d = os.path.join(out_dir, f"smp_unet_resnet{depth}")
        os.makedirs(d, exist_ok=True)
        if depth == 34:
            torch.save(model.state_dict(), os.path.join(d, "weights.pth"))
        else:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()
                       if not k.endswith("num_batches_tracked")}, os.path.join(d, "weights.safetensors"))
        x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            y = model(x)
            times = []
            for _ in range(5):
                t = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t)
        np.save(os.path.join(d, "input.npy"), x.numpy())
        np.save(os.path.join(d, "output.npy"), y.numpy())
        print(f"smp Unet resnet{depth} 1x3x256x256: max|y| {y.abs().max():.4g}; torch forward (2 threads) "
              f"min {min(times):.3f} s, median {sorted(times)[2]:.3f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--full-check", metavar="DIR")
    a = ap.parse_args()
    if a.full_check:
        full_check(a.full_check)
    else:
        make_fixtures()
