"""Bad-input catalogue, datasets: malformed IDX, CIFAR, .npy-pair and WebDataset
(tar + PNG) datasets through `repeval run` on a small MLP (the `mlp` preset with
a safetensors checkpoint built here): wrong magic and types, lying and huge
dimensions, truncation, gzip bombs, labels out of range, symlinks, hard links,
devices and traversal names in tar shards, corrupt PNGs, NaN inputs. Every case
is a job that would write `out/`: the previous result there must stay
byte-identical and nothing else may appear (see badinput.py)."""
import gzip
import os
import struct
import tarfile
import tempfile

from badinput import (CANARY, Case, cifar, idx, job_yaml, mlp_checkpoint, npy, png, run_cases, tar_bytes,
                      tar_patch_size, wds)

N = 8
RUN = ["run", "job.yaml", "--quiet"]
ABS = os.path.join(tempfile.gettempdir(), f"{CANARY}-wds_member_absolute")


def idx_case(images=None, labels=None, dims=(N, 4, 4)):
    images = idx(dims) if images is None else images
    labels = idx((N,), bytes(k % 3 for k in range(N))) if labels is None else labels
    return {"img.idx": images, "lab.idx": labels, "ck.safetensors": mlp_checkpoint(dims[1] * dims[2]),
            "job.yaml": job_yaml("  d: {format: idx, images: img.idx, labels: lab.idx}")}


def cifar_case(data, fmt="cifar"):
    return {"b.bin": data, "ck.safetensors": mlp_checkpoint(3072),
            "job.yaml": job_yaml(f"  d: {{format: {fmt}, files: [b.bin]}}")}


def npy_case(inputs, labels=None, d=16):
    labels = npy([k % 3 for k in range(N)], descr="<i8") if labels is None else labels
    return {"x.npy": inputs, "y.npy": labels, "ck.safetensors": mlp_checkpoint(d),
            "job.yaml": job_yaml("  d: {format: npy, inputs: x.npy, labels: y.npy}")}


def images(n=N):
    return [(f"s{k:03d}", png(), k % 3) for k in range(n)]


def wds_case(shard, d=16):
    return {"s.tar": shard, "ck.safetensors": mlp_checkpoint(d),
            "job.yaml": job_yaml("  d: {format: webdataset, shards: [s.tar]}")}


def wds_members(extra, at=1):
    """The good shard's members with `extra` inserted after member `at`."""
    members = []
    for key, img, lab in images():
        members += [(f"{key}.png", img), (f"{key}.cls", str(lab).encode())]
    return tar_bytes(members[:at] + extra + members[at:])


def gzip_bomb():
    """Header (8, 4, 4) but 32 MiB of pixel bytes inside the gzip stream."""
    raw = bytes([0, 0, 8, 3]) + struct.pack(">III", N, 4, 4) + b"\0" * (32 << 20)
    return gzip.compress(raw, compresslevel=9, mtime=0)


F32 = [0.01 * k for k in range(N * 16)]

