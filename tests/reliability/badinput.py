"""The bad-input catalogue: builders for every input format (bytes written by
this module, not by the libraries under test) and a harness that runs one
repeval command per case in a fresh folder tree and checks

  * the exit code and a specific message fragment (file, key, offset, member);
  * no sanitizer report and no hang (every command runs under a timeout);
  * the folder tree is unchanged: a previous output folder `out/` is
    byte-identical, no `out.partial-*`, `out.state` or other new file appeared
    anywhere in the tree, and no canary file named by a path-traversal member
    exists, inside the tree or at the absolute path it names.

Layout of a case's tree (the command runs in <root>/a/b/c, so a member name
with three `../` components still lands inside <root>, where it would show up
as a new file):

  <root>/a/b/c/          working folder: the inputs and job files
  <root>/a/b/c/out/      a previous, complete result (must stay untouched)
"""
import gzip
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ref"))

from common import REPEVAL, SOURCE_DIR, Suite  # noqa: E402

DEMO = os.path.join(SOURCE_DIR, "jobs", "demo")
FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")
CANARY = "repeval-canary"  # every traversal member is named after this
FIFO = object()  # as the content of a case's file: make it a named pipe (no writer ever opens it)

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "Segmentation fault",
                   "==ERROR==")

# ---- .npy / .npz ---------------------------------------------------------


def npy_header(descr="<f8", shape=(2, 3), fortran=False, raw=None, version=(1, 0), magic=b"\x93NUMPY",
               hlen=None, pad=True):
    """The bytes of a .npy header. `raw` replaces the dict text; `hlen` lies about its length."""
    if raw is None:
        shp = "(" + "".join(f"{d}, " for d in shape)[:-2] + ("," if len(shape) == 1 else "") + ")"
        raw = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shp)
    text = raw.encode("latin-1") if isinstance(raw, str) else raw
    lenbytes = 2 if version[0] == 1 else 4
    if pad:
        total = len(magic) + 2 + lenbytes + len(text) + 1
        text = text + b" " * ((64 - total % 64) % 64) + b"\n"
    n = len(text) if hlen is None else hlen
    ln = struct.pack("<H", n) if lenbytes == 2 else struct.pack("<I", n)
    return magic + bytes(version) + ln + text


def npy(values=None, descr="<f8", shape=None, **kw):
    """A .npy file of float64 `values` (a flat list) with `shape` (default (len,))."""
    values = [0.5 * k for k in range(6)] if values is None else values
    shape = (len(values),) if shape is None else shape
    fmt = {"<f8": "<%dd", "<f4": "<%df", "<i8": "<%dq", "<i4": "<%di", "|u1": "<%dB", "<i2": "<%dh"}[descr]
    return npy_header(descr=descr, shape=shape, **kw) + struct.pack(fmt % len(values), *values)


def matrix(n, d, seed=0, nan_at=None, inf_at=None):
    """An n x d float64 .npy with deterministic values (optionally a NaN or Inf at (row, col))."""
    vals = []
    x = seed * 7919 + 17
    for _ in range(n * d):
        x = (x * 1103515245 + 12345) % (1 << 31)
        vals.append(x / float(1 << 31) - 0.5)
    if nan_at:
        vals[nan_at[0] * d + nan_at[1]] = float("nan")
    if inf_at:
        vals[inf_at[0] * d + inf_at[1]] = float("inf")
    return npy(vals, shape=(n, d))


def labels_npy(labels, descr="<i8"):
    return npy(list(labels), descr=descr, shape=(len(labels),))


