"""Helpers for the tests that run against the real one-node Slurm cluster of
slurm/local-cluster/start (brought up by the CTest fixture slurm_cluster):
find its slurm.conf, run Slurm commands, wait for jobs with timeouts, and show
the batch log when something goes wrong."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ref"))

from common import SOURCE_DIR  # noqa: E402,F401

# the same rule as slurm/local-cluster/common.sh
STATE_DIR = os.environ.get("REPEVAL_SLURM_DIR") or os.path.join(
    os.environ.get("TMPDIR") or "/tmp", f"repeval-slurm-{os.getuid()}")
if "SLURM_CONF" not in os.environ:
    os.environ["SLURM_CONF"] = os.path.join(STATE_DIR, "slurm.conf")
# the batch jobs inherit this environment (sbatch --export=ALL); a value left
# from an outer Slurm job would confuse srun
for k in list(os.environ):
    if k.startswith("SLURM_") and k != "SLURM_CONF":
        del os.environ[k]


def cmd(args, timeout=60, check=True):
    """Run a command; returns stdout. With check, a failure raises with stderr."""
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def require_cluster():
    """Exit with a clear message if the cluster does not answer."""
    try:
        out = cmd(["sinfo", "-h", "-o", "%T %D"], timeout=30)
    except Exception as e:  # noqa: BLE001
        print(f"the local Slurm cluster does not answer (SLURM_CONF={os.environ['SLURM_CONF']}): {e}\n"
              "start it with slurm/local-cluster/start (ctest does this through the slurm_cluster fixture)",
              file=sys.stderr)
        sys.exit(1)
    return out


def node_cpus():
    return int(cmd(["sinfo", "-h", "-N", "-o", "%c"]).split()[0])


def job_info(jobid):
    """Fields of `scontrol show job` as a dict (finished jobs stay for MinJobAge)."""
    out = cmd(["scontrol", "-o", "show", "job", str(jobid)], check=False)
    info = {}
    for m in re.finditer(r"(\w+)=(\S*)", out):
        info.setdefault(m.group(1), m.group(2))
    return info


def job_names():
    """Names of every job the controller knows (queued, running or recently finished)."""
    out = cmd(["scontrol", "-o", "show", "jobs"], check=False)
    return set(re.findall(r"JobName=(\S+)", out))


TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED"}


def wait_state(jobid, states, timeout):
    """Poll until the job is in one of `states` (or a terminal state); returns the
    last job_info. Raises TimeoutError after `timeout` seconds."""
    end = time.time() + timeout
    info = {}
    while time.time() < end:
        info = job_info(jobid)
        st = info.get("JobState", "")
        if st in states or st in TERMINAL:
            return info
        time.sleep(0.5)
    raise TimeoutError(f"job {jobid} still {info.get('JobState', '?')} after {timeout} s "
                       f"(reason {info.get('Reason', '?')})")


def wait_done(jobid, timeout=300):
    return wait_state(jobid, TERMINAL, timeout)


def wait_file_text(path, needle, timeout):
    """Poll until `needle` appears in the file; returns whether it did."""
    end = time.time() + timeout
    while time.time() < end:
        if os.path.isfile(path) and needle in open(path, errors="replace").read():
            return True
        time.sleep(0.3)
    return False


def show_log(path, why):
    """Print a batch log (for a failed check) to stderr."""
    print(f"---- {why}: {path}", file=sys.stderr)
    if os.path.isfile(path):
        sys.stderr.write(open(path, errors="replace").read())
    else:
        print("(no log file)", file=sys.stderr)
    for name in ("slurmctld.log", "slurmd.log"):
        p = os.path.join(STATE_DIR, "log", name)
        if os.path.isfile(p):
            lines = open(p, errors="replace").read().splitlines()[-15:]
            print(f"---- last lines of {p}", file=sys.stderr)
            print("\n".join(lines), file=sys.stderr)


def sbatch(script_path, *args):
    """Submit a batch script; returns the job id."""
    out = cmd(["sbatch", "--parsable", *args, script_path])
    return out.strip().split(";")[0]


FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")
DEMO = os.path.join(SOURCE_DIR, "jobs", "demo")


def write_job(d, name, slurm="", output=None, limit=200, checkpoints="seed{0..1}/epoch_05.*",
              layers="[conv1:mean, fc1]", analyses="cka: {batch: 100}", fname="job.yaml"):
    """A small job on the demo CNN checkpoints and Fashion-MNIST; returns its path.
    `slurm` is the YAML text of the slurm map's entries (indented by the caller
    with two spaces), `output` the output.dir (default <d>/out)."""
    path = os.path.join(d, fname)
    text = f"""name: {name}
data:
  fmnist:
    format: idx
    images: {FMNIST}/t10k-images-idx3-ubyte.gz
    labels: {FMNIST}/t10k-labels-idx1-ubyte.gz
    normalize: {{mean: [0.286], std: [0.353]}}
    limit: {limit}
models:
  - name: cnn
    arch: {DEMO}/cnn.yaml
    checkpoints: "{DEMO}/checkpoints/{checkpoints}"
    layers: {layers}
analyses:
  {analyses}
output: {{dir: "{output or os.path.join(d, 'out')}"}}
"""
    if slurm:
        text += "slurm:\n" + slurm
    with open(path, "w") as f:
        f.write(text)
    return path
