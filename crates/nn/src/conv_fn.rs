//! Functional 2D and 3D convolution with per-axis stride, padding and
//! dilation, and groups, on any candle device, with autograd.
//!
//! candle has `conv2d` (one stride/padding/dilation for both axes) but no 3D
//! convolution, so both are built here from candle primitives:
//!
//! * **2D**, `x: (N, C, H, W)`, `w: (O, C/g, kh, kw)` -> `(N, O, Ho, Wo)` with
//!   `Ho = (H + 2 ph - dh (kh - 1) - 1) / sh + 1` (same for W).
//!   Square geometry goes to candle's `conv2d`; the input is padded and
//!   cropped explicitly first when candle's backward would get the output
//!   padding wrong (it derives it from H alone). Non-square stride or
//!   dilation falls back to an im2col built from `index_select` and one
//!   batched matmul.
//! * **3D**, `x: (N, C, T, H, W)`, `w: (O, C/g, kt, kh, kw)` ->
//!   `(N, O, To, Ho, Wo)`. The temporal taps are gathered from the
//!   time-folded frames, `X_k[n, t] = x[n, :, t st + k dt - pt]`, stacked into
//!   the channel axis group by group, and one 2D convolution with the kernel
//!   `(O, kt C/g, kh, kw)` sums over channels and temporal taps at once:
//!   `y[n, :, t] = sum_k conv2d(X_k[n, t], w[:, :, k])`.
//!
//! Both paths are differentiable with candle's autograd (`index_select`,
//! `stack`, `conv2d` and `matmul` all have backward passes). They are the
//! `*_generic` functions, used on every device but the CPU. On the CPU, in
//! f32 and f64, [`conv2d`] and [`conv3d`] run `wsbcn-kernels`' [`CpuConv`]
//! instead (oneDNN, or vol2col + GEMM, each with its own backward pass):
//! which one is [`ConvBackend::selected`]; [`conv2d_with`] and
//! [`conv3d_with`] take it as an argument.

use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use wsbcn_kernels::{ConvBackend, CpuConv, Geometry};

/// Geometry of a `D`-dimensional convolution: per-axis stride, padding and
/// dilation (ordered like the kernel's spatial dims: `(h, w)` or `(t, h, w)`),
/// and the number of groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry<const D: usize> {
    /// Step between output positions, per axis.
    pub stride: [usize; D],
    /// Zeros added on both sides, per axis.
    pub padding: [usize; D],
    /// Spacing between kernel taps, per axis.
    pub dilation: [usize; D],
    /// Channel groups: input and output channels are split into `groups`
    /// independent convolutions.
    pub groups: usize,
}

impl<const D: usize> Default for ConvGeometry<D> {
    fn default() -> Self {
        Self {
            stride: [1; D],
            padding: [0; D],
            dilation: [1; D],
            groups: 1,
        }
    }
}

impl<const D: usize> ConvGeometry<D> {
    /// Same stride, padding and dilation on every axis, one group.
    pub fn uniform(stride: usize, padding: usize, dilation: usize) -> Self {
        Self {
            stride: [stride; D],
            padding: [padding; D],
            dilation: [dilation; D],
            groups: 1,
        }
    }

    /// "Centred" padding: `dilation * (kernel / 2)` on each axis, so that
    /// an odd kernel at stride 1 keeps the extent ("same").
    pub fn centered(kernel: [usize; D], stride: [usize; D], dilation: [usize; D]) -> Self {
        let mut padding = [0; D];
        for (p, (k, d)) in padding.iter_mut().zip(kernel.iter().zip(&dilation)) {
            *p = d * (k / 2);
        }
        Self {
            stride,
            padding,
            dilation,
            groups: 1,
        }
    }

    /// The same geometry with `groups` groups.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Output extent of each axis for an input of extent `input` and kernel
    /// extent `kernel`; `None` when the (padded) input is smaller than the
    /// dilated kernel on some axis.
    pub fn output_size(&self, input: [usize; D], kernel: [usize; D]) -> Option<[usize; D]> {
        let mut out = [0; D];
        for a in 0..D {
            let span = self.dilation[a] * (kernel[a] - 1) + 1;
            let padded = input[a] + 2 * self.padding[a];
            if padded < span || self.stride[a] == 0 {
                return None;
            }
            out[a] = (padded - span) / self.stride[a] + 1;
        }
        Some(out)
    }

    /// Checks strides, dilations and groups against the channel counts.
    pub fn validate(&self, layer: &str, in_channels: usize, out_channels: usize) -> Result<()> {
        if self.stride.contains(&0) || self.dilation.contains(&0) {
            return Err(Error::config(
                layer,
                format!(
                    "stride {:?} and dilation {:?} must be >= 1",
                    self.stride, self.dilation
                ),
            ));
        }
        if self.groups == 0
            || !in_channels.is_multiple_of(self.groups)
            || !out_channels.is_multiple_of(self.groups)
        {
            return Err(Error::config(
                layer,
                format!(
                    "groups ({}) must divide in_channels ({in_channels}) and out_channels ({out_channels})",
                    self.groups
                ),
            ));
        }
        Ok(())
    }

