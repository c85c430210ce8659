//! Evaluation with folded Weight Standardization: DeepLabV3-ResNet-50
//! (output stride 16, 2x3x257x257, 21 classes) in eval mode, with GN and
//! plain convs, with GN+WS standardizing every call, and with GN+WS under
//! `LayerFactory::fold_ws` (each kernel standardized once per evaluation).
//! A round evaluates 8 batches, as an evaluation pass does; the table gives
//! each variant's median time per batch over interleaved rounds, and the
//! folded logits are checked against the unfolded ones.
//!
//! `cargo bench -p wsbcn-seg --bench eval_ws` (`WSBCN_BENCH_STEPS`: rounds,
//! default 5; `-- --device cuda` for a GPU).

mod common;

use candle_core::{DType, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::time::Instant;
use wsbcn_nn::{LayerFactory, NormConfig};
use wsbcn_seg::deeplab::DeepLabV3;
use wsbcn_train::bench::{bench_device, bench_steps, median};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dev = bench_device()?;
    let rounds = bench_steps(5);
    let cfg = common::r50_os16();
    let build = |spec: &str| -> Result<(LayerFactory, DeepLabV3), Box<dyn std::error::Error>> {
        let vm = VarMap::new();
        let f = LayerFactory::new(&NormConfig {
            spec: spec.into(),
            ..NormConfig::default()
        })?;
        let m = DeepLabV3::new(&cfg, &f, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
        Ok((f, m))
    };
    let (_, gn) = build("gn")?;
    let (f, ws) = build("gn+ws")?;
    let x = Tensor::randn(0f32, 1.0, (2, 3, 257, 257), &dev)?;
    // Seconds per batch of an evaluation of `BATCHES` batches (one folding
    // epoch when folded), and the last logits.
    const BATCHES: usize = 8;
    let time = |m: &DeepLabV3, fold: bool| -> Result<(f64, Tensor), Box<dyn std::error::Error>> {
        let _g = fold.then(|| f.fold_ws());
        let start = Instant::now();
        let mut y = None;
        for _ in 0..BATCHES {
            let logits = m.forward_t(&x, false)?.logits;
            let _ = logits.sum_all()?.to_scalar::<f32>()?;
            y = Some(logits);
        }
        let y = y.ok_or("no batch")?;
        Ok((start.elapsed().as_secs_f64() / BATCHES as f64, y))
    };
    let (_, unfolded) = time(&ws, false)?;
    let (_, folded) = time(&ws, true)?;
    let diff = (&unfolded - &folded)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    time(&gn, false)?;
    let mut t = [vec![], vec![], vec![]];
    for _ in 0..rounds {
        t[0].push(time(&gn, false)?.0);
        t[1].push(time(&ws, false)?.0);
        // A new epoch each round: the folding itself is timed too.
        t[2].push(time(&ws, true)?.0);
    }
    let m: Vec<f64> = t.iter_mut().map(|v| median(v)).collect();
    println!(
        "\nDeepLabV3-R50 OS16, evaluation of {BATCHES} batches of 2x3x257x257 on {dev:?}, median of {rounds} interleaved rounds:\n"
    );
    println!("| model | s / batch | vs plain convs |\n|---|---:|---:|");
    for (name, s) in [
        "GN, plain convs",
        "GN+WS, standardized every call",
        "GN+WS, folded (fold_ws)",
    ]
    .iter()
    .zip(&m)
    {
        println!("| {name} | {s:.3} | {:.2}x |", s / m[0]);
    }
    println!("\nfolded vs unfolded logits: max abs difference {diff:.2e}");
    Ok(())
}
