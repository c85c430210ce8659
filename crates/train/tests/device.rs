//! The device a run uses: names parsed and printed back, the `device` key
//! of the shared config layout, and CUDA asked of a build without it.

use serde::{Deserialize, Serialize};
use wsbcn_train::{parse_config, same_numbers, CheckSections, DeviceSpec, RunConfig};

#[test]
fn device_names_parse_print_back_and_reject_others() {
    for (text, want) in [
        ("cpu", DeviceSpec::Cpu),
        ("cuda", DeviceSpec::Cuda(0)),
        ("cuda:3", DeviceSpec::Cuda(3)),
        (" cuda:1 ", DeviceSpec::Cuda(1)),
    ] {
        let got: DeviceSpec = text.parse().unwrap();
        assert_eq!(got, want, "{text}");
        assert_eq!(got.to_string().parse::<DeviceSpec>().unwrap(), got);
    }
    for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CPU0", ""] {
        let err = bad.parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(
            err.contains("expected cpu, cuda or cuda:N"),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
}

/// A minimal task's sections: a model with a width, data with a size that
/// must not exceed it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Model {
    width: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Data {
    size: usize,
}

impl CheckSections<Model> for Data {
    fn check(&self, model: &Model) -> Result<(), (String, String)> {
        if self.size > model.width {
            return Err((
                "data.size".into(),
                format!("{} > width {}", self.size, model.width),
            ));
        }
        Ok(())
    }
}

type Cfg = RunConfig<Model, Data>;

#[test]
fn the_shared_layout_reads_device_and_checks_every_section() {
    let text =
        "device = \"cuda:1\"\n[model]\nwidth = 8\n[data]\nsize = 4\n[norm]\nspec = \"gn+ws\"\n";
    let cfg: Cfg = parse_config(text, "x.toml", &[]).unwrap();
    assert_eq!(cfg.device, DeviceSpec::Cuda(1));
    assert_eq!((cfg.model.width, cfg.data.size), (8, 4));
    let cpu: Cfg = parse_config("[model]\nwidth = 1\n", "x.toml", &[]).unwrap();
    assert_eq!(cpu.device, DeviceSpec::Cpu, "cpu is the default");
    let over: Cfg = parse_config(text, "x.toml", &["device=\"cpu\"".into()]).unwrap();
    assert_eq!(over.device, DeviceSpec::Cpu);
    for (text, sets, needle) in [
        ("device = \"tpu\"\n", vec![], "key `device`"),
        (
            "[model]\nwidth = 2\n[data]\nsize = 3\n",
            vec![],
            "key `data.size`: 3 > width 2",
        ),
        ("[norm]\nspec = \"gn+bn\"\n", vec![], "key `norm`"),
        ("", vec!["train.steps=0".to_string()], "key `train.steps`"),
    ] {
        let err = parse_config::<Cfg>(text, "x.toml", &sets)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{text:?} {sets:?}: {err}");
    }
    // A run resumed on another device trains the same numbers.
    let a = wsbcn_train::to_toml(&cfg).unwrap();
    let b = wsbcn_train::to_toml(&over).unwrap();
    assert_ne!(a, b);
    assert!(same_numbers(&a, &b));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_in_a_build_without_it_is_an_error_naming_the_feature() {
    let err = DeviceSpec::Cuda(0).device().unwrap_err().to_string();
    assert!(
        err.contains("cuda:0") && err.contains("--features cuda"),
        "{err}"
    );
    assert!(DeviceSpec::Cpu.device().unwrap().is_cpu());
}
