#!/usr/bin/env python3
"""Write report.html for a repeval results folder.

The page is self-contained: figures are PNG data URIs, the style sheet is
inline, there are no scripts and nothing is fetched when it is viewed. It shows
what the folder holds and skips what it does not: CKA heatmaps (layer x layer
between runs at the last step, checkpoint x checkpoint per layer, every tap
against every other), CKA with the last step over training, probe accuracy and
the selected lambda over training, effective rank over training, RBF against
linear CKA, a CCA summary, the manifest (inputs, versions, ranks, timings) and
every warning. With uncertainty columns in metrics.csv, a CKA analysis (and the
first metric of a CCA analysis, the effective rank of a spectrum analysis) also
gets its values with their intervals as error bars and the permutation null as
a band (from its mean to its 95th percentile), and a table with the p-values.

Checkpoint labels are read as RUN/STEP when every label of a model ends in a
number ("seed1/epoch_03": run "seed1", step 3; "epoch_03": one unnamed run);
otherwise every checkpoint is its own run without a step. Bands are the
minimum and maximum over runs; lines are the mean.

The numbers behind every figure and table are also embedded as JSON
(<script type="application/json" id="report-data">), so they can be checked.

usage: report.py RESULTS_DIR [--out FILE]
"""
import argparse
import base64
import csv
import html
import io
import json
import math
import os
import re
import sys
import time
import traceback
from collections import OrderedDict, defaultdict

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import report_integrity  # noqa: E402  (next to this file)
import report_maps  # noqa: E402

DPI = 100
MAX_PAIR_PANELS = 12      # layer x layer panels between runs
MAX_LAYER_PANELS = 24     # checkpoint x checkpoint panels
MAX_TICKS = 40            # tick labels per axis before thinning
MAX_EMBEDDED = 200000     # matrix entries embedded as JSON per figure
MAX_INTERVALS = 40        # pairs drawn with their interval and null band
LAYER_COLORS = plt.get_cmap("tab10").colors
HEAT_CMAP = plt.get_cmap("viridis").copy()
HEAT_CMAP.set_bad("#d9d9d9")
STEP_RE = re.compile(r"^(.*?)(\d+)$")
CCA_METRICS = ["cca_mean_rho", "cca_mean_rho2", "svcca", "pwcca", "procrustes_d2", "r2_b_from_a", "r2_a_from_b"]


class ReportError(Exception):
    """A results file that cannot be used as it is (named in the message)."""


def esc(s):
    return html.escape(str(s), quote=True)


def natural_key(s):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def fnum(v, digits=3):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return str(v)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}f}"


