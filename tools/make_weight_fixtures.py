"""Writes the tiny checkpoints and torch reference values used by tests/model_core.rs.

Run from the repository root:  python3 tools/make_weight_fixtures.py
Output: tests/fixtures/weights/ (a few KB). Deterministic (fixed seed), so re-running changes nothing.
"""
import json
import os
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join("tests", "fixtures", "weights")


class Tiny(nn.Module):
    """conv (3→4, 3×3, bias) → bn → global average → linear (4→2)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return self.fc(x.mean(dim=(2, 3)))


def short(t):
    """float32 values with 9 significant digits (exact for f32) to keep the JSON small."""
    return [float(f"{v:.9g}") for v in t.flatten().tolist()]


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    m = Tiny().eval()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 1.5)
        m.bn.num_batches_tracked.fill_(7)
    sd = m.state_dict()

    # Every key as written, for the Rust test to compare against (num_batches_tracked is an int64).
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(OUT, "tiny.safetensors"))
    torch.save(sd, os.path.join(OUT, "tiny.pth"))
    torch.save(nn.DataParallel(m).state_dict(), os.path.join(OUT, "tiny_dataparallel.pth"))
    torch.save({"epoch": 3, "state_dict": sd}, os.path.join(OUT, "tiny_wrapped_state_dict.pth"))
    torch.save({"model": sd, "optimizer": {"lr": 0.1}}, os.path.join(OUT, "tiny_wrapped_model.pth"))
    torch.save({"model_state_dict": sd}, os.path.join(OUT, "tiny_wrapped_model_state_dict.pth"))
    save_file({k: v.half() if v.is_floating_point() else v for k, v in sd.items()},
              os.path.join(OUT, "tiny_f16.safetensors"))
    torch.save(OrderedDict((k, v.double() if v.is_floating_point() else v) for k, v in sd.items()),
               os.path.join(OUT, "tiny_f64.pth"))
    # A checkpoint saved from a wrapper module whose only child is `model` (every key has `model.`).
    save_file({"model." + k: v.contiguous() for k, v in sd.items()}, os.path.join(OUT, "tiny_model_prefix.safetensors"))

    # Legacy DenseNet names, as in the torchvision checkpoints that _load_state_dict renames.
    g = torch.Generator().manual_seed(1)
    legacy = OrderedDict()
    p = "features.denseblock1.denselayer1."
    legacy[p + "norm.1.weight"] = torch.rand(2, generator=g)
    legacy[p + "norm.1.bias"] = torch.rand(2, generator=g)
    legacy[p + "norm.1.running_mean"] = torch.rand(2, generator=g)
    legacy[p + "norm.1.running_var"] = torch.rand(2, generator=g)
    legacy[p + "conv.1.weight"] = torch.rand(3, 2, 1, 1, generator=g)
    legacy[p + "norm.2.weight"] = torch.rand(3, generator=g)
    legacy[p + "conv.2.weight"] = torch.rand(1, 3, 3, 3, generator=g)
    legacy["features.norm5.weight"] = torch.rand(3, generator=g)
    torch.save(legacy, os.path.join(OUT, "densenet_legacy.pth"))

    # Not a checkpoint / damaged ones.
    with open(os.path.join(OUT, "not_a_checkpoint.pth"), "w") as f:
        f.write("this is a text file\n")
    open(os.path.join(OUT, "empty.safetensors"), "wb").close()
    with open(os.path.join(OUT, "tiny.safetensors"), "rb") as f:
        data = f.read()
    with open(os.path.join(OUT, "truncated.safetensors"), "wb") as f:
        f.write(data[: len(data) // 2])

    # Reference values: the tiny net's output on a fixed input, and bilinear resizes.
    x = torch.linspace(-1, 1, 3 * 5 * 6).reshape(1, 3, 5, 6)
    with torch.no_grad():
        logits = m(x)
    ref = {"tiny_input": short(x), "tiny_input_shape": list(x.shape),
           "tiny_logits": short(logits), "bilinear": []}
    src = torch.tensor([[0.0, 1.0, 5.0, 2.0, -3.0],
                        [4.0, 0.5, 2.5, 7.0, 1.0],
                        [9.0, -2.0, 3.0, 0.0, 6.0],
                        [1.5, 8.0, -1.0, 4.0, 2.0]])
    for (oh, ow) in [(7, 11), (2, 3), (4, 5), (1, 1), (3, 9), (13, 2)]:
        y = F.interpolate(src[None, None], size=(oh, ow), mode="bilinear", align_corners=False)
        ref["bilinear"].append({"h": 4, "w": 5, "oh": oh, "ow": ow, "src": short(src), "out": short(y)})
    g = torch.Generator().manual_seed(2)
    big = torch.rand(1, 1, 17, 13, generator=g) * 255
    for (oh, ow) in [(8, 8), (30, 20), (17, 13)]:
        y = F.interpolate(big, size=(oh, ow), mode="bilinear", align_corners=False)
        ref["bilinear"].append({"h": 17, "w": 13, "oh": oh, "ow": ow, "src": short(big), "out": short(y)})
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
