//! Video models: torchvision-compatible names, shapes and parameter counts
//! (and mmaction2's count for I3D), the temporal shift's exact values and
//! gradient, output shapes for every model and norm kind, batch-1 training
//! steps.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use wsbcn_nn::LayerFactory;
use wsbcn_testkit::models::{
    assert_pytorch_layout, assert_ws_coverage, build_model, fixture_shapes, pytorch_variables,
    trainable_count, weight_parameters, NORM_SPECS,
};
use wsbcn_train::{cross_entropy, param_groups, Sgd, SgdConfig};
use wsbcn_video::video_model::{Arch, VideoModel, VideoModelConfig};

const DEV: Device = Device::Cpu;
const ARCHS: [Arch; 6] = [
    Arch::R3d,
    Arch::Mc3,
    Arch::R2plus1d,
    Arch::I3d,
    Arch::Tsm,
    Arch::C3d,
];

fn build(cfg: &VideoModelConfig, spec: &str, groups: usize) -> (VarMap, VideoModel) {
    build_model(spec, groups, |f, vb| VideoModel::new(cfg, f, vb))
}

#[test]
fn bn_variants_have_torchvision_names_shapes_and_parameter_counts() {
    for (arch, file, want_params) in [
        (Arch::R3d, "r3d_18", 33_371_472usize),
        (Arch::Mc3, "mc3_18", 11_695_440),
        (Arch::R2plus1d, "r2plus1d_18", 31_505_325),
    ] {
        let cfg = VideoModelConfig {
            arch,
            ..VideoModelConfig::default()
        };
        let (vm, _) = build(&cfg, "bn", 32);
        assert_pytorch_layout(&vm, &format!("torchvision_video_{file}.txt"), want_params);
    }
}

fn tiny(arch: Arch, depth: usize) -> VideoModelConfig {
    let depth = match arch {
        Arch::I3d | Arch::Tsm => 50,
        _ => depth,
    };
    VideoModelConfig {
        arch,
        depth,
        width: 0.25,
        num_classes: 7,
        ..VideoModelConfig::default()
    }
}

#[test]
fn tsm_is_torchvision_resnet50_and_i3d_has_mmaction2s_parameter_count() {
    // TSM-R50: torchvision's resnet50, names and shapes (2D kernels).
    let cfg = VideoModelConfig {
        arch: Arch::Tsm,
        depth: 50,
        num_classes: 1000,
        ..VideoModelConfig::default()
    };
    let (vm, _) = build(&cfg, "bn", 32);
    let got: std::collections::BTreeMap<String, Vec<usize>> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| !n.starts_with("fc."))
        .map(|(n, v)| (n.clone(), v.dims().to_vec()))
        .collect();
    let want: std::collections::BTreeMap<String, Vec<usize>> =
        pytorch_variables("torchvision_deeplabv3_resnet50.txt")
            .into_iter()
            .filter_map(|(n, d)| n.strip_prefix("backbone.").map(|n| (n.to_string(), d)))
            .collect();
    assert_eq!(got, want);
    // torchvision's resnet50 (1000 classes): 25,557,032 parameters.
    assert_eq!(trainable_count(&vm), 25_557_032);
    // I3D-R50, 400 classes: mmaction2's model zoo lists 28.04M.
    let cfg = VideoModelConfig {
        arch: Arch::I3d,
        depth: 50,
        num_classes: 400,
        ..VideoModelConfig::default()
    };
    let (vm, _) = build(&cfg, "bn", 32);
    assert_eq!(trainable_count(&vm), 28_043_472);
    let data = vm.data().lock().unwrap();
    assert_eq!(data["conv1.weight"].dims(), [64, 3, 5, 7, 7]);
    assert_eq!(data["layer4.1.conv1.weight"].dims(), [512, 2048, 3, 1, 1]);
    assert_eq!(data["layer4.2.conv1.weight"].dims(), [512, 2048, 1, 1, 1]);
}

