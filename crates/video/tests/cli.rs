//! The binary's shared command line (the engine's `cli`): `--device`
//! reaches it, and a device this build lacks is a clear error.

use std::path::Path;

#[test]
fn device_flag_reaches_the_binary_and_cuda_without_the_feature_is_a_clear_error() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/video/fashion_ssv2_r3d10_gn_ws.toml");
    let bin = env!("CARGO_BIN_EXE_wsbcn-video");
    let cuda = cfg!(feature = "cuda");
    wsbcn_testkit::cli::assert_device_flag(bin, "wsbcn-video", &config, cuda);
}
