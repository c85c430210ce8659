//! Pretrained weights end to end (issue 20).
//!
//! - PyTorch checkpoints of `make_pytorch_models.py` (torchvision's
//!   DeepLabV3 layout, the WS/BCN authors' DeepLabv3, torchvision's
//!   R(2+1)D, a 2D ResNet for TSM) load into wsbcn without Python and give
//!   PyTorch's eval-mode logits to 1e-4, on a real VOC photo read and
//!   normalized by wsbcn's own loader, and on random clips.
//! - 2D weights into 3D: I3D inflated from a 2D ResNet gives, on a clip
//!   whose frames are all one image, the 2D network's features on that
//!   image (frames far enough from the clip's ends that zero padding in
//!   time does not reach them); TSM without shift gives each frame's 2D
//!   features.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::path::PathBuf;
use wsbcn_seg::augment::{eval_sample, AugmentConfig};
use wsbcn_seg::deeplab::{DeepLabConfig, DeepLabV3, Head};
use wsbcn_seg::metrics::ConfusionMatrix;
use wsbcn_seg::palette::read_label;
use wsbcn_seg::resnet::{ResNet, ResNetConfig};
use wsbcn_seg::task::collate;
use wsbcn_testkit::max_abs_diff;
use wsbcn_testkit::models::build_model;
use wsbcn_train::pretrained::Matched;
use wsbcn_train::{load_pretrained, PretrainedConfig, WeightMap};
use wsbcn_video::bottleneck_resnet::BottleneckResNet;
use wsbcn_video::video_model::{Arch, VideoModel, VideoModelConfig};

const DEV: Device = Device::Cpu;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/testkit/fixtures/pytorch_models")
        .join(name)
}

fn outputs() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("outputs.safetensors"), &DEV).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    max_abs_diff(a, b).unwrap()
}

/// The largest magnitude in `t`.
fn magnitude(t: &Tensor) -> f64 {
    max_diff(t, &t.zeros_like().unwrap())
}

/// Asserts that frame `t` of `(N, C, T, H, W)` features equals the 2D
/// features `want: (N, C, H, W)` to 1e-5 of their magnitude (at least 1).
fn assert_frame_is(feats: &Tensor, t: usize, want: &Tensor) {
    let frame = feats.narrow(2, t, 1).unwrap().squeeze(2).unwrap();
    let (d, scale) = (max_diff(&frame, want), magnitude(want));
    assert!(
        d <= 1e-5 * scale.max(1.0),
        "frame {t}: {d} (features up to {scale})"
    );
}

/// Loads `file` into every variable of `vm`.
fn load_all(vm: &VarMap, file: PathBuf, map: WeightMap, backbone: &str) -> Matched {
    let cfg = PretrainedConfig {
        file,
        map,
        skip: vec![],
    };
    let m = load_pretrained(&cfg, vm, backbone).unwrap();
    assert_eq!(
        m.tensors.len(),
        vm.data().lock().unwrap().len(),
        "every variable"
    );
    m
}

fn load(vm: &VarMap, file: &str, map: WeightMap, backbone: &str) {
    load_all(vm, fixture(file), map, backbone);
}

/// A bottleneck video model of the fixtures' sizes (ResNet-50 layout at
/// 1/16 width, 10 classes).
fn bottleneck(arch: Arch, shift_div: usize) -> VideoModelConfig {
    VideoModelConfig {
        arch,
        depth: 50,
        width: 1.0 / 16.0,
        num_classes: 10,
        shift_div,
        ..VideoModelConfig::default()
    }
}

/// The fixtures' DeepLabV3 (ResNet-50 layout at 1/16 width, ASPP of 16
/// channels) with `head`.
fn deeplab(head: Head) -> DeepLabConfig {
    let (os, rates, aux) = match head {
        Head::Torchvision => (8, [12, 24, 36], true),
        Head::Paper => (16, [6, 12, 18], false),
    };
    DeepLabConfig {
        backbone: ResNetConfig {
            depth: 50,
            width: 1.0 / 16.0,
            output_stride: os,
            ..ResNetConfig::default()
        },
        head,
        aspp_channels: 16,
        aspp_rates: rates,
        aux_head: aux,
        ..DeepLabConfig::default()
    }
}

