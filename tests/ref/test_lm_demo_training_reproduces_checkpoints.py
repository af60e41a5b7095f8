"""jobs/lm-demo/train.py --check retrains the first seed of the language-model demo
to its first checkpoint after initialisation and finds the committed folders
(models/seed1/step0 bit for bit, models/seed1/step30 within 1e-3) and a held-out
loss below that of uniform predictions: the committed checkpoints are what the
committed script makes. As a negative control, the check fails against folders
where step30 is replaced by a later checkpoint. Skipped (77) without Debian's
fortunes."""
import os
import shutil
import subprocess
import sys

from common import SOURCE_DIR, Suite, tmpdir

DEMO = os.path.join(SOURCE_DIR, "jobs", "lm-demo")
sys.path.insert(0, DEMO)
import lmtext  # noqa: E402


def check(models=None):
    cmd = [sys.executable, os.path.join(DEMO, "train.py"), "--check"] + (["--models", models] if models else [])
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout + p.stderr


def main():
    if not all(os.path.isfile(os.path.join(lmtext.FORTUNES, c)) for c in lmtext.CATEGORIES):
        print(f"{lmtext.FORTUNES}: Debian's fortunes package is not installed")
        sys.exit(77)
    s = Suite()
    rc, out = check()
    s.check(rc == 0 and "reproduces the committed folders" in out, f"train.py --check passes: {out}")
    with tmpdir() as d:
        os.makedirs(os.path.join(d, "seed1"))
        shutil.copytree(os.path.join(DEMO, "models", "seed1", "step0"), os.path.join(d, "seed1", "step0"))
        shutil.copytree(os.path.join(DEMO, "models", "seed1", "step120"), os.path.join(d, "seed1", "step30"))
        rc, out = check(d)
        s.check(rc == 1 and "seed1/step30: tensors differ" in out, f"the check fails on other weights: {out}")
    s.finish()


if __name__ == "__main__":
    main()