def zip_bytes(members, compression=zipfile.ZIP_STORED):
    """A zip of (name, bytes) members, names kept as given (traversal included)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = compression
            z.writestr(info, data)
    return buf.getvalue()


# ---- safetensors ---------------------------------------------------------


def safetensors(tensors=None, header=None, data=None, declared=None, metadata=None):
    """tensors: {name: (dtype, shape, bytes)}, laid out in order. `header` replaces the
    JSON text; `declared` lies about its length; `data` replaces the data buffer."""
    tensors = {"w": ("F32", [2, 3], struct.pack("<6f", *range(6)))} if tensors is None else tensors
    if header is None:
        h, off, blob = {}, 0, b""
        for name, (dt, shape, raw) in tensors.items():
            h[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
            off += len(raw)
            blob += raw
        if metadata is not None:
            h["__metadata__"] = metadata
        header = json.dumps(h)
        data = blob if data is None else data
    text = header.encode() if isinstance(header, str) else header
    n = len(text) if declared is None else declared
    return struct.pack("<Q", n) + text + (data or b"")


# ---- pickles and torch.save archives ---------------------------------------


class Pk:
    """A tiny pickle assembler (opcodes of CPython's Lib/pickletools.py)."""
    PROTO2 = b"\x80\x02"
    MARK, TUPLE, EMPTY_TUPLE, REDUCE, BINPERSID = b"(", b"t", b")", b"R", b"Q"
    SETITEMS, SETITEM, EMPTY_DICT, STOP, NEWFALSE = b"u", b"s", b"}", b".", b"\x89"
    BUILD, INST, OBJ, NEWOBJ, EMPTY_LIST, APPEND = b"b", b"i", b"o", b"\x81", b"]", b"a"

    @staticmethod
    def s(text):  # BINUNICODE
        b = text.encode()
        return b"X" + struct.pack("<I", len(b)) + b

    @staticmethod
    def i(v):  # BININT
        return b"J" + struct.pack("<i", v)

    @staticmethod
    def g(mod, name):  # GLOBAL
        return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"

    @staticmethod
    def stack_global(mod, name):  # protocol 4: two strings, then STACK_GLOBAL
        return Pk.s(mod) + Pk.s(name) + b"\x93"

    @staticmethod
    def ordered_dict():
        return Pk.g("collections", "OrderedDict") + Pk.EMPTY_TUPLE + Pk.REDUCE

    @staticmethod
    def tensor(key, numel, shape, stride, storage="FloatStorage", offset=0):
        """torch._utils._rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict())."""
        ints = lambda xs: Pk.MARK + b"".join(Pk.i(x) for x in xs) + Pk.TUPLE  # noqa: E731
        pid = Pk.MARK + Pk.s("storage") + Pk.g("torch", storage) + Pk.s(key) + Pk.s("cpu") + Pk.i(numel) + \
            Pk.TUPLE + Pk.BINPERSID
        return Pk.g("torch._utils", "_rebuild_tensor_v2") + Pk.MARK + pid + Pk.i(offset) + ints(shape) + \
            ints(stride) + Pk.NEWFALSE + Pk.ordered_dict() + Pk.TUPLE + Pk.REDUCE

    @staticmethod
    def state_dict(items):
        """items: [(key, pickled value bytes)] -> a whole pickle of an OrderedDict."""
        body = b"".join(Pk.s(k) + v for k, v in items)
        return Pk.PROTO2 + Pk.ordered_dict() + Pk.MARK + body + Pk.SETITEMS + Pk.STOP


def torch_zip(pkl=None, storages=None, prefix="archive", extra=(), byteorder=b"little"):
    """A torch.save zip: <prefix>/data.pkl, <prefix>/data/<key>, byteorder, version."""
    if storages is None:
        storages = {"0": struct.pack("<6f", *range(6))}
    if pkl is None:
        pkl = Pk.state_dict([("w", Pk.tensor("0", 6, [2, 3], [3, 1]))])
    members = [(f"{prefix}/data.pkl", pkl)]
    if byteorder is not None:
        members.append((f"{prefix}/byteorder", byteorder))
    members += [(f"{prefix}/data/{k}", v) for k, v in storages.items()]
    members.append((f"{prefix}/version", b"3\n"))
    members += list(extra)
    return zip_bytes(members)


# ---- datasets: IDX, CIFAR, tar shards, PNG ----------------------------------


def idx(dims, data=None, code=0x08, magic=None, gz=False):
    """An IDX file: 0 0 type ndim, big-endian u32 dims, elements."""
    n = 1
    for d in dims:
        n *= d
    data = bytes((k * 37) % 256 for k in range(n)) if data is None else data
    head = magic if magic is not None else bytes([0, 0, code, len(dims)])
    head += b"".join(struct.pack(">I", d) for d in dims)
    raw = head + data
    return gzip.compress(raw, mtime=0) if gz else raw


def cifar(labels, label_bytes=1, pixels=3072):
    out = b""
    for k, lab in enumerate(labels):
        lab = lab if isinstance(lab, (tuple, list)) else (lab,) * label_bytes
        out += bytes(lab) + bytes(((k + j) * 13) % 256 for j in range(pixels))
    return out


def png(width=4, height=4, color=0, depth=8, rows=None, crc_ok=True, ihdr=None, idat=None):
    """A PNG (gray by default) with raw filter-0 rows; knobs for broken CRC/IHDR/IDAT."""
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    if rows is None:
        rows = b"".join(b"\x00" + bytes(((x + y * 7) * 11) % 256 for x in range(width * ch)) for y in range(height))

    def chunk(kind, body, good=True):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc if good else crc ^ 1)

    hdr = ihdr if ihdr is not None else struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    dat = idat if idat is not None else zlib.compress(rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", hdr) + chunk(b"IDAT", dat, crc_ok) + chunk(b"IEND", b"")


def tar_bytes(members, fmt=tarfile.USTAR_FORMAT):
    """members: (name, bytes) or (name, TarInfo-type, linkname) for links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for m in members:
            ti = tarfile.TarInfo(m[0])
            ti.mtime = 0
            if len(m) == 3:
                ti.type, ti.linkname = m[1], m[2]
                t.addfile(ti)
            else:
                ti.size = len(m[1])
                t.addfile(ti, io.BytesIO(m[1]))
    return buf.getvalue()


def tar_patch_size(raw, index, size):
    """Rewrite the size field of the index-th member header (octal, checksum fixed)."""
    off = 0
    for _ in range(index):
        sz = int(raw[off + 124:off + 136].rstrip(b"\0 ") or b"0", 8)
        off += 512 + (sz + 511) // 512 * 512
    hdr = bytearray(raw[off:off + 512])
    hdr[124:136] = (b"%011o" % size) + b"\0"
    hdr[148:156] = b" " * 8
    hdr[148:156] = (b"%06o" % sum(hdr)) + b"\0 "
    return raw[:off] + bytes(hdr) + raw[off + 512:]


def wds(samples, **kw):
    """A WebDataset shard of samples (key, png bytes, label or None)."""
    members = []
    for key, img, lab in samples:
        members.append((f"{key}.png", img))
        if lab is not None:
            members.append((f"{key}.cls", str(lab).encode()))
    return tar_bytes(members, **kw)


# ---- models and checkpoints for dataset cases ---------------------------------


def mlp_checkpoint(d_in, d_hidden=4, nan=False):
    """safetensors for the `mlp` preset: fc1 (d_hidden x d_in), fc2 (2 x d_hidden)."""
    w1 = [((k * 31) % 17 - 8) / 64.0 for k in range(d_hidden * d_in)]
    if nan:
        w1[d_in + 1] = float("nan")
    w2 = [((k * 7) % 5 - 2) / 4.0 for k in range(2 * d_hidden)]
    return safetensors({
        "fc1.weight": ("F32", [d_hidden, d_in], struct.pack(f"<{len(w1)}f", *w1)),
        "fc1.bias": ("F32", [d_hidden], struct.pack(f"<{d_hidden}f", *([0.0] * d_hidden))),
        "fc2.weight": ("F32", [2, d_hidden], struct.pack(f"<{len(w2)}f", *w2)),
        "fc2.bias": ("F32", [2], struct.pack("<2f", 0.0, 0.0)),
    })


def job_yaml(data, model="  - {name: m, arch: mlp, checkpoints: ck.safetensors, layers: [fc1, fc2]}",
             analyses="  cka: {batch: 4}", extra=""):
    """A job file with one dataset block (YAML text indented under data:), a model and analyses."""
    return f"name: bad\ndata:\n{data}\nmodels:\n{model}\nanalyses:\n{analyses}\noutput: {{dir: out}}\n{extra}"


# ---- the harness ------------------------------------------------------------


class Case:
    """One bad input: files to write (relative path -> bytes, str or a function of the
    working folder returning either), the repeval arguments (`{cwd}` is replaced by
    the working folder), the expected exit code and message fragments (all must be
    in stderr, or stdout for rc 0). `canaries`: file names a traversal would create.
    `known_bug`: the behaviour is wrong today (described there); the case is then
    reported as an expected failure and the suite turns red once it passes, so the
    mark gets removed together with the fix."""

    def __init__(self, name, files, args, rc, msg, canaries=(), known_bug=None, timeout=60, env=None,
                 control=False, symlinks=None, program=None):
        self.name, self.files, self.args, self.rc = name, files, args, rc
        self.program = program  # another executable than repeval (a test tool of the library)
        self.allowed = ()  # controls: folders besides out/ they may create (a cache)
        self.msg = [msg] if isinstance(msg, str) else list(msg)
        self.canaries, self.known_bug, self.timeout = list(canaries), known_bug, timeout
        self.env, self.control, self.symlinks = env or {}, control, symlinks or {}


def snapshot(root):
    """Every entry under root: relative path -> ('d',) | ('f', sha256, mode) | ('l', target)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d",)
            elif stat.S_ISFIFO(st.st_mode):
                out[rel] = ("p",)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", hashlib.sha256(f.read()).hexdigest(), st.st_mode & 0o7777)
    return out


def previous_output(out):
    """A complete-looking previous result folder: what its manifest lists is all it holds,
    so a run may replace it (docs/reliability.md, "Output folders")."""
    os.makedirs(os.path.join(out, "stats"))
    with open(os.path.join(out, "metrics.csv"), "w") as f:
        f.write("analysis,metric,value\ncka,cka,0.5\n")
    with open(os.path.join(out, "manifest.json"), "w") as f:
        f.write('{"previous": true, "output": {"marker": "repeval-results-1", '
                '"files": ["manifest.json", "metrics.csv", "stats/x.stats"]}}\n')
    with open(os.path.join(out, "stats", "x.stats"), "wb") as f:
        f.write(b"\0" * 100)


def run_case(s, case, base, wrapper=()):
    root = os.path.join(base, case.name)
    cwd = os.path.join(root, "a", "b", "c")
    os.makedirs(cwd)
    previous_output(os.path.join(cwd, "out"))
    for rel, content in case.files.items():
        p = os.path.join(cwd, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if callable(content):
            content = content(cwd)
        if content is FIFO:
            os.mkfifo(p)
            continue
        with open(p, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
    for rel, target in case.symlinks.items():
        os.symlink(target, os.path.join(cwd, rel))
    absolute_canaries = [os.path.join(tempfile.gettempdir(), f"{CANARY}-{case.name}")] + \
        [c for c in case.canaries if os.path.isabs(c)]
    for c in absolute_canaries:
        if os.path.lexists(c):
            os.remove(c)
    before = snapshot(root)
    args = list(wrapper) + [case.program or REPEVAL] + [a.replace("{cwd}", cwd) for a in case.args]
    env = dict(os.environ)
    # huge declared sizes must fail as allocation errors, not as sanitizer aborts
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":allocator_may_return_null=1").strip(":")
    if not case.program and case.args[0] in ("run", "merge", "finalize"):
        # MPI_Init: Open MPI's unloaded components leave allocations LeakSanitizer
        # cannot attribute (as for the MPI tests); Valgrind covers these paths
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").strip(":")
    env.update(case.env)
    for k, v in case.env.items():
        if v is None:
            env.pop(k, None)
    try:
        p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, errors="replace",
                           timeout=case.timeout * (10 if wrapper else 1), env=env)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = "timeout", "", f"no exit within {case.timeout} s"
    after = snapshot(root)
    text = out if case.rc == 0 else err
    problems = []
    if rc != case.rc:
        problems.append(f"exit code {rc}, want {case.rc}")
    for m in case.msg:
        if m not in text:
            problems.append(f"message lacks {m!r}")
    if case.rc == 1 and not case.program and "repeval: error:" not in err:
        problems.append("no 'repeval: error:' line")
    if any(mark in err for mark in SANITIZER_MARKS):
        problems.append("sanitizer or crash report")
    if not case.control:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        if changed:
            problems.append(f"the tree changed: {changed[:6]}")
    else:  # a control may write a new result, nothing else
        mine = [os.path.join("a", "b", "c", p) for p in ["out"] + list(case.allowed)]
        stray = sorted(k for k in set(after) - set(before) if not any(k == m or k.startswith(m + os.sep)
                                                                      for m in mine))
        if stray:
            problems.append(f"stray files: {stray[:6]}")
        if not case.program and case.args[0] == "run" and rc == 0:
            manifest = os.path.join(cwd, "out", "manifest.json")
            fresh = os.path.isfile(manifest) and '"previous"' not in open(manifest).read()
            if not (fresh and os.path.isfile(os.path.join(cwd, "out", "metrics.csv"))):
                problems.append("out/ does not hold the new result")
    for c in absolute_canaries:
        if os.path.lexists(c):
            problems.append(f"canary {c} was created")
            os.remove(c)
    ok = not problems
    if os.environ.get("REPEVAL_CATALOGUE_VERBOSE"):
        print(f"-- {case.name}: rc {rc}: {(err or out).strip()[:300]}")
    detail = f"{case.name}: {'; '.join(problems)} | rc {rc} | {(err or out).strip()[:400]!r}"
    if case.known_bug:
        if ok:
            s.check(False, f"{case.name}: marked as a known bug ({case.known_bug}) but passes now: remove the mark")
        else:
            print(f"XFAIL {case.name}: known bug: {case.known_bug} ({'; '.join(problems)})")
        return
    s.check(ok, detail)


def run_cases(cases, title, wrapper=(), suite=None):
    """Run every case of a catalogue group (under `wrapper`, e.g. valgrind, if given)."""
    s = suite or Suite()
    names = [c.name for c in cases]
    s.check(len(names) == len(set(names)), "case names are unique")
    with tempfile.TemporaryDirectory(prefix="repeval-bad-") as base:
        for case in cases:
            run_case(s, case, base, wrapper)
    refused = sum(1 for c in cases if not c.control)
    print(f"{title}: {refused} malformed inputs, {len(cases) - refused} controls, "
          f"{sum(1 for c in cases if c.known_bug)} known bugs")
    if suite is None:
        s.finish()
