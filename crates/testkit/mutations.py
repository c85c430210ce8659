"""Mutation study of the PyTorch-reference tests (issue 19, point 5).

    python3 crates/testkit/mutations.py

Each mutation in `mutations.toml` edits one line of a kernel (an eps left
out or moved outside the sqrt, a biased variance made unbiased or the
reverse), runs
`cargo test -p wsbcn-nn --test torch_reference`, prints which tests caught
it, and restores the file, even if interrupted. Every mutation must be
caught: the references are f64 at Kaiming-scale weights, compared to 1e-10.
(Estimated BN's update-then-use order is held by
crates/nn/tests/norm.rs, which fails when it is swapped.)
"""

import os
import subprocess
import tomllib

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
with open("crates/testkit/mutations.toml", "rb") as f:
    M = [(m["name"], m["file"], m["from"], m["to"]) for m in tomllib.load(f)["mutation"]]
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
