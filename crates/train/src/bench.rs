//! Helpers of the training benchmarks (`cargo bench -p wsbcn-seg`,
//! `-p wsbcn-video`): each variant runs in a child process so that its peak
//! resident memory is its own, and prints one `rate peak_mb` line. With
//! `WSBCN_BENCH_PROFILE=1` each child also profiles its timed steps
//! ([`StepProfile`]), and the tables follow the benchmark's.

use crate::step_profile::{Phases, StepProfile};
use crate::{param_groups, DeviceSpec, Error, Result, Sgd, SgdConfig};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use std::process::Command;

/// This process's peak resident memory in MB (`VmHWM`), NaN where the
/// platform does not report it.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The norm variants every training benchmark times, as the comparisons
/// train them (the PyTorch scripts build the same: `torch_bench.py`).
pub const VARIANTS: [&str; 6] = ["bn", "bn+ws", "gn", "gn+ws", "bcn+ws", "bcn-est+ws"];

/// Whether the benchmark profiles its steps (`WSBCN_BENCH_PROFILE=1`).
fn profiling() -> bool {
    std::env::var("WSBCN_BENCH_PROFILE").is_ok_and(|v| v == "1")
}

/// Runs `cmd` and parses the `rate peak_mb` of its last output line; the
/// child's error output is shown when it fails. The lines before it (the
/// child's profile, with profiling on) are added to `before`.
fn measure(mut cmd: Command, before: &mut Vec<String>) -> Option<(f64, f64)> {
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let (last, before_last) = lines.split_last()?;
    before.extend(before_last.iter().map(|l| l.to_string()));
    let f: Vec<f64> = last
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    Some((*f.first()?, *f.get(1)?))
}

/// A markdown table row of `ours` next to `torch` (`(rate, peak_mb)`
/// each) with their ratios; `-` where a side is missing.
fn comparison_row(name: &str, ours: Option<(f64, f64)>, torch: Option<(f64, f64)>) -> String {
    let fmt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}x", a / b),
        _ => "-".into(),
    };
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} |",
        fmt(ours.map(|o| o.0), 2),
        fmt(ours.map(|o| o.1), 0),
        fmt(torch.map(|t| t.0), 2),
        fmt(torch.map(|t| t.1), 0),
        ratio(ours.map(|o| o.0), torch.map(|t| t.0)),
        ratio(ours.map(|o| o.1), torch.map(|t| t.1)),
    )
}

/// The number in environment variable `name`, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The timed steps of a benchmark: `WSBCN_BENCH_STEPS`, else `default`.
pub fn bench_steps(default: usize) -> usize {
    env_usize("WSBCN_BENCH_STEPS", default)
}

/// The median of `v` (the upper one of an even count); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Median seconds of `rounds` calls of `pass` after one warm-up call (the
/// loading benchmarks' passes over their inputs).
pub fn median_secs<E>(
    rounds: usize,
    mut pass: impl FnMut() -> std::result::Result<(), E>,
) -> std::result::Result<f64, E> {
    pass()?;
    let mut t = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let s = std::time::Instant::now();
        pass()?;
        t.push(s.elapsed().as_secs_f64());
    }
    Ok(median(&mut t))
}

/// The rate a benchmark's Python side prints alone on its standard output
/// (`python SCRIPT ARGS...`); `None`, with its standard error shown, when
/// it fails.
pub fn python_rate(
    python: &str,
    script: &std::path::Path,
    args: &[std::ffi::OsString],
) -> Option<f64> {
    let out = std::process::Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The device a training benchmark runs on: `--device cpu|cuda|cuda:N` on
/// its command line (`cargo bench -p wsbcn-seg -- --device cuda`), else
/// `WSBCN_BENCH_DEVICE` (how the parent tells its children), else `cpu`.
pub fn bench_device_spec() -> Result<DeviceSpec> {
    let args: Vec<String> = std::env::args().collect();
    let given = args
        .iter()
        .position(|a| a == "--device")
        .map(|i| {
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| Error::Invalid("--device needs a value".into()))
        })
        .transpose()?
        .or_else(|| std::env::var("WSBCN_BENCH_DEVICE").ok());
    given.map_or(Ok(DeviceSpec::Cpu), |s| s.parse())
}

/// The device of [`bench_device_spec`].
pub fn bench_device() -> Result<Device> {
    bench_device_spec()?.device()
}

/// The variant this process is to time when it is a benchmark's child.
pub fn child_spec() -> Option<String> {
    std::env::var("WSBCN_BENCH_CHILD").ok()
}

