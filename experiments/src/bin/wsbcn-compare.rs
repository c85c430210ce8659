//! `wsbcn-compare`: runs a comparison grid and writes its figures and report.
//!
//! ```text
//! wsbcn-compare --config configs/quick.toml [--set key=value ...] [--jobs N] [--device D]
//! ```
//!
//! Cells whose run has finished are skipped, unfinished ones resume from
//! their newest checkpoint: rerunning a killed comparison finishes only
//! what is missing. Figures and `report.{md,html}` land in the output
//! folder (`out`, default `runs/<name>`).
//!
//! Under `mpirun`/`srun` (a build with the `mpi` feature) every cell trains
//! data-parallel on all ranks, one cell at a time (`--jobs 1`); rank 0
//! builds the data and writes the figures and report, and a failing cell
//! ends the job.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use wsbcn_experiments::compare::run_comparison;
use wsbcn_experiments::Comparison;
use wsbcn_train::cli::{join_job, ranks_per_machine, reports};
use wsbcn_train::{load_config, DeviceSpec};

#[derive(Parser)]
#[command(
    name = "wsbcn-compare",
    about = "Train every normalization variant of a comparison and plot it against BN"
)]
struct Cli {
    /// The comparison file (configs/quick.toml, configs/batch_sweep.toml, ...).
    #[arg(long)]
    config: PathBuf,
    /// Overrides of the comparison file, `key.path=value`.
    #[arg(long = "set")]
    set: Vec<String>,
    /// Cells trained at the same time; each computes on its share of the
    /// cores (cores / jobs threads, at least 1).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// cpu, cuda or cuda:N for every cell (default: the comparison's
    /// `device`, else each task config's).
    #[arg(long)]
    device: Option<DeviceSpec>,
}

fn main() -> ExitCode {
    wsbcn_kernels::quiet_thread_pools();
    wsbcn_kernels::keep_freed_memory();
    let mut cli = Cli::parse();
    if let Some(d) = cli.device {
        cli.set.push(format!("device=\"{d}\""));
    }
    let Some(session) = join_job("wsbcn-compare") else {
        return ExitCode::FAILURE;
    };
    let world = wsbcn_dist::world();
    if world.size() > 1 && cli.jobs != 1 {
        world.abort_with(&format!(
            "wsbcn-compare: on {} ranks every cell uses all of them: run with --jobs 1",
            world.size()
        ));
    }
    let threads = wsbcn_kernels::share_cores(cli.jobs * ranks_per_machine(world.size()));
    let result = load_config::<Comparison>(&cli.config, &cli.set)
        .map_err(wsbcn_experiments::Error::from)
        .and_then(|cmp| run_comparison(&cmp, &cli.config, cli.jobs, threads));
    if let (Err(e), true) = (&result, world.size() > 1) {
        world.abort_with(&format!(
            "wsbcn-compare: rank {} of {}: {e}",
            world.rank(),
            world.size()
        ));
    }
    drop(session);
    if !reports() {
        return ExitCode::SUCCESS;
    }
    match result {
        Ok(out) => {
            println!(
                "cells: {} trained, {} already finished, {} failed",
                out.ran.len(),
                out.skipped.len(),
                out.failed.len()
            );
            for path in &out.written {
                println!("wrote {}", path.display());
            }
            if out.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                for (cell, e) in &out.failed {
                    eprintln!("wsbcn-compare: {cell} failed: {e}");
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("wsbcn-compare: {e}");
            ExitCode::FAILURE
        }
    }
}
