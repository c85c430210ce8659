//! The layer factory: one config value picks the normalization and the conv
//! weight mode of every layer of a model.
//!
//! A spec string joins a norm name and a conv name with `+`, in either order:
//!
//! ```text
//! norm: bn | sync-bn | gn | ln | in | bcn | bcn-sync | bcn-est | none
//!       (default when absent: none; sync-: batch statistics over every
//!       rank of a data-parallel job)
//! conv: plain | ws | ws-unbiased | ws-std-eps          (default when absent: plain)
//! e.g.  "bn", "gn+ws", "bcn-est+ws", "ws-unbiased+bcn", "none+ws"
//! ```
//!
//! Models call [`LayerFactory::conv`] for every conv that a norm follows and
//! [`LayerFactory::norm`] for the norm; a final classifier is built with
//! [`crate::conv`] and [`WeightMode::Plain`] directly, since WS belongs only
//! on convs followed by a normalization.

use crate::batch_channel_norm::{batch_channel_norm, BatchStatistics};
use crate::batch_norm::{batch_norm, sync_batch_norm};
use crate::conv_fn::ConvGeometry;
use crate::conv_norm::ConvNorm;
use crate::diagnostics::{Diagnostics, SingularityThresholds};
use crate::estimated_batch_norm::MovingSpeed;
use crate::folding::{FoldSwitch, Folding};
use crate::group_norm::{group_norm, instance_norm, layer_norm};
use crate::norm::{Norm, NormLayer};
use crate::weight_standardization::WeightMode;
use crate::ws_conv::{conv, Conv, ConvConfig, ConvOp, WeightInit};
use crate::{Error, Result};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The normalization half of a spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormKind {
    /// BatchNorm with batch statistics in training.
    Bn,
    /// BatchNorm with batch statistics over every rank (SyncBatchNorm).
    SyncBn,
    /// GroupNorm with `groups` groups.
    Gn,
    /// LayerNorm (one group).
    Ln,
    /// InstanceNorm (one group per channel).
    In,
    /// Batch-Channel Norm with plain BN statistics.
    Bcn,
    /// Batch-Channel Norm whose batch part is synchronized across ranks.
    BcnSync,
    /// Batch-Channel Norm with estimated BN statistics.
    BcnEst,
    /// No normalization.
    None,
}

impl NormKind {
    /// Every kind with its config name.
    pub const ALL: [(&'static str, NormKind); 9] = [
        ("bn", NormKind::Bn),
        ("sync-bn", NormKind::SyncBn),
        ("gn", NormKind::Gn),
        ("ln", NormKind::Ln),
        ("in", NormKind::In),
        ("bcn", NormKind::Bcn),
        ("bcn-sync", NormKind::BcnSync),
        ("bcn-est", NormKind::BcnEst),
        ("none", NormKind::None),
    ];

    /// The config name (`"bcn-est"`).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("none")
    }
}

/// A parsed spec: which norm, which conv weight mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// The normalization.
    pub norm: NormKind,
    /// The conv weight mode.
    pub conv: WeightMode,
}

impl FromStr for LayerSpec {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let err = |msg: String| Error::Spec {
            spec: spec.to_string(),
            msg,
        };
        let (mut norm, mut conv) = (None, None);
        for token in spec.split('+').map(str::trim) {
            let token_l = token.to_ascii_lowercase();
            if let Some((_, k)) = NormKind::ALL.iter().find(|(n, _)| *n == token_l) {
                if norm.replace(*k).is_some() {
                    return Err(err("names more than one normalization".into()));
                }
            } else if let Some((_, m)) = WeightMode::ALL.iter().find(|(n, _)| *n == token_l) {
                if conv.replace(*m).is_some() {
                    return Err(err("names more than one conv weight mode".into()));
                }
            } else {
                let names = |v: Vec<&str>| v.join(" | ");
                return Err(err(format!(
                    "unknown name `{token}` (norms: {}; convs: {})",
                    names(NormKind::ALL.iter().map(|(n, _)| *n).collect()),
                    names(WeightMode::ALL.iter().map(|(n, _)| *n).collect()),
                )));
            }
        }
        Ok(Self {
            norm: norm.unwrap_or(NormKind::None),
            conv: conv.unwrap_or(WeightMode::Plain),
        })
    }
}

