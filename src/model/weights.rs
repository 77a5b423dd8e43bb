//! Checkpoints as PyTorch wrote them: `.safetensors` and `.pth` state dicts, loaded with their original
//! names, renamed the way PyTorch itself would accept them, and checked against the network built from
//! them so that every problem is reported at once, in one line.
//!
//! Flow: [`load_state_dict`] → [`normalize_names`] → [`CheckedWeights::new`] → build the network from
//! [`CheckedWeights::var_builder`] → [`CheckedWeights::finish`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use super::ModelError;

/// Wrapper keys under which training scripts commonly store the state dict (`torch.save({"state_dict":
/// model.state_dict(), "epoch": ...})`), tried in this order before the file is read as a plain dict.
pub const WRAPPER_KEYS: [&str; 3] = ["state_dict", "model_state_dict", "model"];

/// How many names of each kind of problem a one-line error lists before "...".
const LIST_FIRST: usize = 3;

/// A state dict: PyTorch names → F32 tensors on the CPU, with the file they came from (for messages).
#[derive(Debug, Clone)]
pub struct StateDict {
    pub path: PathBuf,
    pub tensors: HashMap<String, Tensor>,
}

impl StateDict {
    pub fn new(path: impl Into<PathBuf>, tensors: HashMap<String, Tensor>) -> Self {
        StateDict { path: path.into(), tensors }
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Names, sorted (for stable messages and listings).
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    fn error(&self, reason: impl Into<String>) -> ModelError {
        ModelError::Weights { path: self.path.clone(), reason: reason.into() }
    }
}

fn weights_error(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Weights { path: path.to_path_buf(), reason: reason.into() }
}

/// Keeps floating-point tensors as F32; integer ones (`num_batches_tracked`, index buffers) are dropped
/// because no layer here reads them.
fn keep_as_f32(t: Tensor) -> candle_core::Result<Option<Tensor>> {
    match t.dtype() {
        DType::F32 => Ok(Some(t)),
        DType::F16 | DType::BF16 | DType::F64 => Ok(Some(t.to_dtype(DType::F32)?)),
        _ => Ok(None),
    }
}

/// One line out of a candle error (some carry a backtrace or a nested message over several lines).
fn one_line(e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// Loads a checkpoint: `.safetensors` (memory-mapped), or `.pth` / `.pt` / `.bin` PyTorch zip
/// checkpoints through `candle_core::pickle`. A `.pth` may hold the state dict itself or wrap it under
/// one of [`WRAPPER_KEYS`]. Every tensor comes back as F32 on the CPU; integer tensors are dropped.
/// Names are as stored: call [`normalize_names`] next.
pub fn load_state_dict(path: &Path) -> Result<StateDict, ModelError> {
    let meta =
        std::fs::metadata(path).map_err(|e| weights_error(path, format!("cannot read checkpoint ({e})")))?;
    if !meta.is_file() {
        return Err(weights_error(path, "checkpoint is not a file"));
    }
    if meta.len() == 0 {
        return Err(weights_error(path, "checkpoint is empty (0 bytes)"));
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let tensors = match ext.as_str() {
        "safetensors" => load_safetensors(path)?,
        "pth" | "pt" | "bin" | "ckpt" => load_pth(path)?,
        other => {
            return Err(weights_error(
                path,
                format!("unknown checkpoint type '.{other}' (expected .safetensors, .pth, .pt or .bin)"),
            ))
        }
    };
    if tensors.is_empty() {
        return Err(weights_error(path, "checkpoint holds no floating-point tensors"));
    }
    Ok(StateDict::new(path, tensors))
}

fn load_safetensors(path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    // SAFETY: the map is read-only and lives only while the tensors are copied out of it below; a file
    // truncated by another process meanwhile could fault, the same risk every mmap loader takes.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }.map_err(|e| {
        // candle prefixes `path: "..." `; the path ends our message already.
        let why = one_line(&e).replace(&format!("path: {path:?} "), "");
        weights_error(path, format!("not a valid safetensors file ({why})"))
    })?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        let t = view
            .load(&Device::Cpu)
            .and_then(keep_as_f32)
            .map_err(|e| weights_error(path, format!("cannot read tensor '{name}' ({})", one_line(&e))))?;
        if let Some(t) = t {
            out.insert(name, t);
        }
    }
    Ok(out)
}

