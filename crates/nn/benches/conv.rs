//! Convolution benchmark of wsbcn-nn: the CPU conv op plain and with WS,
//! candle's own convolution, and PyTorch's, in the same run, 2D and 3D.
//!
//! `cargo bench -p wsbcn-nn` prints a markdown table. Set
//! `WSBCN_TORCH_PYTHON=/path/to/python` (a Python with torch) to time
//! PyTorch on the same shapes in the same run; `WSBCN_BENCH_ITERS` sets the
//! timed rounds (median reported, after two warm-up rounds; plain and WS
//! alternate within each round, in
//! alternating order).

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;
use wsbcn_nn::{
    conv, conv2d_generic, conv3d_generic, standardize, Conv, ConvConfig, ConvGeometry, ConvOp,
    WeightInit, WeightMode,
};

/// Medians (ms) of `fs`, timed in turn within each round so that load on
/// the machine hits every variant alike; two warm-up rounds first.
fn interleaved_ms(iters: usize, fs: &mut [&mut dyn FnMut() -> Result<()>]) -> Result<Vec<f64>> {
    let mut times = vec![Vec::with_capacity(iters); fs.len()];
    for round in 0..iters + 2 {
        // Alternate the order too: the variant timed second pays for the
        // first one's freed memory, a bias of a few percent here.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..fs.len()).collect()
        } else {
            (0..fs.len()).rev().collect()
        };
        for i in order {
            let start = Instant::now();
            fs[i]()?;
            if round >= 2 {
                times[i].push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    Ok(times
        .into_iter()
        .map(|mut t| {
            t.sort_by(|a, b| a.total_cmp(b));
            t[t.len() / 2]
        })
        .collect())
}

struct Row {
    name: &'static str,
    variant: &'static str,
    fwd: f64,
    fwd_bwd: f64,
    gflop: f64,
}

type ConvFn<'a> = Box<dyn Fn(&Tensor) -> Result<Tensor> + 'a>;

/// Times each variant of one conv on `x`, forward and forward+backward
/// (gradients for `x` and the weight).
fn time_variants(
    name: &'static str,
    variants: Vec<(&'static str, ConvFn)>,
    x: &Var,
    gflop: f64,
    iters: usize,
) -> Result<Vec<Row>> {
    let mut fwd: Vec<Box<dyn FnMut() -> Result<()> + '_>> = vec![];
    let mut fwd_bwd: Vec<Box<dyn FnMut() -> Result<()> + '_>> = vec![];
    for (_, f) in &variants {
        fwd.push(Box::new(move || f(&x.as_tensor().detach()).map(|_| ())));
        fwd_bwd.push(Box::new(move || {
            f(x.as_tensor())?.sum_all()?.backward().map(|_| ())
        }));
    }
    let f = interleaved_ms(
        iters,
        &mut fwd
            .iter_mut()
            .map(|b| b.as_mut() as &mut dyn FnMut() -> Result<()>)
            .collect::<Vec<_>>(),
    )?;
    let fb = interleaved_ms(
        iters,
        &mut fwd_bwd
            .iter_mut()
            .map(|b| b.as_mut() as &mut dyn FnMut() -> Result<()>)
            .collect::<Vec<_>>(),
    )?;
    Ok(variants
        .iter()
        .enumerate()
        .map(|(i, (variant, _))| Row {
            name,
            variant,
            fwd: f[i],
            fwd_bwd: fb[i],
            gflop,
        })
        .collect())
}

/// GFLOP of one forward: 2 per multiply-add.
fn forward_gflop<const D: usize>(layer: &Conv<D>, x: &Tensor) -> Result<f64>
where
    ConvGeometry<D>: ConvOp,
{
    let y = layer.forward(&x.detach())?;
    let fan_in = layer.weight().elem_count() / layer.weight().dim(0)?;
    Ok(2.0 * (y.elem_count() * fan_in) as f64 / 1e9)
}

fn build<const D: usize>(
    cin: usize,
    cout: usize,
    kernel: [usize; D],
    mode: WeightMode,
) -> Result<Conv<D>>
where
    ConvGeometry<D>: ConvOp,
{
    let vb = VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
    let cfg = ConvConfig {
        kernel,
        geometry: ConvGeometry::uniform(1, 1, 1),
        bias: false,
        mode,
        ws_eps: 1e-5,
        init: WeightInit::default(),
    };
    Ok(conv(cin, cout, cfg, vb.pp("conv"))?)
}

fn torch_times(iters: usize, cases: &[&str]) -> HashMap<String, (f64, f64)> {
    let Ok(python) = std::env::var("WSBCN_TORCH_PYTHON") else {
        return HashMap::new();
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_conv.py");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = Command::new(&python)
        .arg(script)
        .arg(threads.to_string())
        .arg(iters.to_string())
        .args(cases)
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o.stdout,
        Ok(o) => {
            eprintln!(
                "PyTorch side failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return HashMap::new();
        }
        Err(e) => {
            eprintln!("could not run {python}: {e}");
            return HashMap::new();
        }
    };
    String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.to_string(),
                (f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?),
            ))
        })
        .collect()
}

