#!/usr/bin/env python3
"""Parity fixtures for the classifiers in src/model/{densenet,vgg,convnext}.rs.

Builds each PyTorch model NARROW (same module structure, so the same state-dict names, as the standard
variant), with seeded random weights and randomised BatchNorm running statistics, in eval mode, and
writes `tests/fixtures/models/<case>/`: `weights.safetensors` (or `weights.pth`), `input.npy`,
`output.npy`, one `.npy` per tapped layer (file name = module path) and `model.toml`.

Reference outputs are computed in float64 (then stored as float32), so the tolerance in the Rust tests
measures candle's float32 error, not torch's.

    python3 tools/make_fixtures_classifiers.py                 # writes the fixtures
    python3 tools/make_fixtures_classifiers.py --full-check DIR # full-size densenet121/vgg16/convnext_tiny
                                                                # with random weights (not committed)
Then `RADLENS_FULL_CHECK_CLS=DIR cargo test --test models_cls -- --ignored full_size`.
"""

import argparse
import os
import sys
import time
from functools import partial

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "models")


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random weights whose activations stay O(1), and random BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std):
        return torch.randn(shape, generator=g, dtype=torch.float32) * std

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float32)

    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(normal(m.weight.shape, (2.0 / fan_in) ** 0.5))
                if m.bias is not None:
                    m.bias.copy_(normal(m.bias.shape, 0.1))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(normal(m.weight.shape, (1.0 / m.in_features) ** 0.5))
                if m.bias is not None:
                    m.bias.copy_(normal(m.bias.shape, 0.1))
            elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.weight.copy_(uniform(m.weight.shape, 0.5, 1.5))
                m.bias.copy_(normal(m.bias.shape, 0.1))
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.copy_(normal(m.running_mean.shape, 0.2))
                    m.running_var.copy_(uniform(m.running_var.shape, 0.5, 2.0))
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(uniform(p.shape, 0.3, 1.0))
    return model.eval()


def capture(model, names):
    """Forward hooks recording module outputs by state-dict path."""
    out = {}
    mods = dict(model.named_modules())
    handles = []
    for n in names:
        def hook(_m, _i, o, n=n):
            out[n] = o.detach().clone()
        handles.append(mods[n].register_forward_hook(hook))
    return out, handles


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


def write_case(case, model, x, manifest, arch_config, taps, weights_fmt="safetensors", extra=None):
    d = os.path.join(ROOT, case)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    if weights_fmt == "pth":
        torch.save(sd, os.path.join(d, "weights.pth"))
        wname = "weights.pth"
    else:
        sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
        save_file(sd, os.path.join(d, "weights.safetensors"))
        wname = "weights.safetensors"
    m64 = model.double()
    acts, handles = capture(m64, taps)
    with torch.no_grad():
        y = extra["forward"](m64, x.double()) if extra and "forward" in extra else m64(x.double())
    for h in handles:
        h.remove()
    np.save(os.path.join(d, "input.npy"), x.float().numpy())
    np.save(os.path.join(d, "output.npy"), y.float().numpy())
    for n, a in acts.items():
        np.save(os.path.join(d, f"{n}.npy"), a.float().numpy())
    if extra:
        for k, v in extra.get("arrays", {}).items():
            with torch.no_grad():
                np.save(os.path.join(d, f"{k}.npy"), v(m64, x.double()).float().numpy())
    lines = [f"name = {toml_value(case)}"]
    manifest = dict(manifest, weights=wname)
    for k in ["arch", "weights", "task", "activation", "input_size", "in_channels", "normalize", "classes",
              "cam_layer"]:
        if k in manifest:
            lines.append(f"{k} = {toml_value(manifest[k])}")
    for k, v in manifest.items():
        if k not in ["arch", "weights", "task", "activation", "input_size", "in_channels", "normalize",
                     "classes", "cam_layer"]:
            lines.append(f"{k} = {toml_value(v)}")
    lines.append("")
    lines.append("[arch_config]")
    for k, v in arch_config.items():
        lines.append(f"{k} = {toml_value(v)}")
    with open(os.path.join(d, "model.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(case, "out", tuple(y.shape), "max|y|", float(y.abs().max()))


def densenet_cases():
    from torchvision.models import DenseNet

    torch.manual_seed(0)
    m = randomise(DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, bn_size=4,
                           num_classes=5), 1)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    taps = ["features.denseblock4", "features.norm5", "features.transition2"]
    write_case("densenet121_narrow", m, x,
               dict(arch="densenet121", task="classification", activation="softmax", input_size=[64, 64],
                    in_channels=3, normalize="imagenet", classes=[f"class{i}" for i in range(5)],
                    cam_layer="features.denseblock4"),
               dict(growth_rate=8, block_config=[2, 2, 2, 2], num_init_features=16, bn_size=4), taps)

    # densenet201's block pattern, narrower; odd input size so the stride-2 pools floor odd sizes.
    m = randomise(DenseNet(growth_rate=6, block_config=(2, 2, 4, 3), num_init_features=12, bn_size=2,
                           num_classes=3), 3)
    x = torch.randn(1, 3, 70, 70, generator=torch.Generator().manual_seed(4))
    write_case("densenet201_narrow", m, x,
               dict(arch="densenet201", task="classification", activation="softmax", input_size=[70, 70],
                    in_channels=3, normalize="imagenet", classes=["a", "b", "c"],
                    cam_layer="features.norm5"),
               dict(growth_rate=6, block_config=[2, 2, 4, 3], num_init_features=12, bn_size=2),
               ["features.norm5", "features.transition3"])


def xrv_cases():
    import torchxrayvision as xrv

    g = torch.Generator().manual_seed(5)
    th = 0.05 + 0.5 * torch.rand(18, generator=g)
    th[[14, 15, 17]] = float("nan")  # xrv marks outputs a checkpoint was not trained on with NaN
    m = xrv.models.DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, bn_size=4,
                            in_channels=1, num_classes=18, weights=None, op_threshs=th)
    m = randomise(m, 6)
    # xrv's input range is [-1024, 1024]
    x = 1024.0 * (2 * torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(7)) - 1)
    # scale the stem so that activations stay O(1) with xrv's input range
    with torch.no_grad():
        m.features.conv0.weight /= 512.0

    def logits(mm, xx):
        return mm.classifier(mm.features2(xx))

    write_case("xrv_densenet121_narrow", m, x,
               dict(arch="xrv-densenet121", task="classification", activation="sigmoid", input_size=[64, 64],
                    in_channels=1, normalize="xrv", classes=list(xrv.datasets.default_pathologies),
                    cam_layer="features.denseblock4"),
               dict(growth_rate=8, block_config=[2, 2, 2, 2], num_init_features=16, bn_size=4),
               ["features.denseblock4", "features.norm5"], weights_fmt="pth",
               extra={"forward": logits, "arrays": {"output_op_norm": lambda mm, xx: xrv.models.op_norm(
                   torch.sigmoid(logits(mm, xx)).float(), mm.op_threshs.float())}})


