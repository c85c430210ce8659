//! Typed TOML configs with command-line overrides.
//!
//! A config file is deserialized into a typed struct (serde, unknown keys
//! rejected); `--set key.path=value` overrides any key first (the value is
//! read as a TOML value, else as a string). Every error names the file and
//! the dotted key: syntax errors, unknown keys, wrong types, and values out
//! of range (checked by [`Validate`]).
//!
//! A file may inherit, as mmsegmentation configs do: `_base_ = "other.toml"`
//! (or a list of files, later ones winning), relative to the file itself.
//! The bases are merged table by table, then the file's own keys override
//! theirs; `--set` overrides come last.

use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// Range checks of a config section: `Err((dotted key, message))`.
pub trait Validate {
    /// Checks every value's range.
    fn validate(&self) -> std::result::Result<(), (String, String)>;
}

/// Prefixes a nested section's key: `within("optim", r)` turns
/// `("lr", ..)` into `("optim.lr", ..)`.
pub fn within(
    section: &str,
    r: std::result::Result<(), (String, String)>,
) -> std::result::Result<(), (String, String)> {
    r.map_err(|(k, m)| (format!("{section}.{k}"), m))
}

fn set_key(root: &mut toml::Table, spec: &str) -> Result<()> {
    let err = |key: &str, msg: &str| Error::Config {
        file: "--set".into(),
        key: key.into(),
        msg: msg.into(),
    };
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| err(spec, "an override is written key.path=value"))?;
    let key = key.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {}", raw.trim())) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.trim().to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(err(key, "empty key segment"));
    }
    let mut table = root;
    for part in &parts[..parts.len() - 1] {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| err(key, &format!("`{part}` is a value, not a table")))?;
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

fn parse_table(text: &str, file: &str) -> Result<toml::Table> {
    text.parse().map_err(|e: toml::de::Error| Error::Config {
        file: file.into(),
        key: "(syntax)".into(),
        msg: e.to_string().trim().replace('\n', " "),
    })
}

/// Applies `overrides` to `table` (from `file`), then deserializes and
/// validates it.
fn finish<T: DeserializeOwned + Validate>(
    mut table: toml::Table,
    file: &str,
    overrides: &[String],
) -> Result<T> {
    for o in overrides {
        set_key(&mut table, o)?;
    }
    let value = toml::Value::Table(table);
    let config: T = serde_path_to_error::deserialize(value).map_err(|e| Error::Config {
        file: file.into(),
        key: e.path().to_string(),
        msg: e.inner().to_string(),
    })?;
    config.validate().map_err(|(key, msg)| Error::Config {
        file: file.into(),
        key,
        msg,
    })?;
    Ok(config)
}

/// Parses `text` (from `file`, for messages) with `overrides` applied.
/// `_base_` keys are not resolved here (there is no folder to resolve them
/// in): use [`load_config`].
pub fn parse_config<T: DeserializeOwned + Validate>(
    text: &str,
    file: &str,
    overrides: &[String],
) -> Result<T> {
    finish(parse_table(text, file)?, file, overrides)
}

