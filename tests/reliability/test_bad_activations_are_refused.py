"""Bad-input catalogue, activation exports: a job whose model is `activations:` two
checkpoint folders (c0, c1), each with an export for dataset `d` (8 samples of a
.npy dataset) built here byte by byte: manifests that are not JSON, of another
format or a newer version, with unknown keys; exports that claim another dataset
(file hash, format, sample count, normalisation); sample ids out of range,
repeated, negative, not integers, too few, missing a sample of the pass, or in
another order than the first checkpoint's; shards with gaps, beyond the samples,
missing, outside the folder, of the wrong shape, dtype or kind, truncated, with
NaN; a layer that was not exported or has another width in one checkpoint;
safetensors shards without the named tensor; .rpc shards with a bad checksum or
shape; job files mixing `activations` with `arch`. Every case must fail with a
message naming the file (and the shard, position or id at fault), leave the
previous output byte-identical and write nothing (see badinput.py). Controls: the
same export with .npy, .safetensors and .rpc shards runs."""
import hashlib
import json
import struct
import subprocess

from badinput import FIFO, Case, job_yaml, npy, run_cases, safetensors

N, D_IN, DIM = 8, 16, 3
RUN = ["run", "job.yaml", "--quiet"]
X = npy([0.01 * k for k in range(N * D_IN)], descr="<f4", shape=(N, D_IN))
Y = npy([k % 3 for k in range(N)], descr="<i8")
DATA = "  d: {format: npy, inputs: x.npy, labels: y.npy}"
MODEL = "  - {name: m, activations: \"acts/c*\", layers: [h]}"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def values(ckpt, n=N, dim=DIM):
    return [((k * 7 + ckpt * 3) % 11) / 8.0 - 0.5 + 0.01 * k for k in range(n * dim)]


def manifest(ids_count=N, shards=None, dataset=None, taps=None, **top):
    ds = {"name": "d", "format": "npy",
          "files": [{"name": "x.npy", "bytes": len(X), "sha256": sha(X)},
                    {"name": "y.npy", "bytes": len(Y), "sha256": sha(Y)}],
          "normalize": None, "count": N}
    ds.update(dataset or {})
    shards = shards if shards is not None else [{"file": "h.flatten/0.npy", "first": 0, "count": ids_count}]
    tap = {"name": "h", "mode": "flatten", "dim": DIM, "rows_per_sample": 1, "dtype": "float32", "shards": shards}
    m = {"format": "repeval-activations", "version": 1, "producer": "badinput", "dataset": ds,
         "samples": {"ids": "sample_ids.npy", "count": ids_count}, "taps": taps if taps is not None else [tap]}
    m.update(top)
    return json.dumps(m, indent=1)


def export(ckpt, man=None, ids=None, shard=None, extra=None):
    """Files of checkpoint folder c<ckpt>'s export for dataset d."""
    base = f"acts/c{ckpt}/d/"
    files = {base + "activations.json": manifest() if man is None else man,
             base + "sample_ids.npy": npy(list(range(N)), descr="<i8") if ids is None else ids,
             base + "h.flatten/0.npy": npy(values(ckpt), descr="<f4", shape=(N, DIM)) if shard is None else shard}
    files.update({base + k: v for k, v in (extra or {}).items()})
    return files


def case(c0=None, c1=None, model=MODEL, data=DATA):
    files = {"x.npy": X, "y.npy": Y, "job.yaml": job_yaml(data, model=model, analyses="  cka: {batch: 4}")}
    files.update(export(0, **(c0 or {})))
    files.update(export(1, **(c1 or {})))
    return files


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def rpc(vals, rows, dim, bad_sum=False):
    raw = struct.pack(f"<{len(vals)}f", *vals)
    z = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True, check=True).stdout
    return b"RPVCACH1" + struct.pack("<IIqqQQqQ", 0, 0, rows, dim, 0, fnv1a64(raw) ^ bad_sum, len(z), 0) + z


def st_shard(ckpt, names=("h:flatten",)):
    raw = struct.pack(f"<{N * DIM}f", *values(ckpt))
    return safetensors({n: ("F32", [N, DIM], raw) for n in names})


def other_dataset_only():
    """c0 holds an export for another dataset (e) only."""
    files = {k: v for k, v in case().items() if not k.startswith("acts/c0/")}
    files.update({k.replace("acts/c0/d/", "acts/c0/e/"): v for k, v in export(0).items()})
    return files


