/* repeval run, resume state: per-rank snapshots of a pass (the rank's nodes of the
 * reduction tree and the next step), the reduced statistics of finished passes,
 * and the node lists of array parts, in the folder <out>.state next to the
 * output (<out>.parts for parts).
 *
 * File layout (little-endian, native doubles):
 *   "RPVSTAT2"  8 bytes magic
 *   u32 kind    1 = one rank's snapshot, 2 = reduced statistics, 3 = an array part
 *   u32 nodes   number of tree nodes (kind 2: one, the root)
 *   u64 fingerprint of the job (job file, model files, inputs' sizes and mtimes)
 *   i32 dataset, rank, size, groups (kind 1: the work layout's checkpoint groups; else 0)
 *   i64 next_step, samples, len (doubles per node)
 *   i64 start, height  per node
 *   doubles     nodes x len: the serialized accumulators of each node
 *   u64 FNV-1a 64 of every byte before it
 * A file that fails any check (magic, lengths, fingerprint, checksum) is
 * ignored with a warning and the work is recomputed: a snapshot is never
 * trusted on faith. Files are written atomically (temp + fsync + rename). */
#include <dirent.h>
#include <errno.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "out/path.h"
#include "mpi/mpi_reduce.h"
#include "out/output.h"
#include "repeval/atomic.h"
#include "run/run.h"

#define STATE_MAGIC "RPVSTAT2"
#define STATE_MAX_NODES 4096


static uint64_t fnv_file_bytes(uint64_t h, const char *path) {
  uint64_t out;
  if (re_fnv1a64_file(h, path, &out, NULL) != RE_OK) {
    re_err_clear();
    return re_fnv1a64(h, "?", 1);
  }
  return out;
}

re_status run_state_init(runner *r) {
  const job *j = r->plan.j;
  if (r->plan.mode == RUN_MODE_PART)
    RE_TRY(re_path_join(r->plan.state_dir, sizeof r->plan.state_dir, "%s.parts/part-%d-of-%d.state", j->out_dir,
                        r->plan.part, r->plan.nparts));
  else
    RE_TRY(re_path_join(r->plan.state_dir, sizeof r->plan.state_dir, "%s.state", j->out_dir));
  uint64_t h = re_fnv1a64(RE_FNV1A64_INIT, REPEVAL_VERSION, sizeof REPEVAL_VERSION);
  h = fnv_file_bytes(h, j->path);
  for (int m = 0; m < j->nmodels; m++) {
    struct stat sb;
    if (j->models[m].activations) {
      for (int c = 0; c < j->models[m].nckpts; c++)
        h = run_act_identity(r, m, c, h);
      continue;
    }
    if (stat(j->models[m].arch, &sb) == 0 && S_ISREG(sb.st_mode))
      h = fnv_file_bytes(h, j->models[m].arch);
    else
      h = re_fnv1a64(h, j->models[m].arch, strlen(j->models[m].arch) + 1);
    for (int c = 0; c < j->models[m].nckpts; c++)
      h = out_meta_hash(h, j->models[m].ckpts[c].path);
  }
  for (int d = 0; d < j->ndatasets; d++)
    for (int k = 0; k < j->datasets[d].nfiles; k++)
      h = out_meta_hash(h, j->datasets[d].files[k]);
  h = re_fnv1a64(h, &r->plan.threads, sizeof r->plan.threads);
  r->plan.fingerprint = h;
  return RE_OK;
}

static re_status state_path(const runner *r, const pass *p, int kind, char *buf, size_t cap) {
  if (kind == 1)
    return re_path_join(buf, cap, "%s/pass-%s.rank%d-of-%d.state", r->plan.state_dir, r->plan.j->datasets[p->d].name,
                        r->comm.rank, r->comm.size);
  return re_path_join(buf, cap, "%s/pass-%s.reduced.state", r->plan.state_dir, r->plan.j->datasets[p->d].name);
}

