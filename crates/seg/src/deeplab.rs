//! DeepLabV3: a dilated ResNet, ASPP with image pooling, and a classifier,
//! in one of two layouts ([`Head`]) that differ after ASPP and in their
//! parameter names.
//!
//! torchvision's `deeplabv3_resnet*` (`model.head = "torchvision"`):
//!
//! ```text
//! backbone.*           the ResNet
//! ASPP (classifier.0): convs.0  1x1 conv + norm + relu
//!                      convs.1-3 3x3 atrous conv (rates r1, r2, r3) + norm + relu
//!                      convs.4  image pooling: global avg pool, 1x1 conv + norm + relu, upsample
//!                      project  concat (5 x C) -> 1x1 conv + norm + relu
//! classifier.1-2       3x3 conv + norm, relu;  classifier.4  1x1 conv to K classes (bias)
//! logits               resized bilinearly to the input, align_corners = false
//! ```
//!
//! The WS/BCN authors' VOC code (`model.head = "paper"`; their
//! `DeepLabV3/deeplab.py`, after chenxi116/DeepLabv3.pytorch):
//!
//! ```text
//! conv1, bn1, layer1-4 the ResNet, at the root (torchvision's `resnet*` names)
//! aspp.aspp1, aspp1_bn 1x1 conv + norm + relu
//! aspp.aspp2-4, _bn    3x3 atrous conv (rates r1, r2, r3) + norm + relu
//! aspp.aspp5, _bn      image pooling: global avg pool, 1x1 conv + norm + relu, upsample
//! aspp.conv2, aspp.bn2 concat (5 x C) -> 1x1 conv + norm + relu
//! aspp.conv3           1x1 conv to K classes (bias); no 3x3 conv before it
//! logits               resized bilinearly to the input, align_corners = true
//! ```
//!
//! Both can carry torchvision's auxiliary FCN head (`aux_classifier.*`):
//! on stage 3, a 3x3 conv (C3 -> C3/4) + norm + relu and a 1x1 conv to K,
//! resized as the main logits are.
//!
//! In evaluation, [`DeepLabV3::infer`] covers an image in one pass or with
//! sliding windows ([`EvalMode`]).
//! Every conv followed by a norm comes from the factory (WS when the spec
//! says so); the two final 1x1 classifiers are plain convs with a bias,
//! initialised `N(0, 0.01^2)` as mmsegmentation's heads are (a Kaiming
//! classifier starts with logits of std ~2 and a loss far above `ln K`).
//!
//! **Image pooling at batch 1.** That branch normalizes one value per
//! channel per sample; with batch statistics (`bn`, `bcn`) and one sample
//! the statistics are undefined and the norm layer refuses them. There the
//! branch's norm uses its running statistics (as in evaluation) and leaves
//! them unchanged, which is what a torchvision or mmsegmentation user gets
//! from the usual workaround of freezing that norm; at batch 2 and more, and
//! for every norm without batch statistics, the branch trains normally.

use crate::resnet::{self, ResNet, ResNetConfig};
use crate::{Error, Result};
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use wsbcn_nn::{
    conv, global_avg_pool, relu, resize_bilinear, Conv2d, ConvConfig, ConvNorm, LayerFactory,
    WeightInit,
};
use wsbcn_train::PretrainedConfig;

/// The model section of a config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeepLabConfig {
    /// The backbone.
    pub backbone: ResNetConfig,
    /// Classes, background included (21 for VOC).
    pub num_classes: usize,
    /// The layout after ASPP, and the parameter names.
    pub head: Head,
    /// Channels of ASPP and the head (256 in the paper).
    pub aspp_channels: usize,
    /// Rates of the three atrous ASPP branches.
    pub aspp_rates: [usize; 3],
    /// An auxiliary FCN head on stage 3.
    pub aux_head: bool,
    /// Weight of the auxiliary loss.
    pub aux_weight: f64,
    /// Weights to start from (`[model.pretrained]`: a PyTorch checkpoint
    /// or safetensors file, its name map and the prefixes to skip; see
    /// `wsbcn_train::pretrained`), e.g. torchvision's `deeplabv3_resnet*`
    /// as it is, or an ImageNet ResNet as the backbone.
    pub pretrained: Option<PretrainedConfig>,
}

impl Default for DeepLabConfig {
    fn default() -> Self {
        Self {
            backbone: ResNetConfig::default(),
            num_classes: 21,
            head: Head::Torchvision,
            aspp_channels: 256,
            aspp_rates: [6, 12, 18],
            aux_head: false,
            aux_weight: 0.4,
            pretrained: None,
        }
    }
}

impl DeepLabConfig {
    /// Where an ImageNet ResNet's names go in this model: under
    /// `backbone.` with torchvision's head, at the root with the paper's.
    pub fn backbone_prefix(&self) -> &'static str {
        match self.head {
            Head::Torchvision => "backbone.",
            Head::Paper => "",
        }
    }
}

