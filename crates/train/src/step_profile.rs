//! Where a training step's time goes (`train --profile`): the trainer's
//! phases, timed around them, split further by the kernels' own op times
//! ([`wsbcn_kernels::profile`]).
//!
//! Per step, wall seconds:
//!
//! ```text
//! step      = data + forward + backward + optimizer + logging
//! forward   = sum over kinds of the forward op times + other forward ops
//! backward  = sum over kinds of the op gradients + autograd and other ops
//! ```
//!
//! `data` is the wait for the loader's next batch (what its workers did not
//! hide); `forward` the task's loss, from the batch to the scalar;
//! `backward` candle's backward pass; `optimizer` the gradient sums over
//! micro-batches, the gradient norm, collectives on several ranks and the
//! SGD update; `logging` the run log's row and the progress line. "Other
//! forward ops" are candle's own (residual adds, reshapes, resizing, the
//! BN running-statistics updates); "autograd and other ops" are candle's
//! graph walk, its per-variable gradient sums and the gradients of its own
//! ops. Evaluations and checkpoints are not steps and are left out, and so
//! are the first steps (plans built, buffers first allocated):
//! [`WARMUP_STEPS`] in `train --profile`, the benchmarks' own warm-up step
//! in `WSBCN_BENCH_PROFILE=1 cargo bench`.

use std::fmt::Write as _;
use wsbcn_kernels::profile::{self, Direction, KernelTimes, Kind};

/// Steps at the start of a profiled training run that are not counted.
pub const WARMUP_STEPS: u64 = 5;

/// The timed phases of one step, in seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// Waiting for the batch.
    pub data: f64,
    /// The loss, from the batch to the scalar.
    pub forward: f64,
    /// The backward pass.
    pub backward: f64,
    /// The whole optimizer step, the three phases above included.
    pub optimizer_step: f64,
}

/// The sums over the profiled steps.
#[derive(Clone, Debug, Default)]
pub struct StepProfile {
    warmup: u64,
    warmup_left: u64,
    steps: u64,
    samples: u64,
    data: f64,
    forward: f64,
    backward: f64,
    optimizer: f64,
    logging: f64,
    kernels: KernelTimes,
}

impl StepProfile {
    /// Starts recording the kernels' op times; the first `warmup` steps
    /// recorded are dropped.
    pub fn start(warmup: u64) -> Self {
        profile::enable();
        profile::take();
        Self {
            warmup,
            warmup_left: warmup,
            ..Self::default()
        }
    }

    /// Adds one step: its phases, its whole wall time and its samples.
    pub fn record(&mut self, p: Phases, step: f64, samples: usize) {
        let kernels = profile::take();
        if self.warmup_left > 0 {
            self.warmup_left -= 1;
            return;
        }
        self.steps += 1;
        self.samples += samples as u64;
        self.data += p.data;
        self.forward += p.forward;
        self.backward += p.backward;
        self.optimizer += p.optimizer_step - p.data - p.forward - p.backward;
        self.logging += step - p.optimizer_step;
        self.kernels.add(&kernels);
    }

    /// Drops the op times recorded since the last step (an evaluation's,
    /// say), so that the next step does not count them.
    pub fn discard(&self) {
        profile::take();
    }

    /// The number of steps counted.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The kernels' op times over the counted steps.
    pub fn kernels(&self) -> &KernelTimes {
        &self.kernels
    }

    /// The rows of the table: label, seconds over the counted steps, and
    /// the op calls where the row is one kind of op.
    pub fn rows(&self) -> Vec<(String, f64, Option<u64>)> {
        let mut rows = vec![(
            "data loading (waiting for the loader)".to_string(),
            self.data,
            None,
        )];
        for (dir, name, total, rest) in [
            (
                Direction::Forward,
                "forward",
                self.forward,
                "candle's other ops",
            ),
            (
                Direction::Backward,
                "backward",
                self.backward,
                "autograd bookkeeping and candle's other ops",
            ),
        ] {
            for kind in Kind::ALL {
                let s = self.kernels.get(dir, kind);
                rows.push((
                    format!("{name}: {}", kind.label()),
                    s.seconds,
                    Some(s.calls),
                ));
            }
            rows.push((
                format!("{name}: {rest}"),
                total - self.kernels.seconds(dir),
                None,
            ));
        }
        rows.push((
            "optimizer: gradient sums, norm and SGD update".to_string(),
            self.optimizer,
            None,
        ));
        rows.push(("logging and progress".to_string(), self.logging, None));
        rows
    }

    /// The profile as a Markdown table, milliseconds per step, with a line
    /// saying what was counted.
    pub fn table(&self) -> String {
        let n = self.steps.max(1) as f64;
        let rows = self.rows();
        let total: f64 = rows.iter().map(|r| r.1).sum();
        let mut out = format!(
            "{} steps profiled (after {} warm-up steps), {:.1} samples per step, \
             {:.2} ms per step, {:.1} samples/s\n\n\
             | part | ms per step | share | calls per step |\n|---|---:|---:|---:|\n",
            self.steps,
            self.warmup,
            self.samples as f64 / n,
            1e3 * total / n,
            self.samples as f64 / total.max(1e-12),
        );
        for (label, s, calls) in rows {
            let calls = calls.map_or(String::new(), |c| format!("{:.1}", c as f64 / n));
            let share = 100.0 * s / total.max(1e-12);
            let _ = writeln!(
                out,
                "| {label} | {:.3} | {share:.1}% | {calls} |",
                1e3 * s / n
            );
        }
        let _ = writeln!(out, "| **step** | **{:.3}** | 100% | |", 1e3 * total / n);
        out
    }
}
