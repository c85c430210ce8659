//! Issue 19, point 1: per-frame normalization (TSM's) against PyTorch on
//! the clip viewed as `(N T, C, H, W)` (`make_per_frame_reference.py`), at
//! f64 and 1e-10: GN, LN, IN and BCN's group part take each frame's
//! statistics; per-clip statistics differ; BN is the same either way.

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::VarMap;
use wsbcn_nn::{seeded_var_builder, LayerFactory, Norm, NormConfig};
use wsbcn_testkit::Fixture;

fn norm(spec: &str) -> Norm {
    let f = LayerFactory::new(&NormConfig {
        spec: spec.into(),
        groups: 4,
        ..NormConfig::default()
    })
    .unwrap();
    let vm = VarMap::new();
    f.norm(8, seeded_var_builder(&vm, 0, DType::F64, &Device::Cpu))
        .unwrap()
}

fn worst(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[test]
fn per_frame_norms_match_pytorch_on_frames() {
    let fx = Fixture::per_frame();
    let x = fx.get("x");
    for spec in ["gn", "ln", "in", "bcn"] {
        let want = fx.get(spec);
        let frames = norm(spec).per_frame();
        assert!(frames.is_per_frame());
        let got = frames.forward_t(x, true).unwrap();
        assert_eq!(got.dims(), x.dims());
        let d = worst(&got, want);
        assert!(d < 1e-10, "{spec}: per-frame output off by {d}");
        // The clip's statistics are another normalization.
        let clip = norm(spec).forward_t(x, true).unwrap();
        assert!(worst(&clip, want) > 1e-3, "{spec}: per-clip matches too");
    }
    // BN pools N, T, H and W either way.
    let (a, b) = (norm("bn"), norm("bn").per_frame());
    let d = worst(
        &a.forward_t(x, true).unwrap(),
        &b.forward_t(x, true).unwrap(),
    );
    assert_eq!(d, 0.0);
}
