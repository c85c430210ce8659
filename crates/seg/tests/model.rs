//! DeepLabV3: torchvision-compatible names and shapes, the WS/BCN authors'
//! head (names, shapes, parameter counts, align-corners upsampling), the
//! multi-grid dilations, the deep stem's names and strides, output shapes
//! at output stride 8 and 16 for every norm kind, batch-1 training steps,
//! and the metrics against a hand-computed confusion matrix.

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use std::collections::BTreeMap;
use wsbcn_seg::deeplab::{DeepLabConfig, DeepLabV3, Head};
use wsbcn_seg::metrics::ConfusionMatrix;
use wsbcn_seg::resnet::{MultiGrid, ResNet, ResNetConfig};
use wsbcn_testkit::models::{
    assert_pytorch_layout, assert_ws_coverage, build_model, trainable_count, variable_shapes,
    weight_parameters, NORM_SPECS,
};
use wsbcn_train::{param_groups, pixel_cross_entropy, PretrainedConfig, Sgd, SgdConfig, WeightMap};

const DEV: Device = Device::Cpu;

fn build(cfg: &DeepLabConfig, spec: &str, groups: usize) -> (VarMap, DeepLabV3) {
    build_model(spec, groups, |f, vb| DeepLabV3::new(cfg, f, vb))
}

/// torchvision's `deeplabv3_resnet{depth}` at 21 classes, with or without
/// its auxiliary head.
fn torchvision_config(depth: usize, aux_head: bool) -> DeepLabConfig {
    DeepLabConfig {
        backbone: ResNetConfig {
            depth,
            output_stride: 8,
            ..ResNetConfig::default()
        },
        aspp_rates: [12, 24, 36],
        aux_head,
        ..DeepLabConfig::default()
    }
}

#[test]
fn bn_variant_has_torchvision_names_shapes_and_parameter_counts() {
    for (depth, want_params) in [(50, 42_004_074usize), (101, 60_996_202)] {
        let (vm, _) = build(&torchvision_config(depth, true), "bn", 32);
        let file = format!("torchvision_deeplabv3_resnet{depth}.txt");
        assert_pytorch_layout(&vm, &file, want_params);
    }
}

#[test]
fn without_the_auxiliary_head_the_parameter_counts_are_torchvisions() {
    // torchvision's deeplabv3_resnet50/101(num_classes=21, aux_loss=False):
    // the counts above less the FCN head (3x3 1024 -> 256 conv, its BN,
    // the 1x1 256 -> 21 classifier with bias: 2,365,205).
    for (depth, want) in [(50, 39_638_869usize), (101, 58_630_997)] {
        let (vm, _) = build(&torchvision_config(depth, false), "bn", 32);
        assert_eq!(trainable_count(&vm), want, "resnet{depth}");
    }
}

/// The WS/BCN authors' VOC model at 21 classes: output stride 16, ASPP
/// rates 6/12/18, no auxiliary head.
fn paper_config(depth: usize) -> DeepLabConfig {
    DeepLabConfig {
        backbone: ResNetConfig {
            depth,
            ..ResNetConfig::default()
        },
        head: Head::Paper,
        ..DeepLabConfig::default()
    }
}

#[test]
fn paper_head_has_the_authors_names_shapes_and_parameter_counts() {
    // torchvision's counts without the auxiliary head (above) less the
    // 3x3 256 -> 256 conv and its BN that the authors' head does not have:
    // 256 * 256 * 9 + 2 * 256 = 590,336.
    for (depth, want) in [(50, 39_638_869 - 590_336), (101, 58_630_997 - 590_336)] {
        let (vm, _) = build(&paper_config(depth), "bn", 32);
        let file = format!("paper_deeplabv3_resnet{depth}.txt");
        assert_pytorch_layout(&vm, &file, want);
    }
}

/// `(N, K, H, W)` logits as rows of `W` values.
fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    let w = t.dim(3).unwrap();
    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    v.chunks_exact(w).map(<[f32]>::to_vec).collect()
}

