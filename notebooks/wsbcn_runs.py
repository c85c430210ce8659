"""Loading the HDF5 run logs of a wsbcn comparison into pandas.

A comparison (``wsbcn-compare``) leaves one ``run.h5`` per cell under its
output folder; each holds the cell's identity as root attributes
(``cell.task``, ``cell.label``, ``cell.batch``, ``cell.seed``, ...), the
per-step scalars under ``steps/`` and the evaluations under ``eval/``.
The folder read is ``$WSBCN_RUNS``, by default ``runs/quick`` of the
repository.
"""

import glob
import os

import h5py
import pandas as pd


def runs_dir():
    """The comparison folder the notebooks read."""
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runs", "quick")
    return os.environ.get("WSBCN_RUNS", default)


def _table(group):
    cols = {name: group[name][()] for name in group}
    return pd.DataFrame(cols).set_index("step")


def load_runs(root=None, kind=None):
    """Every run under ``root`` (of task kind ``kind`` if given) as a dict:
    ``task``, ``variant`` (its label), ``batch``, ``seed``, ``attrs``,
    ``steps`` and ``evals`` (DataFrames indexed by step)."""
    root = root or runs_dir()
    runs = []
    for path in sorted(glob.glob(os.path.join(root, "**", "run.h5"), recursive=True)):
        with h5py.File(path, "r") as f:
            attrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()}
            if "cell.task" not in attrs or (kind and attrs.get("cell.kind") != kind):
                continue
            runs.append(
                dict(
                    path=path,
                    task=attrs["cell.task"],
                    variant=attrs["cell.label"],
                    batch=int(attrs["cell.batch"]),
                    seed=int(attrs["cell.seed"]),
                    attrs=attrs,
                    steps=_table(f["steps"]),
                    evals=_table(f["eval"]),
                )
            )
    if not runs:
        raise FileNotFoundError(f"no {kind or ''} run logs under {root}: run wsbcn-compare first")
    return runs


def finals(runs, metric):
    """The last evaluation's ``metric`` of each run, one row per run."""
    rows = [
        dict(task=r["task"], variant=r["variant"], batch=r["batch"], seed=r["seed"],
             **{metric: r["evals"][metric].iloc[-1]})
        for r in runs
    ]
    return pd.DataFrame(rows)


def summary(runs, metric):
    """Mean, std and count of the final ``metric`` per (task, variant, batch)."""
    return finals(runs, metric).groupby(["task", "variant", "batch"], sort=False)[metric].agg(
        ["mean", "std", "count"]
    )
