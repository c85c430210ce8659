//! The training loop that every task plugs into.
//!
//! A [`Task`] supplies the model (its `VarMap` and, if built from one, its
//! layer factory), the loss of a micro-batch, and an evaluator; a
//! [`Loader`] supplies the batches. [`Trainer::run`] then does, per step:
//! set the learning rate and the estimated-BN moving speed, forward and
//! backward over `accumulate` micro-batches (their mean gradient), clip,
//! SGD step, log, and at intervals evaluate, flush the run log and write a
//! checkpoint. A run directory holds `run.h5` and `checkpoints/`; running
//! again on the same directory resumes from its newest checkpoint and gives
//! the same loss sequence as a run that was never stopped.
//!
//! On several ranks ([`wsbcn_dist::world`]) the run is data-parallel
//! ([`crate::data_parallel`]): each rank trains on its shard of every step
//! ([`crate::Shard`]), gradients and the logged loss are averaged over the
//! ranks, and only rank 0 writes the run log and checkpoints. Every rank
//! resumes from the same run directory (a file system all ranks see), and
//! a checkpoint resumes only under the world size that wrote it: its data
//! position counts batches of that many shards.

use crate::checkpoint::{
    latest_checkpoint, load_checkpoint, restore_model, save_checkpoint, TrainState,
};
use crate::config::{same_numbers, within, Validate};
use crate::data_parallel::{average_gradients, broadcast_vars};
use crate::loader::{Dataset, Loader, LoaderConfig};
use crate::optim::{
    accumulate, clip_grad_norm, global_norm, param_groups, scale, Grads, Sgd, SgdConfig,
};
use crate::progress::Progress;
use crate::run_log::RunLog;
use crate::schedule::{MovingSpeedSchedule, ScheduleConfig};
use crate::step_profile::{Phases, StepProfile};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wsbcn_dist::World;
use wsbcn_nn::LayerFactory;

/// What a task plugs into the engine.
pub trait Task {
    /// One sample of the task's data set.
    type Sample: Send + 'static;

    /// The model's variables: weights, running statistics and estimates.
    fn varmap(&self) -> &VarMap;

    /// The layer factory the model was built from, if any: the engine sets
    /// its estimated-BN moving speed each step and reads its diagnostics.
    fn layers(&self) -> Option<&LayerFactory> {
        None
    }

    /// The scalar training loss of one micro-batch (model in train mode).
    fn loss(&mut self, batch: Vec<Self::Sample>) -> Result<Tensor>;

    /// Evaluates the model in eval mode: named metrics (e.g. `miou`, `top1`).
    fn evaluate(&mut self) -> Result<Vec<(String, f64)>>;
}

/// The engine's config section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps of the run.
    pub steps: u64,
    /// Micro-batches per optimizer step (gradient accumulation): the
    /// optimizer batch grows, the normalization batch does not. Estimated
    /// BN updates its estimates at every forward pass, so `accumulate`
    /// times per step, each at the step's moving speed `r`.
    pub accumulate: u64,
    /// Steps between evaluations (0: only at the end).
    pub eval_interval: u64,
    /// Steps after which to evaluate as well, e.g. fractions of a run
    /// resolved to steps by a comparison (the final step always is one).
    pub eval_steps: Vec<u64>,
    /// Steps between checkpoints (0: only at the end).
    pub checkpoint_interval: u64,
    /// Checkpoints kept on disk.
    pub keep_checkpoints: usize,
    /// Steps between progress lines when output is not a terminal.
    pub log_interval: u64,
    /// Steps between diagnostics (singularity fractions, WS ratios); 0: never.
    pub diag_interval: u64,
    /// Seed of data order, augmentation and initialisation.
    pub seed: u64,
    /// Clip gradients to this global norm.
    pub clip_grad_norm: Option<f64>,
    /// Data loading.
    pub data: LoaderConfig,
    /// The optimizer.
    pub optim: SgdConfig,
    /// The learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// The estimated-BN moving speed.
    pub moving_speed: MovingSpeedSchedule,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            accumulate: 1,
            eval_interval: 0,
            eval_steps: vec![],
            checkpoint_interval: 0,
            keep_checkpoints: 2,
            log_interval: 20,
            diag_interval: 0,
            seed: 0,
            clip_grad_norm: None,
            data: LoaderConfig::default(),
            optim: SgdConfig::default(),
            schedule: ScheduleConfig::default(),
            moving_speed: MovingSpeedSchedule::default(),
        }
    }
}

