/* Job file parsing and validation (schema: docs/job-spec.md). */
#include "out/path.h"
#include "run/job.h"

#include "repeval/activations.h"
#include "repeval/checkpoint.h"
#include "run/analysis.h"


#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fnmatch.h>
#include <glob.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_EXPANSION 100000

/* ---- small string list -------------------------------------------------- */

typedef struct strs {
  char **v;
  int n;
} strs;

static re_status strs_push(strs *s, const char *x) {
  if (s->n >= MAX_EXPANSION)
    return re_err(RE_EINVAL, "a pattern expands to more than %d names", MAX_EXPANSION);
  RE_TRY(re_realloc(&s->v, s->n + 1, sizeof(char *)));
  RE_TRY(re_strdup(x, &s->v[s->n]));
  s->n++;
  return RE_OK;
}

static void strs_free(strs *s) {
  for (int k = 0; k < s->n; k++)
    free(s->v[k]);
  free(s->v);
  s->v = NULL;
  s->n = 0;
}

/* ---- ${ENV} expansion ---------------------------------------------------- */

static re_status expand_env(const re_cfg *node, const char *s, char **out) {
  size_t cap = strlen(s) + 256, len = 0;
  char *o;
  RE_TRY(re_malloc((int64_t)cap, 1, &o));
  for (const char *p = s; *p;) {
    const char *val = NULL;
    char name[256], dflt[1024];
    size_t vlen = 0;
    if (p[0] == '$' && p[1] == '$') {
      val = "$", vlen = 1, p += 2;
    } else if (p[0] == '$' && p[1] == '{') {
      const char *end = strchr(p, '}');
      if (!end || end - p - 2 >= (long)sizeof name) {
        free(o);
        return re_cfg_error(node, RE_EINVAL, "unterminated ${...} in '%s'", s);
      }
      size_t n = (size_t)(end - p - 2);
      memcpy(name, p + 2, n);
      name[n] = '\0';
      char *colon = strstr(name, ":-");
      dflt[0] = '\0';
      int has_default = 0;
      if (colon) {
        snprintf(dflt, sizeof dflt, "%s", colon + 2);
        *colon = '\0';
        has_default = 1;
      }
      val = getenv(name);
      if (!val || (!*val && has_default))
        val = has_default ? dflt : NULL;
      if (!val) {
        free(o);
        return re_cfg_error(node, RE_EINVAL, "environment variable %s is not set (used in '%s'; write ${%s:-default} "
                                             "for a default)", name, s, name);
      }
      vlen = strlen(val);
      p = end + 1;
    } else {
      val = p, vlen = 1, p++;
    }
    if (len + vlen + 1 > cap) {
      cap = 2 * (len + vlen + 1);
      if (re_realloc(&o, (int64_t)cap, 1) != RE_OK) {
        free(o);
        return RE_ENOMEM;
      }
    }
    memcpy(o + len, val, vlen);
    len += vlen;
  }
  o[len] = '\0';
  *out = o;
  return RE_OK;
}

/* ---- {a..b} and {x,y} expansion ------------------------------------------ */

/* |hi - lo| without overflow (bounds may be anywhere in long's range). */
static unsigned long range_span(long lo, long hi) {
  return hi >= lo ? (unsigned long)hi - (unsigned long)lo : (unsigned long)lo - (unsigned long)hi;
}

/* Names brace_expand would make of pat (saturating at MAX_EXPANSION + 1), counted
 * without making them, so that an oversized pattern is refused at once. */
static int64_t brace_count(const char *pat) {
  const char *open = strchr(pat, '{');
  const char *close = open ? strchr(open, '}') : NULL;
  if (!close)
    return 1;
  int64_t alts = 1;
  const char *dots = NULL;
  for (const char *q = open + 1; q + 1 < close; q++)
    if (q[0] == '.' && q[1] == '.') {
      dots = q;
      break;
    }
  if (dots) {
    long lo = strtol(open + 1, NULL, 10), hi = strtol(dots + 2, NULL, 10);
    if (range_span(lo, hi) >= MAX_EXPANSION)
      return 0; /* brace_expand refuses the range itself, naming it */
    alts = (int64_t)range_span(lo, hi) + 1;
  } else if (memchr(open, ',', (size_t)(close - open))) {
    alts = 0;
    for (const char *q = open + 1; q < close; q++) /* non-empty fields between commas */
      alts += *q != ',' && (q == open + 1 || q[-1] == ',');
  } else {
    return 1; /* a literal group: kept as it is */
  }
  if (alts > MAX_EXPANSION)
    return MAX_EXPANSION + 1;
  if (alts == 0)
    return 0;
  int64_t rest = brace_count(close + 1);
  return rest > (MAX_EXPANSION + 1) / alts ? MAX_EXPANSION + 1 : alts * rest;
}

static re_status brace_expand(const char *pat, strs *out) {
  const char *open = strchr(pat, '{');
  if (!open)
    return strs_push(out, pat);
  const char *close = strchr(open, '}');
  if (!close)
    return strs_push(out, pat);
  size_t pre = (size_t)(open - pat);
  char body[256];
  size_t bl = (size_t)(close - open - 1);
  if (bl >= sizeof body)
    return re_err(RE_EINVAL, "pattern group too long in '%s'", pat);
  memcpy(body, open + 1, bl);
  body[bl] = '\0';
  strs alts = {0};
  re_status st = RE_OK;
  char *dots = strstr(body, "..");
  if (dots) {
    char *a = body, *b = dots + 2, *e1, *e2;
    *dots = '\0';
    long lo = strtol(a, &e1, 10), hi = strtol(b, &e2, 10);
    if (*e1 || *e2 || !*a || !*b)
      return re_err(RE_EINVAL, "range {%s..%s} in '%s' must have integer bounds", a, b, pat);
    int width = 0;
    if ((a[0] == '0' && strlen(a) > 1) || (b[0] == '0' && strlen(b) > 1))
      width = (int)(strlen(a) > strlen(b) ? strlen(a) : strlen(b));
    long step = lo <= hi ? 1 : -1;
    if (range_span(lo, hi) >= MAX_EXPANSION)
      return re_err(RE_EINVAL, "range {%ld..%ld} is too long", lo, hi);
    for (long v = lo;; v += step) {
      char num[32];
      snprintf(num, sizeof num, "%0*ld", width, v);
      if ((st = strs_push(&alts, num)) != RE_OK)
        break;
      if (v == hi)
        break;
    }
  } else if (strchr(body, ',')) {
    char *save = NULL;
    for (char *t = strtok_r(body, ",", &save); t && st == RE_OK; t = strtok_r(NULL, ",", &save))
      st = strs_push(&alts, t);
  } else {
    /* not an expansion group: keep it literally */
    strs_free(&alts);
    char *lit;
    RE_TRY(re_malloc((int64_t)strlen(pat) + 1, 1, &lit));
    strcpy(lit, pat);
    st = strs_push(out, lit);
    free(lit);
    return st;
  }
  for (int k = 0; k < alts.n && st == RE_OK; k++) {
    size_t need = pre + strlen(alts.v[k]) + strlen(close + 1) + 1;
    char *cand;
    st = re_malloc((int64_t)need, 1, &cand);
    if (st != RE_OK)
      break;
    snprintf(cand, need, "%.*s%s%s", (int)pre, pat, alts.v[k], close + 1);
    st = brace_expand(cand, out);
    free(cand);
  }
  strs_free(&alts);
  return st;
}

