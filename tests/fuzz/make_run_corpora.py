#!/usr/bin/env python3
"""Seed corpora for the fuzz targets of `repeval run`'s own inputs:

  job    job files: every job of the bad-input catalogue (tests/reliability) but
         the known bugs, and the demo job; their relative paths name the files
         fuzz_job.c creates
  model  model files: the catalogue's model files, the demo CNN, the examples of
         docs/models.md and models that bind to fuzz_model.c's checkpoint
  cache  embedding-cache shards and stats  statistics files (reduced and array
         parts), written by repeval's own writers through the replay binaries
         (REPEVAL_FUZZ_SEED_DIR), so they carry valid keys and checksums
  activations  manifests of activation exports: the catalogue's (their files are the
         ones fuzz_activations.c lays out) and a few naming its other files

  make_run_corpora.py BUILD_DIR      (BUILD_DIR/tests holds replay_cache, replay_stats)
Deterministic apart from the cache/stats seeds' bytes of float rounding; rerun
after changing a format."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "reliability"))
os.environ.setdefault("REPEVAL_SOURCE_DIR", SRC)

import test_bad_activations_are_refused as A  # noqa: E402
import test_bad_datasets_are_refused as D  # noqa: E402
import test_bad_job_files_are_refused as J  # noqa: E402

MAX = 64 << 10

FUZZ_MODELS = {
    "cnn_pool_fc": """input: [3, 8, 8]
modules:
  - {name: conv1, type: conv2d, kernel: 3, padding: 1}
  - {name: bn1, type: batchnorm2d}
  - {name: relu, type: relu}
  - {name: pool, type: maxpool2d, kernel: 2}
  - {name: flatten, type: flatten}
  - {name: fc1, type: linear}
  - {name: act, type: gelu}
  - {name: fc2, type: linear}
""",
    "cnn_adaptive": """modules:
  - {name: conv1, type: conv2d, kernel: 3, stride: 2, padding: 1, dilation: 1}
  - {name: a, type: sigmoid}
  - {name: gap, type: adaptiveavgpool2d, output_size: 1}
  - {name: flatten, type: flatten}
  - {name: fc, type: linear, in: 4, out: 10}
""",
    "vector_layernorm": """input: [4]
modules:
  - {name: ln, type: layernorm, eps: 1e-5}
  - {name: t, type: tanh}
  - {name: fc, type: linear}
  - {name: d, type: dropout}
""",
    "nested_sequential": """input: [3, 8, 8]
modules:
  - name: features
    type: sequential
    modules:
      - {type: avgpool2d, kernel: 3, stride: 1, padding: 1, include_pad: false}
      - {type: identity}
  - {name: conv1, type: conv2d, kernel: 3, padding: 1, bias: true}
  - {name: p, type: maxpool2d, kernel: 2, dilation: 1}
  - {name: flatten, type: flatten}
  - {name: fc1, type: linear}
  - {name: s, type: silu}
  - {name: fc2, type: linear}
""",
    "preset_mlp": "preset: mlp\nactivation: tanh\ninput: [64]\n",
}


def save(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    data = data.encode() if isinstance(data, str) else data
    # no path of the machine that made the seeds: the job loader expands ${...}
    data = data.replace(SRC.encode() + b"/", b"${REPEVAL_SOURCE_DIR}/")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def activation_manifests():
    """Manifests naming the other files of fuzz_activations.c's folder: two half shards,
    the float16 safetensors tensor as 2 rows per sample, the .rpc shard."""
    half = [{"file": "h.flatten/a.npy", "first": 0, "count": 4}, {"file": "h.flatten/b.npy", "first": 4, "count": 4}]
    g = {"name": "g", "mode": "spatial", "dim": 3, "rows_per_sample": 2,
         "shards": [{"file": "s.safetensors", "first": 0, "count": 8, "tensor": "g"}]}
    h = {"name": "h", "mode": "flatten", "dim": 3, "shards": half}
    r = {"name": "h", "mode": "mean", "dim": 3, "shards": [{"file": "h.flatten/0.rpc", "first": 0, "count": 8}]}
    return {"split_shards": A.manifest(shards=half), "spatial_f16": A.manifest(taps=[h, g]),
            "rpc_and_npy": A.manifest(taps=[h, r])}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    for t in ("job", "model", "cache", "stats", "activations"):
        shutil.rmtree(os.path.join(HERE, "corpus", t), ignore_errors=True)
    jobs, models = {}, {}
    for case in J.cases() + D.cases():
        if case.known_bug:  # pinned by the catalogue; as seeds they would stop every fuzzing run
            continue
        for key, store in (("job.yaml", jobs), ("model.yaml", models)):
            text = case.files.get(key)
            if isinstance(text, (str, bytes)) and len(text) <= MAX:
                store.setdefault(text if isinstance(text, bytes) else text.encode(), case.name)
    for text, name in jobs.items():
        save("job", name, text)
    for text, name in models.items():
        save("model", name, text)
    with open(os.path.join(SRC, "jobs", "demo", "job.yaml"), "rb") as f:
        save("job", "demo", f.read())
    with open(os.path.join(SRC, "jobs", "demo", "cnn.yaml"), "rb") as f:
        save("model", "demo_cnn", f.read())
    with open(os.path.join(SRC, "docs", "models.md")) as f:
        for k, block in enumerate(re.findall(r"```yaml\n(.*?)```", f.read(), re.S)):
            save("model", f"docs_{k}", block)
    for name, text in FUZZ_MODELS.items():
        save("model", name, text)
    manifests = {}
    for case in A.cases():
        text = case.files.get("acts/c0/d/activations.json")
        if isinstance(text, str):
            manifests.setdefault(text, case.name)
    for text, name in manifests.items():
        save("activations", name, text)
    for name, text in activation_manifests().items():
        save("activations", name, text)
    for target in ("cache", "stats"):
        with tempfile.TemporaryDirectory() as seeds:
            empty = os.path.join(seeds, "empty")
            open(empty, "wb").close()
            subprocess.run([os.path.join(build, "tests", f"replay_{target}"), empty], check=True,
                           env=dict(os.environ, REPEVAL_FUZZ_SEED_DIR=seeds), capture_output=True)
            for f in sorted(os.listdir(seeds)):
                if f != "empty" and os.path.isfile(os.path.join(seeds, f)):
                    with open(os.path.join(seeds, f), "rb") as fh:
                        save(target, f, fh.read())
    for t in ("job", "model", "cache", "stats", "activations"):
        print(t, len(os.listdir(os.path.join(HERE, "corpus", t))), "seeds")


if __name__ == "__main__":
    main()
