/* repeval run, embedding cache: the tap outputs of every (checkpoint, tap, batch)
 * as zstd-compressed shards, so that reruns and new analyses on the same data skip
 * the forward pass.
 *
 * Layout: <cache>/<checkpoint key>/<data key>/<layer>.<mode>/<s0>-<s1>.rpc where
 *   checkpoint key = FNV-1a 64 of the checkpoint file's bytes, the model description
 *                    (model file bytes or preset name) and the state_dict key;
 *   data key       = FNV-1a 64 of the dataset's format, files (path, size, mtime),
 *                    normalisation and input geometry;
 *   s0-s1          = the global sample range of the batch.
 * A shard is a .rpc tap shard (repeval/shard.h: a 64-byte header with the full key
 * and the slice, FNV-1a of the uncompressed values, and one zstd frame).
 * Any mismatch (key, shape, size, checksum) makes the shard a miss: it is
 * recomputed and rewritten, never trusted. Shards are written atomically.
 *
 * float16 shards halve the space; the values fed to the statistics are then the
 * float16-rounded ones in the first run too, so cached and uncached runs agree
 * bitwise. */
#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "out/path.h"
#include "repeval/atomic.h"
#include "repeval/dtype.h"
#include "repeval/shard.h"
#include "run/analysis.h"
#include "run/run.h"

static uint64_t fnv_file(uint64_t h, const char *path) { /* a model file's bytes */
  uint64_t out;
  if (re_fnv1a64_file(h, path, &out, NULL) != RE_OK) {
    re_err_clear();
    return re_fnv1a64(h, "?", 1);
  }
  return out;
}

const char *run_cache_dir(const runner *r, const pass *p) {
  if (r->plan.j->cache_dir)
    return r->plan.j->cache_dir;
  return p->streamed && r->plan.probe_cache_dir[0] ? r->plan.probe_cache_dir : NULL;
}

/* A checkpoint's identity: its content hash (sampled, re_ckpt_content_hash) and the size
 * and time of every file it is read from, so that a rewritten file is a new key. */
static uint64_t ckpt_identity(uint64_t h, const re_ckpt *ck, uint64_t *content_out) {
  uint64_t content = 0;
  if (re_ckpt_content_hash(ck, &content) != RE_OK)
    re_err_clear();
  *content_out = content;
  h = re_fnv1a64(h, &content, sizeof content);
  for (int64_t k = 0; k < re_ckpt_shard_count(ck); k++) {
    struct stat sb;
    const char *f = re_ckpt_shard_path(ck, k);
    if (f && stat(f, &sb) == 0) {
      int64_t v[3] = {(int64_t)sb.st_size, (int64_t)sb.st_mtim.tv_sec, (int64_t)sb.st_mtim.tv_nsec};
      h = re_fnv1a64(h, v, sizeof v);
    }
  }
  return h;
}

/* Rank 0: a warning for each checkpoint whose content hash equals an earlier one's of
 * the same model (a copied or mislabelled checkpoint; public repositories have some),
 * unless an integrity analysis reports them. */
static void warn_identical(runner *r, int m, const uint64_t *content) {
  const job_model *jm = &r->plan.j->models[m];
  for (int k = 0; k < r->plan.j->nanalyses; k++)
    if (!strcmp(r->plan.j->analyses[k].kind->type, "integrity"))
      return; /* the integrity analysis reports copies itself, with their runs */
  for (int c = 1; c < jm->nckpts; c++)
    for (int e = 0; e < c; e++)
      if (content[c] && content[c] == content[e]) {
        run_warn(r, "model '%s': checkpoints '%s' and '%s' have identical content (content hash %016llx): a copy or "
                    "a mislabelled checkpoint?",
                 jm->name, jm->ckpts[e].label, jm->ckpts[c].label, (unsigned long long)content[c]);
        break;
      }
}

