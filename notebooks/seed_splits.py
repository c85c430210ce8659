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

``--design COMPARISON.toml --parametric N`` asks the same of a design
whose cells take different numbers of seeds (``seeds_per_cell`` and its
per-variant and per-task counts), more than the runs hold twice over. Each
cell's finals are drawn from a normal distribution with the mean and
standard deviation of all its runs in the folders (runs repeated bit for
bit across folders count once), N pairs of runs of the design are
simulated, and the rates are printed as above. Every cell counts as
converged (the rule passes every cell of the shipped runs).

    python3 notebooks/seed_splits.py runs/quick runs/quick-seeds-50-69 --design configs/quick.toml --parametric 4000
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
        out += claim_outcomes(fin, margin, lambda v: ok[v])
    return out


def design_sizes(path, cells):
    """Seeds per cell of each (task, variant) under the comparison file at
    ``path``, by the rules of ``experiments/src/comparison.rs``."""
    import tomllib

    with open(path, "rb") as f:
        cmp = tomllib.load(f)
    default = cmp.get("seeds_per_cell", len(cmp["seeds"]))
    sizes = {}
    for v in cmp["variants"]:
        for task in {t for t, _ in cells}:
            n = v.get("task_seeds_per_cell", {}).get(task, v.get("seeds_per_cell", default))
            sizes[task, v["name"]] = n
    return sizes


def parametric(pooled, args):
    """Agreement rates of simulated pairs of runs of ``args.design``."""
    if not args.design:
        raise SystemExit("--parametric needs --design COMPARISON.toml")
    sizes = design_sizes(args.design, pooled)
    rng = np.random.default_rng(0)
    params = {}
    for key, runs in sorted(pooled.items()):
        x = np.array([v for _, v in runs])
        params[key] = (x.mean(), x.std(ddof=1))
        print(f"{key[0]} {key[1]}: {len(x)} runs, mean {x.mean():.4f}, sd {x.std(ddof=1):.4f}, "
              f"{sizes[key]} seeds per run")
    tasks = sorted({t for t, _ in pooled})
    names = [f"{t} {c}" for t in tasks for c in CLAIMS]
    margin = args.margin or None

    def outcome():
        # One simulated run: every cell's finals drawn, the claims judged.
        out = []
        for task in tasks:
            fin = {
                v: rng.normal(m, sd, sizes[t, v]) for (t, v), (m, sd) in params.items() if t == task
            }
            out += claim_outcomes(fin, margin)
        return out

    agree, per = 0, np.zeros(len(names))
    for _ in range(args.parametric):
        va, vb = outcome(), outcome()
        agree += va == vb
        per += [x == y for x, y in zip(va, vb)]
    print(f"{args.parametric} simulated pairs of runs of {args.design}")
    for name, rate in zip(names, per / args.parametric):
        print(f"  {name}: same verdict in {rate:.0%}")
    print(f"  every claim: {agree / args.parametric:.0%}")


def claim_outcomes(fin, margin, ok=lambda variant: True):
    """The four claim outcomes of one task from each variant's finals; no
    verdict where ``ok`` says a cell is not converged."""

    def directional(a, b, sign):
        if not (ok(a) and ok(b)):
            return "no verdict"
        d, _, p = welch(fin[a], fin[b])
        # One seed on a side: no test, as in the report.
        if min(len(fin[a]), len(fin[b])) < 2 or not p < 0.05:
            return "not resolved"
        return "reproduces" if d * sign > 0 else "does not reproduce"

    def match(a, b):
        if not (ok(a) and ok(b)):
            return "no verdict"
        d, h, p = welch(fin[a], fin[b])
        if margin is None:
            return directional(a, b, 1)
        if min(len(fin[a]), len(fin[b])) < 2 or not np.isfinite(h):
            return "not resolved"
        if d - h > -margin:
            return "reproduces"
        return "does not reproduce" if d + h < -margin else "not resolved"

    return [
        directional("bn", "bn-large", -1),
        match("gn-ws", "bn-large"),
        match("bcn-est-ws", "bn-large"),
        directional("gn-ws", "gn", 1),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="comparison folders with disjoint seeds")
    ap.add_argument("--size", type=int, default=5, help="seeds per set")
    ap.add_argument("--finals", help="task variant seed value lines replacing the finals")
    ap.add_argument("--margin", type=float, default=0.02, help="claim (b)'s margin; 0: Welch")
    ap.add_argument("--plateau", type=float, default=0.01)
    ap.add_argument("--mean-rule", action="store_true", help="the old rule: the mean gain alone")
    ap.add_argument("--sample", type=int, help="draw this many random pairs (seeded) instead of all")
    ap.add_argument("--design", help="a comparison file: its seeds per cell, for --parametric")
    ap.add_argument("--parametric", type=int, help="simulate this many pairs of runs of --design")
    args = ap.parse_args()
    cells, pooled = {}, {}
    for root in args.runs:
        for r in load_runs(root):
            metric = "miou" if "miou" in r["evals"] else "top1"
            e = r["evals"][metric].to_numpy()
            variant = r["attrs"]["cell.variant"]
            cells.setdefault((r["task"], variant), {})[r["seed"]] = [e[-1], e[-1] - e[-2]]
            pooled.setdefault((r["task"], variant), set()).add((r["seed"], float(e[-1])))
    if args.parametric:
        return parametric(pooled, args)
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
