//! Model-randomisation sanity check (Adebayo et al., "Sanity checks for saliency maps", 2018): an
//! explanation that survives re-initialising the layers it is supposed to explain is not explaining
//! the model. The last stage of a ResNet classifier (`layer4`) and its `fc` are replaced by random
//! weights; Grad-CAM, Grad-CAM++ and Integrated Gradients must change (Spearman rank correlation of
//! the maps < 0.5), while the unchanged model reproduces its own map exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use radlens::model::load_model;
use radlens::model::weights::load_state_dict;
use radlens::xai::gradcam::GradCam;
use radlens::xai::gradcam_pp::GradCamPlusPlus;
use radlens::xai::integrated_gradients::IntegratedGradients;
use radlens::xai::perturb::spearman;
use radlens::xai::{ExplainInput, Explainer, Heatmap, Params, Target};

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/resnet50_cls")
}

/// SplitMix64 → uniform [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A copy of the fixture in a fresh folder, with every tensor whose name starts with one of
/// `prefixes` re-drawn (He-normal weights, BatchNorm statistics near identity), as a new model.toml.
fn randomised_copy(prefixes: &[&str], seed: u64) -> PathBuf {
    let src = model_dir();
    let dir = std::env::temp_dir().join(format!("radlens_sanity_{}_{seed}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(src.join("model.toml"), dir.join("model.toml")).unwrap();
    let sd = load_state_dict(&src.join("weights.safetensors")).unwrap();
    let mut rng = Rng(seed);
    let mut names: Vec<&String> = sd.tensors.keys().collect();
    names.sort(); // a HashMap's order must not decide the draws
    let mut out: HashMap<String, Tensor> = HashMap::new();
    let mut replaced = 0;
    for name in names {
        let t = &sd.tensors[name];
        if !prefixes.iter().any(|p| name.starts_with(p)) || t.dtype() == DType::I64 {
            out.insert(name.clone(), t.clone());
            continue;
        }
        replaced += 1;
        let dims = t.dims().to_vec();
        let n = t.elem_count();
        let fan_in: usize = dims.iter().skip(1).product::<usize>().max(1);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                let g = rng.normal();
                if name.ends_with("running_var") {
                    (0.5 + rng.next()) as f32
                } else if dims.len() == 1 && name.ends_with("weight") {
                    (1.0 + 0.2 * g) as f32
                } else if dims.len() == 1 {
                    (0.1 * g) as f32
                } else {
                    (g * (2.0 / fan_in as f64).sqrt()) as f32
                }
            })
            .collect();
        out.insert(
            name.clone(),
            Tensor::from_vec(v, dims, &Device::Cpu).unwrap().to_dtype(t.dtype()).unwrap(),
        );
    }
    assert!(replaced > 10, "only {replaced} tensors re-drawn");
    candle_core::safetensors::save(&out, dir.join("weights.safetensors")).unwrap();
    dir
}

fn explain(e: &dyn Explainer, manifest: &Path, x: &Tensor, target: &Target) -> Heatmap {
    let model = load_model(manifest, &Device::Cpu).unwrap();
    let (h, w) = (x.dim(2).unwrap(), x.dim(3).unwrap());
    let grey = vec![0.0; h * w];
    let input = ExplainInput {
        net: model.net.as_ref(),
        input: x,
        grey: &grey,
        target,
        default_layer: model.manifest.cam_layer.as_deref(),
    };
    e.explain(&input, &Params::default(), &mut |_, _| true).unwrap()
}

fn rho(a: &Heatmap, b: &Heatmap) -> f64 {
    let f = |m: &Heatmap| m.values.iter().map(|&v| v as f64).collect::<Vec<_>>();
    spearman(&f(a), &f(b))
}

#[test]
fn randomising_the_last_stage_changes_gradcam_gradcampp_and_ig() {
    // 192² so that layer4 (stride 32) is a 6×6 grid, not 2×2: a rank correlation over four cells
    // would say little. A smooth deterministic image, ImageNet-normalised range.
    let (h, w) = (192, 192);
    let v: Vec<f32> = (0..3 * h * w)
        .map(|i| {
            let (y, x) = ((i % (h * w)) / w, i % w);
            let (fy, fx) = (y as f32 / h as f32, x as f32 / w as f32);
            ((fy * 7.0).sin() * (fx * 5.0).cos() + 0.5 * ((fx + fy) * 11.0).sin()) * 1.5
        })
        .collect();
    let x = Tensor::from_vec(v, (1, 3, h, w), &Device::Cpu).unwrap();
    let original = model_dir().join("model.toml");
    let random = randomised_copy(&["layer4.", "fc."], 7).join("model.toml");
    // The same class on both models, so only the weights differ.
    let target = Target::Class(1);
    let methods: [(&str, Box<dyn Explainer>); 3] = [
        ("gradcam", Box::new(GradCam)),
        ("gradcam++", Box::new(GradCamPlusPlus)),
        ("ig", Box::new(IntegratedGradients::default())),
    ];
    for (name, e) in methods {
        let a = explain(e.as_ref(), &original, &x, &target);
        let again = explain(e.as_ref(), &original, &x, &target);
        let b = explain(e.as_ref(), &random, &x, &target);
        assert_eq!(a.values, again.values, "{name}: same model, same map");
        assert!(
            a.values.iter().any(|&v| v != 0.0) && b.values.iter().any(|&v| v != 0.0),
            "{name}: empty map"
        );
        let r = rho(&a, &b);
        println!("{name}: Spearman original vs layer4+fc randomised = {r:.3}");
        assert!(r < 0.5, "{name}: the map survived randomising the last stage (Spearman {r:.3})");
    }
    let _ = std::fs::remove_dir_all(random.parent().unwrap());
}