re_status run_cache_init(runner *r) {
  job *j = r->plan.j;
  if (!j->cache_dir && !r->plan.probe_cache_dir[0])
    return RE_OK;
  int total = 0;
  for (int m = 0; m < j->nmodels; m++)
    total += j->models[m].nckpts;
  RE_TRY(re_calloc(total > 0 ? total : 1, sizeof(uint64_t), &r->plan.ckpt_key));
  /* rank 0 reads every checkpoint once; the keys are broadcast */
  if (r->comm.rank == 0) {
    int k = 0;
    for (int m = 0; m < j->nmodels; m++) {
      const job_model *jm = &j->models[m];
      uint64_t mh = RE_FNV1A64_INIT;
      struct stat sb;
      if (jm->activations) { /* the exports' manifests */
        for (int c = 0; c < jm->nckpts; c++, k++)
          r->plan.ckpt_key[k] = run_act_identity(r, m, c, mh);
        continue;
      }
      if (stat(jm->arch, &sb) == 0 && S_ISREG(sb.st_mode))
        mh = fnv_file(mh, jm->arch);
      else
        mh = re_fnv1a64(mh, jm->arch, strlen(jm->arch) + 1);
      if (jm->state_dict_key)
        mh = re_fnv1a64(mh, jm->state_dict_key, strlen(jm->state_dict_key) + 1);
      uint64_t *content = calloc(jm->nckpts > 0 ? (size_t)jm->nckpts : 1, sizeof(uint64_t)), none;
      for (int c = 0; c < jm->nckpts; c++, k++) /* no return before the broadcast below */
        r->plan.ckpt_key[k] = ckpt_identity(mh, r->plan.ckpts[m][c], content ? &content[c] : &none);
      if (content)
        warn_identical(r, m, content);
      free(content);
    }
  }
  MPI_Bcast(r->plan.ckpt_key, total, MPI_UINT64_T, 0, r->comm.comm);
  return RE_OK;
}

uint64_t run_cache_data_key(const runner *r, const pass *p) {
  const job_dataset *d = &r->plan.j->datasets[p->d];
  uint64_t h = re_fnv1a64(RE_FNV1A64_INIT, d->format, strlen(d->format) + 1);
  for (int k = 0; k < d->nfiles; k++) {
    struct stat sb;
    h = re_fnv1a64(h, d->files[k], strlen(d->files[k]) + 1);
    if (stat(d->files[k], &sb) == 0) {
      int64_t v[3] = {(int64_t)sb.st_size, (int64_t)sb.st_mtim.tv_sec, (int64_t)sb.st_mtim.tv_nsec};
      h = re_fnv1a64(h, v, sizeof v);
    }
  }
  for (int k = 0; k < d->nopts; k++) {
    h = re_fnv1a64(h, d->opt_keys[k], strlen(d->opt_keys[k]) + 1);
    h = re_fnv1a64(h, d->opt_vals[k], strlen(d->opt_vals[k]) + 1);
  }
  h = re_fnv1a64(h, &d->folds, sizeof d->folds);
  for (int k = 0; k < d->nfold_use; k++)
    h = re_fnv1a64(h, &d->fold_use[k], sizeof d->fold_use[k]);
  h = re_fnv1a64(h, &d->offset, sizeof d->offset);
  h = re_fnv1a64(h, &d->nnorm, sizeof d->nnorm);
  h = re_fnv1a64(h, d->mean, sizeof d->mean);
  h = re_fnv1a64(h, d->std, sizeof d->std);
  h = re_fnv1a64(h, p->in_dims, sizeof p->in_dims);
  return h;
}

uint64_t run_cache_ckpt_key(const runner *r, int m, int c) {
  if (!r->plan.ckpt_key) /* no cache (run --check): keys are not read */
    return 0;
  int k = 0;
  for (int q = 0; q < m; q++)
    k += r->plan.j->models[q].nckpts;
  return r->plan.ckpt_key[k + c];
}

void run_cache_layer_name(const runner *r, int m, int l, char *buf, size_t cap) {
  const job_layer *jl = &r->plan.j->models[m].layers[l];
  snprintf(buf, cap, "%s.%s", jl->name, run_mode_name(jl->mode));
  for (char *q = buf; *q; q++)
    if (*q == '/')
      *q = '_';
}

