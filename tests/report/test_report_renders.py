#!/usr/bin/env python3
"""repeval report on a small real job (three seeds of the demo CNN at three
epochs, 300 test samples, every analysis type, probes with two lambdas) writes
a self-contained page that headless Chromium renders: every <img> decodes,
every figure area of a screenshot has content, nothing is fetched, the console
stays silent. Negative controls show the browser checks catch a broken image,
a blank figure and a console error."""
import base64
import io
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reportlib as rl  # noqa: E402

EXPECTED_SECTIONS = ["cka-cka", "cka-cka_rbf", "kernels", "probes", "spectrum", "cca", "run", "warnings"]
EXPECTED_FIGURES = ["cka-between-runs", "cka-over-training", "cka-per-layer", "cka-full", "cka_rbf-over-training",
                    "cka_rbf-per-layer", "kernels-cka-cka_rbf", "probe-probe", "spectrum-effective-rank"]


def png_bytes(rgb):
    import matplotlib.image
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, rgb, format="png")
    return buf.getvalue()


def negative_controls(s, work):
    """A page with a corrupt image, an all-white image and a console error must
    fail the same checks the report passes."""
    noise = np.random.default_rng(0).random((60, 80, 3))
    good = base64.b64encode(png_bytes(noise)).decode()
    white = base64.b64encode(png_bytes(np.ones((60, 80, 3)))).decode()
    page = os.path.join(work, "controls.html")
    with open(page, "w") as f:
        f.write("<!doctype html><html><body>"
                f'<img src="data:image/png;base64,{good}" width=160>'
                '<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB" width=160 height=120>'
                f'<img src="data:image/png;base64,{white}" width=160>'
                "<script>console.error('control error')</script></body></html>")
    status, console, shot = rl.render(page, work)
    imgs = status["imgs"]
    decoded = [i["complete"] and i["w"] > 0 for i in imgs]
    s.check(decoded == [True, False, True], f"controls: decode status detects the corrupt image: {decoded}")
    blank = [k for k, _ in rl.blank_regions(shot, imgs)]
    # (the browser draws a broken-image frame for the corrupt one: caught above, by its decode status)
    s.check(2 in blank and 0 not in blank, f"controls: blank detection flags the white image, not the noise: {blank}")
    s.check(any("control error" in c for c in console), f"controls: the console error is seen: {console}")


def main():
    s = rl.Suite()
    work = rl.job_dir("report-renders")
    try:
        negative_controls(s, work)
        out = rl.run_job(work, "small", rl.SMALL_DEMO_JOB)
        t0 = time.monotonic()
        rc, so, se = rl.report(out)
        elapsed = time.monotonic() - t0
        print(f"repeval report: {elapsed:.1f} s")
        page = os.path.join(out, "report.html")
        if not s.check(rc == 0 and os.path.isfile(page), f"repeval report exits 0 and writes report.html: {rc} {se}"):
            s.finish()
        s.check(so.strip() == page, f"repeval report prints the page's path: {so!r}")
        s.check(se.strip() == "", f"repeval report prints nothing on stderr: {se!r}")

        # static: self-contained, the expected parts, no drawing errors
        p = rl.parse_page(page)
        s.check(not p.external, f"no external references: {p.external}")
        s.check(p.stylesheets == 0, "no <link> elements (style sheet inline)")
        s.check(all(sc.get("type") == "application/json" for sc in p.scripts),
                f"no executable scripts: {p.scripts}")
        s.check(all(src.startswith("data:image/png;base64,") for src in p.imgs), "every image is a PNG data URI")
        pngs_ok = all(base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n" for src in p.imgs)
        s.check(pngs_ok, "every data URI holds a PNG")
        for sec in EXPECTED_SECTIONS:
            s.check(sec in p.ids, f"section #{sec} present")
        for fig in EXPECTED_FIGURES:
            s.check(f"fig-{fig}" in p.ids, f"figure #fig-{fig} present")
        s.check("error" not in p.classes, "no part of the page failed to draw")
        data = rl.report_data(page)
        s.check(data["errors"] == [], f"no drawing errors recorded: {data['errors']}")
        labels = data["labels"]
        s.check(labels.get("cnn/seed1/epoch_02") == {"run": "seed1", "step": 2},
                f"seed1/epoch_02 read as run seed1, step 2: {labels.get('cnn/seed1/epoch_02')}")
        s.check(len(labels) == 9, f"9 checkpoints labelled: {len(labels)}")
        # every image of a probe figure: one per figure, so the page has at least the expected figures
        s.check(len(p.imgs) >= len(EXPECTED_FIGURES), f"at least {len(EXPECTED_FIGURES)} images: {len(p.imgs)}")

        # browser
        status, shot = rl.check_rendered(s, page, work, "report")
        s.check(len(status["imgs"]) == len(p.imgs), f"the browser sees every image: {len(status['imgs'])}")
        s.check(status["height"] > 2000, f"the page is laid out (height {status['height']} px)")
        wide = [i for i in status["imgs"] if i["cw"] > 1400 - 2 * 16]
        s.check(not wide, f"no figure wider than the page: {wide[:2]}")

        # --out writes elsewhere and leaves the folder's page alone
        alt = os.path.join(work, "alt.html")
        before = os.path.getmtime(page)
        rc, so, se = rl.report(out, "--out", alt)
        s.check(rc == 0 and os.path.isfile(alt) and os.path.getmtime(page) == before,
                f"--out FILE writes FILE only: rc {rc} {se}")
    finally:
        if os.environ.get("REPEVAL_KEEP_TMP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    s.finish()


if __name__ == "__main__":
    main()
