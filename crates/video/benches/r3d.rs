//! Training throughput and peak memory of R3D-18 (400 classes) on clips of
//! 2x3x8x112x112, for every norm variant the comparisons train
//! (`VARIANTS`), next to torchvision's `r3d_18` in PyTorch in the same run.
//!
//! `cargo bench -p wsbcn-video --bench r3d` prints a markdown table; each
//! variant runs in its own process (peak memory is its own).
//! `WSBCN_TORCH_PYTHON=/path/to/python` (with torch and torchvision) adds
//! PyTorch's columns; `WSBCN_BENCH_STEPS` sets the timed steps (default 3,
//! after one warm-up step).

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use wsbcn_nn::{LayerFactory, NormConfig};
use wsbcn_train::bench::{bench_main, time_sgd_steps, VARIANTS};
use wsbcn_train::cross_entropy;
use wsbcn_video::video_model::{Arch, VideoModel, VideoModelConfig};

/// The child process: time `steps` training steps of one variant.
fn child(spec: &str, steps: usize, dev: &Device) -> wsbcn_video::Result<()> {
    let cfg = VideoModelConfig {
        arch: Arch::R3d,
        ..VideoModelConfig::default()
    };
    let vm = VarMap::new();
    let f = LayerFactory::new(&NormConfig {
        spec: spec.into(),
        ..NormConfig::default()
    })?;
    let model = VideoModel::new(&cfg, &f, VarBuilder::from_varmap(&vm, DType::F32, dev))?;
    let x = Tensor::randn(0f32, 1.0, (2, 3, 8, 112, 112), dev)?;
    let y = Tensor::new(&[3u32, 117], dev)?;
    Ok(time_sgd_steps(steps, 2, &vm, 0.01, || {
        cross_entropy(&model.forward_t(&x, true)?, &y, 0.0)
    })?)
}

fn main() {
    bench_main(
        "R3D-18, 400 classes, clips 2x3x8x112x112, training (forward, backward, SGD step)",
        &VARIANTS,
        concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_r3d.py"),
        "clips/s",
        child,
    );
}
