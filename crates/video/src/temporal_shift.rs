//! The temporal shift module of TSM (Lin et al., *TSM: Temporal Shift
//! Module for Efficient Video Understanding*, ICCV 2019).
//!
//! TSM is a 2D network on the frames of `N` clips of `T` frames each,
//! `x: (N T, C, H, W)` (clip-major). Viewed as `(N, T, C, H, W)`, with
//! `fold = C / shift_div`:
//!
//! ```text
//! y[:, t, 0..fold]       = x[:, t + 1, 0..fold]        (0 at t = T-1)
//! y[:, t, fold..2 fold]  = x[:, t - 1, fold..2 fold]   (0 at t = 0)
//! y[:, t, 2 fold..C]     = x[:, t, 2 fold..C]
//! ```
//!
//! one channel slice pulled from the next frame, one from the previous,
//! zero-padded at the clip's ends, as the official `TemporalShift.shift`
//! (a clip of one frame keeps only the unshifted channels);
//! a pure data movement, so its gradient is the opposite shift. Built from
//! `narrow` and `cat`, which candle differentiates (each `cat` copies its
//! slices in blocks).

use crate::{Error, Result};
use candle_core::Tensor;

/// The frames `x: (N T, C, H, W)` of clips of `frames` frames, shifted
/// along time as in TSM (see the module docs).
pub fn temporal_shift(x: &Tensor, frames: usize, shift_div: usize) -> Result<Tensor> {
    let (nt, c, h, w) = x.dims4()?;
    if shift_div < 2 {
        return Err(Error::Config(format!(
            "temporal shift: shift_div {shift_div} must be at least 2"
        )));
    }
    if frames == 0 || nt % frames != 0 {
        return Err(Error::Config(format!(
            "temporal shift: {nt} frames are not clips of {frames}"
        )));
    }
    let (n, t) = (nt / frames, frames);
    let fold = c / shift_div;
    if fold == 0 {
        return Ok(x.clone());
    }
    let x = x.reshape((n, t, c, h, w))?;
    let rest = x.narrow(2, 2 * fold, c - 2 * fold)?;
    if t == 1 {
        // Both shifted slices come from outside the clip.
        let zeros = Tensor::zeros((n, 1, 2 * fold, h, w), x.dtype(), x.device())?;
        return Ok(Tensor::cat(&[&zeros, &rest], 2)?.reshape((nt, c, h, w))?);
    }
    let zeros = Tensor::zeros((n, 1, fold, h, w), x.dtype(), x.device())?;
    let from_next = Tensor::cat(&[&x.narrow(2, 0, fold)?.narrow(1, 1, t - 1)?, &zeros], 1)?;
    let from_prev = Tensor::cat(&[&zeros, &x.narrow(2, fold, fold)?.narrow(1, 0, t - 1)?], 1)?;
    Ok(Tensor::cat(&[&from_next, &from_prev, &rest], 2)?.reshape((nt, c, h, w))?)
}
