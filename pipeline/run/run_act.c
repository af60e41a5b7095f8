/* repeval run, activations models: taps computed elsewhere (a GPU job with PyTorch,
 * tools/export-activations) and read from their exports instead of the forward engine.
 *
 * A model with `activations: PATTERN` has one folder per checkpoint, holding one export
 * per dataset of the job: <folder>/<dataset>/activations.json (repeval/activations.h).
 * Before a pass, every export is checked against the dataset it claims (the files'
 * SHA-256 and sizes, format, normalisation, sample count), every checkpoint of a model
 * must have exported the same sample ids in the same order, the job's layers must be
 * exported taps of the same width in every checkpoint, and every sample of the pass
 * must be among the exported ones. Then a chunk of the pass is read from the shards
 * where the forward engine would compute it (run_pass_chunk), so the accumulators,
 * the reduction tree, the cache and the probes see the same rows either way. */
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "out/path.h"
#include "mpi/mpi_reduce.h"
#include "run/run.h"
#include "repeval/activations.h"

/* Per activations model of a pass: its exports and where each pass sample lives. */
typedef struct act_model {
  int nck;
  re_act **ex;   /* per checkpoint */
  int *tap;      /* per checkpoint x layer: the export's tap index */
  int64_t *pos;  /* per pass sample: its position in the exports (the same in every checkpoint) */
} act_model;

struct run_act {
  act_model *m; /* per job model (ex NULL for forward-engine models) */
  int nm;
};

int run_act_any(const job *j) {
  for (int m = 0; m < j->nmodels; m++)
    if (j->models[m].activations)
      return 1;
  return 0;
}

/* ---- the dataset files' SHA-256, once per run ------------------------------------------ */

re_status run_act_init(runner *r) {
  const job *j = r->plan.j;
  if (!run_act_any(j))
    return RE_OK;
  int nf = 0;
  for (int d = 0; d < j->ndatasets; d++)
    nf += j->datasets[d].nfiles;
  re_status st = re_calloc(nf > 0 ? nf : 1, 65, &r->plan.act_sha);
  st = re_mpi_agree(r->comm.comm, st);
  if (st != RE_OK)
    return st;
  if (r->comm.rank == 0) /* rank 0 reads every file once; the digests are broadcast */
    for (int d = 0, k = 0; d < j->ndatasets && st == RE_OK; d++)
      for (int f = 0; f < j->datasets[d].nfiles && st == RE_OK; f++, k++)
        st = re_sha256_file(j->datasets[d].files[f], r->plan.act_sha + 65 * k, NULL);
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK)
    MPI_Bcast(r->plan.act_sha, 65 * nf, MPI_CHAR, 0, r->comm.comm);
  return st;
}

/* SHA-256 (hex) of file f of dataset d, from run_act_init. */
static const char *dataset_sha(const runner *r, int d, int f) {
  int k = 0;
  for (int q = 0; q < d; q++)
    k += r->plan.j->datasets[q].nfiles;
  return r->plan.act_sha + 65 * (k + f);
}

/* ---- identity: fingerprints and cache keys ------------------------------------------------ */

uint64_t run_act_identity(const runner *r, int m, int c, uint64_t h) {
  const job *j = r->plan.j;
  const char *dir = j->models[m].ckpts[c].path;
  h = re_fnv1a64(h, "activations", 12);
  for (int d = 0; d < j->ndatasets; d++) {
    char path[PATH_MAX + 600];
    uint64_t sum = 0;
    struct stat sb;
    if (re_path_join(path, sizeof path, "%s/%s/%s", dir, j->datasets[d].name, RE_ACT_MANIFEST) != RE_OK ||
        re_fnv1a64_file(RE_FNV1A64_INIT, path, &sum, NULL) != RE_OK || stat(path, &sb) != 0) {
      re_err_clear();
      h = re_fnv1a64(h, "?", 1);
      continue;
    }
    int64_t v[4] = {(int64_t)sum, (int64_t)sb.st_size, (int64_t)sb.st_mtim.tv_sec, (int64_t)sb.st_mtim.tv_nsec};
    h = re_fnv1a64(h, v, sizeof v);
  }
  return h;
}