/// The two DeepLabV3 layouts (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Head {
    /// torchvision's `deeplabv3_resnet*`: a 3x3 conv + norm between the
    /// ASPP projection and the classifier, logits resized with
    /// `align_corners = false`, names under `backbone.` and `classifier.`.
    #[default]
    Torchvision,
    /// The WS/BCN authors' DeepLabv3 (the code behind the published VOC
    /// numbers): the classifier right after the ASPP projection, logits
    /// resized with `align_corners = true`, the backbone at the root and
    /// the head under `aspp.`.
    Paper,
}

/// The variable names of one layout.
struct Names {
    backbone: Option<&'static str>,
    /// The conv and norm of ASPP branch `i` (0-3 the convs, 4 the pooling).
    branch: fn(usize) -> (String, String),
    project: [&'static str; 2],
    /// The 3x3 conv and norm before the classifier, where there is one.
    head: Option<[&'static str; 2]>,
    classifier: &'static str,
    align_corners: bool,
}

impl Head {
    fn names(self) -> Names {
        match self {
            Head::Torchvision => Names {
                backbone: Some("backbone"),
                branch: |i| {
                    let b = format!("classifier.0.convs.{i}");
                    let (c, n) = if i == 4 { (1, 2) } else { (0, 1) };
                    (format!("{b}.{c}"), format!("{b}.{n}"))
                },
                project: ["classifier.0.project.0", "classifier.0.project.1"],
                head: Some(["classifier.1", "classifier.2"]),
                classifier: "classifier.4",
                align_corners: false,
            },
            Head::Paper => Names {
                backbone: None,
                branch: |i| {
                    (
                        format!("aspp.aspp{}", i + 1),
                        format!("aspp.aspp{}_bn", i + 1),
                    )
                },
                project: ["aspp.conv2", "aspp.bn2"],
                head: None,
                classifier: "aspp.conv3",
                align_corners: true,
            },
        }
    }
}

/// A `k`x`k` conv at stride 1 with `dilation` and its norm (the head's
/// unit).
fn conv_norm(
    f: &LayerFactory,
    cin: usize,
    cout: usize,
    k: usize,
    dilation: usize,
    vb: VarBuilder,
    norm_vb: VarBuilder,
) -> Result<ConvNorm<2>> {
    resnet::conv_norm(f, cin, cout, k, 1, dilation, vb, norm_vb)
}

/// A final 1x1 classifier: plain, with a bias, small initial weights.
fn classifier_config() -> ConvConfig<2> {
    ConvConfig {
        init: WeightInit::Normal(0.01),
        ..ConvConfig::new([1, 1])
    }
}

fn apply(cn: &ConvNorm<2>, x: &Tensor, train: bool) -> Result<Tensor> {
    Ok(relu(&cn.forward_t(x, train)?)?)
}

/// How evaluation covers an image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum EvalMode {
    /// One forward pass over the whole image.
    Whole,
    /// Windows of `window` pixels every `stride` pixels, logits averaged.
    Slide {
        /// Side of a window.
        window: usize,
        /// Step between windows.
        stride: usize,
    },
}

/// Logits of a DeepLabV3 model and, when it has one, its auxiliary head.
#[derive(Debug)]
pub struct Output {
    /// `(N, K, H, W)` at the input size.
    pub logits: Tensor,
    /// `(N, K, H, W)` of the auxiliary head.
    pub aux: Option<Tensor>,
}

/// DeepLabV3 (see the module docs).
#[derive(Debug)]
pub struct DeepLabV3 {
    backbone: ResNet,
    branches: Vec<ConvNorm<2>>,
    pooling: ConvNorm<2>,
    project: ConvNorm<2>,
    head: Option<ConvNorm<2>>,
    classifier: Conv2d,
    aux: Option<(ConvNorm<2>, Conv2d)>,
    align_corners: bool,
}

impl DeepLabV3 {
    /// Builds the model under `vb`, with the names of `cfg.head`.
    pub fn new(cfg: &DeepLabConfig, f: &LayerFactory, vb: VarBuilder) -> Result<Self> {
        if cfg.num_classes < 2 || cfg.aspp_channels == 0 {
            return Err(Error::Config(format!(
                "deeplab: {} classes and {} ASPP channels",
                cfg.num_classes, cfg.aspp_channels
            )));
        }
        let names = cfg.head.names();
        let backbone_vb = match names.backbone {
            Some(prefix) => vb.pp(prefix),
            None => vb.clone(),
        };
        let backbone = ResNet::new(&cfg.backbone, f, backbone_vb)?;
        let (c3, c4) = cfg.backbone.out_channels()?;
        let a = cfg.aspp_channels;
        let branch = |i: usize, cin: usize, k: usize, rate: usize| {
            let (c, n) = (names.branch)(i);
            conv_norm(f, cin, a, k, rate, vb.pp(c), vb.pp(n))
        };
        let mut branches = vec![branch(0, c4, 1, 1)?];
        for (i, &r) in cfg.aspp_rates.iter().enumerate() {
            branches.push(branch(i + 1, c4, 3, r)?);
        }
        let pooling = branch(4, c4, 1, 1)?;
        let [pc, pn] = names.project;
        let project = conv_norm(f, 5 * a, a, 1, 1, vb.pp(pc), vb.pp(pn))?;
        let head = match names.head {
            Some([hc, hn]) => Some(conv_norm(f, a, a, 3, 1, vb.pp(hc), vb.pp(hn))?),
            None => None,
        };
        let classifier = conv(
            a,
            cfg.num_classes,
            classifier_config(),
            vb.pp(names.classifier),
        )?;
        let aux = if cfg.aux_head {
            let mid = (c3 / 4).max(1);
            let cn = conv_norm(
                f,
                c3,
                mid,
                3,
                1,
                vb.pp("aux_classifier.0"),
                vb.pp("aux_classifier.1"),
            )?;
            let cls = conv(
                mid,
                cfg.num_classes,
                classifier_config(),
                vb.pp("aux_classifier.4"),
            )?;
            Some((cn, cls))
        } else {
            None
        };
        Ok(Self {
            backbone,
            branches,
            pooling,
            project,
            head,
            classifier,
            aux,
            align_corners: names.align_corners,
        })
    }