fn main() -> Result<()> {
    let iters = std::env::var("WSBCN_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dev = Device::Cpu;
    let mut rows = vec![];

    let x2 = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 64, 56, 56), &dev)?)?;
    let (p, w) = (
        build(64, 64, [3, 3], WeightMode::Plain)?,
        build(64, 64, [3, 3], WeightMode::Ws)?,
    );
    let geo2 = *p.geometry();
    let gflop = forward_gflop(&p, x2.as_tensor())?;
    let variants: Vec<(&'static str, ConvFn)> = vec![
        ("plain", Box::new(|x| p.forward(x))),
        ("ws", Box::new(|x| w.forward(x))),
        (
            "candle conv2d",
            Box::new(|x| Ok(conv2d_generic(x, p.weight(), &geo2)?)),
        ),
    ];
    rows.extend(time_variants(
        "conv2d_3x3_64_2x64x56x56",
        variants,
        &x2,
        gflop,
        iters,
    )?);

    let x3 = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 64, 8, 28, 28), &dev)?)?;
    let (p, w) = (
        build(64, 64, [3, 3, 3], WeightMode::Plain)?,
        build(64, 64, [3, 3, 3], WeightMode::Ws)?,
    );
    let geo3 = *p.geometry();
    let gflop = forward_gflop(&p, x3.as_tensor())?;
    let variants: Vec<(&'static str, ConvFn)> = vec![
        ("plain", Box::new(|x| p.forward(x))),
        ("ws", Box::new(|x| w.forward(x))),
        (
            "candle conv2d over taps",
            Box::new(|x| Ok(conv3d_generic(x, p.weight(), &geo3)?)),
        ),
    ];
    rows.extend(time_variants(
        "conv3d_3x3x3_64_2x64x8x28x28",
        variants,
        &x3,
        gflop,
        iters,
    )?);
    let torch = torch_times(
        iters,
        &["conv2d_3x3_64_2x64x56x56", "conv3d_3x3x3_64_2x64x8x28x28"],
    );

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("wsbcn-nn conv benchmark, f32, CPU, {threads} threads, median of {iters} runs (ms)\n");
    println!("| case | variant | fwd ms | fwd+bwd ms | fwd GFLOP/s | PyTorch fwd ms | PyTorch fwd+bwd ms | speed vs PyTorch (fwd+bwd) |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let (tf, tfb, ratio) = match torch.get(r.name) {
            Some((f, fb)) => (
                format!("{f:.1}"),
                format!("{fb:.1}"),
                format!("{:.2}x", fb / r.fwd_bwd),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {tf} | {tfb} | {ratio} |",
            r.name,
            r.variant,
            r.fwd,
            r.fwd_bwd,
            r.gflop / (r.fwd / 1e3)
        );
    }
    // The cost of WS itself, timed alone: the standardization of each
    // kernel, forward and backward. The plain/WS rows above differ by this
    // plus the machine's noise.
    for (name, dims, fwd_bwd) in [
        (
            "conv2d_3x3_64_2x64x56x56",
            vec![64, 64, 3, 3],
            rows[0].fwd_bwd,
        ),
        (
            "conv3d_3x3x3_64_2x64x8x28x28",
            vec![64, 64, 3, 3, 3],
            rows[3].fwd_bwd,
        ),
    ] {
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, dims, &dev)?)?;
        let g = Tensor::randn(0f32, 1.0, w.shape(), &dev)?;
        let t = interleaved_ms(
            iters * 4,
            &mut [&mut || {
                let w_hat = standardize(w.as_tensor(), WeightMode::Ws, 1e-5)
                    .map_err(candle_core::Error::wrap)?;
                (w_hat * &g)?.sum_all()?.backward().map(|_| ())
            }],
        )?[0];
        println!(
            "\nWS alone on {name}'s kernel: {t:.3} ms forward+backward, {:.2}% of the plain conv's forward+backward",
            100.0 * t / fwd_bwd
        );
    }
    for case in rows.chunks(3) {
        if let [plain, ws, candle] = case {
            println!(
                "\n{}: the CPU op is {:.1}x faster than candle's conv forward+backward",
                plain.name,
                candle.fwd_bwd / plain.fwd_bwd
            );
            println!(
                "\nWS overhead on {}: forward {:+.1}%, forward+backward {:+.1}%",
                plain.name,
                (ws.fwd / plain.fwd - 1.0) * 100.0,
                (ws.fwd_bwd / plain.fwd_bwd - 1.0) * 100.0
            );
        }
    }
    if torch.is_empty() {
        println!("\n(PyTorch columns empty: set WSBCN_TORCH_PYTHON to a Python with torch.)");
    }
    Ok(())
}
