//! Input pipeline throughput of video training at 224 pixels: a TSN clip
//! of 8 segments from each 256x256 video, then the training augmentation
//! of `clip_transform` (multi-scale crop, resize to 224, flip, normalize).
//! Three ways, one thread each, in one run:
//!
//! - decoding the whole video with this crate's FFmpeg decoder;
//! - reading the 8 frames from the HDF5 clip cache (JPEG frames, the
//!   default format), as the training loader does (`ClipSet`): only the
//!   columns the crop reads are decoded;
//! - in PyTorch, each of the two (`torch_clips.py`): PyAV decoding the same
//!   file, or h5py reading the same cache and torchvision decoding its
//!   JPEGs; then torchvision's v2 transforms doing the same augmentation.
//!
//! `cargo bench -p wsbcn-video --bench pipeline` writes 48 Fashion-SSv2
//! videos (256x256, 16-24 frames, VP9 webm) from Debian's Fashion-MNIST
//! files into `target/bench-clips-256`, caches them and prints a markdown
//! table. `WSBCN_TORCH_PYTHON=/path/to/python` (with torch, torchvision
//! and `av`) adds PyTorch's row; `WSBCN_BENCH_ROUNDS` sets the timed passes
//! over all videos (default 5, after one warm-up pass).

mod bench_videos;

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use wsbcn_data::fashion_ssv2::FashionSsv2Config;
use wsbcn_train::bench::{env_usize, median_secs};
use wsbcn_video::clip_data::ClipSet;
use wsbcn_video::clip_transform::{train_clip, ClipAugment};
use wsbcn_video::{decode_all, Frames, Resize, Sampler};

const SAMPLER: Sampler = Sampler::Segments { num_segments: 8 };

/// Frames `idx` of `all`.
fn pick(all: &Frames, idx: &[usize]) -> Frames {
    Frames {
        count: idx.len(),
        data: idx.iter().flat_map(|&i| all.frame(i)).copied().collect(),
        ..*all
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds = env_usize("WSBCN_BENCH_ROUNDS", 5);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-clips-256");
    let cfg = FashionSsv2Config {
        size: 256,
        scale: (3.5, 5.0),
        train: 48,
        val: 0,
        ..FashionSsv2Config::default()
    };
    let (files, cache) =
        bench_videos::videos_and_cache(&dir, &cfg, &wsbcn_video::CacheOptions::new(256))?;
    let cache_path = dir.join("train_clips.h5");
    let aug = ClipAugment {
        crop: 224,
        ..ClipAugment::default()
    };
    let n = files.len() as f64;
    let mut rng = StdRng::seed_from_u64(0);

    let decode = median_secs(rounds, || -> wsbcn_video::Result<()> {
        for f in &files {
            let all = decode_all(f, Resize::Original)?;
            let idx = SAMPLER.indices(all.count, Some(&mut rng))?;
            let clip = train_clip(&pick(&all, &idx), 0, &aug, &mut rng);
            std::hint::black_box(&clip);
        }
        Ok(())
    })?;
    // What a loader worker does: read the frames' files, then decode only
    // the columns of the drawn crop.
    let set = ClipSet::from_cache(cache, SAMPLER, aug.clone(), false)?;
    let cached = median_secs(rounds, || -> wsbcn_video::Result<()> {
        for v in 0..set.len() {
            std::hint::black_box(set.train_sample(v, &mut rng)?);
        }
        Ok(())
    })?;
    let python = std::env::var("WSBCN_TORCH_PYTHON").ok();
    let torch = python
        .as_deref()
        .and_then(|py| bench_videos::python_clips_per_s("torch_clips.py", py, &files, rounds));
    let cache_args = [PathBuf::from("--cache"), cache_path.clone()];
    let torch_cached = python
        .as_deref()
        .and_then(|py| bench_videos::python_clips_per_s("torch_clips.py", py, &cache_args, rounds));

    println!(
        "\n{} Fashion-SSv2 videos (256x256, {}-{} frames, VP9 webm), TSN clips of 8 frames augmented for training (multi-scale crop, resize to 224, flip, normalize), 1 thread, median of {rounds} passes:\n",
        files.len(),
        cfg.frames.0,
        cfg.frames.1
    );
    println!("| pipeline | clips/s per core | vs PyTorch on the same input |\n|---|---:|---:|");
    let row = |name: &str, rate: f64, base: Option<f64>| {
        let vs = base.map_or("-".to_string(), |t| format!("{:.2}x", rate / t));
        println!("| {name} | {rate:.1} | {vs} |");
    };
    row(
        "wsbcn, decoding the video (FFmpeg via ffmpeg-next)",
        n / decode,
        torch,
    );
    if let Some(rate) = torch {
        row("PyTorch, decoding the video (PyAV)", rate, Some(rate));
    }
    row(
        "wsbcn, the HDF5 clip cache (JPEG frames)",
        n / cached,
        torch_cached,
    );
    if let Some(rate) = torch_cached {
        row(
            "PyTorch, the same cache (h5py, torchvision's decode_jpeg)",
            rate,
            Some(rate),
        );
    }
    Ok(())
}
