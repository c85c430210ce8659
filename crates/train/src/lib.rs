//! The shared training engine of wsbcn: losses, SGD with parameter groups,
//! learning-rate and moving-speed schedules, gradient clipping and
//! accumulation, background data loading, checkpoints that resume exactly,
//! HDF5 run logs, typed TOML configs, and the [`Trainer`] loop; and the
//! task skeleton the segmentation and video tasks plug into: the shared
//! config layout ([`RunConfig`], with its [`DeviceSpec`]), what a task
//! provides ([`TaskKind`], whose model is a [`Task`]), the generic
//! [`train`] and [`load_trained`], the binaries' command line ([`cli`]) and
//! the task crates' error type ([`TaskError`]).
#![warn(missing_docs)]

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod data_parallel;
pub mod device;
pub mod error;
pub mod h5_file;
pub mod loader;
pub mod loss;
pub mod optim;
pub mod pretrained;
pub mod progress;
pub mod run_config;
pub mod run_log;
pub mod schedule;
pub mod skeleton;
pub mod step_profile;
pub mod task_error;
pub mod trainer;

pub use checkpoint::{latest_checkpoint, load_checkpoint, save_checkpoint, Checkpoint, TrainState};
pub use config::{
    config_for_checkpoint, load_config, parse_config, same_numbers, to_toml, Validate,
};
pub use device::DeviceSpec;
pub use error::{Error, Result};
pub use loader::{Batches, Dataset, Loader, LoaderConfig, Shard};
pub use loss::{cross_entropy, pixel_cross_entropy};
pub use optim::{clip_grad_norm, global_norm, param_groups, Grads, ParamGroup, Sgd, SgdConfig};
pub use pretrained::{load_pretrained, read_weights, PretrainedConfig, WeightMap};
pub use run_config::{CheckSections, RunConfig};
pub use run_log::RunLog;
pub use schedule::{Decay, MovingSpeedSchedule, ScheduleConfig};
pub use skeleton::{load_trained, train, Config, TaskKind};
pub use step_profile::{Phases, StepProfile};
pub use task_error::TaskError;
pub use trainer::{RunSummary, Task, TrainConfig, Trainer};
