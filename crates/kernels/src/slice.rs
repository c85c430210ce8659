//! Access to CPU storages for this crate's ops: contiguous slices, f64 lane
//! sums, the `float_op!` dispatch over f32 and f64; and [`fused_cpu_input`],
//! which callers ask before choosing a fused op.

use candle_core::{CpuStorage, DType, Layout, Tensor, WithDType};

/// Whether the fused CPU norm ops (this crate's, `wsbcn-nn`'s WS) take `x`: a non-empty f32 or f64
/// tensor on the CPU (their row passes need rows of at least one element).
pub fn fused_cpu_input(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) && x.elem_count() > 0
}

/// The contiguous elements of `storage` under `layout`, or an error naming
/// `op` when the tensor is strided.
pub(crate) fn contiguous<'a, T: WithDType>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&storage.as_slice::<T>()?[a..b]),
        None => candle_core::bail!("{op}: inputs must be contiguous"),
    }
}

/// The contiguous elements under `layout` of a storage's vector `v`, for
/// in-place ops, or an error naming `op` when the tensor is strided.
pub(crate) fn contiguous_mut<'a, T>(
    op: &str,
    v: &'a mut [T],
    layout: &Layout,
) -> candle_core::Result<&'a mut [T]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&mut v[a..b]),
        None => candle_core::bail!("{op}: the output must be contiguous"),
    }
}

/// `sum_i f(xs[i])` in eight running sums. One running sum is a chain of
/// dependent additions that the compiler may not reorder (a few cycles
/// each, and no vectorization); eight independent ones pipeline. Always
/// inlined, so that a caller compiled for AVX2 ([`with_avx2`]) vectorizes
/// it too.
#[inline(always)]
pub(crate) fn lane_sum<T: Copy>(xs: &[T], f: impl Fn(T) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let mut lanes = xs.chunks_exact(8);
    for c in &mut lanes {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    let rest: f64 = lanes.remainder().iter().map(|&x| f(x)).sum();
    acc.iter().sum::<f64>() + rest
}

/// `(sum_i d_i, sum_i d_i^2)` with `d_i = f(xs[i])`: both sums in one pass,
/// each in eight running sums as [`lane_sum`].
#[inline(always)]
pub(crate) fn lane_sum_sq<T: Copy>(xs: &[T], f: impl Fn(T) -> f64) -> (f64, f64) {
    let (mut s1, mut s2) = ([0f64; 8], [0f64; 8]);
    let mut lanes = xs.chunks_exact(8);
    for c in &mut lanes {
        for ((a, q), &x) in s1.iter_mut().zip(s2.iter_mut()).zip(c) {
            let d = f(x);
            *a += d;
            *q += d * d;
        }
    }
    let (mut r1, mut r2) = (0f64, 0f64);
    for &x in lanes.remainder() {
        let d = f(x);
        r1 += d;
        r2 += d * d;
    }
    (s1.iter().sum::<f64>() + r1, s2.iter().sum::<f64>() + r2)
}

/// `sum_i f(xs[i], ys[i])` over two equally long slices, as [`lane_sum`].
#[inline(always)]
pub(crate) fn lane_sum2<T: Copy, U: Copy>(xs: &[T], ys: &[U], f: impl Fn(T, U) -> f64) -> f64 {
    let mut acc = [0f64; 8];
    let (mut xl, mut yl) = (xs.chunks_exact(8), ys.chunks_exact(8));
    for (cx, cy) in (&mut xl).zip(&mut yl) {
        for (a, (&x, &y)) in acc.iter_mut().zip(cx.iter().zip(cy)) {
            *a += f(x, y);
        }
    }
    let rest: f64 = xl
        .remainder()
        .iter()
        .zip(yl.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    acc.iter().sum::<f64>() + rest
}

/// Runs a kernel generic over the element type on the contiguous elements of
/// one or two f32 (or f64) CPU storages, giving a storage of the same type:
/// `float_op!(name, (s, l), |x| kernel(x))` or
/// `float_op!(name, (s1, l1), (s2, l2), |a, b| kernel(a, b))` (and three
/// storages alike). Other types
/// (and mixed ones) are an error naming `name`.
macro_rules! float_op {
    ($name:expr, ($s:expr, $l:expr), |$x:ident| $body:expr) => {
        match $s {
            candle_core::CpuStorage::F32(_) => {
                let $x = $crate::slice::contiguous::<f32>($name, $s, $l)?;
                candle_core::CpuStorage::F32($body)
            }
            candle_core::CpuStorage::F64(_) => {
                let $x = $crate::slice::contiguous::<f64>($name, $s, $l)?;
                candle_core::CpuStorage::F64($body)
            }
            _ => candle_core::bail!("{}: f32 or f64 only", $name),
        }
    };
    ($name:expr, ($s1:expr, $l1:expr), ($s2:expr, $l2:expr), |$a:ident, $b:ident| $body:expr) => {
        match ($s1, $s2) {
            (candle_core::CpuStorage::F32(_), candle_core::CpuStorage::F32(_)) => {
                let $a = $crate::slice::contiguous::<f32>($name, $s1, $l1)?;
                let $b = $crate::slice::contiguous::<f32>($name, $s2, $l2)?;
                candle_core::CpuStorage::F32($body)
            }
            (candle_core::CpuStorage::F64(_), candle_core::CpuStorage::F64(_)) => {
                let $a = $crate::slice::contiguous::<f64>($name, $s1, $l1)?;
                let $b = $crate::slice::contiguous::<f64>($name, $s2, $l2)?;
                candle_core::CpuStorage::F64($body)
            }
            _ => candle_core::bail!("{}: f32 or f64 only (both operands alike)", $name),
        }
    };
    ($name:expr, ($s1:expr, $l1:expr), ($s2:expr, $l2:expr), ($s3:expr, $l3:expr), |$a:ident, $b:ident, $c:ident| $body:expr) => {
        match ($s1, $s2, $s3) {
            (
                candle_core::CpuStorage::F32(_),
                candle_core::CpuStorage::F32(_),
                candle_core::CpuStorage::F32(_),
            ) => {
                let $a = $crate::slice::contiguous::<f32>($name, $s1, $l1)?;
                let $b = $crate::slice::contiguous::<f32>($name, $s2, $l2)?;
                let $c = $crate::slice::contiguous::<f32>($name, $s3, $l3)?;
                candle_core::CpuStorage::F32($body)
            }
            (
                candle_core::CpuStorage::F64(_),
                candle_core::CpuStorage::F64(_),
                candle_core::CpuStorage::F64(_),
            ) => {
                let $a = $crate::slice::contiguous::<f64>($name, $s1, $l1)?;
                let $b = $crate::slice::contiguous::<f64>($name, $s2, $l2)?;
                let $c = $crate::slice::contiguous::<f64>($name, $s3, $l3)?;
                candle_core::CpuStorage::F64($body)
            }
            _ => candle_core::bail!("{}: f32 or f64 only (all operands alike)", $name),
        }
    };
}
pub(crate) use float_op;

/// Runs `f` compiled for AVX2 where the CPU has it, else as built (the
/// x86-64 baseline, two f64 per instruction). The arithmetic is the same
/// either way: Rust forms no fused multiply-adds, and the eight-lane sums
/// keep their order, so the results are bit-identical. What `f` calls must
/// be inlined into it (`#[inline(always)]`) to profit.
#[inline(always)]
pub(crate) fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { run(f) };
    }
    f()
}