/// The largest `|l[x-1] - 2 l[x] + l[x+1]|` over `x` in `inner`, relative to
/// the largest `|l[x+1] - l[x]|`, over every row.
fn kink(rows: &[Vec<f32>], inner: std::ops::Range<usize>) -> f32 {
    let (mut d2, mut d1) = (0f32, 0f32);
    for l in rows {
        for x in inner.clone() {
            d2 = d2.max((l[x - 1] - 2.0 * l[x] + l[x + 1]).abs());
            d1 = d1.max((l[x + 1] - l[x]).abs());
        }
    }
    d2 / d1
}

#[test]
fn paper_head_upsamples_with_aligned_corners() {
    // A 33-pixel input gives 3x3 logits at output stride 16 (33 -> 17 -> 9
    // -> 5 -> 3). Aligned corners put the 3 samples at pixels 0, 16 and 32,
    // so every row is linear on [0, 16] and on [16, 32]. torchvision's
    // half-pixel resize puts them at 5, 16 and 27 and is flat before 5.
    let x = Tensor::randn(0f32, 1.0, (1, 3, 33, 33), &DEV).unwrap();
    for head in [Head::Paper, Head::Torchvision] {
        let cfg = DeepLabConfig {
            head,
            ..tiny(16, false)
        };
        let (_, model) = build(&cfg, "gn", 4);
        let logits = model.forward_t(&x, false).unwrap().logits;
        let r = rows(&logits);
        let k = kink(&r, 1..16).max(kink(&r, 17..32));
        match head {
            Head::Paper => assert!(k < 1e-3, "paper head: a kink of {k} between the knots"),
            Head::Torchvision => assert!(k > 0.1, "torchvision head: no kink ({k}) at pixel 5"),
        }
    }
}

#[test]
fn multi_grid_dilations_follow_the_paper_or_mmsegmentation() {
    let last = |os: usize, rates: &[usize], mode: MultiGrid| {
        let cfg = ResNetConfig {
            depth: 101,
            output_stride: os,
            multi_grid: rates.to_vec(),
            multi_grid_mode: mode,
            ..ResNetConfig::default()
        };
        cfg.dilations().unwrap()
    };
    use MultiGrid::{Absolute, Scaled};
    // torchvision / the WS-BCN authors' code at output stride 16: layer4 is
    // dilated by 2 and its first block keeps dilation 1.
    let d = last(16, &[1, 1, 1], Scaled);
    assert_eq!(d.iter().map(Vec::len).collect::<Vec<_>>(), [3, 4, 23, 3]);
    assert!(d[..3].iter().flatten().all(|&x| x == 1));
    assert_eq!(d[3], [1, 2, 2]);
    // The DeepLabv3 paper: unit rates (1, 2, 4) times the stage's 2.
    assert_eq!(last(16, &[1, 2, 4], Scaled)[3], [2, 4, 8]);
    // At output stride 8 layer3 is dilated by 2 (first block 1) and layer4
    // by 4, so (1, 2, 4) gives 4, 8, 16.
    let d = last(8, &[1, 2, 4], Scaled);
    assert_eq!(d[2][..3], [1, 2, 2]);
    assert_eq!(d[3], [4, 8, 16]);
    // mmsegmentation: the rates are the dilations at any output stride.
    assert_eq!(last(16, &[1, 2, 4], Absolute)[3], [1, 2, 4]);
    assert_eq!(last(8, &[1, 2, 4], Absolute)[3], [1, 2, 4]);
    assert_eq!(last(8, &[1, 2, 4], Absolute)[2][..2], [1, 2]);
    // Rates cycle over the blocks.
    assert_eq!(last(16, &[2], Absolute)[3], [2, 2, 2]);
    for bad in [vec![], vec![1, 0, 1]] {
        let cfg = ResNetConfig {
            multi_grid: bad.clone(),
            ..ResNetConfig::default()
        };
        let err = cfg.dilations().unwrap_err().to_string();
        assert!(err.contains("multi_grid"), "{bad:?}: {err}");
    }
}

