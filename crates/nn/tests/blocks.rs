//! The shared building blocks: a conv-norm from the factory, the residual
//! block, and centred padding, each against its definition written out
//! with the layers themselves.

use candle_core::{DType, Device, Module, ModuleT, Result, Tensor};
use candle_nn::VarMap;
use wsbcn_nn::{relu, seeded_var_builder, ConvGeometry, LayerFactory, Residual};
use wsbcn_testkit::{max_abs_diff, Rng};

const DEV: Device = Device::Cpu;

#[test]
fn centred_padding_is_dilation_times_half_the_kernel_per_axis() {
    let g = ConvGeometry::centered([3, 1, 7], [1, 2, 2], [1, 1, 2]);
    assert_eq!(g.padding, [1, 0, 6]);
    assert_eq!((g.stride, g.dilation, g.groups), ([1, 2, 2], [1, 1, 2], 1));
    // An odd kernel at stride 1 keeps the extent, whatever the dilation.
    let f = LayerFactory::from_spec("gn+ws").unwrap();
    let vm = VarMap::new();
    let vb = seeded_var_builder(&vm, 1, DType::F64, &DEV);
    let geo = ConvGeometry::centered([3, 5], [1, 1], [2, 3]);
    let cn = f
        .conv_norm(4, 8, [3, 5], geo, vb.pp("c"), vb.pp("n"))
        .unwrap();
    let x = Rng::new(2).randn(&[2, 4, 9, 11], DType::F64, &DEV).unwrap();
    assert_eq!(cn.forward_t(&x, true).unwrap().dims(), &[2, 8, 9, 11]);
}

#[test]
fn a_conv_norm_is_its_norm_after_its_conv_with_the_factorys_names() -> Result<()> {
    let f = LayerFactory::from_spec("bcn-est+ws").unwrap();
    let vm = VarMap::new();
    let vb = seeded_var_builder(&vm, 3, DType::F64, &DEV);
    let geo = ConvGeometry::centered([3, 3, 3], [1, 2, 2], [1; 3]);
    let cn = f
        .conv_norm(4, 8, [3, 3, 3], geo, vb.pp("conv1"), vb.pp("bn1"))
        .unwrap();
    let x = Rng::new(4).randn(&[2, 4, 3, 6, 6], DType::F64, &DEV)?;
    let by_hand = cn.norm().forward_t(&cn.conv().forward(&x)?, false)?;
    assert_eq!(max_abs_diff(&cn.forward_t(&x, false)?, &by_hand)?, 0.0);
    let names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
    assert!(names.iter().any(|n| n == "conv1.weight"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("bn1.")), "{names:?}");
    assert!(names
        .iter()
        .all(|n| n.starts_with("conv1.") || n.starts_with("bn1.")));
    Ok(())
}

#[test]
fn a_residual_block_is_relu_of_its_relu_chained_branch_plus_its_shortcut() -> Result<()> {
    let f = LayerFactory::from_spec("gn").unwrap();
    let vm = VarMap::new();
    let vb = seeded_var_builder(&vm, 5, DType::F64, &DEV);
    let unit = |cin, cout, k: usize, s, i: usize| {
        let geo = ConvGeometry::centered([k, k], [s, s], [1, 1]);
        f.conv_norm(
            cin,
            cout,
            [k, k],
            geo,
            vb.pp(format!("c{i}")),
            vb.pp(format!("n{i}")),
        )
        .unwrap()
    };
    let branch = vec![
        unit(4, 6, 1, 1, 1),
        unit(6, 6, 3, 2, 2),
        unit(6, 8, 1, 1, 3),
    ];
    let shortcut = unit(4, 8, 1, 2, 4);
    let block = Residual::new(branch.clone(), Some(shortcut.clone())).unwrap();
    let mut rng = Rng::new(6);
    let x = rng.randn(&[2, 4, 8, 8], DType::F64, &DEV)?;
    let u = rng.randn(&[2, 4, 8, 8], DType::F64, &DEV)?;
    let chain = |v: &Tensor| -> Result<Tensor> {
        let y = relu(&branch[0].forward_t(v, true)?)?;
        let y = relu(&branch[1].forward_t(&y, true)?)?;
        branch[2].forward_t(&y, true)
    };
    let want = relu(&(chain(&x)? + shortcut.forward_t(&x, true)?)?)?;
    assert_eq!(
        max_abs_diff(&block.forward_t(&x, true).unwrap(), &want)?,
        0.0
    );
    // The split form feeds the branch `u` and the shortcut `x` (TSM).
    let want = relu(&(chain(&u)? + shortcut.forward_t(&x, true)?)?)?;
    assert_eq!(
        max_abs_diff(&block.forward_split(&u, &x, true).unwrap(), &want)?,
        0.0
    );
    // Without a projection the shortcut is `x` itself.
    let single = unit(4, 4, 3, 1, 5);
    let plain = Residual::new(vec![single.clone()], None).unwrap();
    let want = relu(&(single.forward_t(&x, true)? + &x)?)?;
    assert_eq!(
        max_abs_diff(&plain.forward_t(&x, true).unwrap(), &want)?,
        0.0
    );
    let err = Residual::<2>::new(vec![], None).unwrap_err().to_string();
    assert!(err.contains("at least one conv"), "{err}");
    Ok(())
}
