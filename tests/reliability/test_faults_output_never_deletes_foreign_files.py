"""repeval never deletes or replaces what it did not write (docs/reliability.md,
"Output folders"). Each case points a small real run at an output that holds
someone else's files and checks that the tree is byte-identical afterwards:

  * the output is the folder of the job's datasets (the reported data-loss bug);
  * an existing folder that is not a repeval result, or a result a user added a
    file to, or a result of an older repeval whose manifest lists no files;
  * a symbolic link to a folder with user files (refused, the target untouched),
    and a link to an empty folder (the results go to the target, the link stays);
  * finalize and merge on a linked output;
  * partial folders: swept only with repeval's marker naming an owner that is gone
    (a dead pid on this host); kept without a marker, for another host, or for a
    live process;
  * a second run while one holds the output's lock is refused, naming the holder;
  * a read-only parent folder gives the system's reason (run as user nobody).
"""
import fcntl
import json
import os
import shutil
import socket
import subprocess

from faultlib import FMNIST, REPEVAL, Suite, tmpdir, tree_hash, write

DEMO_CNN = os.path.join(os.environ.get("REPEVAL_SOURCE_DIR", ""), "jobs", "demo")


def job(out, data_dir):
    return f"""name: own
data:
  test: {{format: idx, images: {data_dir}/img.gz, labels: {data_dir}/lab.gz, limit: 64}}
models:
  - {{name: cnn, arch: {DEMO_CNN}/cnn.yaml, layers: [conv2:mean, fc1],
     checkpoints: "{DEMO_CNN}/checkpoints/seed0/epoch_0[12].*"}}
analyses: {{cka: {{pairs: same-layer}}, spectrum: {{}}}}
output: {{dir: {out}}}
"""


def run(*args, cwd=None, env=None, user=None):
    e = dict(os.environ)
    e.update(env or {})
    cmd = [REPEVAL] + [str(a) for a in args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=e, timeout=300)
    return p.returncode, p.stderr


