//! 2D and 3D convolution with a weight mode: plain, or Weight Standardization.
//!
//! Qiao et al., "Micro-Batch Training with Batch-Channel Normalization and
//! Weight Standardization" (arXiv 1903.10520); official code
//! `joe-siyuan-qiao/WeightStandardization` and `.../Batch-Channel-Normalization`.
//!
//! With a WS [`WeightMode`] the layer convolves with the standardized kernel
//! `W_hat` of [`crate::weight_standardization`] (contiguous, gradients
//! through the mean and variance). [`Conv::fold`] bakes `W_hat` into a plain
//! conv for inference.

use crate::conv_fn::{conv2d, conv3d, ConvGeometry};
use crate::diagnostics::Diagnostics;
use crate::folding::FoldSwitch;
use crate::weight_standardization::{standardize, standardize_composite, WeightMode};
use crate::{Error, Result};
use candle_core::{Module, Tensor, Var};
use candle_nn::{Init, VarBuilder};

/// The `D`-dimensional convolution primitive behind a [`Conv`] layer.
pub trait ConvOp {
    /// Convolves `x` with `kernel` under this geometry.
    fn conv(&self, x: &Tensor, kernel: &Tensor) -> Result<Tensor>;
}

impl ConvOp for ConvGeometry<2> {
    fn conv(&self, x: &Tensor, kernel: &Tensor) -> Result<Tensor> {
        conv2d(x, kernel, self)
    }
}

impl ConvOp for ConvGeometry<3> {
    fn conv(&self, x: &Tensor, kernel: &Tensor) -> Result<Tensor> {
        conv3d(x, kernel, self)
    }
}

/// A convolution layer with a [`WeightMode`].
///
/// * 2D ([`Conv2d`]): input `(N, C, H, W)`, weight `(O, C/g, kh, kw)`.
/// * 3D ([`Conv3d`]): input `(N, C, T, H, W)`, weight `(O, C/g, kt, kh, kw)`.
///
/// Output `(N, O, spatial_out...)`, plus the bias `(O,)` when present.
#[derive(Clone, Debug)]
pub struct Conv<const D: usize> {
    weight: Tensor,
    bias: Option<Tensor>,
    geometry: ConvGeometry<D>,
    mode: WeightMode,
    ws_eps: f64,
    name: String,
    diagnostics: Diagnostics,
    folding: FoldSwitch,
}

/// A 2D [`Conv`].
pub type Conv2d = Conv<2>;
/// A 3D [`Conv`].
pub type Conv3d = Conv<3>;

impl<const D: usize> Conv<D>
where
    ConvGeometry<D>: ConvOp,
{
    /// Builds a layer from existing tensors. `weight: (O, C/g, k...)`,
    /// `bias: (O,)`. `name` appears in error messages and diagnostics.
    pub fn new(
        weight: Tensor,
        bias: Option<Tensor>,
        geometry: ConvGeometry<D>,
        mode: WeightMode,
        ws_eps: f64,
        name: &str,
    ) -> Result<Self> {
        let dims = weight.dims().to_vec();
        if dims.len() != D + 2 {
            return Err(Error::config(
                name,
                format!("weight must have {} dims, got {dims:?}", D + 2),
            ));
        }
        geometry.validate(name, dims[1] * geometry.groups, dims[0])?;
        if let Some(b) = &bias {
            if b.dims() != [dims[0]] {
                return Err(Error::config(
                    name,
                    format!("bias shape {:?} must be ({},)", b.dims(), dims[0]),
                ));
            }
        }
        let layer = Self {
            weight,
            bias,
            geometry,
            mode,
            ws_eps,
            name: name.to_string(),
            diagnostics: Diagnostics::default(),
            folding: FoldSwitch::default(),
        };
        if mode.is_ws() {
            // Surfaces a fan-in of 1 (an error in every WS variant) now, not at forward.
            layer.kernel()?;
        }
        Ok(layer)
    }

    /// The same layer, reporting to `diagnostics` (see [`Diagnostics`]).
    pub fn with_diagnostics(mut self, diagnostics: Diagnostics) -> Self {
        self.diagnostics = diagnostics;
        self
    }

    /// The same layer, folding its WS kernel while `switch` says so (see
    /// [`crate::folding`]).
    pub fn with_folding(mut self, switch: FoldSwitch) -> Self {
        self.folding = switch;
        self
    }

    /// The parameter `W`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The weight mode.
    pub fn mode(&self) -> WeightMode {
        self.mode
    }

    /// The geometry (stride, padding, dilation, groups).
    pub fn geometry(&self) -> &ConvGeometry<D> {
        &self.geometry
    }

    /// The layer's name (its `VarBuilder` path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kernel the layer convolves with: `W` or the contiguous `W_hat`.
    pub fn kernel(&self) -> Result<Tensor> {
        if self.mode.is_ws() {
            standardize(&self.weight, self.mode, self.ws_eps)
        } else {
            Ok(self.weight.clone())
        }
    }

    /// A plain conv whose weight is this layer's kernel, detached from the
    /// graph: the inference-time form of a WS conv.
    pub fn fold(&self) -> Result<Self> {
        Ok(Self {
            weight: self.kernel()?.detach(),
            bias: self.bias.as_ref().map(Tensor::detach),
            mode: WeightMode::Plain,
            ..self.clone()
        })
    }

    /// Under a folding guard, the WS kernel computed once for it.
    fn folded_kernel(&self) -> Result<Option<Tensor>> {
        if !self.mode.is_ws() {
            return Ok(None);
        }
        self.folding
            .kernel(&self.weight, || Ok(self.kernel()?.detach()))
    }

    fn forward_checked(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(kernel) = self.folded_kernel()? {
            return self.convolve(x, &kernel);
        }
        let mut kernel = self.kernel()?;
        if self.mode.is_ws() && self.diagnostics.is_enabled() {
            let (_, sigma) = standardize_composite(&self.weight.detach(), self.mode, self.ws_eps)?;
            // candle keeps gradients of variables only, so dL/dW_hat is read
            // from a zero variable added to W_hat: its gradient is dL/dW_hat.
            let tap = Var::zeros(kernel.shape(), kernel.dtype(), kernel.device())?;
            kernel = (kernel + tap.as_tensor())?;
            self.diagnostics
                .record_ws(&self.name, &self.weight, tap.as_tensor(), &sigma);
        }
        self.convolve(x, &kernel)
    }

    /// `x` convolved with `kernel`, plus the bias.
    fn convolve(&self, x: &Tensor, kernel: &Tensor) -> Result<Tensor> {
        let dims = x.dims();
        let channels = self.weight.dim(1)? * self.geometry.groups;
        if dims.len() != D + 2 || dims[1] != channels {
            return Err(Error::Shape {
                layer: self.name.clone(),
                expected: format!("of rank {} with {channels} channels", D + 2),
                got: dims.to_vec(),
            });
        }
        let y = self.geometry.conv(x, kernel).map_err(|e| match e {
            Error::Shape { expected, got, .. } => Error::Shape {
                layer: self.name.clone(),
                expected,
                got,
            },
            other => other,
        })?;
        match &self.bias {
            None => Ok(y),
            Some(b) => {
                let mut shape = vec![1; D + 2];
                shape[1] = b.dim(0)?;
                Ok(y.broadcast_add(&b.reshape(shape)?)?)
            }
        }
    }
}

