#!/usr/bin/env python3
"""Seed corpora for the dataset fuzz targets (fuzz_idx, fuzz_cifar, fuzz_wds,
fuzz_png): small valid inputs of every kind each target accepts, plus a few
near-misses, prefixed by the control byte each target reads first. Writes
tests/fuzz/corpus/<target>/ (deterministic; rerun after changing a format)."""
import gzip
import io
import os
import struct
import sys
import tarfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "data"))
import make_wds_shards as mk  # noqa: E402


def save(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def idx(type_code, dims, data):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", v) for v in dims) + data


def idx_seed(with_labels, images, labels=b""):
    return bytes([1 if with_labels else 0]) + struct.pack("<H", len(images)) + images + labels


def tar_bytes(members, gz=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif kind == "sym":
                info.type = tarfile.SYMTYPE
                info.linkname = data
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    if gz:
        return raw
    used = -(-len(raw.rstrip(b"\0")) // 512) * 512  # drop tarfile's record padding, keep block alignment
    return raw[:used] + b"\0" * 1024


def main():
    rng = np.random.default_rng(0)
    # IDX
    img = idx(0x08, [3, 4, 3], bytes(rng.integers(0, 256, 36, dtype=np.uint8)))
    lab = idx(0x08, [3], bytes([1, 9, 4]))
    lab32 = idx(0x0C, [3], struct.pack(">iii", 7, 0, 70000))
    save("idx", "plain", idx_seed(True, img, lab))
    save("idx", "gzip", idx_seed(True, gzip.compress(img, mtime=0), gzip.compress(lab, mtime=0)))
    save("idx", "int32_labels", idx_seed(True, img, lab32))
    save("idx", "images_only", idx_seed(False, img))
    save("idx", "truncated", idx_seed(True, img[:-3], lab))
    save("idx", "count_mismatch", idx_seed(True, img, idx(0x08, [2], b"\1\2")))
    # CIFAR
    def records(n, lb):
        out = b""
        for r in range(n):
            labels = bytes([r % 10]) if lb == 1 else bytes([r % 20, (r * 7) % 100])
            out += labels + bytes(rng.integers(0, 256, 3072, dtype=np.uint8))
        return out
    save("cifar", "cifar10", b"\0" + records(2, 1))
    save("cifar", "cifar100_fine", b"\3" + records(2, 2))
    save("cifar", "cifar100_coarse", b"\1" + records(1, 2))
    save("cifar", "bad_size", b"\0" + records(1, 1)[:-7])
    # WebDataset
    def sample(key, kind, label, h=4, w=4):
        data, _ = mk.random_image(rng, kind, h, w)
        return [(key + ".png", data, "file"), (key + ".cls", f"{label}\n".encode(), "file")]
    gray = [("train", None, "dir")] + sample("train/a", "gray8", 1) + \
        [("train/a.json", b"{}", "file")] + sample("train/b", "gray8", 3)
    save("wds", "gray8", b"\0" + tar_bytes(gray))
    save("wds", "gray8_gz", b"\0" + tar_bytes(gray, gz=True))
    save("wds", "palette_trns", b"\0" + tar_bytes(sample("p/0", "pal8trns", 0) + sample("p/1", "pal8trns", 2)))
    save("wds", "rgb16_interlaced", b"\0" + tar_bytes(sample("x", "rgb16", 5, 5, 3) + sample("y", "rgb16", 6, 5, 3)))
    save("wds", "gray2_nolabel", b"\2" + tar_bytes(sample("k0", "gray2", 0) + sample("k1", "gray2", 0)))
    npys = [(f"n/{k}.npy", mk.npy_bytes(rng.normal(size=(2, 3)).astype(np.float32)), "file") for k in range(3)]
    save("wds", "npy_nolabel", b"\3" + tar_bytes(npys))
    u8 = []
    for k in range(2):
        u8 += [(f"{k}.npy", mk.npy_bytes(rng.integers(0, 256, (3, 2, 2)).astype(np.uint8)), "file"),
               (f"{k}.cls", b"4", "file")]
    save("wds", "npy_u8_labels", b"\1" + tar_bytes(u8))
    save("wds", "symlink", b"\0" + tar_bytes(sample("a", "gray8", 1) + [("b.png", "a.png", "sym")]))
    save("wds", "missing_label", b"\0" + tar_bytes(sample("a", "gray8", 1) + sample("b", "gray8", 1)[:1]))
    # PNG: every kind, with and without interlacing, CRCs ignored (0) or checked (1)
    for kind in sorted(mk.KINDS):
        ct, depth, _ = mk.KINDS[kind]
        for inter in (False, True):
            if ct == 3:
                npal = min(1 << depth, 16)
                pix = rng.integers(0, npal, size=(3, 5))
                trns = rng.integers(0, 256, npal // 2) if kind.endswith("trns") else None
                data = mk.png_bytes(pix, ct, depth, palette=rng.integers(0, 256, (npal, 3)), trns=trns,
                                    interlace=inter)
            else:
                stored = {0: 1, 2: 3, 4: 2, 6: 4}[ct]
                pix = rng.integers(0, 1 << depth, size=(3, 5, stored))
                data = mk.png_bytes(pix, ct, depth, interlace=inter, idat_pieces=2)
            save("png", f"{kind}{'_adam7' if inter else ''}", (b"\1" if inter else b"\0") + data)


if __name__ == "__main__":
    main()
