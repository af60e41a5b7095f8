"""The checkpoint readers and the dispatcher form no cycle (read from the symbols
of the built library, librepeval.a): checkpoint.c reaches the readers only
through their re_ckpt_reader_* entries, and no reader object (safetensors.c,
torch_ckpt.c, ckpt_npy.c, ckpt_folder.c, nor the index and cache code they use)
refers to any symbol defined in checkpoint.c. The tensor-table helpers they
share are defined in ckpt_table.c, which refers to neither."""
import os
import subprocess
import sys

from common import Suite

LIB = os.environ.get("REPEVAL_LIB", "")


def symbols(lib):
    """{object: (defined, undefined)} from nm."""
    out = subprocess.run(["nm", "-A", lib], capture_output=True, text=True, check=True).stdout
    objs = {}
    for line in out.splitlines():
        where, _, rest = line.rpartition(":")
        obj = where.rsplit(":", 1)[-1]
        parts = rest.split()
        if len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1]
        d, u = objs.setdefault(obj, (set(), set()))
        if kind == "U":
            u.add(name)
        elif kind.isupper():
            d.add(name)
    return objs


def main():
    s = Suite()
    if not LIB or not os.path.isfile(LIB):
        print(f"REPEVAL_LIB={LIB!r} is not the static library; skipped")
        sys.exit(77)
    objs = symbols(LIB)
    disp = objs.get("checkpoint.c.o")
    table = objs.get("ckpt_table.c.o")
    if not s.check(disp is not None and table is not None, f"objects: {sorted(objs)}"):
        s.finish()
    readers = {o for o, (d, _) in objs.items() if any(n.startswith("re_ckpt_reader_") for n in d)}
    s.check({"safetensors.c.o", "torch_ckpt.c.o", "ckpt_npy.c.o", "ckpt_folder.c.o"} <= readers,
            f"reader objects {sorted(readers)}")
    used_by_readers = readers | {"hf_index.c.o", "hf_cache.c.o", "zipdir.c.o", "pickle.c.o", "jsonparse.c.o"}
    for o in sorted(used_by_readers):
        back = objs[o][1] & disp[0]
        s.check(not back, f"{o} calls into checkpoint.c: {sorted(back)}")
    s.check(not (table[1] & disp[0]), f"ckpt_table.c calls into checkpoint.c: {sorted(table[1] & disp[0])}")
    s.check(not any(n.startswith("re_ckpt_reader_") for n in table[1]), "ckpt_table.c refers to a reader")
    wanted = {f"re_ckpt_reader_{r}" for r in ("folder", "npy", "safetensors", "torch", "npz")}
    s.check(wanted <= disp[1], f"the dispatcher's table lacks {sorted(wanted - disp[1])}")
    s.finish()


if __name__ == "__main__":
    main()