#[test]
fn temporal_shift_moves_exact_slices_and_its_gradient_shifts_back() {
    use wsbcn_video::temporal_shift::temporal_shift;
    // Frames (N T, C, H, W) = (3, 8, 1, 1) of one clip of 3 frames,
    // x[t, c] = 100 c + t + 1; shift_div 4: fold 2. `by_channel` lists
    // each channel's values over time.
    let by_channel = |t: &Tensor| -> Vec<Vec<f32>> {
        t.reshape((3, 8))
            .unwrap()
            .t()
            .unwrap()
            .to_vec2::<f32>()
            .unwrap()
    };
    let vals: Vec<f32> = (0..3)
        .flat_map(|t| (0..8).map(move |c| (100 * c + t + 1) as f32))
        .collect();
    let x = candle_core::Var::from_tensor(&Tensor::from_vec(vals, (3, 8, 1, 1), &DEV).unwrap())
        .unwrap();
    let y = temporal_shift(x.as_tensor(), 3, 4).unwrap();
    let got = by_channel(&y);
    assert_eq!(got[0], [2.0, 3.0, 0.0], "channel 0 takes the next frame");
    assert_eq!(got[1], [102.0, 103.0, 0.0]);
    assert_eq!(
        got[2],
        [0.0, 201.0, 202.0],
        "channel 2 takes the previous frame"
    );
    assert_eq!(got[3], [0.0, 301.0, 302.0]);
    assert_eq!(got[4], [401.0, 402.0, 403.0], "the rest stay");
    // Two clips of 3 frames: the second clip's first frame takes nothing
    // from the first clip's last.
    let two = Tensor::cat(&[x.as_tensor(), x.as_tensor()], 0).unwrap();
    let y2 = temporal_shift(&two, 3, 4).unwrap();
    assert_eq!(by_channel(&y2.narrow(0, 3, 3).unwrap()), got);
    assert!(
        temporal_shift(&two, 4, 4).is_err(),
        "6 frames are not clips of 4"
    );
    // Clips of one frame: the shifted channels come from outside the clip.
    let single = by_channel(&temporal_shift(x.as_tensor(), 1, 4).unwrap());
    assert_eq!(single[0], [0.0; 3]);
    assert_eq!(single[3], [0.0; 3]);
    assert_eq!(single[4], [401.0, 402.0, 403.0]);
    // d/dx sum(y * w) is w shifted the opposite way; w[t, c] = 3 c + t.
    let w = Tensor::arange(0f32, 24.0, &DEV)
        .unwrap()
        .reshape((8, 3))
        .unwrap()
        .t()
        .unwrap()
        .reshape((3, 8, 1, 1))
        .unwrap();
    let grads = (y * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let g = by_channel(grads.get(&x).unwrap());
    assert_eq!(g[0], [0.0, 0.0, 1.0], "x[t] fed y[t-1] in channel 0");
    assert_eq!(g[2], [7.0, 8.0, 0.0], "x[t] fed y[t+1] in channel 2");
    assert_eq!(g[4], [12.0, 13.0, 14.0]);
}

#[test]
fn every_conv_of_every_arch_is_weight_standardized() {
    // The heads are linear layers, so every conv carries the spec's WS.
    let x = Tensor::randn(0f32, 1.0, (2, 3, 4, 20, 18), &DEV).unwrap();
    for arch in ARCHS {
        let cfg = tiny(arch, 18);
        assert_ws_coverage(
            |f, vb| VideoModel::new(&cfg, f, vb),
            |m| {
                m.forward_t(&x, true)
                    .map_err(candle_core::Error::wrap)?
                    .sum_all()
            },
            &[],
        );
    }
}

#[test]
fn output_shapes_for_every_arch_and_norm() {
    let x = Tensor::randn(0f32, 1.0, (2, 3, 4, 20, 18), &DEV).unwrap();
    for arch in ARCHS {
        for spec in NORM_SPECS {
            let (_, model) = build(&tiny(arch, 18), spec, 4);
            for train in [true, false] {
                let y = model.forward_t(&x, train).unwrap();
                assert_eq!(y.dims(), [2, 7], "{arch:?} {spec} train={train}");
            }
        }
    }
    // torchvision's R(2+1)D widths kept under BCN(32): 45 and 144, whose
    // group parts take 15 and 24 groups.
    let full = VideoModelConfig::default();
    let (vm, _) = build(&full, "bcn+ws", 32);
    let data = vm.data().lock().unwrap();
    assert_eq!(data["stem.0.weight"].dims(), [45, 3, 1, 7, 7]);
    assert_eq!(data["stem.1.weight"].dims(), [15]);
    assert_eq!(data["layer1.0.conv1.0.0.weight"].dims(), [144, 64, 1, 3, 3]);
    assert_eq!(data["layer1.0.conv1.0.1.weight"].dims(), [24]);
    drop(data);
    let (_, deep) = build(&tiny(Arch::R3d, 34), "gn+ws", 4);
    assert_eq!(deep.forward_t(&x, true).unwrap().dims(), [2, 7]);
    let f = LayerFactory::from_spec("bn").unwrap();
    let vm = VarMap::new();
    let bad = VideoModel::new(
        &VideoModelConfig {
            depth: 50,
            ..tiny(Arch::R3d, 18)
        },
        &f,
        VarBuilder::from_varmap(&vm, DType::F32, &DEV),
    );
    assert!(bad.unwrap_err().to_string().contains("depth 50"));
    let (_, model) = build(&tiny(Arch::Mc3, 18), "bn", 4);
    let err = model
        .forward_t(
            &Tensor::zeros((1, 3, 8, 8), DType::F32, &DEV).unwrap(),
            true,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("(N, 3, T, H, W)"), "{err}");
}

#[test]
fn batch_one_training_steps_are_finite_for_every_norm() {
    let y = Tensor::new(&[3u32], &DEV).unwrap();
    for arch in ARCHS {
        // I3D divides time by 8 and space by 32: at batch 1, BN's last
        // layer needs 64x64 frames to see more than one value per channel.
        let side = if arch == Arch::I3d { 64 } else { 32 };
        let x = Tensor::randn(0f32, 1.0, (1, 3, 8, side, side), &DEV).unwrap();
        for spec in NORM_SPECS {
            let (vm, model) = build(&tiny(arch, 18), spec, 4);
            let cfg = SgdConfig {
                lr: 0.01,
                ..SgdConfig::default()
            };
            let mut sgd = Sgd::new(param_groups(&vm, &cfg), &cfg);
            for step in 0..2 {
                let loss = cross_entropy(&model.forward_t(&x, true).unwrap(), &y, 0.0).unwrap();
                let v = loss.to_scalar::<f32>().unwrap();
                assert!(v.is_finite(), "{arch:?} {spec} step {step}: loss {v}");
                let grads = sgd.grads(&loss.backward().unwrap());
                assert!(!grads.is_empty());
                for (n, g) in &grads {
                    let s = g.sqr().unwrap().sum_all().unwrap();
                    let s = s.to_scalar::<f32>().unwrap();
                    assert!(
                        s.is_finite(),
                        "{arch:?} {spec}: gradient of {n} is not finite"
                    );
                }
                sgd.step(&grads, 0.01).unwrap();
            }
        }
    }
}

#[test]
fn every_norm_variant_has_the_same_convolutions() {
    // R(2+1)D at quarter width has 11- and 36-channel layers that 8 groups
    // do not divide: they keep their width, and GN / BCN there take the
    // largest group count that divides them.
    for arch in [Arch::R3d, Arch::Mc3, Arch::R2plus1d] {
        let cfg = tiny(arch, 18);
        let counts: Vec<(&str, usize)> = ["bn", "bn+ws", "gn", "gn+ws", "bcn+ws", "bcn-est+ws"]
            .into_iter()
            .map(|spec| (spec, weight_parameters(&build(&cfg, spec, 8).0)))
            .collect();
        assert!(
            counts.iter().all(|c| c.1 == counts[0].1),
            "{arch:?}: {counts:?}"
        );
    }
    let f = LayerFactory::new(&wsbcn_nn::NormConfig {
        spec: "gn".into(),
        groups: 8,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        [11, 36, 16, 144, 7, 3].map(|c| f.groups_for(c)),
        [1, 6, 8, 8, 7, 3]
    );
}

/// The largest difference between frame `i` of two `(N, C, T, H, W)`
/// feature maps.
fn frame_diff(a: &Tensor, b: &Tensor, i: usize) -> f32 {
    (a.narrow(2, i, 1).unwrap() - b.narrow(2, i, 1).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Issue 19, point 2: I3D's stages have the shapes of mmaction2's
/// `i3d_r50` (`ResNet3d` with `conv1_kernel=(5, 7, 7)`, `conv1_stride_t=2`,
/// `pool1_stride_t=2`, `with_pool2=True`), as a PyTorch definition after
/// it gives them (`fixtures/make_i3d_shapes.py`) and as they work out by
/// hand for a (1, 3, 16, 64, 64) clip at quarter width:
/// - conv1: kernel (5, 7, 7), stride (2, 2, 2), padding (2, 3, 3): T 16 -> 8,
///   H 64 -> 32;
/// - pool1: kernel (1, 3, 3), stride (2, 2, 2), padding (0, 1, 1): T 8 -> 4,
///   H 32 -> 16;
/// - layer1 keeps (4, 16, 16), then pool2 (2, 1, 1) makes T 2;
/// - layers 2-4 halve H and W.
///
/// pool1 spans one frame. So the stem's first output frame (conv frame 0,
/// from input frames up to 2) ignores input frames 3 and 4, which a 3-frame
/// pool (conv frames up to 1, input frames up to 4) would take in.
#[test]
fn i3d_stages_have_mmaction2s_shapes_and_its_stem_pool_keeps_frames_apart() {
    use wsbcn_video::bottleneck_resnet::BottleneckResNet;
    let cfg = tiny(Arch::I3d, 50);
    let (_, model) = build_model("bn", 32, |f, vb| BottleneckResNet::new(&cfg, f, vb));
    let x = Tensor::randn(0f32, 1.0, (1, 3, 16, 64, 64), &DEV).unwrap();
    let stages = model.stages(&x, false).unwrap();
    let dims: Vec<Vec<usize>> = stages.iter().map(|t| t.dims().to_vec()).collect();
    let want = fixture_shapes("i3d_r50_stage_shapes.txt");
    let names: Vec<&str> = want.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["stem", "layer1", "layer2", "layer3", "layer4"]);
    let want: Vec<Vec<usize>> = want.into_iter().map(|(_, d)| d).collect();
    assert_eq!(dims, want, "against the PyTorch definition");
    assert_eq!(
        dims,
        [
            [1, 16, 4, 16, 16],
            [1, 64, 2, 16, 16],
            [1, 128, 2, 8, 8],
            [1, 256, 2, 4, 4],
            [1, 512, 2, 2, 2],
        ],
        "by hand"
    );
    // Input frames 3 and 4 replaced.
    let other = Tensor::randn(0f32, 1.0, (1, 3, 2, 64, 64), &DEV).unwrap();
    let y = Tensor::cat(
        &[
            x.narrow(2, 0, 3).unwrap(),
            other,
            x.narrow(2, 5, 11).unwrap(),
        ],
        2,
    )
    .unwrap();
    let changed = model.stages(&y, false).unwrap();
    let diff = |i: usize| frame_diff(&stages[0], &changed[0], i);
    assert_eq!(diff(0), 0.0, "the stem's frame 0 saw input frames 3-4");
    assert!(diff(1) > 0.0, "frame 1 comes from input frames 2-6");
}

/// Issue 19, point 1: TSM normalizes each frame on its own. Its stem (a
/// 7x7 conv, GN, a 3x3 pool, all 2D on the frames) then maps each input frame to its output
/// frame alone: changing input frame 2 leaves stem frame 0 as it was, which
/// per-clip GN statistics would not.
#[test]
fn tsm_norms_take_statistics_per_frame() {
    use wsbcn_video::bottleneck_resnet::BottleneckResNet;
    let cfg = tiny(Arch::Tsm, 50);
    let (_, model) = build_model("gn", 4, |f, vb| BottleneckResNet::new(&cfg, f, vb));
    let x = Tensor::randn(0f32, 1.0, (1, 3, 4, 32, 32), &DEV).unwrap();
    let other = (Tensor::randn(0f32, 1.0, (1, 3, 1, 32, 32), &DEV).unwrap() * 5.0).unwrap();
    let y = Tensor::cat(
        &[
            x.narrow(2, 0, 2).unwrap(),
            other,
            x.narrow(2, 3, 1).unwrap(),
        ],
        2,
    )
    .unwrap();
    let stem = |x: &Tensor| model.stages(x, true).unwrap().remove(0);
    let (a, b) = (stem(&x), stem(&y));
    let d = |i: usize| frame_diff(&a, &b, i);
    assert_eq!(d(0), 0.0, "frame 0 depends on frame 2's statistics");
    assert!(d(2) > 0.0);
}