    /// Evaluation logits `(N, K, H, W)` of `x: (N, 3, H, W)`, covering the
    /// image as `mode` says: one pass over the whole image, or sliding
    /// windows with their logits averaged.
    pub fn infer(&self, x: &Tensor, mode: &EvalMode) -> Result<Tensor> {
        match *mode {
            EvalMode::Whole => Ok(self.forward_t(x, false)?.logits),
            EvalMode::Slide { window, stride } => self.slide(x, window, stride),
        }
    }

    /// Sliding-window logits `(N, K, H, W)` of `x: (N, 3, H, W)`: the image
    /// is zero-padded to at least `window` a side, windows start every
    /// `stride` pixels (the last flush with the far edge), and each pixel
    /// averages the logits of the windows that cover it.
    fn slide(&self, x: &Tensor, window: usize, stride: usize) -> Result<Tensor> {
        let (n, h, w) = (x.dim(0)?, x.dim(2)?, x.dim(3)?);
        // Pad small images to the window (with 0, the normalized mean).
        let (ph, pw) = (h.max(window), w.max(window));
        let xp = x
            .pad_with_zeros(2, 0, ph - h)?
            .pad_with_zeros(3, 0, pw - w)?;
        let starts = |extent: usize| {
            let mut s: Vec<usize> = (0..)
                .map(|i| i * stride)
                .take_while(|&o| o + window < extent)
                .collect();
            s.push(extent - window);
            s
        };
        let plane = ph * pw;
        let mut k = 0;
        let mut sum = vec![];
        let mut count = vec![0f32; plane];
        for &y0 in &starts(ph) {
            for &x0 in &starts(pw) {
                let crop = xp.narrow(2, y0, window)?.narrow(3, x0, window)?;
                let logits = self.forward_t(&crop, false)?.logits;
                if sum.is_empty() {
                    k = logits.dim(1)?;
                    sum = vec![0f32; n * k * plane];
                }
                let logits: Vec<f32> = logits.flatten_all()?.to_vec1()?;
                for (nc, map) in logits.chunks_exact(window * window).enumerate() {
                    let out = &mut sum[nc * plane..(nc + 1) * plane];
                    for (yy, row) in map.chunks_exact(window).enumerate() {
                        let at = (y0 + yy) * pw + x0;
                        for (o, v) in out[at..at + window].iter_mut().zip(row) {
                            *o += v;
                        }
                    }
                }
                for yy in 0..window {
                    for c in &mut count[(y0 + yy) * pw + x0..(y0 + yy) * pw + x0 + window] {
                        *c += 1.0;
                    }
                }
            }
        }
        for map in sum.chunks_exact_mut(plane) {
            for (v, c) in map.iter_mut().zip(&count) {
                *v /= c;
            }
        }
        Ok(Tensor::from_vec(sum, (n, k, ph, pw), x.device())?
            .narrow(2, 0, h)?
            .narrow(3, 0, w)?)
    }

    /// Logits for `x: (N, 3, H, W)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Output> {
        let (h, w) = (x.dim(2)?, x.dim(3)?);
        let (c3, c4) = self.backbone.forward_t(x, train)?;
        let mut outs = Vec::with_capacity(5);
        for b in &self.branches {
            outs.push(apply(b, &c4, train)?);
        }
        let batch_stats = self.pooling.norm().uses_batch_statistics();
        let pool_train = train && !(batch_stats && x.dim(0)? == 1);
        let pooled = apply(&self.pooling, &global_avg_pool(&c4)?, pool_train)?;
        outs.push(pooled.broadcast_as(outs[0].shape())?.contiguous()?);
        let mut y = apply(&self.project, &Tensor::cat(&outs, 1)?, train)?;
        if let Some(head) = &self.head {
            y = apply(head, &y, train)?;
        }
        let resize = |t: &Tensor| resize_bilinear(t, (h, w), self.align_corners);
        let logits = resize(&self.classifier.forward(&y)?)?;
        let aux = match &self.aux {
            Some((cn, cls)) => Some(resize(&cls.forward(&apply(cn, &c3, train)?)?)?),
            None => None,
        };
        Ok(Output { logits, aux })
    }
}
