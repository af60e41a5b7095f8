#!/usr/bin/env python3
"""repeval report on results folders that hold only part of what a report can
show still writes a valid page with what exists, and says what is wrong
instead of failing: one checkpoint, checkpoint labels without numbers (k-NN
probe without lambda), two models, probes only, CCA only with pairs between
layers, no manifest, no metric rows, a CKA matrix whose taps file does not
match, values that are not ok. Every page is rendered in headless Chromium
(images decode and show content, no console messages). Not a results folder:
exit 1 with the reason; no folder: usage error (2)."""
import csv
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reportlib as rl  # noqa: E402

DATA = rl.data_block(test_limit=200, train_limit=200)

JOBS = {
    "one": DATA + """models:
  - {name: cnn, arch: cnn.yaml, checkpoints: "checkpoints/seed1/epoch_05.pt",
     layers: [conv1:mean, conv2:mean, fc1, fc2]}
analyses:
  cka: {dataset: test, batch: 50, pairs: all}
  spectrum: {dataset: test}
""",
    # a name that would end the JSON block early if "<" were not escaped there
    "hostile": DATA + """models:
  - {name: "m<!--<script>", arch: cnn.yaml, checkpoints: "checkpoints/seed1/epoch_05.pt", layers: [fc1, fc2]}
analyses:
  cka: {dataset: test, batch: 50}
""",
    "named": DATA + """models:
  - {name: cnn, arch: cnn.yaml, checkpoints: "named/*", layers: [conv1:mean, pool2, fc2]}
analyses:
  cka: {dataset: test, batch: 50}
  cka_rbf: {type: cka, dataset: test, kernel: rbf, batch: 50, pairs: same-layer}
  cca: {dataset: test}
  spectrum: {dataset: test}
  probe: {kind: knn, train: train, test: test}
""",
    "twomodels": DATA + """models:
  - {name: a, arch: cnn.yaml, checkpoints: "checkpoints/seed0/epoch_0[05].*", layers: [conv2:mean, fc1]}
  - {name: b, arch: cnn.yaml, checkpoints: "checkpoints/seed1/epoch_0[05].*", layers: [conv2:mean, fc1, fc2]}
analyses:
  cka: {dataset: test, batch: 50}
  probe: {kind: ridge, train: train, test: test, grid: [1e-3, 1e1, 3]}
""",
    "probeonly": DATA + """models:
  - {name: cnn, arch: cnn.yaml, checkpoints: "checkpoints/seed{0,1}/epoch_0[05].*", layers: [fc1]}
analyses:
  probe: {kind: logistic, train: train, test: test, lambdas: [1e-2, 1]}
""",
    "ccaonly": DATA + """models:
  - {name: cnn, arch: cnn.yaml, checkpoints: "checkpoints/seed{0,1}/epoch_05.*", layers: [fc1, fc2]}
analyses:
  cca: {dataset: test, methods: [cca, svcca, pwcca, procrustes, linreg], pairs: all}
""",
}

# what each page must show (section and figure ids) and must not
EXPECT = {
    "one": (["cka-cka", "spectrum", "run", "warnings", "fig-cka-between-runs", "fig-spectrum-effective-rank"],
            ["probes", "cca", "kernels", "fig-cka-full", "fig-cka-over-training", "fig-cka-per-layer"]),
    "named": (["cka-cka", "cka-cka_rbf", "kernels", "probes", "spectrum", "cca", "fig-cka-between-runs",
               "fig-cka-per-layer", "fig-cka-full", "fig-cka_rbf-per-layer", "fig-probe-probe"],
              ["fig-cka-over-training", "fig-cka_rbf-full"]),
    "twomodels": (["cka-cka", "probes", "fig-cka-between-runs", "fig-cka-over-training", "fig-cka-per-layer",
                   "fig-cka-full", "fig-probe-probe"], ["spectrum", "cca", "kernels"]),
    "hostile": (["cka-cka", "run"], ["probes", "cca"]),
    "probeonly": (["probes", "fig-probe-probe", "run"], ["cka-cka", "spectrum", "cca", "kernels"]),
    "ccaonly": (["cca", "tab-cca-cca", "run"], ["cka-cka", "probes", "spectrum", "kernels"]),
}


def page_ok(s, work, folder, what, expect_in=(), expect_out=(), images=True):
    rc, so, se = rl.report(folder)
    page = os.path.join(folder, "report.html")
    if not s.check(rc == 0 and os.path.isfile(page), f"{what}: report exits 0 and writes the page: {rc} {se}"):
        return None
    p = rl.parse_page(page)
    for i in expect_in:
        s.check(i in p.ids, f"{what}: #{i} present")
    for i in expect_out:
        s.check(i not in p.ids, f"{what}: #{i} absent")
    s.check("error" not in p.classes, f"{what}: no part failed to draw")
    data = rl.report_data(page)
    if images:
        rl.check_rendered(s, page, work, what)
    else:
        status, console, _ = rl.render(page, work)
        s.check(not console and status["imgs"] == [], f"{what}: renders without images or console messages")
    return data


