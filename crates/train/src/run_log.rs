//! HDF5 run logs: one file per run.
//!
//! Layout (every dataset one-dimensional, `f64` unless noted):
//!
//! ```text
//! /                attributes: config (TOML), seed, crate_version, git_commit, ...
//! /steps/step      u64, the optimizer step of each row
//! /steps/<name>    per-step scalars: loss, lr, grad_norm, samples_per_s,
//!                  moving_speed, wall_s (seconds since the run began,
//!                  summed over resumes), singularity.mean, singularity.<layer>,
//!                  ws_grad_ratio.mean, ws_grad_ratio.<layer> (NaN where not measured);
//!                  on several ranks comm_s and comm_bytes (the step's
//!                  collectives: seconds, and the bytes of the tensors
//!                  this rank put into them)
//! /eval/step       u64, the step after which each evaluation ran
//! /eval/<metric>   per-evaluation metrics, and wall_s after each
//! ```
//!
//! The log lives in memory and [`RunLog::flush`] writes the whole file to a
//! temporary name and renames it into place: whenever a run is killed, the
//! file on disk is the complete log of its last flush and opens. (Run logs
//! hold scalars only, so rewriting them costs milliseconds; appending in
//! place would leave a corrupt file if killed mid-write.)

use crate::{Error, Result};
use hdf5::types::VarLenUnicode;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A run's log (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunLog {
    path: PathBuf,
    attrs: BTreeMap<String, String>,
    steps: Table,
    evals: Table,
}

/// Rows keyed by step, one column per named scalar.
#[derive(Clone, Debug, Default, PartialEq)]
struct Table {
    step: Vec<u64>,
    columns: BTreeMap<String, Vec<f64>>,
}

impl Table {
    fn push(&mut self, step: u64, values: &[(String, f64)]) {
        let row = self.step.len();
        self.step.push(step);
        for (name, v) in values {
            let col = self
                .columns
                .entry(name.clone())
                .or_insert_with(|| vec![f64::NAN; row]);
            col.resize(row, f64::NAN);
            col.push(*v);
        }
        for col in self.columns.values_mut() {
            col.resize(row + 1, f64::NAN);
        }
    }

    fn truncate(&mut self, keep: impl Fn(u64) -> bool) {
        let n = self.step.iter().take_while(|&&s| keep(s)).count();
        self.step.truncate(n);
        for col in self.columns.values_mut() {
            col.truncate(n);
        }
    }

    fn write(&self, group: &hdf5::Group) -> hdf5::Result<()> {
        group
            .new_dataset_builder()
            .with_data(self.step.as_slice())
            .create("step")?;
        for (name, col) in &self.columns {
            group
                .new_dataset_builder()
                .with_data(col.as_slice())
                .create(name.as_str())?;
        }
        Ok(())
    }

    fn read(group: &hdf5::Group) -> hdf5::Result<Self> {
        let mut t = Table {
            step: group.dataset("step")?.read_raw::<u64>()?,
            columns: BTreeMap::new(),
        };
        for name in group.member_names()? {
            if name != "step" {
                let col = group.dataset(&name)?.read_raw::<f64>()?;
                t.columns.insert(name, col);
            }
        }
        Ok(t)
    }
}

impl RunLog {
    /// A new, empty log that [`RunLog::flush`] will write to `path`.
    pub fn new(path: &Path, attrs: BTreeMap<String, String>) -> Self {
        Self {
            path: path.to_path_buf(),
            attrs,
            ..Self::default()
        }
    }

    /// Reads the log at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let err = |e: hdf5::Error| Error::RunLog {
            path: path.to_path_buf(),
            msg: e.to_string(),
        };
        let file = crate::h5_file::open(path).map_err(err)?;
        let mut attrs = BTreeMap::new();
        for name in file.attr_names().map_err(err)? {
            let v: VarLenUnicode = file
                .attr(&name)
                .and_then(|a| a.read_scalar())
                .map_err(err)?;
            attrs.insert(name, v.as_str().to_string());
        }
        Ok(Self {
            path: path.to_path_buf(),
            attrs,
            steps: Table::read(&file.group("steps").map_err(err)?).map_err(err)?,
            evals: Table::read(&file.group("eval").map_err(err)?).map_err(err)?,
        })
    }

    /// The file this log flushes to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets a root attribute (config, seed, commit, ...).
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        self.attrs.insert(name.to_string(), value.into());
    }

    /// A root attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    /// Appends the scalars of optimizer step `step`.
    pub fn log_step(&mut self, step: u64, values: &[(String, f64)]) {
        self.steps.push(step, values);
    }

    /// Appends the metrics of an evaluation after step `step`.
    pub fn log_eval(&mut self, step: u64, metrics: &[(String, f64)]) {
        self.evals.push(step, metrics);
    }

    /// Drops the rows of steps `>= step` (used when resuming from a
    /// checkpoint taken after `step` steps) and evaluations after it.
    pub fn truncate(&mut self, step: u64) {
        self.steps.truncate(|s| s < step);
        self.evals.truncate(|s| s <= step);
    }

    /// The logged steps.
    pub fn steps(&self) -> &[u64] {
        &self.steps.step
    }

    /// A per-step scalar column.
    pub fn scalar(&self, name: &str) -> Option<&[f64]> {
        self.steps.columns.get(name).map(Vec::as_slice)
    }

    /// Names of the per-step scalars.
    pub fn scalar_names(&self) -> impl Iterator<Item = &str> {
        self.steps.columns.keys().map(String::as_str)
    }

    /// The steps after which evaluations ran.
    pub fn eval_steps(&self) -> &[u64] {
        &self.evals.step
    }

    /// An evaluation metric column.
    pub fn eval(&self, name: &str) -> Option<&[f64]> {
        self.evals.columns.get(name).map(Vec::as_slice)
    }

    /// Writes the whole log atomically (temporary file, then rename).
    pub fn flush(&self) -> Result<()> {
        let err = |e: hdf5::Error| Error::RunLog {
            path: self.path.clone(),
            msg: e.to_string(),
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("run.h5");
        let tmp = self.path.with_file_name(format!(".{name}.tmp"));
        {
            let file = crate::h5_file::create(&tmp).map_err(err)?;
            for (k, v) in &self.attrs {
                let v: VarLenUnicode = v.parse().map_err(|e| Error::RunLog {
                    path: self.path.clone(),
                    msg: format!("attribute `{k}`: {e}"),
                })?;
                file.new_attr::<VarLenUnicode>()
                    .create(k.as_str())
                    .and_then(|a| a.write_scalar(&v))
                    .map_err(err)?;
            }
            self.steps
                .write(&file.create_group("steps").map_err(err)?)
                .map_err(err)?;
            self.evals
                .write(&file.create_group("eval").map_err(err)?)
                .map_err(err)?;
            file.close().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}
