#!/usr/bin/env python3
"""Checkpoint fixtures for the safetensors and PyTorch readers, written with
PyTorch itself (torch.save) and with a small safetensors writer of our own.

usage: make_ckpt_fixtures.py OUTDIR            fixtures + OUTDIR/fixtures.json
       make_ckpt_fixtures.py --corpus DIR      small fuzz seeds into DIR/<target>/

fixtures.json lists, per fixture file, the options to open it with and the
expected tensors as "<name>": "<file>.npy" (float32 of the torch tensor, the
reference values), plus expected metadata. The reference tests compare these
with what the library reads.
"""
import collections
import io
import json
import os
import struct
import sys
import zipfile

import numpy as np
import torch
import torch.nn as nn

ST_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
             torch.uint8: "U8", torch.bool: "BOOL"}


def tensor_bytes(t):
    """Raw little-endian bytes of a tensor in C order (bf16 has no NumPy dtype)."""
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def safetensors_bytes(tensors, metadata=None, order=None):
    """A safetensors image: u64 header length, JSON header (entries in the order
    of `tensors`) padded with spaces to a multiple of 8, then the tensor bytes back
    to back in `order` (default: the same order)."""
    blobs, offsets, offset = [], {}, 0
    for name in order or list(tensors):
        b = tensor_bytes(tensors[name])
        offsets[name] = [offset, offset + len(b)]
        blobs.append(b)
        offset += len(b)
    header = {} if metadata is None else {"__metadata__": metadata}
    for name, t in tensors.items():
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": offsets[name]}
    js = json.dumps(header).encode()  # ensure_ascii: non-ASCII names become \u escapes
    js += b" " * ((8 - (8 + len(js)) % 8) % 8)
    return struct.pack("<Q", len(js)) + js + b"".join(blobs)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def ref_f32(t):
    """The reference float32 values of a tensor (PyTorch's own conversion)."""
    return t.detach().to(torch.float32).contiguous().numpy()


def models():
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3))
    seq.train()
    for _ in range(3):  # non-trivial running statistics and num_batches_tracked = 3
        seq[3](torch.randn(5, 3, 4, 4) * 2 + 1)
    return seq


def dtypes_dict():
    g = torch.Generator().manual_seed(1)
    h = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 6e-8, float("inf"), float("-inf"), float("nan")],
                     dtype=torch.float16)
    return collections.OrderedDict([
        ("half", h),
        ("bf16", (torch.randn(3, 5, generator=g) * 100).to(torch.bfloat16)),
        ("double", torch.randn(4, 2, generator=g, dtype=torch.float64) * 1e3 + 1e-9),
        ("i64", torch.tensor([-(2 ** 23), 0, 7, 2 ** 23], dtype=torch.int64)),
        ("i32", torch.arange(-3, 9, dtype=torch.int32).reshape(3, 4)),
        ("i16", torch.tensor([-32768, 32767, 5], dtype=torch.int16)),
        ("i8", torch.tensor([-128, 127, 0, -1], dtype=torch.int8)),
        ("u8", torch.tensor([0, 255, 17], dtype=torch.uint8)),
        ("flag", torch.tensor([True, False, True])),
        ("one", torch.tensor([9], dtype=torch.uint8)),  # leaves "scalar" unaligned in safetensors
        ("scalar", torch.tensor(3.25)),
        ("empty", torch.zeros(0, 4)),
    ])


def views_dict():
    g = torch.Generator().manual_seed(2)
    base = torch.randn(5, 6, generator=g)
    flat = base.view(30)
    return collections.OrderedDict([
        ("base", base),
        ("transposed", base.t()),             # non-contiguous, same storage
        ("block", base[1:4, 2:5]),            # storage offset + strides
        ("row", base[2]),
        ("window", flat[3:9]),                # shares the storage of "base"
        ("broadcast", base[0:1].expand(4, 6)),  # stride 0
        ("every_other", flat[::2]),
    ])


