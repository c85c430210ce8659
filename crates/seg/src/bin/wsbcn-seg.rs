//! `wsbcn-seg`: train, evaluate and run DeepLabV3 on VOC-layout data.
//!
//! ```text
//! wsbcn-seg train   --config FILE [--set key=value ...] [--run-dir DIR] [--stop-after N] [--device D]
//! wsbcn-seg eval    --checkpoint FILE [--config FILE] [--set ...] [--device D] [--save DIR]
//! wsbcn-seg predict --checkpoint FILE [--config FILE] [--set ...] [--device D] [--out DIR] IMAGES...
//! ```
//!
//! The shared options and their defaults are the engine's
//! (`wsbcn_train::cli`): without `--config`, `eval` and `predict` read the
//! resolved config stored in the run log beside the checkpoint.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wsbcn_seg::augment::eval_sample;
use wsbcn_seg::palette::{write_label, LabelMap};
use wsbcn_seg::task::Segmentation;
use wsbcn_seg::visualize::{colorize, panel};
use wsbcn_seg::voc::{class_names, VocSplit, IGNORE};
use wsbcn_seg::{Error, Result};
use wsbcn_train::cli::{
    load_checkpoint_command, main_with, reports, train_command, CheckpointArgs, TrainArgs,
};

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
    Train(TrainArgs),
    /// Evaluate a checkpoint on the validation split.
    Eval {
        #[command(flatten)]
        checkpoint: CheckpointArgs,
        /// Write image | ground truth | prediction panels here.
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// Predict images; writes palette PNGs and panels.
    Predict {
        #[command(flatten)]
        checkpoint: CheckpointArgs,
        /// Output folder.
        #[arg(long, default_value = "predictions")]
        out: PathBuf,
        /// Images to segment.
        images: Vec<PathBuf>,
    },
}

fn save_png(path: &Path, img: &image::RgbImage) -> Result<()> {
    img.save(path).map_err(|e| Error::data(path, e))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => {
            let (cfg, summary, task) = train_command::<Segmentation>(&args)?;
            if !reports() {
                return Ok(());
            }
            for (k, v) in &summary.metrics {
                println!("{k} {v:.4}");
            }
            if let Some(m) = &task.last {
                println!("{}", m.table(&class_names(&cfg.data.root, m.iou.len())));
            }
            println!("run log: {}", summary.log.display());
        }
        Command::Eval { checkpoint, save } => {
            let (cfg, task) = load_checkpoint_command::<Segmentation>(&checkpoint)?;
            let m = task.evaluate_split()?;
            // Every rank holds the metrics; rank 0 prints and saves.
            if !reports() {
                return Ok(());
            }
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
        // Under a launcher only rank 0 predicts (eval-mode norms need no
        // other rank).
        Command::Predict { .. } if !reports() => {}
        Command::Predict {
            checkpoint,
            out,
            images,
        } => {
            let (cfg, task) = load_checkpoint_command::<Segmentation>(&checkpoint)?;
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
    let cli = Cli::parse();
    main_with("wsbcn-seg", || run(cli))
}