#[test]
fn deep_stem_has_resnet_d_names_and_keeps_the_output_stride() {
    // timm's `resnet*d` / mmsegmentation's ResNetV1c stem: 3x3 convs
    // 3 -> 32 (stride 2), 32 -> 32, 32 -> 64 (times the width), named as the
    // `conv1` Sequential's children, the last norm as `bn1`.
    let x = Tensor::randn(0f32, 1.0, (1, 3, 64, 64), &DEV).unwrap();
    for os in [8, 16] {
        let cfg = ResNetConfig {
            depth: 18,
            width: 0.25,
            deep_stem: true,
            output_stride: os,
            ..ResNetConfig::default()
        };
        let (vm, net) = build_model("bn", 4, |f, vb| ResNet::new(&cfg, f, vb));
        let mut stem = variable_shapes(&vm);
        stem.retain(|n, _| n.starts_with("conv1.") || n.starts_with("bn1."));
        let mut want = BTreeMap::from([
            ("conv1.0.weight".to_string(), vec![8, 3, 3, 3]),
            ("conv1.3.weight".to_string(), vec![8, 8, 3, 3]),
            ("conv1.6.weight".to_string(), vec![16, 8, 3, 3]),
        ]);
        for (norm, c) in [("conv1.1", 8), ("conv1.4", 8), ("bn1", 16)] {
            for v in ["bias", "running_mean", "running_var", "weight"] {
                want.insert(format!("{norm}.{v}"), vec![c]);
            }
        }
        assert_eq!(stem, want, "os{os}");
        let (c3, c4) = net.forward_t(&x, false).unwrap();
        assert_eq!(c3.dims(), [1, 64, 64 / os, 64 / os], "os{os} stage 3");
        assert_eq!(c4.dims(), [1, 128, 64 / os, 64 / os], "os{os} stage 4");
    }
}

fn tiny(os: usize, aux: bool) -> DeepLabConfig {
    DeepLabConfig {
        backbone: ResNetConfig {
            depth: 18,
            width: 0.25,
            output_stride: os,
            ..ResNetConfig::default()
        },
        num_classes: 5,
        aspp_channels: 16,
        aspp_rates: [1, 2, 3],
        aux_head: aux,
        ..DeepLabConfig::default()
    }
}

#[test]
fn every_conv_but_the_classifiers_is_weight_standardized() {
    for (depth, head, classifier) in [
        (18, Head::Torchvision, "classifier.4"),
        (50, Head::Torchvision, "classifier.4"),
        (18, Head::Paper, "aspp.conv3"),
    ] {
        let cfg = DeepLabConfig {
            head,
            backbone: ResNetConfig {
                depth,
                width: 0.125,
                deep_stem: true,
                ..ResNetConfig::default()
            },
            aspp_channels: 16,
            aux_head: true,
            ..DeepLabConfig::default()
        };
        let x = Tensor::randn(0f32, 1.0, (2, 3, 33, 33), &DEV).unwrap();
        assert_ws_coverage(
            |f, vb| DeepLabV3::new(&cfg, f, vb),
            |m| {
                let out = m.forward_t(&x, true).map_err(candle_core::Error::wrap)?;
                out.logits.sum_all()? + out.aux.expect("an auxiliary head").sum_all()?
            },
            &[classifier, "aux_classifier.4"],
        );
    }
}

#[test]
fn output_shapes_at_stride_8_and_16_for_every_norm() {
    let x = Tensor::randn(0f32, 1.0, (2, 3, 37, 45), &DEV).unwrap();
    for os in [8, 16] {
        for spec in NORM_SPECS {
            let (_, model) = build(&tiny(os, true), spec, 4);
            for train in [true, false] {
                let out = model.forward_t(&x, train).unwrap();
                assert_eq!(out.logits.dims(), [2, 5, 37, 45], "{spec} os{os}");
                assert_eq!(out.aux.unwrap().dims(), [2, 5, 37, 45], "{spec} os{os} aux");
            }
        }
    }
}

