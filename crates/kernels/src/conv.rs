//! Convolution on the CPU as its own op: vol2col + GEMM forward, and a
//! backward pass of two GEMMs (weight gradient against the column buffer,
//! input gradient through col2vol), instead of candle's `conv2d` whose input
//! gradient goes through a direct-loop `conv_transpose2d` (5-9x slower than
//! PyTorch here). Written by hand because no crate offers a differentiable
//! CPU convolution for candle; the GEMMs are the `gemm` crate's, which
//! candle's own matmul uses.
//!
//! 2D is the 3D case with `T = kt = 1`. For sample `n`, group `g`, with
//! `K = C/g kt kh kw` and `L = To Ho Wo`:
//!
//! ```text
//! cols (K, L)  = vol2col(x[n, g])                  (zeros where padding)
//! y[n, g]      = W[g] (O/g, K) cols                 forward
//! dW[g]       += dy[n, g] cols^T                    weight gradient
//! dx[n, g]    += col2vol(W[g]^T dy[n, g])           input gradient
//! ```
//!
//! A 1x1x1 convolution with unit stride and no padding uses `x[n, g]` as
//! `cols` directly (no copy). Column building and col2vol are split over
//! channels on rayon's threads, the GEMMs use candle's thread count.

use crate::conv_geometry::{Geometry, Pass};
use crate::profile::{Direction, Kind, Span};
use crate::slice::contiguous;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

impl Geometry {
    fn in_volume(&self) -> usize {
        self.input.iter().product()
    }

    fn shape(&self, channels: usize, spatial: [usize; 3]) -> Shape {
        if self.is_2d {
            Shape::from((self.n, channels, spatial[1], spatial[2]))
        } else {
            Shape::from((self.n, channels, spatial[0], spatial[1], spatial[2]))
        }
    }

    fn weight_shape(&self) -> Shape {
        let [kt, kh, kw] = self.kernel;
        let cg = self.c / self.groups;
        if self.is_2d {
            Shape::from((self.o, cg, kh, kw))
        } else {
            Shape::from((self.o, cg, kt, kh, kw))
        }
    }

    /// Valid output range `[lo, hi)` along one axis for kernel tap `tap`:
    /// the outputs whose input index `o s + tap d - p` lies in `0..extent`.
    fn valid(&self, axis: usize, tap: usize) -> (usize, usize) {
        let (s, p, d) = (self.stride[axis], self.padding[axis], self.dilation[axis]);
        let off = (tap * d) as isize - p as isize;
        let extent = self.input[axis] as isize;
        let out = self.output[axis] as isize;
        let lo = if off >= 0 {
            0
        } else {
            (-off + s as isize - 1) / s as isize
        };
        let hi = ((extent - off + s as isize - 1) / s as isize).clamp(0, out);
        (lo.min(hi) as usize, hi as usize)
    }

    /// The row segments that kernel tap `tap` (flat over `kt kh kw`) links:
    /// calls `f(input_start, output_start, len)` for each, where input
    /// `input_start + q sw` (in one channel's `T H W` volume) feeds output
    /// `output_start + q` (in the tap's `To Ho Wo` row), `q < len`. A tap
    /// that reads only padding on some axis (e.g. a dilation wider than the
    /// input) has none.
    fn tap_rows(&self, tap: usize, mut f: impl FnMut(usize, usize, usize)) {
        let [_, kh, kw] = self.kernel;
        let [_, ih, iw] = self.input;
        let [_, ho, wo] = self.output;
        let (i, j, k) = (tap / (kh * kw), tap / kw % kh, tap % kw);
        let (t_lo, t_hi) = self.valid(0, i);
        let (h_lo, h_hi) = self.valid(1, j);
        let (w_lo, w_hi) = self.valid(2, k);
        if t_lo >= t_hi || h_lo >= h_hi || w_lo >= w_hi {
            return;
        }
        let iw0 = w_lo * self.stride[2] + k * self.dilation[2] - self.padding[2];
        for ot in t_lo..t_hi {
            let it = ot * self.stride[0] + i * self.dilation[0] - self.padding[0];
            for oh in h_lo..h_hi {
                let ihh = oh * self.stride[1] + j * self.dilation[1] - self.padding[1];
                f(
                    (it * ih + ihh) * iw + iw0,
                    (ot * ho + oh) * wo + w_lo,
                    w_hi - w_lo,
                );
            }
        }
    }
}

/// Fills `cols` (K x L, row-major) from one group's input `x` (C/g x T x H x W).
fn vol2col<T: WithDType>(g: &Geometry, x: &[T], cols: &mut [T]) {
    let taps = g.kernel.iter().product::<usize>();
    let (in_vol, sw) = (g.in_volume(), g.stride[2]);
    cols.par_chunks_mut(g.l())
        .enumerate()
        .for_each(|(row, dst)| {
            let (c, tap) = (row / taps, row % taps);
            let src = &x[c * in_vol..(c + 1) * in_vol];
            dst.fill(T::zero());
            g.tap_rows(tap, |si, di, len| {
                let out = &mut dst[di..di + len];
                if sw == 1 {
                    out.copy_from_slice(&src[si..si + len]);
                } else {
                    for (q, v) in out.iter_mut().enumerate() {
                        *v = src[si + q * sw];
                    }
                }
            });
        });
}

