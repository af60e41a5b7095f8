/* Taps: a module's output copied (or pooled) as soon as it is produced. For token
 * models the attention mask decides which tokens count: mean, cls, last and tokens
 * skip padding; flatten and spatial keep every position. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern.h"
#include "net.h"

static const char *const MODE_NAMES[] = {"flatten", "mean", "cls", "spatial", "tokens", "last"};
#define NMODES 6

re_status re_tap_mode_parse(const char *s, re_tap_mode *mode) {
  for (int k = 0; k < NMODES; k++)
    if (!strcmp(s, MODE_NAMES[k])) {
      *mode = (re_tap_mode)k;
      return RE_OK;
    }
  return re_err(RE_EINVAL, "tap mode '%s' is not one of flatten, mean, cls, spatial, tokens, last", s);
}

const char *re_tap_mode_name(re_tap_mode mode) {
  return (int)mode >= 0 && (int)mode < NMODES ? MODE_NAMES[mode] : "?";
}

/* Token outputs of a token model: (T, X) per sample, where the mask applies. */
static int masked(const re_net *n, const re_shape *s) { return n->tokens && s->rank == 2 && s->d[0] == n->T; }

/* Sum of n floats in float64, in eight interleaved partial sums (independent chains
 * the compiler vectorises), then pairwise. */
static double sum_f64(const float *v, int64_t n) {
  double a[8] = {0};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int l = 0; l < 8; l++)
      a[l] += v[k + l];
  for (int l = 0; k < n; k++, l++)
    a[l] += v[k];
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

