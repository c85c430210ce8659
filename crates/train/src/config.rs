//! Typed TOML configs with command-line overrides.
//!
//! A config file is deserialized into a typed struct (serde, unknown keys
//! rejected); `--set key.path=value` overrides any key first (the value is
//! read as a TOML value, else as a string). Every error names the file and
//! the dotted key: syntax errors, unknown keys, wrong types, and values out
//! of range (checked by [`Validate`]).

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

/// Parses `text` (from `file`, for messages) with `overrides` applied.
pub fn parse_config<T: DeserializeOwned + Validate>(
    text: &str,
    file: &str,
    overrides: &[String],
) -> Result<T> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Config {
        file: file.into(),
        key: "(syntax)".into(),
        msg: e.to_string().trim().replace('\n', " "),
    })?;
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

/// Reads a config file with `overrides` applied (see the module docs).
pub fn load_config<T: DeserializeOwned + Validate>(path: &Path, overrides: &[String]) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_config(&text, &path.display().to_string(), overrides)
}

/// The resolved config as TOML, for printing and for run logs.
pub fn to_toml<T: Serialize>(config: &T) -> Result<String> {
    toml::to_string(config).map_err(|e| Error::Invalid(format!("serializing the config: {e}")))
}
