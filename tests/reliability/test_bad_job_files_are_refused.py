"""Bad-input catalogue, job files and model files through `repeval run`:
missing files, unset environment variables, impossible analyses (unbiased
HSIC with batches of 3, a probe on unlabelled data, spatial taps in minibatch
CKA or k-NN, RBF with the exact estimator, RSA over classes without labels,
unknown RDM distances and comparisons, shape metrics outside alpha in [0, 1]), YAML alias bombs, deep nesting, duplicate
CKA, RBF with the exact estimator, integrity thresholds out of range), YAML alias bombs, deep nesting, duplicate
keys, syntax errors, oversized files, pattern bombs, names that would become
paths, an output folder that is a file, and model descriptions with unknown
types, impossible sizes or that do not match the checkpoint. Every refusal
names file:line:col (or the file and key); the previous result in `out/` stays
byte-identical and nothing else appears (see badinput.py)."""
import os

from badinput import CANARY, DEMO, FIFO, Case, idx, job_yaml, mlp_checkpoint, run_cases

N = 8
RUN = ["run", "job.yaml", "--quiet"]
IDX = "  d: {format: idx, images: img.idx, labels: lab.idx}"
MODEL_FILE = """input: [1, 4, 4]
modules:
  - {name: flatten, type: flatten}
  - {name: fc1, type: linear}
  - {name: relu, type: relu}
  - {name: fc2, type: linear}
"""
MODEL = "  - {name: m, arch: model.yaml, checkpoints: ck.safetensors, layers: [fc1, fc2]}"


def base(job=None, model_file=MODEL_FILE, **extra):
    files = {"img.idx": idx((N, 4, 4)), "lab.idx": idx((N,), bytes(k % 3 for k in range(N))),
             "ck.safetensors": mlp_checkpoint(16), "model.yaml": model_file,
             "job.yaml": job if job is not None else job_yaml(IDX, model=MODEL)}
    files.update(extra)
    return files


def job(data=IDX, model=MODEL, analyses="  cka: {batch: 4}", extra=""):
    return base(job_yaml(data, model=model, analyses=analyses, extra=extra))


def cnn_job(layers, analyses):
    """The demo CNN (conv layers) on 28 x 28 images."""
    ck = os.path.join(DEMO, "checkpoints", "seed0", "epoch_00.safetensors")
    model = f"  - {{name: cnn, arch: {os.path.join(DEMO, 'cnn.yaml')}, checkpoints: {ck}, layers: {layers}}}"
    return {"img.idx": idx((N, 28, 28)), "lab.idx": idx((N,), bytes(N)),
            "job.yaml": job_yaml(IDX, model=model, analyses=analyses)}


def model(text, d_in=16):
    return base(model_file=text, **{"ck.safetensors": mlp_checkpoint(d_in)})


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join(['*' + chr(97 + k)] * 10)}]\n" for k in range(8))
NEST = "[" * 200 + "]" * 200

