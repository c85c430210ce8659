//! `wsbcn-video`: train and evaluate 3D-conv video models on clip data.
//!
//! ```text
//! wsbcn-video train --config FILE [--set key=value ...] [--run-dir DIR] [--stop-after N]
//! wsbcn-video eval  --checkpoint FILE [--config FILE] [--set ...] [--views CLIPSxCROPS]
//! ```
//!
//! Without `--config`, `eval` reads the resolved config stored in the run
//! log beside the checkpoint (`<run>/run.h5`).

use candle_core::Device;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use wsbcn_train::checkpoint::{load_checkpoint, restore_model};
use wsbcn_train::{config_for_checkpoint, load_config, Task, Trainer};
use wsbcn_video::task::{train, VideoConfig, VideoMetrics, VideoTask};
use wsbcn_video::Result;

#[derive(Parser)]
#[command(
    name = "wsbcn-video",
    about = "Video recognition with WS/BCN and friends"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train (or resume) a run.
    Train {
        /// The TOML config.
        #[arg(long)]
        config: PathBuf,
        /// Overrides, `key.path=value`.
        #[arg(long = "set")]
        set: Vec<String>,
        /// The run directory (default: runs/<config name>).
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// Stop after this many steps (a checkpoint is written there).
        #[arg(long)]
        stop_after: Option<u64>,
    },
    /// Evaluate a checkpoint on the validation split.
    Eval {
        /// The checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The config (default: the one in the run log).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides, `key.path=value`.
        #[arg(long = "set")]
        set: Vec<String>,
        /// Views per video, `CLIPSxCROPS` (crops 1 or 3).
        #[arg(long, default_value = "1x1", value_parser = views)]
        views: (usize, usize),
        /// Draw the confusion matrix as `FILE.png` and `FILE.svg`.
        #[arg(long, value_name = "FILE")]
        confusion: Option<PathBuf>,
    },
}

fn views(s: &str) -> std::result::Result<(usize, usize), String> {
    let (a, b) = s
        .split_once('x')
        .ok_or_else(|| format!("expected CLIPSxCROPS, got `{s}`"))?;
    let n = |v: &str| {
        v.parse::<usize>()
            .map_err(|_| format!("`{v}` is not a count"))
    };
    Ok((n(a)?, n(b)?))
}

fn print_metrics(m: &VideoMetrics, classes: &[String]) {
    println!(
        "top1 {:.4}\ntop5 {:.4}\nmean_class_accuracy {:.4}\nskipped_videos {}",
        m.top1, m.top5, m.mean_class_accuracy, m.skipped
    );
    println!("\n| class | accuracy % | videos |\n|---|---:|---:|");
    for (c, row) in m.confusion.iter().enumerate() {
        let n: usize = row.iter().sum();
        let acc = if n > 0 {
            100.0 * row[c] as f64 / n as f64
        } else {
            0.0
        };
        let name = classes.get(c).map_or_else(|| c.to_string(), String::clone);
        println!("| {name} | {acc:.1} | {n} |");
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            config,
            set,
            run_dir,
            stop_after,
        } => {
            let cfg: VideoConfig = load_config(&config, &set)?;
            let stem = config
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("video");
            let dir = run_dir.unwrap_or_else(|| PathBuf::from("runs").join(stem));
            let mut trainer = Trainer::new(cfg.train.clone(), &dir);
            if let Some(s) = stop_after {
                trainer = trainer.stop_after(s);
            }
            let (summary, task) = train(&cfg, trainer, &Device::Cpu)?;
            for (k, v) in &summary.metrics {
                println!("{k} {v:.4}");
            }
            if let Some(m) = &task.last {
                print_metrics(m, task.classes());
            }
            println!("run log: {}", summary.log.display());
        }
        Command::Eval {
            checkpoint,
            config,
            set,
            views: (clips, crops),
            confusion,
        } => {
            let cfg = config_for_checkpoint::<VideoConfig>(&checkpoint, config.as_deref(), &set)?;
            let task = VideoTask::new(&cfg, &Device::Cpu)?;
            let ckpt = load_checkpoint(&checkpoint, &Device::Cpu)?;
            restore_model(&ckpt, task.varmap())?;
            let m = task.evaluate_views(clips, crops)?;
            println!("views {clips}x{crops}");
            print_metrics(&m, task.classes());
            if let Some(stem) = confusion {
                let fig = wsbcn_plot::ConfusionFigure {
                    title: format!("confusion, {clips}x{crops} views: top-1 {:.4}", m.top1),
                    classes: task.classes(),
                    counts: &m.confusion,
                };
                for path in wsbcn_plot::save(&fig, &stem)? {
                    println!("wrote {}", path.display());
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    wsbcn_kernels::quiet_thread_pools();
    let cli = Cli::parse();
    // The commands run as a worker of the compute pool (wsbcn_kernels::threads).
    match wsbcn_kernels::on_own_pool(0, || run(cli))
        .map_err(|e| wsbcn_video::Error::from(wsbcn_nn::Error::from(e)))
        .and_then(|r| r)
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsbcn-video: {e}");
            ExitCode::FAILURE
        }
    }
}
