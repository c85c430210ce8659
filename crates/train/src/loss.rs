//! Losses of the training tasks.
//!
//! * [`pixel_cross_entropy`]: segmentation, logits `(N, K, H, W)` and
//!   targets `(N, H, W)` with an ignore index; the mean over non-ignored
//!   pixels, weighted as PyTorch does with class weights:
//!   `L = -sum_p w[t_p] log softmax(z_p)[t_p] / sum_p w[t_p]`.
//!   A batch whose every pixel is ignored gives `L = 0` with zero gradients
//!   (PyTorch returns NaN there).
//! * [`cross_entropy`]: classification, logits `(N, K)`, targets `(N,)`, with
//!   label smoothing `eps`: the target distribution is
//!   `(1 - eps) onehot + eps / K`, so
//!   `L = mean_n [(1 - eps) (-log p[t_n]) + eps mean_k (-log p[k])]`.

use crate::{Error, Result};
use candle_core::{DType, Tensor, D};
use candle_nn::ops::log_softmax;
use std::sync::Arc;
use wsbcn_kernels::PixelCrossEntropy;

/// Checks the targets against the class count, ignoring `ignore`; the
/// targets as `u32`, as a tensor and flattened on the host.
fn check_targets(
    target: &Tensor,
    classes: usize,
    ignore: Option<u32>,
) -> Result<(Tensor, Vec<u32>)> {
    let t = target.to_dtype(DType::U32)?;
    let values: Vec<u32> = t.flatten_all()?.to_vec1()?;
    if let Some(bad) = values
        .iter()
        .find(|&&v| v as usize >= classes && Some(v) != ignore)
    {
        return Err(Error::Invalid(format!(
            "target class {bad} is outside 0..{classes}{}",
            ignore.map_or(String::new(), |i| format!(
                " and is not the ignore index {i}"
            ))
        )));
    }
    Ok((t, values))
}

/// Per-pixel cross-entropy (see the module docs). `logits: (N, K, H, W)`,
/// `target: (N, H, W)` of class indices (any integer dtype), `weight: (K,)`.
pub fn pixel_cross_entropy(
    logits: &Tensor,
    target: &Tensor,
    ignore_index: u32,
    weight: Option<&Tensor>,
) -> Result<Tensor> {
    let (n, k, h, w) = logits.dims4()?;
    if target.dims() != [n, h, w] {
        return Err(Error::Invalid(format!(
            "pixel cross-entropy: logits {:?} need targets ({n}, {h}, {w}), got {:?}",
            logits.dims(),
            target.dims()
        )));
    }
    let (t, values) = check_targets(target, k, Some(ignore_index))?;
    let on_cpu = logits.device().is_cpu() && matches!(logits.dtype(), DType::F32 | DType::F64);
    if on_cpu {
        return pixel_cross_entropy_cpu(logits, values, ignore_index, weight);
    }
    let valid = t.ne(ignore_index)?;
    let safe = valid.where_cond(&t, &t.zeros_like()?)?;
    let log_p = log_softmax(logits, 1)?
        .gather(&safe.unsqueeze(1)?, 1)?
        .squeeze(1)?;
    let mut pixel_w = valid.to_dtype(logits.dtype())?;
    if let Some(cw) = weight {
        if cw.dims() != [k] {
            return Err(class_weight_error(k, weight));
        }
        let per_pixel = cw
            .to_dtype(logits.dtype())?
            .index_select(&safe.flatten_all()?, 0)?
            .reshape((n, h, w))?;
        pixel_w = (pixel_w * per_pixel)?;
    }
    let denom = pixel_w
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    if denom == 0.0 {
        return all_ignored(logits);
    }
    Ok(((log_p * pixel_w)?.sum_all()? * (-1.0 / denom))?)
}

/// The loss of a batch whose every pixel is ignored: zero, with zero
/// gradients. A product with zeros, not `* 0.0`: candle prunes a zero
/// affine from the graph, and the caller expects zero gradients, not none.
fn all_ignored(logits: &Tensor) -> Result<Tensor> {
    Ok((logits * logits.zeros_like()?)?.sum_all()?)
}

fn class_weight_error(k: usize, weight: Option<&Tensor>) -> Error {
    Error::Invalid(format!(
        "pixel cross-entropy: class weights must be ({k},), got {:?}",
        weight.map_or(vec![], |w| w.dims().to_vec())
    ))
}

/// [`pixel_cross_entropy`] through the one-pass CPU op of
/// `wsbcn-kernels`' [`PixelCrossEntropy`], for targets already checked.
fn pixel_cross_entropy_cpu(
    logits: &Tensor,
    targets: Vec<u32>,
    ignore_index: u32,
    weight: Option<&Tensor>,
) -> Result<Tensor> {
    let (n, k, h, w) = logits.dims4()?;
    let class_w: Vec<f64> = match weight {
        Some(cw) => cw.to_dtype(DType::F64)?.to_vec1()?,
        None => vec![1.0; k],
    };
    if class_w.len() != k {
        return Err(class_weight_error(k, weight));
    }
    let mut coef: Vec<f64> = targets
        .iter()
        .map(|&t| {
            if t == ignore_index {
                0.0
            } else {
                class_w[t as usize]
            }
        })
        .collect();
    let denom: f64 = coef.iter().sum();
    if denom == 0.0 {
        return all_ignored(logits);
    }
    coef.iter_mut().for_each(|a| *a /= denom);
    let op = PixelCrossEntropy {
        dims: (n, k, h * w),
        targets: Arc::new(targets),
        coef: Arc::new(coef),
    };
    Ok(logits.contiguous()?.apply_op1(op)?)
}

/// Classification cross-entropy with label smoothing `eps` in `[0, 1]`.
/// `logits: (N, K)`, `target: (N,)`.
pub fn cross_entropy(logits: &Tensor, target: &Tensor, label_smoothing: f64) -> Result<Tensor> {
    let (n, k) = logits.dims2()?;
    if target.dims() != [n] || !(0.0..=1.0).contains(&label_smoothing) {
        return Err(Error::Invalid(format!(
            "cross-entropy: logits {:?} need targets ({n},) and smoothing in [0, 1], got {:?} and {label_smoothing}",
            logits.dims(),
            target.dims()
        )));
    }
    let (t, _) = check_targets(target, k, None)?;
    let log_p = log_softmax(logits, D::Minus1)?;
    let nll = log_p.gather(&t.unsqueeze(1)?, 1)?.neg()?.mean_all()?;
    if label_smoothing == 0.0 {
        return Ok(nll);
    }
    let uniform = log_p.neg()?.mean_all()?;
    Ok(((nll * (1.0 - label_smoothing))? + (uniform * label_smoothing)?)?)
}