def human_bytes(n):
    try:
        n = float(n)
    except (TypeError, ValueError):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def jsonable(x):
    """Floats with NaN as null, numpy scalars and arrays as Python values."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


# ---- reading the folder ---------------------------------------------------------

def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def value_of(row):
    try:
        v = float(row.get("value", ""))
    except ValueError:
        return float("nan")
    return v if row.get("status", "ok") == "ok" else float("nan")


class Labels:
    """Checkpoint labels of each model, read as (run, step) the same way for a
    whole model, and the order of runs, steps and layers."""

    def __init__(self):
        self.models = []          # model names in order of appearance
        self.labels = OrderedDict()   # model -> [labels in order of appearance]
        self.layers = OrderedDict()   # model -> [layers in order]
        self.parsed = {}          # (model, label) -> (run, step or None)
        self.step_name = {}       # model -> word for the step axis ("epoch")

    def add(self, model, label=None, layer=None):
        if not model:
            return
        if model not in self.labels:
            self.models.append(model)
            self.labels[model] = []
            self.layers[model] = []
        if label and label not in self.labels[model]:
            self.labels[model].append(label)
        if layer and layer not in self.layers[model]:
            self.layers[model].append(layer)

    def finish(self):
        for model, labels in self.labels.items():
            parts = []
            for lab in labels:
                head, _, base = lab.rpartition("/")
                m = STEP_RE.match(base)
                parts.append((head, int(m.group(2)), m.group(1)) if m else None)
            steps_ok = parts and all(p is not None for p in parts) and \
                len({(p[0], p[1]) for p in parts}) == len(parts)
            if steps_ok:
                words = {p[2].strip("_-=. ") for p in parts}
                self.step_name[model] = words.pop() if len(words) == 1 and "" not in words else "step"
                for lab, p in zip(labels, parts):
                    self.parsed[(model, lab)] = (p[0], p[1])
            else:
                self.step_name[model] = None
                for lab in labels:
                    self.parsed[(model, lab)] = (lab, None)

    def has_steps(self, model):
        return self.step_name.get(model) is not None

    def run_of(self, model, label):
        return self.parsed[(model, label)][0]

    def step_of(self, model, label):
        return self.parsed[(model, label)][1]

    def runs(self, model):
        return sorted({self.parsed[(model, lab)][0] for lab in self.labels[model]}, key=natural_key)

    def steps(self, model):
        return sorted({s for (m, _), (_, s) in self.parsed.items() if m == model and s is not None})

    def sort_key(self, model, label):
        run, step = self.parsed[(model, label)]
        return (self.models.index(model), natural_key(run), -1 if step is None else step)

    def run_name(self, model, run):
        """A run as shown: the run name, 'run' for the unnamed one, with the
        model when the folder has several."""
        r = run or "run"
        return f"{model}:{r}" if len(self.models) > 1 else r

    def step_text(self, model, step):
        word = self.step_name.get(model) or "step"
        return f"{word} {step}"

    def layer_name(self, model, layer):
        return f"{model}:{layer}" if len(self.models) > 1 else layer

    def layer_color(self, model, layer):
        k = sum(len(self.layers[m]) for m in self.models[:self.models.index(model)])
        return LAYER_COLORS[(k + self.layers[model].index(layer)) % len(LAYER_COLORS)]


class Results:
    def __init__(self, path):
        self.path = path
        self.notes = []  # problems found while reading, shown on the page
        mp = os.path.join(path, "metrics.csv")
        self.rows = read_csv(mp)
        need = {"analysis", "metric", "model_a", "checkpoint_a", "layer_a", "value"}
        if self.rows and not need.issubset(self.rows[0].keys()):
            raise ReportError(f"{mp}: expected the columns {sorted(need)}, found {sorted(self.rows[0].keys())}")
        self.manifest = {}
        man = os.path.join(path, "manifest.json")
        if os.path.isfile(man):
            try:
                with open(man) as f:
                    self.manifest = json.load(f)
            except (OSError, ValueError) as e:
                self.notes.append(f"manifest.json could not be read: {e}")
        self.labels = Labels()
        for m in self.manifest.get("models", []) or []:
            self.labels.add(m.get("name"))
            for lay in m.get("layers", []) or []:
                self.labels.add(m.get("name"), layer=str(lay).split(":")[0])
        for i in self.manifest.get("inputs", []) or []:
            if i.get("kind") == "checkpoint":
                self.labels.add(i.get("model"), i.get("label"))
        self.cka = OrderedDict()     # analysis -> (matrix, taps rows)
        self.analyses = OrderedDict()  # analysis -> type
        for a in self.manifest.get("analyses", []) or []:
            if a.get("name"):
                self.analyses[a["name"]] = a.get("type", "")
        for r in self.rows:
            an = r["analysis"]
            if an not in self.analyses or not self.analyses[an]:
                self.analyses[an] = self.infer_type(r["metric"])
            self.labels.add(r["model_a"], r["checkpoint_a"], r["layer_a"])
            self.labels.add(r.get("model_b"), r.get("checkpoint_b"), r.get("layer_b"))
        for an in list(self.analyses):
            mat_path = os.path.join(path, f"cka_{an}.npy")
            taps_path = os.path.join(path, f"cka_{an}_taps.csv")
            if os.path.isfile(mat_path) and os.path.isfile(taps_path):
                try:
                    mat = np.load(mat_path, allow_pickle=False)
                    taps = read_csv(taps_path)
                except (OSError, ValueError) as e:
                    self.notes.append(f"cka_{an}.npy or its taps file could not be read: {e}")
                    continue
                if mat.ndim != 2 or mat.shape[0] != mat.shape[1] or mat.shape[0] != len(taps):
                    self.notes.append(f"cka_{an}.npy has shape {mat.shape} but cka_{an}_taps.csv lists "
                                      f"{len(taps)} taps; its heatmaps are left out")
                    continue
                for t in taps:
                    self.labels.add(t["model"], t["checkpoint"], t["layer"])
                self.cka[an] = (np.asarray(mat, dtype=float), taps)
                self.analyses[an] = "cka"
        self.labels.finish()
        self.dims = {}
        for fn in sorted(os.listdir(path)):
            if fn.startswith("taps_") and fn.endswith(".csv"):
                try:
                    for t in read_csv(os.path.join(path, fn)):
                        self.dims[(t["model"], t["layer"])] = (t.get("mode", ""), t.get("dim", ""))
                except (OSError, KeyError, ValueError):
                    pass

    @staticmethod
    def infer_type(metric):
        if metric == "cka":
            return "cka"
        if metric in CCA_METRICS:
            return "cca"
        if metric in ("effective_rank", "participation_ratio", "collapsed"):
            return "spectrum"
        if metric.startswith(("test_", "val_", "refit_", "train_")) or metric == "lambda":
            return "probe"
        return "other"

    def of_type(self, kind):
        return [a for a, t in self.analyses.items() if t == kind]

    def rows_of(self, analysis, metric=None):
        return [r for r in self.rows if r["analysis"] == analysis and (metric is None or r["metric"] == metric)]


# ---- figures -------------------------------------------------------------------

class Page:
    def __init__(self):
        self.parts = []
        self.toc = []
        self.data = {"figures": {}, "tables": {}}
        self.errors = []
        self.nfig = 0

    def h2(self, title, anchor):
        self.toc.append((anchor, title))
        self.parts.append(f'<h2 id="{esc(anchor)}">{esc(title)}</h2>')

    def add(self, s):
        self.parts.append(s)

    def figure(self, fig, fig_id, caption, data=None):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
        plt.close(fig)
        b64 = base64.b64encode(buf.getvalue()).decode("ascii")
        self.nfig += 1
        if data is not None:
            self.data["figures"][fig_id] = data
        self.parts.append(f'<figure id="fig-{esc(fig_id)}"><img alt="{esc(caption)}" '
                          f'src="data:image/png;base64,{b64}"><figcaption>{esc(caption)}</figcaption></figure>')

    def table(self, table_id, header, rows, data=None, cls=""):
        if data is not None:
            self.data["tables"][table_id] = data
        out = [f'<div class=scroll><table id="tab-{esc(table_id)}" class="{cls}">']
        if header:
            out.append("<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>")
        for r in rows:
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>")
        out.append("</table></div>")
        self.parts.append("".join(out))


def heat(ax, m, vmin=0.0, vmax=1.0, annotate=False):
    im = ax.imshow(np.ma.masked_invalid(m), vmin=vmin, vmax=vmax, cmap=HEAT_CMAP, origin="lower",
                   interpolation="nearest", aspect="equal")
    if annotate:
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if math.isfinite(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                            color="black" if m[i, j] > 0.6 else "white")
    return im


def block_axis(ax, which, ticks, groups, fontsize=7, rotate=False):
    """Two-level labels: `ticks` [(position, text)] on the axis itself and
    `groups` [(first, last, text)] on a second axis further out, with white
    separators between groups."""
    set_ticks = ax.set_xticks if which == "x" else ax.set_yticks
    set_ticks([p for p, _ in ticks])
    labels = [t for _, t in ticks]
    if which == "x":
        ax.set_xticklabels(labels, fontsize=fontsize, rotation=90 if rotate else 0)
    else:
        ax.set_yticklabels(labels, fontsize=fontsize)
    ax.tick_params(axis=which, length=2, pad=1)
    if not groups or len(groups) < 2 and groups[0][2] == "":
        return
    longest = max((len(t) for _, t in ticks), default=1)
    if which == "x":
        offset = (longest * fontsize * 0.62 if rotate else fontsize * 1.2) + 6
        sec = ax.secondary_xaxis("bottom")
        sec.spines["bottom"].set_position(("outward", offset))
        sec.spines["bottom"].set_visible(False)
        sec.set_xticks([(a + b) / 2 for a, b, _ in groups])
        sec.set_xticklabels([t for _, _, t in groups], fontsize=fontsize + 0.5)
        sec.tick_params(length=0)
        for a, _, _ in groups[1:]:
            ax.axvline(a - 0.5, color="white", lw=1.2)
    else:
        offset = longest * fontsize * 0.62 + 6
        sec = ax.secondary_yaxis("left")
        sec.spines["left"].set_position(("outward", offset))
        sec.spines["left"].set_visible(False)
        sec.set_yticks([(a + b) / 2 for a, b, _ in groups])
        sec.set_yticklabels([t for _, _, t in groups], fontsize=fontsize + 0.5, rotation=90, va="center")
        sec.tick_params(length=0)
        for a, _, _ in groups[1:]:
            ax.axhline(a - 0.5, color="white", lw=1.2)


def grid_of(n, ncols_max=4, w=3.3, h=3.0):
    ncols = min(n, ncols_max)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols + 0.8, h * nrows + 0.3), squeeze=False,
                             gridspec_kw={"wspace": 0.45, "hspace": 0.5})
    flat = axes.ravel().tolist()
    for ax in flat[n:]:
        ax.axis("off")
    return fig, flat[:n], flat


def series_stats(per_run, steps):
    """per_run: {run: {step: value}} -> mean, min, max, count at each step (NaNs ignored)."""
    c = np.array([[v.get(s, np.nan) for s in steps] for v in per_run.values()], dtype=float)
    with np.errstate(all="ignore"):
        cnt = np.sum(np.isfinite(c), axis=0)
        mean = np.where(cnt > 0, np.nansum(c, axis=0) / np.maximum(cnt, 1), np.nan)
        lo = np.array([np.nanmin(c[:, k]) if cnt[k] else np.nan for k in range(len(steps))])
        hi = np.array([np.nanmax(c[:, k]) if cnt[k] else np.nan for k in range(len(steps))])
    return mean, lo, hi, cnt


def plot_over_training(ax, lab, series, ylabel, logy=False, ylim=None):
    """series: {(model, layer): {run: {step: value}}}. Lines (mean over runs)
    with a min-max band when the models have at least two steps, grouped bars
    per checkpoint otherwise. Returns the plotted numbers."""
    out = {}
    models = {m for m, _ in series}
    stepped = all(lab.has_steps(m) and len(lab.steps(m)) >= 2 for m in models)
    if stepped:
        for (model, layer), per_run in series.items():
            steps = sorted({s for v in per_run.values() for s in v})
            mean, lo, hi, cnt = series_stats(per_run, steps)
            color = lab.layer_color(model, layer)
            name = lab.layer_name(model, layer)
            ax.plot(steps, mean, marker="o", ms=3, lw=1.5, color=color, label=name)
            if len(per_run) > 1:
                ax.fill_between(steps, lo, hi, color=color, alpha=0.18, lw=0)
            out[name] = {"steps": steps, "mean": mean, "min": lo, "max": hi, "n": cnt}
        words = {lab.step_name[m] for m in models}
        ax.set_xlabel(words.pop() if len(words) == 1 else "step")
        all_steps = sorted({s for d in out.values() for s in d["steps"]})
        if len(all_steps) <= 12:
            ax.set_xticks(all_steps)
    else:
        keys = list(series)
        runs = []
        for per_run in series.values():
            for r in per_run:
                if r not in runs:
                    runs.append(r)
        runs.sort(key=natural_key)
        width = 0.8 / max(1, len(runs))
        cmap = plt.get_cmap("Set2")
        for k, r in enumerate(runs):
            ys = []
            for key in keys:
                vals = list(series[key].get(r, {}).values())
                ys.append(vals[0] if vals else np.nan)
            ax.bar(np.arange(len(keys)) + (k - (len(runs) - 1) / 2) * width, ys, width=width * 0.95,
                   color=cmap(k % 8), label=r or "run")
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([lab.layer_name(m, l) for m, l in keys], fontsize=8, rotation=30, ha="right")
        for key in keys:
            name = lab.layer_name(*key)
            out[name] = {"runs": {r or "run": list(series[key].get(r, {}).values()) for r in runs}}
    if logy:
        ax.set_yscale("log")
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both" if logy else "major")
    if len(out) > 1 or not stepped:
        ax.legend(fontsize=7, ncol=2 if len(out) > 4 else 1, frameon=False)
    return out


# ---- CKA -----------------------------------------------------------------------

class CkaIndex:
    """Tap lookup for one CKA matrix: (model, label, layer) -> row."""

    def __init__(self, lab, mat, taps):
        self.lab = lab
        self.mat = mat
        self.index = {(t["model"], t["checkpoint"], t["layer"]): k for k, t in enumerate(taps)}
        self.taps = taps
        self.units = []  # (model, run) in order
        for t in sorted(taps, key=lambda t: lab.sort_key(t["model"], t["checkpoint"])):
            u = (t["model"], lab.run_of(t["model"], t["checkpoint"]))
            if u not in self.units:
                self.units.append(u)
        self.by_unit_step = {}  # (model, run, step) -> label
        for t in taps:
            m, c = t["model"], t["checkpoint"]
            self.by_unit_step[(m, lab.run_of(m, c), lab.step_of(m, c))] = c

    def layers(self, model):
        present = {t["layer"] for t in self.taps if t["model"] == model}
        return [l for l in self.lab.layers[model] if l in present]

    def steps(self, unit):
        return sorted(s for (m, r, s) in self.by_unit_step if (m, r) == unit and s is not None)

    def label(self, unit, step):
        return self.by_unit_step.get((unit[0], unit[1], step))

    def value(self, ta, tb):
        p, q = self.index.get(ta), self.index.get(tb)
        if p is None or q is None:
            return float("nan")
        return float(self.mat[p, q])


def analysis_param(res, an):
    params = {r.get("param", "") for r in res.rows_of(an)}
    return params.pop() if len(params) == 1 else ""


def cka_between_runs(page, res, an, ix):
    """Layer x layer CKA between runs (seed against seed) at their last common step."""
    lab = res.labels
    units = ix.units
    pairs = [(a, b) for i, a in enumerate(units) for b in units[i + 1:]] or [(units[0], units[0])]
    panels = []
    for a, b in pairs:
        if lab.has_steps(a[0]) and a[0] == b[0]:
            common = sorted(set(ix.steps(a)) & set(ix.steps(b)))
            if not common:
                continue
            sa = sb = common[-1]
        else:
            sa = ix.steps(a)[-1] if ix.steps(a) else None
            sb = ix.steps(b)[-1] if ix.steps(b) else None
        ca, cb = ix.label(a, sa), ix.label(b, sb)
        la, lb = ix.layers(a[0]), ix.layers(b[0])
        m = np.array([[ix.value((a[0], ca, x), (b[0], cb, y)) for y in lb] for x in la])
        off = np.isfinite(m).sum() - sum(1 for k in range(min(len(la), len(lb))) if np.isfinite(m[k, k]))
        if off <= 0 or len(la) < 2 and len(lb) < 2:
            continue  # only same-layer pairs: nothing to draw as a layer x layer grid
        panels.append((a, b, sa, sb, la, lb, m))
    if not panels:
        return
    shown = panels[:MAX_PAIR_PANELS]
    fig, axes, _ = grid_of(len(shown))
    im = None
    data = []
    for ax, (a, b, sa, sb, la, lb, m) in zip(axes, shown):
        im = heat(ax, m, annotate=len(la) <= 8 and len(lb) <= 8)
        ax.set_xticks(range(len(lb)))
        ax.set_xticklabels(lb, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(la)))
        ax.set_yticklabels(la, fontsize=7)
        ax.set_ylabel(lab.run_name(*a), fontsize=8)
        ax.set_xlabel(lab.run_name(*b), fontsize=8)
        when = lab.step_text(a[0], sa) if sa is not None and sa == sb else \
            ", ".join(f"{lab.run_name(*u)} {lab.step_text(u[0], s)}" for u, s in ((a, sa), (b, sb)) if s is not None)
        ax.set_title(f"{lab.run_name(*a)} vs {lab.run_name(*b)}" + (f"\n{when}" if when else ""), fontsize=8.5)
        data.append({"a": lab.run_name(*a), "b": lab.run_name(*b), "step_a": sa, "step_b": sb,
                     "layers_a": la, "layers_b": lb, "cka": m})
    fig.colorbar(im, ax=axes, shrink=0.85, label="CKA", fraction=0.03, pad=0.02)
    what = "between runs at their last common step" if len(units) > 1 else "between the layers of the checkpoint"
    cap = f"Layer × layer CKA {what} (rows: first run, columns: second; grey: not computed or undefined)"
    if len(panels) > len(shown):
        cap += f"; the first {len(shown)} of {len(panels)} pairs"
    page.figure(fig, f"{an}-between-runs", cap, data)
    return True


def checkpoint_ticks(lab, model, labels):
    """Ticks (step or checkpoint name per checkpoint) and run groups for checkpoints in sort order."""
    ticks, groups = [], []
    for k, c in enumerate(labels):
        run, step = lab.parsed[(model, c)]
        ticks.append((k, str(step) if step is not None else c))
        if lab.has_steps(model):
            if groups and groups[-1][2] == lab.run_name(model, run):
                groups[-1] = (groups[-1][0], k, groups[-1][2])
            else:
                groups.append((k, k, lab.run_name(model, run)))
    return ticks, groups


def cka_per_layer(page, res, an, ix):
    """Checkpoint x checkpoint CKA of each layer (training dynamics and seeds)."""
    lab = res.labels
    panels = []
    for model in lab.models:
        labels = sorted({t["checkpoint"] for t in ix.taps if t["model"] == model},
                        key=lambda c: lab.sort_key(model, c))
        if len(labels) < 2:
            continue
        for layer in ix.layers(model):
            m = np.array([[ix.value((model, x, layer), (model, y, layer)) for y in labels] for x in labels])
            if np.isfinite(m).sum() > len(labels):
                panels.append((model, layer, labels, m))
    if not panels:
        return False
    total = len(panels)
    panels = panels[:MAX_LAYER_PANELS]
    vmin = min(0.0, float(np.nanmin([np.nanmin(p[3]) for p in panels])))
    n = len(panels)
    embed = sum(p[3].size for p in panels) <= MAX_EMBEDDED
    size = 2.9 if len(panels[0][2]) <= 12 else 3.5
    ncols = 3 if size > 3 else 4
    fig, axes, _ = grid_of(n, ncols_max=ncols, w=size + 0.4, h=size + 0.3)
    im = None
    data = []
    for k, (ax, (model, layer, labels, m)) in enumerate(zip(axes, panels)):
        im = heat(ax, m, vmin=vmin, annotate=len(labels) <= 6)
        ticks, groups = checkpoint_ticks(lab, model, labels)
        if len(ticks) > MAX_TICKS:
            ticks = ticks[::math.ceil(len(ticks) / MAX_TICKS)]
        rotate = any(len(t) > 3 for _, t in ticks)
        # labels on the left column and on the lowest panel of each column only (they repeat)
        if k + ncols >= n or len(lab.models) > 1:
            block_axis(ax, "x", ticks, groups, fontsize=6, rotate=rotate)
        else:
            ax.set_xticks([])
            for a, _, _ in groups[1:]:
                ax.axvline(a - 0.5, color="white", lw=1.2)
        if k % ncols == 0 or len(lab.models) > 1:
            block_axis(ax, "y", ticks, groups, fontsize=6)
        else:
            ax.set_yticks([])
            for a, _, _ in groups[1:]:
                ax.axhline(a - 0.5, color="white", lw=1.2)
        ax.set_title(lab.layer_name(model, layer), fontsize=9)
        data.append({"model": model, "layer": layer, "checkpoints": labels, "cka": m if embed else None})
    fig.colorbar(im, ax=axes, shrink=0.85, label="CKA", fraction=0.03, pad=0.02)
    word = {lab.step_name.get(p[0]) for p in panels} - {None}
    order = f" (grouped by run, {word.pop() if len(word) == 1 else 'step'} inside each run)" if word else ""
    if total > n:
        order += f"; the first {n} of {total} layers"
    page.figure(fig, f"{an}-per-layer", f"Checkpoint × checkpoint CKA of each layer{order}; grey: not computed "
                "or undefined", data)
    return True


def cka_full_matrix(page, res, an, ix, per_layer_drawn=False):
    """Every tap against every other, grouped by layer, then run, then step."""
    lab = res.labels
    order = sorted(range(len(ix.taps)), key=lambda k: (
        lab.models.index(ix.taps[k]["model"]), lab.layers[ix.taps[k]["model"]].index(ix.taps[k]["layer"]),
        lab.sort_key(ix.taps[k]["model"], ix.taps[k]["checkpoint"])))
    P = len(order)
    if P < 2:
        return
    m = ix.mat[np.ix_(order, order)]
    taps = [ix.taps[k] for k in order]
    tap_layer = np.array([lab.layer_name(t["model"], t["layer"]) for t in taps])
    if per_layer_drawn and not (np.isfinite(m) & (tap_layer[:, None] != tap_layer[None, :])).any():
        return  # same-layer pairs only: the per-layer figure already shows every value

    def runs_of(t):
        return lab.run_name(t["model"], lab.run_of(t["model"], t["checkpoint"]))

    def spans(keyf):
        out = []
        for k, t in enumerate(taps):
            key = keyf(t)
            if out and out[-1][2] == key:
                out[-1] = (out[-1][0], k, key)
            else:
                out.append((k, k, key))
        return out
    layers = [(a, b, lab.layer_name(*key)) for a, b, key in spans(lambda t: (t["model"], t["layer"]))]
    run_spans = spans(lambda t: (t["model"], t["layer"], runs_of(t)))
    stepped = any(lab.step_of(t["model"], t["checkpoint"]) is not None for t in taps)
    if P <= 40 or not stepped or len(run_spans) == P:
        def tick(t):
            run, step = lab.parsed[(t["model"], t["checkpoint"])]
            return f"{lab.run_name(t['model'], run)} {step}" if step is not None else t["checkpoint"]
        ticks = [(k, tick(t)) for k, t in enumerate(taps)]
        inner = None
    else:
        ticks = [((a + b) / 2, key[2]) for a, b, key in run_spans]
        inner = run_spans
    if len(ticks) > MAX_TICKS:
        ticks = ticks[::math.ceil(len(ticks) / MAX_TICKS)]
    side = min(11.0, max(5.0, 0.08 * P + 4.0))
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    vmin = min(0.0, float(np.nanmin(m))) if np.isfinite(m).any() else 0.0
    im = heat(ax, m, vmin=vmin, annotate=P <= 10)
    rotate = any(len(t) > 3 for _, t in ticks)
    block_axis(ax, "x", ticks, layers if len(layers) > 1 else [], fontsize=6, rotate=rotate)
    block_axis(ax, "y", ticks, layers if len(layers) > 1 else [], fontsize=6)
    if inner:
        for a, _, _ in inner[1:]:
            ax.axvline(a - 0.5, color="white", lw=0.4)
            ax.axhline(a - 0.5, color="white", lw=0.4)
    fig.colorbar(im, ax=ax, shrink=0.8, label="CKA")
    ax.set_title(f"All {P} taps against each other", fontsize=10)
    cap = "Every tap against every other, grouped by layer"
    if inner:
        words = {lab.step_name.get(t["model"]) for t in taps} - {None}
        cap += (", then by run; inside each run the " + (words.pop() if len(words) == 1 else "step") +
                "s increase left to right and bottom to top")
    cap += " (grey: not computed or undefined)"
    page.figure(fig, f"{an}-full", cap, {"taps": [f"{t['model']}/{t['checkpoint']}/{t['layer']}" for t in taps]})


def cka_over_training(page, res, an, ix):
    """CKA of each layer with its own last step, and between runs at the same step."""
    lab = res.labels
    to_final = {}
    between = {}
    for model in lab.models:
        if not lab.has_steps(model):
            continue
        units = [u for u in ix.units if u[0] == model]
        for layer in ix.layers(model):
            per_run = {}
            for u in units:
                steps = ix.steps(u)
                if len(steps) < 2:
                    continue
                fin = ix.label(u, steps[-1])
                ys = {s: ix.value((model, ix.label(u, s), layer), (model, fin, layer)) for s in steps}
                if any(math.isfinite(v) for k, v in ys.items() if k != steps[-1]):
                    per_run[u[1]] = ys
            if per_run:
                to_final[(model, layer)] = per_run
            per_pair = {}
            for i, a in enumerate(units):
                for b in units[i + 1:]:
                    common = sorted(set(ix.steps(a)) & set(ix.steps(b)))
                    ys = {s: ix.value((model, ix.label(a, s), layer), (model, ix.label(b, s), layer)) for s in common}
                    if any(math.isfinite(v) for v in ys.values()):
                        per_pair[f"{a[1]}|{b[1]}"] = ys
            if per_pair and len({s for v in per_pair.values() for s in v}) >= 2:
                between[(model, layer)] = per_pair
    if not to_final and not between:
        return
    n = (1 if to_final else 0) + (1 if between else 0)
    fig, axes = plt.subplots(1, n, figsize=(6.2 * n, 3.8), squeeze=False, gridspec_kw={"wspace": 0.25})
    axes = axes[0].tolist()
    data = {}
    if to_final:
        ax = axes.pop(0)
        data["to_final"] = plot_over_training(ax, lab, to_final, "CKA with the last step", ylim=(0, 1.03))
        ax.set_title("Each layer against its own last step", fontsize=9.5)
    if between:
        ax = axes.pop(0)
        data["between_runs"] = plot_over_training(ax, lab, between, "CKA between runs", ylim=(0, 1.03))
        ax.set_title("Each layer between runs at the same step", fontsize=9.5)
    page.figure(fig, f"{an}-over-training", "CKA over training: line = mean over runs (left) or pairs of runs "
                "(right), band = min–max", data)


def column(r, key):
    """A metrics.csv number column as a float (NaN when empty or not a number)."""
    try:
        return float(r.get(key) or "nan")
    except ValueError:
        return float("nan")


def uncertainty_settings(res, an):
    for a in res.manifest.get("analyses", []) or []:
        if a.get("name") == an and isinstance(a.get("uncertainty"), dict):
            return a["uncertainty"]
    return {}


def has_intervals(res, an, metric):
    return any(r.get("status") == "ok" and any(math.isfinite(column(r, k)) for k in ("ci_low", "null_mean"))
               for r in res.rows_of(an, metric))


def intervals(page, res, an, metric):
    """Each pair's (or tap's) value of a metric with its interval (error bar) and
    permutation null (grey band from the null mean to its 95th percentile), the
    first MAX_INTERVALS in metrics.csv order, and the same numbers as a table with
    the p-values."""
    rows = [r for r in res.rows_of(an, metric) if r.get("status") == "ok" and
            any(math.isfinite(column(r, k)) for k in ("ci_low", "null_mean"))]
    if not rows:
        return
    total = len(rows)
    rows = rows[:MAX_INTERVALS]
    models = {r["model_a"] for r in rows} | {r.get("model_b") for r in rows if r.get("model_b")}

    def tap(r, side):
        m = f"{r['model_' + side]}/" if len(models) > 1 else ""
        return f"{m}{r['checkpoint_' + side]}/{r['layer_' + side]}"
    names = [f"{tap(r, 'a')} – {tap(r, 'b')}" if r.get("model_b") else tap(r, "a") for r in rows]
    cols = {k: np.array([column(r, k) for r in rows]) for k in
            ("value", "se", "ci_low", "ci_high", "null_mean", "null_q95", "p_value")}
    v, lo, hi, nm, nq = (cols[k] for k in ("value", "ci_low", "ci_high", "null_mean", "null_q95"))
    n = len(rows)
    fig, ax = plt.subplots(figsize=(8.5, 0.28 * n + 1.3))
    y = np.arange(n)[::-1]
    band = np.isfinite(nm) & np.isfinite(nq)
    if band.any():
        ax.barh(y[band], (nq - nm)[band], left=nm[band], height=0.62, color="#bdbdbd", lw=0,
                label="null: mean to 95th percentile")
        ax.plot(nm[band], y[band], "|", color="#636363", ms=9)
    bars = np.isfinite(lo) & np.isfinite(hi)
    if bars.any():
        ax.errorbar(v[bars], y[bars], xerr=[v[bars] - lo[bars], hi[bars] - v[bars]], fmt="o", ms=3.5, capsize=2.5,
                    color="#1f77b4", lw=1.2, label=f"{metric} and interval")
    if (~bars).any():
        ax.plot(v[~bars], y[~bars], "o", ms=3.5, color="#1f77b4", label=None if bars.any() else metric)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlabel(metric)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False)
    ax.set_ylim(-0.7, n - 0.3)
    st = uncertainty_settings(res, an)
    level = st.get("level")
    how = {"bootstrap": f"bootstrap, {st.get('replicates', '?')} replicates, {st.get('interval', 'normal')}",
           "jackknife": "jackknife"}.get(st.get("method"), "")
    cap = f"{metric} of each {'pair' if rows[0].get('model_b') else 'tap'}"
    if bars.any():
        cap += (f" with its {fnum(100 * level, 0) + '% ' if isinstance(level, (int, float)) else ''}interval"
                f"{' (' + how + ')' if how else ''} as an error bar")
    if band.any():
        cap += (f"; grey band: the permutation null ({st.get('permutations', '?')} permutations) from its mean "
                "(tick) to its 95th percentile")
    if total > n:
        cap += f"; the first {n} of {total} in metrics.csv order"
    data = {"metric": metric, "pairs": names, "total": total, **{k: c for k, c in cols.items()}}
    page.figure(fig, f"{an}-{metric}-intervals", cap, data)
    page.table(f"{an}-{metric}-intervals", ["pair" if rows[0].get("model_b") else "tap", esc(metric), "se",
                                            "interval", "null mean", "null 95%", "p"],
               [[esc(nmz), fnum(a), fnum(b), f"{fnum(c)} – {fnum(d)}", fnum(e), fnum(f), fnum(g)]
                for nmz, a, b, c, d, e, f, g in zip(names, *(cols[k] for k in
                                                         ("value", "se", "ci_low", "ci_high", "null_mean",
                                                          "null_q95", "p_value")))])
    return True


def cka_section(page, res, an):
    mat, taps = res.cka[an]
    ix = CkaIndex(res.labels, mat, taps)
    param = analysis_param(res, an)
    page.h2(f"CKA: {an}" + (f" ({param})" if param else ""), f"cka-{an}")
    upper = mat[np.triu_indices(len(taps), 1)]
    finite = upper[np.isfinite(upper)]
    rng = f", from {fnum(float(finite.min()))} to {fnum(float(finite.max()))}" if finite.size else ""
    page.add(f"<p class=meta>{len(taps)} taps; {finite.size} of {upper.size} pairs computed and defined{rng}.</p>")
    if not np.isfinite(mat).any():
        page.add("<p class=warn>No value of this matrix is defined.</p>")
        return
    guarded(page, f"{an}: intervals and null", intervals, page, res, an, "cka")
    grid = guarded(page, f"{an}: layer x layer between runs", cka_between_runs, page, res, an, ix)
    guarded(page, f"{an}: over training", cka_over_training, page, res, an, ix)
    drawn = guarded(page, f"{an}: checkpoint x checkpoint per layer", cka_per_layer, page, res, an, ix)
    if grid and len({(t["model"], t["checkpoint"]) for t in taps}) == 1:
        return  # one checkpoint: the layer x layer grid is the whole matrix
    guarded(page, f"{an}: full matrix", cka_full_matrix, page, res, an, ix, bool(drawn))


# ---- RBF against linear CKA ---------------------------------------------------------

def kernel_of(res, an):
    words = analysis_param(res, an).split()
    for k in ("linear", "rbf"):
        if k in words:
            return k
    return None


def pair_key(r):
    a = (r["model_a"], r["checkpoint_a"], r["layer_a"])
    b = (r["model_b"], r["checkpoint_b"], r["layer_b"])
    return (a, b) if a <= b else (b, a)


def ranks(x):
    r = np.empty(len(x))
    r[np.argsort(x, kind="mergesort")] = np.arange(len(x))
    return r


def kernel_agreement(page, res):
    lab = res.labels
    ckas = res.of_type("cka")
    kernels = {an: kernel_of(res, an) for an in ckas}
    combos = []
    for lin in ckas:
        for rbf in ckas:
            if kernels[lin] == "linear" and kernels[rbf] == "rbf":
                dl = {r.get("dataset") for r in res.rows_of(lin, "cka")}
                dr = {r.get("dataset") for r in res.rows_of(rbf, "cka")}
                if dl & dr:
                    combos.append((lin, rbf))
    if not combos:
        return
    page.h2("RBF against linear CKA", "kernels")
    for lin, rbf in combos:
        vl = {pair_key(r): value_of(r) for r in res.rows_of(lin, "cka")}
        vr = {pair_key(r): value_of(r) for r in res.rows_of(rbf, "cka")}
        keys = [k for k in vl if k in vr and math.isfinite(vl[k]) and math.isfinite(vr[k])]
        if len(keys) < 2:
            page.add(f"<p>{esc(lin)} and {esc(rbf)} have {len(keys)} pair(s) in common: nothing to compare.</p>")
            continue
        x = np.array([vl[k] for k in keys])
        y = np.array([vr[k] for k in keys])
        groups = OrderedDict()
        for k, a, b in zip(keys, x, y):
            name = lab.layer_name(k[0][0], k[0][2]) if k[0][::2] == k[1][::2] else "different layers"
            groups.setdefault(name, []).append((a, b))
        fig, ax = plt.subplots(figsize=(4.6, 4.2))
        for name, pts in groups.items():
            p = np.array(pts)
            if name == "different layers":
                color = "#999999"
            else:
                model, layer = next((m, l) for m in lab.models for l in lab.layers[m] if lab.layer_name(m, l) == name)
                color = lab.layer_color(model, layer)
            ax.scatter(p[:, 0], p[:, 1], s=9, alpha=0.7, color=color, label=name, lw=0)
        lo = float(min(x.min(), y.min(), 0.0))
        ax.plot([lo, 1], [lo, 1], color="black", lw=0.8, ls="--")
        ax.set_xlabel(f"linear CKA ({lin})")
        ax.set_ylabel(f"RBF CKA ({rbf})")
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False, markerscale=1.6)
        rows, tdata = [], []
        for name, pts in list(groups.items()) + [("all pairs", list(zip(x, y)))]:
            p = np.array(pts)
            d = np.abs(p[:, 0] - p[:, 1])
            pear = float(np.corrcoef(p[:, 0], p[:, 1])[0, 1]) if len(p) > 2 and p[:, 0].std() > 0 and \
                p[:, 1].std() > 0 else float("nan")
            spear = float(np.corrcoef(ranks(p[:, 0]), ranks(p[:, 1]))[0, 1]) if len(p) > 2 and \
                p[:, 0].std() > 0 and p[:, 1].std() > 0 else float("nan")
            rows.append([esc(name), len(p), fnum(pear), fnum(spear), fnum(float(d.mean())), fnum(float(d.max()))])
            tdata.append({"group": name, "n": len(p), "pearson": pear, "spearman": spear,
                          "mean_abs_diff": float(d.mean()), "max_abs_diff": float(d.max())})
        page.figure(fig, f"kernels-{lin}-{rbf}", f"Each tap pair computed by both {lin} (linear kernel) and {rbf} "
                    "(RBF kernel); dashed: equal values", {"pairs": len(keys)})
        page.table(f"kernels-{lin}-{rbf}", ["pairs", "n", "Pearson r", "Spearman ρ", "mean |Δ|", "max |Δ|"], rows,
                   tdata)


# ---- CCA family ------------------------------------------------------------------

def cca_section(page, res):
    lab = res.labels
    ans = [an for an in res.of_type("cca") if any(r["metric"] in CCA_METRICS for r in res.rows_of(an))]
    if not ans:
        return
    page.h2("CCA family", "cca")
    for an in ans:
        agg = OrderedDict()
        ckpts = set()
        for r in res.rows_of(an):
            if r["metric"] not in CCA_METRICS:
                continue
            ends = sorted([(r["model_a"], r["layer_a"]), (r.get("model_b"), r.get("layer_b"))],
                          key=lambda e: (lab.models.index(e[0]), lab.layers[e[0]].index(e[1]))
                          if e[0] in lab.layers and e[1] in lab.layers[e[0]] else (len(lab.models), 0))
            key = lab.layer_name(*ends[0]) if ends[0] == ends[1] else \
                f"{lab.layer_name(*ends[0])} ↔ {lab.layer_name(*ends[1])}"
            agg.setdefault(key, defaultdict(list))[r["metric"]].append(value_of(r))
            ckpts.update((r["checkpoint_a"], r.get("checkpoint_b", "")))
        present = [m for m in CCA_METRICS if any(m in v for v in agg.values())]
        rows, tdata = [], []
        for key, v in agg.items():
            n = max(len(x) for x in v.values())
            cells = [esc(key), n]
            d = {"layers": key, "pairs": n}
            for m in present:
                a = np.array(v.get(m, []), dtype=float)
                a = a[np.isfinite(a)]
                if a.size:
                    sd = float(a.std(ddof=1)) if a.size > 1 else None
                    cells.append(fnum(float(a.mean())) + (f" ± {fnum(sd)}" if sd is not None else ""))
                    d[m] = {"mean": float(a.mean()), "sd": sd, "min": float(a.min()), "max": float(a.max()),
                            "n": int(a.size)}
                else:
                    cells.append("–")
            rows.append(cells)
            tdata.append(d)
        param = analysis_param(res, an)
        ck = sorted(c for c in ckpts if c)
        page.add(f"<h3>{esc(an)}</h3><p class=meta>{esc(param)}; checkpoints: "
                 f"{esc(', '.join(ck[:12]) + (' …' if len(ck) > 12 else ''))}. "
                 "Mean ± sample standard deviation over the checkpoint pairs.</p>")
        page.table(f"cca-{an}", ["layer", "pairs"] + [esc(m) for m in present], rows, tdata)
        shown = next((m for m in ("svcca", "pwcca", "cca_mean_rho", "procrustes_d2", "r2_b_from_a")
                      if has_intervals(res, an, m)), None)
        if shown:
            guarded(page, f"{an}: intervals and null", intervals, page, res, an, shown)


def plot_lambdas(ax, lab, lam):
    """Selected lambda per run (dots) and its geometric mean over runs (line):
    lambda is a choice from a grid, so a min-max band would only show the grid."""
    models = {m for m, _ in lam}
    if not all(lab.has_steps(m) and len(lab.steps(m)) >= 2 for m in models):
        return plot_over_training(ax, lab, lam, "selected λ", logy=True)
    out = {}
    n = len(lam)
    for k, ((model, layer), per_run) in enumerate(lam.items()):
        color = lab.layer_color(model, layer)
        dx = (k - (n - 1) / 2) * 0.06
        steps = sorted({s for v in per_run.values() for s in v})
        logs = {s: [math.log10(v[s]) for v in per_run.values() if s in v and v[s] > 0] for s in steps}
        gm = [10 ** (sum(logs[s]) / len(logs[s])) if logs[s] else float("nan") for s in steps]
        for v in per_run.values():
            xs = [s + dx for s in steps if s in v]
            ax.scatter(xs, [v[s] for s in steps if s in v], s=16, color=color, alpha=0.8, lw=0)
        name = lab.layer_name(model, layer)
        ax.plot([s + dx for s in steps], gm, lw=1.2, color=color, label=name)
        out[name] = {"steps": steps, "geomean": gm, "runs": {r: [v.get(s) for s in steps] for r, v in per_run.items()}}
    ax.set_yscale("log")
    words = {lab.step_name[m] for m in models}
    ax.set_xlabel(words.pop() if len(words) == 1 else "step")
    all_steps = sorted({s for d in out.values() for s in d["steps"]})
    if len(all_steps) <= 12:
        ax.set_xticks(all_steps)
    ax.set_ylabel("selected λ")
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=7, ncol=2 if n > 4 else 1, frameon=False)
    return out


# ---- probes ---------------------------------------------------------------------

LAMBDA_RE = re.compile(r"lambda=([-+0-9.eEinfa]+)")


def probe_section(page, res):
    lab = res.labels
    ans = [an for an in res.of_type("probe") if res.rows_of(an, "test_top1")]
    if not ans:
        return
    page.h2("Probes", "probes")
    for an in ans:
        acc, lam, top5, loss, conv = {}, {}, {}, {}, [0, 0]
        val = defaultdict(lambda: defaultdict(dict))  # (model, layer) -> lambda -> run -> value (last step)
        for r in res.rows_of(an):
            model, c, layer = r["model_a"], r["checkpoint_a"], r["layer_a"]
            run, step = lab.parsed[(model, c)]
            v = value_of(r)
            target = {"test_top1": acc, "lambda": lam, "test_top5": top5, "test_loss": loss}.get(r["metric"])
            if target is not None:
                target.setdefault((model, layer), {}).setdefault(run, {})[step] = v
            elif r["metric"] in ("train_converged", "refit_converged") and math.isfinite(v):
                conv[0] += int(v == 0)
                conv[1] += 1
        kind = analysis_param(res, an).split()[0] if analysis_param(res, an) else \
            (res.rows_of(an)[0].get("param", "").split() or [""])[0]
        page.add(f"<h3>{esc(an)}</h3>")
        n = 2 if lam else 1
        last = {}
        for r in res.rows_of(an, "val_top1"):
            model, c, layer = r["model_a"], r["checkpoint_a"], r["layer_a"]
            run, step = lab.parsed[(model, c)]
            m = LAMBDA_RE.search(r.get("param", ""))
            if not m:
                continue
            steps = lab.steps(model)
            if step is None or step == steps[-1]:
                val[(model, layer)][float(m.group(1))][run] = value_of(r)
                last[(model, layer)] = step
        if val:
            n += 1
        fig, axes = plt.subplots(1, n, figsize=(4.6 * n + 0.6, 3.7), squeeze=False, gridspec_kw={"wspace": 0.38})
        axes = axes[0].tolist()
        data = {}
        ax = axes.pop(0)
        data["test_top1"] = plot_over_training(ax, lab, acc, "test top-1 accuracy")
        ax.set_title("Test accuracy (refit on train + validation)", fontsize=9)
        if lam:
            ax = axes.pop(0)
            data["lambda"] = plot_lambdas(ax, lab, lam)
            ax.set_title("λ chosen on the validation split", fontsize=9)
        if val:
            ax = axes.pop(0)
            data["val_top1_last"] = {}
            for (model, layer), per_lam in val.items():
                ls = sorted(per_lam)
                ys = [np.nanmean(list(per_lam[l].values())) for l in ls]
                ax.plot(ls, ys, marker="o", ms=3, color=lab.layer_color(model, layer),
                        label=lab.layer_name(model, layer))
                data["val_top1_last"][lab.layer_name(model, layer)] = {"lambda": ls, "mean": ys}
            ax.set_xscale("log")
            ax.set_xlabel("λ")
            ax.set_ylabel("validation top-1 (mean over runs)")
            ax.minorticks_off()
            steps_shown = {s for s in last.values() if s is not None}
            ax.set_title("Validation accuracy against λ" + (
                f", {lab.step_text(lab.models[0], max(steps_shown))}" if steps_shown else ""), fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, frameon=False)
        page.figure(fig, f"{an}-probe", f"{kind or 'probe'} probe of every tap: line = mean over runs, "
                    "band = min–max" + ("; λ: dots per run, line = geometric mean" if lam else ""), data)
        # table at the last step
        rows, tdata = [], []
        for (model, layer), per_run in acc.items():
            steps = sorted({s for v in per_run.values() for s in v if s is not None})
            fin = steps[-1] if steps else None

            def at(d):
                return np.array([v.get(fin, np.nan) for v in d.get((model, layer), {}).values()], dtype=float)
            a, t5, lo, lm = at(acc), at(top5), at(loss), at(lam)
            if fin is None:
                a = np.array([list(v.values())[0] for v in per_run.values()])
            fa = a[np.isfinite(a)]
            rows.append([esc(lab.layer_name(model, layer)), len(fa),
                         (fnum(float(fa.mean())) + (f" ({fnum(float(fa.min()))}–{fnum(float(fa.max()))})"
                                                    if fa.size > 1 else "")) if fa.size else "–",
                         fnum(float(np.nanmean(t5))) if np.isfinite(t5).any() else "–",
                         fnum(float(np.nanmean(lo))) if np.isfinite(lo).any() else "–",
                         esc(", ".join(f"{v:g}" for v in sorted(set(lm[np.isfinite(lm)].tolist())))) or "–"])
            tdata.append({"layer": lab.layer_name(model, layer), "step": fin, "test_top1": a, "lambda": lm})
        when = f" at the last {lab.step_name[lab.models[0]]}" if lab.has_steps(lab.models[0]) else ""
        page.table(f"{an}-probe", ["layer", "runs", f"test top-1{when} (min–max)", "test top-5", "test loss",
                                   "selected λ"], rows, tdata)
        if conv[1]:
            page.add(f"<p class=meta>The gradient test was met by {conv[1] - conv[0]} of {conv[1]} fits "
                     "(train_converged, refit_converged in metrics.csv); the others stopped when the objective "
                     "stalled or at max_iter. The run warns about refits that did not stall.</p>")


# ---- spectra ---------------------------------------------------------------------

def spectrum_section(page, res):
    lab = res.labels
    ans = [an for an in res.of_type("spectrum") if res.rows_of(an, "effective_rank")]
    if not ans:
        return
    page.h2("Effective rank", "spectrum")
    for an in ans:
        er = {}
        for r in res.rows_of(an, "effective_rank"):
            model, c, layer = r["model_a"], r["checkpoint_a"], r["layer_a"]
            run, step = lab.parsed[(model, c)]
            er.setdefault((model, layer), {}).setdefault(run, {})[step] = value_of(r)
        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        data = plot_over_training(ax, lab, er, "effective rank", logy=True)
        ax.set_title(f"{an}: effective rank (exp of the spectral entropy)", fontsize=9)
        page.figure(fig, f"{an}-effective-rank", "Effective rank of each layer: line = mean over runs, band = "
                    "min–max (log scale)", data)
        widths = []
        for (model, layer) in er:
            mode, dim = res.dims.get((model, layer), ("", ""))
            widths.append(f"{esc(lab.layer_name(model, layer))}: {esc(dim)}" if dim else esc(layer))
        if any(res.dims.get(k) for k in er):
            page.add(f"<p class=meta>Tap widths: {', '.join(widths)}.</p>")
        if has_intervals(res, an, "effective_rank"):
            guarded(page, f"{an}: intervals", intervals, page, res, an, "effective_rank")
        collapsed = [r for r in res.rows_of(an, "collapsed") if math.isfinite(value_of(r)) and value_of(r) > 0]
        if collapsed:
            page.add("<p class=warn>Collapsed taps (effective rank below the collapse fraction of the width): " +
                     ", ".join(esc(f"{r['checkpoint_a']}/{r['layer_a']}") for r in collapsed[:40]) +
                     (f" and {len(collapsed) - 40} more" if len(collapsed) > 40 else "") + ".</p>")


# ---- manifest and warnings -------------------------------------------------------

def warnings_of(res):
    """Every warning: the run's, values that are not ok, and problems reading the folder."""
    out = [("run", str(w)) for w in res.manifest.get("warnings", []) or []]
    bad = defaultdict(list)
    for r in res.rows:
        if r.get("status", "ok") != "ok":
            bad[(r["analysis"], r["metric"], r["status"])].append(r)
    for (an, metric, status), rs in sorted(bad.items()):
        ex = ", ".join(f"{r['checkpoint_a']}/{r['layer_a']}" + (
            f" vs {r['checkpoint_b']}/{r['layer_b']}" if r.get("checkpoint_b") else "") for r in rs[:3])
        out.append(("metrics", f"{len(rs)} {metric} value(s) of {an} are '{status}' (e.g. {ex})"))
    out += [("report", n) for n in res.notes]
    return out


