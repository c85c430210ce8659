//! The command line every task binary shares (`wsbcn-seg`, `wsbcn-video`):
//!
//! ```text
//! <bin> train --config FILE [--set key=value ...] [--run-dir DIR] [--stop-after N] [--device D]
//! <bin> eval  --checkpoint FILE [--config FILE] [--set ...] [--device D] [task options]
//! ```
//!
//! A binary flattens [`TrainArgs`] and [`CheckpointArgs`] into its own
//! subcommands (adding its evaluation options and extra commands), calls
//! [`train_command`] and [`load_checkpoint_command`], and wraps its `main`
//! in [`main_with`]. `--device` (`cpu`, `cuda`, `cuda:N`) overrides the
//! config's `device` key. Without `--config`, a checkpoint's config is the
//! resolved one stored in the run log beside it (`<run>/run.h5`).

use crate::config::{config_for_checkpoint, load_config, Validate};
use crate::skeleton::{load_trained, train, Config, Result, TaskKind};
use crate::{DeviceSpec, RunSummary, Trainer};
use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;

/// The options of `train`.
#[derive(Clone, Debug, clap::Args)]
pub struct TrainArgs {
    /// The TOML config.
    #[arg(long)]
    pub config: PathBuf,
    /// Overrides, `key.path=value`.
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// The run directory (default: runs/CONFIG, CONFIG the file stem).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Stop after this many steps (a checkpoint is written there).
    #[arg(long)]
    pub stop_after: Option<u64>,
    /// cpu, cuda or cuda:N (default: the config's `device`, else cpu).
    #[arg(long)]
    pub device: Option<DeviceSpec>,
    /// Profile the steps: where a step's time goes (data, forward and
    /// backward per kind of op, optimizer), printed at the end and written
    /// to `profile.md` in the run directory.
    #[arg(long)]
    pub profile: bool,
}

/// The options of a command that loads a checkpoint (`eval`, `predict`).
#[derive(Clone, Debug, clap::Args)]
pub struct CheckpointArgs {
    /// The checkpoint.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The config (default: the one in the run log).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Overrides, `key.path=value`.
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// cpu, cuda or cuda:N (default: the config's `device`, else cpu).
    #[arg(long)]
    pub device: Option<DeviceSpec>,
}

/// `train`: loads the config (with `--set` and `--device`), trains or
/// resumes the run in its directory, and returns the config, the summary
/// and the trained task.
pub fn train_command<K: TaskKind>(args: &TrainArgs) -> Result<(Config<K>, RunSummary, K::Task)>
where
    Config<K>: Validate,
{
    let mut cfg: Config<K> = load_config(&args.config, &args.set)?;
    if let Some(d) = args.device {
        cfg.device = d;
    }
    let device = cfg.device.device()?;
    let stem = args
        .config
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(K::NAME);
    let dir = args
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(stem));
    let mut trainer = Trainer::new(cfg.train.clone(), &dir).profile(args.profile);
    if let Some(s) = args.stop_after {
        trainer = trainer.stop_after(s);
    }
    let (summary, task) = train::<K>(&cfg, trainer, &device)?;
    Ok((cfg, summary, task))
}

/// Whether this process prints a command's results: one process, or rank
/// 0 of a data-parallel job (every rank holds the same results).
pub fn reports() -> bool {
    wsbcn_dist::world().is_main()
}

/// The config of a checkpoint command and its task with the checkpoint's
/// model state, on the chosen device.
pub fn load_checkpoint_command<K: TaskKind>(args: &CheckpointArgs) -> Result<(Config<K>, K::Task)>
where
    Config<K>: Validate,
{
    let mut cfg: Config<K> =
        config_for_checkpoint(&args.checkpoint, args.config.as_deref(), &args.set)?;
    if let Some(d) = args.device {
        cfg.device = d;
    }
    let device = cfg.device.device()?;
    let task = load_trained::<K>(&args.checkpoint, &cfg, &device)?;
    Ok((cfg, task))
}

/// A task binary's `main`: idle pool threads sleep
/// ([`wsbcn_kernels::quiet_thread_pools`]), the process joins its job
/// ([`wsbcn_dist::init`]: one rank, or MPI under `mpirun`/`srun`), `run`
/// works as a worker of the compute pool ([`wsbcn_kernels::on_own_pool`];
/// on several ranks per machine they share its cores), and an error is
/// printed as `<name>: <message>` with a failing exit status. On several
/// ranks an error or a panic names the rank and ends the whole job
/// (`MPI_Abort`), so the other ranks never wait for it.
pub fn main_with<E: Display + Send>(
    name: &str,
    run: impl FnOnce() -> std::result::Result<(), E> + Send,
) -> ExitCode {
    wsbcn_kernels::quiet_thread_pools();
    wsbcn_kernels::keep_freed_memory();
    let Some(session) = join_job(name) else {
        return ExitCode::FAILURE;
    };
    let world = wsbcn_dist::world();
    let threads = if world.size() > 1 {
        wsbcn_kernels::share_cores(ranks_per_machine(world.size()))
    } else {
        0
    };
    let result = match wsbcn_kernels::on_own_pool(threads, run) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(()) => {
            drop(session);
            ExitCode::SUCCESS
        }
        Err(e) if world.size() > 1 => world.abort_with(&format!(
            "{name}: rank {} of {}: {e}",
            world.rank(),
            world.size()
        )),
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The ranks on this machine, from the launcher's environment (Open MPI's
/// `OMPI_COMM_WORLD_LOCAL_SIZE`, MPICH's `MPI_LOCALNRANKS`), else all
/// `size` of them.
pub fn ranks_per_machine(size: usize) -> usize {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
        .unwrap_or(size)
}

/// Joins the job this process was launched into ([`wsbcn_dist::init`]);
/// on several ranks a panic then names the rank and ends the job. `None`
/// after printing why it cannot (as `<name>: <message>`).
pub fn join_job(name: &str) -> Option<wsbcn_dist::Session> {
    match wsbcn_dist::init() {
        Ok(session) => {
            if wsbcn_dist::world().size() > 1 {
                abort_job_on_panic(name);
            }
            Some(session)
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            None
        }
    }
}

/// After the default panic message, names the rank and ends the job.
fn abort_job_on_panic(name: &str) {
    let name = name.to_string();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let world = wsbcn_dist::world();
        eprintln!(
            "{name}: rank {} of {} panicked; ending the job",
            world.rank(),
            world.size()
        );
        world.abort(101)
    }));
}