impl fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.conv {
            WeightMode::Plain => write!(f, "{}", self.norm.name()),
            mode => write!(f, "{}+{}", self.norm.name(), mode.name()),
        }
    }
}

/// The normalization config of a model, as written in a TOML config:
///
/// ```toml
/// [norm]
/// spec = "bcn-est+ws"
/// groups = 32
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormConfig {
    /// The spec string (see the module docs).
    pub spec: String,
    /// Groups `G` of GN and BCN: each layer takes the largest divisor of its
    /// channel count that is at most `G` ([`LayerFactory::groups_for`]).
    pub groups: usize,
    /// eps of every norm layer.
    pub eps: f64,
    /// eps of Weight Standardization.
    pub ws_eps: f64,
    /// BN momentum for running averages (PyTorch's convention).
    pub momentum: f64,
    /// Initial moving speed `r` of estimated BN; the training loop may set
    /// it every step through [`LayerFactory::moving_speed`].
    pub moving_speed: f64,
    /// Estimated BN on the ranks of a data-parallel job: `false` (the
    /// default) averages each step's batch statistics over the ranks before
    /// the update, so every rank holds the estimates one process would on
    /// the joined batch; `true` keeps each rank's estimates its own, updated
    /// from its own samples only, as the official multi-GPU code does (the
    /// engine then does not broadcast buffers, and rank 0's are saved).
    /// Then a sharded evaluation scores each rank's shard with that rank's
    /// estimates, and a resumed run restarts every rank from rank 0's.
    pub local_estimates: bool,
    /// Elimination-singularity thresholds of the diagnostics.
    pub singularity: SingularityThresholds,
}

impl Default for NormConfig {
    fn default() -> Self {
        Self {
            spec: "bn".into(),
            groups: 32,
            eps: 1e-5,
            ws_eps: 1e-5,
            momentum: 0.1,
            moving_speed: 0.1,
            local_estimates: false,
            singularity: SingularityThresholds::default(),
        }
    }
}

/// Builds convs and norms from a [`NormConfig`]; every layer it builds shares
/// one [`MovingSpeed`], one [`Diagnostics`] handle and one [`FoldSwitch`].
#[derive(Clone, Debug)]
pub struct LayerFactory {
    spec: LayerSpec,
    config: NormConfig,
    speed: MovingSpeed,
    diagnostics: Diagnostics,
    folding: FoldSwitch,
}

impl LayerFactory {
    /// A factory for `config`; fails on an unknown spec or bad numbers.
    pub fn new(config: &NormConfig) -> Result<Self> {
        let spec: LayerSpec = config.spec.parse()?;
        let bad = |msg: String| Error::Spec {
            spec: config.spec.clone(),
            msg,
        };
        if config.groups == 0 {
            return Err(bad("groups must be at least 1".into()));
        }
        if !(config.eps >= 0.0 && config.ws_eps >= 0.0) {
            return Err(bad(format!(
                "eps ({}) and ws_eps ({}) must be >= 0",
                config.eps, config.ws_eps
            )));
        }
        if !(0.0..=1.0).contains(&config.momentum) {
            return Err(bad(format!(
                "momentum ({}) must lie in [0, 1]",
                config.momentum
            )));
        }
        let speed = MovingSpeed::new(0.0);
        speed.set(config.moving_speed)?;
        Ok(Self {
            spec,
            config: config.clone(),
            speed,
            diagnostics: Diagnostics::new(config.singularity),
            folding: FoldSwitch::default(),
        })
    }

    /// A factory for a spec string with every other option at its default.
    pub fn from_spec(spec: &str) -> Result<Self> {
        Self::new(&NormConfig {
            spec: spec.to_string(),
            ..NormConfig::default()
        })
    }

    /// The parsed spec.
    pub fn spec(&self) -> LayerSpec {
        self.spec
    }

    /// The config the factory was built from.
    pub fn config(&self) -> &NormConfig {
        &self.config
    }

    /// The moving speed of every estimated-BN layer built here.
    pub fn moving_speed(&self) -> &MovingSpeed {
        &self.speed
    }

    /// Whether this factory's layers keep per-rank state on purpose: estimated
    /// BN with [`NormConfig::local_estimates`], whose buffers a
    /// data-parallel engine must then leave alone.
    pub fn keeps_local_estimates(&self) -> bool {
        self.config.local_estimates && self.spec.norm == NormKind::BcnEst
    }

