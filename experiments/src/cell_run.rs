//! Running one cell of a comparison through the segmentation or video
//! trainer, and telling whether a cell's run has finished.

use crate::comparison::{Cell, Comparison, TaskKind};
use crate::Result;
use std::path::Path;
use wsbcn_nn::NormConfig;
use wsbcn_seg::task::{SegConfig, Segmentation};
use wsbcn_train::{load_config, same_numbers, to_toml, DeviceSpec, RunLog, TrainConfig, Trainer};
use wsbcn_video::task::{Video, VideoConfig};

/// The run log of a cell.
pub fn log_path(dir: &Path) -> std::path::PathBuf {
    dir.join("run.h5")
}

/// Whether `cell`'s run has finished (its log's last evaluation is after
/// its final step; a run that diverged or was killed has not) under the
/// cell's current config: the
/// config its log records agrees with the one `cell_config` resolves now
/// ([`wsbcn_train::same_numbers`]). A finished run of another config (a
/// comparison file edited in place, say) is not, so that `wsbcn-compare`
/// takes it up again and the trainer stops it with an error, instead of
/// reporting it beside runs of the new protocol.
pub fn finished_as_configured(cmp: &Comparison, file: &Path, cell: &Cell) -> bool {
    let Ok(log) = RunLog::read(&log_path(&cmp.cell_dir(cell))) else {
        return false;
    };
    let now = cell_config(cmp, file, cell).and_then(|c| c.to_toml());
    log_finished(&log)
        && now.is_ok_and(|now| {
            log.attr("config")
                .is_some_and(|old| same_numbers(old, &now))
        })
}

/// The engine config a run log was written under, if it holds one.
pub fn logged_train_config(log: &RunLog) -> Option<TrainConfig> {
    log.attr("train_config")
        .and_then(|t| toml::from_str::<TrainConfig>(t).ok())
}

/// Whether `log`'s last evaluation is after its run's final step.
pub fn log_finished(log: &RunLog) -> bool {
    let steps = logged_train_config(log).map(|c| c.steps);
    steps.is_some() && log.eval_steps().last().copied() == steps
}

/// Applies the comparison's equal-sample budget to a cell's engine config
/// (the protocol of [`crate::comparison::Budget`]): steps from the samples
/// (batch times accumulated micro-batches per step), the linearly scaled
/// rate and estimated-BN moving speed, every schedule length as a fraction
/// of the cell's steps, and the BN momentum for the cell's norm batch.
fn apply_budget(cmp: &Comparison, cell: &Cell, train: &mut TrainConfig, norm: &mut NormConfig) {
    let Some(b) = &cmp.budget else { return };
    norm.momentum = b.momentum(norm.momentum, cell.batch);
    let samples = cmp.tasks[cell.task].samples.unwrap_or(b.samples);
    // Samples per optimizer step: the norm batch times the micro-batches
    // accumulated into one step.
    let per_step = cell.batch as u64 * train.accumulate;
    let steps = (samples as f64 / per_step as f64).round().max(1.0) as u64;
    train.schedule = train.schedule.rescaled(train.steps, steps);
    train.schedule.warmup_iters = (b.warmup * steps as f64).round() as u64;
    train.steps = steps;
    let ratio = per_step as f64 / b.reference_batch as f64;
    train.optim.lr *= ratio;
    train.moving_speed = train.moving_speed.at_batch_ratio(ratio);
    let mut evals: Vec<u64> = b
        .eval_at
        .iter()
        .map(|f| ((f * steps as f64).round() as u64).clamp(1, steps))
        .collect();
    evals.sort_unstable();
    evals.dedup();
    train.eval_interval = 0;
    train.checkpoint_interval = steps.div_ceil(evals.len().max(1) as u64);
    train.eval_steps = evals;
    train.diag_interval = steps.div_ceil(b.diags);
}

/// A cell's resolved config: its task's base config with the cell's
/// overrides and budget applied.
#[derive(Clone, Debug)]
pub enum CellConfig {
    /// A segmentation run.
    Segmentation(Box<SegConfig>),
    /// A video run.
    Video(Box<VideoConfig>),
}

impl CellConfig {
    /// The engine config.
    pub fn train(&self) -> &TrainConfig {
        match self {
            Self::Segmentation(c) => &c.train,
            Self::Video(c) => &c.train,
        }
    }

    /// The norm config.
    pub fn norm(&self) -> &NormConfig {
        match self {
            Self::Segmentation(c) => &c.norm,
            Self::Video(c) => &c.norm,
        }
    }

    /// The device the cell trains on.
    pub fn device(&self) -> DeviceSpec {
        match self {
            Self::Segmentation(c) => c.device,
            Self::Video(c) => c.device,
        }
    }

    /// The config as TOML, as the run log records it.
    pub fn to_toml(&self) -> Result<String> {
        Ok(match self {
            Self::Segmentation(c) => to_toml(&**c)?,
            Self::Video(c) => to_toml(&**c)?,
        })
    }
}

/// Resolves the config of `cell` of the comparison read from `file`
/// (base configs are relative to it).
pub fn cell_config(cmp: &Comparison, file: &Path, cell: &Cell) -> Result<CellConfig> {
    let task = &cmp.tasks[cell.task];
    let base = file.parent().unwrap_or(Path::new(".")).join(&task.config);
    let set = cmp.cell_overrides(cell);
    Ok(match task.kind {
        TaskKind::Segmentation => {
            let mut cfg: SegConfig = load_config(&base, &set)?;
            apply_budget(cmp, cell, &mut cfg.train, &mut cfg.norm);
            cfg.device = cmp.device.unwrap_or(cfg.device);
            CellConfig::Segmentation(Box::new(cfg))
        }
        TaskKind::Video => {
            let mut cfg: VideoConfig = load_config(&base, &set)?;
            apply_budget(cmp, cell, &mut cfg.train, &mut cfg.norm);
            cfg.device = cmp.device.unwrap_or(cfg.device);
            CellConfig::Video(Box::new(cfg))
        }
    })
}

/// Trains (or resumes) `cell` in its run folder; `jobs > 1` asks for
/// plain progress lines, since several runs share the terminal.
pub fn run_cell(cmp: &Comparison, file: &Path, cell: &Cell, jobs: usize) -> Result<()> {
    let (task, variant) = (&cmp.tasks[cell.task], &cmp.variants[cell.variant]);
    let dir = cmp.cell_dir(cell);
    let trainer = |train: &TrainConfig| -> Result<Trainer> {
        let mut t = Trainer::new(train.clone(), &dir);
        for (k, v) in crate::host::host_attrs() {
            t = t.with_attr(k, v);
        }
        Ok(t.plain_progress(jobs > 1)
            .with_attr("comparison", cmp.name.clone())
            .with_attr("comparison_config", to_toml(cmp)?)
            .with_attr("cell.task", task.name.clone())
            .with_attr("cell.kind", task.kind.log_name())
            .with_attr("cell.variant", variant.name.clone())
            .with_attr("cell.label", variant.label.clone())
            .with_attr("cell.batch", cell.batch.to_string())
            .with_attr("cell.seed", cell.seed.to_string()))
    };
    let config = cell_config(cmp, file, cell)?;
    let device = config.device().device()?;
    match config {
        CellConfig::Segmentation(cfg) => {
            wsbcn_train::train::<Segmentation>(&cfg, trainer(&cfg.train)?, &device)?;
        }
        CellConfig::Video(cfg) => {
            wsbcn_train::train::<Video>(&cfg, trainer(&cfg.train)?, &device)?;
        }
    }
    Ok(())
}