impl Validate for TrainConfig {
    fn validate(&self) -> std::result::Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((k.to_string(), m));
        if self.steps == 0 {
            return bad("steps", "must be at least 1".into());
        }
        if self.accumulate == 0 {
            return bad("accumulate", "must be at least 1".into());
        }
        if self.keep_checkpoints == 0 {
            return bad("keep_checkpoints", "must be at least 1".into());
        }
        if let Some(c) = self.clip_grad_norm {
            if c.is_nan() || c <= 0.0 {
                return bad("clip_grad_norm", format!("must be > 0, got {c}"));
            }
        }
        if self.data.batch_size == 0 {
            return bad("data.batch_size", "must be at least 1".into());
        }
        within("optim", self.optim.validate())?;
        within("schedule", self.schedule.validate())
    }
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// Steps completed.
    pub steps: u64,
    /// The step the run resumed from, if it resumed.
    pub resumed_from: Option<u64>,
    /// The final evaluation.
    pub metrics: Vec<(String, f64)>,
    /// The run log.
    pub log: PathBuf,
    /// The step profile, when the trainer profiled.
    pub profile: Option<StepProfile>,
}

/// Runs tasks under one config in one run directory.
pub struct Trainer {
    config: TrainConfig,
    dir: PathBuf,
    attrs: BTreeMap<String, String>,
    plain_progress: bool,
    stop_after: Option<u64>,
    profile: bool,
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn finite_or_diverged(value: f64, step: u64, what: &str, last: &Option<PathBuf>) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Error::Diverged {
            step,
            what: format!("{what} is {value}"),
            checkpoint: last.clone(),
        })
    }
}

fn mean_named(prefix: &str, values: impl Iterator<Item = (String, f64)>) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = values.map(|(l, v)| (format!("{prefix}.{l}"), v)).collect();
    if !out.is_empty() {
        let mean = out.iter().map(|(_, v)| v).sum::<f64>() / out.len() as f64;
        out.push((format!("{prefix}.mean"), mean));
    }
    out
}

/// Refuses to resume a run whose log was written under another config (a
/// comparison file edited in place, say): its checkpoint would carry on a
/// different protocol. Compares the engine config, and the whole task
/// config (model, norm, data) where both the log and `config` (the
/// trainer's `config` attribute) hold one, by [`same_numbers`](crate::same_numbers).
fn check_same_run(
    log: &RunLog,
    cfg: &TrainConfig,
    config: Option<&str>,
    checkpoint: &Path,
) -> Result<()> {
    let differs = |what: &str| Error::Checkpoint {
        path: checkpoint.to_path_buf(),
        msg: format!(
            "the run in {} was trained under another {what}; use a new run directory",
            log.path().display()
        ),
    };
    // The whole task config holds the engine's as `train`, and its norm
    // says whether the moving speed counts; the engine config alone is
    // compared where no task config was logged.
    if let (Some(logged), Some(new)) = (log.attr("config"), config) {
        if !same_numbers(logged, new) {
            return Err(differs("config (model, norm, data or training)"));
        }
    } else if let Some(logged) = log.attr("train_config") {
        if !same_numbers(logged, &crate::config::to_toml(cfg)?) {
            return Err(differs("train config (steps, schedule, optimizer or data)"));
        }
    }
    Ok(())
}

impl Trainer {
    /// A trainer writing into run directory `dir`.
    pub fn new(config: TrainConfig, dir: &Path) -> Self {
        Self {
            config,
            dir: dir.to_path_buf(),
            attrs: BTreeMap::new(),
            plain_progress: false,
            stop_after: None,
            profile: false,
        }
    }

    /// Stops once `step` steps are done (with a checkpoint there), e.g. to
    /// split a long run into sessions; running again resumes it.
    pub fn stop_after(mut self, step: u64) -> Self {
        self.stop_after = Some(step);
        self
    }

