/* repeval inspect: list the arrays or tensors (name, dtype, shape, bytes) of a
 * file or model folder, and a checkpoint's metadata; or list the checkpoints of a
 * Hugging Face cache repo or of a folder of runs. Only headers are read: for
 * safetensors and PyTorch checkpoints no tensor data is touched (unless --hash), so
 * it is instant on large files. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "repeval/checkpoint.h"

static const re_opts_cmd CMD = {
    "inspect", "PATH [--json] [--hash] [--state-dict-key KEY] [--keep-module-prefix] [--strip-prefix P1,P2,...]\n"
    "       repeval inspect DIR --list PATTERN [--json]",
    "Validate PATH and list its arrays or tensors: name, dtype, shape and bytes\n"
    "(and the shard holding each tensor of a model folder), and a checkpoint's metadata.\n"
    "Formats: .npy, .npz, safetensors, PyTorch torch.save archives (.pt/.pth/.bin),\n"
    "Hugging Face model folders (single or sharded model.safetensors or\n"
    "pytorch_model.bin) and cache repo folders (models--Org--name: refs/main).\n",
    NULL};

static int ends_with(const char *s, const char *suf) {
  size_t n = strlen(s), m = strlen(suf);
  return n >= m && !strcmp(s + n - m, suf);
}

static void print_array(int json, int first, const char *name, const re_npy *a) {
  if (json) {
    printf("%s{\"name\": ", first ? "" : ", ");
    re_json_string(stdout, name);
    printf(", \"dtype\": \"%s\", \"shape\": [", re_dtype_name(a->h.dtype));
    for (int d = 0; d < a->h.ndim; d++)
      printf("%s%lld", d ? ", " : "", (long long)a->h.shape[d]);
    printf("], \"bytes\": %lld, \"fortran_order\": %s}", (long long)a->h.nbytes,
           a->h.fortran_order ? "true" : "false");
    return;
  }
  printf("  %-32s %-8s (", name, re_dtype_name(a->h.dtype));
  for (int d = 0; d < a->h.ndim; d++)
    printf("%s%lld", d ? ", " : "", (long long)a->h.shape[d]);
  printf("%s)  %lld bytes%s\n", a->h.ndim == 1 ? "," : "", (long long)a->h.nbytes,
         a->h.fortran_order ? "  fortran-order" : "");
}

static void print_shape(const re_tensor_info *ti) {
  for (int d = 0; d < ti->ndim; d++)
    printf("%s%lld", d ? ", " : "", (long long)ti->shape[d]);
}

typedef struct ckpt_flags {
  int json, hash;
  const char *strip;
} ckpt_flags;

/* `{"file": PATH`, the start of every JSON listing of a file. */
static void json_file(const char *path) {
  printf("{\"file\": ");
  re_json_string(stdout, path);
}

/* A checkpoint's summary: format, bytes, shards, content hash; the JSON one leaves the tensor list open. */
static void print_ckpt_head(const char *path, const re_ckpt *c, const ckpt_flags *fl, uint64_t hash) {
  int64_t n = re_ckpt_count(c), total = 0, nshards = re_ckpt_shard_count(c);
  const char *folder = re_ckpt_folder(c);
  for (int64_t i = 0; i < n; i++)
    total += re_ckpt_info(c, i)->nbytes;
  const char *fmt = re_ckpt_format_name(re_ckpt_format_of(c));
  if (!fl->json) {
    if (folder)
      printf("%s: %s (%lld shard%s), %lld tensors, %lld bytes\n", path, fmt, (long long)nshards,
             nshards == 1 ? "" : "s", (long long)n, (long long)total);
    else
      printf("%s: %s, %lld tensors, %lld bytes\n", path, fmt, (long long)n, (long long)total);
    if (folder && strcmp(folder, path))
      printf("folder: %s\n", folder);
    if (fl->hash)
      printf("content hash: %016llx\n", (unsigned long long)hash);
    return;
  }
  json_file(path);
  printf(", \"format\": \"%s\", \"bytes\": %lld", fmt, (long long)total);
  if (folder) {
    printf(", \"folder\": ");
    re_json_string(stdout, folder);
    printf(", \"shards\": [");
    for (int64_t k = 0; k < nshards; k++) {
      printf("%s", k ? ", " : "");
      re_json_string(stdout, re_ckpt_shard_path(c, k));
    }
    printf("]");
  }
  if (fl->hash)
    printf(", \"content_hash\": \"%016llx\"", (unsigned long long)hash);
  printf(", \"tensors\": [");
}

