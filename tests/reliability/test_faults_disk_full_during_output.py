"""Fault injection: the disk fills up while `repeval run` writes its results.
The output folder lives on a small tmpfs (as root; otherwise a file-size limit,
`ulimit -f`, stands in) that holds the previous complete result and the
resume state but not a second result. The run must fail with a clear error
naming the file and "No space left on device" (or "File too large"), leave no
<out>.partial-* folder, no temporary or half-written results.tar.zst, and the
previous result byte-identical. With room again, the same command completes
(from the saved reduced statistics) with metrics.csv identical as text to an
uninterrupted run. The embedding cache on a full disk is disabled with a
warning instead of failing the run, with identical metrics. A resume snapshot
that does not fit (one after every batch step) fails the run the same clean
way, and the rerun with room completes with identical metrics."""
import os
import re
import resource
import signal
import shutil
import subprocess

from faultlib import Run, Suite, job_text, leftovers, metrics, same_metrics, tmpdir, tree_hash, write

RANKS = 2
LAYERS = "[conv1:mean, conv2:mean, fc1, fc2]"


def small_job(out, extra=""):
    return job_text(out, n=600).replace("[conv1:mean, conv2:mean, pool2, fc1, fc2]", LAYERS) + extra


def disk_bytes(root):
    """Bytes a folder takes on tmpfs: every file rounded up to 4 KiB pages."""
    total = 0
    for dp, _, fs in os.walk(root):
        for f in fs:
            total += (os.path.getsize(os.path.join(dp, f)) + 4095) // 4096 * 4096
    return total


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                          capture_output=True).returncode == 0


def stray(root):
    """Temporary or partial files anywhere below root."""
    return sorted(os.path.join(dp, f) for dp, ds, fs in os.walk(root) for f in fs + ds
                  if ".tmp" in f or ".partial-" in f or ".old-" in f)


def limit_file_size(limit):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


def full_disk_run(s, d, mnt, job, want, how, may_fit=False):
    """Run on a disk that may be too small: a clean failure, or (may_fit) the new complete result."""
    out = os.path.join(mnt, "out")
    before = tree_hash(out)
    r = Run(RANKS, ["run", job], os.path.join(d, f"{how}.log"))
    rc = r.wait(900)
    err = r.text()
    if rc == 0 and may_fit:
        same_metrics(s, out, want, f"{how}: it fitted")
        s.check(not stray(mnt), f"{how}: no temporary files left: {stray(mnt)}")
        return None
    s.check(rc == 1, f"{how}: exit code {rc}, want 1: {err[-400:]}")
    s.check("No space left on device" in err or "File too large" in err, f"{how}: the error says why: {err[-400:]}")
    s.check(tree_hash(out) == before, f"{how}: the previous result is byte-identical")
    s.check(not leftovers(mnt, "out"), f"{how}: no partial folder left: {leftovers(mnt, 'out')}")
    s.check(not stray(mnt), f"{how}: no temporary files left: {stray(mnt)}")
    return err