void re_net_capture(re_net *n, re_mod *m, const float *y, int blk) {
  const re_shape *s = &m->out_shape;
  int64_t numel = re_shape_numel(s), B = n->B;
  /* blocked images (fast path): channel c of pixel k at ((b CB + c / 8) hw + k) 8 + c % 8 */
  int64_t C = s->rank == 3 ? s->d[0] : 0, CB = (C + 7) / 8, hw = s->rank == 3 ? s->d[1] * s->d[2] : 0;
  blk = blk && s->rank == 3;
  for (int t = 0; t < n->ntaps; t++) {
    tap *tp = &n->taps[t];
    if (tp->m != m)
      continue;
    int64_t rows = 0;
    const uint8_t *mask = masked(n, s) && n->has_mask ? n->mask : NULL;
    switch (tp->mode) {
    case RE_TAP_FLATTEN:
      if (blk)
        re_unblock(y, B, C, hw, tp->data);
      else
        memcpy(tp->data, y, sizeof(float) * (size_t)(B * numel));
      for (int64_t b = 0; b < B; b++)
        tp->sample[rows] = b, tp->position[rows++] = -1;
      break;
    case RE_TAP_POOL_MEAN:
      if (s->rank == 1) {
        memcpy(tp->data, y, sizeof(float) * (size_t)(B * numel));
      } else if (s->rank == 3 && blk) { /* mean over H*W per channel, 8 channels at a time */
        for (int64_t b = 0; b < B; b++)
          for (int64_t cb = 0; cb < CB; cb++) {
            const float *v = y + (b * CB + cb) * hw * 8;
            double acc[8] = {0};
            for (int64_t k = 0; k < hw; k++)
              for (int l = 0; l < 8; l++)
                acc[l] += v[k * 8 + l];
            for (int64_t l = 0; l < 8 && cb * 8 + l < C; l++)
              tp->data[b * C + cb * 8 + l] = (float)(acc[l] / (double)hw);
          }
      } else if (s->rank == 3) { /* mean over H*W per channel */
        for (int64_t b = 0; b < B; b++)
          for (int64_t c = 0; c < C; c++)
            tp->data[b * C + c] = (float)(sum_f64(y + (b * C + c) * hw, hw) / (double)hw);
      } else { /* mean over (non-padding) tokens, summed in double */
        int64_t T = s->d[0], D = s->d[1];
        for (int64_t b = 0; b < B; b++) {
          const uint8_t *mk = mask ? mask + b * T : NULL;
          int64_t cnt = 0;
          memset(tp->acc, 0, sizeof(double) * (size_t)D);
          for (int64_t k = 0; k < T; k++) {
            if (mk && !mk[k])
              continue;
            const float *v = y + (b * T + k) * D;
            for (int64_t d = 0; d < D; d++)
              tp->acc[d] += v[d];
            cnt++;
          }
          for (int64_t d = 0; d < D; d++)
            tp->data[b * D + d] = (float)(tp->acc[d] / (double)cnt);
        }
      }
      for (int64_t b = 0; b < B; b++)
        tp->sample[rows] = b, tp->position[rows++] = -1;
      break;
    case RE_TAP_CLS:
    case RE_TAP_LAST: {
      int64_t T = s->d[0], D = s->d[1];
      for (int64_t b = 0; b < B; b++) {
        int64_t k = tp->mode == RE_TAP_CLS ? 0 : T - 1, step = tp->mode == RE_TAP_CLS ? 1 : -1;
        if (mask)
          while (!mask[b * T + k]) /* every sample has a token (checked before the forward) */
            k += step;
        memcpy(tp->data + b * D, y + (b * T + k) * D, sizeof(float) * (size_t)D);
        tp->sample[rows] = b, tp->position[rows++] = k;
      }
      break;
    }
    case RE_TAP_TOKENS: {
      int64_t T = s->d[0], D = s->d[1];
      for (int64_t b = 0; b < B; b++)
        for (int64_t k = 0; k < T; k++)
          if (!mask || mask[b * T + k]) {
            memcpy(tp->data + rows * D, y + (b * T + k) * D, sizeof(float) * (size_t)D);
            tp->sample[rows] = b, tp->position[rows++] = k;
          }
      break;
    }
    case RE_TAP_SPATIAL:
      if (s->rank == 2) {
        memcpy(tp->data, y, sizeof(float) * (size_t)(B * numel));
      } else if (blk) { /* (CB, H*W, 8) -> (H*W, C) per image */
        for (int64_t b = 0; b < B; b++)
          for (int64_t k = 0; k < hw; k++)
            for (int64_t cb = 0; cb < CB; cb++) {
              int64_t lanes = C - cb * 8 < 8 ? C - cb * 8 : 8;
              memcpy(tp->data + (b * hw + k) * C + cb * 8, y + ((b * CB + cb) * hw + k) * 8,
                     sizeof(float) * (size_t)lanes);
            }
      } else { /* (C, H*W) -> (H*W, C) per image */
        for (int64_t b = 0; b < B; b++)
          for (int64_t c = 0; c < C; c++)
            for (int64_t k = 0; k < hw; k++)
              tp->data[(b * hw + k) * C + c] = y[(b * C + c) * hw + k];
      }
      for (int64_t b = 0; b < B; b++)
        for (int64_t k = 0; k < tp->rows_per_sample; k++)
          tp->sample[rows] = b, tp->position[rows++] = k;
      break;
    }
    tp->rows = rows;
  }
}

void re_net_free_taps(re_net *n) {
  for (int t = 0; t < n->ntaps; t++) {
    free(n->taps[t].data);
    free(n->taps[t].name);
    free(n->taps[t].sample);
    free(n->taps[t].position);
    free(n->taps[t].acc);
  }
  free(n->taps);
  n->taps = NULL;
  n->ntaps = 0;
}

static re_mod *find_module(const re_net *n, const char *name) {
  for (int k = 0; k < n->root->nalias; k++)
    if (!strcmp(n->root->alias[k].name, name))
      return n->root->alias[k].target;
  const char *prefix = n->root->prefix;
  size_t lp = prefix ? strlen(prefix) : 0;
  if (lp && !strncmp(name, prefix, lp)) /* "model.layers.3" names "layers.3" */
    name += lp;
  for (int64_t k = 0; k < n->norder; k++)
    if (!strcmp(n->order[k]->name, name))
      return n->order[k];
  return NULL;
}

