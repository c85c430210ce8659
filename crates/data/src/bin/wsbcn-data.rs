//! Data-set generators and caches of the suite.
//!
//! `wsbcn-data fashion-voc --out DIR` writes Fashion-VOC (segmentation, in
//! the VOCdevkit layout) from Debian's Fashion-MNIST files;
//! `wsbcn-data fashion-ssv2 --out DIR` and `wsbcn-data fashion-kinetics --out
//! DIR` write the same garment-motion clips in the Something-Something v2
//! (VP9 webm) and Kinetics-400 (H.264 mp4) layouts; `wsbcn-data cache-clips
//! --ssv2 DIR --split train --out FILE.h5` decodes a split once into an HDF5
//! clip cache; `wsbcn-data convert-weights IN OUT --config TASK.toml --map
//! MAP` converts pretrained weights (a PyTorch checkpoint or safetensors)
//! into a safetensors file with the names of a task config's model,
//! listing every variable that does not fit.

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use clap::{Parser, Subcommand};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use wsbcn_data::fashion_mnist::DEBIAN_DIR;
use wsbcn_data::fashion_ssv2::{generate_kinetics, generate_ssv2, FashionSsv2Config};
use wsbcn_data::fashion_voc::{generate, ClassSet, FashionVocConfig};
use wsbcn_nn::LayerFactory;
use wsbcn_seg::deeplab::DeepLabV3;
use wsbcn_seg::task::SegConfig;
use wsbcn_train::pretrained::{match_weights, read_weights, save_matched, Fit};
use wsbcn_train::{load_config, WeightMap};
use wsbcn_video::task::VideoConfig;
use wsbcn_video::video_model::VideoModel;
use wsbcn_video::{build_cache, CacheOptions, FrameFormat, VideoSource, DEFAULT_JPEG_QUALITY};

#[derive(Parser)]
#[command(name = "wsbcn-data", about = "Data-set generators of the wsbcn suite")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fashion-VOC: garments on textured backgrounds, VOCdevkit layout.
    FashionVoc {
        /// Output folder (VOCdevkit/ is created inside).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        source: Source,
        /// Image side in pixels [default: 64].
        #[arg(long)]
        size: Option<u32>,
        /// Training images [default: 3000].
        #[arg(long)]
        train: Option<usize>,
        /// Validation images [default: 200].
        #[arg(long)]
        val: Option<usize>,
        /// Garments per image, `MIN,MAX` [default: 1,3].
        #[arg(long, value_parser = pair::<usize>)]
        garments: Option<(usize, usize)>,
        /// Garment scale range, `MIN,MAX` (of 28 px) [default: 1,1.6].
        #[arg(long, value_parser = pair::<f32>)]
        scale: Option<(f32, f32)>,
        /// Largest fraction of a garment's box an earlier one may cover [default: 0.2].
        #[arg(long)]
        max_overlap: Option<f32>,
        /// The garments' labels: Fashion-MNIST's 10 classes, or 5 coarse groups (tops, trousers, dresses, footwear, bags).
        #[arg(long, value_enum, default_value_t = ClassSet::Fine)]
        classes: ClassSet,
        /// Seed [default: 0].
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Fashion-SSv2: garments moving over textured backgrounds, SSv2 layout (webm).
    FashionSsv2(VideoArgs),
    /// Fashion-Kinetics: the Fashion-SSv2 clips in the Kinetics layout (mp4).
    FashionKinetics(VideoArgs),
    /// Decodes a split's videos once into an HDF5 clip cache.
    CacheClips {
        /// A folder in the SSv2 layout of `fashion-ssv2` (videos/, labels.json, SPLIT.json).
        #[arg(
            long,
            conflicts_with = "kinetics",
            required_unless_present = "kinetics"
        )]
        ssv2: Option<PathBuf>,
        /// A folder in the Kinetics layout (SPLIT.csv, SPLIT/LABEL/*.mp4).
        #[arg(long)]
        kinetics: Option<PathBuf>,
        /// The split: train, validation (SSv2) or val (Kinetics).
        #[arg(long)]
        split: String,
        /// The cache file to write.
        #[arg(long)]
        out: PathBuf,
        /// Frames are resized so their shorter side has this many pixels.
        #[arg(long, default_value_t = 64)]
        short_side: u32,
        /// How frames are stored: JPEG files, or raw RGB (exact; for tiny frames).
        #[arg(long, value_enum, default_value_t = Store::Jpeg)]
        format: Store,
        /// JPEG quality, 1-100.
        #[arg(long, default_value_t = DEFAULT_JPEG_QUALITY)]
        quality: u8,
        /// Leave out (and report) videos that fail to decode instead of stopping.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Converts pretrained weights into a safetensors file with the names of
    /// a task config's model, for `[model.pretrained]` with map `none`.
    ConvertWeights {
        /// A PyTorch checkpoint (.pth, .pt, .pth.tar; zip format) or safetensors.
        input: PathBuf,
        /// The safetensors file to write.
        output: PathBuf,
        /// A segmentation or video task config: the model the weights are for.
        #[arg(long)]
        config: PathBuf,
        /// Overrides of that config, `key.path=value`.
        #[arg(long)]
        set: Vec<String>,
        /// How the checkpoint's names become the model's.
        #[arg(long, value_enum, default_value_t = WeightMap::None)]
        map: WeightMap,
        /// Model names under this prefix are neither converted nor required (repeatable).
        #[arg(long)]
        skip: Vec<String>,
    },
}