impl<const D: usize> Module for Conv<D>
where
    ConvGeometry<D>: ConvOp,
{
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(self.forward_checked(x)?)
    }
}

/// What [`conv`] builds: kernel extent, geometry, bias and weight mode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvConfig<const D: usize> {
    /// Kernel extent `[kh, kw]` or `[kt, kh, kw]`.
    pub kernel: [usize; D],
    /// Stride, padding, dilation, groups.
    pub geometry: ConvGeometry<D>,
    /// Whether the layer has a bias `(O,)`.
    pub bias: bool,
    /// Plain or one of the WS variants.
    pub mode: WeightMode,
    /// eps of the WS variants.
    pub ws_eps: f64,
    /// How `W` is drawn when the `VarBuilder` creates it.
    pub init: WeightInit,
}

/// How [`conv`] draws a new weight.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum WeightInit {
    /// Kaiming normal, fan-out, ReLU gain: `N(0, 2 / (O k))`, as
    /// torchvision's ResNets initialise every conv.
    #[default]
    KaimingFanOut,
    /// `N(0, std^2)`, as mmsegmentation initialises its classifier heads
    /// (`std = 0.01`), so that the first logits are near zero.
    Normal(f64),
}

impl<const D: usize> ConvConfig<D> {
    /// A plain conv with a bias and the given kernel, unit geometry.
    pub fn new(kernel: [usize; D]) -> Self {
        Self {
            kernel,
            geometry: ConvGeometry::default(),
            bias: true,
            mode: WeightMode::Plain,
            ws_eps: 1e-5,
            init: WeightInit::KaimingFanOut,
        }
    }
}

/// Builds a [`Conv`] from a `VarBuilder`: parameters `weight` and (if
/// `config.bias`) `bias`, named as in PyTorch. `W` is drawn as
/// `config.init` says; the bias uniformly in `+-1/sqrt(fan_in)` as PyTorch
/// does.
pub fn conv<const D: usize>(
    in_channels: usize,
    out_channels: usize,
    config: ConvConfig<D>,
    vb: VarBuilder,
) -> Result<Conv<D>>
where
    ConvGeometry<D>: ConvOp,
{
    let ConvConfig {
        kernel,
        geometry,
        bias,
        mode,
        ws_eps,
        init,
    } = config;
    let name = vb.prefix();
    geometry.validate(&name, in_channels, out_channels)?;
    let mut shape = vec![out_channels, in_channels / geometry.groups];
    shape.extend_from_slice(&kernel);
    let hint = match init {
        WeightInit::KaimingFanOut => Init::Kaiming {
            dist: candle_nn::init::NormalOrUniform::Normal,
            fan: candle_nn::init::FanInOut::FanOut,
            non_linearity: candle_nn::init::NonLinearity::ReLU,
        },
        WeightInit::Normal(stdev) => Init::Randn { mean: 0.0, stdev },
    };
    let weight = vb.get_with_hints(shape, "weight", hint)?;
    let bias = if bias {
        let fan_in = (in_channels / geometry.groups) * kernel.iter().product::<usize>();
        let bound = 1.0 / (fan_in as f64).sqrt();
        Some(vb.get_with_hints(
            out_channels,
            "bias",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?)
    } else {
        None
    };
    Conv::new(weight, bias, geometry, mode, ws_eps, &name)
}
