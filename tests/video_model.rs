//! Video ResNets: torchvision-compatible names, shapes and parameter counts,
//! output shapes for every norm kind, batch-1 training steps.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use wsbcn_nn::LayerFactory;
use wsbcn_tests::{assert_torchvision_layout, build_model, NORM_SPECS};
use wsbcn_train::{cross_entropy, param_groups, Sgd, SgdConfig};
use wsbcn_video::video_resnet::{Arch, VideoResNet, VideoResNetConfig};

const DEV: Device = Device::Cpu;
const ARCHS: [Arch; 3] = [Arch::R3d, Arch::Mc3, Arch::R2plus1d];

fn build(cfg: &VideoResNetConfig, spec: &str, groups: usize) -> (VarMap, VideoResNet) {
    build_model(spec, groups, |f, vb| VideoResNet::new(cfg, f, vb))
}

#[test]
fn bn_variants_have_torchvision_names_shapes_and_parameter_counts() {
    for (arch, file, want_params) in [
        (Arch::R3d, "r3d_18", 33_371_472usize),
        (Arch::Mc3, "mc3_18", 11_695_440),
        (Arch::R2plus1d, "r2plus1d_18", 31_505_325),
    ] {
        let cfg = VideoResNetConfig {
            arch,
            ..VideoResNetConfig::default()
        };
        let (vm, _) = build(&cfg, "bn", 32);
        assert_torchvision_layout(&vm, &format!("torchvision_video_{file}.txt"), want_params);
    }
}

fn tiny(arch: Arch, depth: usize) -> VideoResNetConfig {
    VideoResNetConfig {
        arch,
        depth,
        width: 0.25,
        num_classes: 7,
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
    // torchvision's R(2+1)D widths rounded up for GN(32): 45 -> 64, 144 -> 160.
    let full = VideoResNetConfig::default();
    let (vm, _) = build(&full, "gn+ws", 32);
    let data = vm.data().lock().unwrap();
    assert_eq!(data["stem.0.weight"].dims(), [64, 3, 1, 7, 7]);
    assert_eq!(data["layer1.0.conv1.0.0.weight"].dims(), [160, 64, 1, 3, 3]);
    drop(data);
    let (_, deep) = build(&tiny(Arch::R3d, 34), "gn+ws", 4);
    assert_eq!(deep.forward_t(&x, true).unwrap().dims(), [2, 7]);
    let f = LayerFactory::from_spec("bn").unwrap();
    let vm = VarMap::new();
    let bad = VideoResNet::new(
        &VideoResNetConfig {
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
    let x = Tensor::randn(0f32, 1.0, (1, 3, 8, 32, 32), &DEV).unwrap();
    let y = Tensor::new(&[3u32], &DEV).unwrap();
    for arch in ARCHS {
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