/// `over` merged into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The table of `path` with its `_base_` files merged in; `chain` holds the
/// files being read, to refuse a cycle.
fn resolve(path: &Path, chain: &mut Vec<std::path::PathBuf>) -> Result<toml::Table> {
    let file = path.display().to_string();
    let err = |msg: String| Error::Config {
        file: file.clone(),
        key: "_base_".into(),
        msg,
    };
    let canonical = path.canonicalize().map_err(|e| Error::io(path, e))?;
    if chain.contains(&canonical) {
        return Err(err("the files inherit from each other in a cycle".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut table = parse_table(&text, &file)?;
    let bases = match table.remove("_base_") {
        None => vec![],
        Some(toml::Value::String(s)) => vec![s],
        Some(toml::Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s),
                other => Err(err(format!("expected file names, got {other}"))),
            })
            .collect::<Result<_>>()?,
        Some(other) => return Err(err(format!("expected a file name or a list, got {other}"))),
    };
    if bases.is_empty() {
        return Ok(table);
    }
    chain.push(canonical);
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut merged = toml::Table::new();
    for base in bases {
        merge(&mut merged, resolve(&dir.join(base), chain)?);
    }
    chain.pop();
    merge(&mut merged, table);
    Ok(merged)
}

/// Reads a config file, its `_base_` files merged in, with `overrides`
/// applied (see the module docs).
pub fn load_config<T: DeserializeOwned + Validate>(path: &Path, overrides: &[String]) -> Result<T> {
    let table = resolve(path, &mut vec![])?;
    finish(table, &path.display().to_string(), overrides)
}

/// The config of a run's checkpoint: the file `config` when given, else the
/// resolved config stored in the run log beside the checkpoint
/// (`<run>/run.h5` for `<run>/checkpoints/<file>`), with `overrides`.
pub fn config_for_checkpoint<T: DeserializeOwned + Validate>(
    checkpoint: &Path,
    config: Option<&Path>,
    overrides: &[String],
) -> Result<T> {
    if let Some(c) = config {
        return load_config(c, overrides);
    }
    let log_path = checkpoint
        .parent()
        .and_then(Path::parent)
        .map(|run| run.join("run.h5"))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{}: no run directory around the checkpoint",
                checkpoint.display()
            ))
        })?;
    let log = crate::RunLog::read(&log_path)?;
    let text = log.attr("config").ok_or_else(|| Error::RunLog {
        path: log_path.clone(),
        msg: "the run log holds no config; pass --config".into(),
    })?;
    parse_config(text, &log_path.display().to_string(), overrides)
}

/// The resolved config as TOML, for printing and for run logs.
pub fn to_toml<T: Serialize>(config: &T) -> Result<String> {
    toml::to_string(config).map_err(|e| Error::Invalid(format!("serializing the config: {e}")))
}

/// Whether two configs, as TOML text (what run logs hold), train the same
/// numbers: they agree on every key both hold, once the settings that do
/// not touch the numbers are dropped (loader threads `data.workers`,
/// progress lines `log_interval`, checkpoints kept `keep_checkpoints`, the
/// `device` a run resumes on), at
/// the top level (an engine config) and under `train` (a task config). A
/// key only one side holds is a field added or removed between versions,
/// whose default reproduces the old behaviour, and does not count. The
/// estimated-BN moving speed (`train.moving_speed`) counts only where a
/// side's `norm.spec` has estimated BN (its default changed on 2026-11-30
/// without changing any other norm's numbers). Text that does not parse is
/// never the same.
pub fn same_numbers(a: &str, b: &str) -> bool {
    fn strip(t: &mut toml::Table) {
        t.remove("log_interval");
        t.remove("device");
        t.remove("keep_checkpoints");
        if let Some(d) = t.get_mut("data").and_then(toml::Value::as_table_mut) {
            d.remove("workers");
        }
    }
    fn agree(a: &toml::Value, b: &toml::Value) -> bool {
        match (a, b) {
            (toml::Value::Table(x), toml::Value::Table(y)) => {
                x.iter().all(|(k, v)| y.get(k).is_none_or(|w| agree(v, w)))
            }
            _ => a == b,
        }
    }
    // Whether a task config's norm estimates BN statistics (None: an engine
    // config, or a spec that does not parse).
    fn estimates(t: &toml::Table) -> Option<bool> {
        let spec = t.get("norm")?.get("spec")?.as_str()?;
        let spec: wsbcn_nn::LayerSpec = spec.parse().ok()?;
        Some(spec.norm == wsbcn_nn::NormKind::BcnEst)
    }
    let parse = |text: &str| toml::from_str::<toml::Table>(text).ok();
    let (Some(mut x), Some(mut y)) = (parse(a), parse(b)) else {
        return false;
    };
    let speed_counts = estimates(&x) != Some(false) || estimates(&y) != Some(false);
    for t in [&mut x, &mut y] {
        strip(t);
        if let Some(train) = t.get_mut("train").and_then(toml::Value::as_table_mut) {
            strip(train);
            if !speed_counts {
                train.remove("moving_speed");
            }
        }
    }
    agree(&toml::Value::Table(x), &toml::Value::Table(y))
}