fn load_pth(path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    use candle_core::pickle::PthTensors;
    // Wrapped dicts first: read as a plain dict, a wrapper's non-tensor entries would be skipped with
    // noise on stderr. `read_pth_tensor_info` fails with "key not found" when the key is absent.
    let mut last_err = None;
    let mut found = None;
    for key in WRAPPER_KEYS.iter().map(|k| Some(*k)).chain(std::iter::once(None)) {
        match PthTensors::new(path, key) {
            Ok(p) if !p.tensor_infos().is_empty() => {
                found = Some(p);
                break;
            }
            Ok(_) => {}
            Err(e) => last_err = Some(e),
        }
    }
    let pth = match found {
        Some(p) => p,
        None => {
            let why = last_err.map(|e| one_line(&e)).unwrap_or_else(|| "no tensors found".into());
            return Err(weights_error(
                path,
                format!("not a PyTorch state dict (torch.save zip format expected: {why})"),
            ));
        }
    };
    let mut out = HashMap::new();
    for (name, info) in pth.tensor_infos() {
        if !matches!(info.dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
            continue;
        }
        let t = pth
            .get(name)
            .and_then(|t| t.ok_or_else(|| candle_core::Error::Msg("vanished".into())))
            .and_then(keep_as_f32)
            .map_err(|e| weights_error(path, format!("cannot read tensor '{name}' ({})", one_line(&e))))?;
        if let Some(t) = t {
            out.insert(name.clone(), t);
        }
    }
    Ok(out)
}

/// Renames a state dict the way PyTorch code would accept it:
///
/// 1. A leading `module.` (saved from `nn.DataParallel` / DDP) is stripped, then a leading `model.`
///    (saved from a wrapper whose only child is `model`, e.g. Lightning modules) — each only when EVERY
///    key has it. A dict where only some keys start with `model.` has a real submodule of that name
///    (and other modules beside it), so its names are left alone.
/// 2. Legacy DenseNet names are mapped as torchvision's `densenet._load_state_dict` does, i.e. the regex
///    `^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$`
///    with the two groups joined without the dot: `...denselayer3.norm.1.weight` → `...norm1.weight`,
///    `conv.2.weight` → `conv2.weight`.
pub fn normalize_names(sd: &mut StateDict) {
    for prefix in ["module.", "model."] {
        if !sd.tensors.is_empty() && sd.tensors.keys().all(|k| k.starts_with(prefix)) {
            sd.tensors = std::mem::take(&mut sd.tensors)
                .into_iter()
                .map(|(k, v)| (k[prefix.len()..].to_string(), v))
                .collect();
        }
    }
    let renames: Vec<(String, String)> =
        sd.tensors.keys().filter_map(|k| legacy_densenet_name(k).map(|n| (k.clone(), n))).collect();
    for (old, new) in renames {
        if let Some(t) = sd.tensors.remove(&old) {
            sd.tensors.insert(new, t);
        }
    }
}

