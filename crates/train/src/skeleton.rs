//! The task skeleton: what a task must provide, and everything the engine
//! then does for it (training, checkpoint loading; the shared CLI is in
//! [`crate::cli`]).
//!
//! A task provides, through [`TaskKind`]:
//!
//! * its config sections `[model]` and `[data]` ([`RunConfig`]'s `M`, `D`,
//!   checked by [`CheckSections`](crate::CheckSections));
//! * a model, loss and evaluation: the [`Task`] built from a config on a
//!   device;
//! * a training data set ([`Dataset`]) from that task;
//! * its metrics, returned by [`Task::evaluate`] and, in full, by the
//!   task's own type;
//! * where its config names pretrained weights, and where a backbone's
//!   names go in its model (a fresh run loads them; see
//!   [`crate::pretrained`]).
//!
//! The engine then trains it ([`train`]: run directory, resume, run log,
//! checkpoints) and restores it from a checkpoint ([`load_trained`]).

use crate::checkpoint::{latest_checkpoint, load_checkpoint, restore_model};
use crate::config::to_toml;
use crate::pretrained::{load_pretrained, PretrainedConfig};
use crate::{Dataset, Loader, RunConfig, RunSummary, Shard, Task, TaskError, Trainer};
use candle_core::Device;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// What the skeleton's functions return: a task's own error, or the
/// engine's inside it.
pub type Result<T> = std::result::Result<T, TaskError>;

/// What a task supplies to the engine (see the module docs).
pub trait TaskKind {
    /// The task's name in run logs (`segmentation`, `video`).
    const NAME: &'static str;
    /// The `[model]` section.
    type Model: Clone + Default + Serialize + DeserializeOwned;
    /// The `[data]` section.
    type Data: Clone + Default + Serialize + DeserializeOwned;
    /// The model, its loss and its evaluation.
    type Task: Task;
    /// The training data set.
    type TrainSet: Dataset<Sample = <Self::Task as Task>::Sample>;

    /// Builds the task of `config` on `device`.
    fn build(config: &Config<Self>, device: &Device) -> Result<Self::Task>;

    /// The training split of a built task.
    fn train_set(task: &mut Self::Task) -> Result<Arc<Self::TrainSet>>;

    /// The weights a fresh run starts from (`[model.pretrained]`), and
    /// where an ImageNet backbone's names go in the model (its prefix).
    fn pretrained(model: &Self::Model) -> Option<(&PretrainedConfig, &'static str)>;
}

/// The config of task kind `K`.
pub type Config<K> = RunConfig<<K as TaskKind>::Model, <K as TaskKind>::Data>;

/// Trains (or resumes) a run of `config` on `device` through `trainer`,
/// which holds the run directory and options; on several ranks, each
/// trains on its shard of the data ([`Shard`]). The run log gets the
/// resolved config, the task's name and the norm spec as attributes.
/// Returns the summary and the trained task (its final evaluation in full
/// is the task's own).
pub fn train<K: TaskKind>(
    config: &Config<K>,
    trainer: Trainer,
    device: &Device,
) -> Result<(RunSummary, K::Task)> {
    let mut task = K::build(config, device)?;
    // A fresh run starts from the pretrained weights; a resumed one from
    // its checkpoint (so the file need not be there any more).
    if let Some((p, backbone)) = K::pretrained(&config.model) {
        if latest_checkpoint(&trainer.checkpoint_dir())?.is_none() {
            load_pretrained(p, task.varmap(), backbone)?;
        }
    }
    let world = wsbcn_dist::world();
    let loader = Loader::sharded(
        K::train_set(&mut task)?,
        config.train.data.clone(),
        config.train.seed,
        Shard {
            rank: world.rank(),
            ranks: world.size(),
        },
    )?;
    let summary = trainer
        .with_attr("config", to_toml(config)?)
        .with_attr("task", K::NAME)
        .with_attr("norm", config.norm.spec.clone())
        .run(&mut task, &loader)?;
    Ok((summary, task))
}

/// The task of `config` on `device` with the model state of `checkpoint`.
pub fn load_trained<K: TaskKind>(
    checkpoint: &Path,
    config: &Config<K>,
    device: &Device,
) -> Result<K::Task> {
    let task = K::build(config, device)?;
    let ckpt = load_checkpoint(checkpoint, device)?;
    restore_model(&ckpt, task.varmap())?;
    Ok(task)
}