def manifest_section(page, res):
    man = res.manifest
    page.h2("Run", "run")
    if not man:
        page.add("<p class=warn>No manifest.json in this folder.</p>")
        return
    rows = []
    for k in ("name", "job", "mode", "repeval_version", "git_revision", "ranks", "samples", "resumed",
              "undefined_values"):
        if k in man:
            rows.append([esc(k), esc(man[k])])
    cache = man.get("cache")
    if isinstance(cache, dict) and cache.get("dir"):
        rows.append(["cache", esc(", ".join(f"{k} {v}" for k, v in cache.items()))])
    for k, v in (man.get("libraries") or {}).items():
        rows.append([esc(k), esc(v)])
    page.table("run", None, rows, {k: man.get(k) for k in ("name", "ranks", "samples")}, cls="kv")
    t = man.get("timings_s") or {}
    if t:
        total = t.get("total") or sum(v for k, v in t.items() if k != "total") or 1.0
        page.add("<h3>Timings</h3>")
        page.table("timings", ["stage", "seconds", "share"],
                   [[esc(k), f"{float(v):.2f}", "" if k == "total" else f"{100 * float(v) / total:.1f} %"]
                    for k, v in t.items()], t)
    models = man.get("models") or []
    if models:
        page.add("<h3>Models</h3>")
        page.table("models", ["name", "architecture", "checkpoints", "layers"],
                   [[esc(m.get("name", "")), esc(m.get("arch", "")), esc(m.get("checkpoints", "")),
                     esc(", ".join(map(str, m.get("layers", []))))] for m in models])
    ans = man.get("analyses") or []
    if ans:
        page.add("<h3>Analyses</h3>")
        page.table("analyses", ["name", "type", "dataset", "estimator / parameters"],
                   [[esc(a.get("name", "")), esc(a.get("type", "")),
                     esc(a.get("dataset") or (f"{a['train']} → {a['test']}" if a.get("train") else "")),
                     esc(analysis_param(res, a.get("name", "")))] for a in ans])
    ins = man.get("inputs") or []
    if ins:
        page.add(f"<h3>Inputs ({len(ins)})</h3>")
        page.table("inputs", ["kind", "name", "path", "size", "bytes", "fnv1a64"],
                   [[esc(i.get("kind", "")), esc(i.get("label") or i.get("name") or ""), esc(i.get("path", "")),
                     human_bytes(i.get("bytes")), esc(i.get("bytes", "")), f"<code>{esc(i.get('fnv1a64', ''))}</code>"]
                    for i in ins], {"count": len(ins)})