typedef struct header {
  char magic[8];
  uint32_t kind, nodes;
  uint64_t fingerprint;
  int32_t dataset, rank, size, reserved;
  int64_t next_step, samples, len;
} header;

/* Write nodes (t, or the current accumulators as one root node when t is NULL). */
/* The folder of a file's path, made if missing. */
static re_status make_parent(const char *path) {
  char dir[4400];
  RE_TRY(re_path_join(dir, sizeof dir, "%s", path));
  char *slash = strrchr(dir, '/');
  if (!slash)
    return RE_OK;
  *slash = '\0';
  return re_mkdir_p(dir);
}

static re_status write_state(runner *r, pass *p, const char *path, int kind, const tree *t, int64_t next_step,
                             int64_t samples, re_atomic *pending) {
  int64_t len = run_pass_serial_len(p);
  RE_TRY(make_parent(path));
  header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, STATE_MAGIC, 8);
  h.kind = (uint32_t)kind;
  h.nodes = t ? (uint32_t)t->n : 1;
  h.fingerprint = r->plan.fingerprint;
  h.dataset = p->d;
  h.rank = kind == 1 ? r->comm.rank : 0;
  h.size = kind == 1 ? r->comm.size : 0;
  h.reserved = kind == 1 ? p->work.groups : 0; /* the work layout's checkpoint groups */
  h.next_step = next_step;
  h.samples = samples;
  h.len = len;
  double *root = NULL;
  if (!t) {
    RE_TRY(re_malloc_whole(len > 0 ? len : 1, sizeof(double), &root));
    run_pass_serialize(p, root);
  }
  re_atomic at;
  re_status st = re_atomic_open(path, &at);
  if (st != RE_OK) {
    free(root);
    return st;
  }
  uint64_t sum = re_fnv1a64(RE_FNV1A64_INIT, &h, sizeof h);
  st = re_atomic_write(&at, &h, sizeof h);
  for (uint32_t k = 0; k < h.nodes && st == RE_OK; k++) {
    int64_t pos[2] = {t ? t->nodes[k].start : 0, t ? t->nodes[k].height : -1};
    sum = re_fnv1a64(sum, pos, sizeof pos);
    st = re_atomic_write(&at, pos, sizeof pos);
  }
  double *scratch = NULL; /* for nodes in the tree's spill file */
  if (st == RE_OK && t && t->fd >= 0)
    st = re_malloc(len > 0 ? len : 1, sizeof(double), &scratch);
  for (uint32_t k = 0; k < h.nodes && st == RE_OK; k++) {
    const double *buf = root;
    if (t)
      st = tree_node_data(t, (int)k, scratch, &buf);
    if (st != RE_OK)
      break;
    sum = re_fnv1a64(sum, buf, sizeof(double) * (size_t)len);
    st = re_atomic_write(&at, buf, len * (int64_t)sizeof(double));
  }
  free(scratch);
  if (st == RE_OK)
    st = re_atomic_write(&at, &sum, sizeof sum);
  if (st == RE_OK && pending) { /* whole on disk, put in place by the caller */
    st = re_atomic_finish(&at);
    if (st == RE_OK)
      *pending = at;
  } else if (st == RE_OK) {
    st = re_atomic_commit(&at);
  } else {
    re_atomic_abort(&at);
  }
  free(root);
  return st;
}

/* Read and verify a state file completely into *t (nodes of this pass's layout).
 * check: 1 = must match the fingerprint, 0 = layout only. *ok = 0 (with a warning)
 * when it is absent or fails a check; with `required` that is an error instead. */
