//! Clip loading throughput on Fashion-SSv2 videos: decoding each video and
//! sampling a TSN clip (8 segments) with this crate's FFmpeg decoder, the
//! same with PyAV in the same run, and reading the same clips from the
//! HDF5 clip cache.
//!
//! `cargo bench -p wsbcn-video` generates 120 Fashion-SSv2 videos (64x64,
//! 16-24 frames, VP9 webm) from Debian's Fashion-MNIST files into
//! `target/bench-clips`, caches them, and prints a markdown table.
//! `WSBCN_TORCH_PYTHON=/path/to/python` (with the `av` package) adds
//! PyAV's row; `WSBCN_BENCH_ROUNDS` sets the timed passes over all videos
//! (default 3, after one warm-up pass).

mod bench_videos;

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;
use wsbcn_data::fashion_ssv2::FashionSsv2Config;
use wsbcn_train::bench::{env_usize, median_secs};
use wsbcn_video::{decode_all, Resize, Sampler};

const SAMPLER: Sampler = Sampler::Segments { num_segments: 8 };

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds = env_usize("WSBCN_BENCH_ROUNDS", 3);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-clips");
    let cfg = FashionSsv2Config {
        train: 120,
        val: 0,
        ..FashionSsv2Config::default()
    };
    let opts = wsbcn_video::CacheOptions {
        format: wsbcn_video::FrameFormat::Raw,
        ..wsbcn_video::CacheOptions::new(64)
    };
    let (files, cache) = bench_videos::videos_and_cache(&dir, &cfg, &opts)?;
    let n = files.len() as f64;

    let mut rng = StdRng::seed_from_u64(0);
    let decode = median_secs(rounds, || -> wsbcn_video::Result<()> {
        for f in &files {
            let all = decode_all(f, Resize::Original)?;
            let idx = SAMPLER.indices(all.count, Some(&mut rng))?;
            std::hint::black_box(idx.iter().map(|&i| all.frame(i)[0]).sum::<u8>());
        }
        Ok(())
    })?;
    let cached = median_secs(rounds, || -> wsbcn_video::Result<()> {
        for v in 0..cache.len() {
            let (t, _, _) = cache.dims(v)?;
            let idx = SAMPLER.indices(t, Some(&mut rng))?;
            std::hint::black_box(cache.frames(v, &idx)?.data.len());
        }
        Ok(())
    })?;
    let pyav = std::env::var("WSBCN_TORCH_PYTHON")
        .ok()
        .and_then(|py| bench_videos::python_clips_per_s("pyav_clips.py", &py, &files, rounds));

    println!(
        "\n{} Fashion-SSv2 videos (64x64, {}-{} frames, VP9 webm), TSN clips of 8 frames, 1 thread, median of {rounds} passes:\n",
        files.len(),
        cfg.frames.0,
        cfg.frames.1
    );
    println!("| loader | clips/s | vs wsbcn decode |\n|---|---:|---:|");
    let row = |name: &str, rate: f64| {
        println!("| {name} | {rate:.0} | {:.2}x |", rate / (n / decode));
    };
    row("wsbcn decode (FFmpeg via ffmpeg-next) + sample", n / decode);
    if let Some(rate) = pyav {
        row("PyAV decode + sample", rate);
    }
    row("wsbcn HDF5 clip cache read", n / cached);
    Ok(())
}
