/* Profile of the forward pass: wall time per module (children included, and without
 * them), calls, and the work of convolutions, linear layers and attention counted as
 * the direct algorithm does it, so that GFLOP/s compare across implementations. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fast.h"
#include "net.h"

double re_net_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double re_net_cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

re_status re_net_set_profile(re_net *n, int on) {
  free(n->prof_s);
  free(n->prof_cpu);
  free(n->prof_calls);
  n->prof_s = n->prof_cpu = NULL;
  n->prof_calls = NULL;
  n->profile = 0;
  n->prof_total = n->prof_total_cpu = 0;
  n->prof_samples = n->prof_batches = 0;
  if (!on)
    return RE_OK;
  int64_t k = n->norder > 0 ? n->norder : 1;
  RE_TRY(re_calloc(k, sizeof(double), &n->prof_s));
  RE_TRY(re_calloc(k, sizeof(double), &n->prof_cpu));
  RE_TRY(re_calloc(k, sizeof(int64_t), &n->prof_calls));
  n->profile = 1;
  return RE_OK;
}

void re_net_profile_total(const re_net *n, double *seconds, double *cpu_seconds, int64_t *samples, int64_t *batches) {
  *seconds = n->prof_total;
  *cpu_seconds = n->prof_total_cpu;
  *samples = n->prof_samples;
  *batches = n->prof_batches;
}

double re_mod_flops(const re_mod *m) {
  const re_conv_geom *g = &m->geom;
  double in_numel = (double)re_shape_numel(&m->in_shape);
  switch (m->type) {
  case RE_MOD_CONV2D:
    return 2.0 * (double)g->Co * (double)(g->Ho * g->Wo) * (double)(g->C / (g->groups > 0 ? g->groups : 1)) *
           (double)(g->kh * g->kw);
  case RE_MOD_LINEAR: return m->in > 0 ? 2.0 * in_numel / (double)m->in * (double)m->in * (double)m->out : 0;
  case RE_MOD_MHA: { /* in_proj, scores, weighted values, out_proj */
    double T = (double)m->in_shape.d[0], D = (double)m->in_shape.d[1];
    return 2.0 * T * D * 3 * D + 4.0 * T * T * D + 2.0 * T * D * D;
  }
  case RE_MOD_ATTENTION: { /* scores and weighted values; the projections are its children */
    double T = (double)m->in_shape.d[0];
    return 4.0 * T * T * (double)(m->heads * m->head_dim);
  }
  default: return 0;
  }
}

static const char *kernel_of(const re_mod *m) {
  const re_conv_geom *g = &m->geom;
  if (m->fused_into)
    return "folded into the last";
  if (m->fconv)
    return re_fconv_kernel(m->fconv);
  if (m->flin)
    return m->flin->epi.has_act ? "packed gemm + act" : "packed gemm";
  switch (m->type) {
  case RE_MOD_CONV2D:
    if (g->groups == g->C && g->groups == g->Co && g->groups > 1)
      return "depthwise loop";
    if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 && g->groups == 1)
      return "sgemm";
    return "im2col + sgemm";
  case RE_MOD_LINEAR:
  case RE_MOD_MHA:
  case RE_MOD_ATTENTION: return "sgemm";
  default: return "";
  }
}

void re_net_profile_get(const re_net *n, int64_t i, re_net_profile_entry *out) {
  const re_mod *m = n->order[i];
  memset(out, 0, sizeof *out);
  out->name = m->name;
  out->type = m->type == RE_MOD_ACT ? "activation" : re_mod_type_name(m->type);
  out->kernel = kernel_of(m);
  if (!n->profile)
    return;
  out->calls = n->prof_calls[i];
  out->seconds = out->self_seconds = n->prof_s[i];
  out->cpu_seconds = out->self_cpu_seconds = n->prof_cpu[i];
  for (int k = 0; k < m->n; k++)
    if (m->child[k]->idx >= 0) {
      out->self_seconds -= n->prof_s[m->child[k]->idx];
      out->self_cpu_seconds -= n->prof_cpu[m->child[k]->idx];
    }
  if (out->self_seconds < 0)
    out->self_seconds = 0;
  if (out->self_cpu_seconds < 0)
    out->self_cpu_seconds = 0;
  out->gflop = re_mod_flops(m) * (double)n->prof_samples * (n->prof_batches ? (double)out->calls /
                                                                                     (double)n->prof_batches : 0) * 1e-9;
}
