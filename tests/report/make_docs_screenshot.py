#!/usr/bin/env python3
"""Regenerate docs/images/report.png: render RESULTS/report.html (the demo's,
from scripts/demo) in headless Chromium, keep the top of the page (the
summary, the CKA heatmaps, the curves over training) and save it at half size.

usage: make_docs_screenshot.py RESULTS_DIR OUT.png [--height PX] [--palette]
"""
import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reportlib as rl  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("out")
    ap.add_argument("--height", type=int, default=3400, help="page pixels kept from the top (default 3400)")
    ap.add_argument("--palette", action="store_true", help="256 colours (smaller file, banded colour bars)")
    args = ap.parse_args()
    page = os.path.join(args.results, "report.html")
    with tempfile.TemporaryDirectory(prefix="repeval-shot-") as work:
        status, console, shot = rl.render(page, work)
    if console:
        print("console messages:", *console, sep="\n  ", file=sys.stderr)
        return 1
    h = min(args.height, shot.shape[0]) // 2 * 2
    w = shot.shape[1] // 2 * 2
    top = shot[:h, :w]
    small = top.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))  # 2 x 2 box filter
    from PIL import Image  # Pillow: a dependency of Debian's python3-matplotlib
    img = Image.fromarray((small * 255 + 0.5).astype(np.uint8), "RGB")
    if args.palette:
        img = img.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    img.save(args.out, optimize=True)
    print(f"{args.out}: {img.size[0]} x {img.size[1]}, {os.path.getsize(args.out) // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
