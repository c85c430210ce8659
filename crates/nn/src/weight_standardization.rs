//! Weight Standardization of a conv kernel.
//!
//! Qiao et al., "Micro-Batch Training with Batch-Channel Normalization and
//! Weight Standardization" (arXiv 1903.10520); official code
//! `joe-siyuan-qiao/WeightStandardization` and `.../Batch-Channel-Normalization`.
//!
//! For a kernel `W: (O, C/g, k...)` and each output channel `i`, over its
//! `I = C/g * prod(k)` fan-in elements, with `c = W[i] - mean_j W[i, j]`:
//!
//! ```text
//! ws          (default, timm-like):  W_hat = c / s,  s = sqrt(sum c^2 / I + eps)
//! ws-unbiased (official BCN code):   W_hat = c / s,  s = sqrt(sum c^2 / (I - 1) + eps)
//! ws-std-eps  (first release, mmcv): W_hat = c / s,  s = sqrt(sum c^2 / (I - 1)) + eps
//! ```
//!
//! A fan-in `I` of 1 is an error in every variant: the row would
//! standardize to 0 with a zero gradient, or divide by zero.
//!
//! Gradients flow through the mean and the variance. With `g = dL/dW_hat`:
//!
//! ```text
//! dL/dW = (g - mean(g) - k <g, W_hat> W_hat) / s,
//! k = 1/I (ws),  1/(I - 1) (ws-unbiased),  s / (sigma (I - 1)) (ws-std-eps, sigma = s - eps)
//! ```
//!
//! On the CPU, [`standardize`] runs that forward and backward as one fused
//! op (a pass over each row, `wsbcn-kernels`' `ws`), because candle's composite version costs about
//! 1 ms of small-tensor backward ops per 3x3 64->64 kernel, 3-5% of the
//! conv itself. Other devices, and dtypes other than f32/f64, use
//! [`standardize_composite`], built from candle ops; the tests hold the two
//! to each other.

use crate::{Error, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use wsbcn_kernels::ws::{standardize_rows, RowScale};

/// How a conv layer turns its parameter `W` into the kernel it convolves with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightMode {
    /// The kernel is `W` itself.
    #[default]
    Plain,
    /// WS with the biased variance, eps inside the sqrt (the suite's default).
    Ws,
    /// WS with the unbiased variance, eps inside the sqrt (official BCN code).
    WsUnbiased,
    /// WS as `(W - mu) / (std_unbiased + eps)` (first release, mmcv `ConvWS`).
    WsStdEps,
}

impl WeightMode {
    /// Every mode with its config name.
    pub const ALL: [(&'static str, WeightMode); 4] = [
        ("plain", WeightMode::Plain),
        ("ws", WeightMode::Ws),
        ("ws-unbiased", WeightMode::WsUnbiased),
        ("ws-std-eps", WeightMode::WsStdEps),
    ];

    /// The config name of this mode (`"ws-unbiased"`).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(n, _)| *n)
            .unwrap_or("plain")
    }

    /// True for the three WS variants.
    pub fn is_ws(self) -> bool {
        self != WeightMode::Plain
    }
}

fn fan_in_checked(w: &Tensor, mode: WeightMode) -> Result<(usize, usize)> {
    let o = w.dim(0)?;
    let fan_in = w.elem_count() / o.max(1);
    if mode == WeightMode::Plain {
        return Err(Error::config(
            "weight standardization",
            "mode `plain` has no standardization",
        ));
    }
    // A row of one weight standardizes to 0 with a zero gradient (biased
    // variance) or divides by zero (unbiased): the layer could never learn.
    if fan_in < 2 {
        return Err(Error::config(
            "weight standardization",
            format!("{} needs a fan-in of at least 2, got {fan_in}", mode.name()),
        ));
    }
    Ok((o, fan_in))
}

/// `W_hat` for `w: (O, ...)`, contiguous and shaped like `w`.
pub fn standardize(w: &Tensor, mode: WeightMode, eps: f64) -> Result<Tensor> {
    fan_in_checked(w, mode)?;
    let fused = w.device().is_cpu()
        && matches!(w.dtype(), candle_core::DType::F32 | candle_core::DType::F64);
    if fused {
        let scale = match mode {
            WeightMode::WsUnbiased => RowScale::Unbiased,
            WeightMode::WsStdEps => RowScale::StdEps,
            _ => RowScale::Biased,
        };
        Ok(standardize_rows(w, scale, eps)?)
    } else {
        Ok(standardize_composite(w, mode, eps)?.0)
    }
}

/// `(W_hat, s)` from candle ops on any device: `W_hat` contiguous and shaped
/// like `w: (O, ...)`, `s: (O, 1)` the divisor of each row.
pub fn standardize_composite(w: &Tensor, mode: WeightMode, eps: f64) -> Result<(Tensor, Tensor)> {
    let (o, fan_in) = fan_in_checked(w, mode)?;
    let flat = w.reshape((o, fan_in))?;
    let centered = flat.broadcast_sub(&flat.mean_keepdim(1)?)?;
    let sum_sq = centered.sqr()?.sum_keepdim(1)?;
    let unbiased = 1.0 / (fan_in - 1) as f64;
    let s = match mode {
        WeightMode::Ws => sum_sq.affine(1.0 / fan_in as f64, eps)?.sqrt()?,
        WeightMode::WsUnbiased => sum_sq.affine(unbiased, eps)?.sqrt()?,
        _ => sum_sq.affine(unbiased, 0.0)?.sqrt()?.affine(1.0, eps)?,
    };
    let w_hat = centered
        .broadcast_div(&s)?
        .reshape(w.shape())?
        .contiguous()?;
    Ok((w_hat, s))
}