/* One line (or JSON object) per tensor: name, dtype, shape, bytes and, in a model folder, its shard. */
static void print_ckpt_tensors(const re_ckpt *c, int json) {
  const char *folder = re_ckpt_folder(c);
  for (int64_t i = 0; i < re_ckpt_count(c); i++) {
    const re_tensor_info *ti = re_ckpt_info(c, i);
    const char *shard = re_ckpt_shard_path(c, re_ckpt_tensor_shard(c, i));
    const char *base = strrchr(shard, '/');
    base = base ? base + 1 : shard;
    if (json) {
      printf("%s{\"name\": ", i ? ", " : "");
      re_json_string(stdout, ti->name);
      printf(", \"dtype\": \"%s\", \"shape\": [", re_dtype_name(ti->dtype));
      print_shape(ti);
      printf("], \"bytes\": %lld", (long long)ti->nbytes);
      if (folder) {
        printf(", \"shard\": ");
        re_json_string(stdout, base);
      }
      printf("}");
    } else {
      printf("  %-32s %-8s (", ti->name, re_dtype_name(ti->dtype));
      print_shape(ti);
      printf("%s)  %lld bytes", ti->ndim == 1 ? "," : "", (long long)ti->nbytes);
      if (folder)
        printf("  %s", base);
      printf("\n");
    }
  }
}

/* The checkpoint's metadata (key: value); the JSON one closes the object. */
static void print_ckpt_metadata(const re_ckpt *c, int json) {
  int64_t nm = re_ckpt_metadata_count(c);
  if (json)
    printf("], \"metadata\": {");
  else if (nm)
    printf("metadata:\n");
  for (int64_t i = 0; i < nm; i++) {
    const char *k, *v;
    re_ckpt_metadata(c, i, &k, &v);
    if (json) {
      printf("%s", i ? ", " : "");
      re_json_string(stdout, k);
      printf(": ");
      re_json_string(stdout, v);
    } else {
      printf("  %s: %s\n", k, v);
    }
  }
  if (json)
    printf("}}\n");
}

/* safetensors, PyTorch checkpoints and model folders, through the generic checkpoint API */
static int inspect_checkpoint(const char *path, const ckpt_flags *fl, const re_ckpt_options *opt) {
  re_ckpt *c = NULL;
  uint64_t hash = 0;
  re_status st = re_ckpt_open(path, opt, &c);
  if (st == RE_OK && fl->strip)
    st = re_ckpt_strip_prefix(c, fl->strip);
  if (st == RE_OK && fl->hash)
    st = re_ckpt_content_hash(c, &hash);
  if (st == RE_OK) {
    print_ckpt_head(path, c, fl, hash);
    print_ckpt_tensors(c, fl->json);
    print_ckpt_metadata(c, fl->json);
  }
  re_ckpt_close(&c);
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}

/* --list: the branches of a cache repo, or the matching subfolders of a folder */
static int list_checkpoints(const char *dir, const char *pattern, int json) {
  re_ckpt_list *l = NULL;
  int repo = re_hf_cache_is_repo(dir);
  re_status st = repo ? re_hf_cache_list(dir, pattern, &l) : re_ckpt_dir_list(dir, pattern, &l);
  if (st != RE_OK)
    return re_cli_fail(st);
  if (json) {
    printf("{\"dir\": ");
    re_json_string(stdout, dir);
    printf(", \"kind\": \"%s\", \"checkpoints\": [", repo ? "hf-cache" : "folders");
  } else {
    printf("%s: %lld %s matching '%s'\n", dir, (long long)l->count, repo ? "branches" : "folders", pattern);
  }
  for (int64_t k = 0; k < l->count; k++) {
    const re_ckpt_entry *e = &l->entries[k];
    if (json) {
      printf("%s{\"name\": ", k ? ", " : "");
      re_json_string(stdout, e->name);
      printf(", \"revision\": ");
      if (e->revision)
        re_json_string(stdout, e->revision);
      else
        printf("null");
      printf(", \"path\": ");
      re_json_string(stdout, e->path);
      printf("}");
    } else if (e->revision) {
      printf("  %-24s %s  %s\n", e->name, e->revision, e->path);
    } else {
      printf("  %-24s %s\n", e->name, e->path);
    }
  }
  if (json)
    printf("]}\n");
  re_ckpt_list_free(&l);
  return RE_EXIT_OK;
}