def data_folder(d):
    """The job's inputs, with a user's notes beside them."""
    os.makedirs(d)
    shutil.copy(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"), os.path.join(d, "img.gz"))
    shutil.copy(os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz"), os.path.join(d, "lab.gz"))
    write(os.path.join(d, "notes.txt"), "my notes\n")


def user_folder(d):
    os.makedirs(os.path.join(d, "sub"))
    write(os.path.join(d, "thesis.tex"), "\\section{Results}\n")
    write(os.path.join(d, "sub", "run.log"), "x\n")


def main():
    s = Suite()
    with tmpdir() as root:
        data = os.path.join(root, "in")
        data_folder(data)
        jf = write(os.path.join(root, "job.yaml"), job("results/own", data))

        # the reported bug: output: {dir: in}, where the datasets are
        before = tree_hash(data)
        rc, err = run("run", write(os.path.join(root, "job_in.yaml"), job(data, data)), cwd=root)
        s.check(rc == 1 and "contains the input" in err, f"output = data folder: rc {rc}: {err}")
        s.check(tree_hash(data) == before, "output = data folder: the dataset folder changed")

        for name, make, want in [
            ("a user's folder", user_folder, "is not a repeval result"),
            ("an older result", lambda d: (os.makedirs(d), write(os.path.join(d, "manifest.json"),
                                                                  '{"repeval_version": "0.1.0"}\n')),
             "older repeval"),
        ]:
            out = os.path.join(root, "u" + str(abs(hash(name)) % 1000))
            make(out)
            before = tree_hash(out)
            for flags in ([], ["--check"]):
                rc, err = run("run", jf, "--out", out, "--quiet", *flags, cwd=root)
                s.check(rc == 1 and want in err, f"{name} {flags}: rc {rc}: {err}")
            s.check(tree_hash(out) == before, f"{name}: it changed")

        # a result, then a user's file put into it
        out = os.path.join(root, "res")
        rc, err = run("run", jf, "--out", out, "--quiet", cwd=root)
        s.check(rc == 0, f"first run: {err}")
        man = json.load(open(os.path.join(out, "manifest.json")))
        listed = set(man["output"]["files"])
        present = {os.path.relpath(os.path.join(dp, f), out) for dp, _, fs in os.walk(out) for f in fs}
        s.check(man["output"]["marker"] == "repeval-results-1" and listed == present,
                f"the manifest lists exactly the folder's files: {sorted(listed ^ present)}")
        rc, err = run("report", out)
        s.check(rc == 0, f"report: {err}")
        rc, err = run("run", jf, "--out", out + "/", "--quiet", cwd=root)  # trailing slash, report.html there
        s.check(rc == 0 and not os.path.exists(out + ".state"), f"rerun over a result (out/): rc {rc}: {err}")
        write(os.path.join(out, "my_analysis.ipynb"), "{}\n")
        before = tree_hash(out)
        rc, err = run("run", jf, "--out", out, "--quiet", cwd=root)
        s.check(rc == 1 and "my_analysis.ipynb, which repeval did not write" in err, f"result + user file: {err}")
        s.check(tree_hash(out) == before, "result + user file: it changed")
        os.remove(os.path.join(out, "my_analysis.ipynb"))

        # links: resolved once; the rules apply to the folder they name
        target = os.path.join(root, "scratch", "mine")
        user_folder(target)
        os.symlink(target, os.path.join(root, "link"))
        before = tree_hash(target)
        rc, err = run("run", jf, "--out", "link", "--quiet", cwd=root)
        s.check(rc == 1 and "is not a repeval result" in err, f"link to a user's folder: {err}")
        s.check(tree_hash(target) == before and os.path.islink(os.path.join(root, "link")),
                "link to a user's folder: the target or the link changed")
        empty = os.path.join(root, "scratch", "empty")
        os.makedirs(empty)
        os.symlink(empty, os.path.join(root, "link2"))
        rc, err = run("run", jf, "--out", "link2", "--quiet", cwd=root)
        s.check(rc == 0 and os.path.islink(os.path.join(root, "link2")) and
                os.path.isfile(os.path.join(empty, "metrics.csv")), f"link to an empty folder: {err}")
        first = open(os.path.join(empty, "metrics.csv")).read()
        rc, err = run("finalize", jf, "--out", "link2", "--quiet", cwd=root)
        s.check(rc == 0 and os.path.islink(os.path.join(root, "link2")) and
                open(os.path.join(empty, "metrics.csv")).read() == first, f"finalize through a link: {err}")
        os.makedirs(os.path.join(root, "scratch", "merged"))
        os.symlink(os.path.join(root, "scratch", "merged"), os.path.join(root, "link4"))
        for i in range(2):
            rc, err = run("run", jf, "--out", "link4", "--part", f"{i}/2", "--quiet", cwd=root)
            s.check(rc == 0 and os.path.isdir(os.path.join(root, "scratch", "merged.parts")), f"part {i}: {err}")
        rc, err = run("merge", jf, "--out", "link4", "--quiet", cwd=root)
        s.check(rc == 0 and os.path.isfile(os.path.join(root, "scratch", "merged", "metrics.csv")) and
                os.path.islink(os.path.join(root, "link4")), f"merge through a link: {err}")

        # partial folders of earlier runs
        me = socket.gethostname()
        boot = open("/proc/sys/kernel/random/boot_id").read().strip()
        dead = subprocess.Popen(["true"])
        dead.wait()
        start = open(f"/proc/{os.getpid()}/stat").read().rsplit(")", 1)[1].split()[19]
        partials = {
            "res.partial-1": None,  # no marker: not known to be repeval's
            "res.partial-2": f"host={me} pid={dead.pid} start=1 boot={boot}",  # gone: swept
            "res.partial-3": f"host=another-node pid={dead.pid} start=1 boot={boot}",  # elsewhere: kept
            "res.partial-4": f"host={me} pid={os.getpid()} start={start} boot={boot}",  # alive: kept
        }
        for name, marker in partials.items():
            user_folder(os.path.join(root, name))
            if marker:
                write(os.path.join(root, name, ".repeval-partial"), marker + "\n")
        # a run killed while it made its folder: empty, or only a marker without its line
        os.makedirs(os.path.join(root, "res.partial-5"))
        os.makedirs(os.path.join(root, "res.partial-6"))
        write(os.path.join(root, "res.partial-6", ".repeval-partial"), "host=" + me[:3])
        os.makedirs(os.path.join(root, "res.partial-7"))  # the same, but with a file of the user's
        write(os.path.join(root, "res.partial-7", ".repeval-partial"), "")
        write(os.path.join(root, "res.partial-7", "notes.txt"), "mine\n")
        swept = {"res.partial-2", "res.partial-5", "res.partial-6"}
        rc, err = run("run", jf, "--out", out, "--quiet", cwd=root)
        s.check(rc == 0, f"run beside partial folders: {err}")
        for name in sorted(set(partials) | {"res.partial-5", "res.partial-6", "res.partial-7"}):
            gone = not os.path.exists(os.path.join(root, name))
            s.check(gone == (name in swept), f"{name} ({partials.get(name)}): {'removed' if gone else 'kept'}")
        s.check(open(os.path.join(root, "res.partial-7", "notes.txt")).read() == "mine\n", "the user's file kept")

        # one run per output
        os.makedirs(out + ".state", exist_ok=True)
        with open(os.path.join(out + ".state", "lock"), "w") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            lk.write("host=elsewhere pid=4242 start=1 boot=x\n")
            lk.flush()
            before = tree_hash(out)
            rc, err = run("run", jf, "--out", out, "--quiet", cwd=root)
            s.check(rc == 1 and "being written by another repeval run" in err and "pid=4242" in err,
                    f"second run on a locked output: rc {rc}: {err}")
            s.check(tree_hash(out) == before, "second run on a locked output: the result changed")
        os.remove(os.path.join(out + ".state", "lock"))
        os.rmdir(out + ".state")

        # a read-only parent: the reason is in the message
        if os.getuid() == 0 and shutil.which("setpriv"):
            ro = os.path.join(root, "ro")
            os.makedirs(ro)
            for d in (root, data):
                os.chmod(d, 0o755)
            os.chmod(jf, 0o644)
            rc, err = run("run", jf, "--out", os.path.join(ro, "out"), "--quiet", cwd=root, user="65534")
            s.check(rc == 1 and "Permission denied" in err, f"read-only parent: rc {rc}: {err}")
    s.finish()


if __name__ == "__main__":
    main()
