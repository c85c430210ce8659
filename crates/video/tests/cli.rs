//! The binary's shared command line (the engine's `cli`): `--device`
//! reaches it, and a device this build lacks is a clear error.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wsbcn-video"))
}

#[test]
fn device_flag_reaches_the_binary_and_cuda_without_the_feature_is_a_clear_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = root.join("configs/video/fashion_ssv2_r3d10_gn_ws.toml");
    let run_dir = std::env::temp_dir().join(format!("wsbcn-video-cli-{}", std::process::id()));
    let out = bin()
        .args(["train", "--config"])
        .arg(&config)
        .arg("--run-dir")
        .arg(&run_dir)
        .args(["--device", "cuda:1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    if cfg!(feature = "cuda") {
        assert!(err.contains("cuda:1"), "{err}");
    } else {
        assert!(
            err.contains("wsbcn-video: device cuda:1") && err.contains("--features cuda"),
            "{err}"
        );
    }
    assert!(
        !run_dir.exists(),
        "nothing is written before the device opens"
    );
    let out = bin()
        .args(["train", "--config"])
        .arg(&config)
        .args(["--device", "gpu"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("expected cpu, cuda or cuda:N"), "{err}");
}
