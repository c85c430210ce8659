//! The geometry of one convolution call and its three passes, shared by the
//! GEMM lowering (`conv.rs`) and the oneDNN binding (`onednn.rs`).

/// The full geometry of one convolution call (2D calls have `t = kt = 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Samples `N`.
    pub n: usize,
    /// Input channels `C`.
    pub c: usize,
    /// Output channels `O`.
    pub o: usize,
    /// Groups `g` (`C` and `O` are multiples).
    pub groups: usize,
    /// Input extent `(T, H, W)`.
    pub input: [usize; 3],
    /// Kernel `(kt, kh, kw)`.
    pub kernel: [usize; 3],
    /// Stride per axis.
    pub stride: [usize; 3],
    /// Zero padding on each side, per axis.
    pub padding: [usize; 3],
    /// Dilation per axis (1: none).
    pub dilation: [usize; 3],
    /// Output extent `(To, Ho, Wo)`.
    pub output: [usize; 3],
    /// Whether the caller's tensors are 4D (no time axis).
    pub is_2d: bool,
}

impl Geometry {
    /// `K = C/g kt kh kw`, the reduction length of one output element.
    pub(crate) fn k(&self) -> usize {
        self.c / self.groups * self.kernel.iter().product::<usize>()
    }

    /// `L = To Ho Wo`, the output positions per sample and channel.
    pub(crate) fn l(&self) -> usize {
        self.output.iter().product()
    }

    /// A 1x1x1 kernel with unit stride and no padding.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kernel == [1; 3] && self.stride == [1; 3] && self.padding == [0; 3]
    }
}

/// Which computation a convolution op runs on its two inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    /// `(x, w) -> y`, differentiable.
    Forward,
    /// `(dy, w) -> dx`.
    InputGrad,
    /// `(x, dy) -> dw`.
    WeightGrad,
}