re_status re_net_add_tap(re_net *n, const char *name, re_tap_mode mode, int *index) {
  if (n->planned && n->fast) /* the plan folded modules whose outputs nobody tapped */
    return re_err(RE_EINVAL, "tap '%s': taps are added before the first forward pass", name);
  re_mod *m = find_module(n, name);
  if (!m) {
    char list[1200] = "";
    size_t used = 0;
    for (int k = 0; k < n->root->nalias && used + 64 < sizeof list; k++)
      used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", n->root->alias[k].name);
    for (int64_t k = 0; k < n->norder && used + 64 < sizeof list; k++)
      used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", n->order[k]->name);
    return re_err(RE_EINVAL, "no module named '%s' to tap (modules: %s%s)", name, list,
                  used + 64 >= sizeof list ? ", ..." : "");
  }
  const re_shape *s = &m->out_shape;
  tap t;
  memset(&t, 0, sizeof t);
  t.m = m;
  t.mode = mode;
  t.rows_per_sample = 1;
  switch (mode) {
  case RE_TAP_FLATTEN: t.dim = re_shape_numel(s); break;
  case RE_TAP_POOL_MEAN: t.dim = s->rank == 1 ? s->d[0] : (s->rank == 3 ? s->d[0] : s->d[1]); break;
  case RE_TAP_CLS:
  case RE_TAP_LAST:
  case RE_TAP_TOKENS:
    if (s->rank != 2)
      return re_err(RE_EINVAL, "tap '%s': mode %s needs token outputs (T, D), the module gives rank %d", name,
                    re_tap_mode_name(mode), s->rank);
    t.dim = s->d[1];
    if (mode == RE_TAP_TOKENS)
      t.rows_per_sample = s->d[0];
    break;
  case RE_TAP_SPATIAL:
    if (s->rank == 1)
      return re_err(RE_EINVAL, "tap '%s': mode spatial needs an image or token output, the module gives a vector",
                    name);
    t.dim = s->rank == 3 ? s->d[0] : s->d[1];
    t.rows_per_sample = s->rank == 3 ? s->d[1] * s->d[2] : s->d[0];
    break;
  default: return re_err(RE_EINVAL, "tap '%s': unknown mode %d", name, (int)mode);
  }
  re_status st = RE_OK;
  int64_t rows = n->bmax * t.rows_per_sample;
  RE_CHECK(re_malloc(rows, t.dim * (int64_t)sizeof(float), &t.data));
  RE_CHECK(re_malloc(rows, sizeof(int64_t), &t.sample));
  RE_CHECK(re_malloc(rows, sizeof(int64_t), &t.position));
  RE_CHECK(re_malloc(t.dim, sizeof(double), &t.acc));
  RE_CHECK(re_strdup(name, &t.name));
  RE_CHECK(re_realloc(&n->taps, n->ntaps + 1, sizeof(tap)));
  n->taps[n->ntaps] = t;
  m->tap = n->ntaps;
  *index = n->ntaps++;
  return RE_OK;
done:
  free(t.data);
  free(t.sample);
  free(t.position);
  free(t.acc);
  free(t.name);
  return st;
}

void re_net_tap_shape(const re_net *n, int t, int64_t *dim, int64_t *rows_per_sample) {
  *dim = n->taps[t].dim;
  *rows_per_sample = n->taps[t].rows_per_sample;
}

const float *re_net_tap_data(const re_net *n, int t) { return n->taps[t].data; }

int64_t re_net_tap_rows(const re_net *n, int t, const int64_t **sample, const int64_t **position) {
  if (sample)
    *sample = n->taps[t].sample;
  if (position)
    *position = n->taps[t].position;
  return n->taps[t].rows;
}
