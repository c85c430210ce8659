//! Files the tests write: fresh temporary folders and stand-in
//! Fashion-MNIST IDX files (the generators' input, without the Debian
//! package).

use std::path::{Path, PathBuf};

/// An empty folder `<temp>/wsbcn-<crate_tag>-<name>-<pid>`, emptied if it
/// exists.
pub fn fresh_dir(crate_tag: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wsbcn-{crate_tag}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes an IDX file (big-endian dims, unsigned bytes).
pub fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// Stand-in Fashion-MNIST IDX files in the folder `mnist`: garment `i` has
/// class `i % 10` and is the rectangle x 6..22, y 4..24 at intensity 200,
/// `hollow` ones black inside x 9..19, y 7..21.
pub fn stand_in_mnist(mnist: &Path, hollow: bool) -> PathBuf {
    std::fs::create_dir_all(mnist).unwrap();
    for (stem, n) in [("train", 20usize), ("t10k", 10)] {
        let mut pixels = vec![0u8; n * 784];
        for i in 0..n {
            for y in 4..24 {
                for x in 6..22 {
                    let inside = (9..19).contains(&x) && (7..21).contains(&y);
                    pixels[i * 784 + y * 28 + x] = if hollow && inside { 0 } else { 200 };
                }
            }
        }
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        write_idx(
            &mnist.join(format!("{stem}-images-idx3-ubyte")),
            &[n as u32, 28, 28],
            &pixels,
        );
        write_idx(
            &mnist.join(format!("{stem}-labels-idx1-ubyte")),
            &[n as u32],
            &labels,
        );
    }
    mnist.to_path_buf()
}