#[test]
fn deeplabv3_checkpoints_give_pytorchs_logits_on_a_voc_photo() {
    let out = outputs();
    // The photo through wsbcn's own reading and normalization.
    let image = image::open(fixture("photo.png")).unwrap().to_rgb8();
    let mask = read_label(&fixture("photo_mask.png")).unwrap();
    let sample = eval_sample(&image, &mask, &AugmentConfig::default());
    let (x, _) = collate(&[sample], &DEV).unwrap();
    assert!(max_diff(&x, &out["photo"]) <= 1e-6, "normalization");
    for (head, file, name) in [
        (
            Head::Torchvision,
            "deeplabv3_torchvision.pth",
            "deeplabv3_torchvision",
        ),
        (Head::Paper, "deeplabv3_paper.pth", "deeplabv3_paper"),
    ] {
        let cfg = deeplab(head);
        let (vm, model) = build_model("bn", 32, |f, vb| DeepLabV3::new(&cfg, f, vb));
        load(&vm, file, WeightMap::None, cfg.backbone_prefix());
        let y = model.forward_t(&x, false).unwrap();
        let d = max_diff(&y.logits, &out[name]);
        assert!(d < 1e-4, "{name}: logits differ by {d}");
        if let Some(aux) = y.aux {
            let d = max_diff(&aux, &out["deeplabv3_torchvision_aux"]);
            assert!(d < 1e-4, "{name}: auxiliary logits differ by {d}");
        }
        // The metric on the real mask equals PyTorch's confusion matrix of
        // the same predictions (the argmax of PyTorch's logits: near-ties
        // of random weights would make wsbcn's argmax flip a pixel).
        let pred: Vec<u8> = out[name]
            .argmax(1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<u32>()
            .unwrap()
            .into_iter()
            .map(|c| c as u8)
            .collect();
        let mut cm = ConfusionMatrix::new(21);
        cm.add(&mask.data, &pred).unwrap();
        let want: Vec<Vec<f32>> = out[&format!("confusion_{}", &name[10..])]
            .to_vec2()
            .unwrap();
        for (gt, row) in want.iter().enumerate() {
            for (p, &n) in row.iter().enumerate() {
                assert_eq!(cm.count(gt, p), n as u64, "{name}: confusion ({gt}, {p})");
            }
        }
    }
}

#[test]
fn video_checkpoints_give_pytorchs_logits() {
    let out = outputs();
    let clip = &out["clip"];
    // torchvision's R(2+1)D, names as they are.
    let cfg = VideoModelConfig {
        arch: Arch::R2plus1d,
        depth: 10,
        width: 0.125,
        num_classes: 10,
        ..VideoModelConfig::default()
    };
    let (vm, model) = build_model("bn", 32, |f, vb| VideoModel::new(&cfg, f, vb));
    load(&vm, "r2plus1d.pth", WeightMap::None, "");
    let d = max_diff(&model.forward_t(clip, false).unwrap(), &out["r2plus1d"]);
    assert!(d < 1e-4, "R(2+1)D: logits differ by {d}");
    // TSM from a 2D ResNet checkpoint: the same network on the frames.
    let cfg = bottleneck(Arch::Tsm, 8);
    let (vm, model) = build_model("bn", 32, |f, vb| VideoModel::new(&cfg, f, vb));
    load(&vm, "resnet50_2d.pth", WeightMap::TorchvisionResnet, "");
    let d = max_diff(&model.forward_t(clip, false).unwrap(), &out["tsm"]);
    assert!(d < 1e-4, "TSM: logits differ by {d}");
}

/// A 2D ResNet-50 at 1/16 width (output stride 32) with random running
/// statistics and affines, saved with torchvision's names (and a 10-class
/// `fc`) as an ImageNet checkpoint would be; and the 2D network.
fn imagenet_resnet(dir: &std::path::Path) -> (PathBuf, ResNet) {
    let cfg = ResNetConfig {
        depth: 50,
        width: 1.0 / 16.0,
        output_stride: 32,
        ..ResNetConfig::default()
    };
    let (vm, net) = build_model("bn", 32, |f, vb| ResNet::new(&cfg, f, vb));
    let mut tensors = HashMap::new();
    for (name, var) in vm.data().lock().unwrap().iter() {
        let n = var.elem_count();
        let t = match name.rsplit('.').next().unwrap() {
            "running_var" | "weight" if var.rank() == 1 => {
                Tensor::rand(0.5f32, 1.5, n, &DEV).unwrap()
            }
            "running_mean" | "bias" => Tensor::randn(0f32, 0.2, n, &DEV).unwrap(),
            _ => var.as_tensor().copy().unwrap(),
        };
        var.set(&t).unwrap();
        tensors.insert(name.clone(), t);
    }
    tensors.insert(
        "fc.weight".into(),
        Tensor::randn(0f32, 0.1, (10, 128), &DEV).unwrap(),
    );
    tensors.insert(
        "fc.bias".into(),
        Tensor::zeros(10, DType::F32, &DEV).unwrap(),
    );
    let path = dir.join("resnet50_imagenet.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    (path, net)
}

#[test]
fn i3d_inflated_from_2d_sees_a_still_clip_as_the_2d_network_sees_its_image() {
    let dir = std::env::temp_dir().join(format!("wsbcn-inflate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (path, net2d) = imagenet_resnet(&dir);
    let image = Tensor::randn(0f32, 1.0, (1, 3, 32, 32), &DEV).unwrap();
    let (_, want) = net2d.forward_t(&image, false).unwrap();
    // I3D strides time by 8 (conv1, pool1, pool2). Zero padding in time
    // reaches 2 frames in from each end after the stem and layer1 (conv1's
    // 5 frames, layer1's three 3x1x1 convs) and 6 more after layers 2-4
    // (six 3x1x1 convs): with 160 frames, 20 at layer4, frames 8-11 are
    // clear of it.
    let frames = 160;
    let clip = image
        .unsqueeze(2)
        .unwrap()
        .repeat((1, 1, frames, 1, 1))
        .unwrap();
    let cfg = bottleneck(Arch::I3d, 8);
    let (vm, i3d) = build_model("bn", 32, |f, vb| BottleneckResNet::new(&cfg, f, vb));
    let m = load_all(&vm, path, WeightMap::TorchvisionResnet, "");
    assert_eq!(
        m.count(wsbcn_train::pretrained::Fit::Inflated),
        53,
        "every conv"
    );
    let feats = i3d.stages(&clip, false).unwrap().pop().unwrap();
    assert_eq!(feats.dim(2).unwrap(), frames / 8);
    for t in 8..12 {
        assert_frame_is(&feats, t, &want);
    }
    // At the ends the padding shows: the inflation is not a trivial copy.
    let end = feats.narrow(2, 0, 1).unwrap().squeeze(2).unwrap();
    assert!(max_diff(&end, &want) > 1e-3 * magnitude(&want));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tsm_without_shift_is_the_2d_network_on_every_frame() {
    let dir = std::env::temp_dir().join(format!("wsbcn-tsm2d-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (path, net2d) = imagenet_resnet(&dir);
    let clip = Tensor::randn(0f32, 1.0, (1, 3, 4, 32, 32), &DEV).unwrap();
    // shift_div above the channel count: no channel moves.
    let cfg = bottleneck(Arch::Tsm, 1 << 20);
    let (vm, tsm) = build_model("bn", 32, |f, vb| BottleneckResNet::new(&cfg, f, vb));
    load_all(&vm, path, WeightMap::TorchvisionResnet, "");
    let feats = tsm.stages(&clip, false).unwrap().pop().unwrap();
    for t in 0..4 {
        let image = clip.narrow(2, t, 1).unwrap().squeeze(2).unwrap();
        let (_, want) = net2d.forward_t(&image, false).unwrap();
        assert_frame_is(&feats, t, &want);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
