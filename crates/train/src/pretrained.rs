//! Weights trained elsewhere: a safetensors file or a PyTorch checkpoint
//! (`.pth`, `.pt`, `.pth.tar`, as `torch.save` writes them), read without
//! Python, renamed by a [`WeightMap`] and fitted to the model's shapes.
//!
//! Reading ([`read_weights`]):
//! - a PyTorch checkpoint's state dict may sit at the top level or under
//!   `state_dict` or `model` (a training script's checkpoint); candle's
//!   pickle reader takes the tensors out of the zip archive;
//! - names all under `module.` (saved from `DataParallel` or
//!   `DistributedDataParallel`) lose that prefix;
//! - besides the zip format of PyTorch 1.6 and later, the legacy format
//!   that releases from 0.4 on wrote before (pickles and raw storages in
//!   one stream) is read too; the tar format of the releases before 0.4 is
//!   refused with a message saying how to re-save it;
//! - a tensor may be a view into a larger storage (at an offset, or
//!   sharing it with another tensor); strided views are refused.
//!
//! Matching ([`match_weights`]), for every variable of the model:
//! - the map renames the checkpoint's names; a backbone map places them
//!   under the model's backbone prefix;
//! - the shapes agree, or a 2D kernel `(O, I, kh, kw)` meets a 3D one
//!   `(O, I, T, kh, kw)` and is inflated as mmaction2's
//!   `_inflate_conv_params` does, `w3[:, :, t] = w2 / T` for every `t`
//!   (a `1 x k x k` kernel is the 2D kernel itself), or the
//!   shapes differ only in axes of size 1 (the BCN authors' `(1, G, 1)`
//!   group affines against `(G)`);
//! - PyTorch's `num_batches_tracked` counters and the authors' estimated-BN
//!   `estbn_moving_speed` are not weights and are left out;
//! - names equal to or under one of the dot-separated `skip` prefixes (after the map) are neither
//!   loaded nor required: a classifier for other classes, or a head the
//!   checkpoint does not have.
//!
//! Everything else is a problem that names the variable: missing from the
//! checkpoint, unexpected in it, or of another shape. [`load_pretrained`]
//! refuses to load anything when there is one, and lists them all.

use crate::{Error, Result};
use candle_core::pickle::{Object, Stack};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// How a checkpoint's names become the model's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WeightMap {
    /// The names are the model's already: a wsbcn model's weights,
    /// torchvision's `deeplabv3_resnet50/101` for DeepLabV3 with
    /// torchvision's head, torchvision's `r3d_18`, `mc3_18` and
    /// `r2plus1d_18` for the video models of those names.
    #[default]
    None,
    /// An ImageNet ResNet with torchvision's names (`conv1`, `bn1`,
    /// `layer1`-`layer4`, `fc`; torchvision's `resnet50/101`), placed
    /// under the model's backbone prefix.
    TorchvisionResnet,
    /// The WS/BCN authors' ImageNet ResNets (GN+WS and BCN+WS): torchvision's
    /// names, except that a BCN norm keeps its batch part under `pbn`
    /// (wsbcn: `bn`); placed under the model's backbone prefix.
    WsResnet,
}

impl std::fmt::Display for WeightMap {
    /// The name configs and the command line give it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WeightMap::None => "none",
            WeightMap::TorchvisionResnet => "torchvision-resnet",
            WeightMap::WsResnet => "ws-resnet",
        })
    }
}

impl WeightMap {
    /// The model's name for checkpoint name `name`, with the backbone
    /// under `backbone` (e.g. `"backbone."`, or `""` at the root).
    pub fn rename(self, name: &str, backbone: &str) -> String {
        match self {
            WeightMap::None => name.to_string(),
            WeightMap::TorchvisionResnet => format!("{backbone}{name}"),
            WeightMap::WsResnet => format!("{backbone}{}", name.replace(".pbn.", ".bn.")),
        }
    }
}

/// The `[model.pretrained]` table of a task config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainedConfig {
    /// A safetensors file or a PyTorch checkpoint (see the module docs).
    pub file: PathBuf,
    /// How its names become the model's.
    #[serde(default)]
    pub map: WeightMap,
    /// Names (the model's, after the map) equal to or under one of these
    /// dot-separated prefixes are neither loaded nor required, e.g.
    /// `["fc"]` (`fc.weight`, `fc.bias`) for a classifier of other
    /// classes.
    #[serde(default)]
    pub skip: Vec<String>,
}

