//! Estimated batch normalization: BN whose statistics are running estimates
//! updated from each micro-batch, for training at 1-2 samples per device.
//!
//! METHOD.md ("Micro-batch"), after the official BCN code. Per channel, with
//! `r` the moving speed of this step and `n` over the batch and space:
//!
//! ```text
//! mu_b    = mean x                          (current batch, no gradient)
//! v_b     = mean (x - mu_hat_old)^2         (no gradient)
//! mu_hat  <- (1 - r) mu_hat  + r mu_b
//! var_hat <- (1 - r) var_hat + r v_b
//! y = weight * (x - mu_hat) / sqrt(var_hat + eps) + bias
//! ```
//!
//! No gradient flows through `mu_hat`, `var_hat`; evaluation uses them
//! unchanged. On the CPU in f32/f64 the statistics and the normalization
//! are fused (`wsbcn-kernels`' `batch_norm`); elsewhere the layer is built from
//! candle ops ([`EstimatedBatchNorm::forward_composite`]). The estimates
//! are stored as `running_mean`, `running_var` `(C,)`, so BN weights load
//! into this layer. `r` comes from a shared
//! [`MovingSpeed`] that the training loop sets every step (the engine can tie
//! it to the learning rate); `r = 0` freezes the estimates.
//! Every training forward pass updates the estimates once: under gradient
//! accumulation, as many times per optimizer step as there are
//! micro-batches.
//!
//! On the ranks of a data-parallel job ([`wsbcn_dist::world`]) `mu_b` and
//! `v_b` are averaged over the ranks, weighted by their value counts,
//! before the update: every rank then holds the estimates one process would
//! on the joined batch. [`EstimatedBatchNorm::local_estimates`] keeps each
//! rank's estimates its own instead, as the official multi-GPU code.

use crate::batch_norm::ChannelAffine;
use crate::input::{channel_mean, channel_view};
use crate::{Error, Result};
use candle_core::{DType, ModuleT, Tensor};
use candle_nn::VarBuilder;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use wsbcn_kernels::channel_moments;
use wsbcn_kernels::slice::fused_cpu_input;

/// The moving speed `r` of estimated-BN layers, shared by every layer built
/// from one factory so that one `set` per step drives them all.
#[derive(Clone, Debug)]
pub struct MovingSpeed(Arc<AtomicU64>);

impl MovingSpeed {
    /// A handle starting at `r`.
    pub fn new(r: f64) -> Self {
        Self(Arc::new(AtomicU64::new(r.to_bits())))
    }

    /// Sets `r` for the next forward passes; it must lie in `[0, 1]`.
    pub fn set(&self, r: f64) -> Result<()> {
        if !(0.0..=1.0).contains(&r) {
            return Err(Error::config(
                "moving speed",
                format!("r ({r}) must lie in [0, 1]"),
            ));
        }
        self.0.store(r.to_bits(), Ordering::Relaxed);
        Ok(())
    }

    /// The current `r`.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Estimated batch normalization (see the module docs).
#[derive(Clone, Debug)]
pub struct EstimatedBatchNorm {
    affine: ChannelAffine,
    speed: MovingSpeed,
    local: bool,
}

/// `(mu_b, v_b)` of every rank's `count` values per channel, averaged
/// over the ranks weighted by count (the statistics of the joined batch).
fn over_ranks(mu_b: &[f64], v_b: &[f64], count: f64) -> (Vec<f64>, Vec<f64>) {
    let world = wsbcn_dist::world();
    if world.size() == 1 {
        return (mu_b.to_vec(), v_b.to_vec());
    }
    let c = mu_b.len();
    let mut sums: Vec<f64> = mu_b.iter().chain(v_b).map(|v| v * count).collect();
    sums.push(count);
    world.all_reduce_sum(&mut sums);
    let total = sums[2 * c];
    (
        sums[..c].iter().map(|s| s / total).collect(),
        sums[c..2 * c].iter().map(|s| s / total).collect(),
    )
}

impl EstimatedBatchNorm {
    /// The mean estimate `mu_hat: (C,)`.
    pub fn estimated_mean(&self) -> &Tensor {
        self.affine.running_mean.as_tensor()
    }

