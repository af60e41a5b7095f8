"""Valgrind memcheck over the single-process commands: `inspect` on every
checkpoint and array format, `cka` (linear, RBF, debiased), `cca`, `spectrum`,
`cka-matrix`, `probe` (logistic, ridge, k-NN), `embed`, `repeval run` as one
MPI process on every dataset format (with CCA, spectra, probes and the
embedding cache), `finalize` from its statistics, and a sample of the
bad-input catalogue's refusals (every format). Each command must give its
usual exit code and message with zero memcheck errors and zero leaks
(--error-exitcode=99 --leak-check=full); valgrind.supp suppresses only leaks
of Open MPI's MPI_Init/MPI_Finalize. Skipped (exit 77) in sanitizer builds,
where Valgrind cannot run, or without valgrind."""
import os
import shutil
import subprocess
import sys

import badinput as B
import test_bad_arrays_are_refused as A
import test_bad_checkpoints_are_refused as C
import test_bad_datasets_are_refused as D
import test_bad_job_files_are_refused as J

HERE = os.path.dirname(os.path.abspath(__file__))
VALGRIND = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect", "--num-callers=30", "-q",
            f"--suppressions={os.path.join(HERE, 'valgrind.supp')}"]

# refusals from the catalogue, a few per format (their error paths free what they built)
SAMPLE = {
    "arrays": ["npy_bad_magic", "npy_huge_header_length_v2", "npy_data_truncated", "npy_duplicate_key",
               "npz_duplicate_member", "npz_member_not_npy", "cka_nan_embedding", "probe_negative_label",
               "cka_matrix_nan_embedding"],
    "checkpoints": ["st_offsets_overlap", "st_deep_nesting", "st_duplicate_tensor_name", "st_nan_weight",
                    "pt_global_os_system", "pt_stack_global_builtins_exec", "pt_reduce_on_string",
                    "pt_storage_too_small", "pt_deflate_bomb", "pt_pickle_mark_bomb", "pt_duplicate_tensor_name",
                    "pt_member_traversal", "pt_pickle_missing", "idx_tensor_in_two_shards", "idx_shard_missing",
                    "idx_duplicate_tensor", "bin_shard_runs_code", "hf_link_out_of_repo", "hf_list_bad_branch",
                    "control_sharded_folder", "control_bin_sharded_folder", "control_hf_cache",
                    "control_hf_cache_main"],
    "datasets": ["idx_gzip_bomb", "idx_label_count_mismatch", "cifar_label_out_of_range", "npy_inputs_nan",
                 "wds_symlink_member", "wds_png_bad_crc", "wds_geometry_changes", "wds_truncated_tar"],
    "jobs": ["job_alias_bomb", "job_deep_nesting", "job_unset_environment_variable",
             "job_spatial_taps_in_minibatch_cka", "job_checkpoint_of_another_model", "model_unknown_type",
             "model_missing_tensor"],
}

X, Y = B.matrix(40, 5, seed=1), B.matrix(40, 3, seed=2)
LAB = B.labels_npy([k % 4 for k in range(40)])
PROBE = ["probe", "--train", "x.npy", "--train-labels", "l.npy", "--test", "x.npy", "--test-labels", "l.npy"]
ARR = {"x.npy": X, "y.npy": Y, "l.npy": LAB}


def run_job(data, files):
    """A job over two checkpoints of the MLP with every analysis type, a probe and the cache."""
    model = "  - {name: m, arch: mlp, checkpoints: \"ck*.safetensors\", layers: [fc1, fc2]}"
    analyses = ("  cka: {batch: 4}\n  cka_x: {type: cka, estimator: exact}\n  cca: {methods: [cca, svcca, pwcca, "
                "procrustes, linreg]}\n  spectrum: {}\n  probe: {kind: ridge, train: d, test: d, grid: [1e-3, 1, 3]}")
    out = dict(files)
    out["job.yaml"] = B.job_yaml(data, model=model, analyses=analyses, extra="cache: {dir: cache}\n")
    out["ck2.safetensors"] = B.mlp_checkpoint(next(v for k, v in files.items() if k == "_d"), d_hidden=3)
    del out["_d"]
    return out