    /// Profiles the steps of this invocation: the table of
    /// [`StepProfile`] is printed at the end and written to `profile.md`
    /// in the run directory.
    pub fn profile(mut self, on: bool) -> Self {
        self.profile = on;
        self
    }

    /// Adds a root attribute to the run log (the resolved config, a task name).
    pub fn with_attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attrs.insert(name.to_string(), value.into());
        self
    }

    /// Forces plain progress lines even on a terminal.
    pub fn plain_progress(mut self, plain: bool) -> Self {
        self.plain_progress = plain;
        self
    }

    /// The run log's path.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("run.h5")
    }

    /// The checkpoint directory.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    /// Trains `task` on `data` to `config.steps`, resuming from the newest
    /// checkpoint in the run directory if there is one: `resume`, then per
    /// step `optimizer_step`, and at the configured steps `evaluate` and
    /// `checkpoint`. On an error the run log is flushed before it is
    /// returned.
    pub fn run<T, D>(&self, task: &mut T, data: &Loader<D>) -> Result<RunSummary>
    where
        T: Task,
        D: Dataset<Sample = T::Sample>,
    {
        let cfg = &self.config;
        let mut sgd = Sgd::new(param_groups(task.varmap(), &cfg.optim), &cfg.optim);
        let mut run = self.resume(task, &mut sgd)?;
        self.join_ranks(task, &run)?;
        self.write_attrs(&mut run.log)?;
        let progress = self.announce(&run);
        let clock = WallClock::continuing(&run.log);
        let mut batches = data.iter_from(run.batch);
        run.profile = self
            .profile
            .then(|| StepProfile::start(crate::step_profile::WARMUP_STEPS));
        let result = self.train_to(task, &mut sgd, &mut batches, &mut run, &progress, &clock);
        progress.finish();
        if let (Some(p), true, true) = (&run.profile, result.is_ok(), self.world().is_main()) {
            let table = p.table();
            println!("step profile:\n{table}");
            let path = self.dir.join("profile.md");
            std::fs::write(&path, table).map_err(|e| Error::io(&path, e))?;
        }
        match result {
            Ok(metrics) => Ok(RunSummary {
                steps: run.step,
                resumed_from: run.resumed_from,
                metrics,
                log: self.log_path(),
                profile: run.profile,
            }),
            Err(e) => {
                if self.world().is_main() {
                    run.log.flush()?;
                }
                Err(e)
            }
        }
    }

    /// The steps up to `stop_after` (or the end): each an
    /// `optimizer_step`, logged (its row in the run log, the progress
    /// line), then the evaluation and checkpoint due after it. Returns the
    /// last metrics.
    fn train_to<T, I>(
        &self,
        task: &mut T,
        sgd: &mut Sgd,
        batches: &mut I,
        run: &mut RunState,
        progress: &Progress,
        clock: &WallClock,
    ) -> Result<Vec<(String, f64)>>
    where
        T: Task,
        I: Iterator<Item = Result<Vec<T::Sample>>>,
    {
        let cfg = &self.config;
        let stop = self.stop_after.unwrap_or(cfg.steps).min(cfg.steps);
        let mut metrics = vec![];
        while run.step < stop {
            let started = Instant::now();
            let StepOutcome {
                mut row,
                lr,
                loss,
                norm,
                samples,
                phases,
            } = self.optimizer_step(task, sgd, batches, run)?;
            let rate = samples as f64 / started.elapsed().as_secs_f64().max(1e-9);
            row.extend([
                ("loss".to_string(), loss),
                ("grad_norm".to_string(), norm),
                ("samples_per_s".to_string(), rate),
                ("wall_s".to_string(), clock.now()),
            ]);
            run.log.log_step(run.step, &row);
            run.step += 1;
            progress.update(run.step, loss, lr, rate);
            if let Some(p) = run.profile.as_mut() {
                p.record(phases, started.elapsed().as_secs_f64(), samples);
            }
            let step = run.step;
            let last = step == cfg.steps;
            let listed = cfg.eval_steps.contains(&step);
            if last || listed || (cfg.eval_interval > 0 && step.is_multiple_of(cfg.eval_interval)) {
                metrics = self.evaluate(task, step, &mut run.log, progress, clock)?;
            }
            let periodic =
                cfg.checkpoint_interval > 0 && step.is_multiple_of(cfg.checkpoint_interval);
            if last || step == stop || periodic {
                self.checkpoint(task, sgd, run)?;
            }
            if let Some(p) = &run.profile {
                // The evaluation's and checkpoint's op calls are no step's.
                p.discard();
            }
        }
        Ok(metrics)
    }

    /// Where the run starts: restored from the newest checkpoint (model,
    /// optimizer state, data position, the log cut back to it) after
    /// checking that it belongs to this run, or a fresh start.
    fn resume<T: Task>(&self, task: &T, sgd: &mut Sgd) -> Result<RunState> {
        let cfg = &self.config;
        let Some(path) = latest_checkpoint(&self.checkpoint_dir())? else {
            return Ok(RunState {
                step: 0,
                batch: 0,
                last_checkpoint: None,
                resumed_from: None,
                log: RunLog::new(&self.log_path(), BTreeMap::new()),
                profile: None,
            });
        };
        let device = task
            .varmap()
            .all_vars()
            .first()
            .map_or(Device::Cpu, |v| v.device().clone());
        let ckpt = load_checkpoint(&path, &device)?;
        if ckpt.state.seed != cfg.seed {
            return Err(Error::Checkpoint {
                path,
                msg: format!(
                    "written with seed {}, the config says {}: use a new run directory",
                    ckpt.state.seed, cfg.seed
                ),
            });
        }
        let ranks = self.world().size() as u64;
        if ckpt.state.world_size != ranks {
            return Err(Error::Checkpoint {
                path,
                msg: format!(
                    "written by a run on {} rank(s), this one has {ranks}: resume with the same \
                     number of ranks, or use a new run directory",
                    ckpt.state.world_size
                ),
            });
        }
        restore_model(&ckpt, task.varmap())?;
        sgd.load_state(ckpt.optim)?;
        let mut log = if self.log_path().exists() {
            RunLog::read(&self.log_path())?
        } else {
            RunLog::new(&self.log_path(), BTreeMap::new())
        };
        let config = self.attrs.get("config").map(String::as_str);
        check_same_run(&log, cfg, config, &path)?;
        log.truncate(ckpt.state.step);
        let s = ckpt.state;
        Ok(RunState {
            step: s.step,
            batch: s.batches,
            last_checkpoint: Some(path),
            resumed_from: Some(s.step),
            log,
            profile: None,
        })
    }

    /// The run log's attributes: the caller's, then seed, version, commit
    /// and the engine config.
    fn write_attrs(&self, log: &mut RunLog) -> Result<()> {
        for (k, v) in &self.attrs {
            log.set_attr(k, v.clone());
        }
        log.set_attr("seed", self.config.seed.to_string());
        log.set_attr("crate_version", env!("CARGO_PKG_VERSION"));
        log.set_attr("git_commit", git_commit());
        log.set_attr("train_config", crate::config::to_toml(&self.config)?);
        if self.world().size() > 1 {
            log.set_attr("world_size", self.world().size().to_string());
        }
        Ok(())
    }

    /// The job's ranks.
    fn world(&self) -> &'static World {
        wsbcn_dist::world()
    }

    /// On several ranks: checks that every rank starts at the same step,
    /// then gives every rank rank 0's variables (its initialisation, or the
    /// checkpoint all of them read).
    fn join_ranks<T: Task>(&self, task: &T, run: &RunState) -> Result<()> {
        let world = self.world();
        if !world.all_agree(run.step) {
            return Err(Error::Invalid(format!(
                "rank {} would start at step {}, rank 0 at another: the ranks see different \
                 checkpoints in {}",
                world.rank(),
                run.step,
                self.checkpoint_dir().display()
            )));
        }
        broadcast_vars(world, task.varmap(), |_| true).map(|_| ())
    }

    /// The progress display, after printing the resolved config and where
    /// the run resumes.
    fn announce(&self, run: &RunState) -> Progress {
        let cfg = &self.config;
        let progress = if self.world().is_main() {
            Progress::new(run.step, cfg.steps, cfg.log_interval, self.plain_progress)
        } else {
            Progress::hidden()
        };
        let resolved = run
            .log
            .attr("config")
            .or(run.log.attr("train_config"))
            .unwrap_or_default();
        progress.println(&format!(
            "resolved config ({}):\n{resolved}",
            self.dir.display()
        ));
        if let Some(s) = run.resumed_from {
            progress.println(&format!("resuming from step {s} ({})", self.dir.display()));
        }
        progress
    }

    /// Step `run.step`'s update: the learning rate and the estimated-BN
    /// moving speed, forward and backward over `accumulate` micro-batches
    /// (their mean gradient; diagnostics on the last one of a diagnostic
    /// step), clipping, SGD.
    fn optimizer_step<T, I>(
        &self,
        task: &mut T,
        sgd: &mut Sgd,
        batches: &mut I,
        run: &mut RunState,
    ) -> Result<StepOutcome>
    where
        T: Task,
        I: Iterator<Item = Result<Vec<T::Sample>>>,
    {
        let cfg = &self.config;
        let started = Instant::now();
        let mut phases = Phases::default();
        let step = run.step;
        let lr = cfg.schedule.lr(cfg.optim.lr, step, cfg.steps);
        let diag = cfg.diag_interval > 0 && step.is_multiple_of(cfg.diag_interval);
        let mut row = vec![("lr".to_string(), lr)];
        if let Some(f) = task.layers() {
            let r = cfg.moving_speed.r(lr);
            f.moving_speed().set(r)?;
            f.diagnostics().set_enabled(diag);
            row.push(("moving_speed".into(), r));
        }
        let (mut total, mut loss_sum, mut samples) = (Grads::new(), 0.0, 0usize);
        for micro in 0..cfg.accumulate {
            let t = Instant::now();
            let samples_of_batch = batches
                .next()
                .unwrap_or_else(|| Err(Error::Data("the loader ended".into())))?;
            phases.data += t.elapsed().as_secs_f64();
            run.batch += 1;
            samples += samples_of_batch.len();
            let t = Instant::now();
            let loss = task.loss(samples_of_batch)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            phases.forward += t.elapsed().as_secs_f64();
            loss_sum += finite_or_diverged(value, step, "the loss", &run.last_checkpoint)?;
            let t = Instant::now();
            let store = loss.backward()?;
            phases.backward += t.elapsed().as_secs_f64();
            if let (Some(f), true) = (task.layers(), diag && micro + 1 == cfg.accumulate) {
                diagnostics_row(f, &store, &mut row)?;
            }
            accumulate(&mut total, sgd.grads(&store))?;
        }
        if cfg.accumulate > 1 {
            scale(&mut total, 1.0 / cfg.accumulate as f64)?;
        }
        let world = self.world();
        // Seconds and bytes of this step's collectives (several ranks).
        let (mut comm_s, mut comm_bytes) = (0.0, 0);
        if world.size() > 1 {
            let started = Instant::now();
            comm_bytes += average_gradients(world, &mut total)?;
            let mut sum = [loss_sum];
            world.all_reduce_sum(&mut sum);
            loss_sum = sum[0] / world.size() as f64;
            samples *= world.size();
            comm_s += started.elapsed().as_secs_f64();
        }
        let norm = match cfg.clip_grad_norm {
            Some(max) => clip_grad_norm(&mut total, max)?,
            None => global_norm(&total)?,
        };
        finite_or_diverged(norm, step, "the gradient norm", &run.last_checkpoint)?;
        sgd.step(&total, lr)?;
        if !task
            .layers()
            .is_some_and(LayerFactory::keeps_local_estimates)
        {
            let started = Instant::now();
            comm_bytes += broadcast_vars(world, task.varmap(), |n| !total.contains_key(n))?;
            comm_s += started.elapsed().as_secs_f64();
        }
        if world.size() > 1 {
            row.push(("comm_s".into(), comm_s));
            row.push(("comm_bytes".into(), comm_bytes as f64));
        }
        Ok(StepOutcome {
            row,
            lr,
            loss: loss_sum / cfg.accumulate as f64,
            norm,
            samples,
            phases: Phases {
                optimizer_step: started.elapsed().as_secs_f64(),
                ..phases
            },
        })
    }

    /// Evaluates `task` after `step` steps: the metrics, logged with the
    /// wall clock, printed, and the log flushed.
    fn evaluate<T: Task>(
        &self,
        task: &mut T,
        step: u64,
        log: &mut RunLog,
        progress: &Progress,
        clock: &WallClock,
    ) -> Result<Vec<(String, f64)>> {
        let metrics = task.evaluate()?;
        let mut row = metrics.clone();
        row.push(("wall_s".into(), clock.now()));
        log.log_eval(step, &row);
        let line: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
        progress.println(&format!("eval after step {step}: {}", line.join(", ")));
        if self.world().is_main() {
            log.flush()?;
        }
        Ok(metrics)
    }

    /// Flushes the log and writes a checkpoint of the step just done (the
    /// oldest beyond `keep_checkpoints` removed); rank 0 only.
    fn checkpoint<T: Task>(&self, task: &T, sgd: &Sgd, run: &mut RunState) -> Result<()> {
        let world = self.world();
        let state = TrainState {
            step: run.step,
            batches: run.batch,
            seed: self.config.seed,
            world_size: world.size() as u64,
        };
        if !world.is_main() {
            return Ok(());
        }
        run.log.flush()?;
        run.last_checkpoint = Some(save_checkpoint(
            &self.checkpoint_dir(),
            task.varmap(),
            sgd.state(),
            &state,
            self.config.keep_checkpoints,
        )?);
        Ok(())
    }
}

