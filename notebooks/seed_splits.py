"""How often two disjoint seed sets of a comparison reach the same claim verdicts.

A design study for issue 15's robustness check, not part of any report.
It pools the seeds of one or more runs of the same comparison, splits
them every way into two disjoint sets of ``--size`` seeds (each
unordered pair once), applies the report's rules to
each set (``experiments/src/report.rs``: Welch verdicts for claims (a)
and (c), non-inferiority with a margin for claim (b), the convergence
rule on the last gain), and prints how often the two sets agree, claim by
claim and on all claims at once. The splits share seeds, so the rates
are estimates of the chance that two fresh seed sets agree, not
independent trials.

``--finals FILE`` replaces the logged finals with other numbers, one
``task variant seed value`` line each (for example the final checkpoints
evaluated on another validation set with ``wsbcn-seg eval``).

    python3 notebooks/seed_splits.py runs/quick runs/quick-seeds-5-9 --size 5

With more than twice ``--size`` seeds the pairs are many; ``--sample N``
draws N random pairs instead.
"""

import argparse
import itertools

import numpy as np
from scipy import stats

from wsbcn_runs import load_runs

CLAIMS = ["(a) BN", "(b) GN+WS", "(b) BCN+WS", "(c) WS on GN"]


def welch(a, b):
    """Difference, 95% half-width and two-sided p of Welch's test (NaN
    half-width and p = 1 when neither side varies, as in the report)."""
    a, b = np.asarray(a), np.asarray(b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    if se == 0:
        return a.mean() - b.mean(), float("nan"), 1.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    d = a.mean() - b.mean()
    return d, stats.t.ppf(0.975, df) * se, 2 * stats.t.sf(abs(d / se), df)


def converged(gains, plateau, interval):
    """The convergence rule: the mean last gain (less its 95% half-width
    when ``interval``) at most ``plateau``."""
    g = np.asarray(gains)
    if not interval or len(g) < 2:
        return g.mean() <= plateau
    h = stats.t.ppf(0.975, len(g) - 1) * g.std(ddof=1) / np.sqrt(len(g))
    return g.mean() - h <= plateau


def verdicts(cells, seeds, margin, plateau, interval):
    """The claim outcomes of one seed set, task by task."""
    out = []
    for task in sorted({t for t, _ in cells}):
        fin = {v: [cells[task, v][s][0] for s in seeds] for t, v in cells if t == task}
        ok = {v: converged([cells[task, v][s][1] for s in seeds], plateau, interval) for v in fin}

        def directional(a, b, sign):
            if not (ok[a] and ok[b]):
                return "no verdict"
            d, _, p = welch(fin[a], fin[b])
            if p >= 0.05:
                return "not resolved"
            return "reproduces" if d * sign > 0 else "does not reproduce"

        def match(a, b):
            if not (ok[a] and ok[b]):
                return "no verdict"
            d, h, p = welch(fin[a], fin[b])
            if margin is None:
                return directional(a, b, 1)
            if not np.isfinite(h):
                return "not resolved"
            if d - h > -margin:
                return "reproduces"
            return "does not reproduce" if d + h < -margin else "not resolved"

        out += [
            directional("bn", "bn-large", -1),
            match("gn-ws", "bn-large"),
            match("bcn-est-ws", "bn-large"),
            directional("gn-ws", "gn", 1),
        ]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="comparison folders with disjoint seeds")
    ap.add_argument("--size", type=int, default=5, help="seeds per set")
    ap.add_argument("--finals", help="task variant seed value lines replacing the finals")
    ap.add_argument("--margin", type=float, default=0.02, help="claim (b)'s margin; 0: Welch")
    ap.add_argument("--plateau", type=float, default=0.01)
    ap.add_argument("--mean-rule", action="store_true", help="the old rule: the mean gain alone")
    ap.add_argument("--sample", type=int, help="draw this many random pairs (seeded) instead of all")
    args = ap.parse_args()
    cells = {}
    for root in args.runs:
        for r in load_runs(root):
            metric = "miou" if "miou" in r["evals"] else "top1"
            e = r["evals"][metric].to_numpy()
            variant = r["attrs"]["cell.variant"]
            cells.setdefault((r["task"], variant), {})[r["seed"]] = [e[-1], e[-1] - e[-2]]
    if args.finals:
        for line in open(args.finals):
            task, variant, seed, value = line.split()
            if (task, variant) not in cells or int(seed) not in cells[task, variant]:
                raise SystemExit(f"{args.finals}: no run of {task} {variant} seed {seed}")
            cells[task, variant][int(seed)][0] = float(value)
    seeds = sorted(set.intersection(*(set(v) for v in cells.values())))
    tasks = sorted({t for t, _ in cells})
    names = [f"{t} {c}" for t in tasks for c in CLAIMS]
    margin = args.margin or None
    if args.sample:
        rng = np.random.default_rng(0)
        draws = (rng.permutation(seeds)[: 2 * args.size] for _ in range(args.sample))
        pairs = [(tuple(d[: args.size]), tuple(d[args.size :])) for d in draws]
    else:
        pairs = [
            (a, b)
            for a in itertools.combinations(seeds, args.size)
            for b in itertools.combinations([s for s in seeds if s not in a], args.size)
            if a < b
        ]
    agree, per, n = 0, np.zeros(len(names)), 0
    for a, b in pairs:
        va = verdicts(cells, a, margin, args.plateau, not args.mean_rule)
        vb = verdicts(cells, b, margin, args.plateau, not args.mean_rule)
        n += 1
        agree += va == vb
        per += [x == y for x, y in zip(va, vb)]
    print(f"{len(seeds)} seeds, {n} pairs of disjoint sets of {args.size}")
    for name, rate in zip(names, per / n):
        print(f"  {name}: same verdict in {rate:.0%}")
    print(f"  every claim: {agree / n:.0%}")
    print("all seeds:", dict(zip(names, verdicts(cells, seeds, margin, args.plateau, not args.mean_rule))))


if __name__ == "__main__":
    main()
