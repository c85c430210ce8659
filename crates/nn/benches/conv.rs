//! Convolution benchmark of wsbcn-nn: every CPU backend (oneDNN, the
//! vol2col + GEMM op, candle's own convolution) and PyTorch's, in the same
//! run, forward and forward+backward, on the 2D and 3D shapes the models
//! use; then the cost of WS alone.
//!
//! `cargo bench -p wsbcn-nn` prints a markdown table. Set
//! `WSBCN_TORCH_PYTHON=/path/to/python` (a Python with torch) to time
//! PyTorch on the same shapes in the same run; `WSBCN_BENCH_ITERS` sets the
//! timed rounds (median reported, after two warm-up rounds; the backends of
//! a case take turns within each round, in alternating order);
//! `WSBCN_BENCH_BACKENDS=onednn,gemm` times only the backends named;
//! `WSBCN_BENCH_ROUNDS` repeats the whole pass (PyTorch timed right after
//! each case) and reports medians over the rounds.

use candle_core::{Device, Result, Tensor, Var};
use std::collections::HashMap;
use std::process::Command;
use std::time::Instant;
use wsbcn_kernels::ConvBackend;
use wsbcn_nn::{conv2d_with, conv3d_with, standardize, ConvGeometry, WeightMode};

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

#[derive(Clone, Copy)]
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
fn forward_gflop(y: &Tensor, w: &Tensor) -> Result<f64> {
    let fan_in = w.elem_count() / w.dim(0)?;
    Ok(2.0 * (y.elem_count() * fan_in) as f64 / 1e9)
}

/// One benchmark shape: input dims, output channels, kernel and geometry
/// per spatial axis (2 or 3 axes).
struct Case {
    name: &'static str,
    x: &'static [usize],
    out: usize,
    kernel: &'static [usize],
    stride: usize,
    padding: &'static [usize],
    dilation: usize,
}

/// The shapes of the fast-convolution issue: 2D ResNet/DeepLab convs, the
/// 3D R3D conv and R(2+1)D's factored pair.
const CASES: [Case; 7] = [
    Case {
        name: "conv2d_3x3_64to64_2x64x64x64",
        x: &[2, 64, 64, 64],
        out: 64,
        kernel: &[3, 3],
        stride: 1,
        padding: &[1, 1],
        dilation: 1,
    },
    Case {
        name: "conv2d_3x3s2_128to256_2x128x32x32",
        x: &[2, 128, 32, 32],
        out: 256,
        kernel: &[3, 3],
        stride: 2,
        padding: &[1, 1],
        dilation: 1,
    },
    Case {
        name: "conv2d_1x1_256to64_2x256x32x32",
        x: &[2, 256, 32, 32],
        out: 64,
        kernel: &[1, 1],
        stride: 1,
        padding: &[0, 0],
        dilation: 1,
    },
    Case {
        name: "conv2d_3x3d2_256to256_2x256x33x33",
        x: &[2, 256, 33, 33],
        out: 256,
        kernel: &[3, 3],
        stride: 1,
        padding: &[2, 2],
        dilation: 2,
    },
    Case {
        name: "conv3d_3x3x3_64to64_2x64x8x28x28",
        x: &[2, 64, 8, 28, 28],
        out: 64,
        kernel: &[3, 3, 3],
        stride: 1,
        padding: &[1, 1, 1],
        dilation: 1,
    },
    Case {
        name: "conv3d_1x3x3_64to64_2x64x8x28x28",
        x: &[2, 64, 8, 28, 28],
        out: 64,
        kernel: &[1, 3, 3],
        stride: 1,
        padding: &[0, 1, 1],
        dilation: 1,
    },
    Case {
        name: "conv3d_3x1x1_64to64_2x64x8x28x28",
        x: &[2, 64, 8, 28, 28],
        out: 64,
        kernel: &[3, 1, 1],
        stride: 1,
        padding: &[1, 0, 0],
        dilation: 1,
    },
];

