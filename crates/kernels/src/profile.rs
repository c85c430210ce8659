//! Where a training step's time goes, by kernel: the wall time this
//! crate's ops spend, forward and backward, per kind of op.
//!
//! Off by default, when a span costs one relaxed atomic load. Once
//! [`enable`]d, every op call adds its wall time and one call to its
//! `(direction, kind)` slot; [`take`] reads and clears the slots. A forward
//! span covers the op's CPU pass (and the copy to a contiguous input where
//! the op makes one); a backward span covers the op's whole gradient
//! (`bwd`), which runs the gradient pass. Spans never nest. The slots are
//! process-wide: profile one run per process (`wsbcn-seg train --profile`),
//! not a comparison's concurrent jobs.
//!
//! What the slots leave out (candle's own element-wise ops, its autograd
//! walk and gradient sums, the trainer's phases) the trainer measures
//! around them and reports as the difference.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// The kinds of op a step's kernels are split into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Convolutions ([`crate::CpuConv`]).
    Conv,
    /// GroupNorm, BatchNorm and estimated BN: statistics and the affine
    /// normalization.
    Norm,
    /// Weight Standardization of the kernels.
    Ws,
    /// ReLU and max pooling.
    ActivationPool,
    /// The per-pixel cross-entropy.
    Loss,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 5] = [
        Kind::Conv,
        Kind::Norm,
        Kind::Ws,
        Kind::ActivationPool,
        Kind::Loss,
    ];

    /// The report's name of the kind.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Conv => "convolutions",
            Kind::Norm => "normalization",
            Kind::Ws => "Weight Standardization",
            Kind::ActivationPool => "activations and pooling",
            Kind::Loss => "loss",
        }
    }
}

/// Which pass of the step an op call belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The forward pass.
    Forward,
    /// The gradient (`bwd`) of a forward op.
    Backward,
}

const SLOTS: usize = 2 * Kind::ALL.len();

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static CALLS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

fn slot(dir: Direction, kind: Kind) -> usize {
    let k = Kind::ALL.iter().position(|&x| x == kind).unwrap_or(0);
    match dir {
        Direction::Forward => k,
        Direction::Backward => Kind::ALL.len() + k,
    }
}

/// Starts recording op times (for the rest of the process).
pub fn enable() {
    ENABLED.store(true, Relaxed);
}

/// Whether op times are being recorded.
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Seconds and calls of one `(direction, kind)` slot.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Slot {
    /// Wall seconds spent in the slot's op calls.
    pub seconds: f64,
    /// The number of calls.
    pub calls: u64,
}

/// What the ops recorded since the last [`take`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelTimes([Slot; SLOTS]);

impl KernelTimes {
    /// The slot of `kind` in direction `dir`.
    pub fn get(&self, dir: Direction, kind: Kind) -> Slot {
        self.0[slot(dir, kind)]
    }

    /// The seconds of every kind in direction `dir`, summed.
    pub fn seconds(&self, dir: Direction) -> f64 {
        Kind::ALL.iter().map(|&k| self.get(dir, k).seconds).sum()
    }

    /// Adds `other`'s seconds and calls to these.
    pub fn add(&mut self, other: &KernelTimes) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            a.seconds += b.seconds;
            a.calls += b.calls;
        }
    }
}

/// Reads and clears what the ops recorded.
pub fn take() -> KernelTimes {
    let mut out = KernelTimes::default();
    for (i, s) in out.0.iter_mut().enumerate() {
        s.seconds = NANOS[i].swap(0, Relaxed) as f64 * 1e-9;
        s.calls = CALLS[i].swap(0, Relaxed);
    }
    out
}

/// A running op call: its time is added to its slot on drop.
pub(crate) struct Span(Option<(usize, Instant)>);

impl Span {
    /// Starts timing a call of `kind` in direction `dir` (nothing when
    /// profiling is off).
    pub(crate) fn new(dir: Direction, kind: Kind) -> Self {
        Self(enabled().then(|| (slot(dir, kind), Instant::now())))
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some((i, start)) = self.0 {
            let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            NANOS[i].fetch_add(ns, Relaxed);
            CALLS[i].fetch_add(1, Relaxed);
        }
    }
}
