/* Activation exports (repeval/activations.h): the manifest is read with the YAML/JSON
 * reader (every message names file:line:col), the sample ids and every shard header
 * are checked against it at open, and reads map one shard per tap at a time. */
#include "repeval/activations.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt/ckpt_internal.h"
#include "data/ds_internal.h"
#include "repeval/cfg.h"
#include "repeval/npy.h"
#include "repeval/shard.h"

#define MAX_NAME 4096

typedef enum shard_kind { SH_NPY = 0, SH_SAFETENSORS, SH_RPC } shard_kind;

typedef struct act_shard {
  char *file; /* as in the manifest, relative to the folder */
  char *path; /* folder/file */
  char *tensor; /* safetensors: the tensor (NULL: the file's only one) */
  int64_t first, count;
  shard_kind kind;
} act_shard;

typedef struct act_tap {
  re_act_tap info;
  char *name, *mode;
  act_shard *shards;
  /* the shard mapped now (cur >= 0): its elements as stored */
  int64_t cur;
  re_npy *npy;
  re_ckpt *ck;
  float *rpc;            /* a decoded .rpc shard */
  const uint8_t *data;   /* first element */
  re_dtype dtype;
  int swap;
} act_tap;

struct re_act {
  char *dir;
  char *manifest; /* dir/activations.json */
  re_act_dataset ds;
  int64_t count;
  re_npy *ids; /* the sample ids, kept mapped (file pages, not the process' memory) */
  char *ids_file;
  act_tap *taps;
  int ntaps;
};

static const char *const MODES[] = {"flatten", "mean", "cls", "last", "spatial", NULL};

/* ---- small helpers ------------------------------------------------------------- */

static re_status join(const char *dir, const char *file, char **out) {
  size_t n = strlen(dir) + strlen(file) + 2;
  RE_TRY(re_malloc((int64_t)n, 1, out));
  snprintf(*out, n, "%s/%s", dir, file);
  return RE_OK;
}

/* A file named by the manifest: relative, inside the folder (no '..' component),
 * printable. */
static re_status check_rel_name(const re_cfg *node, const char *s, const char *what) {
  if (!s[0] || strlen(s) >= MAX_NAME)
    return re_cfg_error(node, RE_EFORMAT, "%s: a file name of 1 to %d bytes is needed", what, MAX_NAME - 1);
  if (s[0] == '/')
    return re_cfg_error(node, RE_EFORMAT, "%s '%s' is an absolute path: shard and id files must be inside the "
                                          "export's folder, named relative to it",
                        what, s);
  for (const char *q = s; *q; q++)
    if ((unsigned char)*q < 0x20 || *q == '\\')
      return re_cfg_error(node, RE_EFORMAT, "%s '%s' contains a control character or a backslash", what, s);
  for (const char *c = s; c;) { /* every '/'-separated component */
    const char *e = strchr(c, '/');
    size_t len = e ? (size_t)(e - c) : strlen(c);
    if ((len == 2 && !strncmp(c, "..", 2)) || len == 0)
      return re_cfg_error(node, RE_EFORMAT, "%s '%s' leaves the export's folder or has an empty component", what, s);
    c = e ? e + 1 : NULL;
  }
  return RE_OK;
}

static re_status get_str(const re_cfg *map, const char *key, const char *where, const char **out) {
  const re_cfg *v = re_cfg_get(map, key);
  if (!v)
    return re_cfg_error(map, RE_EFORMAT, "%s needs '%s'", where, key);
  if (v->kind != RE_CFG_SCALAR)
    return re_cfg_error(v, RE_EFORMAT, "'%s' must be a string", key);
  return re_cfg_string(v, out);
}

static re_status get_count(const re_cfg *map, const char *key, const char *where, int64_t lo, int64_t *out) {
  const re_cfg *v = re_cfg_get(map, key);
  if (!v)
    return re_cfg_error(map, RE_EFORMAT, "%s needs '%s'", where, key);
  RE_TRY(re_cfg_int(v, out));
  if (*out < lo)
    return re_cfg_error(v, RE_EFORMAT, "'%s' is %lld, it must be at least %lld", key, (long long)*out, (long long)lo);
  return RE_OK;
}

/* ---- the manifest ------------------------------------------------------------- */

