#!/usr/bin/env python3
"""LIME side by side: the `lime` package on a full-size DenseNet-121 (random weights) at 224², and the
files radlens needs to explain the same model on the same image (`cargo test --test xai_perturb --
--ignored lime_full_size`). Benchmarks only; never at run time.

Writes to OUT (default /tmp/radlens_lime_bench): model.toml + weights.safetensors (torchvision names),
grey224.u8 (a 224x224 centre crop of the CXR, raw 8-bit), lime.json (target class, timings, lime's
segments and superpixel weights for 1,000 samples).
Usage: python3 tools/bench_lime_torch.py [OUT] [cxr.png] [--threads 2]
"""
import json, os, sys, time
import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from torchvision.models import densenet121

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures_classifiers import randomise  # noqa: E402

args = [a for a in sys.argv[1:] if not a.startswith("--")]
threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
if "--threads" in sys.argv:
    args = [a for a in args if a != str(threads)]
out = args[0] if args else "/tmp/radlens_lime_bench"
src = args[1] if len(args) > 1 else "/work/shared/data/cxr_covid_qu_ex_infection/images/covid_01902.png"
os.makedirs(out, exist_ok=True)
torch.set_num_threads(threads)

torch.manual_seed(0)
model = randomise(densenet121(weights=None, num_classes=3), 5).eval()
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out, "weights.safetensors"))
with open(os.path.join(out, "model.toml"), "w") as f:
    f.write('name = "densenet121_random"\narch = "densenet121"\nweights = "weights.safetensors"\n'
            'task = "classification"\nactivation = "softmax"\ninput_size = [224, 224]\nin_channels = 3\n'
            'normalize = "imagenet"\nclasses = ["a", "b", "c"]\ncam_layer = "features.denseblock4"\n')

g = np.asarray(Image.open(src).convert("L").resize((256, 256)))[16:240, 16:240].copy()
g.astype(np.uint8).tofile(os.path.join(out, "grey224.u8"))
rgb = np.dstack([g, g, g])
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def logits(imgs):
    x = torch.from_numpy(np.asarray(imgs, dtype=np.float32)).permute(0, 3, 1, 2) / 255.0
    with torch.no_grad():
        return model((x - mean) / std).numpy()


target = int(np.argmax(logits(rgb[None])[0]))
from lime import lime_image  # noqa: E402

explainer = lime_image.LimeImageExplainer(random_state=0)
t0 = time.perf_counter()
exp = explainer.explain_instance(rgb, logits, labels=(target,), top_labels=None, hide_color=None,
                                 num_samples=1000, batch_size=16, random_seed=0)
secs = time.perf_counter() - t0
weights = dict(exp.local_exp[target])
n = int(exp.segments.max()) + 1
res = dict(target=target, seconds=secs, threads=threads, samples=1000, n_segments=n,
           weights=[float(weights.get(i, 0.0)) for i in range(n)], score=float(exp.score),
           segments=exp.segments.astype(int).ravel().tolist())
json.dump(res, open(os.path.join(out, "lime.json"), "w"))
print(f"lime 1000 samples: {secs:.1f} s, {n} segments, target {target}, R² {exp.score:.3f}")