/* ---- paths ---------------------------------------------------------------- */

static re_status resolve(const job *j, const char *p, char **out) {
  if (p[0] == '/' || !j->dir[0] || !strcmp(j->dir, "."))
    return re_strdup(p, out);
  size_t n = strlen(j->dir) + strlen(p) + 2;
  RE_TRY(re_malloc((int64_t)n, 1, out));
  snprintf(*out, n, "%s/%s", j->dir, p);
  return RE_OK;
}

static int exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* A file path value: ${ENV} expanded, resolved against the job folder, must exist. */
static re_status one_file(job *j, const re_cfg *node, char **out) {
  const char *s;
  char *e = NULL;
  RE_TRY(re_cfg_string(node, &s));
  RE_TRY(expand_env(node, s, &e));
  re_status st = resolve(j, e, out);
  free(e);
  struct stat sb;
  if (st == RE_OK && !exists(*out)) {
    if (stat(*out, &sb) == 0 && re_check_regular(*out) != RE_OK) /* a FIFO, a device, a folder */
      st = re_cfg_error(node, RE_EINVAL, "%s", re_errmsg());
    else
      st = re_cfg_error(node, RE_EINVAL, "file not found: %s", *out);
    re_free(out);
  }
  return st;
}

/* A pattern (string) or list of patterns: ${ENV}, braces, globs; files must exist. */
static re_status file_list(job *j, const re_cfg *node, strs *files) {
  const re_cfg *items[1] = {node};
  const re_cfg *const *list = items;
  int64_t n = 1;
  if (node->kind == RE_CFG_SEQ) {
    list = (const re_cfg *const *)node->items;
    n = node->n;
  }
  for (int64_t k = 0; k < n; k++) {
    const char *s;
    char *e = NULL, *r = NULL;
    strs cands = {0};
    RE_TRY(re_cfg_string(list[k], &s));
    RE_TRY(expand_env(list[k], s, &e));
    re_status st = resolve(j, e, &r);
    free(e);
    if (st == RE_OK && brace_count(r) > MAX_EXPANSION)
      st = re_err(RE_EINVAL, "a pattern expands to more than %d names", MAX_EXPANSION);
    if (st == RE_OK)
      st = brace_expand(r, &cands);
    if (st != RE_OK) {
      free(r);
      strs_free(&cands);
      return re_cfg_error(list[k], st, "%s", re_errmsg());
    }
    for (int c = 0; c < cands.n && st == RE_OK; c++) {
      if (!strpbrk(cands.v[c], "*?[")) {
        struct stat sb;
        if (!exists(cands.v[c]) && stat(cands.v[c], &sb) == 0 && re_check_regular(cands.v[c]) != RE_OK)
          st = re_cfg_error(list[k], RE_EINVAL, "%s (from pattern '%s')", re_errmsg(), s);
        else if (!exists(cands.v[c]))
          st = re_cfg_error(list[k], RE_EINVAL, "file not found: %s (from pattern '%s')", cands.v[c], s);
        else
          st = strs_push(files, cands.v[c]);
        continue;
      }
      glob_t g;
      int rc = glob(cands.v[c], 0, NULL, &g);
      if (rc == GLOB_NOMATCH) {
        st = re_cfg_error(list[k], RE_EINVAL, "no file matches %s (from pattern '%s')", cands.v[c], s);
      } else if (rc != 0) {
        st = re_cfg_error(list[k], RE_EIO, "cannot expand %s", cands.v[c]);
      } else {
        for (size_t m = 0; m < g.gl_pathc && st == RE_OK; m++)
          if (exists(g.gl_pathv[m]))
            st = strs_push(files, g.gl_pathv[m]);
        globfree(&g);
      }
    }
    free(r);
    strs_free(&cands);
    RE_TRY(st);
  }
  if (files->n == 0)
    return re_cfg_error(node, RE_EINVAL, "no files");
  return RE_OK;
}