def files_section(page, res):
    names = []
    for fn in sorted(os.listdir(res.path)):
        p = os.path.join(res.path, fn)
        if fn == "report.html" or fn.startswith("."):
            continue
        size = os.path.getsize(p) if os.path.isfile(p) else None
        names.append(f'<li><a href="{esc(fn)}">{esc(fn)}</a>' + (f" ({human_bytes(size)})" if size is not None else "/")
                     + "</li>")
    page.add("<h3>Files in this folder</h3><ul class=files>" + "".join(names) + "</ul>")


def guarded(page, what, fn, *args):
    """Draw one part of the page; a failure becomes a visible note, not a missing page."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - the rest of the page is still worth writing
        plt.close("all")
        msg = f"{what} could not be drawn: {type(e).__name__}: {e}"
        page.errors.append(msg)
        page.add(f"<p class=error>{esc(msg)}</p>")
        print(f"report: {msg}", file=sys.stderr)
        if os.environ.get("REPEVAL_REPORT_DEBUG"):
            traceback.print_exc()


STYLE = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;max-width:1280px;margin:1.5em auto;padding:0 1em;
color:#1d1d1d;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
h3{margin-bottom:.3em}figure{margin:1em 0}img{max-width:100%;height:auto}
figcaption{font-size:13px;color:#555;margin-top:.3em}
table{border-collapse:collapse;margin:.6em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;
text-align:left;vertical-align:top}th{background:#f3f3f3}table.kv td:first-child{font-weight:bold;background:#f7f7f7}
.scroll{overflow-x:auto}.meta{color:#444;font-size:14px}.warn{color:#8a4b00}.error{color:#b00020;font-weight:bold}
.box{border:1px solid #e0b060;background:#fff8e6;padding:.5em 1em;margin:1em 0}
.ok{border-color:#9c9;background:#f2fbf2}
nav ul{columns:3;font-size:14px}code{font-size:12px}ul.files{columns:3;font-size:13px}
"""


