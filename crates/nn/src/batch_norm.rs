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

use crate::input::{channel_dims, channel_mean, channel_view, per_channel};
use crate::{Error, Result};
use candle_core::{DType, ModuleT, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use wsbcn_kernels::slice::fused_cpu_input;
use wsbcn_kernels::{channel_affine, channel_moments};

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
            false,
        )?)
    }
}

/// Batch normalization (see the module docs).
#[derive(Clone, Debug)]
pub struct BatchNorm {
    pub(crate) affine: ChannelAffine,
    momentum: f64,
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

    fn forward_checked(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let a = &self.affine;
        let xv = channel_view(&a.name, x, a.channels)?;
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
            channel_affine(&xv, &a.weight, &a.bias, &mean, &var, a.eps, true)?
        } else {
            let mean = ChannelAffine::values(&a.running_mean)?;
            let var = ChannelAffine::values(&a.running_var)?;
            a.normalize_values(&xv, &mean, &var)?
        };
        Ok(y.reshape(x.shape())?)
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
    if !(0.0..=1.0).contains(&momentum) {
        return Err(Error::config(
            &vb.prefix(),
            format!("momentum ({momentum}) must lie in [0, 1]"),
        ));
    }
    Ok(BatchNorm {
        affine: ChannelAffine::new(channels, eps, &vb)?,
        momentum,
    })
}
