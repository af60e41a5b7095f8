#!/usr/bin/env python3
"""Write report.html for a repeval results folder: a self-contained page (figures
embedded as PNG data) with CKA heatmaps, CKA-to-final and effective rank over
training with a band across runs, a CCA summary, and the manifest's essentials.

Checkpoint labels are read as RUN/STEP when they look like "<run>/<name><number>"
(e.g. "seed1/epoch_03": run "seed1", step 3); other labels are one run each.

usage: report.py RESULTS_DIR [--out FILE]
"""
import argparse
import base64
import csv
import html
import io
import json
import os
import re
import sys
from collections import defaultdict

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STEP_RE = re.compile(r"^(.*?)(\d+)$")


def split_label(label):
    run, _, base = label.rpartition("/")
    m = STEP_RE.match(base)
    if m:
        return (run or base[:m.start(2)] or "run"), int(m.group(2))
    return label, 0


def figure_html(fig, alt):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def heatmap(ax, m, labels_x, labels_y, title, vmin=0.0, vmax=1.0):
    im = ax.imshow(m, vmin=vmin, vmax=vmax, cmap="magma", origin="lower")
    ax.set_xticks(range(len(labels_x)))
    ax.set_xticklabels(labels_x, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels_y)))
    ax.set_yticklabels(labels_y, fontsize=8)
    ax.set_title(title, fontsize=10)
    return im