    /// Folds the WS convs built here while the returned guard lives: each
    /// standardizes its weight once, instead of on every call (see
    /// [`crate::folding`]). For evaluation and prediction only.
    pub fn fold_ws(&self) -> Folding<'_> {
        self.folding.begin()
    }

    /// The diagnostics handle of every layer built here.
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }

    /// The group count of a grouped norm (GN, BCN's group part) over
    /// `channels` channels: the largest divisor of `channels` that is at
    /// most the configured `groups`. Widths that the configured count does
    /// not divide (R(2+1)D's 45-channel stem and 144-channel mid convs; 11
    /// and 36 at quarter width) keep their size, so every variant of a model
    /// has the same convolutions. A prime width below `groups` gets one
    /// group: a LayerNorm.
    pub fn groups_for(&self, channels: usize) -> usize {
        (1..=self.config.groups.min(channels).max(1))
            .rev()
            .find(|g| channels.is_multiple_of(*g))
            .unwrap_or(1)
    }

    /// A normalization over `channels` channels, per the spec.
    pub fn norm(&self, channels: usize, vb: VarBuilder) -> Result<Norm> {
        let c = &self.config;
        let name = vb.prefix();
        let layer = match self.spec.norm {
            NormKind::None => NormLayer::Identity,
            NormKind::Bn => NormLayer::Batch(batch_norm(channels, c.eps, c.momentum, vb)?),
            NormKind::SyncBn => NormLayer::Batch(sync_batch_norm(channels, c.eps, c.momentum, vb)?),
            NormKind::Gn => {
                NormLayer::Group(group_norm(self.groups_for(channels), channels, c.eps, vb)?)
            }
            NormKind::Ln => NormLayer::Group(layer_norm(channels, c.eps, vb)?),
            NormKind::In => NormLayer::Group(instance_norm(channels, c.eps, vb)?),
            NormKind::Bcn | NormKind::BcnSync => NormLayer::BatchChannel(batch_channel_norm(
                self.groups_for(channels),
                channels,
                c.eps,
                BatchStatistics::Batch {
                    momentum: c.momentum,
                    synchronized: self.spec.norm == NormKind::BcnSync,
                },
                vb,
            )?),
            NormKind::BcnEst => NormLayer::BatchChannel(batch_channel_norm(
                self.groups_for(channels),
                channels,
                c.eps,
                BatchStatistics::Estimated {
                    speed: self.speed.clone(),
                    local: c.local_estimates,
                },
                vb,
            )?),
        };
        Ok(Norm::new(layer, &name, self.diagnostics.clone()))
    }

    /// A conv that a norm follows: the spec's weight mode, and a bias only
    /// when the spec has no norm (a norm's shift makes it redundant).
    /// `kernel` is `[kh, kw]` for 2D and `[kt, kh, kw]` for 3D.
    pub fn conv<const D: usize>(
        &self,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; D],
        geometry: ConvGeometry<D>,
        vb: VarBuilder,
    ) -> Result<Conv<D>>
    where
        ConvGeometry<D>: ConvOp,
    {
        let config = ConvConfig {
            kernel,
            geometry,
            bias: self.spec.norm == NormKind::None,
            mode: self.spec.conv,
            ws_eps: self.config.ws_eps,
            init: WeightInit::default(),
        };
        Ok(conv(in_channels, out_channels, config, vb)?
            .with_diagnostics(self.diagnostics.clone())
            .with_folding(self.folding.clone()))
    }

    /// [`LayerFactory::conv`] under `vb_conv`, then [`LayerFactory::norm`]
    /// of its `out_channels` under `vb_norm` (built in that order).
    pub fn conv_norm<const D: usize>(
        &self,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; D],
        geometry: ConvGeometry<D>,
        vb_conv: VarBuilder,
        vb_norm: VarBuilder,
    ) -> Result<ConvNorm<D>>
    where
        ConvGeometry<D>: ConvOp,
    {
        let conv = self.conv(in_channels, out_channels, kernel, geometry, vb_conv)?;
        Ok(ConvNorm::new(conv, self.norm(out_channels, vb_norm)?))
    }
}
