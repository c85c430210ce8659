//! The check every task binary's tests run on the engine's shared command
//! line (`wsbcn_train::cli`).

use std::path::Path;
use std::process::{Command, Output};

/// Asserts that `--device` reaches the binary `bin` (named `name`) when it
/// trains `config`: `cuda:1` fails before anything is written (naming the
/// `cuda` feature when the binary was built without it, `cuda_built`
/// false), and an unknown device name is a clear error.
pub fn assert_device_flag(bin: &str, name: &str, config: &Path, cuda_built: bool) {
    let run_dir = std::env::temp_dir().join(format!("{name}-cli-{}", std::process::id()));
    let train = |device: &str| -> Output {
        Command::new(bin)
            .args(["train", "--config"])
            .arg(config)
            .arg("--run-dir")
            .arg(&run_dir)
            .args(["--device", device])
            .output()
            .unwrap_or_else(|e| panic!("{bin}: {e}"))
    };
    let out = train("cuda:1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let want = format!("{name}: device cuda:1");
    assert!(err.contains(&want), "{err}");
    if !cuda_built {
        assert!(err.contains("--features cuda"), "{err}");
    }
    assert!(
        !run_dir.exists(),
        "nothing is written before the device opens"
    );
    let out = train("gpu");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("expected cpu, cuda or cuda:N"), "{err}");
}