static re_status read_file(runner *r, pass *p, const char *path, int kind, int check, int required, int *ok,
                           header *hout, tree *t) {
  int64_t len = run_pass_serial_len(p);
  *ok = 0;
  tree_init(t, &p->acc);
  FILE *f;
  if (re_fopen_regular(path, &f) != RE_OK) {
    if (required)
      return RE_EIO;
    re_err_clear();
    return RE_OK;
  }
  header h;
  const char *why = NULL;
  uint64_t sum = RE_FNV1A64_INIT, stored = 0;
  int64_t *pos = NULL;
  if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, STATE_MAGIC, 8))
    why = "not a repeval statistics file";
  else if (check && h.fingerprint != r->plan.fingerprint)
    why = "made for another version of the job or its inputs";
  else if ((int)h.kind != kind || h.dataset != p->d || h.len != len || h.nodes > STATE_MAX_NODES ||
           (kind == 2 && h.nodes != 1) || /* a rank or a part may have had no batch: no node */
           (kind == 1 && (h.rank != r->comm.rank || h.size != r->comm.size)))
    why = kind == 1 && h.size != r->comm.size ? "made with another number of ranks" : "layout does not match this job";
  else if (kind == 1 && (h.reserved > 0 ? h.reserved : 1) != p->work.groups)
    why = "made with another number of checkpoint groups";
  sum = re_fnv1a64(sum, &h, sizeof h);
  if (!why && re_malloc(2 * (int64_t)h.nodes, sizeof(int64_t), &pos) != RE_OK)
    why = "out of memory";
  if (!why && fread(pos, sizeof(int64_t), 2 * (size_t)h.nodes, f) != 2 * (size_t)h.nodes)
    why = "truncated";
  if (!why)
    sum = re_fnv1a64(sum, pos, sizeof(int64_t) * 2 * (size_t)h.nodes);
  for (uint32_t k = 0; !why && k < h.nodes; k++) {
    double *buf = NULL;
    if (re_malloc(len > 0 ? len : 1, sizeof(double), &buf) != RE_OK) {
      why = "out of memory";
      break;
    }
    if (fread(buf, sizeof(double), (size_t)len, f) != (size_t)len) {
      free(buf);
      why = "truncated";
      break;
    }
    sum = re_fnv1a64(sum, buf, sizeof(double) * (size_t)len);
    if (pos[2 * k] < 0 || pos[2 * k + 1] < -1 || pos[2 * k + 1] > 62) {
      free(buf); /* not in the tree yet */
      why = "invalid node";
    } else if (tree_append(t, pos[2 * k], (int)pos[2 * k + 1], buf) != RE_OK) {
      why = "out of memory"; /* tree_append freed buf */
    }
  }
  if (!why && (fread(&stored, sizeof stored, 1, f) != 1 || stored != sum))
    why = "checksum mismatch (corrupted)";
  else if (!why && fgetc(f) != EOF)
    why = "trailing bytes";
  fclose(f);
  free(pos);
  if (why) {
    tree_free(t);
    tree_init(t, &p->acc);
    if (required)
      return re_err(RE_EFORMAT, "%s: %s", path, why);
    run_warn_local(r, "saved state %s ignored: %s; recomputing", path, why);
    return RE_OK;
  }
  *hout = h;
  *ok = 1;
  return RE_OK;
}

re_status run_state_save_rank(runner *r, pass *p, const tree *t, int64_t next_step, int64_t samples,
                              re_atomic *pending) {
  char path[4400];
  re_status st = state_path(r, p, 1, path, sizeof path);
  if (st == RE_OK)
    st = write_state(r, p, path, 1, t, next_step, samples, pending);
  if (st != RE_OK)
    re_err_context(st, "saving the resume state: ");
  return st;
}

