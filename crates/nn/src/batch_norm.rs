//! Batch normalization over `(N, C, H, W)` or `(N, C, T, H, W)`.
//!
//! Ioffe & Szegedy 2015, with PyTorch's `BatchNorm2d/3d` semantics. Per
//! channel `c`, over the batch and every spatial position (`n = N * L`):
//!
//! ```text
//! train: m = mean x,  v = mean (x - m)^2          (biased, used to normalize)
//!        running_mean <- (1 - momentum) running_mean + momentum m
//!        running_var  <- (1 - momentum) running_var  + momentum v n / (n - 1)
//! eval:  m = running_mean,  v = running_var
//! y = weight * (x - m) / sqrt(v + eps) + bias
//! ```
//!
//! Parameters `weight`, `bias` `(C,)`; state `running_mean`, `running_var`
//! `(C,)`, stored as variables so they are saved with the weights. They
//! never receive gradients. Training with `n = 1` is an error, as in PyTorch.
//!
//! On the CPU in f32/f64 the layer runs as one fused op forward and backward
//! (`wsbcn-kernels`' `batch_norm`); elsewhere from candle ops
//! ([`BatchNorm::forward_composite`]). The tests hold the two to each other.
//!
//! **Synchronized** (`sync-bn`, PyTorch's `SyncBatchNorm`): on the ranks of a
//! data-parallel job ([`wsbcn_dist::world`]), `m` and `v` are taken over
//! every rank's batch: each rank's count and per-channel sum are summed
//! across ranks for `m`, then each rank's squared deviations about `m` for
//! `v` (two passes over the activation where one process takes one), so ranks may hold
//! different numbers of samples. The backward pass sums the per-channel
//! `sum dy` and `sum dy x_hat` across ranks before the input gradient uses
//! them. The running variance gets the unbiased global variance. In one
//! process it is plain BN. On several ranks it runs the fused CPU op; a
//! tensor on another device, or of another dtype, is staged through host
//! memory in f32 (differentiable copies there and back).

use crate::input::{channel_dims, channel_mean, channel_view, per_channel};
use crate::{Error, Result};
use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use std::sync::Arc;
use wsbcn_kernels::slice::fused_cpu_input;
use wsbcn_kernels::{channel_affine, channel_moments, StatsGrad};

/// The parameters and running state shared by [`BatchNorm`] and
/// [`crate::EstimatedBatchNorm`].
#[derive(Clone, Debug)]
pub(crate) struct ChannelAffine {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Var,
    pub running_var: Var,
    pub channels: usize,
    pub eps: f64,
    pub name: String,
}

impl ChannelAffine {
    /// `weight` = 1, `bias` = 0, `running_mean` = 0, `running_var` = 1.
    pub fn new(channels: usize, eps: f64, vb: &VarBuilder) -> Result<Self> {
        let name = vb.prefix();
        if channels == 0 || eps < 0.0 {
            return Err(Error::config(
                &name,
                format!("needs channels >= 1 and eps >= 0, got {channels} and {eps}"),
            ));
        }
        let get = |n: &str, v: f64| vb.get_with_hints(channels, n, Init::Const(v));
        Ok(Self {
            weight: get("weight", 1.0)?,
            bias: get("bias", 0.0)?,
            running_mean: Var::from_tensor(&get("running_mean", 0.0)?)?,
            running_var: Var::from_tensor(&get("running_var", 1.0)?)?,
            channels,
            eps,
            name,
        })
    }

    /// `weight * (x - mean) / sqrt(var + eps) + bias` on `x: (N, C, L)` with
    /// `mean`, `var` of shape `(1, C, 1)`.
    pub fn normalize(&self, x: &Tensor, mean: &Tensor, var: &Tensor) -> Result<Tensor> {
        let scale =
            per_channel(&self.weight)?.broadcast_div(&var.affine(1.0, self.eps)?.sqrt()?)?;
        Ok(x.broadcast_sub(mean)?
            .broadcast_mul(&scale)?
            .broadcast_add(&per_channel(&self.bias)?)?)
    }

