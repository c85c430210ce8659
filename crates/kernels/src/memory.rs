//! Freed memory kept for reuse: [`keep_freed_memory`].
//!
//! A training step allocates and frees the same large activations every
//! step. glibc's `malloc` serves a block of at least `M_MMAP_THRESHOLD`
//! bytes (128 KiB at start, raised by its heuristic to the largest block
//! freed) with a fresh `mmap`, and gives a heap's free top back to the
//! system once it exceeds `M_TRIM_THRESHOLD`. Either way the next step
//! touches new pages, and the kernel faults in and zeroes each 4 KiB page
//! again. On TSM-ResNet-50 (one clip of 8 frames at 224) that was about
//! 440,000 more page faults per step, 1.7 GB of zeroed pages, and 44% of
//! the step's time (`crates/kernels/README.md`). PyTorch's ReLU works in place
//! and allocates less; candle's ops return new tensors.
//!
//! The fix is two `mallopt` settings, not another allocator: a mapped
//! threshold at glibc's maximum (32 MiB; larger blocks are still mapped)
//! and a trim threshold of 2 GiB, so that freed blocks stay in the heaps
//! for the next step (a thread's arena may still unmap a heap of its own
//! that becomes wholly free). The resident memory then stays at its peak
//! instead of dropping between steps; the peak itself is unchanged (the
//! benchmarks' peak RSS moved by under 1%). An allocator crate (jemalloc,
//! mimalloc) would do the same with a C library to build and its own
//! purging delays to tune.

/// glibc's largest `M_MMAP_THRESHOLD` on 64-bit targets
/// (`DEFAULT_MMAP_THRESHOLD_MAX`): blocks up to this size come from the
/// heaps.
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// The free memory a heap keeps at its top before it is returned.
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
const TRIM_THRESHOLD: i32 = i32::MAX;

/// Whether the environment sets malloc's parameters itself:
/// `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, or a `glibc.malloc`
/// tunable in `GLIBC_TUNABLES`.
pub fn user_settings() -> bool {
    ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."))
}

/// Makes glibc keep freed blocks of up to 32 MiB for reuse instead of
/// unmapping or trimming them (see the module docs): call it first thing
/// in `main`, with [`crate::quiet_thread_pools`]. A user's own setting
/// ([`user_settings`]) is kept; elsewhere than 64-bit glibc this does
/// nothing. Returns whether it set both.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
    {
        if user_settings() {
            return false;
        }
        // SAFETY: mallopt only changes malloc's parameters; both values
        // are within glibc's accepted ranges on 64-bit targets.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")))]
    {
        false
    }
}
