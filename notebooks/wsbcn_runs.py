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
import re

import h5py
import pandas as pd
from scipy import stats


def runs_dir():
    """The comparison folder the notebooks read."""
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runs", "quick")
    return os.environ.get("WSBCN_RUNS", default)


def _table(group):
    cols = {name: group[name][()] for name in group}
    return pd.DataFrame(cols).set_index("step")


def _accumulate(train_config):
    """Micro-batches accumulated per optimizer step, from the engine config
    the run log holds (TOML written by wsbcn, with a top-level
    ``accumulate = N``); 1 where it is missing. (A regular expression
    rather than ``tomllib``, which needs Python 3.11.)"""
    m = re.search(r"^accumulate\s*=\s*(\d+)\s*$", train_config, re.M)
    return int(m.group(1)) if m else 1


def load_runs(root=None, kind=None):
    """Every run under ``root`` (of task kind ``kind`` if given) as a dict:
    ``task``, ``variant`` (its label), ``batch``, ``seed``, ``attrs``,
    ``per_step`` (samples per optimizer step: the batch times the
    micro-batches accumulated into a step), ``steps`` and ``evals``
    (DataFrames indexed by step, with a ``samples`` column: training samples
    seen, the axis on which runs of different batch sizes line up)."""
    root = root or runs_dir()
    runs = []
    for path in sorted(glob.glob(os.path.join(root, "**", "run.h5"), recursive=True)):
        with h5py.File(path, "r") as f:
            attrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()}
            if "cell.task" not in attrs or (kind and attrs.get("cell.kind") != kind):
                continue
            batch = int(attrs["cell.batch"])
            per_step = batch * _accumulate(attrs.get("train_config", ""))
            steps, evals = _table(f["steps"]), _table(f["eval"])
            for table in (steps, evals):
                table["samples"] = table.index * per_step
            runs.append(
                dict(
                    path=path,
                    task=attrs["cell.task"],
                    variant=attrs["cell.label"],
                    batch=batch,
                    seed=int(attrs["cell.seed"]),
                    attrs=attrs,
                    per_step=per_step,
                    steps=steps,
                    evals=evals,
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


def half_width(values, level=0.95):
    """Half-width of the Student-t ``level`` interval of the mean of
    ``values``: t_{(1+level)/2, n-1} s / sqrt(n); NaN for one value (no
    interval), as the report's "n = 1, no interval"."""
    n = len(values)
    if n < 2:
        return float("nan")
    return stats.t.ppf((1 + level) / 2, n - 1) * values.std(ddof=1) / n**0.5


def summary(runs, metric):
    """Per (task, variant, batch): the mean of the final ``metric`` over
    seeds, the half-width of its Student-t 95% interval (``ci95``, NaN with
    one seed) and the number of seeds, as in the report."""
    return finals(runs, metric).groupby(["task", "variant", "batch"], sort=False)[metric].agg(
        mean="mean", ci95=half_width, n="count"
    )
