"""The report's checkpoint-integrity section (report.py imports it): the findings
of each integrity analysis (integrity_<name>.json), and per model the relative
change of every tensor's norm between neighbouring checkpoints and the CKA of
each layer with the next checkpoint of its run, with the findings marked."""
import json
import math
import os

import numpy as np

MAX_TENSORS = 40  # rows of the norm-change heatmap: the tensors that change most


def load(res):
    """[(analysis, parsed integrity_<name>.json)] for the integrity analyses of the folder."""
    out = []
    names = [a for a, t in res.analyses.items() if t == "integrity"]
    for fn in sorted(os.listdir(res.path)):
        if fn.startswith("integrity_") and fn.endswith(".json") and fn[len("integrity_"):-5] not in names:
            names.append(fn[len("integrity_"):-5])
    for an in names:
        path = os.path.join(res.path, f"integrity_{an}.json")
        if not os.path.isfile(path):
            res.notes.append(f"integrity_{an}.json is missing: the integrity section leaves {an} out")
            continue
        try:
            with open(path) as f:
                rep = json.load(f)
            if not isinstance(rep.get("findings"), list) or not isinstance(rep.get("models"), list):
                raise ValueError("expected 'findings' and 'models' lists")
        except (OSError, ValueError) as e:
            res.notes.append(f"integrity_{an}.json could not be read: {e}")
            continue
        out.append((an, rep))
    return out


def transitions(model):
    """Neighbouring checkpoints of each run: [(run, from label, to label)]."""
    return [(r["name"], a, b) for r in model.get("runs", []) for a, b in zip(r["checkpoints"], r["checkpoints"][1:])]


def norm_changes(model):
    """log2 of each float tensor's norm ratio over every transition: (names, matrix, transitions)."""
    idx = {c["label"]: k for k, c in enumerate(model["checkpoints"])}
    tr = transitions(model)
    names, rows = [], []
    for t in model.get("tensors", []):
        if not t.get("float"):
            continue
        norm = [np.nan if v is None else float(v) for v in t["norm"]]
        row = []
        for _, a, b in tr:
            x, y = norm[idx[a]], norm[idx[b]]
            row.append(math.log2(y / x) if x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y) else np.nan)
        names.append(t["name"])
        rows.append(row)
    m = np.array(rows, dtype=float).reshape(len(rows), len(tr))
    return names, m, tr