#[test]
fn batch_one_training_steps_are_finite_for_every_norm() {
    let x = Tensor::randn(0f32, 1.0, (1, 3, 33, 33), &DEV).unwrap();
    let y = Tensor::from_vec(
        (0..33 * 33)
            .map(|i| (i % 7).min(4) as u32)
            .collect::<Vec<_>>(),
        (1, 33, 33),
        &DEV,
    )
    .unwrap();
    for spec in NORM_SPECS {
        let (vm, model) = build(&tiny(16, false), spec, 4);
        let cfg = SgdConfig {
            lr: 0.01,
            ..SgdConfig::default()
        };
        let mut sgd = Sgd::new(param_groups(&vm, &cfg), &cfg);
        for step in 0..2 {
            let loss =
                pixel_cross_entropy(&model.forward_t(&x, true).unwrap().logits, &y, 255, None)
                    .unwrap();
            let v = loss.to_scalar::<f32>().unwrap();
            assert!(v.is_finite(), "{spec} step {step}: loss {v}");
            let grads = sgd.grads(&loss.backward().unwrap());
            assert!(!grads.is_empty());
            for (n, g) in &grads {
                let s = g
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(s.is_finite(), "{spec}: gradient of {n} is not finite");
            }
            sgd.step(&grads, 0.01).unwrap();
        }
    }
}

#[test]
fn metrics_equal_a_hand_computed_confusion_matrix() {
    // 3 classes; ground truth / prediction over 10 pixels, two ignored.
    let gt = [0u8, 0, 0, 1, 1, 1, 1, 255, 0, 255];
    let pred = [0u8, 1, 0, 1, 1, 0, 1, 2, 0, 1];
    let mut cm = ConfusionMatrix::new(3);
    cm.add(&gt, &pred).unwrap();
    // rows gt, cols pred: gt0 -> [3, 1, 0], gt1 -> [1, 3, 0], gt2 -> [0, 0, 0]
    assert_eq!(
        (
            cm.count(0, 0),
            cm.count(0, 1),
            cm.count(1, 0),
            cm.count(1, 1)
        ),
        (3, 1, 1, 3)
    );
    let m = cm.metrics();
    // IoU0 = 3 / (4 + 4 - 3) = 0.6, IoU1 = 3 / 5 = 0.6, class 2 absent from both: excluded.
    assert_eq!(m.iou, vec![Some(0.6), Some(0.6), None]);
    assert!((m.miou - 0.6).abs() < 1e-12);
    assert!((m.pixel_accuracy - 6.0 / 8.0).abs() < 1e-12);
    assert!((m.mean_class_accuracy - 0.75).abs() < 1e-12);
    // A class predicted but absent from the ground truth counts with IoU 0.
    let mut cm2 = ConfusionMatrix::new(3);
    cm2.add(&[0, 0], &[0, 2]).unwrap();
    assert_eq!(cm2.metrics().iou, vec![Some(0.5), None, Some(0.0)]);
    assert!(cm
        .add(&[0, 7], &[0, 0])
        .unwrap_err()
        .to_string()
        .contains("class 7"));
}