/* ---- checks ----------------------------------------------------------------------------- */

/* The export ex claims dataset d of the job: the same files (sizes and SHA-256), format,
 * normalisation and number of samples. */
static re_status check_dataset(runner *r, pass *p, const re_act *ex) {
  const job_dataset *jd = &r->plan.j->datasets[p->d];
  const re_act_dataset *ed = re_act_dataset_info(ex);
  const char *dir = re_act_dir(ex);
  if (strcmp(ed->format, jd->format))
    return re_err(RE_EINVAL, "%s/%s: exported from a dataset of format '%s', but dataset '%s' of the job is '%s'", dir,
                  RE_ACT_MANIFEST, ed->format, jd->name, jd->format);
  if (ed->nfiles != jd->nfiles)
    return re_err(RE_EINVAL, "%s/%s: exported from %d dataset file%s, but dataset '%s' of the job reads %d", dir,
                  RE_ACT_MANIFEST, ed->nfiles, ed->nfiles == 1 ? "" : "s", jd->name, jd->nfiles);
  for (int f = 0; f < jd->nfiles; f++) {
    const re_act_file *ef = &ed->files[f];
    const char *sha = dataset_sha(r, p->d, f);
    if (strcmp(ef->sha256, sha)) {
      struct stat sb;
      long long bytes = stat(jd->files[f], &sb) == 0 ? (long long)sb.st_size : -1;
      return re_err(RE_EINVAL, "%s/%s: exported from %s (%lld bytes, sha256 %.16s...), but dataset '%s' of the job "
                               "reads %s (%lld bytes, sha256 %.16s...): not the same data",
                    dir, RE_ACT_MANIFEST, ef->name, (long long)ef->bytes, ef->sha256, jd->name, jd->files[f], bytes,
                    sha);
    }
  }
  int same = ed->nnorm == jd->nnorm;
  for (int k = 0; same && k < jd->nnorm; k++)
    same = (float)ed->mean[k] == jd->mean[k] && (float)ed->std[k] == jd->std[k];
  if (!same) {
    char want[200] = "none", got[200] = "none";
    if (jd->nnorm)
      snprintf(want, sizeof want, "mean %g, std %g%s", (double)jd->mean[0], (double)jd->std[0],
               jd->nnorm > 1 ? ", ..." : "");
    if (ed->nnorm)
      snprintf(got, sizeof got, "mean %g, std %g%s", ed->mean[0], ed->std[0], ed->nnorm > 1 ? ", ..." : "");
    return re_err(RE_EINVAL, "%s/%s: exported with normalisation %s, but dataset '%s' of the job has %s", dir,
                  RE_ACT_MANIFEST, got, jd->name, want);
  }
  const re_dataset_info *info = re_dataset_get_info(p->ds);
  if (ed->count != info->count)
    return re_err(RE_EINVAL, "%s/%s: the exported dataset has %lld samples, dataset '%s' of the job has %lld", dir,
                  RE_ACT_MANIFEST, (long long)ed->count, jd->name, (long long)info->count);
  return RE_OK;
}

/* Every checkpoint of a model exported the same samples in the same order. */
static re_status check_same_ids(const re_act *first, const re_act *ex, int t) {
  int64_t n0 = re_act_count(first), n = re_act_count(ex);
  if (n != n0)
    return re_err(RE_EINVAL, "%s: %lld samples exported, but %s has %lld: every checkpoint of a model must export "
                             "the same samples",
                  re_act_dir(ex), (long long)n, re_act_dir(first), (long long)n0);
  for (int64_t k = 0; k < n; k++) {
    int64_t a = re_act_id(first, k), b = re_act_id(ex, k);
    if (a != b)
      return re_err(RE_EINVAL, "%s/%s: position %lld (shard %s) holds sample id %lld, but %s has sample id %lld "
                               "there: every checkpoint of a model must export the same samples in the same order",
                    re_act_dir(ex), re_act_ids_file(ex), (long long)k, re_act_shard_at(ex, t, k), (long long)b,
                    re_act_dir(first), (long long)a);
  }
  return RE_OK;
}

