#!/usr/bin/env python3
"""Seed corpora for the text and token fuzz targets (fuzz_jsonl, fuzz_tokens):
small valid inputs of each kind, plus near-misses, prefixed by the control byte
each target reads first. Writes tests/fuzz/corpus/<target>/ (deterministic;
rerun after changing a format)."""
import io
import os
import struct
import tarfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def save(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def npy(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def tar(members):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return b.getvalue()


def main():
    jsonl = ('{"text": "the other thing", "label": 1}\n\n{"label": 0, "text": "caf\\u00e9 \\ud83e\\udd16"}\r\n'
             '{"text": "", "label": 2}\n{"text": "  x  ", "label": "2"}\n').encode()
    for flags in (0x00, 0x08, 0x18, 0x41, 0x49, 0xE0):
        save("jsonl", f"jsonl-{flags:02x}", bytes([flags]) + jsonl)
    save("jsonl", "jsonl-bad-utf8", b"\x00" + b'{"text": "a\xff"}\n')
    save("jsonl", "jsonl-not-object", b"\x00" + b'["text"]\n{"text": 1}\n')
    save("jsonl", "jsonl-labels", b"\x00" + b'{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    text = "first line\r\nsecond there\n\n  \nthird \xe4\xb8\xad\n".encode()
    for flags in (0x02, 0x0A, 0x13, 0x2B):
        save("jsonl", f"text-{flags:02x}", bytes([flags]) + text)
    fortunes = b"A fortune\n  of two lines.\n%\n%\nAnother one\n%\nLast, no separator\n"
    save("jsonl", "fortunes", b"\x04" + fortunes)
    save("jsonl", "fortunes-special", b"\x2c" + fortunes)
    shard = tar([("a.txt", b"the thing"), ("a.cls", b"1"), ("b.txt", b" "), ("b.cls", b"0"),
                 ("c.txt", "d\u00e9j\u00e0 vu".encode()), ("c.cls", b"3")])
    save("jsonl", "wds", b"\x05" + shard)
    save("jsonl", "wds-nolabel", b"\x0e" + tar([("a.txt", b"the other"), ("b.txt", b"th th th er")]))

    def triple(ids, mask, labels):
        parts = [npy(ids), npy(mask) if mask is not None else b"", npy(labels) if labels is not None else b""]
        return b"".join(struct.pack("<H", len(p)) + p for p in parts[:2]) + parts[2]

    ids = np.arange(12, dtype=np.int64).reshape(3, 4) * 7 % 50
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1]], np.uint8)
    save("tokens", "triple", b"\x00" + triple(ids, mask, np.array([0, 2, 1], np.int32)))
    save("tokens", "triple-vocab", b"\x08" + triple(ids.astype(np.uint16), mask.astype(bool), None))
    save("tokens", "triple-fortran", b"\x00" + triple(np.asfortranarray(ids.astype(np.int32)), None, None))
    save("tokens", "triple-bad-mask", b"\x00" + triple(ids, np.array([[1, 0, 1, 1]] * 3, np.uint8), None))
    save("tokens", "triple-bad-labels", b"\x00" + triple(ids, None, np.array([0, 1], np.int64)))
    stream = np.arange(40, dtype="<u2") * 13
    save("tokens", "bin16", bytes([0x31]) + stream.tobytes())
    save("tokens", "bin32-vocab", bytes([0x2B]) + stream.astype("<u4").tobytes())
    save("tokens", "bin-odd", bytes([0x01]) + stream.tobytes()[:-1])
    save("tokens", "stream-npy", bytes([0x45]) + npy(stream.astype(np.int64)))
    save("tokens", "stream-npy-2d", bytes([0x05]) + npy(ids))


if __name__ == "__main__":
    main()
