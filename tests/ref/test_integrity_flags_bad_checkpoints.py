"""The integrity analysis on a real training grid with known defects
(integrity_grid.py: safetensors and torch.save files) finds exactly them: the copy
(step2000 = step3000, saved in two formats), the stale tensor (fc2.weight of
step5000 = step4000's), the checkpoint that breaks the CKA trend (step7000), the
missing step8000 and the norm jump of fc3.bias (step9000 -> step10000), and nothing
else; every finding is a warning in manifest.json. The per-tensor L2 norms equal
NumPy's float64 norms (1e-12 relative), the hashes equal FNV-1a 64 of the tensors'
little-endian bytes written here, and the cka_next / cka_skip rows equal the
minibatch CKA (unbiased HSIC_1, Song et al. 2012, averaged over batches of 128;
Nguyen et al. 2021) of a float64 NumPy forward pass to 1e-5. A grid without
defects gives no finding, and thresholds set high silence the norm and CKA checks."""
import csv
import json
import os

import numpy as np

from common import Suite, minibatch_cka_matrix, repeval, tmpdir
from integrity_grid import N, STEPS, fnv1a64, forward, job, write_grid

os.environ["OPENBLAS_NUM_THREADS"] = "1"


def run_job(s, d, name, extra=""):
    out = os.path.join(d, name)
    path = os.path.join(d, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(job(d, out, extra))
    rc, _, err = repeval("run", path, "--quiet", timeout=300)
    s.check(rc == 0, f"run {name}: exit {rc}: {err[-800:]}")
    return out


def main():
    s = Suite()
    with tmpdir() as d:
        states = write_grid(d)
        out = run_job(s, d, "out")
        rep = json.load(open(os.path.join(out, "integrity_integrity.json")))
        got = sorted((f["kind"], tuple(f["checkpoints"])) for f in rep["findings"])
        want = sorted([("identical_content", ("step2000", "step3000")),
                       ("identical_tensors", ("step4000", "step5000")),
                       ("cka_trend", ("step7000",)),
                       ("gap", ("step7000", "step9000")),
                       ("norm_jump", ("step9000", "step10000"))])
        s.check(got == want, f"findings: got {got}, want {want}")
        msg = {f["kind"]: f["message"] for f in rep["findings"]}
        s.check("fc2.weight" in msg.get("identical_tensors", ""), f"stale tensor named: {msg.get('identical_tensors')}")
        jump = msg.get("norm_jump", "")
        ratio = float(jump.split("fc3.bias x")[1].split(",")[0]) if "fc3.bias x" in jump else 0.0
        s.check(2.5 < ratio < 3.5, f"norm jump of fc3.bias about x3: {jump}")
        s.check(msg.get("gap", "").endswith(": step8000"), f"gap names step8000: {msg.get('gap')}")
        man = json.load(open(os.path.join(out, "manifest.json")))
        for f in rep["findings"]:
            s.check(any(f["message"] in w for w in man["warnings"]), f"warning in the manifest: {f['message']}")
        an = [a for a in man["analyses"] if a["name"] == "integrity"][0]
        s.check(an["findings"] == 5 and an["file"] == "integrity_integrity.json", f"manifest entry: {an}")
        s.check(os.path.isfile(os.path.join(out, "integrity_integrity.json")) and
                "integrity_integrity_tensors.csv" in man["output"]["files"], "files listed in the manifest")

        # per-tensor norms and hashes against NumPy and an FNV-1a written here
        rows = list(csv.DictReader(open(os.path.join(out, "integrity_integrity_tensors.csv"))))
        s.check(len(rows) == 6 * len(STEPS), f"{len(rows)} tensor rows, want {6 * len(STEPS)}")
        worst = 0.0
        for r in rows:
            step = int(r["step"])
            a = states[step][r["tensor"]]
            ref = float(np.sqrt(np.sum(a.astype(np.float64) ** 2)))
            worst = max(worst, abs(float(r["l2_norm"]) - ref) / ref)
            s.check(int(r["fnv1a64"], 16) == fnv1a64(np.ascontiguousarray(a, "<f4").tobytes()),
                    f"hash of {r['checkpoint']}/{r['tensor']}")
            s.check(r["dtype"] == "float32" and r["shape"] == "x".join(map(str, a.shape)) and
                    int(r["numel"]) == a.size, f"dtype and shape of {r['tensor']}: {r}")
            s.close(float(r["max_abs"]), float(np.abs(a).max()), 0, f"max_abs of {r['tensor']}")
        s.check(worst <= 1e-12, f"norms match NumPy: worst relative difference {worst}")
        s.check(len({r["fnv1a64"] for r in rows if r["checkpoint"] in ("step2000", "step3000")}) == 6,
                "the copy in the other format has the same six hashes")

        # CKA with neighbours against the minibatch reference of a float64 forward pass
        x = np.load(os.path.join(d, "x.npy"))
        acts = {st: forward(states[st], x) for st in STEPS}
        metrics = [r for r in csv.DictReader(open(os.path.join(out, "metrics.csv"))) if r["analysis"] == "integrity"]
        npairs = {"cka_next": 0, "cka_skip": 0}
        worst = 0.0
        for r in metrics:
            sa, sb = int(r["checkpoint_a"][4:]), int(r["checkpoint_b"][4:])
            gap = STEPS.index(sb) - STEPS.index(sa)
            npairs[r["metric"]] += 1
            s.check(r["layer_a"] == r["layer_b"] and gap == (1 if r["metric"] == "cka_next" else 2),
                    f"pair {r['metric']} {r['checkpoint_a']} {r['checkpoint_b']}")
            ref = minibatch_cka_matrix([acts[sa][r["layer_a"]], acts[sb][r["layer_b"]]], 128)[0, 1]
            worst = max(worst, abs(float(r["value"]) - ref))
        s.check(npairs == {"cka_next": 3 * (len(STEPS) - 1), "cka_skip": 3 * (len(STEPS) - 2)},
                f"pairs per kind: {npairs}")
        s.check(worst <= 1e-5, f"CKA with neighbours matches the NumPy minibatch reference: worst {worst}")
        s.check(all(r["param"] == f"minibatch linear unbiased b=128" for r in metrics), "param names the estimator")

        # thresholds: only the exact checks remain
        loud = run_job(s, d, "quiet", ", norm_jump: 100, cka_margin: 1")
        kinds = sorted(f["kind"] for f in json.load(open(os.path.join(loud, "integrity_integrity.json")))["findings"])
        s.check(kinds == ["gap", "identical_content", "identical_tensors"], f"high thresholds leave {kinds}")

    # the same drift without the defects, every step present: no finding
    with tmpdir() as d:
        write_grid(d, defects=False)
        clean = run_job(s, d, "clean")
        rep = json.load(open(os.path.join(clean, "integrity_integrity.json")))
        s.check(rep["findings"] == [], f"a clean grid: no finding, got {rep['findings']}")
        man = json.load(open(os.path.join(clean, "manifest.json")))
        s.check(man["warnings"] == [], f"a clean grid: no warning, got {man['warnings']}")
        labels = [c["label"] for c in rep["models"][0]["checkpoints"]]
        s.check(labels == [f"step{k * 1000}" for k in range(13)], f"checkpoints in natural order: {labels}")
        s.check(rep["models"][0]["layers"] == ["fc1", "fc2", "fc3"] and
                min(v for row in rep["models"][0]["cka_next"] for v in row if v is not None) > 0.9,
                "smooth training: CKA with the next step above 0.9")
        # without the CKA check there is no pass over the data
        nocka = run_job(s, d, "nocka", ", cka: false")
        man = json.load(open(os.path.join(nocka, "manifest.json")))
        rep = json.load(open(os.path.join(nocka, "integrity_integrity.json")))
        s.check(man["samples"] == 0 and rep["findings"] == [] and rep["models"][0]["layers"] == [],
                f"cka: false streams nothing: samples {man['samples']}")
    s.finish()


if __name__ == "__main__":
    assert N == 512
    main()