def narrow_vgg(cfg, batch_norm, width, num_classes):
    from torchvision.models.vgg import VGG, make_layers

    m = VGG(make_layers(cfg, batch_norm=batch_norm), num_classes=num_classes, init_weights=False)
    last = [c for c in cfg if c != "M"][-1]
    m.classifier = nn.Sequential(
        nn.Linear(last * 7 * 7, width), nn.ReLU(True), nn.Dropout(),
        nn.Linear(width, width), nn.ReLU(True), nn.Dropout(),
        nn.Linear(width, num_classes))
    return m


def vgg_cases():
    cfg = [4, 4, "M", 8, 8, "M", 8, 8, 8, "M", 16, 16, 16, "M", 16, 16, 16, "M"]  # vgg16's "D", narrow
    m = randomise(narrow_vgg(cfg, False, 32, 4), 8)
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(9))  # 3x3 -> avgpool 7x7
    write_case("vgg16_narrow", m, x,
               dict(arch="vgg16", task="classification", activation="softmax", input_size=[96, 96],
                    in_channels=3, normalize="imagenet", classes=["a", "b", "c", "d"], cam_layer="features.29"),
               dict(vgg_cfg=[str(c) if c == "M" else c for c in cfg], classifier_width=32),
               ["features.29", "features.30", "features.15"])
    m = randomise(narrow_vgg(cfg, True, 24, 3), 10)
    x = torch.randn(1, 3, 160, 160, generator=torch.Generator().manual_seed(11))  # 5x5 -> 7x7
    write_case("vgg16_bn_narrow", m, x,
               dict(arch="vgg16_bn", task="classification", activation="softmax", input_size=[160, 160],
                    in_channels=3, normalize="imagenet", classes=["a", "b", "c"], cam_layer="features.42"),
               dict(vgg_cfg=[str(c) if c == "M" else c for c in cfg], classifier_width=24),
               ["features.42", "features.43"])
    # PyTorch's adaptive average pooling on sizes that do not divide, both directions.
    d = os.path.join(ROOT, "vgg_adaptive_pool")
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(12)
    for i, (h, w) in enumerate([(11, 13), (5, 3), (7, 7), (20, 9)]):
        a = torch.randn(1, 2, h, w, generator=g)
        np.save(os.path.join(d, f"input{i}.npy"), a.numpy())
        np.save(os.path.join(d, f"output{i}.npy"), nn.functional.adaptive_avg_pool2d(a.double(), 7).float().numpy())


