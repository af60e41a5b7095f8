"""Helpers for the report tests: small real jobs over the demo's checkpoints,
headless Chromium rendering (DOM status, console messages, screenshot) and
reading the numbers a report embeds."""
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ref"))
from common import REPEVAL, SOURCE_DIR, Suite, run  # noqa: E402,F401

DEMO = os.path.join(SOURCE_DIR, "jobs", "demo")
FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")


def data_block(test_limit=300, train_limit=400):
    return f"""data:
  test:
    format: idx
    images: {FMNIST}/t10k-images-idx3-ubyte.gz
    labels: {FMNIST}/t10k-labels-idx1-ubyte.gz
    normalize: {{mean: [0.286], std: [0.353]}}
    limit: {test_limit}
  train:
    format: idx
    images: {FMNIST}/train-images-idx3-ubyte.gz
    labels: {FMNIST}/train-labels-idx1-ubyte.gz
    normalize: {{mean: [0.286], std: [0.353]}}
    offset: 50000
    limit: {train_limit}
"""


# Three seeds at three epochs of the demo, every analysis type, a 2-value probe grid.
SMALL_DEMO_JOB = data_block() + """models:
  - name: cnn
    arch: cnn.yaml
    checkpoints: "checkpoints/seed{0..2}/epoch_0[025].*"
    layers: [conv1:mean, conv2:mean, pool2, fc1, fc2]
analyses:
  cka: {dataset: test, kernel: linear, batch: 100, pairs: all}
  cka_rbf: {type: cka, dataset: test, kernel: rbf, batch: 100, pairs: same-layer}
  cca: {dataset: test, methods: [svcca, pwcca], checkpoints: ["*/epoch_05"]}
  spectrum: {dataset: test}
  probe: {kind: logistic, train: train, test: test, lambdas: [1e-3, 1e-1]}
"""


def job_dir(prefix):
    """A temporary folder with the demo's model file and checkpoints linked in."""
    d = tempfile.mkdtemp(prefix=f"repeval-{prefix}-")
    os.symlink(os.path.join(DEMO, "checkpoints"), os.path.join(d, "checkpoints"))
    os.symlink(os.path.join(DEMO, "cnn.yaml"), os.path.join(d, "cnn.yaml"))
    return d