def rewrite_csv(path, fn):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows = fn(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def main():
    s = rl.Suite()
    work = rl.job_dir("report-degrades")
    try:
        named = os.path.join(work, "named")
        os.mkdir(named)
        ck = os.path.join(rl.DEMO, "checkpoints")
        for name, src in (("alpha.pt", "seed0/epoch_05.pt"), ("beta.safetensors", "seed1/epoch_04.safetensors"),
                          ("init.safetensors", "seed2/epoch_00.safetensors")):
            os.symlink(os.path.join(ck, src), os.path.join(named, name))
        outs = {}
        for name, text in JOBS.items():
            outs[name] = rl.run_job(work, name, text)
            data = page_ok(s, work, outs[name], name, *EXPECT[name], images=name != "ccaonly")
            if data is None:
                continue
            if name == "one":
                s.check(data["labels"] == {"cnn/epoch_05": {"run": "", "step": 5}},
                        f"one: epoch_05 is step 5 of one unnamed run: {data['labels']}")
                panel = data["figures"]["cka-between-runs"][0]
                s.check(panel["a"] == panel["b"] and len(panel["layers_a"]) == 4,
                        "one: the layer x layer grid is within the checkpoint")
            elif name == "named":
                s.check(all(v["step"] is None and v["run"] == k.split("/", 1)[1] for k, v in data["labels"].items()),
                        f"named: labels without numbers are runs without steps: {data['labels']}")
                s.check("lambda" not in data["figures"]["probe-probe"], "named: a k-NN probe has no lambda panel")
                s.check(len(data["figures"]["cka-between-runs"]) == 3, "named: three pairs of checkpoints")
            elif name == "twomodels":
                s.check(data["labels"].get("b/epoch_05") == {"run": "", "step": 5},
                        f"twomodels: labels per model: {data['labels']}")
                s.check(set(data["figures"]["probe-probe"]["test_top1"]) ==
                        {"a:conv2", "a:fc1", "b:conv2", "b:fc1", "b:fc2"},
                        "twomodels: layers named with their model")
            elif name == "hostile":
                text = open(os.path.join(outs[name], "report.html"), encoding="utf-8").read()
                block = text.split('id="report-data">', 1)[1].rsplit("</script>", 1)[0]
                s.check("<" not in block and any("m<!--<script>" in k for k in data["labels"]),
                        f"hostile: '<' escaped in the JSON block, the name intact: {list(data['labels'])}")
            elif name == "ccaonly":
                rows = [r["layers"] for r in data["tables"]["cca-cca"]]
                s.check(sorted(rows) == ["fc1", "fc1 ↔ fc2", "fc2"],
                        f"ccaonly: one row per unordered layer pair: {rows}")
                both = {r["layers"]: r for r in data["tables"]["cca-cca"]}["fc1 ↔ fc2"]
                s.check(both["pairs"] == 4, f"ccaonly: fc1-fc2 pairs in both orders counted together: {both}")

        # edited copies of a real folder
        def copy(name):
            dst = os.path.join(work, f"edit-{name}")
            shutil.copytree(outs["one"], dst)
            os.remove(os.path.join(dst, "report.html"))
            return dst

        d = copy("nomanifest")
        os.remove(os.path.join(d, "manifest.json"))
        data = page_ok(s, work, d, "no manifest", ["cka-cka", "spectrum", "run"])
        s.check(data is not None and "No manifest.json" in open(os.path.join(d, "report.html")).read(),
                "no manifest: the page says so")

        d = copy("norows")
        rewrite_csv(os.path.join(d, "metrics.csv"), lambda rows: rows[:1])
        for fn in os.listdir(d):
            if fn.endswith(".npy"):
                os.remove(os.path.join(d, fn))
        page_ok(s, work, d, "no metric rows", ["run", "warnings"], ["cka-cka", "spectrum"], images=False)

        d = copy("badtaps")
        rewrite_csv(os.path.join(d, "cka_cka_taps.csv"), lambda rows: rows[:-1])
        data = page_ok(s, work, d, "taps file does not match", ["spectrum", "warnings"], ["cka-cka"])
        s.check(data is not None and any("cka_cka.npy has shape (4, 4)" in w and "3 taps" in w
                                         for w in data["warnings"]),
                f"taps file does not match: named in the warnings: {data and data['warnings']}")

        d = copy("undefined")

        def undefine(rows):
            h = rows[0]
            for r in rows[1:3]:
                r[h.index("status")] = "undefined"
                r[h.index("value")] = ""
            return rows
        rewrite_csv(os.path.join(d, "metrics.csv"), undefine)
        data = page_ok(s, work, d, "values not ok", ["cka-cka", "warnings"])
        s.check(data is not None and any(w.startswith("2 cka value(s) of cka are 'undefined'")
                                         for w in data["warnings"]),
                f"values not ok: counted in the warnings: {data and data['warnings']}")

        # refusals
        empty = os.path.join(work, "empty")
        os.mkdir(empty)
        rc, _, se = rl.report(empty)
        s.check(rc == 1 and "metrics.csv" in se and not os.path.exists(os.path.join(empty, "report.html")),
                f"not a results folder: exit 1 naming metrics.csv: {rc} {se!r}")
        rc, _, se = rl.report(os.path.join(work, "no-such-folder"))
        s.check(rc == 1 and "not a folder" in se, f"a missing folder: exit 1: {rc} {se!r}")
        rc, _, se = rl.run([rl.REPEVAL, "report"])
        s.check(rc == 2, f"no folder: usage error 2: {rc} {se!r}")
    finally:
        if os.environ.get("REPEVAL_KEEP_TMP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    s.finish()


if __name__ == "__main__":
    main()
