/* Products with weights packed once per checkpoint (see kern.h): B in panels of 16
 * columns; A packed per call into slivers of 6 rows, by blocks of rows and of the
 * reduction that stay in the L2 cache (Goto & van de Geijn 2008's layering: B blocks of
 * KC x 16 stay near while every sliver of the A block passes); one micro-kernel (two
 * panels at a time where AVX-512 makes a panel row one vector); bias,
 * residual and activation applied to each finished tile before it is stored. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kern.h"

#define KC 768         /* reduction block (a multiple of 8) */
#define MC_BLOCKED 192 /* rows per task when the reduction is blocked */
#define L2_BUDGET (384 * 1024)

int64_t re_pack_floats(int64_t K, int64_t N) { return (N + RE_NR - 1) / RE_NR * RE_NR * re_pad8(K); }

re_status re_pack_b(const float *src, int64_t K, int64_t N, int64_t sk, int64_t sn, re_pack *out) {
  int64_t n;
  float *w;
  memset(out, 0, sizeof *out);
  RE_TRY(re_mul_i64((N + RE_NR - 1) / RE_NR * RE_NR, re_pad8(K), &n));
  RE_TRY(re_kern_alloc(n, &w));
  re_pack_b_into(src, K, N, sk, sn, w, out);
  return RE_OK;
}

void re_pack_b_into(const float *src, int64_t K, int64_t N, int64_t sk, int64_t sn, float *w, re_pack *out) {
  out->K = K;
  out->Kp = re_pad8(K);
  out->N = N;
  out->np = (N + RE_NR - 1) / RE_NR;
  out->w = w;
  for (int64_t j = 0; j < out->np; j++)
    for (int64_t k = 0; k < out->Kp; k++) {
      float *d = out->w + (j * out->Kp + k) * RE_NR;
      for (int64_t c = 0; c < RE_NR; c++) {
        int64_t col = j * RE_NR + c;
        d[c] = k < K && col < N ? src[k * sk + col * sn] : 0.0f;
      }
    }
}

void re_pack_free(re_pack *p) {
  free(p->w);
  memset(p, 0, sizeof *p);
}

/* Rows per task: with one reduction block, as many as fit the L2 budget; blocked, a fixed
 * MC_BLOCKED (the partial sums of the task's tiles wait in `acc`). */
static int64_t task_rows(int64_t Kp) {
  if (Kp > KC)
    return MC_BLOCKED;
  int64_t r = L2_BUDGET / (Kp * 4) / RE_MR * RE_MR;
  return r < RE_MR ? RE_MR : r > 240 ? 240 : r;
}

static int64_t per_thread(const re_pack *b) {
  int64_t mc = task_rows(b->Kp), kc = b->Kp > KC ? KC : b->Kp;
  int64_t acc = b->Kp > KC ? mc * b->np * RE_NR : 2 * RE_MR * RE_NR;
  return mc * kc + acc + 64;
}

int64_t re_gemm_op_work(const re_pack *b, int threads) { return (int64_t)threads * per_thread(b); }

/* The finished tile t of sliver s (rows r0 + 6 s ...) and panel j through the epilogue. */
static void store_tile(const re_gemm_op *op, int64_t r0, int64_t rows, int64_t s, int64_t j, const float *t) {
  int64_t i = r0 + s * RE_MR;
  int mr = rows - s * RE_MR < RE_MR ? (int)(rows - s * RE_MR) : RE_MR;
  int nc = op->nc_max - j * RE_NR < RE_NR ? (int)(op->nc_max - j * RE_NR) : RE_NR;
  float *dst[RE_MR];
  const float *rp[RE_MR];
  int64_t off8 = 8;
  for (int r = 0; r < mr; r++)
    op->dst(op, i + r, j, &dst[r], &rp[r], &off8);
  re_k_store(t, mr, nc, dst, off8, rp[0] ? rp : NULL, op->e->bias ? op->e->bias + j * RE_NR : NULL, op->e);
}

/* Task `task` of op (row block c = task / groups, panel group task % groups), in the
 * thread's workspace w; panels two at a time (re_k_tile2), an odd last one alone. */