def cka_sections(res, name, parts):
    mat = np.load(os.path.join(res, f"cka_{name}.npy"))
    taps = read_csv(os.path.join(res, f"cka_{name}_taps.csv"))
    info = [(t["model"], t["checkpoint"], t["layer"]) + split_label(t["checkpoint"]) for t in taps]
    runs = sorted({(i[0], i[3]) for i in info})
    layers = []
    for i in info:
        if (i[0], i[2]) not in layers:
            layers.append((i[0], i[2]))
    steps = sorted({i[4] for i in info})
    index = {(i[0], i[3], i[4], i[2]): k for k, i in enumerate(info)}
    final = steps[-1]
    parts.append(f"<h2>CKA: {html.escape(name)}</h2>")
    # seed-vs-seed grid at the final step
    if len(runs) > 1:
        pairs = [(a, b) for ai, a in enumerate(runs) for b in runs[ai + 1:] if a[0] == b[0]]
        if pairs:
            n = len(pairs)
            fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 1, 3.6), squeeze=False)
            im = None
            for ax, (a, b) in zip(axes[0], pairs):
                ls = [l for l in layers if l[0] == a[0]]
                m = np.full((len(ls), len(ls)), np.nan)
                for i, la in enumerate(ls):
                    for j, lb in enumerate(ls):
                        p, q = index.get((a[0], a[1], final, la[1])), index.get((b[0], b[1], final, lb[1]))
                        if p is not None and q is not None:
                            m[i, j] = mat[p, q]
                im = heatmap(ax, m, [l[1] for l in ls], [l[1] for l in ls], f"{a[1]} (rows) vs {b[1]}, step {final}")
            fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="CKA")
            parts.append(figure_html(fig, f"Layer x layer CKA between runs at step {final}"))
    # CKA of each layer with its own final state, over training
    if len(steps) > 1:
        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        for (model, layer) in layers:
            curves = []
            for (m2, run) in runs:
                if m2 != model:
                    continue
                ref = index.get((model, run, final, layer))
                ys = [mat[index[(model, run, s, layer)], ref] if ref is not None and (model, run, s, layer) in index
                      else np.nan for s in steps]
                curves.append(ys)
            c = np.array(curves, dtype=float)
            mean = np.nanmean(c, axis=0)
            ax.plot(steps, mean, marker="o", ms=3, label=f"{layer}")
            if len(curves) > 1:
                ax.fill_between(steps, np.nanmin(c, axis=0), np.nanmax(c, axis=0), alpha=0.2)
        ax.set_xlabel("step (from the checkpoint name)")
        ax.set_ylabel("CKA with the final checkpoint")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        parts.append(figure_html(fig, "CKA of each layer with its final state (line: mean over runs, band: min-max)"))
    # the whole matrix
    fig, ax = plt.subplots(figsize=(7, 6))
    short = [f"{i[3]}/{i[4]}/{i[2]}" for i in info]
    step = max(1, len(short) // 40)
    im = ax.imshow(mat, vmin=0, vmax=1, cmap="magma", origin="lower")
    ax.set_xticks(range(0, len(short), step))
    ax.set_xticklabels(short[::step], rotation=90, fontsize=6)
    ax.set_yticks(range(0, len(short), step))
    ax.set_yticklabels(short[::step], fontsize=6)
    fig.colorbar(im, ax=ax, shrink=0.8, label="CKA")
    ax.set_title(f"All {len(short)} taps (run/step/layer)", fontsize=10)
    parts.append(figure_html(fig, "Full CKA matrix over all taps (grey: not computed or undefined)"))


def spectrum_section(rows, parts):
    er = [r for r in rows if r["metric"] == "effective_rank" and r["value"]]
    if not er:
        return
    by = defaultdict(lambda: defaultdict(dict))
    for r in er:
        run, step = split_label(r["checkpoint_a"])
        by[(r["model_a"], r["layer_a"])][run][step] = float(r["value"])
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for (model, layer), runs in by.items():
        steps = sorted({s for v in runs.values() for s in v})
        c = np.array([[v.get(s, np.nan) for s in steps] for v in runs.values()], dtype=float)
        ax.plot(steps, np.nanmean(c, axis=0), marker="o", ms=3, label=layer)
        if len(c) > 1:
            ax.fill_between(steps, np.nanmin(c, axis=0), np.nanmax(c, axis=0), alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("effective rank (RankMe)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2)
    parts.append("<h2>Effective rank</h2>")
    parts.append(figure_html(fig, "Effective rank of each layer over training (band: min-max over runs)"))
    collapsed = [r for r in rows if r["metric"] == "collapsed" and r["value"] and float(r["value"]) > 0]
    if collapsed:
        parts.append("<p class=warn>Collapsed layers: " + ", ".join(
            html.escape(f"{r['checkpoint_a']}/{r['layer_a']}") for r in collapsed) + "</p>")


def cca_section(rows, parts):
    metrics = ["cca_mean_rho", "svcca", "pwcca", "procrustes_d2", "r2_b_from_a"]
    agg = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["metric"] in metrics and r["value"]:
            agg[(r["analysis"], r["model_a"], r["layer_a"])][r["metric"]].append(float(r["value"]))
    if not agg:
        return
    present = [m for m in metrics if any(m in v for v in agg.values())]
    parts.append("<h2>CCA family</h2><table><tr><th>analysis</th><th>model</th><th>layer</th><th>pairs</th>" +
                 "".join(f"<th>{m} (mean)</th>" for m in present) + "</tr>")
    for (an, model, layer), v in sorted(agg.items()):
        n = max(len(x) for x in v.values())
        parts.append(f"<tr><td>{html.escape(an)}</td><td>{html.escape(model)}</td><td>{html.escape(layer)}</td>"
                     f"<td>{n}</td>" + "".join(
                         f"<td>{np.mean(v[m]):.4f}</td>" if m in v else "<td></td>" for m in present) + "</tr>")
    parts.append("</table>")


def manifest_section(res, parts):
    p = os.path.join(res, "manifest.json")
    if not os.path.isfile(p):
        return
    man = json.load(open(p))
    parts.append("<h2>Run</h2><table>")
    for k in ("name", "job", "repeval_version", "git_revision", "ranks", "samples", "undefined_values"):
        parts.append(f"<tr><th>{k}</th><td>{html.escape(str(man.get(k, '')))}</td></tr>")
    for k, v in man.get("timings_s", {}).items():
        parts.append(f"<tr><th>time: {html.escape(k)}</th><td>{v:.2f} s</td></tr>")
    for k, v in man.get("libraries", {}).items():
        parts.append(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>")
    parts.append("</table>")
    if man.get("warnings"):
        parts.append("<h3>Warnings</h3><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in man["warnings"]) +
                     "</ul>")
    ins = man.get("inputs", [])
    parts.append(f"<details><summary>{len(ins)} inputs</summary><table><tr><th>kind</th><th>path</th>"
                 "<th>bytes</th><th>fnv1a64</th></tr>" + "".join(
                     f"<tr><td>{html.escape(i.get('kind', ''))}</td><td>{html.escape(i.get('path', ''))}</td>"
                     f"<td>{i.get('bytes', '')}</td><td>{i.get('fnv1a64', '')}</td></tr>" for i in ins) +
                 "</table></details>")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--out")
    args = ap.parse_args()
    res = args.results
    metrics_path = os.path.join(res, "metrics.csv")
    if not os.path.isfile(metrics_path):
        print(f"report: {res} has no metrics.csv (not a repeval results folder)", file=sys.stderr)
        return 1
    rows = read_csv(metrics_path)
    title = os.path.basename(os.path.abspath(res))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>repeval report: {html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "figure{margin:1em 0}img{max-width:100%}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}"
             ".warn{color:#a40}</style></head><body>",
             f"<h1>repeval report: {html.escape(title)}</h1>"]
    analyses = []
    for r in rows:
        if r["analysis"] not in analyses:
            analyses.append(r["analysis"])
    for an in analyses:
        if os.path.isfile(os.path.join(res, f"cka_{an}.npy")):
            cka_sections(res, an, parts)
    spectrum_section(rows, parts)
    cca_section(rows, parts)
    manifest_section(res, parts)
    parts.append("</body></html>")
    out = args.out or os.path.join(res, "report.html")
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(parts))
    os.replace(tmp, out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
