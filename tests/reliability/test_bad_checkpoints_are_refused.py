"""Bad-input catalogue, checkpoints: malformed safetensors files, torch.save zip
archives and pickles through `repeval inspect` (and `repeval embed` for NaN/Inf
weights): lying header lengths, overlapping or out-of-range offsets, huge or
negative shapes, unknown dtypes, duplicate names, path traversal in member and
storage names, pickles whose globals or opcodes would execute code (os.system,
builtins.eval, subprocess.Popen, REDUCE on something that is not a whitelisted
callable, INST/OBJ/BUILD), truncation and deflate bombs. Nothing may run and
nothing may be written (see badinput.py). The valid base files are also loaded
with PyTorch (torch.load, weights_only) and compared, so the builders make real
checkpoints and each refusal comes from the one thing a case breaks."""
import io
import json
import os
import struct
import sys
import tempfile
import zipfile

from badinput import CANARY, Case, Pk, mlp_checkpoint, npy, run_cases, safetensors, torch_zip, zip_bytes

W6 = struct.pack("<6f", *range(6))
ST_GOOD = safetensors(metadata={"format": "pt"})
PT_GOOD = torch_zip()
INS_ST = ["inspect", "m.safetensors"]
INS_PT = ["inspect", "m.pt"]
ABS = os.path.join(tempfile.gettempdir(), f"{CANARY}-abs")


def st_header(text, data=W6):
    return {"m.safetensors": safetensors(header=text, data=data)}


def pt(pkl=None, **kw):
    return {"m.pt": torch_zip(pkl=pkl, **kw)}


def sd(*items):
    return Pk.state_dict(list(items))


def evil_reduce(mod, name, arg="touch pwned"):
    """{'w': <mod.name>('touch pwned')} built with GLOBAL + REDUCE."""
    return sd(("w", Pk.g(mod, name) + Pk.MARK + Pk.s(arg) + Pk.TUPLE + Pk.REDUCE))


def zip_patch_sizes(raw, name, usize):
    """Rewrite the uncompressed size of member `name` in both its local and central headers."""
    b = bytearray(raw)
    enc = name.encode()
    at = 0
    while True:
        at = b.find(b"PK\x03\x04", at)
        if at < 0:
            break
        nlen = struct.unpack_from("<H", b, at + 26)[0]
        if bytes(b[at + 30:at + 30 + nlen]) == enc:
            struct.pack_into("<I", b, at + 22, usize)
        at += 4
    at = 0
    while True:
        at = b.find(b"PK\x01\x02", at)
        if at < 0:
            break
        nlen = struct.unpack_from("<H", b, at + 28)[0]
        if bytes(b[at + 46:at + 46 + nlen]) == enc:
            struct.pack_into("<I", b, at + 24, usize)
        at += 4
    return bytes(b)