    /// The running estimates as constants `(1, C, 1)`, detached from the graph.
    pub fn running(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            per_channel(&self.running_mean.as_tensor().detach())?,
            per_channel(&self.running_var.as_tensor().detach())?,
        ))
    }

    /// `state <- (1 - r) state + r new` for a `(1, C, 1)` `new`, no gradient.
    pub fn blend(state: &Var, new: &Tensor, r: f64) -> Result<()> {
        let blended = (state.as_tensor().detach().affine(1.0 - r, 0.0)?
            + new.detach().flatten_all()?.affine(r, 0.0)?)?;
        state.set(&blended)?;
        Ok(())
    }

    /// [`Self::blend`] with `new` as f64 values per channel, computed in f64;
    /// returns the blended state as stored (rounded to f32 in an f32 model),
    /// so that the caller need not read it back.
    pub fn blend_values(state: &Var, new: &[f64], r: f64) -> Result<Vec<f64>> {
        let old = Self::values(state)?;
        let f32_state = state.dtype() == DType::F32;
        let v: Vec<f64> = old
            .iter()
            .zip(new)
            .map(|(o, n)| (1.0 - r) * o + r * n)
            .map(|b| if f32_state { b as f32 as f64 } else { b })
            .collect();
        let t = Tensor::from_vec(v.clone(), old.len(), state.device())?.to_dtype(state.dtype())?;
        state.set(&t)?;
        Ok(v)
    }

    /// A `(C,)` state as f64 values.
    pub fn values(state: &Var) -> Result<Vec<f64>> {
        Ok(state.as_tensor().to_dtype(DType::F64)?.to_vec1()?)
    }

    /// `normalize` with `mean` and `var` as constant f64 values per channel,
    /// fused, for inputs where [`fused_cpu_input`] holds.
    pub fn normalize_values(&self, xv: &Tensor, mean: &[f64], var: &[f64]) -> Result<Tensor> {
        Ok(channel_affine(
            xv,
            &self.weight,
            &self.bias,
            mean,
            var,
            self.eps,
            StatsGrad::Constant,
        )?)
    }
}

/// Batch normalization (see the module docs).
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub(crate) affine: ChannelAffine,
    momentum: f64,
    synchronized: bool,
}

impl BatchNorm {
    /// The running mean `(C,)`.
    pub fn running_mean(&self) -> &Tensor {
        self.affine.running_mean.as_tensor()
    }

    /// The running variance `(C,)` (unbiased batch variances averaged).
    pub fn running_var(&self) -> &Tensor {
        self.affine.running_var.as_tensor()
    }

    /// The layer's name (its `VarBuilder` path).
    pub fn name(&self) -> &str {
        &self.affine.name
    }

    fn check_count(&self, x: &Tensor) -> Result<usize> {
        let a = &self.affine;
        let (n, _, l) = channel_dims(&a.name, x, a.channels)?;
        if n * l < 2 {
            return Err(Error::Statistics {
                layer: a.name.clone(),
                msg: format!(
                    "expected more than 1 value per channel when training, got input shape {:?}",
                    x.dims()
                ),
            });
        }
        Ok(n * l)
    }

    /// Whether the batch statistics are taken over every rank's batch.
    pub fn synchronized(&self) -> bool {
        self.synchronized
    }

    fn forward_checked(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let a = &self.affine;
        let xv = channel_view(&a.name, x, a.channels)?;
        let across_ranks = train && self.synchronized && wsbcn_dist::world().size() > 1;
        if across_ranks {
            let y = if fused_cpu_input(&xv) {
                self.forward_synchronized(&xv, &a.weight, &a.bias)?
            } else {
                // Another device or dtype: staged through host memory in
                // f32 (f64 stays f64), as the engine stages gradients; the
                // copies are differentiable, so the gradients go back the
                // same way.
                let host = if xv.dtype() == DType::F64 {
                    DType::F64
                } else {
                    DType::F32
                };
                let stage = |t: &Tensor| t.to_device(&Device::Cpu)?.to_dtype(host);
                self.forward_synchronized(&stage(&xv)?, &stage(&a.weight)?, &stage(&a.bias)?)?
                    .to_dtype(xv.dtype())?
                    .to_device(xv.device())?
            };
            return Ok(y.reshape(x.shape())?);
        }
        if !fused_cpu_input(&xv) {
            return self.forward_composite(x, train);
        }
        let y = if train {
            let count = self.check_count(x)? as f64;
            let (mean, var) = channel_moments(&xv, None)?;
            let unbiased: Vec<f64> = var.iter().map(|v| v * count / (count - 1.0)).collect();
            // BN normalizes with the batch statistics; the blended state is
            // only kept.
            ChannelAffine::blend_values(&a.running_mean, &mean, self.momentum)?;
            ChannelAffine::blend_values(&a.running_var, &unbiased, self.momentum)?;
            channel_affine(
                &xv,
                &a.weight,
                &a.bias,
                &mean,
                &var,
                a.eps,
                StatsGrad::Batch,
            )?
        } else {
            let mean = ChannelAffine::values(&a.running_mean)?;
            let var = ChannelAffine::values(&a.running_var)?;
            a.normalize_values(&xv, &mean, &var)?
        };
        Ok(y.reshape(x.shape())?)
    }

