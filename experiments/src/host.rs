//! The host a cell ran on, as `wsbcn-compare` writes it into each run log
//! (the report reads it back from the logs).

/// The CPU's model name from `/proc/cpuinfo`, or `unknown`.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The host attributes `wsbcn-compare` writes into each run log: the CPU
/// and the threads of the calling job's compute pool.
pub fn host_attrs() -> Vec<(&'static str, String)> {
    vec![
        ("host.cpu", cpu_model()),
        ("host.threads", rayon::current_num_threads().to_string()),
    ]
}
