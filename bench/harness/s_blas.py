"""BLAS efficiency of the stats stage: GFLOP/s of the minibatch HSIC Gram and pair
products (bench_hsic_stage on the CKA scenario's taps) against this machine's
OpenBLAS sgemm / dgemm / dsyrk peak measured here (bench_gemm_peak)."""
import os

from common import Row, log, run_proc, thread_env
import data
import s_cka

GOAL = 0.70


def run(ctx):
    sz = s_cka.sizes(ctx.quick)
    P, b = sz["checkpoints"] * sz["layers"], sz["batch"]
    rows = []
    for threads in ((1, 2) if ctx.threads2 else (1,)):
        key = f"hsic_stage_{threads}t"
        if key not in ctx.shared:
            files = data.layer_taps(os.path.join(ctx.data, f"cka_n{sz['n']}"), sz["checkpoints"], sz["layers"],
                                    s_cka.WIDTHS, sz["n"])
            log(f"  blas: HSIC stage at {threads} thread(s)")
            ctx.shared[key] = run_proc([ctx.drivers["hsic_stage"], "--batch", b, *files],
                                       env=thread_env(threads)).json()
        st = ctx.shared[key]
        log(f"  blas: GEMM peak at {threads} thread(s)")
        pk = run_proc([ctx.drivers["gemm_peak"], "--n", 1536 if ctx.quick else 3072, "--seconds",
                       1 if ctx.quick else 3, "--gram", f"{b},4096", "--pairs", f"{P},{b * (b - 1) // 2}"],
                      env=thread_env(threads)).json()
        ctx.shared[f"peak_{threads}t"] = pk
        # one thread: rates from CPU time (a shared machine); two: from wall time
        cpu = threads == 1
        peak = pk["dgemm_cpu"] if cpu else pk["dgemm"]
        flops = st["gram_flops"] + st["pairs_flops"]
        rate = flops / (st["compute_cpu_s"] if cpu else st["compute_s"]) / 1e9
        gram_rate = st["gram_flops"] / (st["gram_cpu_s"] if cpu else st["gram_s"]) / 1e9
        pair_rate = st["pairs_flops"] / (st["pairs_cpu_s"] if cpu else st["pairs_s"]) / 1e9
        sfx = "_cpu" if cpu else ""
        eff = rate / peak
        unit = "GFLOP/s (CPU time)" if cpu else "GFLOP/s (wall)"
        rows.append(Row("blas", f"OpenBLAS dgemm peak ({pk['core']}), square n={pk['n']}", unit, peak,
                        threads=threads,
                        notes=f"sgemm {pk['sgemm' + sfx]:.1f}, dgemm {pk['dgemm' + sfx]:.1f}, dsyrk "
                              f"{pk['dsyrk' + sfx]:.1f}; dsyrk at the Gram shape {b}x4096 {pk['dsyrk_gram' + sfx]:.1f},"
                              f" at the pair shape {P}x{b * (b - 1) // 2} {pk['dsyrk_pairs' + sfx]:.1f} GFLOP/s; memcpy "
                              f"{pk.get('copy_gbs', float('nan')):.1f} GB/s"))
        rows.append(Row("blas", f"stats stage (HSIC Gram + pair products) vs dgemm peak, {P} taps, b={b}",
                        unit, rate, peak, "dgemm peak", eff, f">= {GOAL:.0%} of peak",
                        "yes" if eff >= GOAL else "no", threads=threads, ratio_kind="%",
                        notes=f"Gram stage {gram_rate:.1f} GFLOP/s ({gram_rate / pk['dsyrk_gram' + sfx]:.0%}"
                              f" of dsyrk at its shape), pair stage {pair_rate:.1f} GFLOP/s "
                              f"({pair_rate / pk['dsyrk_pairs' + sfx]:.0%} of dsyrk at its shape); ratio column"
                              " = fraction of peak"))
    return rows
