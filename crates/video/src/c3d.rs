//! C3D (Tran et al., *Learning Spatiotemporal Features with 3D
//! Convolutional Networks*, ICCV 2015), small: the eight 3x3x3 convs and
//! five pools of the original, every conv followed by a norm from the
//! factory, and a head that averages the last feature map over (T, H, W)
//! before `fc6`, so that any clip size works (the original flattens a
//! 512x1x4x4 map of 16x112x112 clips into `fc6`).
//!
//! ```text
//! conv1a 64                    pool1 1x2x2
//! conv2a 128                   pool2 2x2x2
//! conv3a 256, conv3b 256       pool3 2x2x2
//! conv4a 512, conv4b 512       pool4 2x2x2
//! conv5a 512, conv5b 512       pool5 2x2x2
//! global average pool, fc6 4096, relu, fc7 4096, relu, fc (classes)
//! ```
//!
//! Each conv `convXy` has its norm at `convXy_norm`; a width multiplier
//! scales channels and hidden units. Pools skip an axis already down to
//! one element. Input `(N, 3, T, H, W)`, logits `(N, classes)`.

use crate::conv_norm::conv_norm;
use crate::model_config::VideoModelConfig;
use crate::Result;
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::{Linear, VarBuilder};
use wsbcn_nn::{global_avg_pool, max_pool, relu, ConvNorm, LayerFactory};

/// (name, base channels, pool after it: 0 none, 1 spatial only, 2 all axes).
const LAYERS: [(&str, usize, u8); 8] = [
    ("conv1a", 64, 1),
    ("conv2a", 128, 2),
    ("conv3a", 256, 0),
    ("conv3b", 256, 2),
    ("conv4a", 512, 0),
    ("conv4b", 512, 2),
    ("conv5a", 512, 0),
    ("conv5b", 512, 2),
];

/// C3D (see the module docs).
#[derive(Debug)]
pub struct C3d {
    convs: Vec<(ConvNorm<3>, u8)>,
    fc6: Linear,
    fc7: Linear,
    fc: Linear,
}

impl C3d {
    /// Builds the model with every conv and norm from `f`.
    pub fn new(cfg: &VideoModelConfig, f: &LayerFactory, vb: VarBuilder) -> Result<Self> {
        let mut convs = vec![];
        let mut cin = 3;
        for (name, base, pool) in LAYERS {
            let cout = cfg.channels(base);
            let norm = vb.pp(format!("{name}_norm"));
            let conv = conv_norm(f, cin, cout, [3, 3, 3], [1, 1, 1], vb.pp(name), norm)?;
            convs.push((conv, pool));
            cin = cout;
        }
        let hidden = cfg.channels(4096);
        Ok(Self {
            convs,
            fc6: candle_nn::linear(cin, hidden, vb.pp("fc6"))?,
            fc7: candle_nn::linear(hidden, hidden, vb.pp("fc7"))?,
            fc: candle_nn::linear(hidden, cfg.num_classes, vb.pp("fc"))?,
        })
    }

    /// Logits `(N, classes)` for clips `x: (N, 3, T, H, W)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut y = x.clone();
        for (conv, pool) in &self.convs {
            y = relu(&conv.forward_t(&y, train)?)?;
            if *pool > 0 {
                let (_, _, t, h, w) = y.dims5()?;
                let k = |extent: usize, pooled: bool| if pooled && extent >= 2 { 2 } else { 1 };
                let kernel = [k(t, *pool == 2), k(h, true), k(w, true)];
                y = max_pool(&y, kernel, kernel, [0, 0, 0])?;
            }
        }
        let y = global_avg_pool(&y)?.flatten_from(1)?;
        let y = relu(&self.fc6.forward(&y)?)?;
        let y = relu(&self.fc7.forward(&y)?)?;
        Ok(self.fc.forward(&y)?)
    }
}
