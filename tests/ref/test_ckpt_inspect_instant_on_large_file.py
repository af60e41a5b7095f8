"""`repeval inspect` on a 1 GiB safetensors file reads only the header: it
finishes in well under a second and its peak memory stays far below the file
size (the file is sparse, so generating it costs nothing; touching its data would
map 1 GiB of pages). The listed tensor and metadata match the header."""
import json
import os
import resource
import struct
import time

from common import REPEVAL, Suite, run

GIB = 1 << 30


def main():
    s = Suite()
    path = os.path.join(os.getcwd(), "ckpt-large.safetensors")
    header = {"__metadata__": {"format": "pt"},
              "big": {"dtype": "F32", "shape": [GIB // 4], "data_offsets": [0, GIB]},
              "tail": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [GIB, GIB + 8]}}
    js = json.dumps(header).encode()
    js += b" " * ((8 - (8 + len(js)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js)
        f.truncate(8 + len(js) + GIB + 8)
    try:
        t0 = time.monotonic()
        rc, out, err = run([REPEVAL, "inspect", path, "--json"])
        dt = time.monotonic() - t0
        rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"inspect of a {os.path.getsize(path) / GIB:.2f} GiB safetensors file: {dt * 1000:.1f} ms, "
              f"peak RSS {rss_mib:.1f} MiB")
        s.check(rc == 0, f"inspect exited {rc}: {err}")
        if rc == 0:
            j = json.loads(out)
            s.check([(t["name"], t["dtype"], t["shape"], t["bytes"]) for t in j["tensors"]] ==
                    [("big", "float32", [GIB // 4], GIB), ("tail", "bfloat16", [2, 2], 8)], f"tensors {j['tensors']}")
            s.check(j["metadata"] == {"format": "pt"}, f"metadata {j['metadata']}")
            s.check(j["bytes"] == GIB + 8, f"total bytes {j['bytes']}")
        s.check(dt < 2.0, f"inspect took {dt:.2f} s on a 1 GiB file")
        s.check(rss_mib < 256, f"peak RSS {rss_mib:.0f} MiB: tensor data was touched")
    finally:
        os.remove(path)
    s.finish()


if __name__ == "__main__":
    main()
