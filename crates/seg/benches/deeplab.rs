//! Training throughput and peak memory of DeepLabV3-ResNet-50 (output
//! stride 16, batch 2, crop 257, 21 classes), BN and GN+WS, next to the same
//! model in PyTorch in the same run.
//!
//! `cargo bench -p wsbcn-seg` prints a markdown table. Each variant runs in
//! its own process, so that its peak resident memory (VmHWM) is its own.
//! `WSBCN_TORCH_PYTHON=/path/to/python` (with torch and torchvision) adds
//! PyTorch's columns; `WSBCN_BENCH_STEPS` sets the timed steps (default 3,
//! after one warm-up step).

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::process::Command;
use std::time::Instant;
use wsbcn_nn::{LayerFactory, NormConfig};
use wsbcn_seg::deeplab::{DeepLabConfig, DeepLabV3};
use wsbcn_seg::resnet::ResNetConfig;
use wsbcn_train::{param_groups, pixel_cross_entropy, Sgd, SgdConfig};

const SPECS: [&str; 2] = ["bn", "gn+ws"];

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The child process: time `steps` training steps of one variant.
fn child(spec: &str, steps: usize) -> wsbcn_seg::Result<()> {
    let dev = Device::Cpu;
    let cfg = DeepLabConfig {
        backbone: ResNetConfig {
            depth: 50,
            output_stride: 16,
            ..ResNetConfig::default()
        },
        aspp_rates: [12, 24, 36],
        ..DeepLabConfig::default()
    };
    let vm = VarMap::new();
    let f = LayerFactory::new(&NormConfig {
        spec: spec.into(),
        ..NormConfig::default()
    })?;
    let model = DeepLabV3::new(&cfg, &f, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let opt = SgdConfig {
        lr: 0.007,
        ..SgdConfig::default()
    };
    let mut sgd = Sgd::new(param_groups(&vm, &opt), &opt);
    let x = Tensor::randn(0f32, 1.0, (2, 3, 257, 257), &dev)?;
    let y = Tensor::rand(0f32, 21.0, (2, 257, 257), &dev)?
        .floor()?
        .to_dtype(DType::U32)?;
    let mut step = || -> wsbcn_seg::Result<()> {
        let loss = pixel_cross_entropy(&model.forward_t(&x, true)?.logits, &y, 255, None)?;
        let grads = sgd.grads(&loss.backward()?);
        sgd.step(&grads, opt.lr)?;
        Ok(())
    };
    step()?;
    let t = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    let rate = 2.0 * steps as f64 / t.elapsed().as_secs_f64();
    println!("{rate:.3} {:.0}", peak_rss_mb());
    Ok(())
}

/// Runs `cmd` and parses its `images_per_s peak_mb` line.
fn measure(mut cmd: Command) -> Option<(f64, f64)> {
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text
        .lines()
        .last()?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    Some((*f.first()?, *f.get(1)?))
}

fn main() {
    let steps: usize = std::env::var("WSBCN_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    if let Ok(spec) = std::env::var("WSBCN_BENCH_CHILD") {
        if let Err(e) = child(&spec, steps) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let python = std::env::var("WSBCN_TORCH_PYTHON").ok();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_deeplab.py");
    println!("DeepLabV3-ResNet-50, output stride 16, batch 2, crop 257, training (forward, backward, SGD step)");
    println!("CPU, {threads} threads, {steps} timed steps after one warm-up\n");
    println!("| norm | wsbcn images/s | wsbcn peak MB | PyTorch images/s | PyTorch peak MB | speed vs PyTorch | memory vs PyTorch |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for spec in SPECS {
        let mut me = Command::new(std::env::current_exe().expect("own path"));
        me.env("WSBCN_BENCH_CHILD", spec)
            .env("WSBCN_BENCH_STEPS", steps.to_string());
        let ours = measure(me);
        let torch = python.as_ref().and_then(|py| {
            let mut c = Command::new(py);
            c.arg(script)
                .arg(threads.to_string())
                .arg(steps.to_string())
                .arg(spec);
            measure(c)
        });
        let fmt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        println!(
            "| {spec} | {} | {} | {} | {} | {} | {} |",
            fmt(ours.map(|o| o.0), 2),
            fmt(ours.map(|o| o.1), 0),
            fmt(torch.map(|t| t.0), 2),
            fmt(torch.map(|t| t.1), 0),
            ratio(ours.map(|o| o.0), torch.map(|t| t.0)),
            ratio(ours.map(|o| o.1), torch.map(|t| t.1)),
        );
    }
}