static re_status parse_dataset(re_act *a, const re_cfg *c) {
  static const char *const keys[] = {"name", "format", "files", "normalize", "count", "spec", NULL};
  if (!c)
    return re_err(RE_EFORMAT, "%s: the manifest needs 'dataset'", a->manifest);
  RE_TRY(re_cfg_expect_map(c, "'dataset'", keys));
  const char *s;
  RE_TRY(get_str(c, "name", "'dataset'", &s));
  RE_TRY(re_strdup(s, &a->ds.name));
  RE_TRY(get_str(c, "format", "'dataset'", &s));
  RE_TRY(re_strdup(s, &a->ds.format));
  RE_TRY(get_count(c, "count", "'dataset'", 1, &a->ds.count));
  const re_cfg *f = re_cfg_get(c, "files");
  if (!f || f->kind != RE_CFG_SEQ || f->n < 1 || f->n > 100000)
    return re_cfg_error(f ? f : c, RE_EFORMAT, "'dataset' needs 'files': a list of {name, bytes, sha256}, one "
                                               "per file the dataset reads");
  RE_TRY(re_calloc(f->n, sizeof(re_act_file), &a->ds.files));
  for (int64_t k = 0; k < f->n; k++) {
    static const char *const fkeys[] = {"name", "bytes", "sha256", NULL};
    const re_cfg *e = f->items[k];
    re_act_file *rf = &a->ds.files[k];
    a->ds.nfiles = (int)k + 1;
    RE_TRY(re_cfg_expect_map(e, "a dataset file", fkeys));
    RE_TRY(get_str(e, "name", "a dataset file", &s));
    RE_TRY(re_strdup(s, &rf->name));
    RE_TRY(get_count(e, "bytes", "a dataset file", 0, &rf->bytes));
    RE_TRY(get_str(e, "sha256", "a dataset file", &s));
    int hex = strlen(s) == 64;
    for (int q = 0; hex && q < 64; q++)
      hex = (s[q] >= '0' && s[q] <= '9') || (s[q] >= 'a' && s[q] <= 'f');
    if (!hex)
      return re_cfg_error(re_cfg_get(e, "sha256"), RE_EFORMAT, "'sha256' must be 64 lowercase hex digits, got '%.80s'",
                          s);
    memcpy(rf->sha256, s, 65);
  }
  const re_cfg *n = re_cfg_get(c, "normalize");
  if (n && !re_cfg_is_null(n)) {
    static const char *const nkeys[] = {"mean", "std", NULL};
    RE_TRY(re_cfg_expect_map(n, "'normalize'", nkeys));
    const re_cfg *m = re_cfg_get(n, "mean"), *sd = re_cfg_get(n, "std");
    if (!m || !sd || m->kind != RE_CFG_SEQ || sd->kind != RE_CFG_SEQ || m->n != sd->n || m->n < 1 ||
        m->n > RE_ACT_MAX_NORM)
      return re_cfg_error(n, RE_EFORMAT, "'normalize' needs lists 'mean' and 'std' of equal length (1 to %d)",
                          RE_ACT_MAX_NORM);
    a->ds.nnorm = (int)m->n;
    for (int k = 0; k < a->ds.nnorm; k++) {
      RE_TRY(re_cfg_double(m->items[k], &a->ds.mean[k]));
      RE_TRY(re_cfg_double(sd->items[k], &a->ds.std[k]));
    }
  }
  return RE_OK;
}

