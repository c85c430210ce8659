//! `wsbcn-conv-speed`: training steps per second of CPU-scale configs with
//! each convolution backend (oneDNN, the GEMM op, candle's conv), measured in
//! one run.
//!
//! ```text
//! wsbcn-conv-speed [--steps N] [--config FILE[:KEY=VALUE,...]]...
//! ```
//!
//! Each (config, backend) pair trains `--steps` steps in a child process of
//! this binary with `WSBCN_CONV` set (the backend is chosen once per
//! process), in a temporary run directory, with evaluation only at the end.
//! The rate is read from the run log's per-step wall clock, over the steps
//! after the first tenth (plan building, allocator warm-up), and printed as
//! a markdown table with each backend's speed-up over candle's conv.
//! Defaults: the Fashion-VOC DeepLabV3 config and the Fashion-SSv2 video
//! config as R3D and as R(2+1)D, all with GN+WS. Needs the data sets of the
//! configs (`wsbcn-data fashion-voc`, `wsbcn-data fashion-ssv2`).

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::Command;
use wsbcn_experiments::{Error, Result};
use wsbcn_kernels::ConvBackend;
use wsbcn_seg::task::Segmentation;
use wsbcn_train::{load_config, train as train_kind, RunLog, Trainer};
use wsbcn_video::task::Video;

#[derive(Parser)]
#[command(
    name = "wsbcn-conv-speed",
    about = "Training steps/s of CPU-scale configs with each conv backend"
)]
struct Cli {
    /// Training steps per run.
    #[arg(long, default_value_t = 200)]
    steps: u64,
    /// A seg or video config, optionally with overrides after a colon
    /// (`FILE:model.arch="r3d"`, several separated by commas).
    #[arg(long = "config")]
    configs: Vec<String>,
    /// Child mode: train this config (set by the parent).
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Child mode: the run directory.
    #[arg(long, hide = true)]
    run_dir: Option<PathBuf>,
}

const DEFAULTS: [&str; 3] = [
    "configs/seg/fashion_voc_gn_ws.toml",
    "configs/video/fashion_ssv2_gn_ws.toml:model.arch=\"r3d\"",
    "configs/video/fashion_ssv2_gn_ws.toml",
];

/// `FILE[:overrides]` -> the file and its `--set` style overrides.
fn split_spec(spec: &str) -> (PathBuf, Vec<String>) {
    match spec.split_once(':') {
        Some((file, sets)) => (
            PathBuf::from(file),
            sets.split(',').map(str::to_string).collect(),
        ),
        None => (PathBuf::from(spec), vec![]),
    }
}

/// Trains `spec` for `steps` steps into `dir` (the child's work).
fn train(spec: &str, steps: u64, dir: &Path) -> Result<()> {
    let (file, mut sets) = split_spec(spec);
    sets.push(format!("train.steps={steps}"));
    sets.push(format!("train.eval_interval={steps}"));
    sets.push(format!("train.checkpoint_interval={steps}"));
    let text = std::fs::read_to_string(&file).map_err(|e| Error::File {
        path: file.clone(),
        msg: e.to_string(),
    })?;
    if text.contains("[model.backbone]") {
        let cfg: wsbcn_seg::task::SegConfig = load_config(&file, &sets)?;
        let trainer = Trainer::new(cfg.train.clone(), dir).plain_progress(true);
        train_kind::<Segmentation>(&cfg, trainer, &cfg.device.device()?)?;
    } else {
        let cfg: wsbcn_video::task::VideoConfig = load_config(&file, &sets)?;
        let trainer = Trainer::new(cfg.train.clone(), dir).plain_progress(true);
        train_kind::<Video>(&cfg, trainer, &cfg.device.device()?)?;
    }
    Ok(())
}

/// Training steps per second in `log`, after the first tenth of its steps.
fn steps_per_s(log: &RunLog) -> Option<f64> {
    let wall = log.scalar("wall_s")?;
    let skip = (wall.len() / 10).max(1);
    let (first, last) = (*wall.get(skip - 1)?, *wall.last()?);
    Some((wall.len() - skip) as f64 / (last - first))
}

/// Runs one (config, backend) child and returns its rate.
fn measure(spec: &str, backend: ConvBackend, steps: u64) -> Result<f64> {
    let dir = std::env::temp_dir().join(format!(
        "wsbcn-conv-speed-{}-{}",
        std::process::id(),
        backend.name()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe().map_err(|e| Error::Runs(e.to_string()))?;
    let status = Command::new(exe)
        .env("WSBCN_CONV", backend.name())
        .args(["--child", spec, "--steps", &steps.to_string(), "--run-dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| Error::Runs(format!("{spec} with {}: {e}", backend.name())))?;
    if !status.success() {
        return Err(Error::Runs(format!(
            "{spec} with {}: the training run failed ({status})",
            backend.name()
        )));
    }
    let log = RunLog::read(&dir.join("run.h5"))?;
    let rate = steps_per_s(&log)
        .ok_or_else(|| Error::Runs(format!("{spec}: no step times in the run log")))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(rate)
}

fn main() {
    wsbcn_kernels::quiet_thread_pools();
    wsbcn_kernels::keep_freed_memory();
    let cli = Cli::parse();
    if let (Some(spec), Some(dir)) = (&cli.child, &cli.run_dir) {
        if let Err(e) = train(spec, cli.steps, dir) {
            eprintln!("wsbcn-conv-speed: {e}");
            std::process::exit(1);
        }
        return;
    }
    let configs: Vec<String> = if cli.configs.is_empty() {
        DEFAULTS.iter().map(|s| s.to_string()).collect()
    } else {
        cli.configs.clone()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "training steps/s, CPU, {threads} threads, {} steps per run\n",
        cli.steps
    );
    println!("| config | onednn steps/s | gemm steps/s | candle steps/s | onednn vs candle | gemm vs candle |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut failed = false;
    for spec in &configs {
        let rates: Vec<Option<f64>> = ConvBackend::ALL
            .iter()
            .map(|&b| match measure(spec, b, cli.steps) {
                Ok(r) => Some(r),
                Err(e) => {
                    eprintln!("wsbcn-conv-speed: {e}");
                    failed = true;
                    None
                }
            })
            .collect();
        let fmt = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.2}"));
        let ratio = |a: Option<f64>| match (a, rates[2]) {
            (Some(a), Some(c)) => format!("{:.2}x", a / c),
            _ => "-".into(),
        };
        println!(
            "| {spec} | {} | {} | {} | {} | {} |",
            fmt(rates[0]),
            fmt(rates[1]),
            fmt(rates[2]),
            ratio(rates[0]),
            ratio(rates[1])
        );
    }
    if failed {
        std::process::exit(1);
    }
}
