"""Mutation study of the PyTorch-reference tests (issue 19, point 5).

    python3 crates/testkit/mutations.py [NAME-PART]

Each mutation in `mutations.toml` edits one line of a kernel or layer (an
eps left out or moved outside the sqrt, a biased variance made unbiased or
the reverse, estimated BN using its estimates before updating them), runs
the `wsbcn-nn` tests it names (`cargo test -p wsbcn-nn --test T`, by
default T = torch_reference), prints which tests caught it, and restores
the file, even if interrupted. Every mutation must be caught: the
references are f64 at Kaiming-scale weights, compared to 1e-10. With
NAME-PART, only the mutations whose name contains it run.
"""

import os
import subprocess
import sys
import tomllib

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
with open("crates/testkit/mutations.toml", "rb") as f:
    M = tomllib.load(f)["mutation"]
only = sys.argv[1] if len(sys.argv) > 1 else ""
for m in M:
    name, path, a, b = m["name"], m["file"], m["from"], m["to"]
    if only not in name:
        continue
    src = open(path).read()
    assert src.count(a) == 1, (name, a)
    open(path, "w").write(src.replace(a, b, 1))
    try:
        out, failed, code = "", set(), 0
        for test in m.get("tests", ["torch_reference"]):
            r = subprocess.run(["cargo", "test", "-q", "-p", "wsbcn-nn", "--test", test], capture_output=True, text=True)
            out += r.stdout + r.stderr
            code |= r.returncode
            failed |= {l.split("'")[1] for l in (r.stdout + r.stderr).splitlines() if l.startswith("thread '") and "panicked" in l}
        compiled = "error[E" not in out and "could not compile" not in out
        status = "NOT CAUGHT" if code == 0 else ("caught by " + ", ".join(sorted(failed)) if compiled else "COMPILE ERROR")
        print(f"{name}: {status}", flush=True)
    finally:
        open(path, "w").write(src)
