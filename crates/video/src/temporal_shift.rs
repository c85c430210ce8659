//! The temporal shift module of TSM (Lin et al., *TSM: Temporal Shift
//! Module for Efficient Video Understanding*, ICCV 2019).
//!
//! For `x: (N, C, T, H, W)` and `fold = C / shift_div`:
//!
//! ```text
//! y[:, 0..fold,       t] = x[:, 0..fold,       t + 1]   (0 at t = T-1)
//! y[:, fold..2 fold,  t] = x[:, fold..2 fold,  t - 1]   (0 at t = 0)
//! y[:, 2 fold..C,     t] = x[:, 2 fold..C,     t]
//! ```
//!
//! one channel slice pulled from the next frame, one from the previous,
//! zero-padded at the clip's ends; a pure data movement, so its gradient
//! is the opposite shift. Built from `narrow` and `cat`, which candle
//! differentiates.

use crate::{Error, Result};
use candle_core::Tensor;

/// `x` shifted along time as in TSM (see the module docs).
pub fn temporal_shift(x: &Tensor, shift_div: usize) -> Result<Tensor> {
    let (n, c, t, h, w) = x.dims5()?;
    if shift_div < 2 {
        return Err(Error::Config(format!(
            "temporal shift: shift_div {shift_div} must be at least 2"
        )));
    }
    let fold = c / shift_div;
    if fold == 0 || t < 2 {
        return Ok(x.clone());
    }
    let zeros = Tensor::zeros((n, fold, 1, h, w), x.dtype(), x.device())?;
    let from_next = Tensor::cat(&[&x.narrow(1, 0, fold)?.narrow(2, 1, t - 1)?, &zeros], 2)?;
    let from_prev = Tensor::cat(&[&zeros, &x.narrow(1, fold, fold)?.narrow(2, 0, t - 1)?], 2)?;
    let rest = x.narrow(1, 2 * fold, c - 2 * fold)?;
    Ok(Tensor::cat(&[&from_next, &from_prev, &rest], 1)?)
}
