"""Table of scripts/collapse/run.sh: final top-1 and epoch-1 loss of both engines, per initial
weights (gcl-repro's seeds 1-3), warm-up and data stream. A run "collapses" when its final top-1
is below 30 % (chance is 10 % on the 10 classes).

    python scripts/collapse/table.py OUTDIR      (writes OUTDIR/collapse.md and collapse.json)
"""
import glob
import json
import math
import os
import statistics
import sys
import tomllib

COLLAPSED = 30.0


def ours(out):
    runs = {}
    for d in glob.glob(os.path.join(out, "cache", "runs", "*")):
        with open(os.path.join(d, "spec.toml"), "rb") as f:
            spec = tomllib.load(f)
        init = spec.get("model", {}).get("init_from")
        if not init or spec["stage1"]["epochs"] == 0:
            continue
        with open(os.path.join(d, "metrics.json")) as f:
            m = json.load(f)
        s = int(os.path.basename(init).removeprefix("init-s").removesuffix(".safetensors"))
        key = (spec["stage1"]["warmup_epochs"], s, spec["seed"])
        runs[key] = (m["final_eval"]["top1"], m["epochs"][0]["train_loss"])
    return runs


def torch_runs(out):
    runs = {}
    for p in glob.glob(os.path.join(out, "torch", "w*-init*-seed*.json")):
        if p.endswith(".config.json"):
            continue
        w, s, t = os.path.basename(p).removesuffix(".json").split("-")
        with open(p) as f:
            r = json.load(f)["stage1"]
        runs[(int(w[1:]), int(s[4:]), int(t[4:]))] = (r["final_top1"], r["per_epoch"][0]["train_loss"])
    return runs


def welch(a, b):
    """Welch's two-sided t-test: (t, df, p); p by integrating Student's density."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    lo, hi, n = abs(t), abs(t) + 200.0, 200000
    h = (hi - lo) / n
    tail = sum(c * (1 + (lo + (i + 0.5) * h) ** 2 / df) ** (-(df + 1) / 2) for i in range(n)) * h
    return t, df, 2 * tail


def spread(name, values):
    return f"{name}: {statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} (n = {len(values)}, lowest {min(values):.1f})"


def cell(r):
    if r is None:
        return "–"
    top1, loss = r
    mark = " **collapsed**" if top1 < COLLAPSED else ""
    return f"{top1:.1f} ({loss:.2f}){mark}"


def main(out):
    a, b = ours(out), torch_runs(out)
    try:
        with open(os.path.join(out, "case.json")) as f:
            case = json.load(f)
    except FileNotFoundError:
        case = {"row": "gcl", "extra": [2, 1]}
    ew, es = case["extra"]
    keys = sorted(set(a) | set(b))
    title = f"Row `{case['row']}` of the quick start, both engines from gcl-repro's initial weights.\n\n"
    lines = [
        title + "| warm-up | initial weights | gcl-repro, streams 1 / 2 / 3 | PyTorch script, streams 1 / 2 / 3 |",
        "|---|---|---|---|",
    ]
    for w, s in sorted({(w, s) for w, s, _ in keys}):
        left = " / ".join(cell(a.get((w, s, t))) for t in (1, 2, 3))
        right = " / ".join(cell(b.get((w, s, t))) for t in (1, 2, 3))
        lines.append(f"| {w} epochs | gcl-repro seed {s} | {left} | {right} |")
    streams = sorted({k[2] for k in keys if k[:2] == (ew, es)})
    if len(streams) > 3:
        lines.append("")
        lines.append(f"Seed {es}'s initial weights, warm-up {ew}, streams {streams[0]}-{streams[-1]}:")
        lines.append("")
        lines.append("| engine | " + " | ".join(str(t) for t in streams) + " |")
        lines.append("|---|" + "---|" * len(streams))
        for name, runs in (("gcl-repro", a), ("PyTorch script", b)):
            lines.append(f"| {name} | " + " | ".join(cell(runs.get((ew, es, t))) for t in streams) + " |")
    count = {}
    for name, runs in (("gcl-repro", a), ("PyTorch", b)):
        for w in sorted({k[0] for k in runs}):
            sel = [v for k, v in runs.items() if k[0] == w]
            count[f"{name} w{w}"] = (sum(v[0] < COLLAPSED for v in sel), len(sel))
    summary = "; ".join(f"{k}: {c} of {n} collapsed" for k, (c, n) in count.items())
    stats = []
    for w in sorted({k[0] for k in keys}):
        ours_w = [v[0] for k, v in a.items() if k[0] == w]
        torch_w = [v[0] for k, v in b.items() if k[0] == w]
        if len(ours_w) > 1 and len(torch_w) > 1:
            t, df, p = welch(ours_w, torch_w)
            stats.append(f"- warm-up {w}, final top-1 mean ± sample std: {spread('gcl-repro', ours_w)}; "
                         f"{spread('PyTorch', torch_w)}; Welch t = {t:.2f}, df = {df:.1f}, p = {p:.3f}")
    ours_1 = [v[0] for k, v in a.items() if k[:2] == (ew, es)]
    torch_1 = [v[0] for k, v in b.items() if k[:2] == (ew, es)]
    if len(ours_1) > 3 and len(torch_1) > 3:
        t, df, p = welch(ours_1, torch_1)
        stats.append(f"- seed {es}'s weights, warm-up {ew}: {spread('gcl-repro', ours_1)}; {spread('PyTorch', torch_1)}; "
                     f"Welch t = {t:.2f}, df = {df:.1f}, p = {p:.3f}")
    text = "\n".join(lines) + f"\n\nFinal top-1 % (epoch-1 training loss); collapsed: final top-1 < {COLLAPSED:.0f} %.\n{summary}\n\n" + "\n".join(stats) + "\n"
    with open(os.path.join(out, "collapse.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "collapse.json"), "w") as f:
        json.dump({"ours": {str(k): v for k, v in a.items()}, "torch": {str(k): v for k, v in b.items()}}, f, indent=1)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1])