fn err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Pretrained {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// Checkpoint entries that are counters, not weights.
fn is_counter(name: &str) -> bool {
    name.ends_with("num_batches_tracked") || name.ends_with("estbn_moving_speed")
}

/// The tensors of a safetensors file or a PyTorch checkpoint, by name, on
/// the CPU (see the module docs for what is unwrapped).
pub fn read_weights(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let mut head = [0u8; 512];
    let got = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        f.read(&mut head).map_err(|e| Error::io(path, e))?
    };
    let head = &head[..got];
    let tensors = if head.starts_with(b"PK\x03\x04") {
        read_pth(path)?
    } else if head.starts_with(&LEGACY_MAGIC) {
        read_legacy(path)?
    } else if head.get(257..262) == Some(b"ustar") {
        return Err(err(
            path,
            "a PyTorch checkpoint in the tar format of PyTorch before 0.4, which only \
             PyTorch reads: re-save it once with `torch.save(torch.load(IN), OUT)`",
        ));
    } else {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| {
                err(
                    path,
                    format!("neither a PyTorch checkpoint nor safetensors: {e}"),
                )
            })?
            .into_iter()
            .collect::<BTreeMap<_, _>>()
    };
    if tensors.is_empty() {
        return Err(err(path, "holds no tensors"));
    }
    let data_parallel = tensors.keys().all(|n| n.starts_with("module."));
    Ok(if data_parallel {
        tensors
            .into_iter()
            .map(|(n, t)| (n["module.".len()..].to_string(), t))
            .collect()
    } else {
        tensors
    })
}

/// The state dict in an unpickled checkpoint: the dict itself, or the dict
/// under `state_dict` or `model`, or a TorchScript module's state.
fn state_dict(mut obj: Object) -> std::result::Result<Vec<(Object, Object)>, &'static str> {
    // A TorchScript module wraps its state in a `__torch__.Module` build.
    if let Object::Build { callable, args } = &obj {
        if let Object::Reduce { callable, .. } = callable.as_ref() {
            if matches!(callable.as_ref(), Object::Class { module_name, class_name }
                if module_name == "__torch__" && class_name == "Module")
            {
                obj = args.as_ref().clone();
            }
        }
    }
    let Object::Dict(mut entries) = obj else {
        return Err("the checkpoint is not a dict of tensors");
    };
    for key in ["state_dict", "model"] {
        let inner = entries.iter().position(|(k, v)| {
            *k == Object::Unicode(key.to_string()) && matches!(v, Object::Dict(_))
        });
        if let Some(i) = inner {
            if let (_, Object::Dict(d)) = entries.swap_remove(i) {
                entries = d;
            }
            break;
        }
    }
    Ok(entries)
}

