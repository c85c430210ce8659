//! Diagnostics the experiments plot: how close each normalization layer's
//! channels are to an *elimination singularity*, and how much Weight
//! Standardization shrinks each conv's gradient.
//!
//! A [`Diagnostics`] handle is shared by every layer a factory builds. While
//! it is enabled, each norm layer records the fraction of its channels whose
//! output `y: (N, C, L)` (post-norm, pre-ReLU) satisfies
//!
//! ```text
//! mean_{n,l} max(y, 0) < positive_mean   or   std_{n,l} y < std
//! ```
//!
//! and each WS conv keeps `(W, W_hat, sigma)` of its last forward so that,
//! after `backward`, [`Diagnostics::ws_grad_ratios`] gives per layer
//!
//! ```text
//! ratio = ||dL/dW|| / sqrt(sum_i ||dL/dW_hat[i]||^2 / sigma_i^2)
//! ```
//!
//! which is at most 1 for the biased variant (METHOD.md: the gradient is
//! projected off the constant direction and off `W_hat`). While disabled
//! (the default) the layers record nothing and pay nothing.

use crate::input::channel_mean;
use crate::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Thresholds under which a channel counts as near an elimination singularity.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SingularityThresholds {
    /// Bound on the mean of the positive part, `mean max(y, 0)`.
    pub positive_mean: f64,
    /// Bound on the standard deviation over batch and space.
    pub std: f64,
}

impl Default for SingularityThresholds {
    fn default() -> Self {
        Self {
            positive_mean: 1e-2,
            std: 1e-2,
        }
    }
}

/// One norm layer's share of channels near an elimination singularity.
#[derive(Clone, Debug, PartialEq)]
pub struct SingularityRecord {
    /// The layer's `VarBuilder` path.
    pub layer: String,
    /// Fraction of channels below either threshold, in `[0, 1]`.
    pub fraction: f64,
    /// For a layer that normalized with the current batch's statistics
    /// (BN, BCN's batch part, in training), the values per channel it
    /// pooled them over, `N x L`; `None` for any other layer or forward.
    pub batch_values: Option<usize>,
}

/// One WS conv's gradient-norm ratio.
#[derive(Clone, Debug, PartialEq)]
pub struct WsGradRatio {
    /// The layer's `VarBuilder` path.
    pub layer: String,
    /// `||dL/dW|| / ||dL/dW_hat / sigma||`.
    pub ratio: f64,
}

#[derive(Clone, Debug)]
struct WsTrace {
    layer: String,
    weight: Tensor,
    kernel: Tensor,
    sigma: Tensor,
}

#[derive(Debug, Default)]
struct Inner {
    enabled: AtomicBool,
    thresholds: Mutex<SingularityThresholds>,
    singularity: Mutex<Vec<SingularityRecord>>,
    ws: Mutex<Vec<WsTrace>>,
}

/// A shared, cheaply cloned recorder (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Fraction of channels of `y: (N, C, L)` near an elimination singularity.
pub fn singularity_fraction(y: &Tensor, thresholds: &SingularityThresholds) -> Result<f64> {
    let y = y.detach().to_dtype(DType::F64)?;
    let pos_mean = channel_mean(&y.relu()?)?.flatten_all()?.to_vec1::<f64>()?;
    let centered = y.broadcast_sub(&channel_mean(&y)?)?;
    let std = channel_mean(&centered.sqr()?)?
        .sqrt()?
        .flatten_all()?
        .to_vec1::<f64>()?;
    let near = pos_mean
        .iter()
        .zip(&std)
        .filter(|(p, s)| **p < thresholds.positive_mean || **s < thresholds.std)
        .count();
    Ok(near as f64 / pos_mean.len().max(1) as f64)
}

impl Diagnostics {
    /// A disabled recorder with the given thresholds.
    pub fn new(thresholds: SingularityThresholds) -> Self {
        let d = Self::default();
        *lock(&d.0.thresholds) = thresholds;
        d
    }

    /// Starts or stops recording.
    pub fn set_enabled(&self, enabled: bool) {
        self.0.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Whether layers record now.
    pub fn is_enabled(&self) -> bool {
        self.0.enabled.load(Ordering::Relaxed)
    }

    /// The singularity thresholds in use.
    pub fn thresholds(&self) -> SingularityThresholds {
        *lock(&self.0.thresholds)
    }

    /// Records a norm layer's output `y: (N, C, L)` when enabled;
    /// `batch_statistics`: the layer normalized with this batch's
    /// statistics, pooled over the `N x L` values of each channel.
    pub fn record_norm(&self, layer: &str, y: &Tensor, batch_statistics: bool) -> Result<()> {
        if !self.is_enabled() {
            return Ok(());
        }
        let fraction = singularity_fraction(y, &self.thresholds())?;
        lock(&self.0.singularity).push(SingularityRecord {
            layer: layer.to_string(),
            fraction,
            batch_values: batch_statistics.then_some(y.dim(0)? * y.dim(2)?),
        });
        Ok(())
    }

    /// Keeps a WS conv's `W`, a variable whose gradient is `dL/dW_hat`, and
    /// `sigma: (O, 1)`, when enabled.
    pub fn record_ws(&self, layer: &str, weight: &Tensor, kernel: &Tensor, sigma: &Tensor) {
        if !self.is_enabled() {
            return;
        }
        lock(&self.0.ws).push(WsTrace {
            layer: layer.to_string(),
            weight: weight.clone(),
            kernel: kernel.clone(),
            sigma: sigma.detach(),
        });
    }

    /// The singularity records since the last call, in forward order.
    pub fn take_singularity(&self) -> Vec<SingularityRecord> {
        std::mem::take(&mut *lock(&self.0.singularity))
    }

    /// The WS gradient ratios of the convs recorded since the last call,
    /// computed from the gradients of a `backward` over those forwards.
    /// Layers whose `W` or `W_hat` got no gradient are skipped.
    pub fn ws_grad_ratios(&self, grads: &GradStore) -> Result<Vec<WsGradRatio>> {
        let traces = std::mem::take(&mut *lock(&self.0.ws));
        let mut out = Vec::with_capacity(traces.len());
        for t in traces {
            let (Some(gw), Some(gk)) = (grads.get(&t.weight), grads.get(&t.kernel)) else {
                continue;
            };
            let o = gk.dim(0)?;
            let gk = gk.reshape((o, ()))?.to_dtype(DType::F64)?;
            let sigma = t.sigma.to_dtype(DType::F64)?;
            let projected = gk
                .broadcast_div(&sigma)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
            let full = gw
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
            out.push(WsGradRatio {
                layer: t.layer,
                ratio: (full / projected).sqrt(),
            });
        }
        Ok(out)
    }
}