static void run_task(const re_gemm_op *op, int64_t task, int64_t groups, float *w, re_tile2_fn tile2) {
  const re_pack *b = op->b;
  int64_t Kp = b->Kp, mc = task_rows(Kp), nkb = (Kp + KC - 1) / KC, kcmax = Kp > KC ? KC : Kp;
  float *a = w, *acc = (float *)(((uintptr_t)(a + mc * kcmax) + 63) & ~(uintptr_t)63);
  int64_t c = task / groups, grp = task % groups, r0 = c * mc, rows = op->M - r0 < mc ? op->M - r0 : mc;
  int64_t j0 = grp * b->np / groups, j1 = (grp + 1) * b->np / groups, ns = (rows + RE_MR - 1) / RE_MR;
  for (int64_t kb = 0; kb < nkb; kb++) {
    int64_t k0 = kb * KC, kc = Kp - k0 < KC ? Kp - k0 : KC;
    op->pack(op, r0, rows, k0, kc, a);
    for (int64_t j = j0; j < j1; j += 2) {
      int two = j + 1 < j1;
      const float *bp = b->w + (j * Kp + k0) * RE_NR;
      for (int64_t s = 0; s < ns; s++) {
        /* one block: the tiles go straight to the epilogue; several: partial sums in acc */
        float *t = nkb == 1 ? acc : acc + ((j - j0) * ns + s) * RE_MR * RE_NR;
        float *t1 = nkb == 1 ? acc + RE_MR * RE_NR : t + ns * RE_MR * RE_NR;
        if (two)
          tile2(kc / 8, a + s * kc * RE_MR, 48, bp, bp + Kp * RE_NR, t, t1, RE_NR, kb > 0);
        else
          re_k_tile(kc / 8, a + s * kc * RE_MR, 48, bp, t, RE_NR, kb > 0);
        if (kb < nkb - 1)
          continue;
        store_tile(op, r0, rows, s, j, t);
        if (two)
          store_tile(op, r0, rows, s, j + 1, t1);
      }
    }
  }
}

void re_gemm_run(const re_gemm_op *op, float *work, int threads) {
  const re_pack *b = op->b;
  int64_t mc = task_rows(b->Kp), nchunks = (op->M + mc - 1) / mc;
  /* few row blocks: split the panels too, so that every thread has work */
  int64_t groups = nchunks >= threads ? 1 : (threads + nchunks - 1) / nchunks;
  if (groups > b->np)
    groups = b->np;
  int64_t tasks = nchunks * groups, pt = per_thread(b);
  re_tile2_fn tile2 = re_k_tile2();
  if (threads <= 1) {
    for (int64_t task = 0; task < tasks; task++)
      run_task(op, task, groups, work, tile2);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t task = 0; task < tasks; task++) {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    run_task(op, task, groups, work + (int64_t)tid * pt, tile2);
  }
}

/* ---- rows of a matrix ---- */

typedef struct rows_ctx {
  const float *x, *res;
  float *y;
  int64_t ldx, ldr, ldy, K;
} rows_ctx;

static void pack_rows(const re_gemm_op *op, int64_t r0, int64_t rows, int64_t k0, int64_t kc, float *a) {
  const rows_ctx *c = op->ctx;
  int64_t ns = (rows + RE_MR - 1) / RE_MR, kend = c->K - k0 < kc ? c->K - k0 : kc; /* real values in the block */
  for (int64_t s = 0; s < ns; s++)
    for (int r = 0; r < RE_MR; r++) {
      int64_t row = r0 + s * RE_MR + r;
      const float *src = c->x + (row < op->M ? row : op->M - 1) * c->ldx + k0;
      float *d = a + s * kc * RE_MR + r * 8;
      int64_t k = 0;
      for (; k + 8 <= kend; k += 8)
        memcpy(d + k * RE_MR, src + k, 8 * sizeof(float));
      for (; k < kc; k += 8) { /* the tail of K, then zeros */
        memset(d + k * RE_MR, 0, 8 * sizeof(float));
        if (k < kend)
          memcpy(d + k * RE_MR, src + k, sizeof(float) * (size_t)(kend - k));
      }
    }
}

static void dst_rows(const re_gemm_op *op, int64_t r, int64_t j, float **y, const float **res, int64_t *off8) {
  const rows_ctx *c = op->ctx;
  *y = c->y + r * c->ldy + j * RE_NR;
  *res = c->res ? c->res + r * c->ldr + j * RE_NR : NULL;
  *off8 = 8;
}

void re_gemm_rows(const float *x, int64_t M, int64_t ldx, const re_pack *b, const re_epi *e, const float *res,
                  int64_t ldr, float *y, int64_t ldy, float *work, int threads) {
  rows_ctx c = {x, res, y, ldx, ldr, ldy, b->K};
  re_gemm_op op = {M, b, e, pack_rows, dst_rows, b->N, &c};
  re_gemm_run(&op, work, threads);
}
