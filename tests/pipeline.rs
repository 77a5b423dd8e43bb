//! Models through the manifest (registry), `radlens predict`, and the worker: jobs, progress,
//! cancellation, failures and the model cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use candle_core::{Device, Tensor};
use radlens::io::npy::read_npy_f32;
use radlens::io::{load_study, LoadOptions};
use radlens::model::weights::DeviceChoice;
use radlens::model::{load_model, Task};
use radlens::pipeline::worker::Worker;
use radlens::pipeline::{Event, Job, JobOutput, ModelCache, PredictJob};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model_dir(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

fn radlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_radlens")).args(args).output().expect("run radlens")
}

fn manifests() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixtures().join("models")).unwrap() {
        let dir = entry.unwrap().path();
        for sub in
            [dir.clone()].into_iter().chain(std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()))
        {
            if sub.join("model.toml").is_file() {
                out.push(sub.join("model.toml"));
            }
        }
    }
    out.sort();
    out
}

/// Every parity fixture, loaded the way users load models (manifest → checked weights → registry),
/// reproduces PyTorch's logits.
#[test]
fn every_fixture_model_loads_from_its_manifest_and_matches_torch() {
    let all = manifests();
    assert!(all.len() >= 10, "expected the parity fixtures, found {}", all.len());
    for manifest in all {
        let dir = manifest.parent().unwrap();
        let model =
            load_model(&manifest, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        let (x, shape) = read_npy_f32(&dir.join("input.npy")).unwrap();
        let (want, _) = read_npy_f32(&dir.join("output.npy")).unwrap();
        let x = Tensor::from_vec(x, shape, &Device::Cpu).unwrap();
        let got: Vec<f32> = model.net.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got.len(), want.len(), "{}", manifest.display());
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        let diff = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff <= 1e-4 * scale, "{}: max diff {diff} (scale {scale})", manifest.display());
    }
}

