//! `wsbcn-video`: train and evaluate 3D-conv video models on clip data.
//!
//! ```text
//! wsbcn-video train --config FILE [--set key=value ...] [--run-dir DIR] [--stop-after N] [--device D]
//! wsbcn-video eval  --checkpoint FILE [--config FILE] [--set ...] [--device D] [--views CLIPSxCROPS] [--confusion FILE]
//! ```
//!
//! The shared options and their defaults are the engine's
//! (`wsbcn_train::cli`): without `--config`, `eval` reads the resolved
//! config stored in the run log beside the checkpoint.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use wsbcn_train::cli::{
    load_checkpoint_command, main_with, reports, train_command, CheckpointArgs, TrainArgs,
};
use wsbcn_video::task::{Video, VideoMetrics};
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
    Train(TrainArgs),
    /// Evaluate a checkpoint on the validation split.
    Eval {
        #[command(flatten)]
        checkpoint: CheckpointArgs,
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
        Command::Train(args) => {
            let (_, summary, task) = train_command::<Video>(&args)?;
            if !reports() {
                return Ok(());
            }
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
            views: (clips, crops),
            confusion,
        } => {
            let (_, task) = load_checkpoint_command::<Video>(&checkpoint)?;
            let m = task.evaluate_views(clips, crops)?;
            // Every rank holds the metrics; rank 0 prints and plots.
            if !reports() {
                return Ok(());
            }
            println!("views {clips}x{crops}");
            print_metrics(&m, task.classes());
            if let Some(stem) = confusion {
                let fig = wsbcn_plot::ConfusionFigure {
                    title: format!("confusion, {clips}x{crops} views: top-1 {:.4}", m.top1),
                    classes: task.classes(),
                    counts: &m.confusion,
                };
                let saved = wsbcn_plot::save(&fig, &stem);
                for path in saved.map_err(|e| wsbcn_video::Error::Output(e.to_string()))? {
                    println!("wrote {}", path.display());
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    main_with("wsbcn-video", || run(cli))
}
