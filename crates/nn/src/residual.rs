//! The residual block of ResNets, 2D and 3D (basic, bottleneck, R(2+1)D and
//! TSM blocks are all this one shape):
//!
//! ```text
//! branch(u) = cn_k(relu(... relu(cn_1(u))))    a ReLU between consecutive conv-norms, none after the last
//! y         = relu(branch(u) + shortcut(x))    shortcut(x) = x, or a projection conv-norm (downsample)
//! ```
//!
//! with `u = x` ([`Residual::forward_t`]), or any tensor of `x`'s shape
//! ([`Residual::forward_split`]: TSM's residual shift feeds the branch a
//! time-shifted `x` and the shortcut `x` itself). Shapes: `x (N, C_in, [T,]
//! H, W)`, `y (N, C_out, [T',] H', W')`.

use crate::{relu, ConvGeometry, ConvNorm, ConvOp, Error, Result};
use candle_core::{ModuleT, Tensor};

/// A residual block (see the module docs).
#[derive(Clone, Debug)]
pub struct Residual<const D: usize> {
    branch: Vec<ConvNorm<D>>,
    shortcut: Option<ConvNorm<D>>,
}

impl<const D: usize> Residual<D>
where
    ConvGeometry<D>: ConvOp,
{
    /// The block of `branch` (at least one conv-norm) and an optional
    /// projection `shortcut`.
    pub fn new(branch: Vec<ConvNorm<D>>, shortcut: Option<ConvNorm<D>>) -> Result<Self> {
        if branch.is_empty() {
            return Err(Error::config(
                "residual block",
                "the branch needs at least one conv",
            ));
        }
        Ok(Self { branch, shortcut })
    }

    /// `relu(branch(x) + shortcut(x))`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_split(x, x, train)
    }

    /// `relu(branch(u) + shortcut(x))`, for a branch input `u` of `x`'s
    /// shape.
    pub fn forward_split(&self, u: &Tensor, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut y = u.clone();
        for (i, cn) in self.branch.iter().enumerate() {
            if i > 0 {
                y = relu(&y)?;
            }
            y = cn.forward_t(&y, train)?;
        }
        let shortcut = match &self.shortcut {
            Some(cn) => cn.forward_t(x, train)?,
            None => x.clone(),
        };
        Ok(relu(&(y + shortcut)?)?)
    }
}
