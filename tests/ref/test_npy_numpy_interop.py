"""Arrays written by NumPy (every supported dtype, both byte orders, C and
Fortran order, format versions 1/2/3, .npz stored and deflated) read back
exactly; arrays written by repeval load in NumPy with the same values;
`repeval inspect --json` reports NumPy's dtype and shape."""
import json
import os

import numpy as np

from common import NPY_TOOL, Suite, repeval, run, tmpdir


def dump(path):
    rc, out, err = run([NPY_TOOL, "dump", path])
    if rc != 0:
        raise RuntimeError(err)
    lines = out.split("\n")
    dtype = lines[0].split()[1]
    shape = tuple(int(v) for v in lines[1].split()[1:])
    vals = np.array([float(v) for v in lines[2:] if v], dtype=np.float64)
    return dtype, shape, vals


NAMES = {"f2": "float16", "f4": "float32", "f8": "float64", "i1": "int8", "i2": "int16", "i4": "int32",
         "i8": "int64", "u1": "uint8", "u2": "uint16", "u4": "uint32", "u8": "uint64", "b1": "bool"}


def main():
    s = Suite()
    rng = np.random.default_rng(11)
    with tmpdir() as d:
        k = 0
        for code, name in NAMES.items():
            for order in ("<", ">"):
                for shape in ((7,), (3, 4), (2, 3, 2), (0, 3)):
                    base = rng.integers(0, 100, size=shape)
                    if code == "b1":
                        arr = (base % 2).astype(bool)
                    else:
                        arr = base.astype(np.dtype(order + code))
                    for fortran in (False, True):
                        a = np.asfortranarray(arr) if fortran else arr
                        for version in ((1, 0), (2, 0), (3, 0)):
                            p = os.path.join(d, f"a{k}.npy")
                            k += 1
                            with open(p, "wb") as f:
                                np.lib.format.write_array(f, a, version=version)
                            dt, shp, vals = dump(p)
                            ok = dt == name and shp == shape and np.array_equal(
                                vals, a.astype(np.float64).reshape(-1))
                            s.check(ok, f"{order}{code} {shape} fortran={fortran} v{version}: {dt} {shp}")
        # NumPy's own float16 rounding matches ours for every value through a round trip
        h = np.arange(0, 65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
        h = h[np.isfinite(h)]
        p = os.path.join(d, "halves.npy")
        np.save(p, h)
        _, _, vals = dump(p)
        s.check(np.array_equal(vals, h.astype(np.float64)), "all finite float16 values decode exactly")
        q = os.path.join(d, "halves_back.npy")
        rc, _, err = run([NPY_TOOL, "convert", p, q, "float16"])
        s.check(rc == 0 and np.array_equal(np.load(q).view(np.uint16), h.view(np.uint16)),
                "float16 re-encoding is bit exact")
        # repeval's writer, read by NumPy
        src = rng.standard_normal((6, 5)) * 50
        p = os.path.join(d, "src.npy")
        np.save(p, src)
        for name in NAMES.values():
            q = os.path.join(d, f"w_{name}.npy")
            rc, _, err = run([NPY_TOOL, "convert", p, q, name])
            if not s.check(rc == 0, f"convert to {name}: {err}"):
                continue
            got = np.load(q)
            want = src.astype(np.float32).astype(np.float16) if name == "float16" else src
            if name not in ("float16", "float32", "float64", "bool"):
                want = src.astype(np.int64).astype(name)
            if name == "bool":
                want = src != 0
            if name == "float32":
                want = src.astype(np.float32)
            s.check(got.dtype == np.dtype(name) and got.shape == src.shape and np.array_equal(got, want),
                    f"NumPy reads repeval's {name} writer")
        # .npz, stored and deflated, through inspect and the dump tool
        arrs = {"layer1": rng.standard_normal((10, 3)), "logits": rng.standard_normal((10,)).astype(np.float32)}
        for saver, tag in ((np.savez, "stored"), (np.savez_compressed, "deflated")):
            p = os.path.join(d, f"e_{tag}.npz")
            saver(p, **arrs)
            rc, out, err = repeval("inspect", p, "--json")
            if s.check(rc == 0, f"inspect {tag}: {err}"):
                info = json.loads(out)
                got = {a["name"]: (a["dtype"], tuple(a["shape"])) for a in info["arrays"]}
                want = {n: (str(v.dtype), v.shape) for n, v in arrs.items()}
                s.check(got == want, f"inspect {tag}: {got} vs {want}")
            for n, v in arrs.items():
                dt, shp, vals = dump(p + ":" + n)
                s.check(shp == v.shape and np.array_equal(vals, v.astype(np.float64).reshape(-1)), f"{tag}:{n}")
        rc, out, err = repeval("inspect", os.path.join(d, "src.npy"), "--json")
        s.check(rc == 0 and json.loads(out)["arrays"][0]["shape"] == [6, 5], f"inspect npy: {out} {err}")
    s.finish()


if __name__ == "__main__":
    main()
