"""The language-model demo as scripts/lm-demo runs it (jobs/lm-demo/lm-demo.yaml
under mpiexec on 2 ranks, then `repeval report`) gives a self-contained page that
headless Chromium renders: the CKA figures between seeds and over training steps,
the category probes, the effective ranks and the SVCCA/PWCCA table are there and
drawn, every checkpoint label reads as run seedK, step N, the probe curves carry
the test accuracies of metrics.csv, every <img> decodes, every figure area has
content, nothing is fetched and the console stays silent. Skipped (77) without
Debian's fortunes."""
import csv
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reportlib as rl  # noqa: E402
from common import MPIEXEC, SOURCE_DIR, run  # noqa: E402

DEMO = os.path.join(SOURCE_DIR, "jobs", "lm-demo")
FORTUNES = os.environ.get("FORTUNES", "/usr/share/games/fortunes")
SECTIONS = ["cka-cka", "probes", "spectrum", "cca", "run", "warnings"]
FIGURES = ["cka-between-runs", "cka-over-training", "cka-per-layer", "cka-full", "probe-probe",
           "spectrum-effective-rank"]
STEPS = [0, 30, 120, 500]


def main():
    if not all(os.path.isfile(os.path.join(FORTUNES, c))
               for c in ("computers", "food", "literature", "love", "science")):
        print(f"{FORTUNES}: Debian's fortunes package is not installed")
        sys.exit(77)
    s = rl.Suite()
    work = tempfile.mkdtemp(prefix="repeval-lm-report-")
    try:
        out = os.path.join(work, "lm-demo")
        rc, so, se = run([MPIEXEC, "--oversubscribe", "-n", "2", rl.REPEVAL, "run", os.path.join(DEMO, "lm-demo.yaml"),
                          "--out", out, "--quiet"], timeout=1500,
                         env={"OPENBLAS_NUM_THREADS": "1", "ASAN_OPTIONS": "detect_leaks=0"})
        if not s.check(rc == 0, f"the demo runs on 2 ranks: {se}"):
            s.finish()
        rc, so, se = rl.report(out)
        page = os.path.join(out, "report.html")
        if not s.check(rc == 0 and os.path.isfile(page), f"repeval report writes report.html: {rc} {se}"):
            s.finish()

        p = rl.parse_page(page)
        s.check(not p.external, f"no external references: {p.external}")
        s.check(all(sc.get("type") == "application/json" for sc in p.scripts), "no executable scripts")
        for sec in SECTIONS:
            s.check(sec in p.ids, f"section #{sec} present")
        for fig in FIGURES:
            s.check(f"fig-{fig}" in p.ids, f"figure #fig-{fig} present")
        s.check("error" not in p.classes, "no part of the page failed to draw")
        data = rl.report_data(page)
        s.check(data["errors"] == [] and data["warnings"] == [], f"no errors or warnings: {data['errors']} "
                f"{data['warnings']}")
        labels = data["labels"]
        want = {f"lm/seed{r}/step{t}": {"run": f"seed{r}", "step": t} for r in (1, 2, 3) for t in STEPS}
        s.check(labels == want, f"12 checkpoints read as run seedK, step N: {sorted(labels.items())[:3]}")

        # the probe curves are the test accuracies of metrics.csv: mean, min and max over seeds
        with open(os.path.join(out, "metrics.csv")) as f:
            acc = {(r["checkpoint_a"], r["layer_a"]): float(r["value"]) for r in csv.DictReader(f)
                   if r["analysis"] == "probe" and r["metric"] == "test_top1"}
        curves = data["figures"]["probe-probe"]["test_top1"]
        worst = 0.0
        for layer in [f"hidden_states.{k}" for k in range(5)]:
            c = curves.get(layer, {})
            s.check(c.get("steps") == STEPS, f"{layer}: probe curve over steps {c.get('steps')}")
            v = np.array([[acc[(f"seed{r}/step{t}", layer)] for t in STEPS] for r in (1, 2, 3)])
            for key, ref in (("mean", v.mean(0)), ("min", v.min(0)), ("max", v.max(0))):
                worst = max(worst, float(np.max(np.abs(np.array(c.get(key, [np.nan] * 4)) - ref))))
        s.check(worst <= 1e-12, f"probe curves equal metrics.csv: max |diff| {worst}")

        status, shot = rl.check_rendered(s, page, work, "lm-demo report")
        s.check(len(status["imgs"]) == len(p.imgs) and len(p.imgs) >= len(FIGURES),
                f"the browser sees every image: {len(status['imgs'])} of {len(p.imgs)}")
    finally:
        if os.environ.get("REPEVAL_KEEP_TMP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    s.finish()


if __name__ == "__main__":
    main()