def controls():
    idx = {"img.idx": B.idx((12, 4, 4)), "lab.idx": B.idx((12,), bytes(k % 3 for k in range(12))),
           "ck.safetensors": B.mlp_checkpoint(16), "_d": 16}
    cif = {"b.bin": B.cifar([k % 10 for k in range(12)]), "ck.safetensors": B.mlp_checkpoint(3072), "_d": 3072}
    shard = {"s.tar": B.wds([(f"s{k:02d}", B.png(), k % 3) for k in range(12)]), "ck.safetensors": B.mlp_checkpoint(16),
             "_d": 16}
    rows = [
        ("vg_inspect_npy", ARR, ["inspect", "x.npy"], 0, "float64"),
        ("vg_inspect_npz", {"e.npz": B.zip_bytes([("x.npy", X), ("y.npy", Y)])}, ["inspect", "e.npz", "--json"], 0,
         "\"x\""),
        ("vg_inspect_safetensors", {"m.safetensors": B.safetensors(metadata={"a": "b"})},
         ["inspect", "m.safetensors"], 0, "metadata"),
        ("vg_inspect_torch", {"m.pt": B.torch_zip()}, ["inspect", "m.pt", "--json"], 0, "pytorch"),
        ("vg_cka_linear", ARR, ["cka", "x.npy", "y.npy", "--json"], 0, "\"cka\""),
        ("vg_cka_rbf_debiased", ARR, ["cka", "x.npy", "y.npy", "--kernel", "rbf", "--debiased"], 0, "0."),
        ("vg_cka_gram", ARR, ["cka", "x.npy", "y.npy", "--gram", "--batch", "7"], 0, "0."),
        ("vg_cca_all", ARR, ["cca", "x.npy", "y.npy", "--method", "all", "--json"], 0, "svcca"),
        ("vg_spectrum", ARR, ["spectrum", "x.npy", "--json"], 0, "participation"),
        ("vg_cka_matrix", ARR, ["cka-matrix", "x.npy", "y.npy", "x.npy", "--batch", "8", "--json"], 0, "cka"),
        ("vg_probe_logistic", ARR, PROBE + ["--json"], 0, "top1"),
        ("vg_probe_ridge", ARR, PROBE + ["--kind", "ridge"], 0, "top1"),
        ("vg_probe_knn", ARR, PROBE + ["--kind", "knn", "--k", "5"], 0, "top1"),
        ("vg_embed_list", {"ck.safetensors": B.mlp_checkpoint(8), "x.npy": C.X8},
         ["embed", "--model", "mlp", "--checkpoint", "ck.safetensors", "--input", "x.npy", "--list"], 0, "fc1"),
        ("vg_run_idx", run_job("  d: {format: idx, images: img.idx, labels: lab.idx}", idx), ["run", "job.yaml"], 0,
         ""),
        ("vg_run_cifar", run_job("  d: {format: cifar, files: [b.bin]}", cif), ["run", "job.yaml"], 0, ""),
        ("vg_run_webdataset", run_job("  d: {format: webdataset, shards: [s.tar]}", shard), ["run", "job.yaml"], 0,
         ""),
    ]
    out = [B.Case(*r, control=True) for r in rows]
    for c in out:
        c.allowed = ("cache",)
    return out


def sample():
    groups = {"arrays": A.cases(), "checkpoints": C.cases(), "datasets": D.cases(), "jobs": J.cases()}
    out = []
    for g, names in SAMPLE.items():
        by = {c.name: c for c in groups[g]}
        for n in names:
            c = by[n]
            if c.known_bug:
                continue
            out.append(c)
    return out


def run_then_finalize(s):
    """`repeval run` then `repeval finalize` from the saved statistics, both under valgrind."""
    with B.tempfile.TemporaryDirectory(prefix="repeval-vg-") as d:
        files = {"img.idx": B.idx((12, 4, 4)), "lab.idx": B.idx((12,), bytes(k % 3 for k in range(12))),
                 "ck.safetensors": B.mlp_checkpoint(16), "_d": 16}
        for name, data in run_job("  d: {format: idx, images: img.idx, labels: lab.idx}", files).items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        for cmd in (["run", "job.yaml", "--quiet"], ["finalize", "job.yaml", "--quiet"]):
            p = subprocess.run(VALGRIND + [B.REPEVAL] + cmd, cwd=d, capture_output=True, text=True, env=env,
                               timeout=900)
            s.check(p.returncode == 0, f"valgrind {' '.join(cmd)}: exit {p.returncode}: {p.stderr[-2000:]}")
        s.check(os.path.isfile(os.path.join(d, "out", "metrics.csv")), "finalize wrote metrics.csv")


def main():
    if os.environ.get("REPEVAL_SANITIZE"):
        print("sanitizer build: Valgrind cannot run ASan/UBSan binaries; skipped")
        sys.exit(77)
    if not shutil.which("valgrind"):
        print("valgrind not installed; skipped")
        sys.exit(77)
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    s = B.Suite()
    cases = controls() + sample()
    B.run_cases(cases, "valgrind memcheck", wrapper=VALGRIND, suite=s)
    run_then_finalize(s)
    print(f"{len(cases) + 2} commands under valgrind")
    s.finish()


if __name__ == "__main__":
    main()
