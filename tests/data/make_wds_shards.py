#!/usr/bin/env python3
"""WebDataset test shards with PNGs written by an independent encoder (zlib and
struct only: every colour type, bit depths 1-16, palettes with tRNS, all five
row filters, Adam7 interlacing), .cls labels and .npy inputs, as .tar, .tar.gz
and .tar.zst. The expected decoded values (float32, C x H x W in [0, 1]) come
from the source integers, not from any decoder.

As a module: png_bytes(), expected(), write_shards(). As a program:
    make_wds_shards.py OUT_DIR [--count N] [--shards K] [--size S] [--kind KIND]
writes OUT_DIR/shard-000000.tar ... (used by the throughput benchmark).
"""
import argparse
import io
import os
import shutil
import struct
import subprocess
import tarfile
import zlib

import numpy as np

# kind: (colour type, bit depth, channels of the decoded image)
KINDS = {
    "gray1": (0, 1, 1), "gray2": (0, 2, 1), "gray4": (0, 4, 1), "gray8": (0, 8, 1), "gray16": (0, 16, 1),
    "ga8": (4, 8, 2), "ga16": (4, 16, 2),
    "rgb8": (2, 8, 3), "rgb16": (2, 16, 3),
    "rgba8": (6, 8, 4), "rgba16": (6, 16, 4),
    "pal1": (3, 1, 3), "pal4": (3, 4, 3), "pal8": (3, 8, 3), "pal8trns": (3, 8, 4),
}

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _pack_row(samples, depth):
    """One row of samples (1-D ints, channels interleaved) as PNG bytes."""
    if depth == 16:
        return np.asarray(samples, dtype=">u2").tobytes()
    if depth == 8:
        return np.asarray(samples, dtype=np.uint8).tobytes()
    per = 8 // depth
    out = bytearray()
    for k in range(0, len(samples), per):
        byte = 0
        group = samples[k:k + per]
        for j in range(per):
            v = int(group[j]) if j < len(group) else 0
            byte |= v << (8 - depth * (j + 1))
        out.append(byte)
    return bytes(out)


def _filter(row, prev, ftype, bpp):
    """PNG filter `ftype` (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) of a raw row.
    Encoding predicts from unfiltered bytes only, so it vectorises."""
    x = np.frombuffer(row, dtype=np.uint8).astype(np.int32)
    b = np.frombuffer(prev, dtype=np.uint8).astype(np.int32) if prev is not None else np.zeros_like(x)
    a = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])[:len(x)]
    c = np.concatenate([np.zeros(bpp, np.int32), b[:-bpp]])[:len(x)]
    if ftype == 0:
        pred = np.zeros_like(x)
    elif ftype == 1:
        pred = a
    elif ftype == 2:
        pred = b
    elif ftype == 3:
        pred = (a + b) // 2
    else:
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    return bytes([ftype]) + ((x - pred) & 0xFF).astype(np.uint8).tobytes()