TABLE = [
    # files and the environment
    ("job_missing_images_file", job(data="  d: {format: idx, images: nope.idx, labels: lab.idx}"), RUN, 1,
     "job.yaml:3:28: file not found: nope.idx"),
    ("job_checkpoint_pattern_matches_nothing", job(model=MODEL.replace("ck.safetensors", '"ck_{0..3}.*"')), RUN, 1,
     "job.yaml:5:46: no file matches ck_0.* (from pattern 'ck_{0..3}.*')"),
    ("job_unset_environment_variable", job(data='  d: {format: idx, images: "${REPEVAL_NO_SUCH_VAR}/img.idx", '
                                                'labels: lab.idx}'), RUN, 1,
     "job.yaml:3:28: environment variable REPEVAL_NO_SUCH_VAR is not set"),
    ("job_unterminated_variable", job(data='  d: {format: idx, images: "${HOME/img.idx", labels: lab.idx}'), RUN, 1,
     "job.yaml:3:28: unterminated ${...} in '${HOME/img.idx'"),
    ("job_empty_file", base(job=""), RUN, 1, "job.yaml: the file is empty"),
    ("job_binary_garbage", base(job=bytes(range(256)) * 4), RUN, 1,
     "job.yaml:1:1: YAML syntax error: control characters are not allowed"),
    ("job_too_large", base(job="# " + "x" * (17 << 20) + "\n"), RUN, 1,
     "job.yaml: larger than the 16777216-byte limit for configuration files"),
    # YAML structure
    ("job_yaml_syntax_error", base(job="name: x\ndata: {d: [1, 2\nmodels: []\n"), RUN, 1,
     "job.yaml:3:7: YAML syntax error: did not find expected ',' or ']' while parsing a flow sequence"),
    ("job_tab_indentation", base(job="name: x\ndata:\n\td: 1\n"), RUN, 1,
     "job.yaml:3:1: YAML syntax error: found character that cannot start any token"),
    ("job_duplicate_key", base(job=job_yaml(IDX, model=MODEL) + "name: again\n"), RUN, 1,
     "job.yaml:9:1: duplicate key 'name' (first at line 1)"),
    ("job_alias_bomb", base(job=ALIAS_BOMB + job_yaml(IDX, model=MODEL)), RUN, 1,
     "job.yaml: more than 1000000 nodes after expanding aliases"),
    ("job_deep_nesting", base(job=job_yaml(IDX, model=MODEL, extra=f"slurm: {NEST}\n")), RUN, 1,
     "job.yaml:9:72: nesting deeper than 64 levels"),
    ("job_top_level_list", base(job="- a\n- b\n"), RUN, 1, "job.yaml:1:1: the job must be a map of key: value"),
    # patterns
    ("job_range_too_long", job(model=MODEL.replace("ck.safetensors", '"ck{0..99999999}.safetensors"')), RUN, 1,
     "job.yaml:5:46: range {0..99999999} is too long"),
    ("job_pattern_bomb", job(model=MODEL.replace("ck.safetensors", '"{0..9}{0..9}{0..9}{0..9}{0..9}{0..9}"')), RUN,
     1, "job.yaml:5:46: a pattern expands to more than 100000 names"),
    # impossible analyses
    ("job_unbiased_batch_3", job(analyses="  cka: {batch: 3}"), RUN, 1,
     "job.yaml:7:16: batch 3 is too small: the unbiased HSIC estimator needs batches of at least 4"),
    ("job_probe_on_unlabelled_data", job(data="  d: {format: idx, images: img.idx}",
                                         analyses="  probe: {train: d, test: d}"), RUN, 1,
     "job.yaml:7:18: probe 'probe': dataset 'd' has no labels"),
    ("job_spatial_taps_in_minibatch_cka", cnn_job("[conv1:spatial]", "  cka: {batch: 4}"), RUN, 1,
     "job.yaml:7:8: analysis 'cka': minibatch CKA needs one row per sample; layer 'conv1' is tapped with mode "
     "spatial"),
    ("job_exact_rbf", job(analyses="  cka: {estimator: exact, kernel: rbf}"), RUN, 1,
     "job.yaml:7:8: analysis 'cka': the exact estimator supports only the linear kernel"),
    ("job_huge_batch", job(analyses="  cka: {batch: 1000000000000}"), RUN, 1,
     "job.yaml:7:16: batch 1000000000000 is larger than 1048576"),
    ("job_negative_limit", job(data="  d: {format: idx, images: img.idx, labels: lab.idx, limit: -1}"), RUN, 1,
     "job.yaml:3:61: limit must be >= 0"),
    ("job_offset_past_the_end", job(data="  d: {format: idx, images: img.idx, labels: lab.idx, offset: 100}"), RUN,
     1, "job.yaml:3:6: dataset 'd': offset 100 leaves no sample of 8"),
    ("job_normalize_std_zero", job(data="  d: {format: idx, images: img.idx, labels: lab.idx, "
                                        "normalize: {mean: [0.5], std: [0]}}"), RUN, 1,
     "job.yaml:3:85: std must be positive"),
    ("job_normalize_nan_mean", job(data="  d: {format: idx, images: img.idx, labels: lab.idx, "
                                        "normalize: {mean: [.nan], std: [1]}}"), RUN, 1,
     "job.yaml:3:73: expected a finite number, got '.nan'"),
    ("job_layer_listed_twice", job(model=MODEL.replace("[fc1, fc2]", "[fc1, fc1]")), RUN, 1,
     "job.yaml:5:76: layer 'fc1' listed twice"),
    ("job_unknown_layer", job(model=MODEL.replace("[fc1, fc2]", "[fc1, fc9]")), RUN, 1,
     "job.yaml:5:5: model 'm': no module named 'fc9' to tap (modules: flatten, fc1, relu, fc2)"),
    ("job_two_models_same_name", job(model=MODEL + "\n" + MODEL), RUN, 1, "job.yaml:6:5: two models are called 'm'"),
    ("job_checkpoint_of_another_model", {**job(model=MODEL.replace("model.yaml", os.path.join(DEMO, "cnn.yaml"))),
                                         "img.idx": idx((N, 28, 28))}, RUN,
     1, ["ck.safetensors does not match the model description",
         "missing tensor 'conv1.weight' [?, ?, 3, 3] for conv2d 'conv1'"]),
    ("job_same_label_twice", base(job=job_yaml(IDX, model=MODEL.replace("ck.safetensors", '"ck.*"')),
                                  **{"ck.npz": b"PK\x05\x06" + b"\0" * 18}), RUN, 1,
     "checkpoints ck.npz and ck.safetensors get the same label 'ck'"),
    ("job_stats_budget_exceeded", job(analyses="  spectrum: {}"), RUN, 1, "REPEVAL_MAX_STATS_MB"),
    # uncertainty settings (docs/job-spec.md, "uncertainty")
    ("job_uncertainty_unknown_key", job(analyses="  cka: {batch: 4, uncertainty: {replicate: 10}}"), RUN, 1,
     "job.yaml:7:33: unknown key 'replicate' in uncertainty"),
    ("job_uncertainty_not_a_map", job(analyses="  cka: {batch: 4, uncertainty: 100}"), RUN, 1,
     "job.yaml:7:32: uncertainty must be a map"),
    ("job_uncertainty_jackknife_exact", job(analyses="  cka: {estimator: exact, uncertainty: {method: jackknife}}"),
     RUN, 1, "job.yaml:7:49: analysis 'cka': the jackknife is over the batches of a minibatch estimator"),
    ("job_uncertainty_level_one", job(analyses="  cka: {batch: 4, uncertainty: {level: 1}}"), RUN, 1,
     "job.yaml:7:40: level must lie strictly between 0 and 1"),
    ("job_uncertainty_one_replicate", job(analyses="  cka: {batch: 4, uncertainty: {replicates: 1}}"), RUN, 1,
     "job.yaml:7:45: replicates must lie in 2..100000, got 1"),
    ("job_uncertainty_negative_seed", job(analyses="  cka: {batch: 4, uncertainty: {seed: -3}}"), RUN, 1,
     "job.yaml:7:39: seed must be a whole number >= 0"),
    ("job_uncertainty_calibrate_without_null", job(analyses="  cka: {batch: 4, uncertainty: {calibrate: z}}"), RUN,
     1, "job.yaml:7:44: calibrate needs a permutation null"),
    ("job_uncertainty_nothing_to_do", job(analyses="  cka: {batch: 4, uncertainty: {method: none}}"), RUN, 1,
     "job.yaml:7:32: uncertainty: method none without permutations computes nothing"),
    ("job_uncertainty_spectrum_permutations", job(analyses="  spectrum: {uncertainty: {permutations: 10}}"), RUN, 1,
     "job.yaml:7:42: analysis 'spectrum': a permutation null compares two taps; spectrum metrics are per tap"),
    ("job_uncertainty_cca_jackknife", job(analyses="  cca: {pairs: all, uncertainty: {method: jackknife}}"), RUN, 1,
     "job.yaml:7:43: analysis 'cca': the jackknife is over the batches of a minibatch estimator"),
    ("job_uncertainty_budget_exceeded", job(analyses="  cka: {estimator: exact, uncertainty: {replicates: 1000}}"),
     RUN, 1, "analysis 'cka': its uncertainty replicates need"),
    # neighbourhood, RSA and shape analyses
    ("job_knn_k_zero", job(analyses="  knn: {k: 0}"), RUN, 1, "job.yaml:7:12: k must be in [1, 100000], got 0"),
    ("job_knn_k_not_a_number", job(analyses="  knn: {k: [5, ten]}"), RUN, 1, "job.yaml:7:16: expected an integer, got 'ten'"),
    ("job_knn_spatial_taps", cnn_job("[conv1:spatial]", "  knn: {}"), RUN, 1,
     "job.yaml:7:8: analysis 'knn': layer 'conv1' is tapped with mode spatial; knn needs one row per sample"),
    ("job_rsa_unknown_distance", job(analyses="  rsa: {distance: manhattan}"), RUN, 1,
     "job.yaml:7:19: unknown RDM distance 'manhattan' (correlation, cosine, euclidean, sqeuclidean)"),
    ("job_rsa_unknown_method", job(analyses="  rsa: {methods: [spearman, kendall]}"), RUN, 1,
     "job.yaml:7:29: unknown RDM comparison 'kendall'"),
    ("job_rsa_classes_without_labels", job(data="  d: {format: idx, images: img.idx}",
                                           analyses="  rsa: {over: classes}"), RUN, 1,
     "job.yaml:7:15: analysis 'rsa': over: classes needs labels, and dataset 'd' has none"),
    ("job_shape_alpha_above_one", job(analyses="  shape: {alpha: [0, 1.5]}"), RUN, 1,
     "job.yaml:7:22: alpha must be in [0, 1] (0: CCA, 1: Procrustes)"),
    ("job_cca_directions_not_a_bool", job(analyses="  cca: {directions: often}"), RUN, 1, "job.yaml:7:21: expected true or false"),
    # the integrity analysis' keys
    ("job_integrity_bad_estimator", job(analyses="  integrity: {estimator: fast}"), RUN, 1,
     "job.yaml:7:26: estimator must be minibatch or exact"),
    ("job_integrity_batch_too_small", job(analyses="  integrity: {batch: 3}"), RUN, 1,
     "job.yaml:7:22: batch must be in [4, 1048576]"),
    ("job_integrity_negative_threshold", job(analyses="  integrity: {norm_jump: -1}"), RUN, 1,
     "job.yaml:7:26: norm_jump must be a finite number >= 0"),
    ("job_integrity_nan_threshold", job(analyses="  integrity: {cka_ratio: .nan}"), RUN, 1,
     "job.yaml:7:26: expected a finite number, got '.nan'"),
    ("job_integrity_unknown_key", job(analyses="  integrity: {norm_jumps: 1}"), RUN, 1,
     "job.yaml:7:15: unknown key 'norm_jumps'"),
    # maps, alignment and the MLP probe
    ("job_map_sample_of_one", job(analyses="  map: {sample: 1}"), RUN, 1,
     "sample must be in [2, 100000] (points per map)"),
    ("job_map_spatial_tap", cnn_job("[conv2:spatial]", "  map: {}"), RUN, 1,
     "map 'map': layer 'conv2' is tapped with mode spatial"),
    ("job_alignment_positive_is_itself", job(analyses="  alignment: {positive: d}"), RUN, 1,
     "'positive' names the dataset itself"),
    ("job_alignment_unknown_positive", job(analyses="  alignment: {positive: views}"), RUN, 1,
     "analysis 'alignment': no dataset named 'views'"),
    ("job_alignment_labels_alpha", job(analyses="  alignment: {alpha: 1}"), RUN, 1,
     "same-label pairs are summed per class, which needs alpha 2"),
    ("job_probe_hidden_for_logistic", job(analyses="  probe: {train: d, test: d, hidden: 8}"), RUN, 1,
     "hidden (MLP probes only) must be in [1, 65536]"),
    ("job_probe_mlp_bad_activation", job(analyses="  probe: {kind: mlp, train: d, test: d, activation: tanh}"), RUN,
     1, "activation (MLP probes only) must be gelu or relu"),
    ("job_probe_mlp_data_parallel", job(analyses="  probe: {kind: mlp, train: d, test: d, parallel: data}"), RUN,
     1, "parallel must be auto, tasks or data (data: logistic probes only)"),
    # names from the job file become file names in the output folder
    ("job_dataset_name_traversal", job(data=f'  "../../../{CANARY}": {{format: idx, images: img.idx, '
                                            'labels: lab.idx}'), RUN, 1, "job.yaml:3:3"),
    ("job_analysis_name_traversal", job(analyses=f'  "../../../{CANARY}": {{type: cka, batch: 4}}'), RUN, 1,
     "job.yaml:7:3"),
    # output paths: refused before the first pass, --check included (docs/cli.md, "Output folders")
    *[(f"job_output_{name}{'_check' if check else ''}", base(), RUN + ["--out", out] + check, 1, msg)
      for name, out, msg in [("dot", ".", "output folder '.' names the current or the parent folder"),
                             ("dot_slash", "./", "output folder './' names the current or the parent folder"),
                             ("dot_dot", "..", "output folder '..' names the current or the parent folder"),
                             ("empty", "", "the output folder is an empty name (an unset variable?)"),
                             ("root", "/", "output folder '/' names the root folder"),
                             ("is_the_data", "img.idx", "output folder img.idx is the input img.idx of this job"),
                             ("holds_the_data", "../c", "output folder ../c contains the input"),
                             ("inside_a_file", "img.idx/x", "img.idx is not a folder")]
      for check in ([], ["--check"])],
    ("job_output_unset_variable", base(job=job_yaml(IDX, model=MODEL).replace("output: {dir: out}",
                                                                              "output: {dir: \"${NOPE_DIR:-}\"}")),
     RUN, 1, "the output folder is an empty name (an unset variable?)"),
    ("job_output_foreign_folder", base(**{"notes/a.txt": "mine\n"}), RUN + ["--out", "notes"], 1,
     "output folder notes exists and is not a repeval result"),
    ("job_output_link_to_foreign_folder", base(**{"notes/a.txt": "mine\n"}), RUN + ["--out", "ln"], 1,
     "output folder ln exists and is not a repeval result"),
    ("job_file_is_a_fifo", {"job.yaml": FIFO}, RUN, 1, "job.yaml is a FIFO: repeval reads inputs from regular files only"),
    ("job_dataset_is_a_fifo", base(**{"img.idx": FIFO}), RUN, 1,
     "job.yaml:3:28: img.idx is a FIFO: repeval reads inputs from regular files only"),
    ("job_alias_text_bomb", base(job="big: &a \"" + "x" * (4 << 20) + "\"\n" +
                                 "list: [" + ", ".join(["*a"] * 20) + "]\n" + job_yaml(IDX, model=MODEL)),
     RUN + ["--check"], 1, "job.yaml: more than 67108864 bytes of text after expanding aliases"),
    ("job_output_dir_is_a_file", base(job=job_yaml(IDX, model=MODEL).replace("output: {dir: out}",
                                                                             "output: {dir: out/metrics.csv}")),
     RUN, 1, "out/metrics.csv exists and is not a folder"),
    # model files
    ("model_unknown_type", model(MODEL_FILE.replace("type: relu", "type: swish")), RUN, 1,
     "model.yaml:5:24: unknown module type 'swish'"),
    ("model_pool_without_kernel", model(MODEL_FILE.replace("  - {name: flatten", "  - {name: p, type: maxpool2d}\n"
                                                           "  - {name: flatten")), RUN, 1,
     "model 'm', checkpoint ck.safetensors: module 'p' (maxpool2d): needs 'kernel'"),
    ("model_zero_stride", model("input: [1, 4, 4]\nmodules:\n  - {name: p, type: maxpool2d, kernel: 2, stride: 0}\n"
                                "  - {name: flatten, type: flatten}\n  - {name: fc1, type: linear}\n"), RUN, 1,
     "model.yaml:3:5: kernel, stride and dilation must be positive"),
    ("model_kernel_larger_than_input", model("modules:\n  - {name: p, type: avgpool2d, kernel: 5}\n"
                                             "  - {name: flatten, type: flatten}\n  - {name: fc1, type: linear}\n"
                                             "  - {name: fc2, type: linear}\n", d_in=1), RUN, 1,
     "module 'p' (avgpool2d)"),
    ("model_kernel_overflows", model("modules:\n  - {name: p, type: maxpool2d, kernel: 4611686018427387904, "
                                     "dilation: 4}\n  - {name: flatten, type: flatten}\n"
                                     "  - {name: fc1, type: linear}\n  - {name: fc2, type: linear}\n", d_in=1), RUN, 1,
     "module 'p' (maxpool2d)"),
    ("model_negative_padding", model("input: [1, 4, 4]\nmodules:\n  - {name: p, type: maxpool2d, kernel: 2, "
                                     "padding: -3}\n  - {name: flatten, type: flatten}\n"
                                     "  - {name: fc1, type: linear}\n"), RUN, 1,
     "model.yaml:3:52: expected non-negative values"),
    ("model_duplicate_module_names", model(MODEL_FILE.replace("name: relu", "name: fc1")), RUN, 1,
     "model.yaml:5:"),
    ("model_deep_nesting", model("modules:\n  - {type: sequential, modules: \n    " + NEST + "}\n"), RUN, 1,
     "model.yaml:3:67: nesting deeper than 64 levels"),
    ("model_input_does_not_fit_data", model(MODEL_FILE.replace("input: [1, 4, 4]", "input: [1, 5, 5]")), RUN, 1,
     "model.yaml:1:"),
    ("model_missing_tensor", model(MODEL_FILE + "  - {name: fc3, type: linear}\n"), RUN, 1,
     ["ck.safetensors does not match the model description", "missing tensor 'fc3.weight' [?, ?] for linear 'fc3'"]),
    ("model_declared_size_disagrees", model(MODEL_FILE.replace("name: fc1, type: linear", "name: fc1, type: linear,"
                                                               " out: 5")), RUN, 1,
     "tensor 'fc1.weight' has shape [4, 16] but linear 'fc1' expects [5, ?]"),
    ("model_alias_bomb", model(ALIAS_BOMB + MODEL_FILE), RUN, 1,
     "model.yaml: more than 1000000 nodes after expanding aliases"),
    ("model_not_a_map", model("[1, 2, 3]\n"), RUN, 1,
     "model.yaml:1:1: a model description must be a map of key: value"),
]

# Behaviour that is wrong today, with the file and function to fix (see docs/reliability.md).
KNOWN_BUGS = {}

CONTROLS = [
    ("control_job", base(), RUN, 0, ""),
]


def cases():
    out = [Case(*row) for row in TABLE] + [Case(*row, control=True) for row in CONTROLS]
    for c in out:
        if c.name == "job_stats_budget_exceeded":
            c.env = {"REPEVAL_MAX_STATS_MB": "0"}
        if c.name == "job_uncertainty_budget_exceeded":
            c.env = {"REPEVAL_MAX_STATS_MB": "0.5"}
        if c.name in ("job_unset_environment_variable", "job_output_unset_variable"):
            c.env = {"REPEVAL_NO_SUCH_VAR": None, "NOPE_DIR": None}
        if c.name == "job_output_link_to_foreign_folder":
            c.symlinks = {"ln": "notes"}
        c.known_bug = KNOWN_BUGS.get(c.name)
    return out


if __name__ == "__main__":
    run_cases(cases(), "job and model files")
