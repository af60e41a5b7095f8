"""torch.save checkpoints read by the library give PyTorch's tensors exactly:
for state_dicts of torch.nn modules (Linear, Conv2d, BatchNorm2d with running
statistics and int64 num_batches_tracked), every dtype torch writes, strided views
and tensors sharing one storage, nested training checkpoints with scalar
metadata, the state_dict selection rule, DataParallel's "module." prefix,
parameters, a bare tensor, pickle protocol 4, deflated members and big-endian
storages. Values are compared bit-exactly after float32 conversion against
torch.load; names, order, dtypes, shapes, metadata, zero-copy mapping and
`repeval inspect --json` are checked too."""
import os

import torch

from ckpt_fixtures import check_expectation, make_fixtures
from common import Suite


def torch_reference(loaded, file, opts):
    """What each fixture's state_dict is, stated per file, from torch.load's result."""
    if isinstance(loaded, torch.Tensor):
        sd = {"lone": loaded}
    elif "--state-dict-key" in opts:
        sd = loaded[opts[opts.index("--state-dict-key") + 1]]
    elif file == "nested.pt":
        sd = loaded["model"]
    elif file == "prefer.pt":
        sd = loaded["state_dict"]
    else:
        sd = loaded
    if file == "dp.pt" and "--keep-module-prefix" not in opts:
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return {k: v.detach().to(torch.float32).contiguous().numpy() for k, v in sd.items()}


def main():
    s = Suite()
    fx, spec = make_fixtures("ckpt-fixtures-torch")
    files = [f for f in spec if f.endswith(".pt")]
    s.check(len(files) >= 12, f"only {len(files)} .pt fixtures")
    for file in files:
        # the reference values come from torch.load of the very file we read, except
        # that this torch predates the byteorder member: bigendian.pt holds lin.pt's
        # tensors byte-swapped
        loaded = torch.load(os.path.join(fx, "lin.pt" if file == "bigendian.pt" else file))
        for exp in spec[file]:
            big_endian = file == "bigendian.pt"

            def view_expected(name, ref):
                return ref["dtype"] == "float32" and ref["contiguous"] and not big_endian

            ref = torch_reference(loaded, file, exp["options"])
            s.check(sorted(ref) == sorted(exp["tensors"]), f"{file}: torch.load names {sorted(ref)}")
            check_expectation(s, fx, file, exp, "pytorch", view_expected, ref)
    s.finish()


if __name__ == "__main__":
    main()
