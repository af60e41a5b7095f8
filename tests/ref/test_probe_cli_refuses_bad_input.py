"""repeval probe refuses bad input with the documented exit codes and messages that
name the file, row / index and what was expected (one class only: exit 3 and
`undefined`; bad labels, NaN/Inf features, shape mismatches: exit 1; bad command
lines: exit 2), and its plain, JSON and CSV outputs agree with each other: the CSV has
one row per (λ, split, metric) with the JSON's values, the plain output the selected
λ and test accuracy."""
import csv
import json
import os

import numpy as np

from common import Suite, repeval, tmpdir
from probe_ref import blobs


def main():
    t = Suite()
    (x, y), (xt, yt) = blobs(300, 8, 4, sep=4.0, seed=3)
    with tmpdir() as tmp:
        def save(name, a):
            p = os.path.join(tmp, name)
            np.save(p, a)
            return p
        X, Y, XT, YT = save("x.npy", x), save("y.npy", y), save("xt.npy", xt), save("yt.npy", yt)
        base = ["probe", "--train", X, "--train-labels", Y, "--test", XT, "--test-labels", YT]

        def expect(args, code, text, what, stream="err"):
            rc, out, err = repeval(*args)
            s = err if stream == "err" else out
            t.check(rc == code and text in s, f"{what}: exit {rc} (want {code}), output {out!r} {err!r}")

        for kind in ("logistic", "ridge", "knn"):
            one = save("one.npy", np.full(300, 2, np.int64))
            args = ["probe", "--train", X, "--train-labels", one, "--test", XT, "--test-labels", YT, "--kind", kind]
            expect(args, 3, "all 300 training rows have label 2; a classifier needs at least 2 classes",
                   f"{kind}: one class")
            rc, out, _ = repeval(*args)
            t.check(out.strip() == "undefined", f"{kind}: one class prints 'undefined', got {out!r}")
            bad = y.copy()
            bad[4] = -1
            args = ["probe", "--train", X, "--train-labels", save("neg.npy", bad), "--test", XT, "--test-labels", YT,
                    "--kind", kind]
            expect(args, 1, "neg.npy: index 4 is -1, expected a class index", f"{kind}: negative label")
            xn = x.copy()
            xn[3, 2] = np.nan
            args = ["probe", "--train", save("nan.npy", xn), "--train-labels", Y, "--test", XT, "--test-labels", YT,
                    "--kind", kind]
            expect(args, 1, "nan.npy: row 3, column 2 is NaN", f"{kind}: NaN feature")
            xi = xt.copy()
            xi[7, 0] = -np.inf
            args = base[:5] + ["--test", save("inf.npy", xi), "--test-labels", YT, "--kind", kind]
            expect(args, 1, "inf.npy: row 7, column 0 is infinite", f"{kind}: Inf feature")

        frac = y.astype(np.float64)
        frac[2] = 1.5
        expect(base[:3] + ["--train-labels", save("frac.npy", frac)] + base[5:], 1, "index 2 is 1.5",
               "non-integer label")
        expect(base[:3] + ["--train-labels", save("short.npy", y[:-1])] + base[5:], 1,
               "expected one label for each of the 300 rows", "label count")
        expect(base[:5] + ["--test", save("narrow.npy", xt[:, :5])] + base[7:], 1, "has 5 features", "test width")
        expect(base + ["--classes", "3"], 1, "--classes 3 but a label is 3", "--classes too small")
        expect(base + ["--val-fraction", "0"], 1, "no validation rows", "several λ without validation")
        expect(base + ["--bogus"], 2, "unknown option '--bogus'", "unknown option")
        expect(base + ["--grid", "1,0.1,3"], 2, "--grid needs LO,HI,N", "bad grid")
        expect(base + ["--lambdas", "1,-2"], 2, "every lambda must be a finite number > 0", "negative λ")
        expect(base + ["--kind", "svm"], 2, "--kind must be logistic, ridge, knn or mlp", "bad kind")
        expect(base + ["--val", XT], 2, "--val and --val-labels go together", "val without labels")
        expect(base[:5], 2, "give --train, --train-labels, --test and --test-labels", "missing test")
        expect(base + ["--val-fraction", "1"], 2, "--val-fraction must be in [0, 1)", "val fraction 1")

        # fewer samples than features, small label dtypes
        (xs, ys), (xst, yst) = blobs(12, 40, 3, sep=5.0, seed=4)
        rc, out, err = repeval("probe", "--train", save("xs.npy", xs), "--train-labels", save("ys.npy", ys.astype(np.uint8)),
                               "--test", save("xst.npy", xst), "--test-labels", save("yst.npy", yst.astype(np.int32)),
                               "--lambdas", "0.1")
        t.check(rc == 0 and out.startswith("lambda 0.10000000000000001\ntop1 "), f"n < d: {rc} {out!r} {err!r}")

        # outputs agree
        cpath = os.path.join(tmp, "curve.csv")
        rc, out, err = repeval(*base, "--json", "--csv", cpath)
        if t.check(rc == 0, f"json run: {err}"):
            r = json.loads(out)
            with open(cpath) as f:
                rows = list(csv.DictReader(f))
            t.check(len(rows) == 11 * 2 + 2, f"csv rows: {len(rows)}")
            t.check(list(rows[0].keys()) == ["kind", "lambda", "split", "metric", "value"], "csv header")
            for p in r["curve"]:
                got = [row for row in rows if row["split"] == "val" and float(row["lambda"]) == p["lambda"]]
                t.check(len(got) == 2, f"csv rows for λ {p['lambda']}")
                for row in got:
                    t.close(float(row["value"]), p["val"][row["metric"]], 1e-15, f"csv {row}")
            test = [row for row in rows if row["split"] == "test"]
            t.check(len(test) == 2 and float(test[0]["lambda"]) == r["lambda"], f"csv test rows {test}")
            t.close(float(test[0]["value"]), r["test"]["top1"], 1e-15, "csv test top1")
            rc, out, _ = repeval(*base)
            lines = out.split()
            t.check(rc == 0 and lines[0] == "lambda" and float(lines[1]) == r["lambda"] and lines[2] == "top1"
                    and float(lines[3]) == r["test"]["top1"], f"plain output {out!r}")
            t.check(r["classes"] == 4 and r["test"]["top5"] is None and r["n_val"] == 30, "json fields")
    t.finish()


if __name__ == "__main__":
    main()