/* The export's tap for job layer l of model m, and its shape. */
static re_status find_tap(runner *r, int m, const re_act *ex, int l, int *out) {
  const job_model *jm = &r->plan.j->models[m];
  const char *name = jm->layers[l].name, *mode = run_mode_name(jm->layers[l].mode);
  *out = re_act_find_tap(ex, name, mode);
  if (*out >= 0)
    return RE_OK;
  char list[1200] = "";
  size_t used = 0;
  for (int t = 0; t < re_act_ntaps(ex) && used + 80 < sizeof list; t++) {
    const re_act_tap *tp = re_act_tap_at(ex, t);
    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s:%s", used ? ", " : "", tp->name, tp->mode);
  }
  return re_err(RE_EINVAL, "layer %s:%s is not in the export %s (it has %s%s)", name, mode, re_act_dir(ex), list,
                used + 80 >= sizeof list ? ", ..." : "");
}

/* Pass sample s -> position in the exports, for every sample of the pass. */
static re_status map_samples(const pass *p, const re_act *ex, int64_t *pos) {
  for (int64_t s = 0; s < p->n; s++)
    pos[s] = -1;
  for (int64_t k = 0; k < re_act_count(ex); k++) {
    int64_t s = re_act_id(ex, k) - p->offset;
    if (s >= 0 && s < p->n)
      pos[s] = k;
  }
  for (int64_t s = 0; s < p->n; s++)
    if (pos[s] < 0)
      return re_err(RE_EINVAL, "%s: dataset sample %lld (sample %lld of the pass) is not among the %lld exported "
                               "samples (%s): export the samples the job's offset and limit select",
                    re_act_dir(ex), (long long)(s + p->offset), (long long)s, (long long)re_act_count(ex),
                    re_act_ids_file(ex));
  return RE_OK;
}

/* ---- per pass ---------------------------------------------------------------------------- */

static re_status open_model(runner *r, pass *p, int m, act_model *am) {
  const job_model *jm = &r->plan.j->models[m];
  const char *ds = r->plan.j->datasets[p->d].name;
  RE_TRY(re_calloc(jm->nckpts, sizeof(re_act *), &am->ex));
  am->nck = jm->nckpts;
  RE_TRY(re_calloc((int64_t)jm->nckpts * jm->nlayers, sizeof(int), &am->tap));
  RE_TRY(re_malloc(p->n > 0 ? p->n : 1, sizeof(int64_t), &am->pos));
  for (int c = 0; c < jm->nckpts; c++) {
    char dir[PATH_MAX + 600];
    RE_TRY(re_path_join(dir, sizeof dir, "%s/%s", jm->ckpts[c].path, ds));
    char manifest[PATH_MAX + 700];
    RE_TRY(re_path_join(manifest, sizeof manifest, "%s/%s", dir, RE_ACT_MANIFEST));
    struct stat sb;
    if (stat(manifest, &sb) != 0)
      return re_cfg_error(jm->src, RE_EINVAL, "model '%s', checkpoint %s: no activations for dataset '%s' (%s is "
                                              "missing); export them, e.g. tools/export-activations --job JOB "
                                              "--dataset %s ...",
                          jm->name, jm->ckpts[c].label, ds, manifest, ds);
    /* rank 0 checks every shard before the pass (its error stops every rank); the others
     * check each shard when they map it, so a shared file system sees one scan */
    re_status st = re_act_open(dir, r->comm.rank == 0, &am->ex[c]);
    if (st != RE_OK)
      return re_err_context(st, "model '%s', checkpoint %s: ", jm->name, jm->ckpts[c].label);
    st = check_dataset(r, p, am->ex[c]);
    for (int l = 0; st == RE_OK && l < jm->nlayers; l++)
      st = find_tap(r, m, am->ex[c], l, &am->tap[c * jm->nlayers + l]);
    if (st == RE_OK && c > 0)
      st = check_same_ids(am->ex[0], am->ex[c], am->tap[c * jm->nlayers]);
    for (int l = 0; st == RE_OK && c > 0 && l < jm->nlayers; l++) {
      const re_act_tap *a = re_act_tap_at(am->ex[0], am->tap[l]), *b = re_act_tap_at(am->ex[c], am->tap[c * jm->nlayers + l]);
      if (a->dim != b->dim || a->rows_per_sample != b->rows_per_sample)
        st = re_err(RE_EINVAL, "%s: tap %s:%s has %lld rows x %lld features per sample, but %lld x %lld in %s: a "
                               "layer must have the same width in every checkpoint",
                    re_act_dir(am->ex[c]), b->name, b->mode, (long long)b->rows_per_sample, (long long)b->dim,
                    (long long)a->rows_per_sample, (long long)a->dim, re_act_dir(am->ex[0]));
    }
    if (st != RE_OK)
      return re_err_context(st, "model '%s', checkpoint %s: ", jm->name, jm->ckpts[c].label);
  }
  re_status st = map_samples(p, am->ex[0], am->pos);
  return st == RE_OK ? RE_OK : re_err_context(st, "model '%s': ", jm->name);
}