    /// Checks `x` against `w` and returns the output extents.
    fn check(&self, layer: &str, x: &Tensor, w: &Tensor) -> Result<[usize; D]> {
        let (xd, wd) = (x.dims(), w.dims());
        let shape_err = |expected: String| Error::Shape {
            layer: layer.to_string(),
            expected,
            got: xd.to_vec(),
        };
        if wd.len() != D + 2 {
            return Err(Error::config(
                layer,
                format!("kernel must have {} dims, got {wd:?}", D + 2),
            ));
        }
        if xd.len() != D + 2 || xd[1] != wd[1] * self.groups {
            return Err(shape_err(format!(
                "of rank {} with {} channels (kernel {wd:?}, groups {})",
                D + 2,
                wd[1] * self.groups,
                self.groups
            )));
        }
        self.validate(layer, xd[1], wd[0])?;
        let input: [usize; D] = std::array::from_fn(|a| xd[a + 2]);
        let kernel: [usize; D] = std::array::from_fn(|a| wd[a + 2]);
        self.output_size(input, kernel).ok_or_else(|| {
            shape_err(format!(
                "with spatial extent at least the dilated kernel {kernel:?} (padding {:?}, dilation {:?})",
                self.padding, self.dilation
            ))
        })
    }
}

/// Indices `o * stride + offset` for `o in 0..len`, as a `u32` tensor.
pub(crate) fn strided_indices(
    len: usize,
    stride: usize,
    offset: usize,
    device: &Device,
) -> Result<Tensor> {
    let idx: Vec<u32> = (0..len).map(|o| (o * stride + offset) as u32).collect();
    Ok(Tensor::from_vec(idx, len, device)?)
}

