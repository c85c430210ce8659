//! Inference with folded Weight Standardization.
//!
//! A WS conv standardizes its weight, `W_hat = (W - mean) / std` per output
//! channel, on every call, which training needs (gradients flow through
//! the standardization) and inference does not. While a [`Folding`] guard
//! from [`FoldSwitch::begin`] is alive, every WS conv sharing the switch
//! computes `W_hat` once, detached, keeps it and convolves with it as a
//! plain conv would ([`crate::Conv::fold`] does the same for one layer).
//! The kept kernels belong to the guard's epoch: a new guard computes them
//! again, so weights changed between evaluations (training) are seen.
//! Guards nest; folding ends with the outermost.
//!
//! Hold a guard only around forward passes that neither train nor change
//! the weights: evaluation and prediction.

use std::sync::{Arc, Mutex, MutexGuard};

/// The switch shared by the convs of one factory (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct FoldSwitch(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    /// Guards alive.
    depth: usize,
    /// The current epoch (new at each outermost guard; never 0 then).
    epoch: u64,
}

/// While alive, WS convs on the switch use kernels computed once.
#[derive(Debug)]
pub struct Folding<'a>(&'a FoldSwitch);

impl FoldSwitch {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts (or, nested, joins) a folding epoch.
    pub fn begin(&self) -> Folding<'_> {
        let mut s = self.state();
        if s.depth == 0 {
            s.epoch += 1;
        }
        s.depth += 1;
        Folding(self)
    }

    /// The epoch folded kernels belong to now, or `None` outside a guard.
    pub fn epoch(&self) -> Option<u64> {
        let s = self.state();
        (s.depth > 0).then_some(s.epoch)
    }
}

impl Drop for Folding<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.depth = s.depth.saturating_sub(1);
    }
}
