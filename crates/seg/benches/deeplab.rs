//! Training throughput and peak memory of DeepLabV3-ResNet-50 (output
//! stride 16, batch 2, crop 257, 21 classes), for every norm variant the
//! comparisons train (`VARIANTS`), next to the same
//! model in PyTorch in the same run.
//!
//! `cargo bench -p wsbcn-seg` prints a markdown table. Each variant runs in
//! its own process, so that its peak resident memory (VmHWM) is its own.
//! `WSBCN_TORCH_PYTHON=/path/to/python` (with torch and torchvision) adds
//! PyTorch's columns; `WSBCN_BENCH_STEPS` sets the timed steps (default 3,
//! after one warm-up step).

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use wsbcn_nn::{LayerFactory, NormConfig};
use wsbcn_seg::deeplab::DeepLabV3;
use wsbcn_train::bench::{bench_main, time_sgd_steps, VARIANTS};
use wsbcn_train::pixel_cross_entropy;

/// The child process: time `steps` training steps of one variant.
fn child(spec: &str, steps: usize, dev: &Device) -> wsbcn_seg::Result<()> {
    let cfg = common::r50_os16();
    let vm = VarMap::new();
    let f = LayerFactory::new(&NormConfig {
        spec: spec.into(),
        ..NormConfig::default()
    })?;
    let model = DeepLabV3::new(&cfg, &f, VarBuilder::from_varmap(&vm, DType::F32, dev))?;
    let x = Tensor::randn(0f32, 1.0, (2, 3, 257, 257), dev)?;
    let y = Tensor::rand(0f32, 21.0, (2, 257, 257), dev)?
        .floor()?
        .to_dtype(DType::U32)?;
    Ok(time_sgd_steps(steps, 2, &vm, 0.007, || {
        pixel_cross_entropy(&model.forward_t(&x, true)?.logits, &y, 255, None)
    })?)
}

fn main() {
    bench_main(
        "DeepLabV3-ResNet-50, output stride 16, batch 2, crop 257, training (forward, backward, SGD step)",
        &VARIANTS,
        &[concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_deeplab.py")],
        "images/s",
        child,
    );
}