TABLE = [
    # IDX
    ("idx_bad_magic", idx_case(images=idx((N, 4, 4), magic=bytes([1, 2, 8, 3]))), RUN, 1,
     "img.idx: not an IDX file: magic bytes at offset 0 are 01 02, expected 00 00"),
    ("idx_unknown_type", idx_case(images=idx((N, 4, 4), code=0x07)), RUN, 1,
     "img.idx: unknown IDX element type 0x07 at offset 2"),
    ("idx_images_not_u8", idx_case(images=idx((N, 4, 4), code=0x0D, data=b"\0" * (N * 64))), RUN, 1,
     "img.idx: IDX images of element type float32 (0x0d) are not supported"),
    ("idx_images_two_dims", idx_case(images=idx((N, 16))), RUN, 1,
     "img.idx: IDX images must have 3 dimensions (N, H, W), the header at offset 3 declares 2"),
    ("idx_truncated", idx_case(images=idx((N, 4, 4))[:-5]), RUN, 1,
     "img.idx: IDX data truncated: the header declares 128 bytes of unsigned byte after the 16-byte header, "
     "the file has 123"),
    ("idx_trailing_bytes", idx_case(images=idx((N, 4, 4)) + b"\0\0"), RUN, 1,
     "img.idx: 2 bytes after the IDX data (the header declares 128)"),
    ("idx_huge_dimensions", idx_case(images=idx((1 << 31, 1 << 31, 1 << 31), data=b"\0" * 64)), RUN, 1,
     "img.idx: IDX dimensions overflow 64 bits"),
    ("idx_zero_height", idx_case(images=idx((N, 0, 4), data=b"")), RUN, 1,
     "img.idx: IDX images of 0 x 4 pixels"),
    ("idx_label_count_mismatch", idx_case(labels=idx((N - 1,), bytes(N - 1))), RUN, 1,
     "lab.idx: 7 labels, but img.idx has 8 images"),
    ("idx_labels_two_dims", idx_case(labels=idx((N, 1), bytes(N))), RUN, 1,
     "lab.idx: IDX labels must have 1 dimension (N), the header at offset 3 declares 2"),
    ("idx_negative_i32_label", idx_case(labels=idx((N,), struct.pack(">8i", 0, 1, 2, -5, 0, 1, 2, 0), code=0x0C)),
     RUN, 1, "lab.idx: label -5 of sample 3 (offset 20) is negative"),
    ("idx_gzip_truncated", idx_case(images=idx((N, 4, 4), gz=True)[:40]), RUN, 1,
     "img.idx: unreadable gzip stream: truncated gzip input"),
    ("idx_gzip_bomb", idx_case(images=gzip_bomb()), RUN, 1,
     "img.idx: decompressed IDX data exceed the 144 bytes its header declares"),
    # CIFAR binary batches
    ("cifar_size_not_multiple", cifar_case(cifar([1, 2]) + b"\0" * 5), RUN, 1,
     "b.bin: size 6151 is not a multiple of the record size 3073 (CIFAR-10: 1 label byte + 3072 pixels); 5 bytes "
     "left over"),
    # an empty batch file is allowed beside others; alone it leaves no sample
    ("cifar_empty_file", cifar_case(b""), RUN, 1,
     "job.yaml:3:6: dataset 'd': offset 0 leaves no sample of 0"),
    ("cifar_label_out_of_range", cifar_case(cifar([1, 2, 10, 3])), RUN, 1,
     "b.bin: record 2 (offset 6146): the label 10 out of range (CIFAR-10 has 10 classes)"),
    ("cifar100_coarse_out_of_range", cifar_case(cifar([(1, 5), (20, 7)], label_bytes=2), "cifar100"), RUN, 1,
     "b.bin: record 1 (offset 3074): coarse label 20 out of range (CIFAR-100 has 20 coarse classes)"),
    ("cifar10_read_as_cifar100", cifar_case(cifar([1, 2, 3]), "cifar100"), RUN, 1,
     "b.bin: size 9219 is not a multiple of the record size 3074 (CIFAR-100: 2 label bytes + 3072 pixels)"),
    # .npy pairs
    ("npy_inputs_0d", npy_case(npy([1.0], shape=())), RUN, 1,
     "x.npy: inputs must have a sample dimension (N x ...), found a 0-d array"),
    ("npy_inputs_empty_samples", npy_case(npy([], shape=(N, 0))), RUN, 1,
     "x.npy: inputs have empty samples (a trailing dimension is 0)"),
    ("npy_labels_float", npy_case(npy(F32, descr="<f4", shape=(N, 16)), npy([0.0] * N)), RUN, 1,
     "y.npy: labels must have an integer dtype, found float64"),
    ("npy_labels_count", npy_case(npy(F32, descr="<f4", shape=(N, 16)), npy([0] * (N + 1), descr="<i8")), RUN, 1,
     "y.npy: 9 labels, but x.npy has 8 samples"),
    ("npy_labels_negative", npy_case(npy(F32, descr="<f4", shape=(N, 16)), npy([0, 1, -1, 0, 1, 2, 0, 1],
                                                                                descr="<i8")), RUN, 1,
     "y.npy: label -1 of sample 2 is out of range (0 .. 2147483647)"),
    ("npy_inputs_nan", npy_case(npy(F32[:20] + [float("nan")] + F32[21:], descr="<f4", shape=(N, 16))), RUN, 1,
     "x.npy: sample 1, value 4 of 16 is NaN (inputs must be finite)"),
    ("npy_inputs_inf", npy_case(npy(F32[:3] + [float("inf")] + F32[4:], descr="<f4", shape=(N, 16))), RUN, 1,
     "x.npy: sample 0, value 3 of 16 is infinite (inputs must be finite)"),
    # WebDataset shards: links, devices and names from the archive are never followed or used as paths
    ("wds_symlink_member", wds_case(wds_members([("s000.x.png", tarfile.SYMTYPE, "/etc/passwd")])), RUN, 1,
     "s.tar: member 's000.x.png' is a symbolic link (to '/etc/passwd'); only regular files are accepted"),
    ("wds_hardlink_member", wds_case(wds_members([("s000.x.png", tarfile.LNKTYPE, "s000.png")])), RUN, 1,
     "s.tar: member 's000.x.png' is a hard link (to 's000.png'); links are refused"),
    ("wds_char_device_member", wds_case(wds_members([("s000.dev", tarfile.CHRTYPE, "")])), RUN, 1,
     "s.tar: member 's000.dev' is a character device; only regular files are accepted"),
    ("wds_fifo_member", wds_case(wds_members([("s000.fifo", tarfile.FIFOTYPE, "")])), RUN, 1,
     "s.tar: member 's000.fifo' is a FIFO; only regular files are accepted"),
    ("wds_png_bad_crc", wds_case(wds([("a", png(crc_ok=False), 0)] + images())), RUN, 1,
     "s.tar: a.png: undecodable PNG: IDAT: CRC error"),
    ("wds_png_truncated", wds_case(wds(images(3) + [("z", png()[:40], 0)])), RUN, 1,
     "s.tar: z.png: undecodable PNG: unexpected end of data (truncated PNG)"),
    ("wds_png_huge_dimensions", wds_case(wds([("a", png(width=65535, height=65535, rows=b"\0" * 64), 0)] +
                                             images())), RUN, 1,
     "s.tar: member 's000.png': geometry mismatch: 1 x 4 x 4, the first sample is 1 x 65535 x 65535"),
    ("wds_png_not_png", wds_case(wds([("a", b"GIF89a" + b"\0" * 40, 0)] + images())), RUN, 1,
     "s.tar: a.png: not a PNG image (bad signature in the first 8 bytes)"),
    ("wds_label_not_integer", wds_case(wds(images(2) + [("z", png(), "cat")])), RUN, 1,
     's.tar: member \'z.cls\': label "cat" is not a non-negative decimal integer'),
    ("wds_label_too_long", wds_case(wds(images(2) + [("z", png(), "1" * 300)])), RUN, 1,
     "s.tar: member 'z.cls': a label of 300 bytes (at most 256)"),
    ("wds_label_beyond_int32", wds_case(wds(images(2) + [("z", png(), "99999999999")])), RUN, 1,
     's.tar: member \'z.cls\': label "99999999999" exceeds 2147483647'),
    ("wds_missing_label", wds_case(wds(images(2) + [("z", png(), None)])), RUN, 1,
     "s.tar: sample 'z' has no '.cls' label member"),
    ("wds_duplicate_extension", wds_case(wds_members([("s000.png", png())])), RUN, 1,
     "s.tar: member 's000.png': sample 's000' already has a '.png' member"),
    ("wds_geometry_changes", wds_case(wds(images(2) + [("z", png(width=5, height=5), 0)])), RUN, 1,
     "s.tar: member 'z.png': geometry mismatch: 1 x 5 x 5, the first sample is 1 x 4 x 4"),
    ("wds_member_declares_huge_size", wds_case(tar_patch_size(wds(images()), 2, 1 << 33)), RUN, 1,
     "s.tar: member 's001.png' declares 8589934592 bytes (the limit is 1 GiB)"),
    ("wds_truncated_tar", wds_case(wds(images())[:1500]), RUN, 1,
     "s.tar: corrupt tar after member of sample 's000': Truncated tar archive"),
    ("wds_not_a_tar", wds_case(b"\x89PNG" + b"\0" * 1020), RUN, 1,
     "s.tar: not a readable tar shard (.tar, .tar.gz, .tar.zst)"),
]