static re_status parse_shard(re_act *a, act_tap *t, act_shard *sh, const re_cfg *e, int64_t expect_first) {
  static const char *const keys[] = {"file", "first", "count", "tensor", NULL};
  RE_TRY(re_cfg_expect_map(e, "a shard", keys));
  const char *s;
  RE_TRY(get_str(e, "file", "a shard", &s));
  RE_TRY(check_rel_name(re_cfg_get(e, "file"), s, "shard file"));
  RE_TRY(re_strdup(s, &sh->file));
  RE_TRY(join(a->dir, s, &sh->path));
  size_t len = strlen(s);
  if (len > 4 && !strcmp(s + len - 4, ".npy"))
    sh->kind = SH_NPY;
  else if (len > 12 && !strcmp(s + len - 12, ".safetensors"))
    sh->kind = SH_SAFETENSORS;
  else if (len > 4 && !strcmp(s + len - 4, ".rpc"))
    sh->kind = SH_RPC;
  else
    return re_cfg_error(re_cfg_get(e, "file"), RE_EFORMAT, "shard '%s': unknown kind of file (.npy, .safetensors "
                                                           "or .rpc)",
                        s);
  RE_TRY(get_count(e, "first", "a shard", 0, &sh->first));
  RE_TRY(get_count(e, "count", "a shard", 1, &sh->count));
  if (sh->first != expect_first)
    return re_cfg_error(e, RE_EFORMAT, "tap %s:%s, shard '%s' starts at position %lld, expected %lld: a tap's shards "
                                       "must cover the positions in order, without gaps or overlaps",
                        t->name, t->mode, sh->file, (long long)sh->first, (long long)expect_first);
  if (sh->count > a->count - sh->first)
    return re_cfg_error(e, RE_EFORMAT, "tap %s:%s, shard '%s' covers positions %lld..%lld, beyond the %lld "
                                       "exported samples",
                        t->name, t->mode, sh->file, (long long)sh->first, (long long)(sh->first + sh->count - 1),
                        (long long)a->count);
  const re_cfg *tn = re_cfg_get(e, "tensor");
  if (tn) {
    if (sh->kind != SH_SAFETENSORS)
      return re_cfg_error(tn, RE_EFORMAT, "'tensor' names a tensor of a .safetensors shard, '%s' is not one",
                          sh->file);
    RE_TRY(re_cfg_string(tn, &s));
    RE_TRY(re_strdup(s, &sh->tensor));
  }
  return RE_OK;
}

static re_status parse_taps(re_act *a, const re_cfg *c) {
  if (!c || c->kind != RE_CFG_SEQ || c->n < 1)
    return c ? re_cfg_error(c, RE_EFORMAT, "'taps' must be a non-empty list")
             : re_err(RE_EFORMAT, "%s: the manifest needs 'taps'", a->manifest);
  if (c->n > 100000)
    return re_cfg_error(c, RE_EFORMAT, "%lld taps: at most 100000", (long long)c->n);
  RE_TRY(re_calloc(c->n, sizeof(act_tap), &a->taps));
  for (int64_t k = 0; k < c->n; k++) {
    static const char *const keys[] = {"name", "mode", "dim", "rows_per_sample", "dtype", "shards", NULL};
    const re_cfg *e = c->items[k];
    act_tap *t = &a->taps[k];
    t->cur = -1;
    a->ntaps = (int)k + 1;
    RE_TRY(re_cfg_expect_map(e, "a tap", keys));
    const char *s;
    RE_TRY(get_str(e, "name", "a tap", &s));
    if (!s[0])
      return re_cfg_error(e, RE_EFORMAT, "a tap needs a non-empty 'name'");
    RE_TRY(re_strdup(s, &t->name));
    s = "flatten";
    RE_TRY(re_cfg_get_string(e, "mode", &s));
    int known = 0;
    for (int q = 0; MODES[q]; q++)
      known |= !strcmp(s, MODES[q]);
    if (!known)
      return re_cfg_error(re_cfg_get(e, "mode"), RE_EFORMAT, "tap '%s': mode '%s' is not one of flatten, mean, cls, "
                                                             "last, spatial",
                          t->name, s);
    RE_TRY(re_strdup(s, &t->mode));
    for (int q = 0; q < k; q++)
      if (!strcmp(a->taps[q].name, t->name) && !strcmp(a->taps[q].mode, t->mode))
        return re_cfg_error(e, RE_EFORMAT, "tap %s:%s is listed twice", t->name, t->mode);
    RE_TRY(get_count(e, "dim", "a tap", 1, &t->info.dim));
    t->info.rows_per_sample = 1;
    RE_TRY(re_cfg_get_int(e, "rows_per_sample", &t->info.rows_per_sample));
    if (t->info.rows_per_sample < 1)
      return re_cfg_error(re_cfg_get(e, "rows_per_sample"), RE_EFORMAT, "'rows_per_sample' must be at least 1");
    if (t->info.dim > (INT64_MAX / 8) / t->info.rows_per_sample ||
        t->info.dim * t->info.rows_per_sample > (INT64_MAX / 8) / (a->count > 0 ? a->count : 1))
      return re_cfg_error(e, RE_EFORMAT, "tap %s:%s: %lld samples x %lld rows x %lld features overflow a size",
                          t->name, t->mode, (long long)a->count, (long long)t->info.rows_per_sample,
                          (long long)t->info.dim);
    const re_cfg *sh = re_cfg_get(e, "shards");
    if (!sh || sh->kind != RE_CFG_SEQ || sh->n < 1)
      return re_cfg_error(sh ? sh : e, RE_EFORMAT, "tap %s:%s needs 'shards': a non-empty list of {file, first, "
                                                   "count}",
                          t->name, t->mode);
    if (sh->n > a->count)
      return re_cfg_error(sh, RE_EFORMAT, "tap %s:%s has %lld shards for %lld samples", t->name, t->mode,
                          (long long)sh->n, (long long)a->count);
    RE_TRY(re_calloc(sh->n, sizeof(act_shard), &t->shards));
    int64_t pos = 0;
    for (int64_t q = 0; q < sh->n; q++) {
      t->info.nshards = q + 1;
      RE_TRY(parse_shard(a, t, &t->shards[q], sh->items[q], pos));
      pos += t->shards[q].count;
    }
    if (pos != a->count)
      return re_cfg_error(sh, RE_EFORMAT, "tap %s:%s: the shards cover positions 0..%lld, the export has %lld "
                                          "samples",
                          t->name, t->mode, (long long)pos - 1, (long long)a->count);
    t->info.name = t->name;
    t->info.mode = t->mode;
  }
  return RE_OK;
}