def png_bytes(pix, color_type, depth, palette=None, trns=None, interlace=False, filters=(0, 1, 2, 3, 4),
              idat_pieces=1):
    """Encode pix (H x W x channels stored, ints; palette indices for type 3)."""
    pix = np.asarray(pix)
    if pix.ndim == 2:
        pix = pix[:, :, None]
    h, w, ch = pix.shape
    bpp = max(1, ch * depth // 8)
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    k = 0
    for x0, y0, dx, dy in passes:
        sub = pix[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        prev = None
        for r in sub:
            row = _pack_row(r.reshape(-1), depth)
            raw += _filter(row, prev, filters[k % len(filters)], bpp)
            k += 1
            prev = row
    z = zlib.compress(bytes(raw), 9)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0,
                                                           1 if interlace else 0))
    if palette is not None:
        out += _chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        out += _chunk(b"tRNS", bytes(np.asarray(trns, dtype=np.uint8).reshape(-1)))
    step = max(1, -(-len(z) // idat_pieces))
    for i in range(0, len(z), step):
        out += _chunk(b"IDAT", z[i:i + step])
    return out + _chunk(b"IEND", b"")


def random_image(rng, kind, h, w):
    """(png bytes, expected float32 C x H x W) for one random image of `kind`."""
    ct, depth, _ = KINDS[kind]
    maxv = (1 << depth) - 1
    if ct == 3:
        npal = min(1 << depth, 200)
        palette = rng.integers(0, 256, size=(npal, 3))
        trns = rng.integers(0, 256, size=npal // 2) if kind.endswith("trns") else None
        idx = rng.integers(0, npal, size=(h, w))
        data = png_bytes(idx, ct, depth, palette=palette, trns=trns, interlace=bool(rng.integers(0, 2)))
        rgb = palette[idx].astype(np.float32) / np.float32(255)
        planes = [rgb[:, :, c] for c in range(3)]
        if trns is not None:
            alpha = np.full(npal, 255)
            alpha[:len(trns)] = trns
            planes.append(alpha[idx].astype(np.float32) / np.float32(255))
        return data, np.stack(planes).astype(np.float32)
    stored = {0: 1, 2: 3, 4: 2, 6: 4}[ct]
    pix = rng.integers(0, maxv + 1, size=(h, w, stored))
    data = png_bytes(pix, ct, depth, interlace=bool(rng.integers(0, 2)))
    return data, expected(pix, depth)


def expected(pix, depth):
    """Decoded float32 C x H x W of stored samples pix (H x W x C)."""
    pix = np.asarray(pix)
    if pix.ndim == 2:
        pix = pix[:, :, None]
    if depth == 16:
        v = pix.astype(np.float32) / np.float32(65535)
    else:
        # 1/2/4-bit gray is widened to 8 bits by bit replication: v * 255 / (2^d - 1)
        v = (pix * (255 // ((1 << depth) - 1))).astype(np.float32) / np.float32(255)
    return np.ascontiguousarray(np.transpose(v, (2, 0, 1)))


def _tar_add(tf, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tf.addfile(info, io.BytesIO(data))


def write_tar(path, members, compression=None):
    """members: list of (name, bytes), written in order. compression: None, 'gz', 'zst'.
    Returns the path written, or None when zstd is unavailable."""
    if compression == "zst":
        plain = path + ".tmp"
        write_tar(plain, members)
        zstd = shutil.which("zstd")
        if not zstd:
            os.unlink(plain)
            return None
        subprocess.run([zstd, "-q", "-f", "-19", plain, "-o", path], check=True)
        os.unlink(plain)
        return path
    with tarfile.open(path, "w:gz" if compression == "gz" else "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            _tar_add(tf, name, data)
    return path


def npy_bytes(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr)
    return buf.getvalue()


def write_shards(out_dir, kind, counts, h, w, seed, compression=None, classes=10, prefix="train"):
    """Shards of PNG samples (+ .cls, + an ignored .json); returns (paths, x, y)
    with x the expected float32 (N x C x H x W) and y the labels."""
    rng = np.random.default_rng(seed)
    paths, xs, ys = [], [], []
    ext = {None: ".tar", "gz": ".tar.gz", "zst": ".tar.zst"}[compression]
    k = 0
    for s, n in enumerate(counts):
        members = []
        for _ in range(n):
            data, x = random_image(rng, kind, h, w)
            label = int(rng.integers(0, classes))
            key = f"{prefix}/{k:06d}"
            members.append((key + ".png", data))
            members.append((key + ".cls", f"{label}\n".encode()))
            members.append((key + ".json", b'{"source": "synthetic"}'))
            xs.append(x)
            ys.append(label)
            k += 1
        p = write_tar(os.path.join(out_dir, f"{kind}-{s:06d}{ext}"), members, compression)
        if p is None:
            return None, None, None
        paths.append(p)
    return paths, np.stack(xs), np.array(ys, dtype=np.int32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--count", type=int, default=10000, help="samples in total")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--size", type=int, default=32, help="image side")
    ap.add_argument("--kind", default="rgb8", choices=sorted(KINDS))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    counts = [a.count // a.shards + (1 if s < a.count % a.shards else 0) for s in range(a.shards)]
    paths, _, _ = write_shards(a.out_dir, a.kind, counts, a.size, a.size, a.seed)
    for p in paths:
        print(p)


if __name__ == "__main__":
    main()