static re_status shard_path(const char *dir, uint64_t ck, uint64_t dk, const char *layer, int64_t s0, int64_t s1,
                            char *buf, size_t cap, uint64_t *key) {
  uint64_t h = re_fnv1a64(RE_FNV1A64_INIT, &ck, sizeof ck);
  h = re_fnv1a64(h, &dk, sizeof dk);
  h = re_fnv1a64(h, layer, strlen(layer));
  int64_t sl[2] = {s0, s1};
  *key = re_fnv1a64(h, sl, sizeof sl);
  return re_path_join(buf, cap, "%s/%016llx/%016llx/%s/%lld-%lld.rpc", dir, (unsigned long long)ck,
                      (unsigned long long)dk, layer, (long long)s0, (long long)s1);
}

int run_cache_get(runner *r, const char *dir, uint64_t ck, uint64_t dk, const char *layer, int64_t s0, int64_t s1,
                  int64_t rows, int64_t dim, int f16, float *out) {
  char path[8192];
  uint64_t key;
  if (!r->plan.ckpt_key || !dir || !dir[0]) /* run --check: no cache to read */
    return 0;
  if (shard_path(dir, ck, dk, layer, s0, s1, path, sizeof path, &key) != RE_OK) { /* run_cache_put says so */
    re_err_clear();
    return 0;
  }
  if (access(path, F_OK) != 0) /* not written yet: a plain miss */
    return 0;
  if (re_rpc_read(path, key, rows, dim, f16, out) != RE_OK) {
    run_warn_local(r, "embedding cache shard %s is damaged or stale: recomputing it (%s)", path, re_errmsg());
    re_err_clear();
    r->rep.cache_bad++;
    return 0;
  }
  r->rep.cache_hits++;
  return 1;
}

int run_cache_load(runner *r, const pass *p, int m, int c, int l, int64_t s0, int64_t s1, int64_t rows, int64_t dim,
                   float *out) {
  char layer[512];
  run_cache_layer_name(r, m, l, layer, sizeof layer);
  return run_cache_get(r, run_cache_dir(r, p), run_cache_ckpt_key(r, m, c), p->data_key, layer, s0, s1, rows, dim,
                       r->plan.j->cache_dir ? r->plan.j->cache_f16 : 0, out);
}

void run_cache_round(const runner *r, float *x, int64_t n) {
  if (!r->plan.j->cache_dir || !r->plan.j->cache_f16)
    return;
  for (int64_t e = 0; e < n; e++)
    x[e] = re_f16_to_f32(re_f32_to_f16(x[e]));
}

void run_cache_put(runner *r, const char *dir, uint64_t ck, uint64_t dk, const char *layer, int64_t s0, int64_t s1,
                   int64_t rows, int64_t dim, int f16, const float *data) {
  if (r->plan.cache_disabled || !r->plan.ckpt_key || !dir || !dir[0]) /* run --check writes nothing */
    return;
  char path[8192], folder[8192];
  uint64_t key;
  re_status st = shard_path(dir, ck, dk, layer, s0, s1, path, sizeof path, &key);
  if (st == RE_OK) {
    snprintf(folder, sizeof folder, "%s", path); /* the same size: it fits */
    *strrchr(folder, '/') = '\0';
    st = re_mkdir_p(folder);
  }
  if (st == RE_OK)
    st = re_rpc_write(path, key, rows, dim, f16, data);
  if (st != RE_OK) {
    /* a full disk must not fail the evaluation: go on without the cache */
    run_warn_local(r, "embedding cache disabled: %s", re_errmsg());
    r->plan.cache_disabled = 1;
  } else {
    r->rep.cache_writes++;
  }
}

void run_cache_store(runner *r, const pass *p, int m, int c, int l, int64_t s0, int64_t s1, int64_t rows,
                     int64_t dim, const float *data) {
  char layer[512];
  run_cache_layer_name(r, m, l, layer, sizeof layer);
  run_cache_put(r, run_cache_dir(r, p), run_cache_ckpt_key(r, m, c), p->data_key, layer, s0, s1, rows, dim,
                r->plan.j->cache_dir ? r->plan.j->cache_f16 : 0, data);
}