def fixtures(out):
    os.makedirs(out, exist_ok=True)
    spec = {}

    def expect(file, tensors, metadata=None, options=None, in_map=True, order=None):
        ref = {}
        k = len(spec.get(file, []))
        for i, (name, t) in enumerate(tensors.items()):
            fn = f"{file}.ref{k}_{i}.npy"
            np.save(os.path.join(out, fn), ref_f32(t))
            ref[name] = {"file": fn, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                         "contiguous": t.is_contiguous()}
        spec.setdefault(file, []).append({"options": options or [], "tensors": ref,
                                          "order": order or list(tensors), "metadata": metadata or {},
                                          "in_map": in_map})

    seq = models()
    sd = seq.state_dict()
    torch.save(sd, os.path.join(out, "seq.pt"))
    expect("seq.pt", sd)
    write(os.path.join(out, "seq.safetensors"), safetensors_bytes(sd, {"format": "pt", "source": "seq"}))
    expect("seq.safetensors", sd, {"format": "pt", "source": "seq"})

    # the same state_dict with pickle protocol 4 (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL)
    torch.save(sd, os.path.join(out, "proto4.pt"), pickle_protocol=4)
    expect("proto4.pt", sd)

    dt = dtypes_dict()
    torch.save(dt, os.path.join(out, "dtypes.pt"))
    expect("dtypes.pt", dt)
    write(os.path.join(out, "dtypes.safetensors"), safetensors_bytes(dt))
    expect("dtypes.safetensors", dt)

    vw = views_dict()
    torch.save(vw, os.path.join(out, "views.pt"))
    expect("views.pt", vw)
    # safetensors has no views: the same values, stored contiguously, data in reverse name order
    contig = collections.OrderedDict((k, v.contiguous()) for k, v in vw.items())
    write(os.path.join(out, "views.safetensors"), safetensors_bytes(contig, order=sorted(contig, reverse=True)))
    expect("views.safetensors", contig)

    # a training checkpoint: state_dict under "model", scalars and an optimizer beside it
    opt = torch.optim.SGD(seq.parameters(), lr=0.1, momentum=0.9)
    loss = seq[0](torch.randn(2, 4)).sum()
    loss.backward()
    opt.step()
    sd2 = seq.state_dict()
    meta = {"epoch": "3", "lr": "0.1", "arch": "seq", "best": "True"}
    torch.save({"epoch": 3, "model": sd2, "optimizer": opt.state_dict(), "lr": 0.1, "arch": "seq", "best": True},
               os.path.join(out, "nested.pt"))
    expect("nested.pt", sd2, meta)
    expect("nested.pt", sd2, meta, options=["--state-dict-key", "model"])

    # "state_dict" is preferred over an earlier EMA copy
    ema = collections.OrderedDict((k, v * 0.5 if v.is_floating_point() else v) for k, v in sd.items())
    torch.save({"ema": ema, "state_dict": sd, "step": 10}, os.path.join(out, "prefer.pt"))
    expect("prefer.pt", sd, {"step": "10"})
    expect("prefer.pt", ema, {"step": "10"}, options=["--state-dict-key", "ema"])

    # nn.DataParallel prefixes every name with "module."
    dp = nn.DataParallel(seq).state_dict()
    torch.save(dp, os.path.join(out, "dp.pt"))
    expect("dp.pt", collections.OrderedDict((k[len("module."):], v) for k, v in dp.items()))
    expect("dp.pt", dp, options=["--keep-module-prefix"])

    # parameters (torch._utils._rebuild_parameter) and a bare tensor
    params = collections.OrderedDict((n, p) for n, p in seq.named_parameters())
    torch.save(params, os.path.join(out, "params.pt"))
    expect("params.pt", params)
    lone = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
    torch.save(lone, os.path.join(out, "lone.pt"))
    expect("lone.pt", {"lone": lone})

    # deflated members (not what torch writes): read through libarchive into owned buffers
    with zipfile.ZipFile(os.path.join(out, "seq.pt")) as zin, \
            zipfile.ZipFile(os.path.join(out, "deflated.pt"), "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    expect("deflated.pt", sd, in_map=False)

    # big-endian storages announced by a byteorder member (float32-only state_dict)
    lin = nn.Linear(3, 2).state_dict()
    torch.save(lin, os.path.join(out, "lin.pt"))
    expect("lin.pt", lin)
    with zipfile.ZipFile(os.path.join(out, "lin.pt")) as zin, \
            zipfile.ZipFile(os.path.join(out, "bigendian.pt"), "w", zipfile.ZIP_STORED) as zout:
        prefix = zin.namelist()[0].split("/")[0]
        for info in zin.infolist():
            data = zin.read(info.filename)
            if "/data/" in info.filename:
                data = np.frombuffer(data, dtype="<f4").astype(">f4").tobytes()
            zout.writestr(info.filename, data)
        zout.writestr(prefix + "/byteorder", "big")
    expect("bigendian.pt", lin)

    # unicode names (escaped \uXXXX in the JSON, one needing a surrogate pair)
    uni = collections.OrderedDict([("caf\u00e9.w", torch.ones(2)), ("emoji\U0001F600", torch.zeros(1, 1))])
    write(os.path.join(out, "unicode.safetensors"), safetensors_bytes(uni, {"n\u00f6te": "\u2603"}))
    expect("unicode.safetensors", uni, {"n\u00f6te": "\u2603"})

    with open(os.path.join(out, "fixtures.json"), "w") as f:
        json.dump(spec, f, indent=1)

    # files that must be refused
    torch.save(sd, os.path.join(out, "legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save(seq, os.path.join(out, "whole_module.pt"))  # pickles torch.nn classes
    write_malicious(out)


def evil_zip(path, pkl):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", pkl)
        z.writestr("evil/version", "3\n")


def write_malicious(out):
    marker = os.path.join(out, "PWNED")
    cmd = ("touch " + marker).encode()
    # protocol 2: GLOBAL 'os system', the command as a 1-tuple, REDUCE
    p2 = b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(cmd)) + cmd + b"\x85R."
    evil_zip(os.path.join(out, "evil_global.pt"), p2)
    # protocol 4: STACK_GLOBAL builtins.exec
    code = ("open(%r, 'w').close()" % marker).encode()
    p4 = (b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93X" + struct.pack("<I", len(code)) + code + b"\x85R.")
    evil_zip(os.path.join(out, "evil_stack_global.pt"), p4)
    # INST opcode (protocol 0): calls a named class or function with the items since MARK
    p0 = b"(X" + struct.pack("<I", len(cmd)) + cmd + b"ios\nsystem\n."
    evil_zip(os.path.join(out, "evil_inst.pt"), p0)
    # a state_dict whose OrderedDict hides a call to posix.system in a tensor's hooks
    pk = pickle_with_evil_hook(cmd)
    evil_zip(os.path.join(out, "evil_hook.pt"), pk)


def pickle_with_evil_hook(cmd):
    return (b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00w"
            b"ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
            b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQK\x00K\x01\x85K\x01\x85\x89"
            b"cposix\nsystem\nX" + struct.pack("<I", len(cmd)) + cmd + b"\x85Rtu.")


def corpus(out):
    """Small seeds for the fuzz targets (each a few hundred bytes to a few KB)."""
    for t in ("safetensors", "pickle", "torchzip"):
        os.makedirs(os.path.join(out, t), exist_ok=True)
    torch.manual_seed(3)
    small = collections.OrderedDict([("w", torch.randn(2, 3)), ("b", torch.randn(3).to(torch.float16)),
                                     ("n", torch.tensor(5))])
    write(os.path.join(out, "safetensors", "small"), safetensors_bytes(small, {"k": "v"}))
    write(os.path.join(out, "safetensors", "dtypes"), safetensors_bytes(dtypes_dict()))
    write(os.path.join(out, "safetensors", "empty"), safetensors_bytes({}))
    write(os.path.join(out, "safetensors", "unicode"),
          safetensors_bytes({"\u00e9\U0001F600": torch.ones(1, dtype=torch.bfloat16)}, {"\u2603": "x\ty"}))
    vw = views_dict()
    seeds = {"small": small, "views": vw, "dtypes": dtypes_dict(),
             "nested": {"model": small, "epoch": 1, "lr": 0.5, "tag": "x", "flags": [True, None, (1, 2)]},
             "lone": torch.ones(2, 2)}
    for name, obj in seeds.items():
        for proto in (2, 4):
            b = io.BytesIO()
            torch.save(obj, b, pickle_protocol=proto)
            raw = b.getvalue()
            write(os.path.join(out, "torchzip", f"{name}_p{proto}"), raw)
            with zipfile.ZipFile(io.BytesIO(raw)) as z:
                pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
                write(os.path.join(out, "pickle", f"{name}_p{proto}"), z.read(pkl))
    write(os.path.join(out, "pickle", "evil_hook"), pickle_with_evil_hook(b"true"))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--corpus":
        corpus(sys.argv[2])
    elif len(sys.argv) == 2:
        fixtures(sys.argv[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
