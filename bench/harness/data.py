"""Synthetic inputs shared by repeval and its peers, written once per parameter set
(a stamp file records the parameters; a rerun with the same ones reuses the files)."""
import json
import os

import numpy as np


def _stamp_ok(folder, params):
    try:
        with open(os.path.join(folder, "stamp.json")) as f:
            return json.load(f) == params
    except (OSError, ValueError):
        return False


def _write_stamp(folder, params):
    with open(os.path.join(folder, "stamp.json"), "w") as f:
        json.dump(params, f)


def layer_taps(folder, checkpoints, layers, widths, n, seed=7, latent=48):
    """Embeddings of `layers` layers of `checkpoints` checkpoints of one 'network':
    tap (c, l) has width widths[l % len(widths)] and is relu(Z A_l(c)) + noise, with
    Z (n x latent) shared by all taps and A_l(c) drifting with the checkpoint index,
    so CKA values spread over (0, 1). Returns the file list, checkpoint-major."""
    params = {"kind": "layer_taps", "checkpoints": checkpoints, "layers": layers, "widths": list(widths), "n": n,
              "seed": seed, "latent": latent}
    os.makedirs(folder, exist_ok=True)
    files = [os.path.join(folder, f"c{c:02d}_l{l}.npy") for c in range(checkpoints) for l in range(layers)]
    if _stamp_ok(folder, params) and all(os.path.exists(f) for f in files):
        return files
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent), dtype=np.float32)
    base = [rng.standard_normal((latent, widths[l % len(widths)]), dtype=np.float32) for l in range(layers)]
    k = 0
    for c in range(checkpoints):
        for l in range(layers):
            d = widths[l % len(widths)]
            drift = rng.standard_normal((latent, d), dtype=np.float32)
            a = base[l] + (0.15 * c + 0.3 * l / layers) * drift
            x = np.maximum(z @ a, 0) + (0.5 + 0.1 * l) * rng.standard_normal((n, d), dtype=np.float32)
            np.save(files[k], x.astype(np.float32))
            k += 1
    _write_stamp(folder, params)
    return files


def wide_layers(path, layers, width, n, seed=11, latent=64):
    """One n x (layers * width) float32 matrix: `layers` layers of `width` features,
    each a noisy linear image of a shared latent plus a layer-specific part."""
    params = {"kind": "wide_layers", "layers": layers, "width": width, "n": n, "seed": seed, "latent": latent}
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    if _stamp_ok(folder, params) and os.path.exists(path):
        return path
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent), dtype=np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, layers * width))
    for l in range(layers):
        a = rng.standard_normal((latent, width), dtype=np.float32) / np.sqrt(latent)
        own = rng.standard_normal((n, 16), dtype=np.float32) @ rng.standard_normal((16, width), dtype=np.float32)
        noise = rng.standard_normal((n, width), dtype=np.float32)
        out[:, l * width:(l + 1) * width] = z @ a * (1.0 + 0.05 * l) + 0.3 * own + (0.2 + 0.02 * l) * noise
    out.flush()
    del out
    _write_stamp(folder, params)
    return path
