/* repeval inspect: list the arrays (name, dtype, shape, bytes) of a file. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void help(void) {
  printf("usage: repeval inspect FILE [--json]\n"
         "\n"
         "Validate FILE and list its arrays: name, dtype, shape and bytes.\n"
         "Formats: .npy, .npz.\n");
}

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

int re_cmd_inspect(int argc, char **argv) {
  const char *path = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      help();
      return RE_EXIT_OK;
    } else if (!strcmp(argv[i], "--json")) {
      json = 1;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      return re_cli_usage_error("inspect", "unknown option '%s'", argv[i]);
    } else if (!path) {
      path = argv[i];
    } else {
      return re_cli_usage_error("inspect", "give one file");
    }
  }
  if (!path)
    return re_cli_usage_error("inspect", "give a file");
  re_status st = RE_OK;
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