/// The tensors of a state dict's `entries`, their data in `storages` by
/// name (`TensorInfo::path`, without a leading `/`). The readers hold each
/// storage the entries use once (views share one), and no other.
fn tensors_of(
    path: &Path,
    entries: Vec<(Object, Object)>,
    dir: &Path,
    storages: &HashMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, Tensor>> {
    let mut out = BTreeMap::new();
    for (name, value) in entries {
        let key = name.clone().unicode().unwrap_or_default();
        let info = match value.into_tensor_info(name, dir) {
            Ok(Some(info)) => info,
            // Not a tensor (e.g. `_metadata`, an epoch count).
            Ok(None) => continue,
            Err(e) => {
                return Err(err(
                    path,
                    format!("`{key}`: a tensor wsbcn cannot read: {e}"),
                ))
            }
        };
        let what = |e: &dyn std::fmt::Display| err(path, format!("`{}`: {e}", info.name));
        let layout = &info.layout;
        let dims = layout.dims();
        // The axes from the outermost in memory to the innermost: the
        // tensor is a permutation of a dense block (row-major, column-major
        // or channels-last) or it is refused.
        let mut order: Vec<usize> = (0..dims.len()).collect();
        order.sort_by_key(|&a| {
            (
                std::cmp::Reverse(layout.stride()[a]),
                std::cmp::Reverse(dims[a]),
            )
        });
        let mut dense = 1;
        for &a in order.iter().rev() {
            if dims[a] != 1 && layout.stride()[a] != dense {
                return Err(what(&"a strided view, which only PyTorch reads"));
            }
            dense *= dims[a];
        }
        // candle's layout holds the storage offset in bytes. Storages are
        // little-endian (torch.save's default and every machine this runs
        // on).
        let start = layout.start_offset();
        let len = layout.shape().elem_count() * info.dtype.size_in_bytes();
        let key = info.path.trim_start_matches('/');
        let data = storages
            .get(key)
            .ok_or_else(|| err(path, format!("storage `{key}` is missing")))?;
        let bytes = data
            .get(start..start + len)
            .ok_or_else(|| what(&"its storage is shorter than the tensor"))?;
        let physical: Vec<usize> = order.iter().map(|&a| dims[a]).collect();
        let mut inverse = vec![0; order.len()];
        for (i, &a) in order.iter().enumerate() {
            inverse[a] = i;
        }
        let t = Tensor::from_raw_buffer(bytes, info.dtype, &physical, &Device::Cpu)?
            .permute(inverse)?
            .contiguous()?;
        out.insert(info.name, t);
    }
    if out.is_empty() {
        return Err(err(
            path,
            "no tensors at the top level or under `state_dict` or `model`",
        ));
    }
    Ok(out)
}

/// One pickle from `r` (up to its STOP), by candle's reader.
fn unpickle(path: &Path, r: &mut impl std::io::BufRead, what: &str) -> Result<Object> {
    let mut stack = Stack::empty();
    stack
        .read_loop(r)
        .and_then(|()| stack.finalize())
        .map_err(|e| err(path, format!("{what}: {e}")))
}

/// The state dict of a zip-format PyTorch checkpoint (PyTorch 1.6 and
/// later).
///
/// candle parses the pickle (`candle_core::pickle`), but the archive is
/// opened here rather than by `candle_core::pickle::PthTensors`: that opens
/// it with the zip crate's archive-offset detection, which refuses some
/// valid archives that `torch.save` writes ("Invalid Central Directory
/// header", zip 9.1.3 to 9.8.2; the fixture `deeplabv3_torchvision.pth` of
/// tests/pretrained.rs is one). `torch.save` writes nothing before the
/// archive, so its offset is known: 0.
fn read_pth(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    use std::io::{BufReader, Read};
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut zip = zip::ZipArchive::with_config(config, BufReader::new(file))
        .map_err(|e| err(path, format!("not a readable zip archive: {e}")))?;
    let pkl = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("data.pkl"))
        .map(|n| n.into_owned())
        .ok_or_else(|| err(path, "a zip archive without the `data.pkl` of torch.save"))?;
    let obj = {
        let entry = zip.by_name(&pkl).map_err(|e| err(path, e))?;
        unpickle(path, &mut BufReader::new(entry), &pkl)?
    };
    let entries = state_dict(obj).map_err(|e| err(path, e))?;
    let dir = PathBuf::from(pkl.trim_end_matches(".pkl"));
    // The storages the state dict uses, `<archive>/data/<key>` (a training
    // checkpoint's optimizer buffers stay unread).
    let mut used = HashMap::new();
    entries
        .iter()
        .for_each(|(_, v)| storage_sizes(v, &mut used));
    let mut storages = HashMap::new();
    for key in used.into_keys() {
        let name = format!("{}/{key}", dir.display());
        let mut data = Vec::new();
        zip.by_name(&name)
            .and_then(|mut e| e.read_to_end(&mut data).map_err(Into::into))
            .map_err(|e| err(path, format!("`{name}`: {e}")))?;
        storages.insert(name, data);
    }
    tensors_of(path, entries, &dir, &storages)
}

/// Bytes per element of a PyTorch storage class.
fn storage_element_size(class: &str) -> Option<usize> {
    Some(match class {
        "DoubleStorage" | "LongStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
        _ => return None,
    })
}

/// The element size of every storage that a persistent id in `obj` names
/// (`('storage', class, key, location, size, ...)`), by key.
fn storage_sizes(obj: &Object, sizes: &mut HashMap<String, usize>) {
    match obj {
        Object::PersistentLoad(id) => {
            if let Object::Tuple(t) = id.as_ref() {
                if let (Some(Object::Class { class_name, .. }), Some(Object::Unicode(key))) =
                    (t.get(1), t.get(2))
                {
                    if let Some(size) = storage_element_size(class_name) {
                        sizes.insert(key.clone(), size);
                    }
                }
            }
        }
        Object::Tuple(v) | Object::List(v) => v.iter().for_each(|o| storage_sizes(o, sizes)),
        Object::Dict(kv) => kv.iter().for_each(|(k, v)| {
            storage_sizes(k, sizes);
            storage_sizes(v, sizes);
        }),
        Object::Reduce { callable, args } | Object::Build { callable, args } => {
            storage_sizes(callable, sizes);
            storage_sizes(args, sizes);
        }
        _ => {}
    }
}

