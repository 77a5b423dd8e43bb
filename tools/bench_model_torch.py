#!/usr/bin/env python3
"""PyTorch side of `radlens bench model`: the same networks, shapes and work (forward, Grad-CAM,
input gradient, training step), random weights, the same thread count. Prints one JSON object
{row name: {"seconds": median wall, "cpu_seconds": mean process CPU per run, "peak_rss": bytes or null}}.

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

    def __init__(self, classes=1, decoder=(256, 128, 64, 64), encoder="resnet50"):
        super().__init__()
        import torchvision
        self.encoder = getattr(torchvision.models, encoder)()
        del self.encoder.fc
        if encoder == "resnet50":
            skips, in_c = [1024, 512, 256, 64], 2048
        else:
            skips, in_c = [256, 128, 64, 64], 512
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
    if arch == "resnet-unet-resnet18":
        return ResNetUNet(encoder="resnet18")
    if arch == "densenet121":
        import torchvision
        return torchvision.models.densenet121(num_classes=3)
    raise SystemExit(f"unknown network {arch}")


def reset_peak_rss():
    """Resets VmHWM (Linux); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def make_work(work, model, x):
    """A callable doing one run of the row's work (see src/cli/bench_model.rs)."""
    if work == "forward":
        model.eval()

        def run():
            with torch.no_grad():
                model(x)
        return run
    if work == "gradcam":
        # What pytorch-grad-cam's GradCAM does: a forward with hooks on the target layer, then the
        # gradient of the target (here the summed output) reaching the layer's activations. Parameters
        # keep requires_grad (its default), so torch also computes their gradients.
        model.eval()
        layer = model.encoder.layer4
        store = {}

        def hook(_m, _i, out):
            store["a"] = out
            out.register_hook(lambda g: store.__setitem__("g", g))
        layer.register_forward_hook(hook)

        def run():
            model.zero_grad(set_to_none=True)
            model(x).sum().backward()
            return store["a"].detach(), store["g"]
        return run
    if work == "inputgrad":
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)

        def run():
            xi = x.clone().requires_grad_(True)
            model(xi).sum().backward()
            return xi.grad
        return run
    if work == "train":
        # BatchNorm in training mode, as `radlens bench model` runs this row (and `radlens train`).
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        mask = (torch.rand(x.shape[0], 1, x.shape[2], x.shape[3]) >= 0.5).float()
        loss_fn = torch.nn.BCEWithLogitsLoss()

        def run():
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), mask).backward()
            opt.step()
        return run
    raise SystemExit(f"unknown work {work}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = {}
    for row in a.rows.split(","):
        work, arch, shape = row.split(" ")
        b, c, s = (int(v) for v in shape.split("x"))
        model = build(arch)  # a fresh model per row: hooks and requires_grad differ by work
        x = torch.randn(b, c, s, s)
        run = make_work(work, model, x)
        run()  # warm-up
        reset = reset_peak_rss()
        cpu0 = time.process_time()
        times = []
        for _ in range(max(1, a.repeats)):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        out[row] = {
            "seconds": statistics.median(times),
            "cpu_seconds": (time.process_time() - cpu0) / len(times),
            "peak_rss": peak_rss() if reset else None,
        }
        print(f"torch {row}: {out[row]['seconds']:.3f} s", file=sys.stderr)
        del model, run
    print(json.dumps(out))


if __name__ == "__main__":
    main()
