"""The report's sections on samples (report.py imports it): 2-D maps of each
layer's embedding over training (map analyses: PCA from the run's principal axes,
and t-SNE of the same points when scikit-learn is installed), and alignment and
uniformity (alignment analyses) over training and in the plane of the two."""
import csv
import os

import numpy as np

MAX_COLS = 6          # checkpoints per row of maps (evenly spaced over the run)
MAX_ROWS = 8          # layers (rows) per figure
MAX_TSNE_PANELS = 12  # t-SNE is the slow part of a report (about 1 s of CPU a map): at most this many
TSNE_ITER = 500       # gradient steps of each t-SNE (scikit-learn's default is 1000)
LABEL_COLORS = None   # set from matplotlib in section()


def read_map(res, an):
    """(coords P x m x K, taps, labels or None, variance P x K) of map analysis an."""
    p = res.path
    coords = np.load(os.path.join(p, f"map_{an}.npy"), allow_pickle=False)
    var = np.load(os.path.join(p, f"map_{an}_variance.npy"), allow_pickle=False)
    with open(os.path.join(p, f"map_{an}_taps.csv"), newline="") as f:
        taps = list(csv.DictReader(f))
    lp = os.path.join(p, f"map_{an}_labels.npy")
    labels = np.load(lp, allow_pickle=False) if os.path.isfile(lp) else None
    if coords.ndim != 3 or coords.shape[0] != len(taps) or var.shape[0] != len(taps) or \
            (labels is not None and labels.shape != (coords.shape[1],)):
        raise ValueError(f"map_{an}.npy has shape {coords.shape}, its taps file lists {len(taps)} taps, "
                         f"the variance file has shape {var.shape}")
    return coords.astype(np.float64), taps, labels, var


def pick(labels_in_order, n):
    """At most n evenly spaced items, first and last included."""
    if len(labels_in_order) <= n:
        return list(labels_in_order)
    idx = sorted({round(k * (len(labels_in_order) - 1) / (n - 1)) for k in range(n)})
    return [labels_in_order[k] for k in idx]


def grid(lab, taps):
    """Rows (model, layer) and, per model, the checkpoints shown (first run, evenly spaced)."""
    rows, cols = [], {}
    for model in lab.models:
        present = {t["layer"] for t in taps if t["model"] == model}
        rows += [(model, layer) for layer in lab.layers[model] if layer in present]
        cks = sorted({t["checkpoint"] for t in taps if t["model"] == model}, key=lambda c: lab.sort_key(model, c))
        runs = []
        for c in cks:
            r = lab.run_of(model, c)
            if r not in runs:
                runs.append(r)
        first = [c for c in cks if lab.run_of(model, c) == runs[0]] if runs else []
        cols[model] = pick(first, MAX_COLS)
    return rows[:MAX_ROWS], cols, len(rows)


def align_signs(panels):
    """Flip each axis of a panel whose coordinates anti-correlate with the previous
    panel's on the same points (PCA axes have no sign; neighbours should look alike)."""
    for k in range(1, len(panels)):
        a, b = panels[k - 1], panels[k]
        if a is None or b is None:
            continue
        for j in range(2):
            x, y = a[:, j], b[:, j]
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() > 2 and float(np.dot(x[ok] - x[ok].mean(), y[ok] - y[ok].mean())) < 0:
                b[:, j] = -b[:, j]
    return panels


