"""Checkpoints whose pickle would run code are refused, naming the global or
opcode, and nothing is executed: GLOBAL os.system + REDUCE, STACK_GLOBAL
builtins.exec (protocol 4), INST, a call hidden in a tensor's backward hooks, and
a whole pickled nn.Module. Python's own pickle does execute the first fixture
(proving it is malicious). Legacy non-zip checkpoints are refused with advice to
re-save, and bad --state-dict-key selections are reported with the available keys."""
import os
import subprocess
import sys
import zipfile

from ckpt_fixtures import CKPT_DUMP, make_fixtures
from common import Suite, repeval, run

REFUSALS = [
    ("evil_global.pt", "refusing global 'os.system'"),
    ("evil_stack_global.pt", "refusing global 'builtins.exec'"),
    ("evil_inst.pt", "unsupported pickle opcode INST"),
    ("evil_hook.pt", "refusing global 'posix.system'"),
    ("whole_module.pt", "refusing global 'torch.nn.modules.container.Sequential'"),
    ("legacy.pt", "re-save it with torch.save"),
]


def main():
    s = Suite()
    fx, _ = make_fixtures("ckpt-fixtures-refusals")
    marker = os.path.join(fx, "PWNED")
    for file, msg in REFUSALS:
        path = os.path.join(fx, file)
        rc, out, err = repeval("inspect", path)
        s.check(rc == 1, f"{file}: inspect exit code {rc}, want 1")
        s.check(msg in err, f"{file}: message {err.strip()!r} lacks {msg!r}")
        s.check(out == "", f"{file}: inspect printed {out!r}")
        rc, _, err = run([CKPT_DUMP, path, fx])
        s.check(rc == 1 and msg in err, f"{file}: library open gives {rc} {err.strip()!r}")
        s.check(not os.path.exists(marker), f"{file}: the payload ran")

    # the same bytes through Python's unrestricted unpickler do run the command
    with zipfile.ZipFile(os.path.join(fx, "evil_global.pt")) as z:
        payload = z.read("evil/data.pkl")
    subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
                   input=payload, check=False, capture_output=True)
    s.check(os.path.exists(marker), "the os.system fixture is not actually malicious")
    if os.path.exists(marker):
        os.remove(marker)

    # --state-dict-key: a missing key lists what is there; a non-tensor value is named
    nested = os.path.join(fx, "nested.pt")
    rc, _, err = repeval("inspect", nested, "--state-dict-key", "nope")
    s.check(rc == 1 and "no key 'nope'" in err and "'model'" in err and "'optimizer'" in err,
            f"missing key: {rc} {err.strip()!r}")
    rc, _, err = repeval("inspect", nested, "--state-dict-key", "optimizer")
    s.check(rc == 1 and "'optimizer' holds a dict without tensors" in err, f"optimizer key: {rc} {err.strip()!r}")
    rc, _, err = repeval("inspect", nested, "--state-dict-key")
    s.check(rc == 2, f"--state-dict-key without a value exits {rc}, want 2")
    s.finish()


if __name__ == "__main__":
    main()