impl Case {
    fn conv(&self, backend: ConvBackend, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let y = if self.kernel.len() == 2 {
            let geo = ConvGeometry {
                stride: [self.stride; 2],
                padding: [self.padding[0], self.padding[1]],
                dilation: [self.dilation; 2],
                groups: 1,
            };
            conv2d_with(backend, x, w, &geo)
        } else {
            let geo = ConvGeometry {
                stride: [self.stride; 3],
                padding: [self.padding[0], self.padding[1], self.padding[2]],
                dilation: [self.dilation; 3],
                groups: 1,
            };
            conv3d_with(backend, x, w, &geo)
        };
        y.map_err(candle_core::Error::wrap)
    }

    fn weight_dims(&self) -> Vec<usize> {
        [&[self.out, self.x[1]][..], self.kernel].concat()
    }
}

/// PyTorch's times (`fwd`, `fwd+bwd` ms) for the cases `names` and, with
/// `matmul` among them, its matmul GFLOP/s, from `torch_conv.py` in a child
/// process; empty without `WSBCN_TORCH_PYTHON`.
fn torch_times(
    iters: usize,
    threads: usize,
    names: &[&str],
) -> (HashMap<String, (f64, f64)>, Option<f64>) {
    let Ok(python) = std::env::var("WSBCN_TORCH_PYTHON") else {
        return (HashMap::new(), None);
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_conv.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(threads.to_string())
        .arg(iters.to_string())
        .args(names)
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o.stdout,
        Ok(o) => {
            eprintln!(
                "PyTorch side failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return (HashMap::new(), None);
        }
        Err(e) => {
            eprintln!("could not run {python}: {e}");
            return (HashMap::new(), None);
        }
    };
    let mut times = HashMap::new();
    let mut matmul = None;
    for l in String::from_utf8_lossy(&out).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["matmul_gflops", v] => matmul = v.parse().ok(),
            [name, fwd, fb] => {
                if let (Ok(a), Ok(b)) = (fwd.parse(), fb.parse()) {
                    times.insert(name.to_string(), (a, b));
                }
            }
            _ => {}
        }
    }
    (times, matmul)
}

/// candle's f32 matmul throughput (GFLOP/s) on 1024 x 1024 matrices: the
/// machine's GEMM speed the conv rows are read against.
fn matmul_gflops(iters: usize) -> Result<f64> {
    let a = Tensor::randn(0f32, 1.0, (1024, 1024), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (1024, 1024), &Device::Cpu)?;
    let ms = interleaved_ms(iters, &mut [&mut || a.matmul(&b).map(|_| ())])?[0];
    Ok(2.0 * 1024f64.powi(3) / 1e9 / (ms / 1e3))
}

