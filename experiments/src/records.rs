//! The runs of a comparison read back from their HDF5 logs alone: what
//! figures and reports are made of.

use crate::{Error, Result};
use std::path::{Path, PathBuf};
use wsbcn_train::RunLog;

/// One cell's run, identified by the attributes `wsbcn-compare` wrote.
#[derive(Clone, Debug)]
pub struct Record {
    /// The run folder.
    pub dir: PathBuf,
    /// Task name (`segmentation`, ...).
    pub task: String,
    /// Task kind as logged (`segmentation` or `video`).
    pub kind: String,
    /// Variant name.
    pub variant: String,
    /// Variant label.
    pub label: String,
    /// Samples per step.
    pub batch: usize,
    /// Seed.
    pub seed: u64,
    /// The log.
    pub log: RunLog,
}

/// The summary of a comparison's runs.
#[derive(Clone, Debug)]
pub struct Runs {
    /// Every run, in the order task, variant (as first seen), batch, seed.
    pub records: Vec<Record>,
}

fn attr<'a>(log: &'a RunLog, name: &str) -> Result<&'a str> {
    log.attr(name).ok_or_else(|| {
        Error::file(
            log.path(),
            format!("no `{name}` attribute: not a run written by wsbcn-compare"),
        )
    })
}

fn parse<T: std::str::FromStr>(log: &RunLog, name: &str) -> Result<T> {
    let v = attr(log, name)?;
    v.parse()
        .map_err(|_| Error::file(log.path(), format!("attribute `{name}` = `{v}`")))
}

fn find_logs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file(dir, e))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            find_logs(&p, out)?;
        } else if p.file_name().is_some_and(|n| n == "run.h5") {
            out.push(p);
        }
    }
    Ok(())
}

impl Record {
    /// The task's compared metric: `miou` or `top1`.
    pub fn metric(&self) -> &'static str {
        if self.kind == "video" {
            "top1"
        } else {
            "miou"
        }
    }

    /// The metric after the last evaluation, if the run has one.
    pub fn final_metric(&self) -> Option<f64> {
        self.log.eval(self.metric()).and_then(|m| m.last().copied())
    }

    /// Whether the run reached its configured steps.
    pub fn finished(&self) -> bool {
        crate::cell_run::log_finished(&self.log)
    }

    /// Wall-clock seconds of the run (steps and evaluations).
    pub fn wall_s(&self) -> Option<f64> {
        let last = |c: Option<&[f64]>| c.and_then(|c| c.last().copied());
        match (
            last(self.log.scalar("wall_s")),
            last(self.log.eval("wall_s")),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Training samples per second over the run's steps: samples over the
    /// summed step times.
    pub fn samples_per_s(&self) -> Option<f64> {
        let rates = self.log.scalar("samples_per_s")?;
        let per_step = self.samples_per_step() as f64;
        let secs: f64 = rates.iter().map(|r| per_step / r).sum();
        (secs > 0.0).then(|| rates.len() as f64 * per_step / secs)
    }

    /// Training samples per optimizer step: the batch times the
    /// micro-batches accumulated into a step (1 where the log does not say).
    pub fn samples_per_step(&self) -> u64 {
        let accumulate =
            crate::cell_run::logged_train_config(&self.log).map_or(1, |c| c.accumulate);
        self.batch as u64 * accumulate
    }
}

impl Runs {
    /// Reads every `run.h5` under `dirs` (a comparison's output folder, a
    /// task's, or single runs).
    pub fn read(dirs: &[PathBuf]) -> Result<Self> {
        let mut logs = vec![];
        for d in dirs {
            if d.is_file() {
                logs.push(d.clone());
            } else {
                find_logs(d, &mut logs)?;
            }
        }
        if logs.is_empty() {
            return Err(Error::Runs(format!(
                "no run logs (run.h5) under {}",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut records = vec![];
        for path in logs {
            let log = RunLog::read(&path)?;
            records.push(Record {
                dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                task: attr(&log, "cell.task")?.to_string(),
                kind: attr(&log, "cell.kind")?.to_string(),
                variant: attr(&log, "cell.variant")?.to_string(),
                label: attr(&log, "cell.label")?.to_string(),
                batch: parse(&log, "cell.batch")?,
                seed: parse(&log, "cell.seed")?,
                log,
            });
        }
        // Order of the comparison file where the logs say it, else by name.
        let order = comparison_order(&records);
        records.sort_by_key(|r| (order(&r.task, &r.variant), r.batch, r.seed));
        Ok(Self { records })
    }

    /// Task names in order.
    pub fn tasks(&self) -> Vec<String> {
        dedup(self.records.iter().map(|r| r.task.clone()))
    }

    /// Variant names in order, with their labels.
    pub fn variants(&self) -> Vec<(String, String)> {
        dedup(
            self.records
                .iter()
                .map(|r| (r.variant.clone(), r.label.clone())),
        )
    }

    /// The runs of one task.
    pub fn of_task<'a>(&'a self, task: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.records.iter().filter(move |r| r.task == task)
    }

    /// The runs of (task, variant, batch), over seeds.
    pub fn cell<'a>(
        &'a self,
        task: &'a str,
        variant: &'a str,
        batch: usize,
    ) -> impl Iterator<Item = &'a Record> + 'a {
        self.of_task(task)
            .filter(move |r| r.variant == variant && r.batch == batch)
    }

    /// Batch sizes of (task, variant), ascending.
    pub fn batches(&self, task: &str, variant: &str) -> Vec<usize> {
        let mut b: Vec<usize> = self
            .of_task(task)
            .filter(|r| r.variant == variant)
            .map(|r| r.batch)
            .collect();
        b.sort_unstable();
        b.dedup();
        b
    }
}

fn dedup<T: PartialEq + Clone>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = vec![];
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// A sort key giving tasks and variants the order of the comparison file
/// stored in the logs (by name where a log has none). The file is read as
/// plain TOML, for the names only, so that logs written under an older
/// comparison format keep their order.
fn comparison_order(records: &[Record]) -> impl Fn(&str, &str) -> (usize, usize, String) {
    let (tasks, variants) = records
        .iter()
        .find_map(|r| {
            let table: toml::Table = toml::from_str(r.log.attr("comparison_config")?).ok()?;
            let names = |key: &str| -> Vec<String> {
                table
                    .get(key)
                    .and_then(toml::Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|i| i.get("name")?.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            Some((names("tasks"), names("variants")))
        })
        .unwrap_or_default();
    move |task: &str, variant: &str| {
        let pos = |list: &[String], x: &str| list.iter().position(|n| n == x).unwrap_or(usize::MAX);
        (
            pos(&tasks, task),
            pos(&variants, variant),
            format!("{task}/{variant}"),
        )
    }
}
