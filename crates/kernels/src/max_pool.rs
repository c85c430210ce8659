//! Max pooling as one CPU op with its own backward pass, for `wsbcn-nn`'s
//! `max_pool` on the CPU.
//!
//! Input `(N, C, T, H, W)` (2D pooling is `T = 1`, kernel 1), per-axis
//! kernel `k`, stride `s`, padding `p` (padding counts as `-inf`):
//!
//! ```text
//! y[n c t h w] = max over window (t s_t - p_t + i, h s_h - p_h + j, w s_w - p_w + l)
//! dx           = dy routed to the first maximum of each window (PyTorch's rule)
//! ```
//!
//! The composed form gathers `prod(k)` shifted copies of the input and
//! reduces them; this reads each window in place. A NaN in a window is its
//! maximum (the first NaN takes the gradient; PyTorch's CPU kernel gives it
//! to the last).

use crate::profile::{Direction, Kind, Span};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

/// The geometry of a max pooling over the last three axes.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool {
    /// Kernel `(k_t, k_h, k_w)`.
    pub kernel: [usize; 3],
    /// Stride.
    pub stride: [usize; 3],
    /// Padding on each side.
    pub padding: [usize; 3],
}

impl MaxPool {
    /// Output extent per axis for input extents `input`.
    fn output(&self, input: [usize; 3]) -> [usize; 3] {
        std::array::from_fn(|a| {
            (input[a] + 2 * self.padding[a] - self.kernel[a]) / self.stride[a] + 1
        })
    }

    /// The flat in-plane index of the first maximum of the window of output
    /// `o` (`None`: the window lies in the padding).
    fn argmax<T: WithDType>(&self, plane: &[T], input: [usize; 3], o: [usize; 3]) -> Option<usize> {
        let mut best: Option<(usize, T)> = None;
        let range = |a: usize| {
            let start = (o[a] * self.stride[a]) as isize - self.padding[a] as isize;
            let lo = start.max(0) as usize;
            let hi = ((start + self.kernel[a] as isize).max(0) as usize).min(input[a]);
            lo..hi
        };
        for t in range(0) {
            for h in range(1) {
                let row = (t * input[1] + h) * input[2];
                for w in range(2) {
                    let v = plane[row + w];
                    if v.to_f64().is_nan() {
                        // The first NaN wins: the output is NaN as in
                        // PyTorch (whose CPU kernel sends the gradient to the
                        // window's last NaN instead).
                        return Some(row + w);
                    }
                    if best.is_none_or(|(_, b)| v > b) {
                        best = Some((row + w, v));
                    }
                }
            }
        }
        best.map(|(i, _)| i)
    }

    fn forward<T: WithDType>(&self, x: &[T], input: [usize; 3]) -> Vec<T> {
        let out = self.output(input);
        let (plane_in, plane_out) = (input.iter().product(), out.iter().product::<usize>());
        let mut y = vec![T::zero(); x.len() / plane_in * plane_out];
        y.par_chunks_mut(plane_out)
            .zip(x.par_chunks(plane_in))
            .for_each(|(yp, xp)| {
                for (i, v) in yp.iter_mut().enumerate() {
                    let o = [i / (out[1] * out[2]), i / out[2] % out[1], i % out[2]];
                    // Windows are never all padding (the caller checks
                    // padding <= kernel / 2).
                    if let Some(j) = self.argmax(xp, input, o) {
                        *v = xp[j];
                    }
                }
            });
        y
    }

    fn backward<T: WithDType>(&self, x: &[T], dy: &[T], input: [usize; 3]) -> Vec<T> {
        let out = self.output(input);
        let (plane_in, plane_out) = (input.iter().product(), out.iter().product::<usize>());
        let mut dx = vec![T::zero(); x.len()];
        dx.par_chunks_mut(plane_in)
            .zip(x.par_chunks(plane_in).zip(dy.par_chunks(plane_out)))
            .for_each(|(dxp, (xp, dyp))| {
                for (i, g) in dyp.iter().enumerate() {
                    let o = [i / (out[1] * out[2]), i / out[2] % out[1], i % out[2]];
                    if let Some(j) = self.argmax(xp, input, o) {
                        dxp[j] += *g;
                    }
                }
            });
        dx
    }
}

/// The last three extents of a rank-5 layout.
fn extents(l: &Layout) -> [usize; 3] {
    let d = l.dims();
    [d[2], d[3], d[4]]
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let _span = Span::new(Direction::Forward, Kind::ActivationPool);
        let input = extents(l);
        let y = crate::slice::float_op!(self.name(), (s, l), |x| self.forward(x, input));
        let out = self.output(input);
        let d = l.dims();
        Ok((y, Shape::from((d[0], d[1], out[0], out[1], out[2]))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let _span = Span::new(Direction::Backward, Kind::ActivationPool);
        Ok(Some(x.apply_op2_no_bwd(
            &dy.contiguous()?,
            &MaxPoolGrad(*self),
        )?))
    }
}

/// `(x, dy) -> dx` of [`MaxPool`].
struct MaxPoolGrad(MaxPool);

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "max-pool-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = extents(xl);
        let dx = crate::slice::float_op!(self.name(), (xs, xl), (gs, gl), |x, dy| {
            self.0.backward(x, dy, input)
        });
        Ok((dx, xl.shape().clone()))
    }
}
