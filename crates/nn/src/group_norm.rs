//! Group normalization, and LayerNorm and InstanceNorm as its two extremes.
//!
//! Wu & He 2018. For `x: (N, C, H, W)` or `(N, C, T, H, W)` split into `G`
//! groups of `C/G` channels, per sample `n` and group `g`, over the group's
//! channels and every spatial position:
//!
//! ```text
//! x_hat = (x - mean) / sqrt(var + eps)      (biased var)
//! y     = weight[c] * x_hat + bias[c]       (weight, bias: (C,))
//! ```
//!
//! `G = 1` is LayerNorm over `(C, spatial)` as used in conv nets, `G = C` is
//! InstanceNorm (here with a per-channel affine). Train and eval behave the
//! same: no batch statistics, no state.
//!
//! On the CPU in f32/f64, [`group_norm_affine`] runs as one fused op forward
//! and backward; elsewhere it is [`group_norm_affine_composite`], built from
//! candle ops. The tests hold the two to each other.

use crate::input::{channel_dims, per_channel};
use crate::{Error, Result};
use candle_core::{ModuleT, Tensor};
use candle_nn::{Init, VarBuilder};

/// Standardizes `x: (N, C, L)` within `groups` channel groups per sample,
/// without affine. Returns `(N, G, C/G * L)`.
pub fn group_standardize(x: &Tensor, groups: usize, eps: f64) -> Result<Tensor> {
    let (n, c, l) = x.dims3()?;
    let xg = x.reshape((n, groups, c / groups * l))?;
    let centered = xg.broadcast_sub(&xg.mean_keepdim(2)?)?;
    let std = centered.sqr()?.mean_keepdim(2)?.affine(1.0, eps)?.sqrt()?;
    Ok(centered.broadcast_div(&std)?)
}

/// `GN(x) weight[c] + bias[c]` for `x: (N, C, L)`, `weight, bias: (C,)`:
/// the fused CPU op where it applies, else the composite.
pub fn group_norm_affine(
    x: &Tensor,
    groups: usize,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    if wsbcn_kernels::slice::fused_cpu_input(x) {
        Ok(wsbcn_kernels::group_norm_affine(
            x, groups, weight, bias, eps,
        )?)
    } else {
        group_norm_affine_composite(x, groups, weight, bias, eps)
    }
}

/// [`group_norm_affine`] from candle ops, on any device and dtype.
pub fn group_norm_affine_composite(
    x: &Tensor,
    groups: usize,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let (n, c, l) = x.dims3()?;
    Ok(group_standardize(x, groups, eps)?
        .reshape((n, c, l))?
        .broadcast_mul(&per_channel(weight)?)?
        .broadcast_add(&per_channel(bias)?)?)
}

/// Checks the group count against the channel count, naming the layer.
pub(crate) fn check_groups(layer: &str, groups: usize, channels: usize) -> Result<()> {
    if groups == 0 || groups > channels || !channels.is_multiple_of(groups) {
        return Err(Error::config(
            layer,
            format!(
                "num_groups ({groups}) must divide num_channels ({channels}) and be at most it"
            ),
        ));
    }
    Ok(())
}

/// Group normalization (see the module docs).
#[derive(Clone, Debug)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    channels: usize,
    eps: f64,
    name: String,
}

impl GroupNorm {
    /// The number of groups `G`.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The layer's name (its `VarBuilder` path).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn forward_checked(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, l) = channel_dims(&self.name, x, self.channels)?;
        let xv = x.reshape((n, c, l))?;
        let y = group_norm_affine(&xv, self.groups, &self.weight, &self.bias, self.eps)?;
        Ok(y.reshape(x.shape())?)
    }
}

impl ModuleT for GroupNorm {
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        Ok(self.forward_checked(x)?)
    }
}

/// Builds a [`GroupNorm`] with `groups` groups over `channels` channels
/// (`weight` = 1, `bias` = 0). `groups` must divide `channels`.
pub fn group_norm(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<GroupNorm> {
    let name = vb.prefix();
    check_groups(&name, groups, channels)?;
    Ok(GroupNorm {
        weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
        bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
        groups,
        channels,
        eps,
        name,
    })
}

/// LayerNorm over `(C, spatial)`: a [`GroupNorm`] with one group.
pub fn layer_norm(channels: usize, eps: f64, vb: VarBuilder) -> Result<GroupNorm> {
    group_norm(1, channels, eps, vb)
}

/// InstanceNorm with a per-channel affine: a [`GroupNorm`] with `C` groups.
pub fn instance_norm(channels: usize, eps: f64, vb: VarBuilder) -> Result<GroupNorm> {
    group_norm(channels, channels, eps, vb)
}