def summary(page, res, warnings):
    lab = res.labels
    man = res.manifest
    bits = []
    for model in lab.models:
        runs = lab.runs(model)
        steps = lab.steps(model)
        s = f"<b>{esc(model)}</b>: {len(lab.labels[model])} checkpoint(s)"
        if lab.has_steps(model):
            s += f" — {len(runs)} run(s) × {len(steps)} {esc(lab.step_name[model])}(s)"
        s += f", layers {esc(', '.join(lab.layers[model]))}"
        bits.append(s)
    page.add("<p class=meta>" + "<br>".join(bits) + "</p>")
    if man.get("samples") is not None:
        page.add(f"<p class=meta>{esc(man.get('samples'))} samples streamed; {esc(man.get('ranks', '?'))} rank(s); "
                 f"analyses: {esc(', '.join(f'{a} ({t})' for a, t in res.analyses.items()))}.</p>")
    if warnings:
        page.add(f'<div class=box><b>{len(warnings)} warning(s)</b>, listed under '
                 f'<a href="#warnings">Warnings</a>.</div>')
    else:
        page.add("<div class='box ok'>No warnings: every value in metrics.csv is defined.</div>")


def build(res):
    page = Page()
    title = res.manifest.get("name") or os.path.basename(os.path.abspath(res.path))
    warnings = warnings_of(res)
    summary(page, res, warnings)
    for an in res.cka:
        guarded(page, f"CKA {an}", cka_section, page, res, an)
    guarded(page, "RBF against linear CKA", kernel_agreement, page, res)
    guarded(page, "Probes", probe_section, page, res)
    guarded(page, "Embedding maps", report_maps.section, page, res, sys.modules[__name__])
    guarded(page, "Effective rank", spectrum_section, page, res)
    guarded(page, "CCA", cca_section, page, res)
    guarded(page, "Checkpoint integrity", report_integrity.section, page, res, sys.modules[__name__])
    guarded(page, "Run", manifest_section, page, res)
    page.h2("Warnings", "warnings")
    if warnings:
        page.add("<ul>" + "".join(f"<li><b>{esc(src)}</b>: {esc(w)}</li>" for src, w in warnings) + "</ul>")
    else:
        page.add("<p>None.</p>")
    files_section(page, res)
    page.data["warnings"] = [w for _, w in warnings]
    page.data["errors"] = page.errors
    page.data["labels"] = {f"{m}/{c}": {"run": r, "step": s} for (m, c), (r, s) in res.labels.parsed.items()}
    head = (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>repeval report: {esc(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>repeval report: {esc(title)}</h1>")
    nav = "<nav><ul>" + "".join(f'<li><a href="#{esc(a)}">{esc(t)}</a></li>' for a, t in page.toc) + "</ul></nav>"
    # every "<" as \u003c: no "</script" or "<!--" inside the block can end it early
    blob = json.dumps(jsonable(page.data), separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    tail = (f"<p class=meta>Written by repeval report on {time.strftime('%Y-%m-%d %H:%M:%S')} from "
            f"<code>{esc(os.path.basename(os.path.abspath(res.path)))}</code>.</p>"
            f'<script type="application/json" id="report-data">{blob}</script></body></html>\n')
    return head + nav + "\n".join(page.parts) + tail, page


def main():
    ap = argparse.ArgumentParser(description="Write report.html for a repeval results folder.")
    ap.add_argument("results")
    ap.add_argument("--out", help="output file (default RESULTS/report.html)")
    args = ap.parse_args()
    metrics = os.path.join(args.results, "metrics.csv")
    if not os.path.isfile(metrics):
        print(f"repeval: error: {args.results}: no metrics.csv here (not a results folder of repeval run)",
              file=sys.stderr)
        return 1
    try:
        res = Results(args.results)
    except (OSError, ValueError, KeyError, ReportError) as e:
        print(f"repeval: error: {e}", file=sys.stderr)
        return 1
    text, page = build(res)
    out = args.out or os.path.join(args.results, "report.html")
    tmp = f"{out}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, out)
    except OSError as e:
        print(f"repeval: error: cannot write {out}: {e}", file=sys.stderr)
        return 1
    print(out)
    return 1 if page.errors else 0


if __name__ == "__main__":
    sys.exit(main())