/* Labels: paths relative to their common folder, without the extension. */
static re_status make_labels(job_ckpt *c, int n) {
  size_t common = 0;
  if (n > 0) {
    const char *first = c[0].path;
    const char *slash = strrchr(first, '/');
    common = slash ? (size_t)(slash - first + 1) : 0;
    for (int k = 1; k < n; k++) {
      size_t m = 0;
      while (m < common && c[k].path[m] == first[m])
        m++;
      while (m > 0 && first[m - 1] != '/')
        m--;
      common = m;
    }
  }
  for (int k = 0; k < n; k++) {
    if (c[k].label) /* a hub cache branch: its name */
      continue;
    RE_TRY(re_strdup(c[k].path + common, &c[k].label));
    char *dot = strrchr(c[k].label, '.'), *sl = strrchr(c[k].label, '/');
    struct stat sb;
    int folder = stat(c[k].path, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (!folder && dot && (!sl || dot > sl) && dot != c[k].label) /* a model folder keeps its whole name */
      *dot = '\0';
  }
  for (int a = 0; a < n; a++)
    for (int b = a + 1; b < n; b++)
      if (!strcmp(c[a].label, c[b].label))
        return re_err(RE_EINVAL, "checkpoints %s and %s get the same label '%s' (same name, different "
                                 "extensions?)", c[a].path, c[b].path, c[a].label);
  return RE_OK;
}

/* ---- sections --------------------------------------------------------------- */

static re_status parse_normalize(job_dataset *d, const re_cfg *c) {
  static const char *const keys[] = {"mean", "std", NULL};
  RE_TRY(re_cfg_expect_map(c, "normalize", keys));
  const re_cfg *m = re_cfg_get(c, "mean"), *s = re_cfg_get(c, "std");
  if (!m || !s || m->kind != RE_CFG_SEQ || s->kind != RE_CFG_SEQ || m->n != s->n || m->n < 1 || m->n > 4)
    return re_cfg_error(c, RE_EINVAL, "normalize needs lists 'mean' and 'std' of equal length (1 to 4 channels)");
  d->nnorm = (int)m->n;
  for (int k = 0; k < d->nnorm; k++) {
    double a, b;
    RE_TRY(re_cfg_double(m->items[k], &a));
    RE_TRY(re_cfg_double(s->items[k], &b));
    if (!(b > 0))
      return re_cfg_error(s->items[k], RE_EINVAL, "std must be positive");
    d->mean[k] = (float)a;
    d->std[k] = (float)b;
  }
  return RE_OK;
}

/* Dataset and analysis names become file names (stats/<dataset>.stats,
 * cka_<analysis>.npy, <out>.state/pass-<dataset>...): only plain file-name
 * components are accepted. */
static re_status check_file_name(const re_cfg *key, const char *what, const char *name) {
  if (!name[0] || !strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/') || strchr(name, '\\'))
    return re_cfg_error(key, RE_EINVAL, "%s name '%s' must be a plain file name (no '/', not '.' or '..')", what,
                        name);
  for (const char *q = name; *q; q++)
    if ((unsigned char)*q < 0x20)
      return re_cfg_error(key, RE_EINVAL, "%s name '%s' contains a control character", what, name);
  return RE_OK;
}

static re_status job_dataset_source(const job_dataset *d, re_dataset_source *src);

static int listed(const char *const *list, const char *name) {
  for (; list && *list; list++)
    if (!strcmp(*list, name))
      return 1;
  return 0;
}

/* A path option of a dataset (labels, mask, tokenizer): resolved like one_file; the
 * tokenizer may be the model folder holding tokenizer.json, which then is the input file. */
static re_status dataset_path(job *j, const re_cfg *node, const char *key, char **value, char **file) {
  const char *s;
  char *e = NULL;
  struct stat sb;
  RE_TRY(re_cfg_string(node, &s));
  RE_TRY(expand_env(node, s, &e));
  re_status st = resolve(j, e, value);
  free(e);
  RE_TRY(st);
  if (!strcmp(key, "tokenizer") && stat(*value, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    size_t n = strlen(*value) + sizeof "/tokenizer.json";
    RE_TRY(re_malloc((int64_t)n, 1, file));
    snprintf(*file, n, "%s/tokenizer.json", *value);
    if (!exists(*file))
      return re_cfg_error(node, RE_EINVAL, "tokenizer folder %s holds no tokenizer.json", *value);
    return RE_OK;
  }
  if (!exists(*value)) {
    if (stat(*value, &sb) == 0 && re_check_regular(*value) != RE_OK)
      return re_cfg_error(node, RE_EINVAL, "%s", re_errmsg());
    return re_cfg_error(node, RE_EINVAL, "file not found: %s", *value);
  }
  return re_strdup(*value, file);
}

/* One option of a dataset's format: checked now (re_dataset_source_set), kept as text. */
static re_status dataset_option(job *j, job_dataset *d, strs *extra, const char *key, const re_cfg *node) {
  const re_dataset_format *f = re_dataset_format_find(d->format);
  char *value = NULL, *file = NULL;
  re_status st;
  if (listed(f->path_options, key)) {
    st = dataset_path(j, node, key, &value, &file);
    if (st == RE_OK)
      st = strs_push(extra, file);
    free(file);
  } else {
    const char *v;
    st = node->kind == RE_CFG_SCALAR ? re_cfg_string(node, &v)
                                     : re_cfg_error(node, RE_EINVAL, "'%s' takes a single value", key);
    if (st == RE_OK)
      st = re_strdup(v, &value);
  }
  if (st == RE_OK) {
    re_dataset_source probe = {.format = d->format};
    if (re_dataset_source_set(&probe, key, value) != RE_OK)
      st = re_cfg_error(node, RE_EINVAL, "dataset '%s': %s", d->name, re_errmsg());
  }
  if (st == RE_OK)
    st = re_realloc(&d->opt_keys, d->nopts + 1, sizeof(char *));
  if (st == RE_OK)
    st = re_realloc(&d->opt_vals, d->nopts + 1, sizeof(char *));
  if (st == RE_OK) {
    d->opt_vals[d->nopts] = value;
    value = NULL;
    st = re_strdup(key, &d->opt_keys[d->nopts]);
    d->nopts++; /* job_free frees a NULL key too */
  }
  free(value);
  return st;
}

/* "images, labels" and the common keys: what dataset format f accepts, for messages. */
static void dataset_keys_text(const re_dataset_format *f, char *buf, size_t cap) {
  size_t n = (size_t)snprintf(buf, cap, "%s", f->files_key);
  for (const char *const *o = f->options; *o && n < cap; o++)
    n += (size_t)snprintf(buf + n, cap - n, ", %s", *o);
  if (n < cap)
    snprintf(buf + n, cap - n, ", normalize, folds, offset, limit");
}

/* folds: {count: K, use: [i, ...]}: sample k of the dataset is in fold k mod K; the
 * listed folds are kept (re_dataset_open_folds, which checks the values again). */
static re_status parse_folds(job_dataset *d, const re_cfg *c) {
  static const char *const keys[] = {"count", "use", NULL};
  RE_TRY(re_cfg_expect_map(c, "'folds' ({count: K, use: [folds kept]})", keys));
  const re_cfg *count = re_cfg_get(c, "count"), *use = re_cfg_get(c, "use");
  if (!count || !use)
    return re_cfg_error(c, RE_EINVAL, "dataset '%s': 'folds' needs 'count' and 'use' (e.g. {count: 5, use: [0]})",
                        d->name);
  RE_TRY(re_cfg_int(count, &d->folds));
  if (d->folds < 2 || d->folds > 1000000)
    return re_cfg_error(count, RE_EINVAL, "dataset '%s': folds count must be 2 ... 1000000, got %lld", d->name,
                        (long long)d->folds);
  if (use->kind != RE_CFG_SEQ || use->n < 1 || use->n > d->folds)
    return re_cfg_error(use, RE_EINVAL, "dataset '%s': folds 'use' must be a list of 1 ... %lld fold numbers",
                        d->name, (long long)d->folds);
  RE_TRY(re_calloc(use->n, sizeof *d->fold_use, &d->fold_use));
  for (int64_t k = 0; k < use->n; k++) {
    RE_TRY(re_cfg_int(use->items[k], &d->fold_use[k]));
    if (d->fold_use[k] < 0 || d->fold_use[k] >= d->folds)
      return re_cfg_error(use->items[k], RE_EINVAL, "dataset '%s': fold %lld does not exist (0 ... %lld)", d->name,
                          (long long)d->fold_use[k], (long long)d->folds - 1);
    for (int64_t q = 0; q < k; q++)
      if (d->fold_use[q] == d->fold_use[k])
        return re_cfg_error(use->items[k], RE_EINVAL, "dataset '%s': fold %lld is listed twice", d->name,
                            (long long)d->fold_use[k]);
    d->nfold_use = (int)k + 1;
  }
  return RE_OK;
}

static re_status parse_dataset(job *j, job_dataset *d, const char *name, const re_cfg *c) {
  if (c->kind != RE_CFG_MAP)
    return re_cfg_error(c, RE_EINVAL, "dataset '%s' must be a map with 'format'", name);
  d->src = c;
  RE_TRY(re_strdup(name, &d->name));
  const re_cfg *fnode = re_cfg_get(c, "format");
  if (!fnode)
    return re_cfg_error(c, RE_EINVAL, "dataset '%s' needs 'format' (%s)", name, re_dataset_format_names());
  const char *fmt;
  RE_TRY(re_cfg_string(fnode, &fmt));
  const re_dataset_format *f = re_dataset_format_find(fmt);
  if (!f)
    return re_cfg_error(fnode, RE_EINVAL, "unknown dataset format '%s' (%s)", fmt, re_dataset_format_names());
  RE_TRY(re_strdup(fmt, &d->format));
  const re_cfg *files = re_cfg_get(c, f->files_key);
  if (!files)
    return re_cfg_error(c, RE_EINVAL, "dataset '%s' (%s) needs '%s'", name, fmt, f->files_key);
  strs all = {0}, extra = {0};
  re_status st = f->max_files == 1 && files->kind != RE_CFG_SEQ ? RE_OK : file_list(j, files, &all);
  if (st == RE_OK && f->max_files == 1 && files->kind != RE_CFG_SEQ) {
    char *one = NULL;
    st = one_file(j, files, &one);
    if (st == RE_OK)
      st = strs_push(&all, one);
    free(one);
  }
  if (st == RE_OK && f->max_files && all.n > f->max_files)
    st = re_cfg_error(files, RE_EINVAL, "dataset '%s' (%s) takes %d file(s) in '%s', got %d", name, fmt, f->max_files,
                      f->files_key, all.n);
  for (int64_t k = 0; k < c->n && st == RE_OK; k++) {
    const char *key = c->keys[k];
    if (!strcmp(key, "format") || !strcmp(key, f->files_key) || !strcmp(key, "normalize") ||
        !strcmp(key, "limit") || !strcmp(key, "offset") || !strcmp(key, "folds"))
      continue;
    if (!listed(f->options, key)) {
      char keys[512];
      dataset_keys_text(f, keys, sizeof keys);
      st = re_cfg_error(c->keynodes[k], RE_EINVAL, "dataset '%s' (%s) has no key '%s' (its keys: %s)", name, fmt,
                        key, keys);
      break;
    }
    st = dataset_option(j, d, &extra, key, c->items[k]);
  }
  d->nmain = all.n;
  for (int k = 0; k < extra.n && st == RE_OK; k++)
    st = strs_push(&all, extra.v[k]);
  strs_free(&extra);
  d->files = all.v;
  d->nfiles = all.n;
  RE_TRY(st);
  re_dataset_source src;
  RE_TRY(job_dataset_source(d, &src));
  d->has_labels = re_dataset_source_labeled(&src);
  const re_cfg *norm = re_cfg_get(c, "normalize");
  if (norm) {
    if (f->tokens)
      return re_cfg_error(norm, RE_EINVAL, "dataset '%s' (%s) holds token ids: 'normalize' applies to images and "
                                           "arrays", name, fmt);
    RE_TRY(parse_normalize(d, norm));
  }
  RE_TRY(re_cfg_get_int(c, "limit", &d->limit));
  if (d->limit < 0)
    return re_cfg_error(re_cfg_get(c, "limit"), RE_EINVAL, "limit must be >= 0");
  RE_TRY(re_cfg_get_int(c, "offset", &d->offset));
  if (d->offset < 0)
    return re_cfg_error(re_cfg_get(c, "offset"), RE_EINVAL, "offset must be >= 0");
  const re_cfg *folds = re_cfg_get(c, "folds");
  return folds ? parse_folds(d, folds) : RE_OK;
}

static re_status parse_layers(job_model *m, const re_cfg *c) {
  if (c->kind != RE_CFG_SEQ || c->n == 0)
    return re_cfg_error(c, RE_EINVAL, "'layers' must be a non-empty list of module names (name or name:mode)");
  RE_TRY(re_calloc(c->n, sizeof(job_layer), &m->layers));
  for (int64_t k = 0; k < c->n; k++) {
    const char *s;
    RE_TRY(re_cfg_string(c->items[k], &s));
    RE_TRY(re_strdup(s, &m->layers[k].name));
    m->nlayers = (int)k + 1;
    char *colon = strchr(m->layers[k].name, ':');
    m->layers[k].mode = RE_TAP_FLATTEN;
    if (colon) {
      *colon = '\0';
      if (re_tap_mode_parse(colon + 1, &m->layers[k].mode) != RE_OK)
        return re_cfg_error(c->items[k], RE_EINVAL, "tap mode '%s' is not one of flatten, mean, cls, spatial",
                            colon + 1);
    }
    for (int64_t q = 0; q < k; q++)
      if (!strcmp(m->layers[q].name, m->layers[k].name) && m->layers[q].mode == m->layers[k].mode)
        return re_cfg_error(c->items[k], RE_EINVAL, "layer '%s' listed twice", s);
  }
  return RE_OK;
}

/* A checkpoint: a file, or a Hugging Face model folder (config.json, or weights). */
static int ckpt_folder(const char *p) {
  struct stat sb;
  if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return 0;
  static const char *const files[] = {"config.json", "model.safetensors", "model.safetensors.index.json",
                                      "pytorch_model.bin", "pytorch_model.bin.index.json"};
  char f[PATH_MAX + 64];
  for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
    if (re_path_join(f, sizeof f, "%s/%s", p, files[k]) != RE_OK) { /* a cut name is no evidence */
      re_err_clear();
      continue;
    }
    if (exists(f))
      return 1;
  }
  return re_hf_cache_is_repo(p);
}

/* An activations folder of a checkpoint: a folder with a subfolder per dataset, at
 * least one of which holds activations.json. */
static int act_folder(const char *p) {
  struct stat sb;
  if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return 0;
  DIR *d = opendir(p);
  if (!d)
    return 0;
  int found = 0;
  char f[PATH_MAX + 600];
  for (struct dirent *e; !found && (e = readdir(d));) {
    if (e->d_name[0] == '.')
      continue;
    if (re_path_join(f, sizeof f, "%s/%s/" RE_ACT_MANIFEST, p, e->d_name) != RE_OK) { /* a cut name is no evidence */
      re_err_clear();
      continue;
    }
    found = exists(f);
  }
  closedir(d);
  return found;
}

static int cmp_natural(const void *a, const void *b) {
  return re_natural_cmp(((const job_ckpt *)a)->path, ((const job_ckpt *)b)->path);
}

static re_status push_ckpt(job_model *m, const char *path, const char *label) {
  RE_TRY(re_realloc(&m->ckpts, m->nckpts + 1, sizeof(job_ckpt)));
  job_ckpt *c = &m->ckpts[m->nckpts];
  memset(c, 0, sizeof *c);
  RE_TRY(re_strdup(path, &c->path));
  m->nckpts++;
  return label ? re_strdup(label, &c->label) : RE_OK;
}

/* "REPO@PATTERN": the branches of a hub cache repo (models--Org--name) matching the
 * pattern, in natural order, each labelled by its name (step0, step1000, ...). */
static re_status cache_branches(job_model *m, const re_cfg *node, const char *spec) {
  const char *at = strrchr(spec, '@');
  char repo[PATH_MAX];
  if ((size_t)(at - spec) >= sizeof repo)
    return re_cfg_error(node, RE_EINVAL, "%s: path too long", spec);
  memcpy(repo, spec, (size_t)(at - spec));
  repo[at - spec] = '\0';
  if (!re_hf_cache_is_repo(repo))
    return re_cfg_error(node, RE_EINVAL, "%s is not a Hugging Face cache repo (a models--Org--name folder with refs/ "
                                         "and snapshots/), needed for the branch pattern '@%s'",
                        repo, at + 1);
  re_ckpt_list *list = NULL;
  re_status st = re_hf_cache_list(repo, at + 1, &list);
  for (int64_t k = 0; st == RE_OK && k < list->count; k++)
    st = push_ckpt(m, list->entries[k].path, list->entries[k].name);
  re_ckpt_list_free(&list);
  return st == RE_OK ? RE_OK : re_cfg_error(node, st, "%s", re_errmsg());
}

/* Candidate `cand` (no wildcard) of pattern s: a checkpoint file or model folder, or
 * (activations models) an activations folder. */
static re_status ckpt_path(job *j, job_model *m, const re_cfg *node, const char *s, const char *cand) {
  struct stat sb;
  if (m->activations && !act_folder(cand) && j->deferred)
    return RE_OK; /* written by a job this one waits for */
  if (m->activations && !act_folder(cand))
    return stat(cand, &sb) == 0
               ? re_cfg_error(node, RE_EINVAL, "%s is not an activations folder: none of its subfolders holds %s "
                                               "(from pattern '%s')",
                              cand, RE_ACT_MANIFEST, s)
               : re_cfg_error(node, RE_EINVAL, "folder not found: %s (from pattern '%s')", cand, s);
  if (!m->activations && !exists(cand) && !ckpt_folder(cand))
    return stat(cand, &sb) == 0
               ? re_cfg_error(node, RE_EINVAL, "%s is neither a checkpoint file nor a model folder (from pattern "
                                               "'%s')",
                              cand, s)
               : re_cfg_error(node, RE_EINVAL, "file not found: %s (from pattern '%s')", cand, s);
  return push_ckpt(m, cand, NULL);
}

/* The matches of glob `cand` of pattern s, in natural order (step9 before step10). */
static re_status ckpt_glob(job *j, job_model *m, const re_cfg *node, const char *s, const char *cand) {
  const int act = m->activations;
  int first = m->nckpts;
  re_status st = RE_OK;
  glob_t g;
  int rc = glob(cand, 0, NULL, &g);
  if (rc == GLOB_NOMATCH && act && j->deferred)
    return RE_OK; /* written by a job this one waits for */
  if (rc == GLOB_NOMATCH)
    return act ? re_cfg_error(node, RE_EINVAL, "no activations folder (a folder with <dataset>/%s) matches %s (from "
                                               "pattern '%s')",
                              RE_ACT_MANIFEST, cand, s)
               : re_cfg_error(node, RE_EINVAL, "no file matches %s (from pattern '%s')", cand, s);
  if (rc != 0)
    return re_cfg_error(node, RE_EIO, "cannot expand %s", cand);
  for (size_t q = 0; q < g.gl_pathc && st == RE_OK; q++)
    if (act ? act_folder(g.gl_pathv[q]) : exists(g.gl_pathv[q]) || ckpt_folder(g.gl_pathv[q]))
      st = push_ckpt(m, g.gl_pathv[q], NULL);
  globfree(&g);
  if (st == RE_OK && m->nckpts == first && !(act && j->deferred))
    st = act ? re_cfg_error(node, RE_EINVAL, "no activations folder (a folder with <dataset>/%s) matches %s (from "
                                             "pattern '%s')",
                            RE_ACT_MANIFEST, cand, s)
             : re_cfg_error(node, RE_EINVAL, "no checkpoint file or model folder matches %s (from pattern '%s')", cand,
                            s);
  if (st == RE_OK)
    qsort(m->ckpts + first, (size_t)(m->nckpts - first), sizeof(job_ckpt), cmp_natural);
  return st;
}

/* The checkpoints of one pattern: ${ENV} and braces expanded, then each candidate a
 * path or a glob; or REPO@BRANCHES of the hub cache. */
static re_status ckpt_pattern(job *j, job_model *m, const re_cfg *node) {
  const char *s;
  char *e = NULL, *r = NULL;
  RE_TRY(re_cfg_string(node, &s));
  RE_TRY(expand_env(node, s, &e));
  re_status st = resolve(j, e, &r);
  free(e);
  if (st == RE_OK && !m->activations && strchr(r, '@') && !strpbrk(strrchr(r, '@'), "/")) {
    st = cache_branches(m, node, r);
    free(r);
    return st;
  }
  strs cands = {0};
  if (st == RE_OK && brace_count(r) > MAX_EXPANSION)
    st = re_err(RE_EINVAL, "a pattern expands to more than %d names", MAX_EXPANSION);
  if (st == RE_OK)
    st = brace_expand(r, &cands);
  free(r);
  if (st != RE_OK) {
    strs_free(&cands);
    return re_cfg_error(node, st, "%s", re_errmsg());
  }
  for (int c = 0; c < cands.n && st == RE_OK; c++)
    st = strpbrk(cands.v[c], "*?[") ? ckpt_glob(j, m, node, s, cands.v[c]) : ckpt_path(j, m, node, s, cands.v[c]);
  strs_free(&cands);
  return st;
}

/* The checkpoints of a model: patterns (${ENV}, braces, globs) of files and model
 * folders, or REPO@BRANCHES of the hub cache; a pattern's matches in natural order.
 * Activations models (m->activations): patterns of activations folders. */
static re_status ckpt_list(job *j, job_model *m, const re_cfg *node) {
  const re_cfg *items[1] = {node};
  const re_cfg *const *list = node->kind == RE_CFG_SEQ ? (const re_cfg *const *)node->items : items;
  int64_t n = node->kind == RE_CFG_SEQ ? node->n : 1;
  for (int64_t k = 0; k < n; k++)
    RE_TRY(ckpt_pattern(j, m, list[k]));
  if (m->nckpts == 0 && !(m->activations && j->deferred))
    return re_cfg_error(node, RE_EINVAL, "no checkpoints");
  return RE_OK;
}

/* A model whose taps were computed elsewhere: `activations:` patterns of folders (one
 * per checkpoint, each with a subfolder per dataset, docs/formats.md) and `layers`. */
static re_status parse_act_model(job *j, job_model *m, const re_cfg *c, const re_cfg *act) {
  static const char *const other[] = {"arch", "checkpoints", "state_dict_key"};
  for (size_t k = 0; k < sizeof other / sizeof other[0]; k++)
    if (re_cfg_get(c, other[k]))
      return re_cfg_error(re_cfg_get(c, other[k]), RE_EINVAL, "model '%s': 'activations' replaces 'arch', "
                                                              "'checkpoints' and 'state_dict_key' (the forward pass "
                                                              "was run elsewhere); give one or the other",
                          m->name);
  const re_cfg *ly = re_cfg_get(c, "layers");
  if (!ly)
    return re_cfg_error(c, RE_EINVAL, "model '%s' needs 'layers': the exported taps to use (name or name:mode)",
                        m->name);
  m->activations = 1;
  RE_TRY(ckpt_list(j, m, act));
  re_status st = make_labels(m->ckpts, m->nckpts);
  if (st != RE_OK)
    return re_cfg_error(act, st, "%s", re_errmsg());
  return parse_layers(m, ly);
}

static re_status parse_model(job *j, job_model *m, const re_cfg *c) {
  static const char *const keys[] = {"name", "arch", "checkpoints", "layers", "state_dict_key", "activations", NULL};
  RE_TRY(re_cfg_expect_map(c, "a model", keys));
  m->src = c;
  const char *s = NULL;
  RE_TRY(re_cfg_get_string(c, "name", &s));
  if (!s || !*s || strchr(s, '/') || strchr(s, ','))
    return re_cfg_error(c, RE_EINVAL, "a model needs a 'name' without '/' or ','");
  RE_TRY(re_strdup(s, &m->name));
  const re_cfg *act = re_cfg_get(c, "activations");
  if (act)
    return parse_act_model(j, m, c, act);
  const re_cfg *arch = re_cfg_get(c, "arch"), *ck = re_cfg_get(c, "checkpoints"), *ly = re_cfg_get(c, "layers");
  if (!ck || !ly)
    return re_cfg_error(c, RE_EINVAL, "model '%s' needs 'checkpoints' and 'layers' (and 'arch', unless the "
                                      "checkpoints are Hugging Face model folders)",
                        m->name);
  RE_TRY(ckpt_list(j, m, ck));
  re_model *probe = NULL;
  re_status st = RE_OK;
  if (!arch) { /* Hugging Face folders: the architecture is the first one's config.json */
    const char *first = m->ckpts[0].path;
    char cfg[PATH_MAX + 16];
    RE_TRY(re_path_join(cfg, sizeof cfg, "%s/config.json", first));
    if (!ckpt_folder(first) || !exists(cfg))
      return re_cfg_error(c, RE_EINVAL, "model '%s' needs 'arch': its first checkpoint %s is not a Hugging Face "
                                        "model folder with a config.json",
                          m->name, first);
    st = re_model_load(first, &probe);
    re_model_destroy(&probe);
    if (st != RE_OK)
      return re_cfg_error(c, st, "model '%s': %s", m->name, re_errmsg());
    RE_TRY(re_strdup(first, &m->arch));
  } else {
    RE_TRY(re_cfg_string(arch, &s));
    if (re_model_load(s, &probe) == RE_OK) { /* a preset name */
      re_model_destroy(&probe);
      RE_TRY(re_strdup(s, &m->arch));
    } else {
      re_err_clear();
      char *dir = NULL;
      RE_TRY(resolve(j, s, &dir));
      if (ckpt_folder(dir)) /* a Hugging Face model folder given as the architecture */
        m->arch = dir;
      else
        free(dir);
      if (!m->arch)
        RE_TRY(one_file(j, arch, &m->arch));
      st = re_model_load(m->arch, &probe); /* validate the model file now */
      re_model_destroy(&probe);
      RE_TRY(st);
    }
  }
  RE_TRY(re_cfg_get_string(c, "state_dict_key", &s));
  if (re_cfg_get(c, "state_dict_key"))
    RE_TRY(re_strdup(s, &m->state_dict_key));
  st = make_labels(m->ckpts, m->nckpts);
  if (st != RE_OK)
    return re_cfg_error(ck, st, "%s", re_errmsg());
  return parse_layers(m, ly);
}

/* forward: {batch: B, checkpoints_in_memory: auto | all | one}; the job-level `batch:`
 * of earlier job files is the forward batch too. */
static re_status parse_forward(job *j, const re_cfg *c) {
  j->forward_batch = 128;
  const re_cfg *f = re_cfg_get(c, "forward"), *old = re_cfg_get(c, "batch");
  if (f && old)
    return re_cfg_error(old, RE_EINVAL, "give the forward batch once: 'forward: {batch: ...}' (the job-level "
                                        "'batch' is its older name)");
  if (old) {
    RE_TRY(re_cfg_int(old, &j->forward_batch));
  } else if (f) {
    static const char *const keys[] = {"batch", "checkpoints_in_memory", NULL};
    RE_TRY(re_cfg_expect_map(f, "forward", keys));
    RE_TRY(re_cfg_get_int(f, "batch", &j->forward_batch));
    const char *s = "auto";
    RE_TRY(re_cfg_get_string(f, "checkpoints_in_memory", &s));
    if (!strcmp(s, "all"))
      j->in_memory = JOB_IN_MEMORY_ALL;
    else if (!strcmp(s, "one"))
      j->in_memory = JOB_IN_MEMORY_ONE;
    else if (strcmp(s, "auto"))
      return re_cfg_error(re_cfg_get(f, "checkpoints_in_memory"), RE_EINVAL,
                          "checkpoints_in_memory must be auto, all or one");
  }
  if (j->forward_batch < 1 || j->forward_batch > 1 << 20)
    return re_cfg_error(old ? old : re_cfg_get(f, "batch"), RE_EINVAL, "the forward batch must be in 1 .. %d",
                        1 << 20);
  return RE_OK;
}

/* The named datasets, the models and the named analyses (each kind parses its own). */
static re_status parse_entries(job *j, const re_cfg *data, const re_cfg *models, const re_cfg *an) {
  RE_TRY(re_calloc(data->n, sizeof(job_dataset), &j->datasets));
  for (int64_t k = 0; k < data->n; k++) {
    j->ndatasets = (int)k + 1;
    RE_TRY(check_file_name(data->keynodes[k], "a dataset", data->keys[k]));
    RE_TRY(parse_dataset(j, &j->datasets[k], data->keys[k], data->items[k]));
  }
  RE_TRY(re_calloc(models->n, sizeof(job_model), &j->models));
  for (int64_t k = 0; k < models->n; k++) {
    j->nmodels = (int)k + 1;
    RE_TRY(parse_model(j, &j->models[k], models->items[k]));
    for (int64_t q = 0; q < k; q++)
      if (!strcmp(j->models[q].name, j->models[k].name))
        return re_cfg_error(models->items[k], RE_EINVAL, "two models are called '%s'", j->models[k].name);
  }
  RE_TRY(re_calloc(an->n, sizeof(job_analysis), &j->analyses));
  for (int64_t k = 0; k < an->n; k++) {
    j->nanalyses = (int)k + 1;
    RE_TRY(check_file_name(an->keynodes[k], "an analysis", an->keys[k]));
    RE_TRY(an_parse(j, &j->analyses[k], an->keys[k], an->items[k]));
  }
  return RE_OK;
}

/* output: {dir, bundle, bundle_stats}; the folder defaults to results/<name>. */
static re_status parse_output(job *j, const re_cfg *c) {
  const re_cfg *out = re_cfg_get(c, "output");
  j->bundle = 1;
  if (out) {
    static const char *const okeys[] = {"dir", "bundle", "bundle_stats", NULL};
    RE_TRY(re_cfg_expect_map(out, "output", okeys));
    const char *s = NULL;
    RE_TRY(re_cfg_get_string(out, "dir", &s));
    if (s)
      RE_TRY(expand_env(re_cfg_get(out, "dir"), s, &j->out_dir));
    RE_TRY(re_cfg_get_bool(out, "bundle", &j->bundle));
    RE_TRY(re_cfg_get_bool(out, "bundle_stats", &j->bundle_stats));
  }
  if (!j->out_dir) {
    char buf[1024];
    RE_TRY(re_path_join(buf, sizeof buf, "results/%s", j->name));
    RE_TRY(re_strdup(buf, &j->out_dir));
  }
  return RE_OK;
}

/* cache: true | false | {dir: PATH, dtype: float32 | float16, chunk: N}; its folder
 * defaults to <output folder>.cache. */
static re_status parse_cache(job *j, const re_cfg *c) {
  const re_cfg *cache = re_cfg_get(c, "cache");
  j->cache_chunk = 256;
  if (!cache)
    return RE_OK;
  int on = 1;
  const char *dir = NULL, *dt = "float32";
  if (cache->kind == RE_CFG_SCALAR) {
    RE_TRY(re_cfg_bool(cache, &on));
  } else {
    static const char *const ckeys[] = {"dir", "dtype", "chunk", NULL};
    RE_TRY(re_cfg_expect_map(cache, "cache", ckeys));
    RE_TRY(re_cfg_get_int(cache, "chunk", &j->cache_chunk));
    if (j->cache_chunk < 1 || j->cache_chunk > 1 << 20)
      return re_cfg_error(re_cfg_get(cache, "chunk"), RE_EINVAL, "cache chunk must be in 1 .. %d samples", 1 << 20);
    RE_TRY(re_cfg_get_string(cache, "dir", &dir));
    RE_TRY(re_cfg_get_string(cache, "dtype", &dt));
    if (strcmp(dt, "float32") && strcmp(dt, "float16"))
      return re_cfg_error(re_cfg_get(cache, "dtype"), RE_EINVAL, "cache dtype must be float32 or float16");
    j->cache_f16 = !strcmp(dt, "float16");
  }
  if (on && dir) {
    RE_TRY(expand_env(re_cfg_get(cache, "dir"), dir, &j->cache_dir));
  } else if (on) {
    char buf[4200];
    RE_TRY(re_path_join(buf, sizeof buf, "%s.cache", j->out_dir));
    RE_TRY(re_strdup(buf, &j->cache_dir));
    j->cache_default = 1;
  }
  return RE_OK;
}

static re_status parse_job(job *j) {
  const re_cfg *c = j->cfg;
  static const char *const keys[] = {"name",  "data",  "models", "analyses", "output",
                                     "batch", "slurm", "cache",  "forward",  NULL};
  RE_TRY(re_cfg_expect_map(c, "the job", keys));
  const char *s = NULL;
  RE_TRY(re_cfg_get_string(c, "name", &s));
  RE_TRY(re_strdup(s ? s : "job", &j->name));
  RE_TRY(parse_forward(j, c));
  const re_cfg *data = re_cfg_get(c, "data"), *models = re_cfg_get(c, "models"), *an = re_cfg_get(c, "analyses");
  if (!data || data->kind != RE_CFG_MAP || data->n == 0)
    return re_cfg_error(c, RE_EINVAL, "the job needs 'data': a map of named datasets");
  if (!models || models->kind != RE_CFG_SEQ || models->n == 0)
    return re_cfg_error(c, RE_EINVAL, "the job needs 'models': a list");
  if (!an || an->kind != RE_CFG_MAP || an->n == 0)
    return re_cfg_error(c, RE_EINVAL, "the job needs 'analyses': a map of named analyses");
  RE_TRY(parse_entries(j, data, models, an));
  RE_TRY(parse_output(j, c));
  return parse_cache(j, c);
}

static re_status load(const char *path, int deferred, job **out) {
  job *j;
  *out = NULL;
  RE_TRY(re_calloc(1, sizeof *j, &j));
  j->deferred = deferred;
  re_status st = re_strdup(path, &j->path);
  if (st == RE_OK) {
    char *tmp = NULL;
    st = re_strdup(path, &tmp);
    if (st == RE_OK)
      st = re_strdup(dirname(tmp), &j->dir);
    free(tmp);
  }
  if (st == RE_OK)
    st = re_cfg_parse_file(path, &j->cfg);
  if (st == RE_OK)
    st = parse_job(j);
  if (st != RE_OK) {
    job_free(&j);
    return st;
  }
  *out = j;
  return RE_OK;
}

/* The dataset source d describes; strings are d's. */
static re_status job_dataset_source(const job_dataset *d, re_dataset_source *src) {
  memset(src, 0, sizeof *src);
  src->format = d->format;
  src->files = (const char *const *)d->files;
  src->nfiles = d->nmain;
  for (int o = 0; o < d->nopts; o++)
    RE_TRY(re_dataset_source_set(src, d->opt_keys[o], d->opt_vals[o]));
  return RE_OK;
}

re_status job_dataset_open(const job_dataset *d, re_dataset **out) {
  re_dataset_source src;
  RE_TRY(job_dataset_source(d, &src));
  re_status st = re_dataset_open_source(&src, out);
  if (st == RE_OK && d->folds) {
    re_dataset *all = *out;
    st = re_dataset_open_folds(&all, d->folds, d->fold_use, d->nfold_use, out);
  }
  if (st != RE_OK)
    return re_err_context(st, "dataset '%s': ", d->name);
  return RE_OK;
}
re_status job_load(const char *path, job **out) { return load(path, 0, out); }

re_status job_load_deferred(const char *path, job **out) { return load(path, 1, out); }

void job_free(job **pj) {
  job *j = *pj;
  if (!j)
    return;
  for (int k = 0; k < j->ndatasets; k++) {
    job_dataset *d = &j->datasets[k];
    for (int f = 0; f < d->nfiles; f++)
      free(d->files[f]);
    free(d->files);
    for (int o = 0; o < d->nopts; o++) {
      free(d->opt_keys[o]);
      free(d->opt_vals[o]);
    }
    free(d->opt_keys);
    free(d->opt_vals);
    free(d->fold_use);
    free(d->name);
    free(d->format);
  }
  for (int k = 0; k < j->nmodels; k++) {
    job_model *m = &j->models[k];
    for (int c = 0; c < m->nckpts; c++) {
      free(m->ckpts[c].path);
      free(m->ckpts[c].label);
    }
    for (int l = 0; l < m->nlayers; l++)
      free(m->layers[l].name);
    free(m->ckpts);
    free(m->layers);
    free(m->name);
    free(m->arch);
    free(m->state_dict_key);
  }
  for (int k = 0; k < j->nanalyses; k++)
    an_free(&j->analyses[k]);
  free(j->cache_dir);
  free(j->datasets);
  free(j->models);
  free(j->analyses);
  free(j->out_dir);
  free(j->name);
  free(j->path);
  free(j->dir);
  re_cfg_free(&j->cfg);
  free(j);
  *pj = NULL;
}