/// Whether the CPU op ([`CpuConv`]) handles these tensors with `backend`.
fn use_cpu_op(backend: ConvBackend, x: &Tensor, w: &Tensor) -> bool {
    backend != ConvBackend::Candle
        && x.device().is_cpu()
        && x.dtype() == w.dtype()
        && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Runs the CPU op on contiguous inputs.
fn cpu_conv(backend: ConvBackend, x: &Tensor, w: &Tensor, geometry: Geometry) -> Result<Tensor> {
    backend.available()?;
    let op = CpuConv::forward(geometry, backend == ConvBackend::OneDnn);
    Ok(x.contiguous()?.apply_op2(&w.contiguous()?, op)?)
}

/// 2D convolution `x: (N, C, H, W)`, `w: (O, C/g, kh, kw)` -> `(N, O, Ho, Wo)`,
/// with the [selected](ConvBackend::selected) backend.
pub fn conv2d(x: &Tensor, w: &Tensor, geo: &ConvGeometry<2>) -> Result<Tensor> {
    conv2d_with(ConvBackend::selected()?, x, w, geo)
}

/// 3D convolution `x: (N, C, T, H, W)`, `w: (O, C/g, kt, kh, kw)` ->
/// `(N, O, To, Ho, Wo)`, contiguous, with the
/// [selected](ConvBackend::selected) backend.
pub fn conv3d(x: &Tensor, w: &Tensor, geo: &ConvGeometry<3>) -> Result<Tensor> {
    conv3d_with(ConvBackend::selected()?, x, w, geo)
}

/// [`conv2d`] with the given backend (candle's ops off the CPU).
pub fn conv2d_with(
    backend: ConvBackend,
    x: &Tensor,
    w: &Tensor,
    geo: &ConvGeometry<2>,
) -> Result<Tensor> {
    let out = geo.check("conv2d", x, w)?;
    if !use_cpu_op(backend, x, w) {
        return conv2d_generic(x, w, geo);
    }
    let (n, c, h, wi) = x.dims4()?;
    let (o, _, kh, kw) = w.dims4()?;
    cpu_conv(
        backend,
        x,
        w,
        Geometry {
            n,
            c,
            o,
            groups: geo.groups,
            input: [1, h, wi],
            kernel: [1, kh, kw],
            stride: [1, geo.stride[0], geo.stride[1]],
            padding: [0, geo.padding[0], geo.padding[1]],
            dilation: [1, geo.dilation[0], geo.dilation[1]],
            output: [1, out[0], out[1]],
            is_2d: true,
        },
    )
}

/// [`conv3d`] with the given backend (candle's ops off the CPU).
pub fn conv3d_with(
    backend: ConvBackend,
    x: &Tensor,
    w: &Tensor,
    geo: &ConvGeometry<3>,
) -> Result<Tensor> {
    let out = geo.check("conv3d", x, w)?;
    if !use_cpu_op(backend, x, w) {
        return conv3d_generic(x, w, geo);
    }
    let (n, c, t, h, wi) = x.dims5()?;
    let (o, _, kt, kh, kw) = w.dims5()?;
    cpu_conv(
        backend,
        x,
        w,
        Geometry {
            n,
            c,
            o,
            groups: geo.groups,
            input: [t, h, wi],
            kernel: [kt, kh, kw],
            stride: geo.stride,
            padding: geo.padding,
            dilation: geo.dilation,
            output: out,
            is_2d: false,
        },
    )
}

/// [`conv2d`] from candle ops, for any device.
pub fn conv2d_generic(x: &Tensor, w: &Tensor, geo: &ConvGeometry<2>) -> Result<Tensor> {
    let out = geo.check("conv2d", x, w)?;
    let (_, _, h, wi) = x.dims4()?;
    let (_, _, kh, kw) = w.dims4()?;
    let [sh, sw] = geo.stride;
    let [ph, pw] = geo.padding;
    let [dh, dw] = geo.dilation;
    // Input rows/cols the output actually reads, counted in the padded input.
    let used_h = (out[0] - 1) * sh + dh * (kh - 1) + 1;
    let used_w = (out[1] - 1) * sw + dw * (kw - 1) + 1;
    if sh == sw && dh == dw {
        let (rem_h, rem_w) = (h + 2 * ph - used_h, wi + 2 * pw - used_w);
        if ph == pw && rem_h == rem_w {
            return Ok(x.conv2d(w, ph, sh, dh, geo.groups)?);
        }
        let xp = x
            .pad_with_zeros(2, ph, ph)?
            .pad_with_zeros(3, pw, pw)?
            .narrow(2, 0, used_h)?
            .narrow(3, 0, used_w)?;
        return Ok(xp.conv2d(w, 0, sh, dh, geo.groups)?);
    }
    im2col_conv2d(x, w, geo, out)
}

/// Non-square stride or dilation: gather the `kh * kw` shifted, strided views
/// of the padded input and contract them with the kernel in one matmul.
fn im2col_conv2d(x: &Tensor, w: &Tensor, geo: &ConvGeometry<2>, out: [usize; 2]) -> Result<Tensor> {
    let (n, c, _, _) = x.dims4()?;
    let (o, cg, kh, kw) = w.dims4()?;
    let g = geo.groups;
    let xp = x
        .pad_with_zeros(2, geo.padding[0], geo.padding[0])?
        .pad_with_zeros(3, geo.padding[1], geo.padding[1])?;
    let mut taps = Vec::with_capacity(kh * kw);
    for i in 0..kh {
        let rows = strided_indices(out[0], geo.stride[0], i * geo.dilation[0], x.device())?;
        let xr = xp.index_select(&rows, 2)?;
        for j in 0..kw {
            let cols = strided_indices(out[1], geo.stride[1], j * geo.dilation[1], x.device())?;
            taps.push(xr.index_select(&cols, 3)?);
        }
    }
    // (N, C, kh*kw, Ho, Wo) -> (N, g, C/g * kh*kw, Ho*Wo), matching w's layout.
    let cols = Tensor::stack(&taps, 2)?.reshape((n, g, cg * kh * kw, out[0] * out[1]))?;
    let wm = w.reshape((1, g, o / g, cg * kh * kw))?;
    let y = wm.broadcast_matmul(&cols)?;
    debug_assert_eq!(c, cg * g);
    Ok(y.reshape((n, o, out[0], out[1]))?)
}

/// [`conv3d`] from candle ops (temporal taps folded into a 2D conv), for
/// any device.
pub fn conv3d_generic(x: &Tensor, w: &Tensor, geo: &ConvGeometry<3>) -> Result<Tensor> {
    let out = geo.check("conv3d", x, w)?;
    let (n, c, _, h, wi) = x.dims5()?;
    let (o, cg, kt, kh, kw) = w.dims5()?;
    let g = geo.groups;
    let (st, pt, dt) = (geo.stride[0], geo.padding[0], geo.dilation[0]);
    // Time-folded frames: (N, Tp, C, H, W).
    let frames = x.pad_with_zeros(2, pt, pt)?.transpose(1, 2)?.contiguous()?;
    let to = out[0];
    let (x2, w2) = if kt == 1 && st == 1 {
        let x2 = frames.reshape((n * to, c, h, wi))?;
        (x2, w.squeeze(2)?)
    } else {
        let mut taps = Vec::with_capacity(kt);
        for k in 0..kt {
            let idx = strided_indices(to, st, k * dt, x.device())?;
            taps.push(frames.index_select(&idx, 1)?);
        }
        // (N, To, kt, C, H, W) -> (N*To, g, kt, C/g, H, W) -> (N*To, g*kt*C/g, H, W)
        let x2 = Tensor::stack(&taps, 2)?
            .reshape((n * to, kt, g, cg, h, wi))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((n * to, g * kt * cg, h, wi))?;
        // (O, C/g, kt, kh, kw) -> (O, kt*C/g, kh, kw), the same channel order.
        let w2 = w
            .transpose(1, 2)?
            .contiguous()?
            .reshape((o, kt * cg, kh, kw))?;
        (x2, w2)
    };
    let geo2 = ConvGeometry {
        stride: [geo.stride[1], geo.stride[2]],
        padding: [geo.padding[1], geo.padding[2]],
        dilation: [geo.dilation[1], geo.dilation[2]],
        groups: g,
    };
    let y = conv2d_generic(&x2, &w2, &geo2)?;
    let (ho, wo) = (out[1], out[2]);
    Ok(y.reshape((n, to, o, ho, wo))?
        .transpose(1, 2)?
        .contiguous()?)
}