re_status run_act_setup(runner *r, pass *p) {
  const job *j = r->plan.j;
  if (!run_act_any(j))
    return RE_OK;
  RE_TRY(re_calloc(1, sizeof(struct run_act), &p->act));
  RE_TRY(re_calloc(j->nmodels, sizeof(act_model), &p->act->m));
  p->act->nm = j->nmodels;
  for (int m = 0; m < j->nmodels; m++)
    if (j->models[m].activations)
      RE_TRY(open_model(r, p, m, &p->act->m[m]));
  return RE_OK;
}

void run_act_tap_shape(const runner *r, const pass *p, int m, int c, int l, int64_t *dim, int64_t *rps) {
  const act_model *am = &p->act->m[m];
  const re_act_tap *t = re_act_tap_at(am->ex[c], am->tap[c * r->plan.j->models[m].nlayers + l]);
  *dim = t->dim;
  *rps = t->rows_per_sample;
}

re_status run_act_chunk(runner *r, pass *p, int m, int c, int64_t lo, int64_t hi, float **out) {
  const job_model *jm = &r->plan.j->models[m];
  act_model *am = &p->act->m[m];
  re_act *ex = am->ex[c];
  for (int l = 0; l < jm->nlayers; l++) {
    int t = am->tap[c * jm->nlayers + l];
    const re_act_tap *tp = re_act_tap_at(ex, t);
    int64_t row = tp->rows_per_sample * tp->dim;
    for (int64_t s = lo; s < hi;) { /* runs of consecutive positions: one read each */
      int64_t e = s + 1;
      while (e < hi && am->pos[e] == am->pos[e - 1] + 1)
        e++;
      re_status st = re_act_read(ex, t, am->pos[s], e - s, out[l] + (s - lo) * row);
      if (st != RE_OK)
        return re_err_context(st, "model '%s', checkpoint %s: ", jm->name, jm->ckpts[c].label);
      s = e;
    }
  }
  return RE_OK;
}

void run_act_free(pass *p) {
  if (!p->act)
    return;
  for (int m = 0; m < p->act->nm; m++) {
    act_model *am = &p->act->m[m];
    for (int c = 0; am->ex && c < am->nck; c++)
      re_act_close(&am->ex[c]);
    free(am->ex);
    free(am->tap);
    free(am->pos);
  }
  free(p->act->m);
  free(p->act);
  p->act = NULL;
}
