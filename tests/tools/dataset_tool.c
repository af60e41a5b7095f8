/* Test helper: open a dataset with the library, print its info as JSON and
 * optionally write samples to .npy, so the reference tests compare against NumPy.
 *
 *   dataset_tool idx IMAGES [LABELS]
 *   dataset_tool cifar10 FILE...        dataset_tool cifar100 [--coarse] FILE...
 *   dataset_tool npy INPUTS [LABELS]
 *   dataset_tool wds [--ext png|npy] [--label EXT|--no-label] SHARD...
 *   dataset_tool source FORMAT [-o KEY=VALUE]... FILE...   (re_dataset_open_source)
 * Token datasets write PREFIX_ids.npy (n x seq_len int64), PREFIX_mask.npy (uint8)
 * and PREFIX_y.npy; their info adds tokens, seq_len, vocab and class names.
 * options before the format:
 *   --out PREFIX      write PREFIX_x.npy (n x sample_dim float32), PREFIX_y.npy (n int32)
 *   --range I J       samples [I, J) (default all)
 *   --batch B         read in batches of B (default 64)
 *   --order seq|rev|shuffle   batch order (the output is always in sample order)
 *   --normalize M,M,..:S,S,..  per-channel mean and std
 * Errors print "error: <status>: <message>" and exit 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repeval/dataset.h"
#include "repeval/npy.h"

static int fail(re_status st) {
  fprintf(stderr, "error: %s: %s\n", re_status_str(st), re_errmsg());
  return 1;
}

static int parse_floats(const char *s, float *out, int cap) {
  int n = 0;
  while (*s && n < cap) {
    char *end;
    out[n++] = strtof(s, &end);
    if (end == s)
      return -1;
    s = *end == ',' ? end + 1 : end;
  }
  return n;
}

static int64_t batch_index(const char *order, int64_t t, int64_t nb) {
  if (!strcmp(order, "rev"))
    return nb - 1 - t;
  if (!strcmp(order, "shuffle"))
    return (t * 7919) % nb; /* a permutation when nb is not a multiple of 7919 */
  return t;
}

static void print_json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

/* Token datasets: info with class names, then ids, mask and labels. */
static int tokens_main(re_dataset *ds, const char *out, int64_t r0, int64_t r1, int64_t batch, const char *order) {
  const re_dataset_info *in = re_dataset_get_info(ds);
  printf("{\"count\": %lld, \"tokens\": 1, \"seq_len\": %lld, \"vocab\": %lld, \"has_labels\": %d, "
         "\"num_classes\": %lld, \"class_names\": [",
         (long long)in->count, (long long)in->seq_len, (long long)in->vocab, in->has_labels,
         (long long)in->num_classes);
  for (int64_t c = 0; re_dataset_class_name(ds, c); c++) {
    if (c)
      printf(", ");
    print_json_string(re_dataset_class_name(ds, c));
  }
  printf("]}\n");
  re_status st = RE_OK;
  if (out) {
    if (r1 < 0)
      r1 = in->count;
    int64_t n = r1 - r0, nb = n > 0 ? (n + batch - 1) / batch : 0, T = in->seq_len;
    int64_t *ids = NULL;
    uint8_t *mask = NULL;
    int32_t *y = NULL;
    st = re_malloc(n > 0 ? n * T : 1, sizeof *ids, &ids);
    if (st == RE_OK)
      st = re_malloc(n > 0 ? n * T : 1, 1, &mask);
    if (st == RE_OK)
      st = re_malloc(n > 0 ? n : 1, sizeof *y, &y);
    for (int64_t t = 0; t < nb && st == RE_OK; t++) {
      int64_t i = r0 + batch_index(order, t, nb) * batch, j = i + batch < r1 ? i + batch : r1;
      st = re_dataset_read_tokens(ds, i, j, ids + (i - r0) * T, mask + (i - r0) * T, y + (i - r0));
    }
    if (n < 0)
      st = re_dataset_read_tokens(ds, r0, r1, ids, mask, y);
    char path[4096];
    int64_t shape[2] = {n, T};
    if (st == RE_OK) {
      snprintf(path, sizeof path, "%s_ids.npy", out);
      st = re_npy_write(path, RE_DTYPE_I64, 2, shape, ids);
    }
    if (st == RE_OK) {
      snprintf(path, sizeof path, "%s_mask.npy", out);
      st = re_npy_write(path, RE_DTYPE_U8, 2, shape, mask);
    }
    if (st == RE_OK) {
      snprintf(path, sizeof path, "%s_y.npy", out);
      st = re_npy_write(path, RE_DTYPE_I32, 1, shape, y);
    }
    free(ids);
    free(mask);
    free(y);
  }
  re_dataset_close(&ds);
  return st == RE_OK ? 0 : fail(st);
}

