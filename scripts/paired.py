"""Paired comparison of two columns of a report, seed by seed: what one setting changes when
everything else (initial weights, data stream) is the same in both columns.

usage: python3 scripts/paired.py RUNS_CSV ROW COLUMN_A COLUMN_B
RUNS_CSV is a report's runs.csv (`gcl-repro report ... --out DIR` writes DIR/runs.csv). Prints a
Markdown table: each seed's final top-1 in both columns and B - A, then the mean difference
± its sample standard deviation, the paired t statistic and its two-sided p (Student's t with
n - 1 degrees of freedom, by numerical integration of its density). Standard library only.
"""
import csv, math, sys


def student_t_two_sided(t, df):
    """P(|T| >= |t|) for Student's t with df degrees of freedom (Simpson's rule on the density)."""
    if math.isinf(t):
        return 0.0
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    density = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)
    n, a = 20000, abs(t)
    h = a / n
    inner = density(0) + density(a) + sum((4 if i % 2 else 2) * density(i * h) for i in range(1, n))
    return max(0.0, 1 - 2 * inner * h / 3)


def main(path, row, col_a, col_b):
    finals = {}
    for r in csv.DictReader(open(path, newline="")):
        if r["row"] == row and r["column"] in (col_a, col_b):
            finals.setdefault(int(r["seed"]), {})[r["column"]] = float(r["final_top1"])
    seeds = sorted(s for s, v in finals.items() if col_a in v and col_b in v)
    if not seeds:
        sys.exit(f"{path}: no seed has runs of both {row}.{col_a} and {row}.{col_b}")
    print(f"| seed | {col_a} | {col_b} | {col_b} - {col_a} |\n|---|---|---|---|")
    diffs = []
    for s in seeds:
        a, b = finals[s][col_a], finals[s][col_b]
        diffs.append(b - a)
        print(f"| {s} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        print(f"\nmean difference {mean:+.2f} (one seed: no spread, no test)")
        return
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    t = mean / (sd / math.sqrt(n)) if sd > 0 else math.copysign(math.inf, mean) if mean else 0.0
    p = student_t_two_sided(t, n - 1) if sd > 0 else (0.0 if mean else 1.0)
    print(f"\nmean difference {mean:+.2f} ± {sd:.2f} (sample std over {n} seeds); paired t = {t:.2f}, df = {n - 1}, p = {p:.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])