/* ---- sample ids ------------------------------------------------------------------ */

static re_status load_ids(re_act *a, const re_cfg *node) {
  char *path = NULL;
  uint8_t *seen = NULL;
  re_status st = RE_OK;
  RE_CHECK(join(a->dir, a->ids_file, &path));
  RE_CHECK(re_npy_open(path, &a->ids));
  if (a->ids->h.ndim != 1)
    RE_CHECK(re_cfg_error(node, RE_EFORMAT, "%s: the sample ids must be a 1-D array, it has %d dimensions", path,
                          a->ids->h.ndim));
  if (a->ids->h.shape[0] != a->count)
    RE_CHECK(re_cfg_error(node, RE_EFORMAT, "%s holds %lld sample ids, the manifest's 'count' says %lld", path,
                          (long long)a->ids->h.shape[0], (long long)a->count));
  int64_t v = 0;
  int big = 0;
  if (a->ids->h.dtype == RE_DTYPE_BOOL || !re_ds_npy_int(a->ids, 0, &v, &big))
    RE_CHECK(re_err(RE_EFORMAT, "%s: sample ids must be integers, the array holds %s", path,
                    re_dtype_name(a->ids->h.dtype)));
  RE_CHECK(re_calloc((a->ds.count + 7) / 8, 1, &seen)); /* one bit per dataset sample */
  for (int64_t k = 0; k < a->count; k++) {
    re_ds_npy_int(a->ids, k, &v, &big);
    if (big || v < 0 || v >= a->ds.count)
      RE_CHECK(re_err(RE_EFORMAT, "%s: sample id at position %lld is %s%lld, outside the dataset's %lld samples "
                                  "(0 .. %lld)",
                      path, (long long)k, big ? "above " : "", big ? (long long)INT64_MAX : (long long)v,
                      (long long)a->ds.count, (long long)a->ds.count - 1));
    if (seen[v >> 3] & (1u << (v & 7))) {
      int64_t before = 0;
      while (re_act_id(a, before) != v)
        before++;
      RE_CHECK(re_err(RE_EFORMAT, "%s: sample id %lld appears twice, at positions %lld and %lld", path, (long long)v,
                      (long long)before, (long long)k));
    }
    seen[v >> 3] |= (uint8_t)(1u << (v & 7));
  }
done:
  free(path);
  free(seen);
  return st;
}

/* ---- shards ---------------------------------------------------------------------- */

static int float_dtype(re_dtype dt) {
  return dt == RE_DTYPE_F16 || dt == RE_DTYPE_BF16 || dt == RE_DTYPE_F32 || dt == RE_DTYPE_F64;
}

/* Map shard k of tap t (checking it against the manifest, as at open); `keep` 0 unmaps
 * it again (validation only). */