/// `--format` of `cache-clips`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Store {
    Jpeg,
    Raw,
}

/// Where every generator reads Fashion-MNIST.
#[derive(clap::Args)]
struct Source {
    /// Folder of the Fashion-MNIST IDX files.
    #[arg(long, default_value = DEBIAN_DIR)]
    mnist: PathBuf,
}

/// Options of the video generators.
#[derive(clap::Args)]
struct VideoArgs {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    source: Source,
    /// Frame side in pixels [default: 64].
    #[arg(long)]
    size: Option<u32>,
    /// Frames per video, `MIN,MAX` [default: 16,24].
    #[arg(long, value_parser = pair::<usize>)]
    frames: Option<(usize, usize)>,
    /// Training videos [default: 1800].
    #[arg(long)]
    train: Option<usize>,
    /// Validation videos [default: 270].
    #[arg(long)]
    val: Option<usize>,
    /// Seed [default: 0].
    #[arg(long)]
    seed: Option<u64>,
}

impl VideoArgs {
    fn config(&self) -> FashionSsv2Config {
        let d = FashionSsv2Config::default();
        FashionSsv2Config {
            size: self.size.unwrap_or(d.size),
            frames: self.frames.unwrap_or(d.frames),
            train: self.train.unwrap_or(d.train),
            val: self.val.unwrap_or(d.val),
            seed: self.seed.unwrap_or(d.seed),
            ..d
        }
    }
}

/// Parses `MIN,MAX` (their order is checked with the rest of the config,
/// by `FashionVocConfig::validate`).
fn pair<T: std::str::FromStr>(s: &str) -> Result<(T, T), String> {
    let parse = |v: &str| {
        v.trim()
            .parse::<T>()
            .map_err(|_| format!("`{v}` is not a number"))
    };
    let (a, b) = s
        .split_once(',')
        .ok_or_else(|| format!("expected MIN,MAX, got `{s}`"))?;
    Ok((parse(a)?, parse(b)?))
}

fn report(name: &str, cfg: &FashionSsv2Config, root: &std::path::Path) {
    println!(
        "wrote {name} ({} train, {} validation videos of {}-{} frames at {}x{}) to {}",
        cfg.train,
        cfg.val,
        cfg.frames.0,
        cfg.frames.1,
        cfg.size,
        cfg.size,
        root.display()
    );
}

fn cache_clips(
    ssv2: Option<PathBuf>,
    kinetics: Option<PathBuf>,
    split: &str,
    out: &std::path::Path,
    opts: &CacheOptions,
) -> Result<(), String> {
    let source = match (ssv2, kinetics) {
        (Some(dir), _) => VideoSource::ssv2_dir(&dir, split),
        (None, Some(dir)) => VideoSource::kinetics_dir(&dir, split),
        (None, None) => return Err("give --ssv2 DIR or --kinetics DIR".into()),
    };
    let list = source.read().map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    let mut first: Option<usize> = None;
    let report = build_cache(&list, out, opts, |done, total| {
        // Videos a second since this call started, and the time left.
        let from = *first.get_or_insert(done.saturating_sub(opts.batch));
        let rate = (done - from) as f64 / start.elapsed().as_secs_f64().max(1e-9);
        let eta = (total - done) as f64 / rate.max(1e-9);
        eprint!(
            "\rcached {done}/{total} videos, {rate:.1}/s, {:02}:{:02}:{:02} left   ",
            eta as u64 / 3600,
            eta as u64 / 60 % 60,
            eta as u64 % 60
        );
        ControlFlow::Continue(())
    })
    .map_err(|e| e.to_string())?;
    eprintln!();
    if let Some(at) = report.resumed_at {
        println!(
            "continued an unfinished build at video {at} of {}",
            list.len()
        );
    }
    for (path, why) in &report.skipped {
        eprintln!("skipped {}: {why}", path.display());
    }
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "cached {} videos ({} frames, short side {}, {:?}) in {:.1} s to {} ({:.1} MB); skipped {}",
        report.written,
        report.frames,
        opts.short_side,
        opts.format,
        start.elapsed().as_secs_f64(),
        out.display(),
        size as f64 / 1e6,
        report.skipped.len()
    );
    Ok(())
}