def deflate_bomb():
    """data.pkl deflated from 16 MiB of zeros while its headers claim 200 bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (16 << 20))
        z.writestr(zipfile.ZipInfo("archive/data/0"), W6)
    return zip_patch_sizes(buf.getvalue(), "archive/data.pkl", 200)


def mlp_run(ck):
    return ["embed", "--model", "mlp", "--checkpoint", ck, "--input", "x.npy", "--layers", "fc1", "--out", "emb"]


X8 = npy([0.25 * k for k in range(16)], descr="<f4", shape=(2, 8))


def nan_pt():
    w1 = [0.1] * 32
    w1[17] = float("inf")
    pkl = sd(("fc1.weight", Pk.tensor("0", 32, [4, 8], [8, 1])), ("fc1.bias", Pk.tensor("1", 4, [4], [1])))
    return torch_zip(pkl=pkl, storages={"0": struct.pack("<32f", *w1), "1": struct.pack("<4f", 0, 0, 0, 0)})


# ---- Hugging Face model folders and the hub cache ---------------------------

S1, S2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
B1, B2 = "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"
SHA = "0123456789abcdef0123456789abcdef01234567"
REPO = "models--Org--m"
SNAP = f"{REPO}/snapshots/{SHA}"
INS_M = ["inspect", "m"]
INS_REPO = ["inspect", REPO]


def st_shard(*names):
    return safetensors({n: ("F32", [2], struct.pack("<2f", 1.5, -2.0)) for n in names}, metadata={"format": "pt"})


def bin_shard(*names):
    return torch_zip(pkl=sd(*[(n, Pk.tensor(str(k), 6, [2, 3], [3, 1])) for k, n in enumerate(names)]),
                     storages={str(k): W6 for k in range(len(names))})


def index_text(weight_map, metadata=None):
    body = json.dumps(weight_map) if isinstance(weight_map, dict) else weight_map
    return '{"metadata": %s, "weight_map": %s}' % (json.dumps(metadata or {"total_size": 16}), body)


def folder(weight_map, shards=None, index="model.safetensors.index.json", where="m"):
    """A model folder: the index (a dict, or raw JSON text for weight_map) and its shards."""
    if shards is None:
        shards = {S1: st_shard("a", "b"), S2: st_shard("c")}
    files = {f"{where}/{name}": data for name, data in shards.items()}
    files[f"{where}/{index}"] = index_text(weight_map) if not isinstance(weight_map, bytes) else weight_map
    files[f"{where}/config.json"] = '{"model_type": "test"}'
    return files


GOOD_MAP = {"a": S1, "b": S1, "c": S2}
BIN_MAP = {"a": B1, "b": B1, "c": B2}
BIN_SHARDS = {B1: bin_shard("a", "b"), B2: bin_shard("c")}


def cache(refs=None, snapshot_files=None, links=None):
    """A hub cache repo: refs {branch: text}, files of snapshots/<SHA>, links {rel: target}."""
    files = {f"{REPO}/refs/{b}": text for b, text in (refs if refs is not None else {"main": SHA}).items()}
    blob = st_shard("a", "b")
    files[f"{REPO}/blobs/{'b' * 64}"] = blob
    for name, data in (snapshot_files if snapshot_files is not None else {"config.json": "{}"}).items():
        files[f"{SNAP}/{name}"] = data
    default = {f"{SNAP}/model.safetensors": f"../../blobs/{'b' * 64}"}
    return files, (links if links is not None else default)


def cache_case(name, args, rc, msg, control=False, **kw):
    files, links = cache(**kw)
    return Case(name, files, args, rc, msg, symlinks=links, control=control)


IDX = "m/model.safetensors.index.json"
HF_TABLE = [
    ("idx_tensor_absent_from_shard", folder({"a": S1, "b": S2, "c": S2}), INS_M, 1,
     f"{IDX}: weight_map['b'] names shard '{S2}', which does not hold that tensor"),
    ("idx_shard_missing", folder({"a": S1, "b": S1, "c": "model-00003-of-00002.safetensors"}), INS_M, 1,
     f"{IDX}: weight_map['c'] names shard 'model-00003-of-00002.safetensors', which is missing"),
    ("idx_shard_name_traversal", dict(folder({"a": S1, "b": S1, "c": f"../../../{CANARY}.safetensors"}),
                                      **{f"../../../{CANARY}.safetensors": st_shard("c")}), INS_M, 1,
     f"{IDX}: weight_map['c'] names shard '../../../{CANARY}.safetensors', which is not a file name in the model "
     "folder (no '/' or '..')"),
    ("idx_shard_name_absolute", folder({"a": S1, "b": S1, "c": os.path.abspath(os.sep + "etc/passwd")}), INS_M, 1,
     "names shard '/etc/passwd', which is not a file name in the model folder"),
    ("idx_shard_name_dotdot", folder({"a": S1, "b": S1, "c": ".."}), INS_M, 1,
     f"{IDX}: weight_map['c'] names shard '..', which is not a file name"),
    ("idx_tensor_in_two_shards", folder(GOOD_MAP, {S1: st_shard("a", "b"), S2: st_shard("c", "b")}), INS_M, 1,
     f"{IDX}: tensor 'b' is stored in two shards, '{S1}' (where weight_map['b'] puts it) and '{S2}'"),
    ("idx_shard_tensor_not_listed", folder({"a": S1, "c": S2}), INS_M, 1,
     f"{IDX}: shard '{S1}' holds tensor 'b', which \"weight_map\" does not list"),
    ("idx_duplicate_tensor", folder(b'{"weight_map": {"a": "%s", "b": "%s", "c": "%s", "a": "%s"}}' %
                                    (S1.encode(), S1.encode(), S2.encode(), S1.encode())), INS_M, 1,
     f"{IDX}: \"weight_map\" names tensor 'a' twice"),
    ("idx_not_json", folder(b'{"weight_map": {"a": "' + S1.encode()), INS_M, 1,
     f"{IDX}, byte 54: unterminated string"),
    ("idx_no_weight_map", folder(b'{"metadata": {"total_size": 16}}'), INS_M, 1, f"{IDX}: no \"weight_map\""),
    ("idx_weight_map_is_a_list", folder(b'{"weight_map": ["a", "b"]}'), INS_M, 1,
     f"{IDX}: \"weight_map\" must be an object, found an array"),
    ("idx_shard_not_a_string", folder(b'{"weight_map": {"a": 1}}'), INS_M, 1,
     f"{IDX}: weight_map['a'] must be a shard file name (a string), found a number"),
    ("idx_empty_weight_map", folder(b'{"weight_map": {}}'), INS_M, 1, f"{IDX}: \"weight_map\" names no tensor"),
    ("idx_shard_corrupt", folder(GOOD_MAP, {S1: st_shard("a", "b"), S2: safetensors(declared=5000)}), INS_M, 1,
     f"m/{S2}: declared header length 5000 runs past the end of the file"),
    ("bin_idx_tensor_absent_from_shard", folder({"a": B1, "b": B2, "c": B2}, BIN_SHARDS,
                                                "pytorch_model.bin.index.json"), INS_M, 1,
     f"m/pytorch_model.bin.index.json: weight_map['b'] names shard '{B2}', which does not hold that tensor"),
    ("bin_shard_runs_code", folder(BIN_MAP, {B1: bin_shard("a", "b"), B2: torch_zip(pkl=evil_reduce("os", "system"))},
                                   "pytorch_model.bin.index.json"), INS_M, 1,
     f"m/{B2}[archive/data.pkl]: pickle byte 36: refusing global 'os.system'"),
    ("folder_without_weights", {"m/config.json": "{}", "m/tf_model.h5": b"\x89HDF"}, INS_M, 1,
     "m: not a model folder: it holds none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, "
     "pytorch_model.bin.index.json"),
]

HF_CACHE = [
    cache_case("hf_refs_main_not_a_commit", INS_REPO, 1,
               f"{REPO}/refs/main: expected a commit hash of 40 lowercase hex digits, found 'v1.0'", refs={"main": "v1.0"}),
    cache_case("hf_refs_main_climbs_out", INS_REPO, 1,
               f"{REPO}/refs/main: expected a commit hash of 40 lowercase hex digits, found '../../../../{CANARY}'",
               refs={"main": f"../../../../{CANARY}"}),
    cache_case("hf_refs_main_is_a_link", INS_REPO, 1, f"{REPO}/refs/main: a symbolic link; a branch must be a file",
               refs={"step0": SHA}, links={f"{REPO}/refs/main": "../../outside.safetensors",
                               f"{SNAP}/model.safetensors": f"../../blobs/{'b' * 64}"}),
    cache_case("hf_snapshot_missing", INS_REPO, 1,
               f"{REPO}/refs/main: branch 'main' names commit {'f' * 40}, but its snapshot folder", refs={"main": "f" * 40}),
    cache_case("hf_link_out_of_repo", INS_REPO, 1, "the link leads outside the cache repo folder",
               links={f"{SNAP}/model.safetensors": "../../../outside.safetensors"}),
    cache_case("hf_snapshot_file_out_of_repo", ["inspect", SNAP], 1, "the file leads outside the cache repo folder",
               links={f"{SNAP}/model.safetensors": "../../../outside.safetensors"}),
    cache_case("hf_blob_gone", INS_REPO, 1, "leads to a missing file",
               links={f"{SNAP}/model.safetensors": "../../blobs/" + "0" * 64}),
    cache_case("hf_no_refs_main", INS_REPO, 1, f"{REPO}: a Hugging Face cache repo without refs/main",
               refs={"step0": SHA}),
    cache_case("hf_list_no_match", INS_REPO + ["--list", "step*"], 1,
               f"{REPO}/refs: no branch matches 'step*' (branches: main)"),
    cache_case("hf_list_bad_branch", INS_REPO + ["--list", "step*"], 1,
               f"{REPO}/refs/step1000: expected a commit hash", refs={"main": SHA, "step0": SHA, "step1000": "nope"}),
    Case("runs_list_no_match", {"runs/step0/model.safetensors": st_shard("a")}, ["inspect", "runs", "--list", "epoch*"],
         1, "runs: no folder matches 'epoch*'"),
]
for c in HF_CACHE:  # the targets that links must not reach
    c.files["outside.safetensors"] = st_shard("a", "b")

TABLE = [
    # safetensors: the 8-byte header length and the JSON header
    ("st_empty_file", {"m.safetensors": b""}, INS_ST, 1,
     "m.safetensors: unknown checkpoint format (expected safetensors, a torch.save zip, .npz or .npy)"),
    ("st_header_length_huge", {"m.safetensors": safetensors(declared=1 << 40)}, INS_ST, 1,
     "m.safetensors: declared header length 1099511627776 exceeds the limit of 100000000 bytes"),
    ("st_header_length_past_eof", {"m.safetensors": safetensors(declared=5000)}, INS_ST, 1,
     "m.safetensors: declared header length 5000 runs past the end of the file (97 bytes)"),
    ("st_header_not_json", st_header("{\"w\": {\"dtype\": \"F32\", "), INS_ST, 1,
     "m.safetensors: safetensors header, byte 31: expected a string as object key"),
    ("st_header_is_array", st_header("[1, 2, 3]"), INS_ST, 1, "m.safetensors: unknown checkpoint format"),
    ("st_offsets_overlap", st_header('{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}, '
                                     '"b": {"dtype": "F32", "shape": [3], "data_offsets": [8, 20]}}', W6[:20]),
     INS_ST, 1, "m.safetensors: tensor 'b' [8, 20) overlaps 'a' which ends at 12"),
    ("st_offsets_leave_gap", st_header('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
                                       '"b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}'),
     INS_ST, 1, "m.safetensors: hole in the data buffer: bytes [8, 16) belong to no tensor (next is 'b')"),
    ("st_offsets_past_data", st_header('{"w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 240]}}'), INS_ST,
     1, "m.safetensors: tensor 'w': data_offsets [0, 240] span 240 bytes, but F32 x 6 elements need 24"),
    ("st_offsets_reversed", st_header('{"w": {"dtype": "F32", "shape": [0], "data_offsets": [24, 0]}}'), INS_ST, 1,
     "m.safetensors: tensor 'w': data_offsets begin 24 > end 0"),
    ("st_negative_dimension", st_header('{"w": {"dtype": "F32", "shape": [-2, -3], "data_offsets": [0, 24]}}'),
     INS_ST, 1, "m.safetensors: tensor 'w': shape must hold non-negative integers (header byte 41)"),
    ("st_overflowing_shape", st_header('{"w": {"dtype": "F32", "shape": [4611686018427387904, 4611686018427387904,'
                                       ' 16], "data_offsets": [0, 24]}}'), INS_ST, 1,
     "m.safetensors: tensor 'w': element count overflows 64 bits"),
    ("st_nine_dimensions", st_header('{"w": {"dtype": "F32", "shape": [1, 1, 1, 1, 1, 1, 1, 1, 6], '
                                     '"data_offsets": [0, 24]}}'), INS_ST, 1,
     "m.safetensors: tensor 'w' has 9 dimensions (at most 8 supported)"),
    ("st_unknown_dtype", st_header('{"w": {"dtype": "C64", "shape": [3], "data_offsets": [0, 24]}}'), INS_ST, 1,
     "m.safetensors: unsupported dtype 'C64' for tensor 'w'"),
    ("st_size_disagrees_with_shape", st_header('{"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}',
                                               W6[:20]), INS_ST, 1,
     "m.safetensors: tensor 'w': data_offsets [0, 20] span 20 bytes, but F32 x 6 elements need 24"),
    ("st_duplicate_tensor_name", st_header('{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}, '
                                           '"w": {"dtype": "F32", "shape": [3], "data_offsets": [12, 24]}}'),
     INS_ST, 1, "m.safetensors: duplicate tensor name 'w' in the header"),
    ("st_deep_nesting", st_header('{"__metadata__": {"a": ' + "[" * 100 + "]" * 100 + "}}", b""), INS_ST, 1,
     "m.safetensors: safetensors header, byte 93: nesting deeper than 64 levels"),
    ("st_metadata_not_string", st_header('{"__metadata__": {"epochs": 3}, '
                                         '"w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}'),
     INS_ST, 1, "m.safetensors: __metadata__ entry 'epochs' must be a string, found a number"),
    ("st_name_invalid_utf8", st_header(b'{"w\xff\xfe": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}}'),
     INS_ST, 1, "m.safetensors: safetensors header, byte 11: invalid UTF-8 in string"),
    ("st_unknown_tensor_key", st_header('{"w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24], '
                                        '"exec": "rm -rf /"}}'), INS_ST, 1,
     "m.safetensors: tensor 'w': unknown field 'exec' (expected dtype, shape, data_offsets)"),
    # a tensor name is only a name: listed, never opened
    ("st_name_traversal", st_header('{"../../../' + CANARY + '.npy": {"dtype": "F32", "shape": [6], '
                                    '"data_offsets": [0, 24]}}'), INS_ST, 0, f"../../../{CANARY}.npy"),
    ("st_nan_weight", {"m.safetensors": mlp_checkpoint(8, nan=True), "x.npy": X8}, mlp_run("m.safetensors"), 1,
     ["m.safetensors does not match the model description",
      "tensor 'fc1.weight' holds a non-finite value at flat index 9"]),
    # torch.save archives: code execution through the pickle
    ("pt_global_os_system", pt(evil_reduce("os", "system")), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 36: refusing global 'os.system'"),
    ("pt_global_posix_system", pt(evil_reduce("posix", "system")), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 36: refusing global 'posix.system'"),
    ("pt_global_builtins_eval", pt(evil_reduce("builtins", "eval", "__import__('os').system('touch pwned')")),
     INS_PT, 1, "m.pt[archive/data.pkl]: pickle byte 36: refusing global 'builtins.eval'"),
    ("pt_stack_global_builtins_exec", pt(sd(("w", Pk.stack_global("builtins", "exec") + Pk.MARK +
                                            Pk.s("open('pwned', 'w')") + Pk.TUPLE + Pk.REDUCE))), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 58: refusing global 'builtins.exec'"),
    ("pt_global_subprocess_popen", pt(evil_reduce("subprocess", "Popen")), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 36: refusing global 'subprocess.Popen'"),
    ("pt_global_getattr", pt(evil_reduce("builtins", "getattr")), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 36: refusing global 'builtins.getattr'"),
    ("pt_global_torch_load", pt(evil_reduce("torch", "load")), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 36: refusing global 'torch.load'"),
    ("pt_reduce_on_string", pt(sd(("w", Pk.s("os.system") + Pk.MARK + Pk.s("touch pwned") + Pk.TUPLE +
                                   Pk.REDUCE))), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 68: cannot call a str"),
    ("pt_reduce_on_dtype", pt(sd(("w", Pk.g("torch", "float32") + Pk.MARK + Pk.TUPLE + Pk.REDUCE))), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 53: 'torch.float32' cannot be called"),
    ("pt_inst_opcode", pt(sd(("w", Pk.MARK + Pk.s("touch pwned") + Pk.INST + b"os\nsystem\n"))), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 53: unsupported pickle opcode INST (0x69)"),
    ("pt_obj_opcode", pt(sd(("w", Pk.MARK + Pk.g("os", "system") + Pk.s("touch pwned") + Pk.OBJ))), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 37: refusing global 'os.system'"),
    # BUILD's state (a state_dict's _metadata, say) is dropped, never applied
    ("pt_build_state_is_dropped", pt(sd(("w", Pk.tensor("0", 6, [2, 3], [3, 1]) + Pk.EMPTY_DICT +
                                         Pk.s("__reduce__") + Pk.s("os.system") + Pk.SETITEM + Pk.BUILD))),
     INS_PT, 0, "1 tensors"),
    ("pt_legacy_raw_pickle", {"m.pt": evil_reduce("os", "system")}, INS_PT, 1,
     "m.pt: legacy (pre-1.6, non-zip) PyTorch checkpoint; re-save it with torch.save"),
    # torch.save archives: structure; member names are looked up, never opened
    ("pt_member_traversal", pt(extra=[(f"../../../{CANARY}.npy", npy())]), INS_PT, 0, "1 tensors"),
    ("pt_member_absolute", pt(extra=[(ABS, npy())]), INS_PT, 0, "1 tensors"),
    ("pt_prefix_traversal", {"m.pt": torch_zip(prefix="../../..")}, INS_PT, 1,
     "m.pt: zip archive without a '<prefix>/data.pkl' member"),
    # told from .npz by content: torch.save members without their pickle are refused naming it
    ("pt_pickle_missing", {"x.pt": zip_bytes([("archive/data/0", W6), ("archive/version", b"3\n")])},
     ["inspect", "x.pt"], 1, "x.pt: zip archive without a '<prefix>/data.pkl' member: 'archive/data/0' belongs to "
     "a torch.save archive, but 'archive/data.pkl' is missing"),
    ("pt_pickle_missing_version_only", {"x.pt": zip_bytes([("archive/version", b"3\n")])}, ["inspect", "x.pt"], 1,
     "x.pt: zip archive without a '<prefix>/data.pkl' member: 'archive/version' belongs to a torch.save archive, "
     "but 'archive/data.pkl' is missing"),
    ("zip_without_arrays_or_pickle", {"m.pt": zip_bytes([("notes.txt", b"hello")])}, INS_PT, 1,
     "m.pt: no .npy member in the archive"),
    ("pt_storage_key_traversal", pt(sd(("w", Pk.tensor(f"../../../{CANARY}", 6, [2, 3], [3, 1])))), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 145: persistent id: storage key must be a non-empty string without '/'"),
    ("pt_storage_too_small", pt(sd(("w", Pk.tensor("0", 600, [2, 3], [3, 1])))), INS_PT, 1,
     "m.pt: tensor 'w': storage '0' should hold 600 float32 elements (2400 bytes) but 'archive/data/0' has 24 bytes"),
    ("pt_view_past_storage", pt(sd(("w", Pk.tensor("0", 6, [100, 100], [100, 1])))), INS_PT, 1,
     "m.pt: tensor 'w' (float32, 10000 elements) reaches beyond its storage of 24 bytes"),
    ("pt_offset_past_storage", pt(sd(("w", Pk.tensor("0", 6, [2, 3], [3, 1], offset=5)))), INS_PT, 1,
     "m.pt: tensor 'w' (float32, 6 elements) reaches beyond its storage of 24 bytes"),
    ("pt_negative_stride", pt(sd(("w", Pk.tensor("0", 6, [2, 3], [-3, 1], offset=3)))), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 182: tensor stride must hold non-negative integers"),
    ("pt_huge_shape", pt(sd(("w", Pk.tensor("0", 6, [2147483647, 2147483647, 2147483647], [0, 0, 0])))), INS_PT, 1,
     "m.pt: tensor 'w': element count overflows"),
    ("pt_duplicate_tensor_name", pt(sd(("w", Pk.tensor("0", 6, [2, 3], [3, 1])), ("w", Pk.tensor("0", 6, [6], [1])))),
     INS_PT, 1, "m.pt: duplicate tensor name 'w'"),
    ("pt_bad_byteorder", pt(byteorder=b"middle"), INS_PT, 1, "m.pt[archive/byteorder]: expected 'little' or 'big'"),
    ("pt_two_pickles", pt(extra=[("other/data.pkl", b"\x80\x02}.")]), INS_PT, 1,
     "m.pt: two pickles 'archive/data.pkl' and 'other/data.pkl' in one archive"),
    ("pt_truncated_zip", {"m.pt": PT_GOOD[:len(PT_GOOD) // 2]}, INS_PT, 1, "m.pt: unreadable zip archive"),
    ("pt_deflate_bomb", {"m.pt": deflate_bomb()}, INS_PT, 1,
     "m.pt[archive/data.pkl]: member holds more than 200 bytes, the central directory says 200"),
    ("pt_pickle_truncated", pt(sd(("w", Pk.tensor("0", 6, [2, 3], [3, 1])))[:-9]), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 154: GLOBAL name is not terminated by a newline"),
    ("pt_pickle_no_stop", pt(sd(("w", Pk.tensor("0", 6, [2, 3], [3, 1])))[:-1]), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle ends at byte 184 without STOP"),
    ("pt_pickle_unset_memo", pt(Pk.PROTO2 + b"h\x07" + Pk.STOP), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 2: memo lookup of an index that was never stored"),
    ("pt_pickle_mark_bomb", pt(Pk.PROTO2 + Pk.MARK * 70000 + Pk.STOP), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 65538: MARK nesting deeper than the limit of 65536"),
    ("pt_pickle_string_past_end", pt(Pk.PROTO2 + b"X" + struct.pack("<I", 0x7FFFFFFF) + b"abc"), INS_PT, 1,
     "m.pt[archive/data.pkl]: pickle byte 2: string length runs past the end of the pickle"),
    # embed's output files: one per (module, mode), never a file embed did not write
    ("embed_layer_twice", {"m.safetensors": mlp_checkpoint(8), "x.npy": X8},
     mlp_run("m.safetensors")[:7] + ["--layers", "fc1,fc1", "--out", "emb"], 1, "--layers: fc1:flatten is listed twice"),
    ("embed_over_a_foreign_file", {"m.safetensors": mlp_checkpoint(8), "x.npy": X8, "emb/fc1.npy": b"mine"},
     mlp_run("m.safetensors"), 1,
     "emb/fc1.npy exists and was not written by repeval embed (not in emb/embed.json)"),
    ("pt_inf_weight", {"m.pt": nan_pt(), "x.npy": X8}, mlp_run("m.pt"), 1,
     ["m.pt does not match the model description", "tensor 'fc1.weight' holds a non-finite value at flat index 17"]),
]

CONTROLS = [
    ("control_sharded_folder", folder(GOOD_MAP), INS_M, 0, ["m: safetensors (2 shards), 3 tensors", S1, S2]),
    ("control_bin_sharded_folder", folder(BIN_MAP, BIN_SHARDS, "pytorch_model.bin.index.json"), INS_M, 0,
     ["m: pytorch (2 shards), 3 tensors", B1]),
    ("control_safetensors", {"m.safetensors": ST_GOOD}, INS_ST, 0, ["w", "(2, 3)"]),
    ("control_torch_zip", {"m.pt": PT_GOOD}, INS_PT, 0, ["w", "(2, 3)"]),
    ("control_embed", {"m.safetensors": mlp_checkpoint(8), "x.npy": X8}, mlp_run("m.safetensors")[:-2] + ["--list"],
     0, "fc1"),
]


def torch_agrees():
    """The base files load in PyTorch with the values they were built from."""
    try:
        import torch
    except ImportError:
        print("PyTorch not available: the builders are checked by repeval alone")
        return True
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.pt")
        with open(p, "wb") as f:
            f.write(PT_GOOD)
        w = torch.load(p, weights_only=True)["w"]
        ok = list(w.shape) == [2, 3] and w.flatten().tolist() == [float(k) for k in range(6)]
        p2 = os.path.join(d, "bad.pt")
        with open(p2, "wb") as f:
            f.write(torch_zip(pkl=sd(("w", Pk.tensor("0", 6, [100, 100], [100, 1])))))
        try:  # PyTorch refuses the out-of-storage view too
            torch.load(p2, weights_only=True)
            ok = False
        except Exception:
            pass
    return ok


def cases():
    out = [Case(*row) for row in TABLE + HF_TABLE] + HF_CACHE + [Case(*row, control=True) for row in CONTROLS]
    out.append(cache_case("control_hf_cache", INS_REPO + ["--list", "*"], 0, ["main", SHA], control=True))
    out.append(cache_case("control_hf_cache_main", INS_REPO, 0, [f"folder: {SNAP}", "safetensors (1 shard)"],
                          control=True))
    for c in out:
        if c.name.startswith("pt_") or c.name.startswith("st_"):
            c.canaries.append("pwned")
        if c.name == "pt_member_absolute":
            c.canaries.append(ABS)
    return out


if __name__ == "__main__":
    if not torch_agrees():
        print("FAIL: the torch.save builder does not make files PyTorch reads as intended", file=sys.stderr)
        sys.exit(1)
    run_cases(cases(), "checkpoints")
