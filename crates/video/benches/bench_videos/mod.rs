//! What the loading benchmarks share: their Fashion-SSv2 videos and clip
//! cache, written once under `target/` and reused, and the call of their
//! Python side.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use wsbcn_data::fashion_mnist::DEBIAN_DIR;
use wsbcn_data::fashion_ssv2::{generate_ssv2, FashionSsv2Config};
use wsbcn_video::{build_cache, CacheOptions, ClipCache, VideoSource};

/// The training videos of `cfg` under `dir` (generated from Debian's
/// Fashion-MNIST files unless `dir` holds them), their files in list
/// order, and their clip cache `dir/train_clips.h5` (built with `opts`
/// unless present).
pub fn videos_and_cache(
    dir: &Path,
    cfg: &FashionSsv2Config,
    opts: &CacheOptions,
) -> Result<(Vec<PathBuf>, ClipCache), Box<dyn std::error::Error>> {
    if !dir.join("train.json").exists() {
        generate_ssv2(Path::new(DEBIAN_DIR), dir, cfg)?;
    }
    let list = VideoSource::ssv2_dir(dir, "train").read()?;
    let files = list.records.iter().map(|r| r.path.clone()).collect();
    let cache_path = dir.join("train_clips.h5");
    if !cache_path.exists() {
        build_cache(&list, &cache_path, opts, |_, _| {
            std::ops::ControlFlow::Continue(())
        })?;
    }
    Ok((files, ClipCache::open(&cache_path)?))
}

/// Clips per second of the Python side `benches/SCRIPT` run on `inputs`
/// for `rounds` passes (`python SCRIPT ROUNDS INPUTS...`).
pub fn python_clips_per_s(
    script: &str,
    python: &str,
    inputs: &[PathBuf],
    rounds: usize,
) -> Option<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(script);
    let mut args: Vec<OsString> = vec![rounds.to_string().into()];
    args.extend(inputs.iter().map(|p| p.clone().into_os_string()));
    wsbcn_train::bench::python_rate(python, &script, &args)
}