int main(int argc, char **argv) {
  const char *out = NULL, *order = "seq";
  int64_t r0 = 0, r1 = -1, batch = 64;
  float mean[16], stdv[16];
  int nnorm = 0, a = 1;
  for (; a < argc && !strncmp(argv[a], "--", 2); a++) {
    if (!strcmp(argv[a], "--out") && a + 1 < argc) {
      out = argv[++a];
    } else if (!strcmp(argv[a], "--range") && a + 2 < argc) {
      r0 = atoll(argv[++a]);
      r1 = atoll(argv[++a]);
    } else if (!strcmp(argv[a], "--batch") && a + 1 < argc) {
      batch = atoll(argv[++a]);
    } else if (!strcmp(argv[a], "--order") && a + 1 < argc) {
      order = argv[++a];
    } else if (!strcmp(argv[a], "--normalize") && a + 1 < argc) {
      char *spec = argv[++a], *colon = strchr(spec, ':');
      if (!colon)
        return fprintf(stderr, "--normalize M,..:S,..\n"), 2;
      *colon = '\0';
      nnorm = parse_floats(spec, mean, 16);
      if (nnorm < 1 || parse_floats(colon + 1, stdv, 16) != nnorm)
        return fprintf(stderr, "--normalize: need as many means as stds\n"), 2;
    } else {
      return fprintf(stderr, "unknown option %s\n", argv[a]), 2;
    }
  }
  if (a >= argc || batch < 1)
    return fprintf(stderr, "usage: dataset_tool [options] FORMAT FILE...\n"), 2;
  const char *fmt = argv[a++];
  re_dataset *ds = NULL;
  re_status st;
  if (!strcmp(fmt, "idx") && a < argc) {
    st = re_dataset_open_idx(argv[a], a + 1 < argc ? argv[a + 1] : NULL, &ds);
  } else if (!strcmp(fmt, "npy") && a < argc) {
    st = re_dataset_open_npy(argv[a], a + 1 < argc ? argv[a + 1] : NULL, &ds);
  } else if (!strcmp(fmt, "cifar10") || !strcmp(fmt, "cifar100")) {
    int fine = 1;
    if (a < argc && !strcmp(argv[a], "--coarse"))
      fine = 0, a++;
    st = re_dataset_open_cifar((const char *const *)argv + a, argc - a, strcmp(fmt, "cifar100") ? 1 : 2, fine, &ds);
  } else if (!strcmp(fmt, "wds")) {
    const char *ext = "png", *label = "cls";
    for (; a < argc && !strncmp(argv[a], "--", 2); a++) {
      if (!strcmp(argv[a], "--ext") && a + 1 < argc)
        ext = argv[++a];
      else if (!strcmp(argv[a], "--label") && a + 1 < argc)
        label = argv[++a];
      else if (!strcmp(argv[a], "--no-label"))
        label = NULL;
      else
        return fprintf(stderr, "unknown wds option %s\n", argv[a]), 2;
    }
    st = re_dataset_open_wds((const char *const *)argv + a, argc - a, ext, label, &ds);
  } else if (!strcmp(fmt, "source") && a < argc) {
    re_dataset_source src = {0};
    src.format = argv[a++];
    st = RE_OK;
    for (; st == RE_OK && a + 1 < argc && !strcmp(argv[a], "-o"); a += 2) {
      char *eq = strchr(argv[a + 1], '=');
      if (!eq)
        return fprintf(stderr, "-o KEY=VALUE\n"), 2;
      *eq = '\0';
      st = re_dataset_source_set(&src, argv[a + 1], eq + 1);
    }
    src.files = (const char *const *)argv + a;
    src.nfiles = argc - a;
    if (st == RE_OK)
      st = re_dataset_open_source(&src, &ds);
  } else {
    return fprintf(stderr, "unknown format %s or missing files\n", fmt), 2;
  }
  if (st != RE_OK)
    return fail(st);
  if (nnorm && (st = re_dataset_set_normalize(ds, mean, stdv, nnorm)) != RE_OK) {
    re_dataset_close(&ds);
    return fail(st);
  }
  const re_dataset_info *in = re_dataset_get_info(ds);
  if (in->tokens)
    return tokens_main(ds, out, r0, r1, batch, order);
  printf("{\"count\": %lld, \"sample_dim\": %lld, \"channels\": %d, \"height\": %d, \"width\": %d, "
         "\"has_labels\": %d, \"num_classes\": %lld}\n",
         (long long)in->count, (long long)in->sample_dim, in->channels, in->height, in->width, in->has_labels,
         (long long)in->num_classes);
  if (!out) {
    re_dataset_close(&ds);
    return 0;
  }
  if (r1 < 0)
    r1 = in->count;
  int64_t n = r1 - r0, nb = n > 0 ? (n + batch - 1) / batch : 0;
  float *x = NULL;
  int32_t *y = NULL;
  st = re_malloc(n > 0 ? n : 1, in->sample_dim * (int64_t)sizeof(float), &x);
  if (st == RE_OK)
    st = re_malloc(n > 0 ? n : 1, sizeof(int32_t), &y);
  for (int64_t t = 0; t < nb && st == RE_OK; t++) {
    int64_t b = batch_index(order, t, nb);
    int64_t i = r0 + b * batch, j = i + batch < r1 ? i + batch : r1;
    st = re_dataset_read(ds, i, j, x + (i - r0) * in->sample_dim, y + (i - r0));
  }
  if (n < 0)
    st = re_dataset_read(ds, r0, r1, x, y); /* let the library report the bad range */
  char path[4096];
  if (st == RE_OK) {
    int64_t shape[2] = {n, in->sample_dim};
    snprintf(path, sizeof path, "%s_x.npy", out);
    st = re_npy_write(path, RE_DTYPE_F32, 2, shape, x);
  }
  if (st == RE_OK) {
    int64_t shape[1] = {n};
    snprintf(path, sizeof path, "%s_y.npy", out);
    st = re_npy_write(path, RE_DTYPE_I32, 1, shape, y);
  }
  free(x);
  free(y);
  re_dataset_close(&ds);
  return st == RE_OK ? 0 : fail(st);
}