#[test]
fn predict_writes_probabilities_masks_and_label_maps_on_the_study_grid() {
    let dir = tempfile::tempdir().unwrap();
    let image = fixtures().join("raster/cxr_covid_01902.png");
    let model = model_dir("smp_unet_resnet18");
    let npy = dir.path().join("p.npy");
    let o = radlens(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        image.to_str().unwrap(),
        "--out",
        npy.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (probs, shape) = read_npy_f32(&npy).unwrap();
    assert_eq!(shape, vec![2, 256, 256], "two classes on the 256 × 256 study grid");
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));

    // The same numbers as the library path the viewer uses.
    let study = load_study(&image, &LoadOptions::default()).unwrap();
    let loaded = load_model(&model.join("model.toml"), &Device::Cpu).unwrap();
    let lib = loaded.predict_slices(&study.volume, &[0], |_, _| true).unwrap().unwrap();
    assert_eq!(lib[0], probs);

    let png = dir.path().join("mask.png");
    let o = radlens(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        image.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mask = radlens::io::load_mask(&png).unwrap();
    assert_eq!(mask.dims(), [1, 256, 256]);
    let expected_fg =
        radlens::model::probabilities_to_labels(&probs, 2, 0.5).iter().filter(|&&l| l > 0).count();
    assert_eq!(mask.count(radlens::imaging::LabelSelector::Any), expected_fg);

    let nii = dir.path().join("labels.nii.gz");
    let o = radlens(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        image.to_str().unwrap(),
        "--out",
        nii.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let labels = radlens::io::nifti::load_nifti_labels(&nii).unwrap();
    assert_eq!(labels.dims(), [1, 256, 256]);
    assert_eq!(labels.count(radlens::imaging::LabelSelector::Any), expected_fg);
}

#[test]
fn predict_all_slices_of_a_volume() {
    let dir = tempfile::tempdir().unwrap();
    let study = fixtures().join("nifti/lidc_crop_hu.nii.gz");
    let npy = dir.path().join("p.npy");
    let model = model_dir("unet");
    let o = radlens(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        study.to_str().unwrap(),
        "--all-slices",
        "--out",
        npy.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, shape) = read_npy_f32(&npy).unwrap();
    let dims = load_study(&study, &LoadOptions::default()).unwrap().volume.dims();
    let classes = radlens::model::manifest::load_manifest(&model.join("model.toml")).unwrap().classes.len();
    let mut want = vec![dims[0]];
    if classes > 1 {
        want.push(classes);
    }
    want.extend([dims[1], dims[2]]);
    assert_eq!(shape, want);
}

#[test]
fn predict_classifier_prints_probabilities_in_manifest_order() {
    let dir = tempfile::tempdir().unwrap();
    let image = fixtures().join("raster/cxr_covid_01903.png");
    let model = model_dir("resnet50_cls");
    let npy = dir.path().join("p.npy");
    let o = radlens(&[
        "predict",
        "--model",
        model.to_str().unwrap(),
        image.to_str().unwrap(),
        "--out",
        npy.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let keys: Vec<usize> =
        ["effusion", "nodule", "pneumothorax"].iter().map(|k| text.find(k).expect(k)).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "order: {text}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let (probs, shape) = read_npy_f32(&npy).unwrap();
    assert_eq!(shape, vec![3]);
    assert!((v["nodule"].as_f64().unwrap() - probs[1] as f64).abs() < 1e-6);
}

#[test]
fn a_checkpoint_for_another_architecture_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let src = model_dir("smp_unet_resnet18");
    std::fs::copy(src.join("weights.safetensors"), dir.path().join("weights.safetensors")).unwrap();
    let toml = std::fs::read_to_string(src.join("model.toml")).unwrap().replace("resnet18", "resnet34");
    std::fs::write(dir.path().join("model.toml"), toml).unwrap();
    let image = fixtures().join("raster/cxr_covid_01902.png");
    let o = radlens(&["predict", "--model", dir.path().to_str().unwrap(), image.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("missing") && err.contains("weights.safetensors"), "{err}");
    let o = radlens(&["predict", "--model", "no-such-model", image.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

fn predict_job(model: &str, volume: Arc<radlens::imaging::Volume>, slices: Vec<usize>) -> Job {
    Job::Predict(PredictJob {
        model: model_dir(model).join("model.toml"),
        device: DeviceChoice::Cpu,
        volume,
        slices,
    })
}

fn wait_terminal(worker: &mut Worker) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(e) = worker.recv_timeout(Duration::from_secs(120)) {
        let done = e.is_terminal();
        events.push(e);
        if done {
            break;
        }
    }
    events
}

#[test]
fn worker_runs_jobs_reports_progress_and_survives_failures() {
    let volume = Arc::new(
        load_study(&fixtures().join("nifti/lidc_crop_hu.nii.gz"), &LoadOptions::default()).unwrap().volume,
    );
    let mut worker = Worker::spawn().unwrap();
    let bad = worker.submit(Job::Predict(PredictJob {
        model: PathBuf::from("/no/such/model.toml"),
        device: DeviceChoice::Cpu,
        volume: volume.clone(),
        slices: vec![0],
    }));
    let events = wait_terminal(&mut worker);
    match events.last() {
        Some(Event::Failed { id, error }) => {
            assert_eq!(*id, bad);
            assert!(error.contains("model.toml"), "{error}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let good = worker.submit(predict_job("unet", volume.clone(), (0..volume.depth()).collect()));
    let events = wait_terminal(&mut worker);
    assert!(matches!(events.first(), Some(Event::Started { id }) if *id == good));
    assert!(events.iter().any(|e| matches!(e, Event::Progress { done, total, .. } if done == total)));
    match events.last() {
        Some(Event::Finished { id, output }) => {
            assert_eq!(*id, good);
            let JobOutput::Prediction(p) = output.as_ref() else { panic!("not a prediction") };
            assert_eq!(p.task, Task::Segmentation);
            assert_eq!(p.probs.len(), volume.depth());
        }
        other => panic!("expected a result, got {other:?}"),
    }
}

#[test]
fn cancelled_jobs_end_cancelled_and_the_worker_goes_on() {
    let volume = Arc::new(
        load_study(&fixtures().join("nifti/lidc_crop_hu.nii.gz"), &LoadOptions::default()).unwrap().volume,
    );
    let mut worker = Worker::spawn().unwrap();
    let first =
        worker.submit(predict_job("smp_unet_resnet50", volume.clone(), (0..volume.depth()).collect()));
    let second = worker.submit(predict_job("unet", volume.clone(), vec![0]));
    worker.cancel(first);
    let events = wait_terminal(&mut worker);
    assert!(matches!(events.last(), Some(Event::Cancelled { id }) if *id == first), "{events:?}");
    let events = wait_terminal(&mut worker);
    assert!(matches!(events.last(), Some(Event::Finished { id, .. }) if *id == second), "{events:?}");
}

#[test]
fn the_model_cache_loads_a_model_once() {
    let mut cache = ModelCache::default();
    let m = model_dir("unet").join("model.toml");
    let (a, _) = cache.get(&m, DeviceChoice::Cpu).unwrap();
    let (b, _) = cache.get(&m, DeviceChoice::Cpu).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(cache.len(), 1);
}

#[test]
fn bench_model_prints_a_row() {
    let o = radlens(&["bench", "model", "--only", "densenet121 1x3", "--repeats", "1", "--no-torch"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout);
    let row =
        s.lines().find(|l| l.starts_with("forward densenet121 1x3x224")).unwrap_or_else(|| panic!("{s}"));
    let secs: f64 = row.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(secs > 0.0);
    let o = radlens(&["bench", "model", "--only", "no-such-row"]);
    assert_eq!(o.status.code(), Some(2));
}
