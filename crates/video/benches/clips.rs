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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use wsbcn_data::fashion_ssv2::FashionSsv2Config;
use wsbcn_train::bench::{env_usize, median};
use wsbcn_video::{decode_all, Resize, Sampler};

const SAMPLER: Sampler = Sampler::Segments { num_segments: 8 };

/// Median of `rounds` timings (seconds) of `f` after one warm-up call.
fn median_secs(rounds: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..rounds)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    median(&mut t)
}

fn pyav_clips_per_s(python: &str, files: &[PathBuf], rounds: usize) -> Option<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pyav_clips.py");
    let out = Command::new(python)
        .arg(script)
        .arg(rounds.to_string())
        .args(files)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("PyAV: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

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
    let decode = median_secs(rounds, || {
        for f in &files {
            let all = decode_all(f, Resize::Original).expect("decodable bench video");
            let idx = SAMPLER
                .indices(all.count, Some(&mut rng))
                .expect("sampling");
            std::hint::black_box(idx.iter().map(|&i| all.frame(i)[0]).sum::<u8>());
        }
    });
    let cached = median_secs(rounds, || {
        for v in 0..cache.len() {
            let (t, _, _) = cache.dims(v).expect("cached video");
            let idx = SAMPLER.indices(t, Some(&mut rng)).expect("sampling");
            std::hint::black_box(cache.frames(v, &idx).expect("cached frames").data.len());
        }
    });
    let pyav = std::env::var("WSBCN_TORCH_PYTHON")
        .ok()
        .and_then(|py| pyav_clips_per_s(&py, &files, rounds));

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