static re_status map_shard(re_act *a, act_tap *t, int64_t k, int keep) {
  (void)a;
  const act_shard *sh = &t->shards[k];
  int64_t rps = t->info.rows_per_sample, dim = t->info.dim, elems = sh->count * rps * dim;
  re_status st = RE_OK;
  if (t->cur >= 0) { /* one shard per tap at a time */
    re_npy_close(&t->npy);
    re_ckpt_close(&t->ck);
    re_free(&t->rpc);
    t->cur = -1;
    t->data = NULL;
  }
  if (sh->kind == SH_NPY) {
    RE_CHECK(re_npy_open(sh->path, &t->npy));
    const re_npy_header *h = &t->npy->h;
    int64_t rows = re_npy_rows(t->npy), cols = re_npy_cols(t->npy);
    if (!float_dtype(h->dtype))
      RE_CHECK(re_err(RE_EFORMAT, "%s: activations must be float16, float32 or float64, the array holds %s",
                      sh->path, re_dtype_name(h->dtype)));
    if (h->fortran_order && h->ndim > 1)
      RE_CHECK(re_err(RE_EFORMAT, "%s: a Fortran-order array; shards must be C order", sh->path));
    if (h->ndim < 1 || h->count != elems ||
        !((rows == sh->count * rps && cols == dim) || (rows == sh->count && cols == rps * dim))) {
      char alt[80] = "";
      if (rps > 1)
        snprintf(alt, sizeof alt, " or (%lld, %lld)", (long long)sh->count, (long long)(rps * dim));
      RE_CHECK(re_err(RE_ESHAPE, "%s: holds %lld x %lld values, tap %s:%s needs %lld samples x %lld rows x %lld "
                                 "features (shape (%lld, %lld)%s)",
                      sh->path, (long long)rows, (long long)cols, t->name, t->mode, (long long)sh->count,
                      (long long)rps, (long long)dim, (long long)(sh->count * rps), (long long)dim, alt));
    }
    t->data = t->npy->data;
    t->dtype = h->dtype;
    t->swap = h->swap;
  } else if (sh->kind == SH_SAFETENSORS) {
    re_ckpt_options opt = {NULL, 1};
    RE_CHECK(re_ckpt_open(sh->path, &opt, &t->ck));
    if (re_ckpt_format_of(t->ck) != RE_CKPT_SAFETENSORS)
      RE_CHECK(re_err(RE_EFORMAT, "%s: not a safetensors file (it reads as %s)", sh->path,
                      re_ckpt_format_name(re_ckpt_format_of(t->ck))));
    int64_t i = -1;
    if (sh->tensor) {
      i = re_ckpt_lookup(t->ck, sh->tensor);
      if (i < 0)
        RE_CHECK(re_err(RE_EFORMAT, "%s: no tensor '%s' (the manifest's 'tensor')", sh->path, sh->tensor));
    } else if (re_ckpt_count(t->ck) == 1) {
      i = 0;
    } else {
      RE_CHECK(re_err(RE_EFORMAT, "%s holds %lld tensors: the manifest must name one with 'tensor'", sh->path,
                      (long long)re_ckpt_count(t->ck)));
    }
    const re_tensor_info *ti = re_ckpt_info(t->ck, i);
    if (!float_dtype(ti->dtype))
      RE_CHECK(re_err(RE_EFORMAT, "%s, tensor '%s': activations must be F16, BF16, F32 or F64, it holds %s", sh->path,
                      ti->name, re_dtype_name(ti->dtype)));
    if (ti->numel != elems || ti->ndim < 1 || (ti->shape[0] != sh->count && ti->shape[0] != sh->count * rps))
      RE_CHECK(re_err(RE_ESHAPE, "%s, tensor '%s': %lld values with %lld along the first axis, tap %s:%s needs %lld "
                                 "samples x %lld rows x %lld features",
                      sh->path, ti->name, (long long)ti->numel, ti->ndim ? (long long)ti->shape[0] : 0LL, t->name,
                      t->mode, (long long)sh->count, (long long)rps, (long long)dim));
    const re_tensor_loc *loc = &t->ck->loc[i];
    t->data = loc->base + loc->offset * re_dtype_size(ti->dtype);
    t->dtype = ti->dtype;
    t->swap = loc->swap;
  } else {
    FILE *f = NULL;
    re_rpc_header h;
    struct stat sb;
    RE_CHECK(re_fopen_regular(sh->path, &f));
    st = fstat(fileno(f), &sb) == 0 ? RE_OK : re_err(RE_EIO, "%s: cannot stat", sh->path);
    if (st == RE_OK)
      st = re_rpc_read_header(f, (int64_t)sb.st_size, sh->path, &h);
    if (st == RE_OK && (h.rows != sh->count * rps || h.dim != dim))
      st = re_err(RE_ESHAPE, "%s: holds %lld x %lld values, tap %s:%s needs %lld samples x %lld rows of %lld "
                             "features",
                  sh->path, (long long)h.rows, (long long)h.dim, t->name, t->mode, (long long)sh->count,
                  (long long)rps, (long long)dim);
    if (st == RE_OK && keep) {
      st = re_malloc(elems, sizeof(float), &t->rpc);
      if (st == RE_OK)
        st = re_rpc_read_values(f, &h, sh->path, t->rpc);
    }
    fclose(f);
    RE_CHECK(st);
    t->data = (const uint8_t *)t->rpc;
    t->dtype = RE_DTYPE_F32;
    t->swap = 0;
  }
  t->cur = k;
done:
  if (st != RE_OK || !keep) {
    re_npy_close(&t->npy);
    re_ckpt_close(&t->ck);
    re_free(&t->rpc);
    t->cur = -1;
    t->data = NULL;
  }
  return st;
}