def draw_maps(h, page, an, kind, panels, rows, cols, labels, titles, total_rows, note=""):
    plt = h.plt
    ncols = max(len(c) for c in cols.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.2 * ncols + 0.6, 2.15 * len(rows) + 0.4), squeeze=False,
                             gridspec_kw={"wspace": 0.08, "hspace": 0.32})
    data = {"rows": [h.RES_LABELS.layer_name(m, l) for m, l in rows], "columns": {}}
    classes = sorted(set(labels.tolist())) if labels is not None else []
    for i, (model, layer) in enumerate(rows):
        for j in range(ncols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(cols[model]):
                ax.axis("off")
                continue
            ck = cols[model][j]
            pts = panels.get((model, ck, layer))
            if pts is None or not np.isfinite(pts[:, :2]).any():
                ax.text(0.5, 0.5, "no map", ha="center", va="center", fontsize=7, color="#777")
                continue
            if labels is not None and len(classes) <= 40:
                col = [LABEL_COLORS[classes.index(v) % len(LABEL_COLORS)] for v in labels]
            else:
                col = "#3b6ea8"
            ax.scatter(pts[:, 0], pts[:, 1], s=3, c=col, lw=0, alpha=0.85, rasterized=True)
            ax.set_title(titles.get((model, ck, layer), ck), fontsize=7)
            if j == 0:
                ax.set_ylabel(h.RES_LABELS.layer_name(model, layer), fontsize=8)
            data["columns"].setdefault(model, cols[model])
    cap = (f"{kind} maps of each layer (rows) over training (columns: checkpoints of the first run, evenly spaced), "
           "the same sampled samples in every panel" + (", coloured by label" if labels is not None else ""))
    if total_rows > len(rows):
        cap += f"; the first {len(rows)} of {total_rows} layers"
    page.figure(fig, f"{an}-{kind.lower().replace('-', '')}", cap + note, data)


def map_section(h, page, res, an):
    coords, taps, labels, var = read_map(res, an)
    lab = res.labels
    rows, cols, total = grid(lab, taps)
    if not rows:
        return
    index = {(t["model"], t["checkpoint"], t["layer"]): q for q, t in enumerate(taps)}
    pca, titles = {}, {}
    for model, layer in rows:
        seq = []
        for ck in cols[model]:
            q = index.get((model, ck, layer))
            seq.append(coords[q, :, :2].copy() if q is not None else None)
            if q is not None:
                v = var[q]
                step = lab.step_of(model, ck)
                head = lab.step_text(model, step) if step is not None else ck
                titles[(model, ck, layer)] = f"{head}\nPC1 {100 * v[0]:.0f}%, PC2 {100 * v[1]:.0f}%" \
                    if np.isfinite(v[:2]).all() else head
        for ck, pts in zip(cols[model], align_signs(seq)):
            if pts is not None:
                pca[(model, ck, layer)] = pts
    m = coords.shape[1]
    page.add(f"<h3>{h.esc(an)}</h3><p class=meta>{m} samples drawn with a fixed seed, projected on the principal "
             "axes of each tap (from the covariance of every sample of the pass).</p>")
    draw_maps(h, page, an, "PCA", pca, rows, cols, labels, titles, total)
    settings = next((a for a in res.manifest.get("analyses", []) or [] if a.get("name") == an), {})
    if not settings.get("tsne", True):
        return
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        page.add("<p class=meta>t-SNE maps left out: scikit-learn is not installed (Debian's python3-sklearn, "
                 "scripts/install-deps demo).</p>")
        return
    try:  # one thread: t-SNE's OpenMP threads only contend with each other on a busy node
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(1)
    except ImportError:
        limit = None
    ncols = max(len(c) for c in cols.values())
    trows = rows[:max(1, MAX_TSNE_PANELS // ncols)]
    perplexity = min(30.0, (m - 1) / 3.0)
    tsne = {}
    try:
        for model, layer in trows:
            for ck in cols[model]:
                q = index.get((model, ck, layer))
                x = coords[q] if q is not None else np.zeros((0, 0))
                x = x[:, np.isfinite(x).all(axis=0)]
                if q is None or x.shape[1] < 2 or m < 5:
                    continue
                tsne[(model, ck, layer)] = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0,
                                               learning_rate="auto", n_iter=TSNE_ITER).fit_transform(x)
    finally:
        if limit is not None:
            limit.restore_original_limits()
    if tsne:
        note = f"; t-SNE (scikit-learn, perplexity {perplexity:g}, {TSNE_ITER} steps, seed 0) of the points' " \
               f"coordinates on the first {coords.shape[2]} principal axes"
        draw_maps(h, page, an, "t-SNE", tsne, trows, cols, labels,
                  {k: titles.get(k, k[1]).split("\n")[0] for k in tsne}, total, note)


def alignment_section(h, page, res, an):
    lab = res.labels
    al, un = {}, {}
    own = next((a.get("dataset") for a in res.manifest.get("analyses", []) or [] if a.get("name") == an), None)
    for r in res.rows_of(an):
        model, c, layer = r["model_a"], r["checkpoint_a"], r["layer_a"]
        run, step = lab.parsed[(model, c)]
        target = {"alignment": al, "uniformity": un}.get(r["metric"])
        if target is None or (r["metric"] == "uniformity" and own and r.get("dataset") != own):
            continue  # the uniformity of the analysis' own dataset (not of the second views)
        target.setdefault((model, layer), {}).setdefault(run, {})[step] = h.value_of(r)
    if not al and not un:
        return
    param = next((r["param"] for r in res.rows_of(an, "alignment")), "")
    page.add(f"<h3>{h.esc(an)}</h3><p class=meta>{h.esc(param)}; lower alignment: positive pairs closer; lower "
             "uniformity: embeddings spread more evenly over the sphere.</p>")
    plt = h.plt
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 3.8), gridspec_kw={"wspace": 0.32})
    data = {}
    if al:
        data["alignment"] = h.plot_over_training(axes[0], lab, al, "alignment")
        axes[0].set_title("Alignment of positive pairs", fontsize=9)
    if un:
        data["uniformity"] = h.plot_over_training(axes[1], lab, un, "uniformity")
        axes[1].set_title("Uniformity of the embedding", fontsize=9)
    ax = axes[2]
    plane = {}
    for key in al:
        if key not in un:
            continue
        model, layer = key
        pts = [(un[key][run][s], al[key][run][s], s) for run in al[key] for s in al[key][run]
               if run in un[key] and s in un[key][run]]
        pts.sort(key=lambda p: (p[2] is None, p[2] if p[2] is not None else 0))
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        color = lab.layer_color(model, layer)
        ax.plot(xs, ys, "-o", ms=3, lw=1, color=color, label=lab.layer_name(model, layer))
        ax.scatter(xs[-1:], ys[-1:], s=40, color=color, marker="*", zorder=3)
        plane[lab.layer_name(model, layer)] = {"uniformity": xs, "alignment": ys, "steps": [p[2] for p in pts]}
    ax.set_xlabel("uniformity")
    ax.set_ylabel("alignment")
    ax.grid(alpha=0.3)
    ax.set_title("Alignment against uniformity (star: the last checkpoint)", fontsize=9)
    if plane:
        ax.legend(fontsize=7, frameon=False)
    data["plane"] = plane
    for a in axes[len([x for x in (al, un) if x]):2]:
        a.axis("off")
    page.figure(fig, f"{an}-alignment", "Alignment and uniformity (Wang & Isola 2020) of each layer over training: "
                "line = mean over runs, band = min–max", data)


def section(page, res, h):
    """h: the report module."""
    global LABEL_COLORS
    LABEL_COLORS = h.plt.get_cmap("tab10").colors + h.plt.get_cmap("Dark2").colors
    h.RES_LABELS = res.labels
    maps = [a for a, t in res.analyses.items() if t == "map" and os.path.isfile(os.path.join(res.path, f"map_{a}.npy"))]
    aligns = [a for a, t in res.analyses.items() if t == "alignment" and res.rows_of(a)]
    if maps:
        page.h2("Embedding maps", "maps")
        for an in maps:
            h.guarded(page, f"maps {an}", map_section, h, page, res, an)
    if aligns:
        page.h2("Alignment and uniformity", "alignment")
        for an in aligns:
            h.guarded(page, f"alignment {an}", alignment_section, h, page, res, an)