/// What one optimizer step reports.
struct StepOutcome {
    /// The run log's row so far: `lr`, the moving speed, diagnostics.
    row: Vec<(String, f64)>,
    /// The learning rate of the step.
    lr: f64,
    /// The mean loss of its micro-batches.
    loss: f64,
    /// The global gradient norm (before clipping).
    norm: f64,
    /// Samples seen.
    samples: usize,
    /// Where its time went.
    phases: Phases,
}

/// Where a run stands: its next step, the batches drawn so far, the newest
/// checkpoint (named when the run diverges), where it resumed from, its log.
struct RunState {
    step: u64,
    batch: u64,
    last_checkpoint: Option<PathBuf>,
    resumed_from: Option<u64>,
    log: RunLog,
    /// The step profile, when profiling.
    profile: Option<StepProfile>,
}

/// Wall-clock seconds of the run so far (steps and evaluations), carried
/// over a resume from what the log kept.
struct WallClock {
    base: f64,
    start: Instant,
}

impl WallClock {
    fn continuing(log: &RunLog) -> Self {
        let base = [log.scalar("wall_s"), log.eval("wall_s")]
            .into_iter()
            .filter_map(|c| c.and_then(|c| c.last().copied()))
            .fold(0.0, f64::max);
        Self {
            base,
            start: Instant::now(),
        }
    }

    fn now(&self) -> f64 {
        self.base + self.start.elapsed().as_secs_f64()
    }
}

/// The diagnostics of a diagnostic step, appended to `row`: WS gradient
/// ratios from the gradients in `store`, the fewest batch values per
/// channel, and the singularity fractions the norms recorded (then
/// recording stops until the next diagnostic step).
fn diagnostics_row(
    f: &LayerFactory,
    store: &candle_core::backprop::GradStore,
    row: &mut Vec<(String, f64)>,
) -> Result<()> {
    let ratios = f.diagnostics().ws_grad_ratios(store)?;
    row.extend(mean_named(
        "ws_grad_ratio",
        ratios.into_iter().map(|r| (r.layer, r.ratio)),
    ));
    let sing = f.diagnostics().take_singularity();
    if let Some(least) = sing.iter().filter_map(|r| r.batch_values).min() {
        row.push(("batch_values_per_channel.min".into(), least as f64));
    }
    row.extend(mean_named(
        "singularity",
        sing.into_iter().map(|r| (r.layer, r.fraction)),
    ));
    f.diagnostics().set_enabled(false);
    Ok(())
}