def main():
    s = Suite()
    with tmpdir() as d:
        ref_out = os.path.join(d, "ref")
        job_ref = write(os.path.join(d, "ref.yaml"), small_job(ref_out))
        ref = Run(RANKS, ["run", job_ref], os.path.join(d, "ref.log"))
        if not s.check(ref.wait(900) == 0, f"reference run: {ref.text()[-500:]}"):
            s.finish()
        want = metrics(ref_out)
        result = disk_bytes(ref_out)
        stats = disk_bytes(os.path.join(ref_out, "stats"))
        print(f"reference: {ref.seconds:.1f} s, result {result} bytes on disk, statistics {stats} bytes")

        mnt = os.path.join(d, "mnt")
        base = result + stats + 16 * 4096  # the previous result and the reduced statistics fit
        if mount_tmpfs(mnt, base + result):
            try:
                out = os.path.join(mnt, "out")
                job = write(os.path.join(d, "job.yaml"), small_job(out))
                failed_at = []
                # room for 5% .. 110% of what a second result adds (its stats/ is a hard link to
                # the saved reduced state, which base holds): the disk fills at different files
                new = result - stats
                for frac in (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 1.0, 1.1):
                    shutil.rmtree(out, ignore_errors=True)
                    shutil.rmtree(out + ".state", ignore_errors=True)
                    shutil.copytree(ref_out, out)
                    size = (base + int(frac * new)) // 4096 * 4096
                    subprocess.run(["mount", "-o", f"remount,size={size}", mnt], check=True)
                    err = full_disk_run(s, d, mnt, job, want, f"tmpfs_full_{frac}", may_fit=frac > 0.8)
                    line = [ln for ln in (err or "").splitlines() if "repeval: error" in ln]
                    where = re.sub(r"partial-[0-9]+", "partial-PID", line[0]) if line else "it fitted"
                    failed_at.append(where)
                    print(f"tmpfs of {size} bytes: {where}")
                s.check(len(set(failed_at) - {"it fitted"}) >= 3, "the disk filled up at different files")
                subprocess.run(["mount", "-o", f"remount,size={4 * result + 4 * stats + (1 << 20)}", mnt], check=True)
                r = Run(RANKS, ["run", job], os.path.join(d, "room.log"))
                rc = r.wait(900)
                s.check(rc == 0, f"with room again the rerun exits {rc}: {r.text()[-400:]}")
                same_metrics(s, out, want, "rerun after the disk was full")
                s.check(not stray(mnt) and not os.path.exists(out + ".state"), f"clean after the rerun: {stray(mnt)}")
                # the embedding cache on a full disk: disabled with a warning, the run goes on
                shutil.rmtree(out)
                subprocess.run(["mount", "-o", f"remount,size={result + stats + (1 << 20)}", mnt], check=True)
                cache_dir = os.path.join(mnt, "cache")
                filler = os.path.join(mnt, "filler")
                job_c = write(os.path.join(d, "job_cache.yaml"),
                              small_job(os.path.join(d, "out_cache"), extra=f"cache: {{dir: {cache_dir}}}\n"))
                with open(filler, "wb") as f:  # leave about 64 KiB
                    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
                    f.write(b"\0" * max(0, free - 65536))
                r = Run(RANKS, ["run", job_c], os.path.join(d, "cache.log"))
                rc = r.wait(900)
                err = r.text()
                s.check(rc == 0 and "embedding cache disabled" in err and "No space left on device" in err,
                        f"a full cache disk disables the cache: {rc} {err[-400:]}")
                same_metrics(s, os.path.join(d, "out_cache"), want, "run with the cache disabled by a full disk")
                s.check(not stray(mnt), f"no temporary cache files left: {stray(mnt)}")
                # resume snapshots during the pass on a full disk (one after every batch step)
                os.remove(filler)
                shutil.rmtree(cache_dir, ignore_errors=True)
                shutil.rmtree(out + ".state", ignore_errors=True)
                shutil.copytree(ref_out, out)
                before = tree_hash(out)
                with open(filler, "wb") as f:  # leave about 16 KiB: no room for a snapshot
                    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
                    f.write(b"\0" * max(0, free - 16384))
                r = Run(RANKS, ["run", job], os.path.join(d, "snapshot.log"), env={"REPEVAL_CHECKPOINT_EVERY": "0.001"})
                rc = r.wait(900)
                err = r.text()
                s.check(rc == 1 and "saving the resume state" in err and "No space left on device" in err,
                        f"a snapshot on a full disk fails the run, saying why: {rc} {err[-400:]}")
                s.check(tree_hash(out) == before, "snapshot on a full disk: the previous result is byte-identical")
                s.check(not leftovers(mnt, "out") and not stray(mnt),
                        f"snapshot on a full disk: no partial or temporary files: {stray(mnt)}")
                os.remove(filler)
                r = Run(RANKS, ["run", job], os.path.join(d, "snapshot-room.log"))
                s.check(r.wait(900) == 0, f"with room again the rerun exits 0: {r.text()[-300:]}")
                same_metrics(s, out, want, "rerun after a snapshot on a full disk")
            finally:
                subprocess.run(["umount", mnt])
        else:
            # no mount permission: a file-size limit makes the largest output file fail
            print("cannot mount a tmpfs: using a file-size limit (ulimit -f) instead")
            limit = os.path.getsize(os.path.join(ref_out, "metrics.csv")) - 1000
            os.makedirs(mnt)
            out = os.path.join(mnt, "out")
            job = write(os.path.join(d, "job.yaml"), small_job(out))
            shutil.copytree(ref_out, out)
            before = tree_hash(out)
            e = dict(os.environ)
            log = open(os.path.join(d, "ulimit.log"), "w")
            p = subprocess.run([os.environ.get("REPEVAL_MPIEXEC") or "mpiexec", "--oversubscribe", "-n", str(RANKS),
                                os.environ.get("REPEVAL_BIN", "repeval"), "run", job], stdout=subprocess.DEVNULL,
                               stderr=log, env=e, preexec_fn=limit_file_size(limit), timeout=900)
            log.close()
            err = open(os.path.join(d, "ulimit.log")).read()
            s.check(p.returncode == 1 and "File too large" in err, f"ulimit -f: {p.returncode} {err[-400:]}")
            s.check(tree_hash(out) == before and not leftovers(mnt, "out") and not stray(mnt),
                    f"ulimit -f: previous result untouched, nothing left: {stray(mnt)}")
            r = Run(RANKS, ["run", job], os.path.join(d, "room.log"))
            s.check(r.wait(900) == 0, f"without the limit the rerun exits 0: {r.text()[-300:]}")
            same_metrics(s, out, want, "rerun after the file-size limit")
    s.finish()


if __name__ == "__main__":
    main()
