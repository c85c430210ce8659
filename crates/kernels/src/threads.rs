//! Where the CPU kernels' threads come from: the training thread runs as a
//! worker of its own rayon pool, and concurrent jobs split the cores.
//!
//! candle's CPU ops, `gemm` and this crate's kernels parallelise with rayon
//! (`par_iter`, `join`). Called from a thread outside any rayon pool (a
//! program's main thread, a comparison's job thread), each parallel op
//! queues its work on the global pool and sleeps on a futex until a worker
//! has run it: two context switches per op. A CPU-scale training step is
//! hundreds of small ops, so that hand-off outweighs the work. One run each on
//! the 2-core machine of `experiments/RESULTS.md` (2026-11-30; 3,000 steps of
//! the small Fashion-VOC DeepLabV3 with GN+WS, one process): 15.7 s from the
//! main thread (11.3 s of it in the kernel: 400 futex calls and 220
//! `sched_yield`s per step), 9.3 s as a worker of a 2-thread pool, 6.9 s on
//! a 1-thread pool, with bit-identical run logs. This crate's kernels and
//! candle's element-wise ops give the same result at any thread count;
//! oneDNN's convolutions above 30 MFLOP split their reductions by thread,
//! so a run that has them (the comparisons' video model at batch 16)
//! repeats bit for bit only at the same threads per job.
//!
//! candle's element-wise ops use a separate pool of its own, sized once
//! from `CANDLE_NUM_THREADS` (else `RAYON_NUM_THREADS`, else the cores) and
//! shared by every thread of the process behind one lock; [`share_cores`]
//! sizes it for concurrent jobs.

use crate::{Error, Result};

/// Runs `f` on a worker of a new rayon pool of `threads` threads (0:
/// rayon's default, `RAYON_NUM_THREADS` or one per core) while the calling
/// thread waits, so that the parallel ops of `f` split across the pool's
/// threads with no hand-off, and run inline on a 1-thread pool (see the
/// module docs). The workers get the main thread's usual 8 MiB stack:
/// candle's backward pass walks the graph recursively.
pub fn on_own_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
    Ok(compute_pool(threads)?.install(f))
}

/// The pool [`on_own_pool`] runs on, for callers that start several before
/// running anything on them.
pub fn compute_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(8 << 20)
        .build()
        .map_err(|e| Error::Threads(format!("cannot start {threads} compute threads: {e}")))
}

/// Threads for each of `jobs` jobs that run at once: the cores (the
/// process's CPU affinity) divided among them, at least 1. Unless the user
/// set `CANDLE_NUM_THREADS`, sizes candle's element-wise pool to the same
/// number, so that at one thread per job it runs inline and the jobs never
/// wait on its lock. Call it at the start of `main`, before any thread is
/// spawned (it sets an environment variable) and before the first candle op
/// (candle reads the variable once). candle's own matmul keeps its thread
/// count (`RAYON_NUM_THREADS` or the cores); this crate's convolutions take
/// the pool's.
pub fn share_cores(jobs: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / jobs.max(1)).max(1);
    const CANDLE_THREADS: &str = "CANDLE_NUM_THREADS";
    if jobs > 1 && std::env::var_os(CANDLE_THREADS).is_none() {
        std::env::set_var(CANDLE_THREADS, threads.to_string());
    }
    threads
}

/// Makes idle pool threads sleep instead of spinning: call it first thing
/// in `main`. On a machine with few cores a spinning idle thread takes a
/// core from the work that runs next on another pool (oneDNN's OpenMP
/// threads, candle's element-wise pool, rayon).
///
/// * OpenMP: libgomp spins its idle threads by default, which took the
///   cores from the candle ops between convolutions (a Fashion-VOC DeepLabV3
///   training step ran 1.35x slower). libgomp reads `OMP_WAIT_POLICY` once,
///   when it is loaded: if the variable is unset this sets it to `passive`,
///   and when libgomp is already loaded (a program linking FFmpeg loads it
///   before `main`) re-executes the program so that it reads the setting;
///   when re-executing fails the program goes on as it is.
/// * candle's element-wise pool spins 25,000 rounds after each parallel op
///   before it parks; `CANDLE_BARRIER_POOL_SPIN_LIMIT` is set to 100 (the
///   same DeepLabV3 step: median 24.2 against 22.2 steps/s in four
///   interleaved runs of each).
///
/// A user's own setting of either variable is kept.
pub fn quiet_thread_pools() {
    const SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(SPIN_LIMIT).is_none() {
        std::env::set_var(SPIN_LIMIT, "100");
    }
    if !default_wait_policy() {
        return;
    }
    let gomp_loaded =
        std::fs::read_to_string("/proc/self/maps").is_ok_and(|maps| maps.contains("libgomp"));
    #[cfg(unix)]
    if gomp_loaded {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            // Only returns on failure.
            let _ = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .exec();
        }
    }
}

/// Sets `OMP_WAIT_POLICY=passive` unless the user set it; whether it did.
pub(crate) fn default_wait_policy() -> bool {
    const OMP_WAIT_POLICY: &str = "OMP_WAIT_POLICY";
    if std::env::var_os(OMP_WAIT_POLICY).is_some() {
        return false;
    }
    std::env::set_var(OMP_WAIT_POLICY, "passive");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_runs_on_a_pool_of_the_asked_size_and_inline_on_one_thread() {
        for n in [1, 3] {
            let (inside, f_on_worker) = on_own_pool(n, || {
                (rayon::current_num_threads(), rayon::current_thread_index())
            })
            .unwrap();
            assert_eq!(inside, n);
            assert!(f_on_worker.is_some());
        }
        // On one thread a parallel op runs on the thread that runs `f`.
        let me = on_own_pool(1, || {
            let me = std::thread::current().id();
            let (a, b) = rayon::join(
                || std::thread::current().id(),
                || std::thread::current().id(),
            );
            (me, a, b)
        })
        .unwrap();
        assert_eq!((me.0, me.0), (me.1, me.2));
    }
}
