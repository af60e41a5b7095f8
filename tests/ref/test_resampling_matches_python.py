"""The resampling primitives of the library against an independent Python
implementation and SciPy/NumPy: the counter-based generator (SplitMix64's
output function chained over seed, stream and index) and its Poisson(1) draws
and permutations bitwise; Poisson(1) counts with mean and variance 1 (within 5
standard errors over 200000 draws) and permutations of 4 items uniform (chi-square
p > 1e-4 over 24000 draws); normal quantiles within 1e-14 relative of
scipy.stats.norm.ppf, Student t quantiles whose scipy.stats.t.cdf is p within
2e-14 below 100 degrees of freedom and 5e-13 at 1000 (SciPy's own t.ppf is off
by up to 2e-9 at df = 3); the quantile rule equal
to numpy.quantile; bootstrap, jackknife and null summaries equal to NumPy
formulas within 1e-13 (1e-12 relative for the interval that uses t)."""
import math
import os
import subprocess

import numpy as np
from scipy import stats

from common import Suite

TOOL = os.environ.get("REPEVAL_RESAMPLE_TOOL", "resample_tool")
M64 = (1 << 64) - 1


def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def rand_u64(seed, stream, index):
    return mix64(mix64(mix64(seed) ^ stream) ^ index)


def poisson_cdf():
    out, term, c = [], math.exp(-1.0), 0.0
    for k in range(18):
        c += term
        out.append(c)
        term /= k + 1
    return out


CDF = poisson_cdf()


def poisson1(seed, stream, index):
    u = (rand_u64(seed, stream, index) >> 11) * 2.0 ** -53
    for k, c in enumerate(CDF):
        if u < c:
            return k
    return 18


def permutation(seed, stream, index, n):
    h = rand_u64(seed, stream, index)
    p = list(range(n))
    for i in range(n - 1, 0, -1):
        j = (mix64(h ^ i) * (i + 1)) >> 64
        p[i], p[j] = p[j], p[i]
    return p


def tool(*args):
    out = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True, check=True).stdout
    return out.split("\n")[:-1]


def close(a, b, rtol, atol=0.0):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + atol


def main():
    s = Suite()
    boot = 1 << 40
    for seed, stream, index in ((0, 0, 0), (7, boot + 3, 12345), (2 ** 63 + 5, (2 << 40) + 99, 2 ** 40)):
        got = [tuple(int(x) for x in line.split()) for line in tool("draws", seed, stream, index, 50)]
        want = [(rand_u64(seed, stream, index + k), poisson1(seed, stream, index + k)) for k in range(50)]
        s.check(got == want, f"draws of ({seed}, {stream}, {index}..) equal the Python generator")
        for n in (1, 2, 17, 300):
            got = [int(x) for x in tool("perm", seed, stream, index, n)[0].split()]
            s.check(got == permutation(seed, stream, index, n), f"permutation of {n} for ({seed}, {stream}, {index})")
    counts = np.array([int(line.split()[1]) for line in tool("draws", 11, boot, 0, 200000)])
    se_mean, se_var = math.sqrt(1 / 200000), math.sqrt(3 / 200000)  # Var(K) = 1, Var((K-1)^2) = 3 for Poisson(1)
    s.check(abs(counts.mean() - 1) < 5 * se_mean and abs(counts.var() - 1) < 5 * se_var,
            f"Poisson(1) draws: mean {counts.mean()}, variance {counts.var()}")
    perms = [tuple(permutation(5, 2 << 40, k, 4)) for k in range(24000)]
    _, freq = np.unique(np.array(perms), axis=0, return_counts=True)
    p = stats.chisquare(freq).pvalue if len(freq) == 24 else 0.0
    s.check(len(freq) == 24 and p > 1e-4, f"permutations of 4 are uniform: {len(freq)} seen, chi-square p {p}")

    ps = [1e-12, 1e-5, 0.001, 0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.975, 0.99, 0.999, 1 - 1e-9]
    got = [float(x) for x in tool("normq", *ps)]
    s.check(all(close(g, stats.norm.ppf(q), 1e-14, 1e-15) for g, q in zip(got, ps)),
            f"normal quantiles: {[(g, stats.norm.ppf(q)) for g, q in zip(got, ps)]}")
    for df in (1, 2, 3, 4, 7, 15, 63, 1000):
        got = [float(x) for x in tool("tq", df, *ps[2:-1])]
        cdf = [stats.t.cdf(g, df) for g in got]
        s.check(all(abs(c - q) <= (2e-14 if df < 100 else 5e-13) for c, q in zip(cdf, ps[2:-1])),
                f"t quantiles at df {df}: cdf {[c - q for c, q in zip(cdf, ps[2:-1])]}")

    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 200):
        v = rng.normal(size=n)
        for q in (0.0, 0.025, 0.5, 0.95, 0.975, 1.0):
            got = float(tool("quantile", q, *[repr(x) for x in v])[0])
            s.check(got == np.quantile(v, q) or close(got, np.quantile(v, q), 1e-15),
                    f"quantile {q} of {n} values: {got} vs {np.quantile(v, q)}")

    v = rng.normal(0.6, 0.05, size=199)
    vv = [repr(x) for x in v] + ["nan"]
    est = 0.61
    for kind in ("normal", "percentile"):
        se, lo, hi, m = tool("boot", kind, 0.9, est, *vv)[0].split()
        sd = v.std(ddof=1)
        want = (est - stats.norm.ppf(0.95) * sd, est + stats.norm.ppf(0.95) * sd) if kind == "normal" else \
            tuple(np.quantile(v, [0.05, 0.95]))
        s.check(int(m) == 199 and close(float(se), sd, 1e-13) and close(float(lo), want[0], 1e-13)
                and close(float(hi), want[1], 1e-13), f"bootstrap {kind}: {se} {lo} {hi} vs {sd} {want}")
    loo = v[:23]
    se, lo, hi, m = tool("jack", 0.95, est, *[repr(x) for x in loo])[0].split()
    g = len(loo)
    sej = math.sqrt((g - 1) / g * np.sum((loo - loo.mean()) ** 2))
    t = stats.t.ppf(0.975, g - 1)
    s.check(int(m) == g and close(float(se), sej, 1e-13) and close(float(lo), est - t * sej, 1e-12)
            and close(float(hi), est + t * sej, 1e-12), f"jackknife: {se} {lo} {hi} vs {sej} {est - t * sej}")
    null = rng.normal(0.02, 0.01, size=99)
    for obs in (0.0, 0.02, 0.5):
        mean, sd, q95, p, m = tool("null", obs, *[repr(x) for x in null])[0].split()
        s.check(int(m) == 99 and close(float(mean), null.mean(), 1e-13) and close(float(sd), null.std(ddof=1), 1e-13)
                and close(float(q95), np.quantile(null, 0.95), 1e-15)
                and float(p) == (1 + np.sum(null >= obs)) / 100, f"null at {obs}: {mean} {sd} {q95} {p}")
        p = float(tool("null_lower", obs, *[repr(x) for x in null])[0].split()[3])
        s.check(p == (1 + np.sum(null <= obs)) / 100, f"null of a distance at {obs}: {p}")
    s.check(tool("boot", "normal", 0.95, 0.5, "0.4")[0].split()[:3] == ["nan"] * 3,
            "one replicate: no standard error or interval")
    r = subprocess.run([TOOL, "boot", "normal", "1.5", "0.5", "0.4", "0.6"], capture_output=True, text=True)
    s.check(r.returncode == 1 and "strictly between 0 and 1" in r.stderr, f"level 1.5 refused: {r.stderr}")
    s.finish()


if __name__ == "__main__":
    main()
