/* Hugging Face model folders as checkpoints. The files are looked for in the order
 * transformers' from_pretrained uses, so a folder gives the weights it would load:
 *   model.safetensors, model.safetensors.index.json (+ shards),
 *   pytorch_model.bin, pytorch_model.bin.index.json (+ shards).
 * Every file is opened by its own reader (safetensors or torch.save) as a
 * checkpoint of its own, kept as a part of this one: tensors stay in the parts'
 * memory maps (no copy, stored dtypes kept), and since a map outlives its file
 * descriptor, an open model holds no descriptors however many shards it has.
 * Inside the hub cache (a snapshot folder, or a repo folder resolved through
 * refs/main) every file read must resolve inside the repo folder. */
#include "ckpt_reader.h"
#include "hf_cache.h"
#include "hf_index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct layout {
  const char *file;
  int index; /* 1: an index of shards */
  const re_ckpt_reader *reader;
  re_ckpt_format format;
} layout;

static const layout layouts[] = {
    {"model.safetensors", 0, &re_ckpt_reader_safetensors, RE_CKPT_SAFETENSORS},
    {"model.safetensors.index.json", 1, &re_ckpt_reader_safetensors, RE_CKPT_SAFETENSORS},
    {"pytorch_model.bin", 0, &re_ckpt_reader_torch, RE_CKPT_TORCH},
    {"pytorch_model.bin.index.json", 1, &re_ckpt_reader_torch, RE_CKPT_TORCH},
};

typedef struct folder_ctx {
  const char *folder; /* the model folder */
  char *root;         /* the cache repo's real path when inside the cache, else NULL */
} folder_ctx;

static re_status join(const char *a, const char *b, char **out) {
  size_t n = strlen(a) + strlen(b) + 2;
  RE_TRY(re_malloc((int64_t)n, 1, out));
  snprintf(*out, n, "%s/%s", a, b);
  return RE_OK;
}

/* A file of the folder that must exist: exists, is (or links to) a regular file, and
 * inside the cache stays inside the repo. `who` starts the messages ("<index>:
 * weight_map['w'] names shard 'x', which"). */
static re_status check_file(const folder_ctx *f, const char *path, const char *who) {
  struct stat sb;
  if (stat(path, &sb) != 0) {
    int link = lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode);
    return re_err(RE_EFORMAT, "%s is missing%s", who,
                  link ? " (a link whose target is gone: an incomplete download?)" : "");
  }
  if (!S_ISREG(sb.st_mode))
    return re_err(RE_EFORMAT, "%s is not a regular file", who);
  if (f->root)
    RE_TRY(re_hf_cache_check_within(f->root, path, "the file"));
  return RE_OK;
}

/* "<a>: <b>, which" for check_file. */
static re_status who_file(const char *a, const char *b, char **out) {
  size_t n = strlen(a) + strlen(b) + 16;
  RE_TRY(re_malloc((int64_t)n, 1, out));
  snprintf(*out, n, "%s: %s, which", a, b);
  return RE_OK;
}

static re_status read_small_file(const char *path, int64_t limit, uint8_t **out, int64_t *len) {
  *out = NULL;
  int fd;
  RE_TRY(re_open_regular(path, &fd));
  struct stat sb;
  re_status st = RE_OK;
  uint8_t *buf = NULL;
  if (fstat(fd, &sb) != 0) {
    st = re_err(RE_EIO, "%s: cannot stat: %s", path, strerror(errno));
  } else if (sb.st_size > limit) {
    st = re_err(RE_EFORMAT, "%s: %lld bytes is more than the limit of %lld for an index file", path,
                (long long)sb.st_size, (long long)limit);
  } else if ((st = re_malloc(sb.st_size + 1, 1, &buf)) == RE_OK) {
    int64_t got = 0;
    while (got < sb.st_size) {
      ssize_t n = read(fd, buf + got, (size_t)(sb.st_size - got));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        st = re_err(RE_EIO, "%s: read failed after %lld bytes", path, (long long)got);
        break;
      }
      got += n;
    }
    *len = got;
  }
  close(fd);
  if (st != RE_OK) {
    free(buf);
    return st;
  }
  *out = buf;
  return RE_OK;
}

static re_status open_single(re_ckpt *c, const folder_ctx *f, const layout *ly, const char *file,
                             const re_ckpt_options *opt) {
  char *who = NULL;
  RE_TRY(who_file(f->folder, ly->file, &who));
  re_status st = check_file(f, file, who);
  free(who);
  RE_TRY(st);
  RE_TRY(re_calloc(1, sizeof *c->parts, &c->parts));
  RE_TRY(ly->reader->open(file, opt, &c->parts[0]));
  c->nparts = 1;
  const re_ckpt *p = c->parts[0];
  for (int64_t i = 0; i < p->count; i++)
    RE_TRY(re_ckpt_add(c, p->info[i].name, p->info[i].dtype, p->info[i].ndim, p->info[i].shape, &p->loc[i]));
  return re_ckpt_merge_part_metadata(c);
}

