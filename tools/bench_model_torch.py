#!/usr/bin/env python3
"""PyTorch side of `radlens bench model`: the same networks and shapes, random weights, eval mode,
no_grad, the same thread count. Prints one JSON object {row name: median seconds}.

Usage: tools/bench_model_torch.py --rows NAME,... [--repeats N] [--threads T]
"""
import argparse
import json
import statistics
import sys
import time

import torch


class ResNetUNet(torch.nn.Module):
    """The GGO paper's ResNet U-Net, with radlens's `resnet-unet` parameter names (see
    src/model/resnet_unet.rs): torchvision encoder, ConvTranspose2d ×2 → concat skip → two conv-BN-ReLU
    → + residual (1×1 projection when channels differ), final ConvTranspose ×2, 1×1 head."""

    def __init__(self, classes=1, decoder=(256, 128, 64, 64)):
        super().__init__()
        import torchvision
        self.encoder = torchvision.models.resnet50()
        del self.encoder.fc
        skips = [1024, 512, 256, 64]
        in_c = 2048
        blocks = []
        for skip, out_c in zip(skips, decoder):
            b = torch.nn.Module()
            b.up = torch.nn.ConvTranspose2d(in_c, in_c // 2, 2, 2)
            b.conv1 = torch.nn.Conv2d(in_c // 2 + skip, out_c, 3, padding=1, bias=False)
            b.bn1 = torch.nn.BatchNorm2d(out_c)
            b.conv2 = torch.nn.Conv2d(out_c, out_c, 3, padding=1, bias=False)
            b.bn2 = torch.nn.BatchNorm2d(out_c)
            b.proj = torch.nn.Conv2d(in_c // 2, out_c, 1, bias=False) if in_c // 2 != out_c else None
            blocks.append(b)
            in_c = out_c
        self.decoder = torch.nn.ModuleList(blocks)
        self.final_up = torch.nn.ConvTranspose2d(in_c, in_c // 2, 2, 2)
        self.head = torch.nn.Conv2d(in_c // 2, classes, 1)

    def forward(self, x):
        e = self.encoder
        s0 = e.relu(e.bn1(e.conv1(x)))
        s1 = e.layer1(e.maxpool(s0))
        s2 = e.layer2(s1)
        s3 = e.layer3(s2)
        y = e.layer4(s3)
        for b, skip in zip(self.decoder, [s3, s2, s1, s0]):
            up = b.up(y)
            z = torch.relu(b.bn1(b.conv1(torch.cat([up, skip], 1))))
            z = torch.relu(b.bn2(b.conv2(z)))
            y = z + (b.proj(up) if b.proj is not None else up)
        return self.head(torch.relu(self.final_up(y)))


def build(arch):
    if arch == "smp-unet-resnet50":
        import segmentation_models_pytorch as smp
        return smp.Unet("resnet50", encoder_weights=None, classes=1)
    if arch == "resnet-unet-resnet50":
        return ResNetUNet()
    if arch == "densenet121":
        import torchvision
        return torchvision.models.densenet121(num_classes=3)
    raise SystemExit(f"unknown row {arch}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out, models = {}, {}
    for row in a.rows.split(","):
        arch, shape = row.split(" ")
        b, c, s = (int(v) for v in shape.split("x"))
        if arch not in models:
            models[arch] = build(arch).eval()
        x = torch.randn(b, c, s, s)
        with torch.no_grad():
            models[arch](x)
            times = []
            for _ in range(max(1, a.repeats)):
                t = time.perf_counter()
                models[arch](x)
                times.append(time.perf_counter() - t)
        out[row] = statistics.median(times)
        print(f"{row}: {out[row]:.3f} s", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