/* ---- open / close ------------------------------------------------------------------ */

re_status re_act_open(const char *dir, int check_shards, re_act **out) {
  re_act *a = NULL;
  re_cfg *c = NULL;
  re_status st = RE_OK;
  *out = NULL;
  RE_CHECK(re_calloc(1, sizeof *a, &a));
  RE_CHECK(re_strdup(dir, &a->dir));
  RE_CHECK(join(dir, RE_ACT_MANIFEST, &a->manifest));
  RE_CHECK(re_check_regular(a->manifest));
  RE_CHECK(re_cfg_parse_file(a->manifest, &c));
  /* producer, model, checkpoint and export (the writer's settings) are for people */
  static const char *const keys[] = {"format",  "version", "producer", "model", "checkpoint",
                                     "dataset", "samples", "taps",     "export", NULL};
  RE_CHECK(re_cfg_expect_map(c, "the manifest", keys));
  const char *s;
  RE_CHECK(get_str(c, "format", "the manifest", &s));
  if (strcmp(s, RE_ACT_FORMAT))
    RE_CHECK(re_cfg_error(re_cfg_get(c, "format"), RE_EFORMAT, "'format' is '%s', expected '%s'", s, RE_ACT_FORMAT));
  int64_t version = 0;
  RE_CHECK(get_count(c, "version", "the manifest", 1, &version));
  if (version > RE_ACT_VERSION)
    RE_CHECK(re_cfg_error(re_cfg_get(c, "version"), RE_EUNSUPPORTED, "version %lld: written by a newer exporter; "
                                                                     "this repeval reads version %d",
                          (long long)version, RE_ACT_VERSION));
  RE_CHECK(parse_dataset(a, re_cfg_get(c, "dataset")));
  const re_cfg *smp = re_cfg_get(c, "samples");
  if (!smp)
    RE_CHECK(re_err(RE_EFORMAT, "%s: the manifest needs 'samples': {ids: FILE.npy, count: N}", a->manifest));
  static const char *const skeys[] = {"ids", "count", NULL};
  RE_CHECK(re_cfg_expect_map(smp, "'samples'", skeys));
  RE_CHECK(get_count(smp, "count", "'samples'", 1, &a->count));
  RE_CHECK(get_str(smp, "ids", "'samples'", &s));
  RE_CHECK(check_rel_name(re_cfg_get(smp, "ids"), s, "sample-id file"));
  RE_CHECK(re_strdup(s, &a->ids_file));
  if (a->count > a->ds.count)
    RE_CHECK(re_cfg_error(re_cfg_get(smp, "count"), RE_EFORMAT, "%lld samples exported from a dataset of %lld",
                          (long long)a->count, (long long)a->ds.count));
  RE_CHECK(parse_taps(a, re_cfg_get(c, "taps")));
  RE_CHECK(load_ids(a, re_cfg_get(smp, "ids")));
  for (int t = 0; check_shards && t < a->ntaps; t++)
    for (int64_t k = 0; k < a->taps[t].info.nshards; k++)
      RE_CHECK(map_shard(a, &a->taps[t], k, 0));
done:
  re_cfg_free(&c);
  if (st != RE_OK) {
    re_act_close(&a);
    return st;
  }
  *out = a;
  return RE_OK;
}