RPC_SHARDS = [{"file": "h.flatten/0.rpc", "first": 0, "count": N}]
ST_SHARDS = [{"file": "s.safetensors", "first": 0, "count": N, "tensor": "h:flatten"}]
M = "acts/c0/d/activations.json"
IDS = "acts/c0/d/sample_ids.npy"
SHARD = "acts/c0/d/h.flatten/0.npy"

TABLE = [
    # the manifest
    ("manifest_not_json", case({"man": "{\"format\": "}), RUN, 1, [M, "while parsing"]),
    ("manifest_other_format", case({"man": manifest(format="numpy-dump")}), RUN, 1,
     [M, "'format' is 'numpy-dump', expected 'repeval-activations'"]),
    ("manifest_newer_version", case({"man": manifest(version=2)}), RUN, 1,
     [M, "version 2: written by a newer exporter; this repeval reads version 1"]),
    ("manifest_unknown_key", case({"man": manifest(extra_key=1)}), RUN, 1, [M, "extra_key"]),
    ("manifest_no_taps", case({"man": manifest(taps=[])}), RUN, 1, [M, "'taps' must be a non-empty list"]),
    ("manifest_bad_sha256", case({"man": manifest(dataset={"files": [{"name": "x.npy", "bytes": 1,
                                                                      "sha256": "XYZ"}]})}), RUN, 1,
     [M, "'sha256' must be 64 lowercase hex digits"]),
    ("manifest_unknown_mode", case({"man": manifest(taps=[{"name": "h", "mode": "max", "dim": DIM,
                                                           "shards": []}])}), RUN, 1,
     [M, "tap 'h': mode 'max' is not one of flatten, mean, cls, last, spatial"]),
    ("manifest_missing_for_dataset", other_dataset_only(), RUN, 1,
     ["model 'm', checkpoint c0: no activations for dataset 'd'", "acts/c0/d/activations.json is missing"]),
    # the dataset it claims
    ("dataset_other_file", case({"man": manifest(dataset={"files": [
        {"name": "x.npy", "bytes": len(X), "sha256": sha(X + b"!")},
        {"name": "y.npy", "bytes": len(Y), "sha256": sha(Y)}]})}), RUN, 1,
     ["acts/c0/d/activations.json: exported from x.npy", "but dataset 'd' of the job reads",
      "not the same data"]),
    ("dataset_other_format", case({"man": manifest(dataset={"format": "idx"})}), RUN, 1,
     ["acts/c0/d/activations.json: exported from a dataset of format 'idx', but dataset 'd' of the job is 'npy'"]),
    ("dataset_fewer_files", case({"man": manifest(dataset={"files": [
        {"name": "x.npy", "bytes": len(X), "sha256": sha(X)}]})}), RUN, 1,
     ["exported from 1 dataset file, but dataset 'd' of the job reads 2"]),
    ("dataset_other_count", case({"man": manifest(dataset={"count": 9})}), RUN, 1,
     ["the exported dataset has 9 samples, dataset 'd' of the job has 8"]),
    ("dataset_other_normalisation", case({"man": manifest(dataset={"normalize": {"mean": [0.5], "std": [2]}})}),
     RUN, 1, ["exported with normalisation mean 0.5, std 2, but dataset 'd' of the job has none"]),
    # sample ids
    ("ids_out_of_range", case({"ids": npy([0, 1, 2, 8, 4, 5, 6, 7], descr="<i8")}), RUN, 1,
     [IDS, "sample id at position 3 is 8, outside the dataset's 8 samples (0 .. 7)"]),
    ("ids_negative", case({"ids": npy([0, 1, 2, 3, -4, 5, 6, 7], descr="<i8")}), RUN, 1,
     [IDS, "sample id at position 4 is -4, outside the dataset's 8 samples"]),
    ("ids_repeated", case({"ids": npy([0, 1, 2, 3, 4, 2, 6, 7], descr="<i8")}), RUN, 1,
     [IDS, "sample id 2 appears twice, at positions 2 and 5"]),
    ("ids_not_integers", case({"ids": npy([float(k) for k in range(N)], descr="<f8")}), RUN, 1,
     [IDS, "sample ids must be integers, the array holds float64"]),
    ("ids_too_few", case({"ids": npy(list(range(7)), descr="<i8")}), RUN, 1,
     [IDS, "holds 7 sample ids, the manifest's 'count' says 8"]),
    ("ids_two_dimensional", case({"ids": npy(list(range(N)), descr="<i8", shape=(4, 2))}), RUN, 1,
     [IDS, "the sample ids must be a 1-D array, it has 2 dimensions"]),
    ("ids_fifo", case({"ids": FIFO}), RUN, 1, [IDS, "is a FIFO: repeval reads inputs from regular files only"]),
    ("ids_other_order_than_first_checkpoint", case(c1={"ids": npy([1, 0] + list(range(2, N)), descr="<i8")}),
     RUN, 1, ["acts/c1/d/sample_ids.npy: position 0 (shard h.flatten/0.npy) holds sample id 1, but",
              "acts/c0/d has sample id 0 there: every checkpoint of a model must export the same samples in the "
              "same order"]),
    ("ids_miss_a_sample_of_the_pass", case(
        {"man": manifest(ids_count=6), "ids": npy(list(range(6)), descr="<i8"),
         "shard": npy(values(0, 6), descr="<f4", shape=(6, DIM))},
        {"man": manifest(ids_count=6), "ids": npy(list(range(6)), descr="<i8"),
         "shard": npy(values(1, 6), descr="<f4", shape=(6, DIM))}), RUN, 1,
     ["model 'm': acts/c0/d: dataset sample 6 (sample 6 of the pass) is not among the 6 exported samples "
      "(sample_ids.npy)"]),
    # shards
    ("shard_gap", case({"man": manifest(shards=[{"file": "h.flatten/0.npy", "first": 0, "count": 4},
                                                {"file": "h.flatten/1.npy", "first": 5, "count": 3}])}), RUN, 1,
     [M, "tap h:flatten, shard 'h.flatten/1.npy' starts at position 5, expected 4"]),
    ("shard_beyond_the_samples", case({"man": manifest(shards=[{"file": "h.flatten/0.npy", "first": 0,
                                                                "count": 9}])}), RUN, 1,
     [M, "shard 'h.flatten/0.npy' covers positions 0..8, beyond the 8 exported samples"]),
    ("shard_short_of_the_samples", case({"man": manifest(shards=[{"file": "h.flatten/0.npy", "first": 0,
                                                                  "count": 7}])}), RUN, 1,
     [M, "tap h:flatten: the shards cover positions 0..6, the export has 8 samples"]),
    ("shard_file_missing", case({"man": manifest(shards=[{"file": "h.flatten/7.npy", "first": 0,
                                                          "count": N}])}), RUN, 1, ["acts/c0/d/h.flatten/7.npy"]),
    ("shard_outside_the_folder", case({"man": manifest(shards=[{"file": "../../../x.npy", "first": 0,
                                                                "count": N}])}), RUN, 1,
     [M, "shard file '../../../x.npy' leaves the export's folder"]),
    ("shard_absolute_path", case({"man": manifest(shards=[{"file": "/etc/hostname.npy", "first": 0,
                                                           "count": N}])}), RUN, 1,
     [M, "shard file '/etc/hostname.npy' is an absolute path"]),
    ("shard_unknown_kind", case({"man": manifest(shards=[{"file": "h.txt", "first": 0, "count": N}])}), RUN, 1,
     [M, "shard 'h.txt': unknown kind of file (.npy, .safetensors or .rpc)"]),
    ("shard_wrong_shape", case({"shard": npy(values(0, N, 4), descr="<f4", shape=(N, 4))}), RUN, 1,
     [SHARD, "holds 8 x 4 values, tap h:flatten needs 8 samples x 1 rows x 3 features (shape (8, 3))"]),
    ("shard_integers", case({"shard": npy(list(range(N * DIM)), descr="<i8", shape=(N, DIM))}), RUN, 1,
     [SHARD, "activations must be float16, float32 or float64, the array holds int64"]),
    ("shard_truncated", case({"shard": npy(values(0), descr="<f4", shape=(N, DIM))[:-7]}), RUN, 1, [SHARD]),
    ("shard_nan", case({"shard": npy([float("nan") if k == 7 else v for k, v in enumerate(values(0))],
                                     descr="<f4", shape=(N, DIM))}), RUN, 1,
     ["acts/c0/d/h.flatten/0.npy: NaN value at position 2 (sample id 2), feature 1 of tap h:flatten"]),
    ("shard_safetensors_two_tensors", case({"man": manifest(shards=[{"file": "s.safetensors", "first": 0,
                                                                     "count": N}]),
                                            "extra": {"s.safetensors": st_shard(0, ("a", "b"))}}), RUN, 1,
     ["acts/c0/d/s.safetensors holds 2 tensors: the manifest must name one with 'tensor'"]),
    ("shard_safetensors_no_such_tensor", case({"man": manifest(shards=[dict(ST_SHARDS[0], tensor="q")]),
                                               "extra": {"s.safetensors": st_shard(0)}}), RUN, 1,
     ["acts/c0/d/s.safetensors: no tensor 'q' (the manifest's 'tensor')"]),
    ("shard_rpc_bad_checksum", case({"man": manifest(shards=RPC_SHARDS),
                                     "extra": {"h.flatten/0.rpc": rpc(values(0), N, DIM, bad_sum=True)}}), RUN, 1,
     ["acts/c0/d/h.flatten/0.rpc: the values do not match the header's checksum"]),
    ("shard_rpc_wrong_shape", case({"man": manifest(shards=RPC_SHARDS),
                                    "extra": {"h.flatten/0.rpc": rpc(values(0, 4), 4, DIM)}}), RUN, 1,
     ["acts/c0/d/h.flatten/0.rpc: holds 4 x 3 values, tap h:flatten needs 8 samples x 1 rows of 3 features"]),
    ("shard_rpc_not_a_shard", case({"man": manifest(shards=RPC_SHARDS),
                                    "extra": {"h.flatten/0.rpc": b"RPVCACH0" + b"\0" * 100}}), RUN, 1,
     ["acts/c0/d/h.flatten/0.rpc: not a repeval shard"]),
    # taps against the job
    ("layer_not_exported", case(model="  - {name: m, activations: \"acts/c*\", layers: [g]}"), RUN, 1,
     ["model 'm', checkpoint c0: layer g:flatten is not in the export acts/c0/d (it has h:flatten)"]),
    ("layer_mode_not_exported", case(model="  - {name: m, activations: \"acts/c*\", layers: [h:mean]}"), RUN, 1,
     ["layer h:mean is not in the export"]),
    ("layer_width_differs", case(c1={"man": manifest(taps=[{"name": "h", "mode": "flatten", "dim": 4,
                                                           "shards": [{"file": "h.flatten/0.npy", "first": 0,
                                                                       "count": N}]}]),
                                     "shard": npy(values(1, N, 4), descr="<f4", shape=(N, 4))}), RUN, 1,
     ["acts/c1/d: tap h:flatten has 1 rows x 4 features per sample, but 1 x 3 in", "a layer must have the same "
      "width in every checkpoint"]),
    # job files
    ("job_activations_and_arch", case(model="  - {name: m, arch: mlp, activations: \"acts/c*\", layers: [h]}"),
     RUN, 1, ["job.yaml", "model 'm': 'activations' replaces 'arch', 'checkpoints' and 'state_dict_key'"]),
    ("job_activations_match_nothing", case(model="  - {name: m, activations: \"acts/z*\", layers: [h]}"), RUN, 1,
     ["job.yaml", "no activations folder (a folder with <dataset>/activations.json) matches"]),
    ("job_activations_not_a_folder", case(model="  - {name: m, activations: x.npy, layers: [h]}"), RUN, 1,
     ["job.yaml", "is not an activations folder: none of its subfolders holds activations.json"]),
]

CONTROLS = [
    ("control_npy_shards", case(), RUN, 0, []),
    ("control_rpc_shards", case({"man": manifest(shards=RPC_SHARDS), "extra": {"h.flatten/0.rpc": rpc(values(0), N, DIM)}},
                                {"man": manifest(shards=RPC_SHARDS),
                                 "extra": {"h.flatten/0.rpc": rpc(values(1), N, DIM)}}), RUN, 0, []),
    ("control_safetensors_shards", case({"man": manifest(shards=ST_SHARDS), "extra": {"s.safetensors": st_shard(0)}},
                                        {"man": manifest(shards=ST_SHARDS),
                                         "extra": {"s.safetensors": st_shard(1)}}), RUN, 0, []),
]


def cases():
    return [Case(*row) for row in TABLE] + [Case(*row, control=True) for row in CONTROLS]


if __name__ == "__main__":
    run_cases(cases(), "activation exports")