/// The variables of the model of a segmentation or video task config (on
/// the CPU, in f32), and where an ImageNet ResNet's names go in it.
fn model_of(config: &std::path::Path, set: &[String]) -> Result<(VarMap, &'static str), String> {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    // A video config is only tried when the file is no segmentation one.
    let prefix = match load_config::<SegConfig>(config, set) {
        Ok(cfg) => {
            let f = LayerFactory::new(&cfg.norm).map_err(|e| e.to_string())?;
            DeepLabV3::new(&cfg.model, &f, vb).map_err(|e| e.to_string())?;
            cfg.model.backbone_prefix()
        }
        Err(s) => {
            let cfg = load_config::<VideoConfig>(config, set).map_err(|v| {
                format!(
                    "{}: neither a segmentation config ({s}) nor a video config ({v})",
                    config.display()
                )
            })?;
            let f = LayerFactory::new(&cfg.norm).map_err(|e| e.to_string())?;
            VideoModel::new(&cfg.model, &f, vb).map_err(|e| e.to_string())?;
            ""
        }
    };
    Ok((vm, prefix))
}

fn convert_weights(
    input: &std::path::Path,
    output: &std::path::Path,
    config: &std::path::Path,
    set: &[String],
    map: WeightMap,
    skip: &[String],
) -> Result<(), String> {
    let (vm, prefix) = model_of(config, set)?;
    let weights = read_weights(input).map_err(|e| e.to_string())?;
    let m = match_weights(&weights, &vm, map, prefix, skip);
    for p in &m.problems {
        eprintln!("{p}");
    }
    if !m.problems.is_empty() {
        return Err(format!(
            "{}: {} variables do not fit the model of {} (map `{map}`); nothing written",
            input.display(),
            m.problems.len(),
            config.display()
        ));
    }
    save_matched(&m, DType::F32, output).map_err(|e| e.to_string())?;
    println!(
        "wrote {} variables to {} ({} as they were, {} inflated over time, {} reshaped); {} left out by --skip",
        m.tensors.len(),
        output.display(),
        m.count(Fit::Exact),
        m.count(Fit::Inflated),
        m.count(Fit::Reshaped),
        m.skipped.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FashionVoc {
            out,
            source,
            size,
            train,
            val,
            garments,
            scale,
            max_overlap,
            classes,
            seed,
        } => {
            let d = FashionVocConfig::default();
            let cfg = FashionVocConfig {
                size: size.unwrap_or(d.size),
                train: train.unwrap_or(d.train),
                val: val.unwrap_or(d.val),
                garments: garments.unwrap_or(d.garments),
                scale: scale.unwrap_or(d.scale),
                max_overlap: max_overlap.unwrap_or(d.max_overlap),
                classes,
                seed: seed.unwrap_or(d.seed),
            };
            generate(&source.mnist, &out, &cfg)
                .map_err(|e| e.to_string())
                .map(|root| {
                    println!(
                        "wrote Fashion-VOC ({} train, {} val, {}x{}, {} labels with the background) to {}",
                        cfg.train,
                        cfg.val,
                        cfg.size,
                        cfg.size,
                        cfg.classes.names().len(),
                        root.display()
                    )
                })
        }
        Command::FashionSsv2(args) => {
            let cfg = args.config();
            generate_ssv2(&args.source.mnist, &args.out, &cfg)
                .map(|root| report("Fashion-SSv2", &cfg, &root))
                .map_err(|e| e.to_string())
        }
        Command::FashionKinetics(args) => {
            let cfg = args.config();
            generate_kinetics(&args.source.mnist, &args.out, &cfg)
                .map(|root| report("Fashion-Kinetics", &cfg, &root))
                .map_err(|e| e.to_string())
        }
        Command::CacheClips {
            ssv2,
            kinetics,
            split,
            out,
            short_side,
            format,
            quality,
            skip_bad,
        } => {
            let opts = CacheOptions {
                format: match format {
                    Store::Jpeg => FrameFormat::Jpeg(quality),
                    Store::Raw => FrameFormat::Raw,
                },
                skip_bad,
                ..CacheOptions::new(short_side)
            };
            cache_clips(ssv2, kinetics, &split, &out, &opts)
        }
        Command::ConvertWeights {
            input,
            output,
            config,
            set,
            map,
            skip,
        } => convert_weights(&input, &output, &config, &set, map, &skip),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsbcn-data: {e}");
            ExitCode::FAILURE
        }
    }
}
