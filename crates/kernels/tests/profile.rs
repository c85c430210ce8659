//! The op profile: off by default, and once on, one call per op in its
//! slot (forward for the forward pass, backward for the gradient), cleared
//! by `take`. In its own test binary: the counters are process-wide.

use candle_core::{Device, Tensor, Var};
use std::sync::Arc;
use wsbcn_kernels::profile::{self, Direction, Kind};
use wsbcn_kernels::{relu, MaxPool, PixelCrossEntropy};

/// ReLU, a max pooling and the pixel cross-entropy, forward and backward.
fn step(x: &Var) -> candle_core::Result<()> {
    let pool = MaxPool {
        kernel: [1, 2, 2],
        stride: [1, 2, 2],
        padding: [0, 0, 0],
    };
    let y = relu(x.as_tensor())?
        .unsqueeze(2)?
        .apply_op1(pool)?
        .squeeze(2)?;
    let ce = PixelCrossEntropy {
        dims: (1, 3, 4),
        targets: Arc::new(vec![0, 1, 2, 1]),
        coef: Arc::new(vec![0.25; 4]),
    };
    y.apply_op1(ce)?.backward()?;
    Ok(())
}

#[test]
fn each_op_call_lands_in_its_slot_once() {
    let x =
        Var::from_tensor(&Tensor::randn(0f32, 1.0, (1, 3, 4, 4), &Device::Cpu).unwrap()).unwrap();
    step(&x).unwrap();
    assert_eq!(profile::take(), Default::default(), "recorded while off");
    profile::enable();
    step(&x).unwrap();
    step(&x).unwrap();
    let t = profile::take();
    for kind in Kind::ALL {
        for dir in [Direction::Forward, Direction::Backward] {
            let want = match kind {
                Kind::ActivationPool => 4,
                Kind::Loss => 2,
                _ => 0,
            };
            let s = t.get(dir, kind);
            assert_eq!(s.calls, want, "{kind:?} {dir:?}");
            assert_eq!(s.seconds > 0.0, want > 0, "{kind:?} {dir:?}");
        }
    }
    assert_eq!(profile::take(), Default::default(), "take clears");
}