re_status run_state_load_rank(runner *r, pass *p, tree *t, int64_t *next_step, int64_t *samples) {
  header h;
  int ok = 0;
  char path[4400];
  tree loaded;
  tree_init(&loaded, NULL);
  re_status st = state_path(r, p, 1, path, sizeof path);
  if (st == RE_OK)
    st = read_file(r, p, path, 1, 1, 0, &ok, &h, &loaded);
  /* every rank must resume at the same step, or none: a mix would double-count or
   * lose batches, and ranks taking different numbers of steps would mismatch their
   * collectives (a kill between two ranks' snapshot writes leaves such a mix) */
  int mine = st == RE_OK && ok, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, r->comm.comm);
  if (all) {
    int64_t lo_hi[2] = {h.next_step, -h.next_step}, agreed[2];
    MPI_Allreduce(lo_hi, agreed, 2, MPI_INT64_T, MPI_MIN, r->comm.comm);
    if (agreed[0] != -agreed[1]) {
      all = 0;
      if (r->comm.rank == 0)
        re_log(RE_LOG_WARN,
               "dataset %s: the ranks' saved states are from different steps (%lld ... %lld); starting afresh",
               r->plan.j->datasets[p->d].name, (long long)agreed[0], (long long)-agreed[1]);
    }
  }
  if (st == RE_OK && all) {
    tree_free(t);
    *t = loaded;
    *next_step = h.next_step;
    *samples = h.samples;
  } else {
    tree_free(&loaded);
  }
  st = re_mpi_agree(r->comm.comm, st);
  if (st == RE_OK && all) {
    if (r->comm.rank == 0) {
      re_log(RE_LOG_WARN, "resuming dataset %s from a saved state", r->plan.j->datasets[p->d].name);
      r->rep.resumes++;
      run_state_note_progress(r, p, -1, -1, "resumed");
    }
    r->rep.resumed = 1;
  }
  return st;
}

re_status run_state_save_reduced(runner *r, pass *p) {
  char path[4400];
  re_status st = state_path(r, p, 2, path, sizeof path);
  if (st == RE_OK)
    st = write_state(r, p, path, 2, NULL, -1, r->rep.pass_samples, NULL);
  if (st != RE_OK)
    re_err_context(st, "saving the reduced statistics: ");
  p->reduced_kept = st == RE_OK;
  return st;
}

/* Load a kind-2 file's root into the accumulators. */
static re_status load_root(runner *r, pass *p, const char *path, int check, int required, int *ok) {
  header h;
  tree t;
  RE_TRY(read_file(r, p, path, 2, check, required, ok, &h, &t));
  re_status st = RE_OK;
  if (*ok && t.n != 1) {
    st = re_err(RE_EFORMAT, "%s: reduced statistics must hold one node", path);
  } else if (*ok) {
    const double *d = NULL;
    st = tree_node_data(&t, 0, NULL, &d); /* the last node: in memory */
    if (st == RE_OK)
      st = run_pass_deserialize(p, d);
    if (st == RE_OK)
      r->rep.pass_samples = h.samples;
    else
      re_err_context(st, "%s: ", path);
  }
  tree_free(&t);
  return st;
}

re_status run_state_load_reduced(runner *r, pass *p, int *found) {
  int ok = 0;
  re_status st = RE_OK;
  if (r->comm.rank == 0) {
    char path[4400];
    st = state_path(r, p, 2, path, sizeof path);
    if (st == RE_OK)
      st = load_root(r, p, path, 1, 0, &ok);
    if (st != RE_OK)
      ok = 0;
    p->reduced_kept = ok;
  }
  st = re_mpi_agree(r->comm.comm, st);
  MPI_Bcast(&ok, 1, MPI_INT, 0, r->comm.comm);
  *found = ok;
  if (ok)
    r->rep.resumed = 1;
  return st;
}

re_status run_state_load_stats(runner *r, pass *p, const char *path) {
  int ok = 0;
  return load_root(r, p, path, 0, 1, &ok);
}

re_status run_state_write_reduced_to(runner *r, pass *p, const char *path) {
  char src[4400];
  /* the reduced state's bytes are those write_state would write here (kind 2, the
   * same header and root): a link saves serializing, checksumming and writing the
   * state again; the state file is only ever replaced by a rename, never rewritten */
  if (p->reduced_kept && state_path(r, p, 2, src, sizeof src) == RE_OK && make_parent(path) == RE_OK &&
      link(src, path) == 0)
    return RE_OK;
  re_err_clear();
  return write_state(r, p, path, 2, NULL, -1, r->rep.pass_samples, NULL);
}

