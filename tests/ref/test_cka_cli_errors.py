"""repeval cka refuses bad input with one clear line and the documented exit
code (1 error, 2 usage, 3 undefined), never a crash or a silent NaN."""
import json
import os

import numpy as np

from common import Suite, repeval, tmpdir


def expect(s, args, rc, stderr_has=None, stdout_has=None):
    got_rc, out, err = repeval(*args)
    ok = got_rc == rc and (stderr_has is None or stderr_has in err) and (stdout_has is None or stdout_has in out)
    s.check(ok, f"repeval {' '.join(map(str, args))}: want rc {rc} with {stderr_has!r}/{stdout_has!r}, "
                f"got rc {got_rc}, stdout {out!r}, stderr {err!r}")
    s.check(got_rc < 128, f"no crash by signal: {args}")
    return out, err


def main():
    s = Suite()
    rng = np.random.default_rng(5)
    with tmpdir() as d:
        p = lambda name: os.path.join(d, name)
        np.save(p("x.npy"), rng.standard_normal((20, 3)))
        np.save(p("y19.npy"), rng.standard_normal((19, 3)))
        np.save(p("x3.npy"), rng.standard_normal((3, 2)))
        bad = rng.standard_normal((20, 4))
        bad[5, 3] = np.nan
        np.save(p("nan.npy"), bad)
        bad = rng.standard_normal((20, 4))
        bad[7, 0] = -np.inf
        np.save(p("inf.npy"), bad)
        np.save(p("const.npy"), np.full((20, 2), 4.0))
        np.save(p("scalar.npy"), np.float64(3.0))
        np.save(p("cplx.npy"), np.zeros((20, 2), dtype=np.complex128))
        with open(p("junk.npy"), "wb") as f:
            f.write(b"this is not a numpy file at all")
        np.savez(p("a.npz"), fc=rng.standard_normal((20, 3)))

        expect(s, ["cka", p("x.npy"), p("y19.npy")], 1, "has 20 rows but")
        out, _ = expect(s, ["cka", p("x3.npy"), p("x3.npy"), "--debiased"], 3, "at least 4 samples", "undefined")
        expect(s, ["cka", p("x.npy"), p("nan.npy")], 1, "nan.npy: row 5, column 3 is NaN")
        expect(s, ["cka", p("inf.npy"), p("x.npy")], 1, "inf.npy: row 7, column 0 is infinite")
        expect(s, ["cka", p("x.npy"), p("const.npy")], 3, "zero variance", "undefined")
        expect(s, ["cka", p("x.npy"), p("const.npy"), "--debiased"], 3, "constant features")
        expect(s, ["cka", p("x.npy"), p("const.npy"), "--kernel", "rbf"], 1, "median squared distance is zero")
        out, _ = expect(s, ["cka", p("x.npy"), p("const.npy"), "--json"], 3)
        r = json.loads(out)
        s.check(r["cka"] is None and r["status"] == "undefined" and "variance" in r["reason"], f"json: {r}")
        expect(s, ["cka", p("missing.npy"), p("x.npy")], 1, "missing.npy: cannot open")
        expect(s, ["cka", p("junk.npy"), p("x.npy")], 1, "junk.npy: not a .npy file")
        expect(s, ["cka", p("scalar.npy"), p("x.npy")], 1, "0-d array")
        expect(s, ["cka", p("cplx.npy"), p("x.npy")], 1, "unsupported .npy dtype '<c16'")
        expect(s, ["cka", p("a.npz") + ":nope", p("x.npy")], 1, "no array named 'nope'")
        expect(s, ["cka", p("a.npz") + ":fc", p("x.npy")], 0)
        expect(s, ["cka"], 2, "give two matrices")
        expect(s, ["cka", p("x.npy")], 2, "give two matrices")
        expect(s, ["cka", p("x.npy"), p("x.npy"), p("x.npy")], 2, "unexpected argument")
        expect(s, ["cka", p("x.npy"), p("x.npy"), "--frobnicate"], 2, "unknown option '--frobnicate'")
        expect(s, ["cka", p("x.npy"), p("x.npy"), "--kernel", "poly"], 2, "--kernel must be linear or rbf")
        expect(s, ["cka", p("x.npy"), p("x.npy"), "--sigma", "-1"], 2, "--sigma must be a positive number")
        expect(s, ["cka", p("x.npy"), p("x.npy"), "--sigma"], 2, "needs a value")
        expect(s, ["cka", p("x.npy"), p("x.npy"), "--batch", "0"], 2, "--batch")
        expect(s, ["cka", p("x.npy"), p("x.npy"), "--sharded", "--kernel", "rbf"], 2, "linear kernel")
        expect(s, ["cka", "--help"], 0, None, "usage: repeval cka")
        expect(s, ["--help"], 0, None, "Commands:")
        expect(s, [], 2, "usage")
        expect(s, ["frobnicate"], 2, "unknown command")
        expect(s, ["inspect", p("junk.npy")], 1, "not a .npy file")
        out, _ = expect(s, ["cka", p("x.npy"), p("x.npy")], 0)
        s.check(abs(float(out) - 1.0) < 1e-14, f"CKA(X, X) = {out}")
    s.finish()


if __name__ == "__main__":
    main()