/// Times every spec in a child of the running benchmark binary and, with
/// `WSBCN_TORCH_PYTHON` set, `python SCRIPT.. THREADS STEPS SPEC DEVICE`
/// (`script`: the script and its leading arguments), both
/// on `device`; prints a markdown table whose rate column is `unit`.
pub fn compare_with_torch(
    specs: &[&str],
    steps: usize,
    script: &[&str],
    unit: &str,
    device: DeviceSpec,
) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let python = std::env::var("WSBCN_TORCH_PYTHON").ok();
    println!("device {device}, {threads} CPU threads, {steps} timed steps after one warm-up\n");
    println!(
        "| norm | wsbcn {unit} | wsbcn peak MB | PyTorch {unit} | PyTorch peak MB | speed vs PyTorch | memory vs PyTorch |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut profiles = Vec::new();
    for spec in specs {
        let ours = std::env::current_exe().ok().and_then(|exe| {
            let mut me = Command::new(exe);
            me.env("WSBCN_BENCH_CHILD", spec)
                .env("WSBCN_BENCH_STEPS", steps.to_string())
                .env("WSBCN_BENCH_DEVICE", device.to_string());
            measure(me, &mut profiles)
        });
        let torch = python.as_ref().and_then(|py| {
            let mut c = Command::new(py);
            c.args(script)
                .arg(threads.to_string())
                .arg(steps.to_string())
                .arg(spec)
                .arg(torch_device(device));
            measure(c, &mut Vec::new())
        });
        println!("{}", comparison_row(spec, ours, torch));
    }
    if !profiles.is_empty() {
        println!("\n{}", profiles.join("\n"));
    }
}

/// Times `steps` calls of `step` after one warm-up call and prints the
/// child's `rate peak_mb` line, the rate in samples per second for `batch`
/// samples per step; with profiling on, the profile of the timed steps
/// first (`step` fills in its phases).
fn time_child_steps(
    steps: usize,
    batch: usize,
    mut step: impl FnMut(&mut Phases) -> Result<()>,
) -> Result<()> {
    let mut profile = profiling().then(|| StepProfile::start(1));
    let mut timed = |profile: &mut Option<StepProfile>| -> Result<()> {
        let (mut phases, t) = (Phases::default(), std::time::Instant::now());
        step(&mut phases)?;
        if let Some(p) = profile.as_mut() {
            let s = t.elapsed().as_secs_f64();
            p.record(
                Phases {
                    optimizer_step: s,
                    ..phases
                },
                s,
                batch,
            );
        }
        Ok(())
    };
    timed(&mut profile)?;
    let t = std::time::Instant::now();
    for _ in 0..steps {
        timed(&mut profile)?;
    }
    let rate = (batch * steps) as f64 / t.elapsed().as_secs_f64();
    if let (Some(p), Some(spec)) = (&profile, child_spec()) {
        println!("{spec}: {}", p.table());
    }
    println!("{rate:.3} {:.0}", peak_rss_mb());
    Ok(())
}

/// PyTorch's name of `device`.
fn torch_device(device: DeviceSpec) -> String {
    match device {
        DeviceSpec::Cpu => "cpu".into(),
        DeviceSpec::Cuda(n) => format!("cuda:{n}"),
    }
}

/// The `main` of a training benchmark: as a child, times the variant the
/// environment names with `child(spec, steps, device)`; otherwise prints
/// `title` and the table of [`compare_with_torch`] on the device of
/// [`bench_device_spec`].
pub fn bench_main<E: std::fmt::Display>(
    title: &str,
    specs: &[&str],
    script: &[&str],
    unit: &str,
    child: impl Fn(&str, usize, &Device) -> std::result::Result<(), E>,
) {
    // As the training binaries do (`cli::main_with`).
    wsbcn_kernels::keep_freed_memory();
    let steps = bench_steps(3);
    let device = match bench_device_spec().and_then(|d| Ok((d, d.device()?))) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    if let Some(spec) = child_spec() {
        if let Err(e) = child(&spec, steps, &device.1) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    println!("{title}");
    compare_with_torch(specs, steps, script, unit, device.0);
}

/// Times `steps` SGD steps (momentum 0.9, weight decay 1e-4, `lr`) on the
/// variables of `vm` with the loss `loss()` builds, after a warm-up step;
/// prints the child's `rate peak_mb` line.
pub fn time_sgd_steps(
    steps: usize,
    batch: usize,
    vm: &VarMap,
    lr: f64,
    loss: impl Fn() -> Result<Tensor>,
) -> Result<()> {
    let opt = SgdConfig {
        lr,
        ..SgdConfig::default()
    };
    let mut sgd = Sgd::new(param_groups(vm, &opt), &opt);
    time_child_steps(steps, batch, |phases| {
        let t = std::time::Instant::now();
        let loss = loss()?;
        phases.forward = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let store = loss.backward()?;
        phases.backward = t.elapsed().as_secs_f64();
        sgd.step(&sgd.grads(&store), lr)
    })
}
