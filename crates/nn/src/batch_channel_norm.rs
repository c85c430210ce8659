//! Batch-Channel Normalization: a batch normalization, then a group
//! normalization without affine, then a per-group affine.
//!
//! Qiao et al. (arXiv 1903.10520), official code
//! `joe-siyuan-qiao/Batch-Channel-Normalization`. For `x: (N, C, spatial...)`:
//!
//! ```text
//! x1 = BN(x)                       per channel; plain BN or estimated BN
//! x2 = GroupNorm_no_affine(x1, G)  per sample and group
//! y  = gamma_g[g] * x2 + beta_g[g] per group (gamma_g, beta_g: (G,))
//! ```
//!
//! Parameters: `bn.weight`, `bn.bias`, `bn.running_mean`, `bn.running_var`
//! `(C,)` and `weight`, `bias` `(G,)`, i.e. `2C + 2G` affine parameters.

use crate::batch_norm::{batch_norm, sync_batch_norm, BatchNorm};
use crate::estimated_batch_norm::{estimated_batch_norm, EstimatedBatchNorm, MovingSpeed};
use crate::group_norm::{check_groups, group_norm_affine};
use crate::input::channel_dims;
use crate::Result;
use candle_core::{ModuleT, Tensor};
use candle_nn::{Init, VarBuilder};

/// The batch half of a [`BatchChannelNorm`].
#[derive(Clone, Debug)]
pub enum BatchPart {
    /// Batch statistics in training (large batches).
    Batch(BatchNorm),
    /// Running estimates (micro-batches).
    Estimated(EstimatedBatchNorm),
}

impl ModuleT for BatchPart {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        match self {
            BatchPart::Batch(bn) => bn.forward_t(x, train),
            BatchPart::Estimated(bn) => bn.forward_t(x, train),
        }
    }
}

/// Batch-Channel Normalization (see the module docs).
#[derive(Clone, Debug)]
pub struct BatchChannelNorm {
    bn: BatchPart,
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    channels: usize,
    eps: f64,
    name: String,
}

impl BatchChannelNorm {
    /// The batch half.
    pub fn batch_part(&self) -> &BatchPart {
        &self.bn
    }

    /// The number of groups `G`.
    pub fn groups(&self) -> usize {
        self.groups
    }

    fn forward_checked(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (n, c, l) = channel_dims(&self.name, x, self.channels)?;
        let x1 = self.bn.forward_t(x, train)?.reshape((n, c, l))?;
        let per_channel = |v: &Tensor| -> Result<Tensor> {
            let g = (self.groups, 1);
            Ok(v.reshape(g)?
                .broadcast_as((self.groups, c / self.groups))?
                .reshape(c)?)
        };
        let y = group_norm_affine(
            &x1,
            self.groups,
            &per_channel(&self.weight)?,
            &per_channel(&self.bias)?,
            self.eps,
        )?;
        Ok(y.reshape(x.shape())?)
    }
}

impl ModuleT for BatchChannelNorm {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        Ok(self.forward_checked(x, train)?)
    }
}

/// How a [`BatchChannelNorm`]'s batch half gets its statistics.
#[derive(Clone, Debug)]
pub enum BatchStatistics {
    /// Plain BN with this momentum for the running averages.
    Batch {
        /// PyTorch-convention momentum of the running averages.
        momentum: f64,
        /// Statistics over every rank's batch (SyncBN; `bcn-sync`).
        synchronized: bool,
    },
    /// Estimated BN driven by this moving speed.
    Estimated {
        /// The moving speed handle.
        speed: MovingSpeed,
        /// Keep each rank's estimates its own (see
        /// [`crate::NormConfig::local_estimates`]).
        local: bool,
    },
}

/// Builds a [`BatchChannelNorm`] with `groups` groups over `channels`.
pub fn batch_channel_norm(
    groups: usize,
    channels: usize,
    eps: f64,
    stats: BatchStatistics,
    vb: VarBuilder,
) -> Result<BatchChannelNorm> {
    let name = vb.prefix();
    check_groups(&name, groups, channels)?;
    let bn = match stats {
        BatchStatistics::Batch {
            momentum,
            synchronized: false,
        } => BatchPart::Batch(batch_norm(channels, eps, momentum, vb.pp("bn"))?),
        BatchStatistics::Batch {
            momentum,
            synchronized: true,
        } => BatchPart::Batch(sync_batch_norm(channels, eps, momentum, vb.pp("bn"))?),
        BatchStatistics::Estimated { speed, local } => BatchPart::Estimated(
            estimated_batch_norm(channels, eps, speed, vb.pp("bn"))?.local_estimates(local),
        ),
    };
    Ok(BatchChannelNorm {
        bn,
        weight: vb.get_with_hints(groups, "weight", Init::Const(1.0))?,
        bias: vb.get_with_hints(groups, "bias", Init::Const(0.0))?,
        groups,
        channels,
        eps,
        name,
    })
}
