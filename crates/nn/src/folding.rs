//! Inference with folded Weight Standardization.
//!
//! A WS conv standardizes its weight, `W_hat = (W - mean) / std` per output
//! channel, on every call, which training needs (gradients flow through
//! the standardization) and inference does not. While a [`Folding`] guard
//! from [`FoldSwitch::begin`] is alive, every WS conv sharing the switch
//! computes `W_hat` once, detached, and convolves with it as a plain conv
//! would ([`crate::Conv::fold`] does the same for one layer). The switch
//! keeps those kernels, by weight tensor, until the outermost guard drops:
//! guards nest, the memory goes back after each evaluation, and a new
//! guard computes them again, so weights changed between evaluations
//! (training) are seen.
//!
//! Hold a guard only around forward passes that neither train nor change
//! the weights: evaluation and prediction.

use candle_core::{Tensor, TensorId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The switch shared by the convs of one factory (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct FoldSwitch(Arc<State>);

#[derive(Debug, Default)]
struct State {
    /// Guards alive. Read without the lock on every WS conv call, so that
    /// training (no guard) takes no lock.
    depth: AtomicUsize,
    /// The kernels of the current guard, by the weight they standardize.
    kernels: Mutex<HashMap<TensorId, Tensor>>,
}

/// While alive, WS convs on the switch use kernels computed once.
#[derive(Debug)]
pub struct Folding<'a>(&'a FoldSwitch);

impl FoldSwitch {
    fn kernels(&self) -> MutexGuard<'_, HashMap<TensorId, Tensor>> {
        self.0.kernels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts (or, nested, joins) folding.
    pub fn begin(&self) -> Folding<'_> {
        self.0.depth.fetch_add(1, Ordering::SeqCst);
        Folding(self)
    }

    /// Inside a guard, the kernel kept for `weight`, made by `make` at its
    /// first use; `None` outside a guard.
    pub(crate) fn kernel<E>(
        &self,
        weight: &Tensor,
        make: impl FnOnce() -> Result<Tensor, E>,
    ) -> Result<Option<Tensor>, E> {
        if self.0.depth.load(Ordering::SeqCst) == 0 {
            return Ok(None);
        }
        let mut kernels = self.kernels();
        if let Some(k) = kernels.get(&weight.id()) {
            return Ok(Some(k.clone()));
        }
        let k = make()?;
        kernels.insert(weight.id(), k.clone());
        Ok(Some(k))
    }
}

impl Drop for Folding<'_> {
    fn drop(&mut self) {
        if self.0 .0.depth.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.kernels().clear();
        }
    }
}