/// The legacy format's first pickle: protocol 2, the magic number
/// 0x1950a86a20f9469cfc6c as a 10-byte LONG1, STOP. (candle's reader takes
/// longs of at most 8 bytes, so this one is matched as bytes.)
const LEGACY_MAGIC: [u8; 15] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
];

/// The state dict of a PyTorch checkpoint in the legacy format (before
/// PyTorch 1.6, and `_use_new_zipfile_serialization=False` since), as
/// `torch.serialization._legacy_load` reads it: after the magic number,
/// the protocol version and the system info come the object (its tensors'
/// storages named by persistent ids), the list of storage keys, and then
/// each storage in that order as its element count (8 bytes,
/// little-endian) and its bytes.
fn read_legacy(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    use std::io::{BufReader, Read};
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = BufReader::new(file);
    let mut magic = [0u8; LEGACY_MAGIC.len()];
    if r.read_exact(&mut magic).is_err() || magic != LEGACY_MAGIC {
        return Err(err(path, "a pickle, but not a PyTorch checkpoint"));
    }
    unpickle(path, &mut r, "the protocol version")?;
    unpickle(path, &mut r, "the system info")?;
    let obj = unpickle(path, &mut r, "the checkpoint")?;
    let keys: Vec<String> = match unpickle(path, &mut r, "the storage keys")? {
        Object::List(keys) => keys.into_iter().filter_map(|k| k.unicode().ok()).collect(),
        other => return Err(err(path, format!("storage keys: {other:?}"))),
    };
    // Every storage's element size, from its persistent id anywhere in the
    // checkpoint (an optimizer's buffers are storages too).
    let mut sizes = HashMap::new();
    storage_sizes(&obj, &mut sizes);
    let entries = state_dict(obj).map_err(|e| err(path, e))?;
    let mut used = HashMap::new();
    entries
        .iter()
        .for_each(|(_, v)| storage_sizes(v, &mut used));
    let mut storages = HashMap::new();
    for key in keys {
        let mut count = [0u8; 8];
        r.read_exact(&mut count).map_err(|e| Error::io(path, e))?;
        let size = *sizes
            .get(&key)
            .ok_or_else(|| err(path, format!("storage `{key}` of an unknown type")))?;
        let bytes = u64::from_le_bytes(count) * size as u64;
        if !used.contains_key(&key) {
            // Not the state dict's (an optimizer buffer): skipped, not kept.
            let skipped = std::io::copy(&mut (&mut r).take(bytes), &mut std::io::sink())
                .map_err(|e| err(path, format!("storage `{key}`: {e}")))?;
            if skipped != bytes {
                return Err(err(
                    path,
                    format!("storage `{key}`: the file ends inside it"),
                ));
            }
            continue;
        }
        let mut data = vec![0u8; bytes as usize];
        r.read_exact(&mut data)
            .map_err(|e| err(path, format!("storage `{key}`: {e}")))?;
        storages.insert(key, data);
    }
    tensors_of(path, entries, Path::new(""), &storages)
}

/// How a checkpoint tensor was fitted to its variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Same shape.
    Exact,
    /// A 2D kernel inflated over time (`/ T` per frame).
    Inflated,
    /// The same values in a shape that differs only in axes of size 1.
    Reshaped,
}

/// `t` fitted to `dims`, if one of the rules in the module docs allows it.
fn fit(t: &Tensor, dims: &[usize]) -> Result<Option<(Tensor, Fit)>> {
    let src = t.dims();
    if src == dims {
        return Ok(Some((t.clone(), Fit::Exact)));
    }
    if src.len() == 4 && dims.len() == 5 && src[..2] == dims[..2] && src[2..] == dims[3..] {
        // Divided in the checkpoint's dtype, as PyTorch divides (not
        // multiplied by 1/T, which rounds differently).
        let frames = dims[2];
        let divisor = Tensor::new(frames as f64, t.device())?.to_dtype(t.dtype())?;
        let w = t.broadcast_div(&divisor)?.unsqueeze(2)?;
        return Ok(Some((w.repeat((1, 1, frames, 1, 1))?, Fit::Inflated)));
    }
    // Only vectors move between shapes such as (1, G, 1) and (G): with two
    // axes above 1, dropping the unit axes could hide a transposition.
    let squeeze = |d: &[usize]| d.iter().copied().filter(|&x| x != 1).collect::<Vec<_>>();
    if squeeze(src) == squeeze(dims) && squeeze(src).len() <= 1 {
        return Ok(Some((t.reshape(dims)?, Fit::Reshaped)));
    }
    Ok(None)
}

