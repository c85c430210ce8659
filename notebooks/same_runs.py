"""Checks that two comparison folders hold the same training runs, bit for bit.

    /usr/bin/python3 notebooks/same_runs.py RUNS_A RUNS_B

For every `run.h5` under RUNS_A it opens the file at the same relative path
under RUNS_B and compares every per-step and per-evaluation dataset exactly
(losses, learning rates, gradient norms, diagnostics, metrics), skipping
only the timings (`wall_s`, `samples_per_s`) and the attributes that name
the commit or the output folder. It also compares the final checkpoint
files byte for byte. Exit status 0 when everything matches; otherwise it
prints each difference and exits 1.

Used to show that a code move kept behaviour identical (issue 18): run the
README's main command with the same seeds before and after, then compare.
"""

import hashlib
import sys
from pathlib import Path

import h5py
import numpy as np

TIMINGS = {"wall_s", "samples_per_s"}


def datasets(f):
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.split("/")[-1] not in TIMINGS:
            out[name] = obj[()]

    f.visititems(visit)
    return out


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(a, b):
    a, b = Path(a), Path(b)
    runs = sorted(p.relative_to(a) for p in a.rglob("run.h5"))
    if not runs:
        sys.exit(f"{a}: no run.h5 files")
    problems, steps = [], 0
    for rel in runs:
        if not (b / rel).exists():
            problems.append(f"{rel}: missing under {b}")
            continue
        with h5py.File(a / rel, "r") as fa, h5py.File(b / rel, "r") as fb:
            da, db = datasets(fa), datasets(fb)
            if da.keys() != db.keys():
                problems.append(f"{rel}: datasets differ: {sorted(da.keys() ^ db.keys())}")
            for k in sorted(da.keys() & db.keys()):
                x, y = da[k], db[k]
                if x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
                    problems.append(f"{rel}: {k} differs")
            steps += len(da.get("steps/loss", []))
        ca = sorted((a / rel.parent / "checkpoints").glob("*.safetensors"))
        cb = sorted((b / rel.parent / "checkpoints").glob("*.safetensors"))
        if [p.name for p in ca] != [p.name for p in cb]:
            problems.append(f"{rel.parent}: checkpoint names differ")
        elif ca and digest(ca[-1]) != digest(cb[-1]):
            problems.append(f"{rel.parent}: final checkpoint {ca[-1].name} differs")
    for p in problems:
        print(p)
    print(f"{len(runs)} runs, {steps} logged steps compared: "
          f"{'identical' if not problems else f'{len(problems)} differences'}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