    /// Training on several ranks with synchronized statistics (see the
    /// module docs), `xv: (N, C, L)` this rank's part of the batch, with the
    /// layer's `weight` and `bias` on `xv`'s (CPU) device.
    fn forward_synchronized(&self, xv: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let a = &self.affine;
        let world = wsbcn_dist::world();
        let (n, c, l) = xv.dims3()?;
        let local = (n * l) as f64;
        let (local_mean, _) = channel_moments(xv, None)?;
        let mut sums: Vec<f64> = local_mean.iter().map(|m| m * local).collect();
        sums.push(local);
        world.all_reduce_sum(&mut sums);
        let count = sums[c];
        if count < 2.0 {
            return Err(Error::Statistics {
                layer: a.name.clone(),
                msg: format!("expected more than 1 value per channel over all ranks, got {count}"),
            });
        }
        let mean: Vec<f64> = sums[..c].iter().map(|s| s / count).collect();
        let (_, local_sq) = channel_moments(xv, Some(&mean))?;
        let mut sq: Vec<f64> = local_sq.iter().map(|v| v * local).collect();
        world.all_reduce_sum(&mut sq);
        let var: Vec<f64> = sq.iter().map(|s| s / count).collect();
        let unbiased: Vec<f64> = var.iter().map(|v| v * count / (count - 1.0)).collect();
        ChannelAffine::blend_values(&a.running_mean, &mean, self.momentum)?;
        ChannelAffine::blend_values(&a.running_var, &unbiased, self.momentum)?;
        let sum = Arc::new(|v: &mut [f64]| wsbcn_dist::world().all_reduce_sum(v));
        Ok(channel_affine(
            xv,
            weight,
            bias,
            &mean,
            &var,
            a.eps,
            StatsGrad::Shared { count, sum },
        )?)
    }

    /// The layer from candle ops, on any device and dtype: what runs where
    /// the fused CPU op does not.
    pub fn forward_composite(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let a = &self.affine;
        let xv = channel_view(&a.name, x, a.channels)?;
        let y = if train {
            let count = self.check_count(x)?;
            let mean = channel_mean(&xv)?;
            let var = channel_mean(&xv.broadcast_sub(&mean)?.sqr()?)?;
            let unbiased = var.affine(count as f64 / (count - 1) as f64, 0.0)?;
            ChannelAffine::blend(&a.running_mean, &mean, self.momentum)?;
            ChannelAffine::blend(&a.running_var, &unbiased, self.momentum)?;
            a.normalize(&xv, &mean, &var)?
        } else {
            let (mean, var) = a.running()?;
            a.normalize(&xv, &mean, &var)?
        };
        Ok(y.reshape(x.shape())?)
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        Ok(self.forward_checked(x, train)?)
    }
}

/// Builds a [`BatchNorm`] over `channels` from a `VarBuilder` (PyTorch's
/// parameter names). `momentum` is PyTorch's (0.1 by default there).
pub fn batch_norm(channels: usize, eps: f64, momentum: f64, vb: VarBuilder) -> Result<BatchNorm> {
    new_batch_norm(channels, eps, momentum, false, vb)
}

/// [`batch_norm`] with statistics over every rank's batch (see the module
/// docs): PyTorch's `SyncBatchNorm`.
pub fn sync_batch_norm(
    channels: usize,
    eps: f64,
    momentum: f64,
    vb: VarBuilder,
) -> Result<BatchNorm> {
    new_batch_norm(channels, eps, momentum, true, vb)
}

fn new_batch_norm(
    channels: usize,
    eps: f64,
    momentum: f64,
    synchronized: bool,
    vb: VarBuilder,
) -> Result<BatchNorm> {
    if !(0.0..=1.0).contains(&momentum) {
        return Err(Error::config(
            &vb.prefix(),
            format!("momentum ({momentum}) must lie in [0, 1]"),
        ));
    }
    Ok(BatchNorm {
        affine: ChannelAffine::new(channels, eps, &vb)?,
        momentum,
        synchronized,
    })
}