def run_job(workdir, name, text, timeout=900):
    """Write NAME.yaml and run it; returns the results folder (raises on failure)."""
    path = os.path.join(workdir, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(text)
    out = os.path.join(workdir, f"out-{name}")
    # repeval run initialises MPI even on one process; as for the MPI tests, the
    # allocations of Open MPI's unloaded modules cannot be attributed by LeakSanitizer
    rc, so, se = run([REPEVAL, "run", path, "--out", out, "--quiet"], timeout=timeout,
                     env={"OPENBLAS_NUM_THREADS": "1", "ASAN_OPTIONS": "detect_leaks=0"})
    if rc != 0:
        raise RuntimeError(f"repeval run {name} exited {rc}:\n{so}\n{se}")
    return out


def report(results, *extra, timeout=300):
    return run([REPEVAL, "report", results] + list(extra), timeout=timeout)


def report_data(path):
    """The JSON a report embeds (figures' and tables' numbers, warnings, errors)."""
    text = open(path, encoding="utf-8").read()
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    if not m:
        raise ValueError(f"{path}: no report-data block")
    return json.loads(m.group(1).replace("<\\/", "</"))


# ---- static checks of the HTML -------------------------------------------------

class PageParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.scripts, self.ids, self.classes, self.external = [], [], [], [], [], []
        self.stylesheets = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if "class" in a:
            self.classes.extend((a["class"] or "").split())
        for key in ("src", "href", "srcset", "poster", "data"):
            v = a.get(key)
            if v and re.match(r"^\s*(https?:|ftp:|//)", v, re.I):
                self.external.append(f"<{tag} {key}={v[:60]}>")
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        elif tag == "a":
            self.links.append(a.get("href", ""))
        elif tag == "script":
            self.scripts.append(a)
        elif tag == "link":
            self.stylesheets += 1
        if "style" in a and re.search(r"url\(\s*['\"]?\s*(https?:|//)", a["style"] or "", re.I):
            self.external.append(f"<{tag} style=url(...)>")


def parse_page(path):
    p = PageParser()
    p.feed(open(path, encoding="utf-8").read())
    return p


# ---- headless Chromium -----------------------------------------------------------

# Added to a copy of the page: after load, writes what every <img> decoded to,
# where it sits, the page height and any fetched resource into the DOM, which
# --dump-dom then prints. The attribute is on <html>, so layout is unchanged.
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.map.call(document.images, function (i) {
    var r = i.getBoundingClientRect();
    return {w: i.naturalWidth, h: i.naturalHeight, complete: i.complete,
            x: r.left + window.scrollX, y: r.top + window.scrollY, cw: r.width, ch: r.height};
  });
  var res = performance.getEntriesByType('resource').map(function (e) { return e.name; });
  document.documentElement.setAttribute('data-probe', JSON.stringify(
    {imgs: imgs, height: document.documentElement.scrollHeight, resources: res}));
});
</script>"""


def chromium_binary():
    c = os.environ.get("REPEVAL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not c:
        raise RuntimeError("chromium not found (scripts/install-deps test installs Debian's chromium)")
    return c


def chromium(args, url, timeout=120):
    """Run headless Chromium once with a fresh profile; returns (rc, stdout, console lines)."""
    profile = tempfile.mkdtemp(prefix="repeval-chromium-")
    try:
        cmd = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"] + args + [url]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        console = [line for line in p.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
        return p.returncode, p.stdout, console
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def render(page_path, workdir, width=1400):
    """Load the page twice: a probed copy for the DOM status, then the page itself
    for a full-height screenshot. Returns (status dict, console lines, screenshot
    as an H x W x 3 float array in [0, 1])."""
    page_path = os.path.abspath(page_path)
    probed = os.path.join(os.path.dirname(page_path), ".probe-" + os.path.basename(page_path))
    text = open(page_path, encoding="utf-8").read()
    with open(probed, "w", encoding="utf-8") as f:
        f.write(text.replace("</body>", PROBE + "</body>", 1) if "</body>" in text else text + PROBE)
    try:
        rc, dom, console = chromium(["--virtual-time-budget=10000", f"--window-size={width},1000", "--dump-dom"],
                                    "file://" + probed)
    finally:
        os.remove(probed)
    m = re.search(r"<html[^>]*\sdata-probe=\"([^\"]*)\"", dom)
    if rc != 0 or not m:
        raise RuntimeError(f"chromium --dump-dom exited {rc} without a probe status")
    import html as _html
    status = json.loads(_html.unescape(m.group(1)))
    height = min(max(int(status["height"]), 200), 16000)
    shot = os.path.join(workdir, "screenshot-" + os.path.splitext(os.path.basename(page_path))[0] + ".png")
    rc, _, console2 = chromium(["--virtual-time-budget=10000", f"--window-size={width},{height}",
                                f"--screenshot={shot}"], "file://" + page_path)
    if rc != 0 or not os.path.isfile(shot):
        raise RuntimeError(f"chromium --screenshot exited {rc}")
    return status, console + console2, read_png(shot)


def read_png(path):
    import matplotlib.image  # Pillow underneath (a dependency of Debian's python3-matplotlib)
    a = matplotlib.image.imread(path)
    if a.dtype != np.float32 and a.dtype != np.float64:
        a = a.astype(np.float64) / 255.0
    return a[:, :, :3]


def blank_regions(shot, imgs, min_ink=0.02, min_colours=8):
    """Image boxes of the screenshot that show (almost) nothing: fewer than
    min_ink of the pixels differ from the box's most common colour, or fewer
    than min_colours distinct colours. Returns [(index, reason)]."""
    bad = []
    H, W, _ = shot.shape
    for k, im in enumerate(imgs):
        x0, y0 = int(round(im["x"])), int(round(im["y"]))
        x1, y1 = int(round(im["x"] + im["cw"])), int(round(im["y"] + im["ch"]))
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
        if x1 - x0 < 10 or y1 - y0 < 10:
            bad.append((k, f"box {x0},{y0}-{x1},{y1} is outside the screenshot or empty"))
            continue
        box = (shot[y0:y1, x0:x1] * 255 + 0.5).astype(np.uint8).reshape(-1, 3)
        packed = box[:, 0].astype(np.int32) << 16 | box[:, 1].astype(np.int32) << 8 | box[:, 2]
        values, counts = np.unique(packed, return_counts=True)
        ink = 1.0 - counts.max() / packed.size
        if ink < min_ink or len(values) < min_colours:
            bad.append((k, f"box {x0},{y0}-{x1},{y1}: {ink:.4f} of the pixels differ from the background, "
                           f"{len(values)} colours"))
    return bad


def check_rendered(s, page_path, workdir, what):
    """The browser checks every report test applies: every image decoded and
    drawn with visible content, nothing fetched, no console message."""
    status, console, shot = render(page_path, workdir)
    imgs = status["imgs"]
    s.check(len(imgs) > 0, f"{what}: the page has images")
    undecoded = [k for k, i in enumerate(imgs) if not (i["complete"] and i["w"] > 0 and i["h"] > 0)]
    s.check(not undecoded, f"{what}: every <img> decoded (naturalWidth > 0); not: {undecoded}")
    blank = blank_regions(shot, imgs)
    s.check(not blank, f"{what}: every figure area of the screenshot has content; blank: {blank}")
    s.check(not console, f"{what}: no console messages; got {console[:5]}")
    external = [r for r in status["resources"] if not r.startswith("data:")]
    s.check(not external, f"{what}: nothing fetched while viewing; fetched {external[:5]}")
    return status, shot