/* Formats by content, so a checkpoint named .bin or without a suffix works too. */
static int is_npy_or_npz(const char *path) {
  struct stat sb;
  if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
    return 0; /* a model folder */
  if (ends_with(path, ".npz") || ends_with(path, ".npy"))
    return 1;
  FILE *f = NULL;
  if (re_fopen_regular(path, &f) != RE_OK)
    re_err_clear(); /* the checkpoint reader names the problem */
  unsigned char b[6] = {0};
  size_t n = f ? fread(b, 1, sizeof b, f) : 0;
  if (f)
    fclose(f);
  return n == 6 && !memcmp(b, "\x93NUMPY", 6);
}

/* The arrays of a .npz file. */
static int inspect_npz(const char *path, int json) {
  re_npz *z = NULL;
  re_status st = re_npz_open(path, &z);
  if (st != RE_OK)
    return re_cli_fail(st);
  if (json) {
    json_file(path);
    printf(", \"format\": \"npz\", \"arrays\": [");
  } else {
    printf("%s: npz, %lld arrays\n", path, (long long)re_npz_count(z));
  }
  for (int64_t i = 0; i < re_npz_count(z) && st == RE_OK; i++) {
    re_npy *a = NULL;
    st = re_npz_load(z, re_npz_name(z, i), &a);
    if (st == RE_OK)
      print_array(json, i == 0, re_npz_name(z, i), a);
    re_npy_close(&a);
  }
  if (json && st == RE_OK)
    printf("]}\n");
  re_npz_close(&z);
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}

/* The array of a .npy file. */
static int inspect_npy(const char *path, int json) {
  re_npy *a = NULL;
  re_status st = re_npy_open(path, &a);
  if (st == RE_OK && json) {
    json_file(path);
    printf(", \"format\": \"npy\", \"version\": %d, \"arrays\": [", a->h.version);
    print_array(1, 1, "", a);
    printf("]}\n");
  } else if (st == RE_OK) {
    printf("%s: npy v%d\n", path, a->h.version);
    print_array(0, 1, "(array)", a);
  }
  re_npy_close(&a);
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}

int re_cmd_inspect(int argc, char **argv) {
  char *path = NULL, *list = NULL, *strip = NULL;
  int json = 0, hash = 0;
  re_ckpt_options opt = {0};
  const re_opt opts[] = {
      RE_OPT_FLAG("json", &json, "print one JSON object"),
      RE_OPT_FLAG("hash", &hash, "also print the checkpoint's content hash (samples the data)"),
      RE_OPT_STRING("state-dict-key", &opt.state_dict_key, "KEY", "PyTorch: use the state_dict stored under KEY"),
      RE_OPT_FLAG("keep-module-prefix", &opt.keep_module_prefix, "PyTorch: keep a leading 'module.' in tensor names"),
      RE_OPT_STRING("strip-prefix", &strip, "LIST", "remove the first of these name prefixes a tensor name starts with"),
      RE_OPT_STRING("list", &list, "PATTERN",
                    "list the branches of a cache repo folder DIR, or the subfolders of DIR, whose names match "
                    "the glob PATTERN, in natural order"),
      RE_OPT_END,
  };
  const re_opts_pos pos = {.min = 1, .max = 1, .v = &path, .too_few = "give a file", .too_many = "give one file"};
  int rc = re_opts_parse(&CMD, opts, argc, argv, &pos);
  if (rc != RE_OPTS_RUN)
    return rc;
  ckpt_flags fl = {json, hash, strip};
  if (list)
    return list_checkpoints(path, list, json);
  if (!is_npy_or_npz(path))
    return inspect_checkpoint(path, &fl, &opt);
  return ends_with(path, ".npz") ? inspect_npz(path, json) : inspect_npy(path, json);
}