fn main() -> Result<()> {
    let iters = std::env::var("WSBCN_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dev = Device::Cpu;
    // WSBCN_BENCH_BACKENDS=onednn,gemm limits the backends timed.
    let only = std::env::var("WSBCN_BENCH_BACKENDS").ok();
    let backends: Vec<ConvBackend> = ConvBackend::ALL
        .into_iter()
        .filter(|b| {
            only.as_ref()
                .is_none_or(|o| o.split(',').any(|n| n == b.name()))
        })
        .filter(|b| match b.available() {
            Ok(()) => true,
            Err(e) => {
                eprintln!("skipping {}: {e}", b.name());
                false
            }
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // PyTorch times each case right after ours: this machine's speed
    // drifts by tens of percent over minutes, and the ratio must not.
    let mut torch = HashMap::new();
    let (_, torch_matmul) = torch_times(iters, threads, &["matmul"]);
    let matmul = matmul_gflops(iters * 4)?;
    // WSBCN_BENCH_ROUNDS passes over all cases (default 1); each number is
    // the median over rounds of the per-round medians.
    let rounds = std::env::var("WSBCN_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    let mut per_round: Vec<Vec<Row>> = vec![];
    let mut torch_rounds: Vec<HashMap<String, (f64, f64)>> = vec![];
    for _ in 0..rounds {
        let mut rows = vec![];
        let mut torch_round = HashMap::new();
        for case in &CASES {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, case.x, &dev)?)?;
            let w = Tensor::randn(0f32, 0.1, case.weight_dims(), &dev)?;
            let gflop = forward_gflop(&case.conv(ConvBackend::Gemm, x.as_tensor(), &w)?, &w)?;
            let variants: Vec<(&'static str, ConvFn)> = backends
                .iter()
                .map(|&b| {
                    let w = &w;
                    let f: ConvFn = Box::new(move |x| case.conv(b, x, w));
                    (b.name(), f)
                })
                .collect();
            rows.extend(time_variants(case.name, variants, &x, gflop, iters)?);
            torch_round.extend(torch_times(iters, threads, &[case.name]).0);
        }
        per_round.push(rows);
        torch_rounds.push(torch_round);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let rows: Vec<Row> = (0..per_round[0].len())
        .map(|i| Row {
            fwd: median(per_round.iter().map(|r| r[i].fwd).collect()),
            fwd_bwd: median(per_round.iter().map(|r| r[i].fwd_bwd).collect()),
            ..per_round[0][i]
        })
        .collect();
    for case in &CASES {
        let seen: Vec<(f64, f64)> = torch_rounds
            .iter()
            .filter_map(|t| t.get(case.name).copied())
            .collect();
        if !seen.is_empty() {
            let t = (
                median(seen.iter().map(|t| t.0).collect()),
                median(seen.iter().map(|t| t.1).collect()),
            );
            torch.insert(case.name.to_string(), t);
        }
    }

    println!("wsbcn-nn conv benchmark, f32, CPU, {threads} threads, median of {iters} runs, {rounds} rounds (ms)\n");
    println!(
        "matmul 1024^3: candle {matmul:.1} GFLOP/s, PyTorch {}\n",
        torch_matmul.map_or("-".into(), |g| format!("{g:.1} GFLOP/s"))
    );
    println!("| case | backend | fwd ms | fwd+bwd ms | fwd+bwd GFLOP/s | PyTorch fwd ms | PyTorch fwd+bwd ms | PyTorch fwd+bwd GFLOP/s | speed vs PyTorch (fwd+bwd) |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        // Forward + backward: the forward, the input gradient and the
        // weight gradient, each as many FLOPs as the forward.
        let fb_gflops = |ms: f64| 3.0 * r.gflop / (ms / 1e3);
        let (tf, tfb, tg, ratio) = match torch.get(r.name) {
            Some(&(f, fb)) => (
                format!("{f:.2}"),
                format!("{fb:.2}"),
                format!("{:.0}", fb_gflops(fb)),
                format!("{:.2}x", fb / r.fwd_bwd),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.0} | {tf} | {tfb} | {tg} | {ratio} |",
            r.name,
            r.variant,
            r.fwd,
            r.fwd_bwd,
            fb_gflops(r.fwd_bwd),
        );
    }
    ws_cost(iters, &rows, &dev)?;
    if torch.is_empty() {
        println!("\n(PyTorch columns empty: set WSBCN_TORCH_PYTHON to a Python with torch.)");
    }
    Ok(())
}

/// The cost of WS itself, timed alone: standardizing the kernel forward and
/// backward, against the plain conv's forward+backward on the selected
/// backend.
fn ws_cost(iters: usize, rows: &[Row], dev: &Device) -> Result<()> {
    let selected = ConvBackend::selected().map_err(candle_core::Error::wrap)?;
    for case in [&CASES[0], &CASES[4]] {
        let Some(conv) = rows
            .iter()
            .find(|r| r.name == case.name && r.variant == selected.name())
        else {
            continue;
        };
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, case.weight_dims(), dev)?)?;
        let g = Tensor::randn(0f32, 1.0, w.shape(), dev)?;
        let t = interleaved_ms(
            iters * 4,
            &mut [&mut || {
                let w_hat = standardize(w.as_tensor(), WeightMode::Ws, 1e-5)
                    .map_err(candle_core::Error::wrap)?;
                (w_hat * &g)?.sum_all()?.backward().map(|_| ())
            }],
        )?[0];
        println!(
            "\nWS alone on {}'s kernel: {t:.3} ms forward+backward, {:.2}% of the {} conv's forward+backward",
            case.name,
            100.0 * t / conv.fwd_bwd,
            selected.name()
        );
    }
    Ok(())
}