def convnext_cases():
    from torchvision.models.convnext import ConvNeXt, CNBlockConfig

    depths, dims = [2, 1, 3, 1], [8, 16, 24, 32]
    setting = [CNBlockConfig(dims[i], dims[i + 1] if i + 1 < 4 else None, depths[i]) for i in range(4)]
    m = randomise(ConvNeXt(setting, stochastic_depth_prob=0.1, num_classes=6), 13)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(14))
    write_case("convnext_tiny_narrow", m, x,
               dict(arch="convnext_tiny", task="classification", activation="softmax", input_size=[64, 64],
                    in_channels=3, normalize="imagenet", classes=[f"c{i}" for i in range(6)],
                    cam_layer="features.7"),
               dict(depths=depths, dims=dims), ["features.7", "features.5", "features.0"])


def smp_case():
    import segmentation_models_pytorch as smp
    from segmentation_models_pytorch.encoders import encoders

    params = encoders["densenet121"]["params"]
    saved = dict(params)
    params.update(out_channels=[3, 16, 32, 48, 56, 52], num_init_features=16, growth_rate=8,
                  block_config=(2, 4, 4, 3))
    try:
        m = smp.Unet(encoder_name="densenet121", encoder_weights=None, in_channels=3, classes=2,
                     decoder_channels=(16, 16, 8, 8, 8))
    finally:
        params.clear()
        params.update(saved)
    m = randomise(m, 15)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(16))
    d = os.path.join(ROOT, "smp_unet_densenet121")
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    sd = {k: v.detach().contiguous().clone() for k, v in m.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    save_file(sd, os.path.join(d, "weights.safetensors"))
    m64 = m.double()
    with torch.no_grad():
        stages = m64.encoder(x.double())
        y = m64(x.double())
    np.save(os.path.join(d, "input.npy"), x.numpy())
    np.save(os.path.join(d, "output.npy"), y.float().numpy())
    for i, s in enumerate(stages):
        np.save(os.path.join(d, f"stage{i}.npy"), s.float().numpy())
    with open(os.path.join(d, "model.toml"), "w") as f:
        f.write("\n".join([
            'name = "smp_unet_densenet121"', 'arch = "smp-unet"', 'encoder = "densenet121"',
            'weights = "weights.safetensors"', 'task = "segmentation"', 'activation = "softmax"',
            "input_size = [64, 64]", "in_channels = 3", 'normalize = "imagenet"',
            'classes = ["background", "foreground"]', 'cam_layer = "encoder.features.norm5"',
            "", "[arch_config]", "growth_rate = 8",
            "block_config = [2, 4, 4, 3]", "num_init_features = 16", "bn_size = 4",
            "decoder_channels = [16, 16, 8, 8, 8]"]))
    print("smp_unet_densenet121", [tuple(s.shape) for s in stages], tuple(y.shape))


def full_check(out_dir):
    """Full-size standard models with random weights; writes <arch>/{weights.safetensors,input,output}.npy
    and times torch's forward at 1x3x224x224 with 2 threads."""
    from torchvision.models import densenet121, vgg16, convnext_tiny

    torch.set_num_threads(2)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(100))
    for name, ctor in [("densenet121", densenet121), ("vgg16", vgg16), ("convnext_tiny", convnext_tiny)]:
        torch.manual_seed(0)
        m = randomise(ctor(weights=None), 101)
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        sd = {k: v.detach().contiguous().clone() for k, v in m.state_dict().items()
              if not k.endswith("num_batches_tracked")}
        save_file(sd, os.path.join(d, "weights.safetensors"))
        with torch.no_grad():
            m(x)
            ts = []
            for _ in range(5):
                t0 = time.perf_counter()
                m(x)
                ts.append(time.perf_counter() - t0)
            print(f"torch {name} 1x3x224x224 forward, 2 threads: median {sorted(ts)[2]*1e3:.0f} ms "
                  f"(min {min(ts)*1e3:.0f} ms)")
            y = m.double()(x.double())
        np.save(os.path.join(d, "input.npy"), x.numpy())
        np.save(os.path.join(d, "output.npy"), y.float().numpy())
        print(name, "saved, max|logit|", float(y.abs().max()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full-check", metavar="DIR")
    a = ap.parse_args()
    if a.full_check:
        full_check(a.full_check)
        return
    torch.set_num_threads(2)
    densenet_cases()
    xrv_cases()
    vgg_cases()
    convnext_cases()
    smp_case()


if __name__ == "__main__":
    main()
