"""Bad-input catalogue, arrays: malformed .npy and .npz files and unusable
embeddings (NaN/Inf, wrong dtypes, mismatched rows, bad labels) through
`repeval inspect`, `cka`, `cca`, `spectrum`, `cka-matrix`, `probe`, `knn`, `rsa` and
`shape`. Each case
names the exit code and the message fragment; nothing may be written anywhere
(see badinput.py for the checks)."""
import os
import tempfile

from badinput import CANARY, FIFO, Case, labels_npy, matrix, npy, npy_header, run_cases, zip_bytes

GOOD = npy()
X, Y = matrix(12, 3, seed=1), matrix(12, 2, seed=2)
LAB = labels_npy([k % 3 for k in range(12)])
INSPECT = ["inspect", "a.npy"]
PROBE = ["probe", "--train", "x.npy", "--train-labels", "y.npy", "--test", "x.npy", "--test-labels", "y.npy",
         "--lambdas", "1", "--weights", "w.npy", "--predictions", "p.npy"]
ABSOLUTE = os.path.join(tempfile.gettempdir(), f"{CANARY}-npz_member_absolute")
PAD = b"\0" * 48

# (name, files, arguments, exit code, message fragments)
TABLE = [
    # .npy headers
    ("npy_bad_magic", {"a.npy": b"\x93NUMPX" + GOOD[6:]}, INSPECT, 1,
     "a.npy: not a .npy file (missing the \\x93NUMPY magic)"),
    ("npy_truncated_in_header", {"a.npy": GOOD[:30]}, INSPECT, 1,
     "a.npy: .npy header declares 118 bytes but the file has only 20 after the preamble"),
    ("npy_empty_file", {"a.npy": b""}, INSPECT, 1, "a.npy: not a .npy file (0 bytes)"),
    ("npy_header_length_past_eof", {"a.npy": npy_header(hlen=60000) + PAD}, INSPECT, 1,
     "a.npy: .npy header declares 60000 bytes but the file has only 166"),
    ("npy_huge_header_length_v2", {"a.npy": npy_header(version=(2, 0), hlen=0x7FFFFFF0)}, INSPECT, 1,
     "a.npy: .npy header length 2147483632 exceeds the limit of 1048576 bytes"),
    ("npy_unknown_version", {"a.npy": npy_header(version=(9, 0)) + PAD}, INSPECT, 1,
     "a.npy: .npy format version 9.0 is not supported"),
    ("npy_data_truncated", {"a.npy": npy_header(shape=(100,)) + PAD}, INSPECT, 1,
     "a.npy: .npy data truncated: shape needs 800 bytes of float64, file has 48"),
    ("npy_trailing_bytes", {"a.npy": GOOD + b"\0" * 8}, INSPECT, 1, "a.npy: 8 bytes after the .npy array data"),
    ("npy_negative_dimension", {"a.npy": npy_header(shape=(-1, 3))}, INSPECT, 1,
     "a.npy: .npy header: expected a non-negative integer in the shape at header byte 51"),
    ("npy_overflowing_shape", {"a.npy": npy_header(shape=(1 << 62, 1 << 62))}, INSPECT, 1,
     "a.npy: .npy shape overflows 64 bits"),
    # found by fuzz_npy: no element, but the row width alone overflows (NumPy refuses it too)
    ("npy_zero_rows_overflowing_columns", {"a.npy": npy_header(shape=(0, 2111111112, 2111111111111))}, INSPECT, 1,
     "a.npy: .npy shape overflows 64 bits"),
    ("npy_dimension_beyond_int64", {"a.npy": npy_header(shape=(99999999999999999999,))}, INSPECT, 1,
     "a.npy: .npy header: shape dimension overflows 64 bits"),
    ("npy_33_dimensions", {"a.npy": npy_header(shape=(1,) * 33) + b"\0" * 8}, INSPECT, 1,
     "a.npy: .npy header: more than 32 dimensions"),
    ("npy_object_dtype", {"a.npy": npy_header(descr="|O", shape=(1,)) + b"\x80\x02N."}, INSPECT, 1,
     "a.npy: unsupported .npy dtype '|O'"),
    ("npy_complex_dtype", {"a.npy": npy_header(descr="<c16", shape=(1,)) + b"\0" * 16}, INSPECT, 1,
     "a.npy: unsupported .npy dtype '<c16'"),
    ("npy_structured_dtype", {"a.npy": npy_header(raw="{'descr': [('a', '<f4')], 'fortran_order': False, "
                                                      "'shape': (1,), }") + b"\0" * 4}, INSPECT, 1,
     "a.npy: structured .npy dtypes are not supported"),
    ("npy_missing_key", {"a.npy": npy_header(raw="{'descr': '<f8', 'shape': (6,), }") + PAD}, INSPECT, 1,
     "a.npy: .npy header lacks 'fortran_order'"),
    ("npy_duplicate_key", {"a.npy": npy_header(raw="{'descr': '<f8', 'descr': '<f4', 'fortran_order': False, "
                                                   "'shape': (6,), }") + PAD}, INSPECT, 1,
     "a.npy: .npy header repeats 'descr'"),
    ("npy_header_is_code", {"a.npy": npy_header(raw="__import__('os').system('touch pwned')")}, INSPECT, 1,
     "a.npy: .npy header: expected '{' at header byte 0"),
    ("npy_fortran_order_not_bool", {"a.npy": npy_header(raw="{'descr': '<f8', 'fortran_order': 1, "
                                                            "'shape': (6,), }") + PAD}, INSPECT, 1,
     "a.npy: .npy header: expected True or False at header byte 34"),
    # .npz archives: member names are array names, never paths
    ("npz_member_traversal", {"e.npz": zip_bytes([(f"../../../{CANARY}.npy", GOOD)])}, ["inspect", "e.npz"], 0,
     f"../../../{CANARY}"),
    ("npz_member_absolute", {"e.npz": zip_bytes([(ABSOLUTE + ".npy", GOOD)])}, ["inspect", "e.npz"], 0, ABSOLUTE),
    ("npz_duplicate_member", {"e.npz": zip_bytes([("x.npy", GOOD), ("x.npy", GOOD)])}, ["inspect", "e.npz"], 1,
     "e.npz: array 'x' appears twice in the .npz"),
    ("npz_member_not_npy", {"e.npz": zip_bytes([("x.npy", b"hello world, not an array")])}, ["inspect", "e.npz"], 1,
     "e.npz[x]: not a .npy file (missing the \\x93NUMPY magic)"),
    ("npz_without_arrays", {"e.npz": zip_bytes([("notes.txt", b"hello")])}, ["inspect", "e.npz"], 1,
     "e.npz: no .npy member in the archive"),
    ("npz_truncated", {"e.npz": zip_bytes([("x.npy", X), ("y.npy", Y)])[:300]}, ["inspect", "e.npz"], 1,
     "e.npz: not a readable .npz (zip) archive"),
    ("npz_not_a_zip", {"e.npz": b"PK\x03\x04" + b"\xff" * 200}, ["inspect", "e.npz"], 1,
     "e.npz: not a readable .npz (zip) archive"),
    ("npz_missing_array", {"e.npz": zip_bytes([("x.npy", X)])}, ["cka", "e.npz:nope", "e.npz:x"], 1,
     "e.npz: no array named 'nope' in the .npz"),
    # embeddings the metrics cannot use
    ("cka_fifo_input", {"x.npy": FIFO, "y.npy": Y}, ["cka", "x.npy", "y.npy"], 1,
     "x.npy is a FIFO: repeval reads inputs from regular files only"),
    ("inspect_fifo", {"a.npy": FIFO}, INSPECT, 1, "a.npy is a FIFO: repeval reads inputs from regular files only"),
    ("probe_unstandardized_beyond_float32", {"x.npy": npy([1e75 * k for k in range(6)], shape=(6, 1)),
                                             "y.npy": labels_npy([0, 1, 0, 1, 0, 1])},
     PROBE + ["--no-standardize"], 1, "x.npy: row 1, column 0 is 1e+75, beyond float32"),
    ("cka_nan_embedding", {"x.npy": matrix(12, 3, seed=1, nan_at=(5, 2)), "y.npy": Y}, ["cka", "x.npy", "y.npy"],
     1, "x.npy: row 5, column 2 is NaN"),
    ("cka_inf_embedding_rbf", {"x.npy": X, "y.npy": matrix(12, 2, seed=2, inf_at=(11, 0))},
     ["cka", "x.npy", "y.npy", "--kernel", "rbf"], 1, "y.npy: row 11, column 0 is infinite"),
    ("cka_row_mismatch", {"x.npy": X, "y.npy": matrix(11, 2)}, ["cka", "x.npy", "y.npy"], 1,
     "x.npy has 12 rows but y.npy has 11"),
    ("cka_string_dtype", {"x.npy": npy_header(descr="<U3", shape=(12, 1)) + b"\0" * 144, "y.npy": Y},
     ["cka", "x.npy", "y.npy"], 1, "x.npy: unsupported .npy dtype '<U3'"),
    ("cca_nan_embedding", {"x.npy": X, "y.npy": matrix(12, 2, nan_at=(0, 1))}, ["cca", "x.npy", "y.npy"], 1,
     "y.npy: row 0, column 1 is NaN"),
    ("spectrum_inf_embedding", {"x.npy": matrix(12, 3, inf_at=(7, 1))}, ["spectrum", "x.npy", "--out", "e.npy"], 1,
     "x.npy: row 7, column 1 is infinite"),
    ("cka_matrix_nan_embedding", {"x.npy": X, "y.npy": matrix(12, 2, nan_at=(9, 0))},
     ["cka-matrix", "x.npy", "y.npy", "--batch", "4", "--out", "m.npy", "--csv", "m.csv"], 1,
     "y.npy: row 9, column 0 is NaN"),
    ("probe_fractional_labels", {"x.npy": X, "y.npy": npy([0.5 * (k % 3) for k in range(12)])}, PROBE, 1,
     "y.npy: index 1 is 0.5, expected a class index"),
    ("probe_negative_label", {"x.npy": X, "y.npy": labels_npy([0] * 6 + [-4] + [1] * 5)}, PROBE, 1,
     "y.npy: index 6 is -4, expected a class index"),
    ("probe_label_count_mismatch", {"x.npy": X, "y.npy": labels_npy([0, 1] * 5)}, PROBE, 1,
     "y.npy: 10 x 1 labels, expected one label for each of the 12 rows of x.npy"),
    ("probe_nan_feature", {"x.npy": matrix(12, 3, nan_at=(4, 0)), "y.npy": LAB}, PROBE, 1,
     "x.npy: row 4, column 0 is NaN"),
    ("probe_labels_2d", {"x.npy": X, "y.npy": npy([0] * 12, descr="<i8", shape=(6, 2))}, PROBE, 1,
     "y.npy: 6 x 2 labels, expected one label for each of the 12 rows"),
    ("knn_nan_embedding", {"x.npy": matrix(12, 3, nan_at=(3, 1)), "y.npy": Y},
     ["knn", "x.npy", "y.npy", "--k", "3", "--neighbors", "nb"], 1, "x.npy: k-NN graph: row 3, column 1 is NaN"),
    ("knn_row_mismatch", {"x.npy": X, "y.npy": matrix(11, 2)}, ["knn", "x.npy", "y.npy", "--k", "3"], 1,
     "y.npy has 11 rows but x.npy has 12"),
    ("knn_k_too_large", {"x.npy": X, "y.npy": Y}, ["knn", "x.npy", "y.npy", "--k", "12"], 1,
     "k = 12 needs more than 12 samples"),
    ("rsa_inf_embedding", {"x.npy": matrix(12, 3, inf_at=(7, 1)), "y.npy": Y},
     ["rsa", "x.npy", "y.npy", "--rdm-out", "r"], 1, "x.npy: RDM: stimulus 7, feature 1 is infinite"),
    ("rsa_label_count_mismatch", {"x.npy": X, "y.npy": Y, "l.npy": labels_npy([0, 1] * 5)},
     ["rsa", "x.npy", "y.npy", "--labels", "l.npy"], 1, "x.npy: 12 rows but 10 labels"),
    ("rsa_negative_label", {"x.npy": X, "y.npy": Y, "l.npy": labels_npy([0] * 6 + [-4] + [1] * 5)},
     ["rsa", "x.npy", "y.npy", "--labels", "l.npy"], 1, "l.npy: label 6 is -4, expected an integer >= 0"),
    ("shape_nan_embedding", {"x.npy": X, "y.npy": matrix(12, 2, nan_at=(0, 1))},
     ["shape", "x.npy", "y.npy", "--transforms", "w"], 1, "y.npy: row 0, column 1 is NaN"),
]

