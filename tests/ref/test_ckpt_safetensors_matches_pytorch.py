"""safetensors files read by the library give the PyTorch tensors they were
written from, bit-exactly after float32 conversion: a torch.nn state_dict, every
safetensors dtype we read (F16 with inf/nan/subnormals, BF16, F64, integers,
BOOL, 0-d and empty tensors), data stored in a different order than the header,
and non-ASCII names written as \\u escapes (including a surrogate pair). Tensors
are listed in header order, metadata comes from __metadata__, every tensor
points into the file's memory map, and float32 tensors whose bytes are 4-byte
aligned in the file are available as zero-copy views."""
import json
import os
import struct

from ckpt_fixtures import check_expectation, make_fixtures
from common import Suite


def data_start_and_offsets(path):
    """Independent reading of the header with Python's json module."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return 8 + n, {k: v["data_offsets"][0] for k, v in header.items()}, list(header)


def main():
    s = Suite()
    fx, spec = make_fixtures("ckpt-fixtures-safetensors")
    files = [f for f in spec if f.endswith(".safetensors")]
    s.check(len(files) >= 4, f"only {len(files)} .safetensors fixtures")
    for file in files:
        start, begin, header_order = data_start_and_offsets(os.path.join(fx, file))
        for exp in spec[file]:
            s.check(exp["order"] == header_order, f"{file}: fixture order is the header order")

            def view_expected(name, ref):
                return ref["dtype"] == "float32" and (start + begin[name]) % 4 == 0

            check_expectation(s, fx, file, exp, "safetensors", view_expected)
    s.finish()


if __name__ == "__main__":
    main()