# A traversal name in a shard is only a sample key: the run succeeds, writes its
# result into out/ and nothing anywhere else (these are controls: out/ may change).
CONTROLS = [
    ("control_idx", idx_case(), RUN, 0, ""),
    ("control_cifar", cifar_case(cifar([k % 10 for k in range(N)])), RUN, 0, ""),
    ("control_npy_pair", npy_case(npy(F32, descr="<f4", shape=(N, 16))), RUN, 0, ""),
    ("control_wds", wds_case(wds(images())), RUN, 0, ""),
    ("wds_member_traversal", wds_case(wds([(f"../../../{CANARY}", png(), 0)] + images())), RUN, 0, ""),
    ("wds_member_absolute", wds_case(wds([(ABS, png(), 1)] + images())), RUN, 0, ""),
]


def npy_shard(bad):
    """A shard of .npy inputs (4 x 4 float32), sample s2 with a NaN or Inf value."""
    members = []
    for k in range(N):
        v = [0.5] * 15 + [bad if k == 2 else 0.0]
        members += [(f"s{k}.npy", npy(v, descr="<f4", shape=(4, 4))), (f"s{k}.cls", b"1")]
    return {"s.tar": tar_bytes(members)}


# .npy members in shards are not reachable from a job file (PNG only): the library
# is driven by its test tool
DATASET_TOOL = os.environ.get("REPEVAL_DATASET_TOOL", "dataset_tool")
TOOL_CASES = [
    ("wds_npy_member_nan", npy_shard(float("nan")), ["--out", "x", "wds", "--ext", "npy", "s.tar"], 1,
     "s.tar: member 's2.npy': value 15 of 16 is NaN (inputs must be finite)"),
    ("wds_npy_member_inf", npy_shard(float("-inf")), ["--out", "x", "wds", "--ext", "npy", "s.tar"], 1,
     "s.tar: member 's2.npy': value 15 of 16 is infinite (inputs must be finite)"),
]


def cases():
    out = [Case(*row) for row in TABLE] + [Case(*row, control=True) for row in CONTROLS]
    out += [Case(*row, program=DATASET_TOOL) for row in TOOL_CASES]
    for c in out:
        if c.name == "wds_member_absolute":
            c.canaries += [ABS, ABS + ".png", ABS + ".cls"]
    return out


if __name__ == "__main__":
    run_cases(cases(), "datasets")