#[test]
fn deeplab_fits_a_fixed_batch() {
    // Blocks of 8x8 pixels whose colour gives their class: a model whose
    // gradients reach every layer drives the loss far down in 40 steps.
    // The blocks carry a fixed texture: on flat blocks, BN at batch 2 had
    // channels of almost no variance whose ReLU masks followed the
    // convolution's rounding, and its loss spiked late with one backend
    // and not another (oneDNN and the GEMM op agree to 3e-7 per conv).
    let (n, k, s) = (2usize, 5usize, 32usize);
    let mut pixels = vec![0f32; n * 3 * s * s];
    let mut labels = vec![0u32; n * s * s];
    for b in 0..n {
        for y in 0..s {
            for x in 0..s {
                let class = ((y / 8) * 3 + (x / 8) + b) % k;
                labels[(b * s + y) * s + x] = class as u32;
                for c in 0..3 {
                    let i = ((b * 3 + c) * s + y) * s + x;
                    // A fixed pseudo-random texture in [-0.25, 0.25).
                    let texture = (i.wrapping_mul(2654435761) % 1000) as f32 / 2000.0 - 0.25;
                    pixels[i] = if (class >> c) & 1 == 1 { 1.0 } else { -1.0 }
                        + 0.5 * (class == 4) as u8 as f32
                        + texture;
                }
            }
        }
    }
    let x = Tensor::from_vec(pixels, (n, 3, s, s), &DEV).unwrap();
    let y = Tensor::from_vec(labels, (n, s, s), &DEV).unwrap();
    for spec in ["gn+ws", "bn"] {
        let (vm, model) = build(&tiny(8, false), spec, 4);
        let cfg = SgdConfig {
            lr: 0.05,
            ..SgdConfig::default()
        };
        let mut sgd = Sgd::new(param_groups(&vm, &cfg), &cfg);
        let mut losses = vec![];
        for _ in 0..40 {
            let loss =
                pixel_cross_entropy(&model.forward_t(&x, true).unwrap().logits, &y, 255, None)
                    .unwrap();
            losses.push(loss.to_scalar::<f32>().unwrap());
            let grads = sgd.grads(&loss.backward().unwrap());
            sgd.step(&grads, cfg.lr).unwrap();
        }
        eprintln!("{spec}: {losses:?}");
        assert!(losses[39] < 0.3 * losses[0], "{spec}: {:?}", losses);
    }
}

/// `[model.pretrained]` for `file` with `map` and `skip`.
fn pretrained(file: &std::path::Path, map: WeightMap, skip: &[&str]) -> PretrainedConfig {
    PretrainedConfig {
        file: file.to_path_buf(),
        map,
        skip: skip.iter().map(|s| s.to_string()).collect(),
    }
}

/// Every variable of `vm` as a tensor, by name.
fn tensors_of(vm: &VarMap) -> BTreeMap<String, Tensor> {
    vm.data()
        .lock()
        .unwrap()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect()
}

/// Asserts that every variable of `dst` equals the one of `src` named
/// `rename(name)`.
fn assert_loaded(src: &BTreeMap<String, Tensor>, dst: &VarMap, rename: impl Fn(&str) -> String) {
    for (name, w) in tensors_of(dst) {
        let v = &src[&rename(&name)];
        let d = (v - w).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "{name}");
    }
}