/// The torchvision DenseNet rename for one key, or None when the key does not match the pattern.
pub fn legacy_densenet_name(key: &str) -> Option<String> {
    // Split as `head.{norm|relu|conv}.{1|2}.{param}` from the right, then check `head` ends with
    // `denselayer<digits>` — the regex's `.*` is greedy, so the last such group is the one renamed.
    let (rest, param) = key.rsplit_once('.')?;
    if !matches!(param, "weight" | "bias" | "running_mean" | "running_var") {
        return None;
    }
    let (rest, digit) = rest.rsplit_once('.')?;
    if !matches!(digit, "1" | "2") {
        return None;
    }
    let (head, layer) = rest.rsplit_once('.')?;
    if !matches!(layer, "norm" | "relu" | "conv") {
        return None;
    }
    // `.*denselayer\d+`: any text, then "denselayer" and at least one digit, right before `.norm` etc.
    let without_digits = head.trim_end_matches(|c: char| c.is_ascii_digit());
    if without_digits.len() == head.len() || !without_digits.ends_with("denselayer") {
        return None;
    }
    Some(format!("{head}.{layer}{digit}.{param}"))
}

/// What building a network from a checkpoint asked for and found.
#[derive(Debug, Default)]
struct Record {
    requested: BTreeSet<String>,
    /// Name → requested shape (None when asked without a shape).
    missing: BTreeMap<String, Option<Vec<usize>>>,
    /// Name → (file shape, model shape).
    misshaped: BTreeMap<String, (Vec<usize>, Vec<usize>)>,
}

#[derive(Debug)]
struct Inner {
    weights: StateDict,
    record: Mutex<Record>,
}

impl Inner {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        // A panic while holding the lock leaves a record that is still consistent (plain inserts).
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The VarBuilder backend: serves tensors from the state dict, never fails for a missing or mis-shaped
/// tensor (it records it and returns zeros of the requested shape) so that the whole network builds and
/// [`CheckedWeights::finish`] can report every problem at once.
struct CheckingBackend(Arc<Inner>);

impl SimpleBackend for CheckingBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut rec = self.0.record();
        rec.requested.insert(name.to_string());
        match self.0.weights.get(name) {
            Some(t) if t.shape() == &s => {
                drop(rec);
                t.to_device(dev)?.to_dtype(dtype)
            }
            Some(t) => {
                rec.misshaped.insert(name.to_string(), (t.dims().to_vec(), s.dims().to_vec()));
                drop(rec);
                Tensor::zeros(s, dtype, dev)
            }
            None => {
                rec.missing.insert(name.to_string(), Some(s.dims().to_vec()));
                drop(rec);
                Tensor::zeros(s, dtype, dev)
            }
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let mut rec = self.0.record();
        rec.requested.insert(name.to_string());
        match self.0.weights.get(name) {
            Some(t) => {
                drop(rec);
                t.to_device(dev)?.to_dtype(dtype)
            }
            None => {
                // No shape to make zeros of: this one has to fail now (it is recorded all the same).
                rec.missing.insert(name.to_string(), None);
                Err(candle_core::Error::CannotFindTensor { path: name.to_string() })
            }
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.weights.get(name).is_some()
    }
}

/// A checkpoint being fitted to a network: hand [`var_builder`](Self::var_builder) to the network's
/// constructor, then call [`finish`](Self::finish).
#[derive(Debug, Clone)]
pub struct CheckedWeights {
    inner: Arc<Inner>,
    model: String,
    allow_unused: Vec<String>,
}

/// What [`CheckedWeights::finish`] found when the checkpoint fits.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsReport {
    pub path: PathBuf,
    /// Tensors the network took from the file.
    pub used: usize,
    /// Tensors in the file the network never asked for, allowed by the caller (sorted).
    pub ignored: Vec<String>,
}

impl CheckedWeights {
    /// `model` names the network in messages ("densenet121").
    pub fn new(weights: StateDict, model: impl Into<String>) -> Self {
        CheckedWeights {
            inner: Arc::new(Inner { weights, record: Mutex::new(Record::default()) }),
            model: model.into(),
            allow_unused: Vec::new(),
        }
    }