re_status run_state_write_tree_to(runner *r, pass *p, const tree *t, const char *path) {
  return write_state(r, p, path, 3, t, -1, r->rep.pass_samples, NULL);
}

re_status run_state_read_tree_from(runner *r, pass *p, const char *path, tree *t, int64_t *samples) {
  header h;
  int ok = 0;
  RE_TRY(read_file(r, p, path, 3, 1, 1, &ok, &h, t));
  *samples = h.samples;
  return RE_OK;
}

void run_state_note_progress(runner *r, const pass *p, int64_t done, int64_t total, const char *event) {
  char path[4400];
  if (re_path_join(path, sizeof path, "%s/progress.json", r->plan.state_dir) != RE_OK) {
    re_err_clear(); /* a note only: no progress file for a path that does not fit */
    return;
  }
  /* keep the resume count and the last known totals across runs */
  FILE *f = fopen(path, "r");
  long long old_done = -1, old_total = -1;
  int resumes = 0;
  if (f) {
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    const char *q = strstr(buf, "\"resumes\": ");
    if (q)
      resumes = atoi(q + 11);
    if ((q = strstr(buf, "\"batches_done\": ")))
      old_done = atoll(q + 16);
    if ((q = strstr(buf, "\"batches_total\": ")))
      old_total = atoll(q + 17);
  }
  if (!strcmp(event, "resumed"))
    resumes++;
  if (done < 0)
    done = old_done, total = old_total;
  if (re_mkdir_p(r->plan.state_dir) != RE_OK)
    return;
  re_atomic at;
  if (re_atomic_open(path, &at) != RE_OK)
    return;
  char text[2048];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  int len = snprintf(text, sizeof text,
                     "{\"dataset\": \"%s\", \"batches_done\": %lld, \"batches_total\": %lld, \"event\": \"%s\", "
                     "\"resumes\": %d, \"ranks\": %d, \"time\": \"%s\"}\n",
                     r->plan.j->datasets[p->d].name, (long long)done, (long long)total, event, resumes, r->comm.size, stamp);
  if (re_atomic_write(&at, text, len) == RE_OK)
    (void)re_atomic_commit(&at);
  else
    re_atomic_abort(&at);
}

/* A file name repeval writes in a state folder (snapshots, progress, lock, their
 * temporaries) or below its probe cache (shards "<s0>-<s1>.rpc" and temporaries). */
static int state_name(const char *name, int in_cache) {
  size_t n = strlen(name);
  if (in_cache)
    return (n > 4 && !strcmp(name + n - 4, ".rpc")) || strstr(name, ".rpc.tmp.");
  return (!strncmp(name, "pass-", 5) && (strstr(name, ".state.tmp.") || (n > 6 && !strcmp(name + n - 6, ".state")))) ||
         !strcmp(name, "lock") || !strcmp(name, "progress.json") || !strncmp(name, "progress.json.tmp.", 18);
}

/* Remove what repeval wrote below dir (depth: folders below the probe cache), then dir
 * if it is empty; anything else stays. */
static void clear_tree(const char *dir, int in_cache, int depth) {
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char path[8400];
    struct stat sb;
    if (re_path_join(path, sizeof path, "%s/%s", dir, e->d_name) != RE_OK) { /* never remove a cut name */
      re_err_clear();
      continue;
    }
    if (lstat(path, &sb) != 0)
      continue;
    if (S_ISDIR(sb.st_mode) && (in_cache ? depth < 4 : !strcmp(e->d_name, "probe-cache")))
      clear_tree(path, 1, depth + 1);
    else if (S_ISREG(sb.st_mode) && state_name(e->d_name, in_cache))
      unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

void run_state_clear(runner *r) {
  if (r->comm.rank == 0 && r->plan.state_dir[0])
    clear_tree(r->plan.state_dir, 0, 0);
}
