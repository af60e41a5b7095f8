"""`repeval probe --kind mlp` against PyTorch on a problem no linear probe solves
(classes from a ring and a half-space, 300 training rows, 6 features, 16 hidden
units): the exported weights (raw feature coordinates) are a stationary point of
the documented objective f = mean cross-entropy + lambda/2 (||W1||^2 + ||W2||^2)
on standardised features with GELU units — PyTorch autograd's gradient there is
below 1e-6 and f equals the reported one to 1e-9; with ReLU units f and the
predictions follow the weights too — and with no iteration they are the documented
start (splitmix64 uniform, PyTorch's nn.Linear bounds); the predictions and the
test accuracy follow from the weights (PyTorch forward pass); the MLP beats the
logistic probe; and the sweep picks the lambda with the most correct validation
predictions (ties: lower loss, then larger lambda) on the documented split."""
import json
import os

import numpy as np
import torch

from common import Suite, repeval, tmpdir
from probe_ref import validation_mask

N, NT, D, H = 300, 200, 6, 16
MASK = (1 << 64) - 1


def problem():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N + NT, D)) * [1, 1, 1, 2, 3, 0.5] + [0, 0, 0, 5, -2, 1]
    r2 = x[:, 0] ** 2 + x[:, 1] ** 2
    y = (r2 > 1.4).astype(np.int64) + (x[:, 2] > 0.3)
    return x.astype(np.float32), y


def start(seed, d, h, k):
    """The documented starting point in standardised coordinates."""
    out, state = [], seed & MASK
    n = h * d + h + k * h + k
    for i in range(n):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        u = (z >> 11) * 2.0 ** -53
        fan = d if i < h * d + h else h
        out.append((2 * u - 1) / np.sqrt(fan))
    return np.array(out)


def unpack(w, d, h, k):
    w1 = w[:h * d].reshape(h, d)
    b1 = w[h * d:h * d + h]
    w2 = w[h * d + h:h * d + h + k * h].reshape(k, h)
    b2 = w[h * d + h + k * h:]
    return w1, b1, w2, b2


def standardised(w, mu, s, d, h, k):
    """Raw-coordinate weights -> parameters on z = (x - mu) / s."""
    w1, b1, w2, b2 = unpack(w, d, h, k)
    return w1 * s, b1 + w1 @ mu, w2, b2


ACT = {"gelu": torch.nn.functional.gelu, "relu": torch.relu}  # gelu: the erf form


def objective(params, z, y, lam, act="gelu"):
    w1, b1, w2, b2 = params
    logits = ACT[act](z @ w1.T + b1) @ w2.T + b2
    return torch.nn.functional.cross_entropy(logits, y) + 0.5 * lam * (w1.pow(2).sum() + w2.pow(2).sum())


def main():
    s = Suite()
    x, y = problem()
    k = int(y.max()) + 1
    with tmpdir() as d:
        for name, a in (("tr", x[:N]), ("trl", y[:N]), ("te", x[N:]), ("tel", y[N:])):
            np.save(os.path.join(d, name + ".npy"), a)
        base = ["probe", "--train", f"{d}/tr.npy", "--train-labels", f"{d}/trl.npy", "--test", f"{d}/te.npy",
                "--test-labels", f"{d}/tel.npy", "--json"]
        lam = 1e-3
        xt = torch.from_numpy(x[:N].astype(np.float64))
        mu = xt.mean(0)
        sd = xt.std(0, unbiased=False)
        z = (xt - mu) / sd
        for act in ("gelu", "relu"):
            rc, out, err = repeval(*base, "--kind", "mlp", "--hidden", H, "--lambdas", lam, "--tol", 1e-9, "--ftol",
                                   0, "--max-iter", 20000, "--weights", f"{d}/w.npy", "--predictions",
                                   f"{d}/p.npy", "--activation", act)
            if not s.check(rc == 0, f"mlp probe ({act}): {err}"):
                s.finish()
            res = json.loads(out)
            w = np.load(os.path.join(d, "w.npy"))
            s.check(w.shape == (H * D + H + k * H + k,), f"weights: {w.shape}")
            params = [torch.tensor(p, dtype=torch.float64, requires_grad=True)
                      for p in standardised(w, mu.numpy(), sd.numpy(), D, H, k)]
            f = objective(params, z, torch.from_numpy(y[:N]), lam, act)
            f.backward()
            g = max(float(p.grad.abs().max()) for p in params)
            if act == "gelu":  # smooth: a stationary point (ReLU's minima sit on kinks)
                s.check(g <= 1e-6 and res["refit"]["stop"] == "gradient",
                        f"PyTorch's gradient at the exported weights: {g:.3g} (stop {res['refit']['stop']})")
            s.close(res["refit"]["f"], float(f), 1e-9, f"reported objective ({act})")
            # predictions and accuracy from the weights alone
            w1, b1, w2, b2 = (torch.from_numpy(a) for a in unpack(w, D, H, k))
            logits = ACT[act](torch.from_numpy(x[N:].astype(np.float64)) @ w1.T + b1) @ w2.T + b2
            pred = logits.argmax(1).numpy()
            s.check(np.array_equal(np.load(os.path.join(d, "p.npy")), pred), f"predictions are the argmax ({act})")
            s.close(res["test"]["top1"], float(np.mean(pred == y[N:])), 1e-12, f"test accuracy ({act})")
        rc, out, _ = repeval(*base, "--kind", "logistic")
        lin = json.loads(out)["test"]["top1"]
        s.check(res["test"]["top1"] > lin + 0.2, f"MLP {res['test']['top1']} beats logistic {lin}")
        # no iteration: the documented start
        rc, out, err = repeval(*base, "--kind", "mlp", "--hidden", H, "--lambdas", lam, "--max-iter", 0,
                               "--weights", f"{d}/w0.npy", "--init-seed", 77)
        w0 = np.load(os.path.join(d, "w0.npy"))
        got = np.concatenate([a.ravel() for a in standardised(w0, mu.numpy(), sd.numpy(), D, H, k)])
        s.check(rc == 0 and np.abs(got - start(77, D, H, k)).max() < 1e-12, "max-iter 0 gives the documented start")
        # the sweep: selection on the documented validation split
        rc, out, err = repeval(*base, "--kind", "mlp", "--hidden", H, "--seed", 5, "--max-iter", 300)
        sw = json.loads(out)
        lams = [c["lambda"] for c in sw["curve"]]
        s.check(rc == 0 and np.allclose(lams, np.logspace(-5, -1, 5)), f"the MLP's own grid: {lams}")
        nval = int(validation_mask(N, 0.1, 5).sum())
        s.check(sw["n_val"] == nval and sw["n_train"] == N - nval, f"split sizes {sw['n_train']} {sw['n_val']}")
        best = max(sw["curve"], key=lambda c: (c["val"]["correct"], -c["val"]["loss"], c["lambda"]))
        s.check(sw["lambda"] == best["lambda"], f"selected {sw['lambda']}, rule gives {best['lambda']}")
    s.finish()


if __name__ == "__main__":
    main()