#[test]
fn pretrained_weights_load_by_name_and_mismatches_are_errors() {
    let dir = std::env::temp_dir().join(format!("wsbcn-pretrained-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (src, _) = build(&tiny(16, true), "bn", 4);
    // A state dict as torch saves it: our names plus num_batches_tracked.
    let mut tensors = tensors_of(&src);
    tensors.insert(
        "backbone.bn1.num_batches_tracked".into(),
        Tensor::new(&[7i64], &DEV).unwrap(),
    );
    let path = dir.join("w.safetensors");
    candle_core::safetensors::save(&tensors.clone().into_iter().collect(), &path).unwrap();
    let (dst, _) = build(&tiny(16, true), "bn", 4);
    let whole = pretrained(&path, WeightMap::None, &[]);
    let m = wsbcn_train::load_pretrained(&whole, &dst, "backbone.").unwrap();
    assert_eq!(m.tensors.len(), dst.data().lock().unwrap().len());
    assert_loaded(&tensors, &dst, str::to_string);
    // A classifier for other classes: skipped by prefix, or an error naming
    // both of its mismatched variables and loading nothing.
    let other_cfg = DeepLabConfig {
        num_classes: 7,
        ..tiny(16, true)
    };
    let (other, _) = build(&other_cfg, "bn", 4);
    let before = tensors_of(&other);
    let err = wsbcn_train::load_pretrained(&whole, &other, "backbone.")
        .unwrap_err()
        .to_string();
    for name in [
        "aux_classifier.4.bias",
        "aux_classifier.4.weight",
        "classifier.4.bias",
    ] {
        assert!(
            err.contains(&format!("the model's `{name}`")),
            "{name}: {err}"
        );
    }
    assert!(err.contains("w.safetensors"), "{err}");
    assert_loaded(&before, &other, str::to_string);
    let skip = pretrained(
        &path,
        WeightMap::None,
        &["classifier.4", "aux_classifier.4"],
    );
    let m = wsbcn_train::load_pretrained(&skip, &other, "backbone.").unwrap();
    assert_eq!(m.skipped.len(), 4);
    // A GN model has no running statistics: the file's are unexpected.
    let (gn, _) = build(&tiny(16, true), "gn", 4);
    let err = wsbcn_train::load_pretrained(&whole, &gn, "backbone.")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unexpected: `backbone.bn1.running_mean`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_imagenet_resnet_loads_as_the_backbone_of_either_head() {
    // A torchvision-named ResNet (its `fc` included) as ImageNet weights.
    let dir = std::env::temp_dir().join(format!("wsbcn-imagenet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let net = tiny(16, false).backbone;
    let (src, _) = build_model("bn", 4, |f, vb| {
        let r = ResNet::new(&net, f, vb.clone());
        vb.get((10, 128), "fc.weight")?;
        vb.get(10, "fc.bias")?;
        r.map_err(candle_core::Error::wrap)
    });
    let tensors = tensors_of(&src);
    let path = dir.join("resnet.safetensors");
    candle_core::safetensors::save(&tensors.clone().into_iter().collect(), &path).unwrap();
    for (head, head_names) in [(Head::Torchvision, "classifier"), (Head::Paper, "aspp")] {
        let cfg = DeepLabConfig {
            head,
            ..tiny(16, false)
        };
        let (dst, _) = build(&cfg, "bn", 4);
        let prefix = cfg.backbone_prefix();
        let fc = format!("{prefix}fc");
        let p = pretrained(&path, WeightMap::TorchvisionResnet, &[&fc, head_names]);
        let m = wsbcn_train::load_pretrained(&p, &dst, prefix).unwrap();
        assert_eq!(m.tensors.len(), tensors.len() - 2, "{head:?}");
        let backbone: BTreeMap<String, Tensor> = tensors_of(&dst)
            .into_iter()
            .filter(|(n, _)| !n.starts_with(head_names))
            .collect();
        assert_eq!(backbone.len(), m.tensors.len(), "{head:?}");
        for (name, w) in backbone {
            let v = &tensors[name.strip_prefix(prefix).unwrap()];
            let d = (v - w).unwrap().abs().unwrap().sum_all().unwrap();
            assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0, "{head:?} {name}");
        }
        // Without the skips the ImageNet classifier is unexpected and the
        // head is missing.
        let p = pretrained(&path, WeightMap::TorchvisionResnet, &[]);
        let err = wsbcn_train::load_pretrained(&p, &dst, prefix)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("unexpected: `fc.weight` (as `{fc}.weight`)")),
            "{err}"
        );
        assert!(err.contains(&format!("missing: `{head_names}")), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_norm_variant_has_the_same_convolutions() {
    let cfg = tiny(8, true);
    let counts: Vec<(&str, usize)> = ["bn", "bn+ws", "gn", "gn+ws", "bcn+ws", "bcn-est+ws"]
        .into_iter()
        .map(|spec| (spec, weight_parameters(&build(&cfg, spec, 4).0)))
        .collect();
    assert!(counts.iter().all(|c| c.1 == counts[0].1), "{counts:?}");
}