# controls: the builders make files the commands accept, so the refusals above
# come from the one thing each case breaks
CONTROLS = [
    ("control_npy_inspect", {"a.npy": GOOD}, INSPECT, 0, ["float64", "(6,)"]),
    ("control_npz_inspect", {"e.npz": zip_bytes([("x.npy", X), ("y.npy", Y)])}, ["inspect", "e.npz"], 0,
     ["x", "(12, 3)"]),
    ("control_cka", {"x.npy": X, "y.npy": Y}, ["cka", "x.npy", "y.npy"], 0, "0."),
    ("control_probe", {"x.npy": X, "y.npy": LAB}, PROBE[:-4], 0, "top1"),
    ("control_knn", {"x.npy": X, "y.npy": Y}, ["knn", "x.npy", "y.npy", "--k", "3"], 0, "mutual_knn"),
    ("control_rsa", {"x.npy": X, "y.npy": Y, "l.npy": LAB}, ["rsa", "x.npy", "y.npy", "--method", "all"], 0,
     "kendall_tau_a"),
    ("control_shape", {"x.npy": X, "y.npy": Y}, ["shape", "x.npy", "y.npy", "--permutation"], 0, "permutation"),
]


def cases():
    out = [Case(*row) for row in TABLE]
    out[[c.name for c in out].index("npz_member_absolute")].canaries = [ABSOLUTE, ABSOLUTE + ".npy"]
    out += [Case(*row, control=True) for row in CONTROLS]
    return out


if __name__ == "__main__":
    run_cases(cases(), "arrays")
