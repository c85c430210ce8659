//! What the video training benchmarks share: the child that times one
//! variant of a model, and the PyTorch script that builds torchvision's.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use wsbcn_nn::{LayerFactory, NormConfig};
use wsbcn_train::bench::time_sgd_steps;
use wsbcn_train::cross_entropy;
use wsbcn_video::video_model::{Arch, VideoModel, VideoModelConfig};

/// The PyTorch side (`torch_video.py MODEL ...`).
pub const TORCH_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_video.py");

/// Times `steps` SGD steps of `arch` at `depth` (400 classes) with norm
/// variant `spec` on `n` random clips of 3 x `frames` x `size` x `size`
/// (`clips = [n, frames, size]`), labelled 3, 117, 231, ...
pub fn child(
    arch: Arch,
    depth: usize,
    [n, frames, size]: [usize; 3],
    spec: &str,
    steps: usize,
    dev: &Device,
) -> wsbcn_video::Result<()> {
    let cfg = VideoModelConfig {
        arch,
        depth,
        ..VideoModelConfig::default()
    };
    let vm = VarMap::new();
    let f = LayerFactory::new(&NormConfig {
        spec: spec.into(),
        ..NormConfig::default()
    })?;
    let model = VideoModel::new(&cfg, &f, VarBuilder::from_varmap(&vm, DType::F32, dev))?;
    let x = Tensor::randn(0f32, 1.0, (n, 3, frames, size, size), dev)?;
    let labels: Vec<u32> = (0..n as u32).map(|i| (3 + 114 * i) % 400).collect();
    let y = Tensor::new(labels.as_slice(), dev)?;
    Ok(time_sgd_steps(steps, n, &vm, 0.01, || {
        cross_entropy(&model.forward_t(&x, true)?, &y, 0.0)
    })?)
}