def model_figure(h, page, an, model, findings):
    """Norm changes (left) and CKA with the next checkpoint (right) of one model."""
    plt = h.plt
    names, m, tr = norm_changes(model)
    layers = model.get("layers") or []
    has_cka = bool(layers) and any(v is not None for row in model.get("cka_next", []) for v in row)
    if not tr or (m.size == 0 and not has_cka):
        return
    if m.shape[0] > MAX_TENSORS:
        score = np.nan_to_num(np.abs(m), nan=0.0).max(axis=1)
        keep = sorted(np.argsort(-score, kind="stable")[:MAX_TENSORS])
        names, m = [names[k] for k in keep], m[keep]
    ncols = (1 if m.size else 0) + (1 if has_cka else 0)
    fig, axes = plt.subplots(1, ncols, figsize=(6.4 * ncols, max(3.6, 0.17 * len(names) + 1.6)), squeeze=False,
                             gridspec_kw={"wspace": 0.45})
    axes = axes[0].tolist()
    data = {"model": model["name"]}
    jumps = {(f["checkpoints"][0], f["checkpoints"][1]) for f in findings
             if f["kind"] == "norm_jump" and len(f["checkpoints"]) == 2}
    if m.size:
        ax = axes.pop(0)
        lim = max(0.1, float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 0.1)
        cmap = plt.get_cmap("RdBu_r").copy()
        cmap.set_bad("#d9d9d9")
        im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto",
                       interpolation="nearest")
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names, fontsize=6)
        step = max(1, math.ceil(len(tr) / h.MAX_TICKS))
        ax.set_xticks(range(0, len(tr), step))
        ax.set_xticklabels([b for _, _, b in tr][::step], fontsize=6, rotation=90)
        for k, (_, a, b) in enumerate(tr):
            if (a, b) in jumps:
                ax.axvline(k, color="black", lw=0.8, ls="--")
        runs = [r for r, _, _ in tr]
        for k in range(1, len(runs)):
            if runs[k] != runs[k - 1]:
                ax.axvline(k - 0.5, color="white", lw=1.5)
        fig.colorbar(im, ax=ax, shrink=0.8, label="log₂ of the norm ratio to the previous checkpoint")
        ax.set_title("Change of each tensor's norm (columns: to this checkpoint)", fontsize=9)
        data["norm_log2_ratio"] = {"tensors": names, "transitions": [[a, b] for _, a, b in tr], "values": m}
    if has_cka:
        ax = axes.pop(0)
        idx = {c["label"]: k for k, c in enumerate(model["checkpoints"])}
        steps = {c["label"]: c.get("step") for c in model["checkpoints"]}
        stepped = all(s is not None for s in steps.values())
        series = {}
        colors = h.LAYER_COLORS
        for li, layer in enumerate(layers):
            row = model["cka_next"][li]
            for run in model.get("runs", []):
                xs, ys = [], []
                for a, b in zip(run["checkpoints"], run["checkpoints"][1:]):
                    v = row[idx[a]]
                    xs.append(steps[b] if stepped else idx[b])
                    ys.append(np.nan if v is None else v)
                if xs:
                    label = layer if len(model["runs"]) == 1 else f"{layer} ({run['name']})"
                    ax.plot(xs, ys, marker="o", ms=3, lw=1.2, color=colors[li % len(colors)], label=label)
                    series[label] = {"to": [b for b in run["checkpoints"][1:]], "cka_next": ys}
        for f in findings:
            if f["kind"] == "cka_trend" and f["checkpoints"]:
                c = f["checkpoints"][0]
                ax.axvline(steps[c] if stepped else idx[c], color="#b00020", lw=1, ls="--")
            if f["kind"] == "gap" and len(f["checkpoints"]) == 2 and stepped:
                ax.axvspan(steps[f["checkpoints"][0]], steps[f["checkpoints"][1]], color="#f0c040", alpha=0.25, lw=0)
        ax.set_xlabel("step (of the later checkpoint)" if stepped else "checkpoint")
        ax.set_ylabel("CKA with the previous checkpoint")
        ax.set_ylim(min(0.0, np.nanmin([v for s in series.values() for v in s["cka_next"]] + [0.0])), 1.03)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False, ncol=2 if len(series) > 4 else 1)
        ax.set_title("Each layer against the previous checkpoint of its run\n(red: breaks the trend; yellow: gap)",
                     fontsize=9)
        data["cka_next"] = series
    page.figure(fig, f"{an}-integrity-{model['name']}", f"Integrity of model {model['name']}: relative change of each "
                "tensor's L2 norm between neighbouring checkpoints (dashed: a norm jump), and linear CKA with the "
                "previous checkpoint of the run", data)


def section(page, res, h):
    """h: the report module (Page helpers, esc, matplotlib)."""
    reps = load(res)
    if not reps:
        return
    esc = h.esc
    page.h2("Checkpoint integrity", "integrity")
    for an, rep in reps:
        models = rep["models"]
        nck = sum(len(m.get("checkpoints", [])) for m in models)
        findings = rep["findings"]
        page.add(f"<h3>{esc(an)}</h3><p class=meta>{nck} checkpoint(s) of {len(models)} model(s) checked: identical "
                 "content, byte-identical tensors between steps, jumps of tensor norms, CKA with neighbouring steps "
                 "that breaks the trend, gaps in the steps, non-finite weights.</p>")
        if findings:
            page.add(f"<div class=box><b>{len(findings)} finding(s)</b>: check these checkpoints before trusting "
                     "metrics over training.</div>")
            page.table(f"{an}-findings", ["finding", "model", "checkpoints", "what was seen"],
                       [[esc(f["kind"].replace("_", " ")), esc(f["model"]), esc(", ".join(f["checkpoints"])),
                         esc(f["message"])] for f in findings], findings)
        else:
            page.add("<div class='box ok'>No finding: no copies, no stale tensors, no norm jumps or CKA breaks, "
                     "no gaps.</div>")
            page.data["tables"][f"{an}-findings"] = []
        for model in models:
            h.guarded(page, f"integrity {an}: model {model.get('name')}", model_figure, h, page, an, model,
                      [f for f in findings if f["model"] == model.get("name")])
