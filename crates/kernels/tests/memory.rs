//! `keep_freed_memory`: a step's freed activations are reused without new
//! page faults. (Its own test binary: malloc's settings are the process's.)

#![cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage the call fills in.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    usage.ru_minflt
}

/// One "step": eight 4 MiB activations allocated, written and freed.
fn step() {
    let blocks: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let mut v = vec![0u8; 4 << 20];
            // Touch every page, as an op writing its output does.
            v.iter_mut().step_by(4096).for_each(|b| *b = i as u8 + 1);
            v
        })
        .collect();
    std::hint::black_box(&blocks);
}

#[test]
fn freed_activations_are_reused_without_page_faults() {
    if wsbcn_kernels::memory::user_settings() {
        eprintln!("skipped: the environment sets malloc's thresholds");
        return;
    }
    assert!(wsbcn_kernels::keep_freed_memory(), "mallopt refused");
    step();
    let before = minor_faults();
    for _ in 0..5 {
        step();
    }
    // 5 steps of 32 MiB: 40,960 pages if every page faulted again. glibc's
    // defaults trim the freed 32 MiB (over twice the largest block freed)
    // and fault it in again each step.
    let faults = minor_faults() - before;
    assert!(faults < 2_000, "{faults} page faults in 5 reused steps");
}
