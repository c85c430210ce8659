"""Mutation study of the PyTorch-reference tests (issue 19, point 5).

    python3 crates/testkit/mutations.py

Each mutation below edits one line of a kernel (an eps left out or moved
outside the sqrt, a biased variance made unbiased or the reverse), runs
`cargo test -p wsbcn-nn --test torch_reference`, prints which tests caught
it, and restores the file, even if interrupted. Every mutation must be
caught: the references are f64 at Kaiming-scale weights, compared to 1e-10.
(Estimated BN's update-then-use order is held by
crates/nn/tests/norm.rs, which fails when it is swapped.)
"""

import os
import subprocess

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
M = [
 ("GN/LN/IN/BCN-group eps left out", "crates/kernels/src/group_norm.rs", "(mean, 1.0 / (var + eps).sqrt())", "(mean, 1.0 / var.sqrt() + 0.0 * eps)"),
 ("GN eps outside the sqrt", "crates/kernels/src/group_norm.rs", "(mean, 1.0 / (var + eps).sqrt())", "(mean, 1.0 / (var.sqrt() + eps))"),
 ("GN unbiased variance", "crates/kernels/src/group_norm.rs", "let var = lane_sum(block, |v| (v.to_f64() - mean).powi(2)) / m;", "let var = lane_sum(block, |v| (v.to_f64() - mean).powi(2)) / (m - 1.0);"),
 ("BN/est-BN eps left out", "crates/kernels/src/batch_norm.rs", ".map(|(&m, &v)| (m, 1.0 / (v + eps).sqrt()))", ".map(|(&m, &v)| (m, 1.0 / v.sqrt() + 0.0 * eps))"),
 ("BN eps outside the sqrt", "crates/kernels/src/batch_norm.rs", ".map(|(&m, &v)| (m, 1.0 / (v + eps).sqrt()))", ".map(|(&m, &v)| (m, 1.0 / (v.sqrt() + eps)))"),
 ("BN unbiased batch variance", "crates/kernels/src/batch_norm.rs", "    .into_iter()\n    .map(|s| s / m)\n    .collect();\n    (mean, second)", "    .into_iter()\n    .map(|s| s / (m - 1.0))\n    .collect();\n    (mean, second)"),
 ("WS (biased) eps left out", "crates/kernels/src/ws.rs", "RowScale::Biased => (mean, (ss / n + eps).sqrt(), 1.0 / n),", "RowScale::Biased => (mean, (ss / n).sqrt() + 0.0 * eps, 1.0 / n),"),
 ("WS (biased) eps outside the sqrt", "crates/kernels/src/ws.rs", "RowScale::Biased => (mean, (ss / n + eps).sqrt(), 1.0 / n),", "RowScale::Biased => (mean, (ss / n).sqrt() + eps, 1.0 / n),"),
 ("WS (biased) with the unbiased variance", "crates/kernels/src/ws.rs", "RowScale::Biased => (mean, (ss / n + eps).sqrt(), 1.0 / n),", "RowScale::Biased => (mean, (ss / nu + eps).sqrt(), 1.0 / n),"),
 ("WS unbiased eps left out", "crates/kernels/src/ws.rs", "RowScale::Unbiased => (mean, (ss / nu + eps).sqrt(), 1.0 / nu),", "RowScale::Unbiased => (mean, (ss / nu).sqrt() + 0.0 * eps, 1.0 / nu),"),
 ("WS unbiased with the biased variance", "crates/kernels/src/ws.rs", "RowScale::Unbiased => (mean, (ss / nu + eps).sqrt(), 1.0 / nu),", "RowScale::Unbiased => (mean, (ss / n + eps).sqrt(), 1.0 / nu),"),
 ("WS std-eps with eps inside the sqrt", "crates/kernels/src/ws.rs", "let s = sigma + eps;", "let s = (sigma * sigma + eps).sqrt();"),
 ("WS std-eps eps left out", "crates/kernels/src/ws.rs", "let s = sigma + eps;", "let s = sigma + 0.0 * eps;"),
]
for name, path, a, b in M:
    src = open(path).read()
    assert a in src, (name, a)
    open(path, "w").write(src.replace(a, b, 1))
    try:
        r = subprocess.run(["cargo", "test", "-q", "-p", "wsbcn-nn", "--test", "torch_reference"], capture_output=True, text=True)
        out = r.stdout + r.stderr
        compiled = "error[E" not in out and "could not compile" not in out
        failed = sorted({l.split("'")[1] for l in out.splitlines() if l.startswith("thread '") and "panicked" in l})
        status = "NOT CAUGHT" if r.returncode == 0 else ("caught by " + ", ".join(failed) if compiled else "COMPILE ERROR")
        print(f"{name}: {status}", flush=True)
    finally:
        open(path, "w").write(src)