    /// Tensors in the file that the network may leave unused (read elsewhere, e.g. `op_threshs`, or
    /// training-only heads). An entry matches a name equal to it, a name whose last dotted component
    /// equals it (`num_batches_tracked`), or, when it ends with `.`, every name starting with it
    /// (`aux_classifier.`).
    pub fn allow_unused<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.allow_unused.extend(names.into_iter().map(Into::into));
        self
    }

    pub fn state_dict(&self) -> &StateDict {
        &self.inner.weights
    }

    /// A VarBuilder (F32, on `device`) over the checkpoint that records every name the network asks for.
    pub fn var_builder(&self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(CheckingBackend(self.inner.clone())), DType::F32, device.clone())
    }

    fn allowed(&self, name: &str) -> bool {
        self.allow_unused.iter().any(|a| {
            name == a
                || name.rsplit('.').next() == Some(a.as_str())
                || (a.ends_with('.') && name.starts_with(a.as_str()))
        })
    }

    /// Ok when every tensor the network asked for was in the file with the right shape and every tensor
    /// in the file was used (or allowed). Otherwise one line:
    /// `checkpoint does not fit densenet121: 3 missing (a [64, 3, 7, 7], ...), 1 mis-shaped (b: file
    /// [14, 1024], model [18, 1024]), 2 unexpected (fc.weight [1000, 2048], ...): path`.
    pub fn finish(&self) -> Result<WeightsReport, ModelError> {
        let rec = self.inner.record();
        let sd = &self.inner.weights;
        let mut unexpected = Vec::new();
        let mut ignored = Vec::new();
        for name in sd.names() {
            if rec.requested.contains(name) {
                continue;
            }
            if self.allowed(name) {
                ignored.push(name.to_string());
            } else {
                unexpected.push(name);
            }
        }
        if rec.missing.is_empty() && rec.misshaped.is_empty() && unexpected.is_empty() {
            let used = rec.requested.len();
            return Ok(WeightsReport { path: sd.path.clone(), used, ignored });
        }
        let mut parts = Vec::new();
        if !rec.missing.is_empty() {
            let items = rec.missing.iter().map(|(n, s)| match s {
                Some(s) => format!("{n} {s:?}"),
                None => n.clone(),
            });
            parts.push(format!("{} missing ({})", rec.missing.len(), first_few(items)));
        }
        if !rec.misshaped.is_empty() {
            let items = rec.misshaped.iter().map(|(n, (f, m))| format!("{n}: file {f:?}, model {m:?}"));
            parts.push(format!("{} mis-shaped ({})", rec.misshaped.len(), first_few(items)));
        }
        if !unexpected.is_empty() {
            let items = unexpected.iter().map(|n| match sd.get(n) {
                Some(t) => format!("{n} {:?}", t.dims()),
                None => n.to_string(),
            });
            parts.push(format!("{} unexpected ({})", unexpected.len(), first_few(items)));
        }
        Err(sd.error(format!("checkpoint does not fit {}: {}", self.model, parts.join(", "))))
    }
}

fn first_few(items: impl ExactSizeIterator<Item = String>) -> String {
    let n = items.len();
    let mut v: Vec<String> = items.take(LIST_FIRST).collect();
    if n > LIST_FIRST {
        v.push("...".into());
    }
    v.join(", ")
}

/// Where to run the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    /// CUDA when this build has it and a GPU opens, else the CPU (silently).
    #[default]
    Auto,
}

/// Opens the requested device. With `Cuda` requested but unavailable it falls back to the CPU and
/// returns the reason as a message for the user.
pub fn select_device(requested: DeviceChoice) -> (Device, Option<String>) {
    match requested {
        DeviceChoice::Cpu => (Device::Cpu, None),
        DeviceChoice::Auto => match open_cuda() {
            Ok(d) => (d, None),
            Err(_) => (Device::Cpu, None),
        },
        DeviceChoice::Cuda => match open_cuda() {
            Ok(d) => (d, None),
            Err(why) => (Device::Cpu, Some(format!("CUDA requested but {why}; running on CPU"))),
        },
    }
}