static re_status open_sharded(re_ckpt *c, const folder_ctx *f, const layout *ly, const char *index_path,
                              const re_ckpt_options *opt) {
  re_status st = RE_OK;
  re_hf_index x;
  uint8_t *buf = NULL;
  int64_t len = 0;
  char *shard = NULL, *who = NULL;
  memset(&x, 0, sizeof x);
  RE_CHECK(who_file(f->folder, ly->file, &who));
  RE_CHECK(check_file(f, index_path, who));
  RE_CHECK(read_small_file(index_path, RE_HF_INDEX_MAX_BYTES, &buf, &len));
  RE_CHECK(re_hf_index_parse(index_path, buf, len, &x));
  /* all shards present before any is opened: a missing one is reported at once */
  for (int64_t k = 0; k < x.nshards; k++) {
    size_t n = strlen(index_path) + strlen(x.names[x.first[k]]) + strlen(x.shards[k]) + 64;
    free(who);
    who = NULL;
    RE_CHECK(re_malloc((int64_t)n, 1, &who));
    snprintf(who, n, "%s: weight_map['%s'] names shard '%s', which", index_path, x.names[x.first[k]], x.shards[k]);
    RE_CHECK(join(f->folder, x.shards[k], &shard));
    RE_CHECK(check_file(f, shard, who));
    free(shard);
    shard = NULL;
  }
  RE_CHECK(re_calloc(x.nshards, sizeof *c->parts, &c->parts));
  for (int64_t k = 0; k < x.nshards; k++) {
    RE_CHECK(join(f->folder, x.shards[k], &shard));
    RE_CHECK(ly->reader->open(shard, opt, &c->parts[k]));
    c->nparts = k + 1;
    free(shard);
    shard = NULL;
  }
  RE_CHECK(re_hf_index_assemble(c, &x));
done:
  free(who);
  free(shard);
  free(buf);
  re_hf_index_free(&x);
  return st;
}

static re_status folder_probe(const re_ckpt_probe *p, int *match) {
  *match = p->is_dir;
  return RE_OK;
}

static re_status folder_open(const char *path, const re_ckpt_options *opt, re_ckpt **out) {
  re_status st = RE_OK;
  re_ckpt *c = NULL;
  char *folder = NULL, *file = NULL;
  folder_ctx f = {NULL, NULL};
  *out = NULL;
  if (re_hf_cache_is_repo(path)) {
    char *refs_main = NULL;
    RE_CHECK(join(path, "refs/main", &refs_main));
    int has_main = access(refs_main, F_OK) == 0;
    free(refs_main);
    if (!has_main) {
      st = re_err(RE_EINVAL, "%s: a Hugging Face cache repo without refs/main: open one of its snapshot folders, or "
                  "list its branches (repeval inspect %s --list '*')", path, path);
      goto done;
    }
    RE_CHECK(re_hf_cache_resolve(path, "main", &folder, NULL));
  } else {
    RE_CHECK(re_strdup(path, &folder));
  }
  RE_CHECK(re_hf_cache_root_of(folder, &f.root));
  f.folder = folder;
  const layout *ly = NULL;
  for (size_t k = 0; k < sizeof layouts / sizeof layouts[0] && !ly; k++) {
    struct stat sb;
    RE_CHECK(join(folder, layouts[k].file, &file));
    if (lstat(file, &sb) == 0)
      ly = &layouts[k];
    else {
      free(file);
      file = NULL;
    }
  }
  if (!ly) {
    st = re_err(RE_EFORMAT, "%s: not a model folder: it holds none of model.safetensors, model.safetensors.index.json, "
                "pytorch_model.bin, pytorch_model.bin.index.json", folder);
    goto done;
  }
  RE_CHECK(re_ckpt_alloc(path, ly->format, &c));
  RE_CHECK(re_strdup(folder, &c->folder));
  if (ly->index)
    RE_CHECK(open_sharded(c, &f, ly, file, opt));
  else
    RE_CHECK(open_single(c, &f, ly, file, opt));
  *out = c;
  c = NULL;
done:
  re_ckpt_close(&c);
  free(folder);
  free(file);
  free(f.root);
  return st;
}

const re_ckpt_reader re_ckpt_reader_folder = {"model folder", folder_probe, folder_open};
