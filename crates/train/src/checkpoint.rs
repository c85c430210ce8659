//! Checkpoints: everything a run needs to continue exactly where it was.
//!
//! One safetensors file per checkpoint, `ckpt-<step:08>.safetensors` in the
//! run directory, holding the model's variables (`model.<name>`: weights,
//! running statistics and estimates), the optimizer state (`optim.<name>`:
//! momentum buffers) and, as JSON in the metadata, the step, schedule
//! position, seed and data position ([`TrainState`]). Written to a temporary
//! file, synced and renamed, so a run killed at any moment leaves only
//! complete checkpoints; the last `keep` are kept.

use crate::{Error, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const META_KEY: &str = "wsbcn.train_state";

/// The non-tensor state of a run at a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps completed.
    pub step: u64,
    /// Batches drawn from the data source (the data position).
    pub batches: u64,
    /// The run's seed (data order and augmentation derive from it).
    pub seed: u64,
    /// The ranks that trained it (the data position counts batches of
    /// each rank's shard). Stored only when above 1, so one-process
    /// checkpoints stay as they were.
    #[serde(default = "one_rank", skip_serializing_if = "is_one_rank")]
    pub world_size: u64,
}

fn one_rank() -> u64 {
    1
}

fn is_one_rank(n: &u64) -> bool {
    *n == 1
}

/// A checkpoint read back.
#[derive(Debug)]
pub struct Checkpoint {
    /// Its file.
    pub path: PathBuf,
    /// The run state.
    pub state: TrainState,
    /// Model variables by name.
    pub model: HashMap<String, Tensor>,
    /// Optimizer state by parameter name.
    pub optim: HashMap<String, Tensor>,
}

fn ckpt_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// The checkpoints in `dir`, oldest first, by step.
pub fn list_checkpoints(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut found = vec![];
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(step) = name
            .strip_prefix("ckpt-")
            .and_then(|s| s.strip_suffix(".safetensors"))
            .and_then(|s| s.parse::<u64>().ok())
        {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// The newest checkpoint in `dir`, if any.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<PathBuf>> {
    Ok(list_checkpoints(dir)?.pop().map(|(_, p)| p))
}

/// Writes a checkpoint of `varmap`, `optim` and `state` into `dir`
/// atomically and deletes all but the newest `keep`. Returns its path.
pub fn save_checkpoint(
    dir: &Path,
    varmap: &VarMap,
    optim: &HashMap<String, Tensor>,
    state: &TrainState,
    keep: usize,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(format!("ckpt-{:08}.safetensors", state.step));
    let tmp = dir.join(format!(".ckpt-{:08}.safetensors.tmp", state.step));
    let mut tensors: Vec<(String, Tensor)> = {
        let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
        data.iter()
            .map(|(n, v)| (format!("model.{n}"), v.as_tensor().detach()))
            .collect()
    };
    tensors.extend(
        optim
            .iter()
            .map(|(n, t)| (format!("optim.{n}"), t.detach())),
    );
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let meta = serde_json::to_string(state).map_err(|e| ckpt_err(&path, e))?;
    let info = HashMap::from([(META_KEY.to_string(), meta)]);
    safetensors::serialize_to_file(tensors, Some(info), &tmp).map_err(|e| ckpt_err(&tmp, e))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    let all = list_checkpoints(dir)?;
    for (_, old) in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        std::fs::remove_file(old).map_err(|e| Error::io(old, e))?;
    }
    Ok(path)
}

/// Reads a checkpoint onto `device`.
pub fn load_checkpoint(path: &Path, device: &Device) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| ckpt_err(path, e))?;
    let state_json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| {
            ckpt_err(
                path,
                "no training state in the metadata: not a wsbcn checkpoint",
            )
        })?;
    let state: TrainState = serde_json::from_str(state_json).map_err(|e| ckpt_err(path, e))?;
    let tensors =
        candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| ckpt_err(path, e))?;
    let (mut model, mut optim) = (HashMap::new(), HashMap::new());
    for (name, t) in tensors {
        if let Some(n) = name.strip_prefix("model.") {
            model.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix("optim.") {
            optim.insert(n.to_string(), t);
        } else {
            return Err(ckpt_err(path, format!("unexpected tensor `{name}`")));
        }
    }
    Ok(Checkpoint {
        path: path.to_path_buf(),
        state,
        model,
        optim,
    })
}

/// Copies a checkpoint's model tensors into `varmap`; every variable of the
/// model must be present with its shape.
pub fn restore_model(ckpt: &Checkpoint, varmap: &VarMap) -> Result<()> {
    let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
    for (name, var) in data.iter() {
        let t = ckpt
            .model
            .get(name)
            .ok_or_else(|| ckpt_err(&ckpt.path, format!("missing model variable `{name}`")))?;
        if t.dims() != var.dims() {
            return Err(ckpt_err(
                &ckpt.path,
                format!(
                    "`{name}` has shape {:?}, the model {:?}",
                    t.dims(),
                    var.dims()
                ),
            ));
        }
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    Ok(())
}