/// A checkpoint matched against a model.
#[derive(Debug, Default)]
pub struct Matched {
    /// The model's variables with their new values (in the checkpoint's
    /// dtype), and how each was fitted.
    pub tensors: BTreeMap<String, (Tensor, Fit)>,
    /// The model's variables under a skip prefix, left as they are.
    pub skipped: Vec<String>,
    /// Missing, unexpected or mismatched names, one line each.
    pub problems: Vec<String>,
}

impl Matched {
    /// How many variables were fitted by `how`.
    pub fn count(&self, how: Fit) -> usize {
        self.tensors.values().filter(|(_, f)| *f == how).count()
    }
}

/// Matches the checkpoint `weights` (as [`read_weights`] returns them)
/// against the variables of `varmap`: renames by `map` (the backbone
/// under `backbone`), leaves out counters and `skip` prefixes, fits the
/// shapes, and lists every problem.
pub fn match_weights(
    weights: &BTreeMap<String, Tensor>,
    varmap: &VarMap,
    map: WeightMap,
    backbone: &str,
    skip: &[String],
) -> Matched {
    // A prefix covers a name equal to it or under it (`fc` covers
    // `fc.weight`, not `fc_cls.weight`).
    let skipped = |n: &str| {
        skip.iter().any(|p| {
            n.strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || p.ends_with('.'))
        })
    };
    let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
    let mut m = Matched::default();
    let mut renamed: BTreeMap<String, (&String, &Tensor)> = BTreeMap::new();
    for (name, t) in weights {
        if is_counter(name) {
            continue;
        }
        let to = map.rename(name, backbone);
        if skipped(&to) {
            continue;
        }
        if !data.contains_key(&to) {
            m.problems.push(format!(
                "unexpected: `{name}` (as `{to}`) is not in the model"
            ));
            continue;
        }
        if let Some((other, _)) = renamed.insert(to.clone(), (name, t)) {
            m.problems.push(format!(
                "ambiguous: `{other}` and `{name}` both become `{to}`"
            ));
        }
    }
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        if skipped(name) {
            m.skipped.push(name.clone());
            continue;
        }
        let Some(&(from, t)) = renamed.get(name) else {
            m.problems
                .push(format!("missing: `{name}` is not in the checkpoint"));
            continue;
        };
        match fit(t, var.dims()) {
            Ok(Some(fitted)) => {
                m.tensors.insert(name.clone(), fitted);
            }
            Ok(None) => m.problems.push(format!(
                "mismatched: `{from}` has shape {:?}, the model's `{name}` {:?}",
                t.dims(),
                var.dims()
            )),
            Err(e) => m.problems.push(format!("`{from}`: {e}")),
        }
    }
    m
}

/// Writes the matched tensors, under the model's names and in `dtype`, to
/// the safetensors file `path` (through a temporary file renamed into
/// place, so a failed write leaves nothing half-written).
pub fn save_matched(m: &Matched, dtype: DType, path: &Path) -> Result<()> {
    let mut tensors = std::collections::HashMap::new();
    for (name, (t, _)) in &m.tensors {
        tensors.insert(name.clone(), t.to_dtype(dtype)?);
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    candle_core::safetensors::save(&tensors, &tmp).map_err(|e| err(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Loads `cfg.file` into `varmap` (see the module docs), the backbone of a
/// backbone map under `backbone`. Nothing is loaded when any variable is
/// missing, unexpected or mismatched: the error lists them all.
pub fn load_pretrained(cfg: &PretrainedConfig, varmap: &VarMap, backbone: &str) -> Result<Matched> {
    let weights = read_weights(&cfg.file)?;
    let m = match_weights(&weights, varmap, cfg.map, backbone, &cfg.skip);
    if !m.problems.is_empty() {
        return Err(err(
            &cfg.file,
            format!(
                "does not fit the model (map `{}`, {} problems):\n  {}",
                cfg.map,
                m.problems.len(),
                m.problems.join("\n  ")
            ),
        ));
    }
    let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
    for (name, (t, _)) in &m.tensors {
        let var = &data[name];
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    drop(data);
    Ok(m)
}