fn open_cuda() -> Result<Device, String> {
    if !candle_core::utils::cuda_is_available() {
        return Err("this build has no CUDA support (rebuild with `--features cuda`)".into());
    }
    Device::new_cuda(0).map_err(|e| format!("no GPU could be opened ({})", one_line(&e)))
}

/// Writes `tensors` as F16 safetensors, atomically: a temporary file in the same folder, renamed over
/// `path` once complete, so a crash never leaves a half-written checkpoint.
pub fn save_safetensors_f16(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<(), ModelError> {
    let fail = |why: String| weights_error(path, format!("cannot save checkpoint ({why})"));
    let mut half = HashMap::with_capacity(tensors.len());
    for (k, t) in tensors {
        let t = t
            .to_device(&Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F16))
            .map_err(|e| fail(format!("tensor '{k}': {}", one_line(&e))))?;
        half.insert(k.clone(), t);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".radlens-")
        .suffix(".safetensors.tmp")
        .tempfile_in(&dir)
        .map_err(|e| fail(e.to_string()))?;
    candle_core::safetensors::save(&half, tmp.path()).map_err(|e| fail(one_line(&e)))?;
    tmp.as_file().sync_all().map_err(|e| fail(e.to_string()))?;
    tmp.persist(path).map_err(|e| fail(e.error.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn densenet_legacy_names_follow_torchvision() {
        let r = |k: &str| legacy_densenet_name(k);
        assert_eq!(
            r("features.denseblock1.denselayer1.norm.1.weight").as_deref(),
            Some("features.denseblock1.denselayer1.norm1.weight")
        );
        assert_eq!(
            r("features.denseblock4.denselayer16.conv.2.weight").as_deref(),
            Some("features.denseblock4.denselayer16.conv2.weight")
        );
        assert_eq!(r("x.denselayer2.norm.2.running_var").as_deref(), Some("x.denselayer2.norm2.running_var"));
        assert_eq!(r("features.denseblock1.denselayer1.norm1.weight"), None);
        assert_eq!(r("features.denseblock1.denselayer1.norm.3.weight"), None);
        assert_eq!(r("features.denseblock1.denselayer.norm.1.weight"), None);
        assert_eq!(r("features.denseblock1.denselayerX.conv.1.weight"), None);
        assert_eq!(r("features.norm5.weight"), None);
        // `.*` may be empty and needs no dot before "denselayer", as in the regex.
        assert_eq!(r("denselayer1.conv.1.weight").as_deref(), Some("denselayer1.conv1.weight"));
        assert_eq!(r("a.xdenselayer12.relu.2.bias").as_deref(), Some("a.xdenselayer12.relu2.bias"));
    }

    #[test]
    fn prefixes_are_stripped_only_when_every_key_has_them() {
        let t = Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap();
        let mk = |names: &[&str]| {
            StateDict::new("x.pth", names.iter().map(|n| (n.to_string(), t.clone())).collect())
        };
        let mut sd = mk(&["module.model.a", "module.model.b"]);
        normalize_names(&mut sd);
        assert_eq!(sd.names(), vec!["a", "b"]);
        let mut sd = mk(&["model.a", "head.b"]);
        normalize_names(&mut sd);
        assert_eq!(sd.names(), vec!["head.b", "model.a"]);
    }

    #[test]
    fn cpu_is_cpu_and_cuda_falls_back_with_a_message_without_the_feature() {
        let (d, m) = select_device(DeviceChoice::Cpu);
        assert!(d.is_cpu() && m.is_none());
        if !candle_core::utils::cuda_is_available() {
            let (d, m) = select_device(DeviceChoice::Cuda);
            assert!(d.is_cpu());
            let m = m.unwrap();
            assert!(m.starts_with("CUDA requested but") && m.ends_with("running on CPU"), "{m}");
            let (d, m) = select_device(DeviceChoice::Auto);
            assert!(d.is_cpu() && m.is_none());
        }
    }
}
