/* repeval inspect: list the arrays or tensors (name, dtype, shape, bytes) of a
 * file, and a checkpoint's metadata. Only headers are read: for safetensors and
 * PyTorch checkpoints no tensor data is touched, so it is instant on large files. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "repeval/checkpoint.h"

static const re_opts_cmd CMD = {
    "inspect", "FILE [--json] [--state-dict-key KEY] [--keep-module-prefix]",
    "Validate FILE and list its arrays or tensors: name, dtype, shape and bytes,\n"
    "and a checkpoint's metadata.\n"
    "Formats: .npy, .npz, safetensors, PyTorch torch.save archives (.pt/.pth).\n",
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

/* safetensors and PyTorch checkpoints, through the generic checkpoint API */
static int inspect_checkpoint(const char *path, int json, const re_ckpt_options *opt) {
  re_ckpt *c = NULL;
  re_status st = re_ckpt_open(path, opt, &c);
  if (st != RE_OK)
    return re_cli_fail(st);
  int64_t n = re_ckpt_count(c), total = 0;
  for (int64_t i = 0; i < n; i++)
    total += re_ckpt_info(c, i)->nbytes;
  const char *fmt = re_ckpt_format_name(re_ckpt_format_of(c));
  if (json) {
    printf("{\"file\": ");
    re_json_string(stdout, path);
    printf(", \"format\": \"%s\", \"bytes\": %lld, \"tensors\": [", fmt, (long long)total);
  } else {
    printf("%s: %s, %lld tensors, %lld bytes\n", path, fmt, (long long)n, (long long)total);
  }
  for (int64_t i = 0; i < n; i++) {
    const re_tensor_info *ti = re_ckpt_info(c, i);
    if (json) {
      printf("%s{\"name\": ", i ? ", " : "");
      re_json_string(stdout, ti->name);
      printf(", \"dtype\": \"%s\", \"shape\": [", re_dtype_name(ti->dtype));
      print_shape(ti);
      printf("], \"bytes\": %lld}", (long long)ti->nbytes);
    } else {
      printf("  %-32s %-8s (", ti->name, re_dtype_name(ti->dtype));
      print_shape(ti);
      printf("%s)  %lld bytes\n", ti->ndim == 1 ? "," : "", (long long)ti->nbytes);
    }
  }
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
  re_ckpt_close(&c);
  return RE_EXIT_OK;
}

/* Formats by content, so a checkpoint named .bin or without a suffix works too. */
static int is_npy_or_npz(const char *path) {
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

int re_cmd_inspect(int argc, char **argv) {
  char *path = NULL;
  int json = 0;
  re_ckpt_options opt = {0};
  const re_opt opts[] = {
      RE_OPT_FLAG("json", &json, "print one JSON object"),
      RE_OPT_STRING("state-dict-key", &opt.state_dict_key, "KEY", "PyTorch: use the state_dict stored under KEY"),
      RE_OPT_FLAG("keep-module-prefix", &opt.keep_module_prefix, "PyTorch: keep a leading 'module.' in tensor names"),
      RE_OPT_END,
  };
  const re_opts_pos pos = {.min = 1, .max = 1, .v = &path, .too_few = "give a file", .too_many = "give one file"};
  int rc = re_opts_parse(&CMD, opts, argc, argv, &pos);
  if (rc != RE_OPTS_RUN)
    return rc;
  re_status st = RE_OK;
  if (!is_npy_or_npz(path))
    return inspect_checkpoint(path, json, &opt);
  if (ends_with(path, ".npz")) {
    re_npz *z = NULL;
    st = re_npz_open(path, &z);
    if (st != RE_OK)
      return re_cli_fail(st);
    if (json) {
      printf("{\"file\": ");
      re_json_string(stdout, path);
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
  } else {
    re_npy *a = NULL;
    st = re_npy_open(path, &a);
    if (st != RE_OK)
      return re_cli_fail(st);
    if (json) {
      printf("{\"file\": ");
      re_json_string(stdout, path);
      printf(", \"format\": \"npy\", \"version\": %d, \"arrays\": [", a->h.version);
      print_array(1, 1, "", a);
      printf("]}\n");
    } else {
      printf("%s: npy v%d\n", path, a->h.version);
      print_array(0, 1, "(array)", a);
    }
    re_npy_close(&a);
  }
  return st == RE_OK ? RE_EXIT_OK : re_cli_fail(st);
}