void re_act_close(re_act **pa) {
  re_act *a = *pa;
  if (!a)
    return;
  for (int t = 0; t < a->ntaps; t++) {
    act_tap *tp = &a->taps[t];
    re_npy_close(&tp->npy);
    re_ckpt_close(&tp->ck);
    free(tp->rpc);
    for (int64_t k = 0; k < tp->info.nshards; k++) {
      free(tp->shards[k].file);
      free(tp->shards[k].path);
      free(tp->shards[k].tensor);
    }
    free(tp->shards);
    free(tp->name);
    free(tp->mode);
  }
  free(a->taps);
  for (int k = 0; k < a->ds.nfiles; k++)
    free(a->ds.files[k].name);
  free(a->ds.files);
  free(a->ds.name);
  free(a->ds.format);
  re_npy_close(&a->ids);
  free(a->ids_file);
  free(a->manifest);
  free(a->dir);
  free(a);
  *pa = NULL;
}

/* ---- accessors ------------------------------------------------------------------ */

const char *re_act_dir(const re_act *a) { return a->dir; }
const re_act_dataset *re_act_dataset_info(const re_act *a) { return &a->ds; }
int64_t re_act_count(const re_act *a) { return a->count; }
int64_t re_act_id(const re_act *a, int64_t pos) {
  int64_t v = -1;
  int big = 0;
  re_ds_npy_int(a->ids, pos, &v, &big); /* checked at open */
  return v;
}
const char *re_act_ids_file(const re_act *a) { return a->ids_file; }
int re_act_ntaps(const re_act *a) { return a->ntaps; }
const re_act_tap *re_act_tap_at(const re_act *a, int t) { return &a->taps[t].info; }

int re_act_find_tap(const re_act *a, const char *name, const char *mode) {
  for (int t = 0; t < a->ntaps; t++)
    if (!strcmp(a->taps[t].name, name) && !strcmp(a->taps[t].mode, mode))
      return t;
  return -1;
}

/* Index of the shard of tap t holding position pos (the shards tile the positions). */
static int64_t shard_of(const act_tap *t, int64_t pos) {
  int64_t lo = 0, hi = t->info.nshards - 1;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo + 1) / 2;
    if (t->shards[mid].first <= pos)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

const char *re_act_shard_at(const re_act *a, int t, int64_t pos) {
  return a->taps[t].shards[shard_of(&a->taps[t], pos)].file;
}

re_status re_act_read(re_act *a, int t, int64_t pos0, int64_t n, float *out) {
  if (t < 0 || t >= a->ntaps || pos0 < 0 || n < 0 || n > a->count - pos0)
    return re_err(RE_EINVAL, "%s: positions %lld..%lld of tap %d are outside the export's %lld samples and %d taps",
                  a->dir, (long long)pos0, (long long)(pos0 + n), t, (long long)a->count, a->ntaps);
  act_tap *tp = &a->taps[t];
  int64_t row = tp->info.rows_per_sample * tp->info.dim, isz = 0;
  for (int64_t done = 0; done < n;) {
    int64_t pos = pos0 + done, k = shard_of(tp, pos);
    const act_shard *sh = &tp->shards[k];
    if (tp->cur != k)
      RE_TRY(map_shard(a, tp, k, 1));
    isz = re_dtype_size(tp->dtype);
    int64_t take = sh->first + sh->count - pos < n - done ? sh->first + sh->count - pos : n - done;
    float *dst = out + done * row;
    const uint8_t *src = tp->data + (pos - sh->first) * row * isz;
    re_dtype_to_f32(tp->dtype, tp->swap, src, take * row, dst);
    if (sh->kind != SH_RPC) /* a file map: what was read leaves the resident set */
      re_release_map_pages(src, take * row * isz);
    for (int64_t e = 0; e < take * row; e++)
      if (!isfinite(dst[e])) {
        int64_t p = pos + e / row;
        return re_err(RE_EDATA, "%s/%s: %s value at position %lld (sample id %lld), feature %lld of tap %s:%s",
                      a->dir, sh->file, isnan(dst[e]) ? "NaN" : "infinite", (long long)p, (long long)re_act_id(a, p),
                      (long long)(e % row), tp->name, tp->mode);
      }
    done += take;
  }
  return RE_OK;
}
