//! Where the CPU kernels' threads come from: the training thread runs as a
//! worker of its own rayon pool, and concurrent jobs split the cores.
//!
//! candle's CPU ops, `gemm` and this crate's kernels parallelise with rayon
//! (`par_iter`, `join`). Called from a thread outside any rayon pool (a
//! program's main thread, a comparison's job thread), each parallel op
//! queues its work on the global pool and sleeps on a futex until a worker
//! has run it: two context switches per op. A CPU-scale training step is
//! hundreds of small ops, so that hand-off outweighs the work. Measured on
//! the 2-core machine of `experiments/RESULTS.md` (2026-11-30; 3,000 steps of
//! the small Fashion-VOC DeepLabV3 with GN+WS, one process): 15.7 s from the
//! main thread (11.3 s of it in the kernel: 400 futex calls and 220
//! `sched_yield`s per step), 9.3 s as a worker of a 2-thread pool, 6.9 s on
//! a 1-thread pool, with bit-identical run logs (no kernel's result depends
//! on the thread count).
//!
//! candle's element-wise ops use a separate pool of its own, sized once
//! from `CANDLE_NUM_THREADS` (else `RAYON_NUM_THREADS`, else the cores) and
//! shared by every thread of the process behind one lock; [`share_cores`]
//! sizes it for concurrent jobs.

use crate::{Error, Result};

/// Runs `f` as a worker of a new rayon pool of `threads` threads (0: rayon's
/// default, `RAYON_NUM_THREADS` or one per core), so that the parallel ops
/// of `f` split across the pool's threads, the caller included, and run
/// inline on a 1-thread pool (see the module docs).
pub fn on_own_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Threads(format!("cannot start {threads} compute threads: {e}")))?;
    Ok(pool.install(f))
}

/// Threads for each of `jobs` jobs that run at once: the cores (the
/// process's CPU affinity) divided among them, at least 1. Unless the user
/// set `CANDLE_NUM_THREADS`, sizes candle's element-wise pool to the same
/// number, so that at one thread per job it runs inline and the jobs never
/// wait on its lock. Call it before the first candle op: candle reads the
/// variable once.
pub fn share_cores(jobs: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / jobs.max(1)).max(1);
    const CANDLE_THREADS: &str = "CANDLE_NUM_THREADS";
    if jobs > 1 && std::env::var_os(CANDLE_THREADS).is_none() {
        std::env::set_var(CANDLE_THREADS, threads.to_string());
    }
    threads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_runs_on_a_pool_of_the_asked_size_and_inline_on_one_thread() {
        for n in [1, 3] {
            let (inside, caller_is_worker) = on_own_pool(n, || {
                (rayon::current_num_threads(), rayon::current_thread_index())
            })
            .unwrap();
            assert_eq!(inside, n);
            assert!(caller_is_worker.is_some());
        }
        // On one thread a parallel op runs on the calling thread itself.
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