    /// The variance estimate `var_hat: (C,)`.
    pub fn estimated_var(&self) -> &Tensor {
        self.affine.running_var.as_tensor()
    }

    /// The moving-speed handle this layer reads.
    pub fn moving_speed(&self) -> &MovingSpeed {
        &self.speed
    }

    /// On several ranks, `local = true` updates each rank's estimates from
    /// its own samples only (see the module docs).
    pub fn local_estimates(mut self, local: bool) -> Self {
        self.local = local;
        self
    }

    /// This rank's batch statistics, or all ranks' unless local.
    fn batch_statistics(&self, mu_b: Vec<f64>, v_b: Vec<f64>, count: f64) -> (Vec<f64>, Vec<f64>) {
        if self.local {
            (mu_b, v_b)
        } else {
            over_ranks(&mu_b, &v_b, count)
        }
    }

    /// The layer's name (its `VarBuilder` path).
    pub fn name(&self) -> &str {
        &self.affine.name
    }

    fn forward_checked(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let a = &self.affine;
        let xv = channel_view(&a.name, x, a.channels)?;
        if !fused_cpu_input(&xv) {
            return self.forward_composite(x, train);
        }
        let r = self.speed.get();
        let (mean, var) = if train && r > 0.0 {
            let mu_old = ChannelAffine::values(&a.running_mean)?;
            let (mu_b, v_b) = channel_moments(&xv, Some(&mu_old))?;
            let count = (xv.dim(0)? * xv.dim(2)?) as f64;
            let (mu_b, v_b) = self.batch_statistics(mu_b, v_b, count);
            (
                ChannelAffine::blend_values(&a.running_mean, &mu_b, r)?,
                ChannelAffine::blend_values(&a.running_var, &v_b, r)?,
            )
        } else {
            (
                ChannelAffine::values(&a.running_mean)?,
                ChannelAffine::values(&a.running_var)?,
            )
        };
        Ok(a.normalize_values(&xv, &mean, &var)?.reshape(x.shape())?)
    }

    /// The layer from candle ops, on any device and dtype: what runs where
    /// the fused CPU op does not.
    pub fn forward_composite(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let a = &self.affine;
        let xv = channel_view(&a.name, x, a.channels)?;
        let r = self.speed.get();
        if train && r > 0.0 {
            let xd = xv.detach();
            let (mu_old, _) = a.running()?;
            let mu_b = channel_mean(&xd)?;
            let v_b = channel_mean(&xd.broadcast_sub(&mu_old)?.sqr()?)?;
            let (mu_b, v_b) = if wsbcn_dist::world().size() > 1 && !self.local {
                // Staged through host memory for the collective.
                let host = |t: &Tensor| t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>();
                let count = (xd.dim(0)? * xd.dim(2)?) as f64;
                let (m, v) = over_ranks(&host(&mu_b)?, &host(&v_b)?, count);
                let back = |v: Vec<f64>| {
                    Tensor::from_vec(v, mu_b.shape(), xd.device())?.to_dtype(xd.dtype())
                };
                (back(m)?, back(v)?)
            } else {
                (mu_b, v_b)
            };
            ChannelAffine::blend(&a.running_mean, &mu_b, r)?;
            ChannelAffine::blend(&a.running_var, &v_b, r)?;
        }
        let (mean, var) = a.running()?;
        Ok(a.normalize(&xv, &mean, &var)?.reshape(x.shape())?)
    }
}

impl ModuleT for EstimatedBatchNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        Ok(self.forward_checked(x, train)?)
    }
}

/// Builds an [`EstimatedBatchNorm`] over `channels` reading `speed`.
pub fn estimated_batch_norm(
    channels: usize,
    eps: f64,
    speed: MovingSpeed,
    vb: VarBuilder,
) -> Result<EstimatedBatchNorm> {
    Ok(EstimatedBatchNorm {
        affine: ChannelAffine::new(channels, eps, &vb)?,
        speed,
        local: false,
    })
}