/// Adds the columns `cols` (K x L) back into one group's input gradient
/// `dx` (C/g x T x H x W): the adjoint of [`vol2col`].
fn col2vol<T: WithDType>(g: &Geometry, cols: &[T], dx: &mut [T]) {
    let taps = g.kernel.iter().product::<usize>();
    let (l, sw) = (g.l(), g.stride[2]);
    dx.par_chunks_mut(g.in_volume())
        .enumerate()
        .for_each(|(c, dst)| {
            for tap in 0..taps {
                let src = &cols[(c * taps + tap) * l..(c * taps + tap + 1) * l];
                g.tap_rows(tap, |si, di, len| {
                    for q in 0..len {
                        dst[si + q * sw] += src[di + q];
                    }
                });
            }
        });
}

/// Row-major matrix view: pointer, rows, cols, and strides.
#[derive(Clone, Copy)]
struct Mat<T> {
    ptr: *const T,
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl<T> Mat<T> {
    fn new(s: &[T], rows: usize, cols: usize) -> Self {
        debug_assert!(s.len() >= rows * cols);
        Self {
            ptr: s.as_ptr(),
            rows,
            cols,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// `dst (m x n, row-major) = [dst +] a (m x k) b (k x n)`.
fn matmul<T: WithDType>(dst: &mut [T], a: Mat<T>, b: Mat<T>, accumulate: bool) {
    assert_eq!(a.cols, b.rows, "matmul inner dimensions");
    assert!(dst.len() >= a.rows * b.cols, "matmul destination size");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    // As many threads as the calling rayon pool has: a comparison job's
    // share of the cores (`crate::threads`).
    let pool = rayon::current_num_threads();
    let threads = if pool > 1 && m * n * k > 4096 {
        gemm::Parallelism::Rayon(pool)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `dst` holds at least m x n elements (asserted); `a` and `b`
    // were built by `Mat::new` from slices of at least rows x cols elements
    // (or are transposed views of such), and their strides stay inside them.
    // T is f32 or f64 (the ops below reject other dtypes), which gemm
    // supports. The three buffers do not overlap: `dst` is borrowed mutably.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.ptr,
            a.col_stride,
            a.row_stride,
            b.ptr,
            b.col_stride,
            b.row_stride,
            T::one(),
            T::one(),
            false,
            false,
            false,
            threads,
        )
    }
}

/// Evaluates `$body` with `$a`, `$b` bound to the two inputs' contiguous
/// f32 (or f64) slices, wrapping the resulting `Vec` back into a storage.
macro_rules! dispatch {
    ($s1:expr, $l1:expr, $s2:expr, $l2:expr, |$a:ident, $b:ident| $body:expr) => {
        match ($s1, $s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => {
                let ($a, $b): (&[f32], &[f32]) = (
                    contiguous("cpu conv", $s1, $l1)?,
                    contiguous("cpu conv", $s2, $l2)?,
                );
                CpuStorage::F32($body)
            }
            (CpuStorage::F64(_), CpuStorage::F64(_)) => {
                let ($a, $b): (&[f64], &[f64]) = (
                    contiguous("cpu conv", $s1, $l1)?,
                    contiguous("cpu conv", $s2, $l2)?,
                );
                CpuStorage::F64($body)
            }
            _ => candle_core::bail!("cpu conv: f32 or f64 inputs of one dtype expected"),
        }
    };
}

/// One group of sample `n`: its input slice and its columns.
fn columns<'a, T: WithDType>(
    g: &Geometry,
    x: &'a [T],
    n: usize,
    grp: usize,
    cols: &'a mut [T],
) -> Mat<T> {
    let cg = g.c / g.groups;
    let xs = &x[(n * g.c + grp * cg) * g.in_volume()..][..cg * g.in_volume()];
    if g.is_pointwise() {
        Mat::new(xs, g.k(), g.l())
    } else {
        vol2col(g, xs, cols);
        Mat::new(cols, g.k(), g.l())
    }
}

fn column_buffer<T: WithDType>(g: &Geometry) -> Vec<T> {
    if g.is_pointwise() {
        vec![]
    } else {
        vec![T::zero(); g.k() * g.l()]
    }
}

fn forward<T: WithDType>(g: &Geometry, x: &[T], w: &[T]) -> Vec<T> {
    let (k, l, og) = (g.k(), g.l(), g.o / g.groups);
    let mut y = vec![T::zero(); g.n * g.o * l];
    let mut cols = column_buffer(g);
    for n in 0..g.n {
        for grp in 0..g.groups {
            let rhs = columns(g, x, n, grp, &mut cols);
            let ws = Mat::new(&w[grp * og * k..(grp + 1) * og * k], og, k);
            matmul(&mut y[(n * g.o + grp * og) * l..][..og * l], ws, rhs, false);
        }
    }
    y
}

fn weight_grad<T: WithDType>(g: &Geometry, x: &[T], dy: &[T]) -> Vec<T> {
    let (k, l, og) = (g.k(), g.l(), g.o / g.groups);
    let mut dw = vec![T::zero(); g.o * k];
    let mut cols = column_buffer(g);
    for n in 0..g.n {
        for grp in 0..g.groups {
            let cols_t = columns(g, x, n, grp, &mut cols).t();
            let dys = Mat::new(&dy[(n * g.o + grp * og) * l..][..og * l], og, l);
            matmul(
                &mut dw[grp * og * k..(grp + 1) * og * k],
                dys,
                cols_t,
                n > 0,
            );
        }
    }
    dw
}

fn input_grad<T: WithDType>(g: &Geometry, dy: &[T], w: &[T]) -> Vec<T> {
    let (k, l, og, cg) = (g.k(), g.l(), g.o / g.groups, g.c / g.groups);
    let mut dx = vec![T::zero(); g.n * g.c * g.in_volume()];
    let mut dcols = vec![T::zero(); if g.is_pointwise() { 0 } else { k * l }];
    for n in 0..g.n {
        for grp in 0..g.groups {
            let w_t = Mat::new(&w[grp * og * k..(grp + 1) * og * k], og, k).t();
            let dys = Mat::new(&dy[(n * g.o + grp * og) * l..][..og * l], og, l);
            let dxs = &mut dx[(n * g.c + grp * cg) * g.in_volume()..][..cg * g.in_volume()];
            if g.is_pointwise() {
                matmul(dxs, w_t, dys, false);
            } else {
                matmul(&mut dcols, w_t, dys, false);
                col2vol(g, &dcols, dxs);
            }
        }
    }
    dx
}

/// The convolution op: the forward pass, and its two gradient passes used
/// by the forward's backward. With `onednn`, f32 passes run through oneDNN
/// (`onednn.rs`), f64 ones (which oneDNN lacks) through the GEMM lowering.
pub struct CpuConv {
    geometry: Geometry,
    pass: Pass,
    onednn: bool,
}

impl CpuConv {
    /// The differentiable forward op `(x, w) -> y`.
    pub fn forward(geometry: Geometry, onednn: bool) -> Self {
        Self {
            geometry,
            pass: Pass::Forward,
            onednn,
        }
    }
}

impl CustomOp2 for CpuConv {
    fn name(&self) -> &'static str {
        match self.pass {
            Pass::Forward => "cpu-conv",
            Pass::InputGrad => "cpu-conv-input-grad",
            Pass::WeightGrad => "cpu-conv-weight-grad",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let _span = (self.pass == Pass::Forward).then(|| Span::new(Direction::Forward, Kind::Conv));
        let g = &self.geometry;
        let shape = match self.pass {
            Pass::Forward => g.shape(g.o, g.output),
            Pass::InputGrad => g.shape(g.c, g.input),
            Pass::WeightGrad => g.weight_shape(),
        };
        if let (true, CpuStorage::F32(_), CpuStorage::F32(_)) = (self.onednn, s1, s2) {
            let (a, b) = (
                contiguous("cpu conv", s1, l1)?,
                contiguous("cpu conv", s2, l2)?,
            );
            let out = crate::onednn::run(g, self.pass, a, b, shape.elem_count())?;
            return Ok((CpuStorage::F32(out), shape));
        }
        let storage = match self.pass {
            Pass::Forward => dispatch!(s1, l1, s2, l2, |x, w| forward(g, x, w)),
            Pass::InputGrad => dispatch!(s1, l1, s2, l2, |dy, w| input_grad(g, dy, w)),
            Pass::WeightGrad => dispatch!(s1, l1, s2, l2, |x, dy| weight_grad(g, x, dy)),
        };
        Ok((storage, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        if self.pass != Pass::Forward {
            candle_core::bail!("{}: no second-order gradients", self.name());
        }
        let _span = Span::new(Direction::Backward, Kind::Conv);
        let dy = dy.contiguous()?;
        let pass = |pass| CpuConv {
            geometry: self.geometry,
            pass,
            onednn: self.onednn,
        };
        // A gradient nobody asked for is not computed: the input of a
        // network's first convolution (the images) is neither a variable
        // nor the result of a tracked op, and its gradient, the dearest pass
        // of a small video model's step (R3D-10's 3x7x7 stem on 4x32x32
        // clips: 0.54 ms of a 2.7 ms step), would be dropped by candle.
        let dx = match x.track_op() {
            true => Some(dy.apply_op2_no_bwd(w, &pass(Pass::InputGrad))?),
            false => None,
        };
        let dw = match w.track_op() {
            true => Some(x.apply_op2_no_bwd(&dy, &pass(Pass::WeightGrad))?),
            false => None,
        };
        Ok((dx, dw))
    }
}
