//! `wsbcn-seg`: train, evaluate and run DeepLabV3 on VOC-layout data.
//!
//! ```text
//! wsbcn-seg train   --config FILE [--set key=value ...] [--run-dir DIR] [--stop-after N]
//! wsbcn-seg eval    --checkpoint FILE [--config FILE] [--set ...] [--save DIR]
//! wsbcn-seg predict --checkpoint FILE [--config FILE] [--out DIR] IMAGES...
//! ```
//!
//! Without `--config`, `eval` and `predict` read the resolved config stored
//! in the run log beside the checkpoint (`<run>/run.h5`).

use candle_core::Device;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wsbcn_seg::augment::eval_sample;
use wsbcn_seg::palette::{write_label, LabelMap};
use wsbcn_seg::task::{train, SegConfig, SegTask};
use wsbcn_seg::visualize::{colorize, panel};
use wsbcn_seg::voc::{class_names, VocSplit, IGNORE};
use wsbcn_seg::{Error, Result};
use wsbcn_train::checkpoint::{load_checkpoint, restore_model};
use wsbcn_train::{config_for_checkpoint, load_config, Task, Trainer};

#[derive(Parser)]
#[command(
    name = "wsbcn-seg",
    about = "DeepLabV3 segmentation with WS/BCN and friends"
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
        /// Write image | ground truth | prediction panels here.
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// Predict images; writes palette PNGs and panels.
    Predict {
        /// The checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The config (default: the one in the run log).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Output folder.
        #[arg(long, default_value = "predictions")]
        out: PathBuf,
        /// Images to segment.
        images: Vec<PathBuf>,
    },
}

fn load_task(checkpoint: &Path, cfg: &SegConfig) -> Result<SegTask> {
    let task = SegTask::new(cfg, &Device::Cpu)?;
    let ckpt = load_checkpoint(checkpoint, &Device::Cpu)?;
    restore_model(&ckpt, task.varmap())?;
    Ok(task)
}

fn save_png(path: &Path, img: &image::RgbImage) -> Result<()> {
    img.save(path).map_err(|e| Error::data(path, e))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            config,
            set,
            run_dir,
            stop_after,
        } => {
            let cfg: SegConfig = load_config(&config, &set)?;
            let stem = config.file_stem().and_then(|s| s.to_str()).unwrap_or("seg");
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
                println!("{}", m.table(&class_names(&cfg.data.root, m.iou.len())));
            }
            println!("run log: {}", summary.log.display());
        }
        Command::Eval {
            checkpoint,
            config,
            set,
            save,
        } => {
            let cfg = config_for_checkpoint::<SegConfig>(&checkpoint, config.as_deref(), &set)?;
            let task = load_task(&checkpoint, &cfg)?;
            let m = task.evaluate_split()?;
            println!(
                "miou {:.4}\npixel_accuracy {:.4}\nmean_class_accuracy {:.4}",
                m.miou, m.pixel_accuracy, m.mean_class_accuracy
            );
            println!("{}", m.table(&class_names(&cfg.data.root, m.iou.len())));
            if let Some(dir) = save {
                std::fs::create_dir_all(&dir).map_err(|e| Error::data(&dir, e))?;
                let split =
                    VocSplit::open(&cfg.data.root, &cfg.data.val_split, cfg.model.num_classes)?;
                for i in 0..split.len().min(16) {
                    let item = split.read(i)?;
                    let sample = eval_sample(&item.image, &item.label, &cfg.data.augment);
                    let pred = LabelMap {
                        width: sample.w,
                        height: sample.h,
                        data: task.predict(&sample)?,
                    };
                    let p = panel(&[item.image.clone(), colorize(&item.label), colorize(&pred)]);
                    save_png(&dir.join(format!("{}_panel.png", item.id)), &p)?;
                }
                println!("panels: {}", dir.display());
            }
        }
        Command::Predict {
            checkpoint,
            config,
            out,
            images,
        } => {
            let cfg = config_for_checkpoint::<SegConfig>(&checkpoint, config.as_deref(), &[])?;
            let task = load_task(&checkpoint, &cfg)?;
            std::fs::create_dir_all(&out).map_err(|e| Error::data(&out, e))?;
            for path in images {
                let img = image::open(&path)
                    .map_err(|e| Error::data(&path, e))?
                    .to_rgb8();
                let (w, h) = (img.width() as usize, img.height() as usize);
                let blank = LabelMap {
                    width: w,
                    height: h,
                    data: vec![IGNORE; w * h],
                };
                let sample = eval_sample(&img, &blank, &cfg.data.augment);
                let pred = LabelMap {
                    width: w,
                    height: h,
                    data: task.predict(&sample)?,
                };
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
                write_label(&out.join(format!("{stem}.png")), &pred)?;
                save_png(
                    &out.join(format!("{stem}_panel.png")),
                    &panel(&[img, colorize(&pred)]),
                )?;
            }
            println!("predictions: {}", out.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    wsbcn_kernels::quiet_thread_pools();
    let cli = Cli::parse();
    // The commands run as a worker of the compute pool (wsbcn_kernels::threads).
    match wsbcn_kernels::on_own_pool(0, || run(cli))
        .map_err(|e| Error::from(wsbcn_nn::Error::from(e)))
        .and_then(|r| r)
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsbcn-seg: {e}");
            ExitCode::FAILURE
        }
    }
}
