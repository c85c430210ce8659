"""The budget study of experiments/RESULTS.md: each cell's final at 1x and
2x the samples and its gain, and each claim's difference at both budgets
with the change between them (Welch 95% intervals). Only finished runs
(last evaluation at the last step) count.

    python3 budget_study.py ../runs/budget_study
"""
import glob, re, sys
import h5py, numpy as np
from scipy import stats

root = sys.argv[1]
fin = {}
for f in sorted(glob.glob(f"{root}/*/*/*/*/run.h5")):
    task, var, b, s = f.split("/")[-5:-1]
    with h5py.File(f, "r") as h:
        if "eval" not in h:
            continue
        steps = int(re.search(r"^steps = (\d+)", h.attrs["train_config"], re.M).group(1))
        e = h["eval"]
        m = "miou" if "miou" in e else "top1"
        if len(e["step"]) == 0 or int(e["step"][-1]) != steps:
            continue
        fin.setdefault((task, var), []).append(float(e[m][-1]))

def welch(a, b):
    """mean(a) - mean(b) with a Welch 95% interval and p."""
    a, b = np.asarray(a), np.asarray(b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    d = a.mean() - b.mean()
    h = stats.t.ppf(0.975, df) * se
    return d, h, 2 * stats.t.sf(abs(d) / se, df)

def diff_of_diffs(a2, b2, a1, b1):
    """(a2 - b2) - (a1 - b1), four independent samples, Welch-Satterthwaite."""
    groups = [np.asarray(g) for g in (a2, b2, a1, b1)]
    v = [g.var(ddof=1) / len(g) for g in groups]
    se = np.sqrt(sum(v))
    df = sum(v) ** 2 / sum(vi**2 / (len(g) - 1) for vi, g in zip(v, groups))
    d = (groups[0].mean() - groups[1].mean()) - (groups[2].mean() - groups[3].mean())
    return d, stats.t.ppf(0.975, df) * se

order = ["bn-large", "bn", "gn", "gn-ws", "bcn-est-ws"]
for task in ("segmentation", "video"):
    print(f"\n{task}: finals (mean ± 95% t interval, n) and gain 1x -> 2x (Welch)")
    print("| cell | 1x | 2x | gain |\n|---|---:|---:|---:|")
    for v in order:
        a, b = fin.get((f"{task}-1x", v), []), fin.get((f"{task}-2x", v), [])
        def ci(x):
            x = np.asarray(x)
            if len(x) < 2:
                return f"n = {len(x)}"
            return f"{x.mean():.4f} ± {stats.t.ppf(0.975, len(x)-1) * x.std(ddof=1) / np.sqrt(len(x)):.4f} (n = {len(x)})"
        g = ""
        if len(a) > 1 and len(b) > 1:
            d, h, p = welch(b, a)
            g = f"{d:+.4f} [{d-h:+.4f}, {d+h:+.4f}]"
        print(f"| {v} | {ci(a)} | {ci(b)} | {g} |")
    print(f"\n{task}: claim differences at each budget, and their change")
    print("| difference | 1x | 2x | change 2x - 1x |\n|---|---:|---:|---:|")
    for name, x, y in [("(a) BN(1) - BN(16)", "bn", "bn-large"), ("(b) GN+WS(1) - BN(16)", "gn-ws", "bn-large"),
                       ("(b) BCN+WS(1) - BN(16)", "bcn-est-ws", "bn-large"), ("(c) GN+WS - GN", "gn-ws", "gn")]:
        cells = [fin.get((f"{task}-{k}", c), []) for k in ("2x", "1x") for c in (x, y)]
        if any(len(c) < 2 for c in cells):
            print(f"| {name} | incomplete | | |")
            continue
        d1 = welch(cells[2], cells[3]); d2 = welch(cells[0], cells[1])
        dd, hh = diff_of_diffs(*cells)
        print(f"| {name} | {d1[0]:+.4f} [{d1[0]-d1[1]:+.4f}, {d1[0]+d1[1]:+.4f}] | {d2[0]:+.4f} [{d2[0]-d2[1]:+.4f}, {d2[0]+d2[1]:+.4f}] | {dd:+.4f} [{dd-hh:+.4f}, {dd+hh:+.4f}] |")
