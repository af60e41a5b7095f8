/* YAML configuration trees: values are typed on request, and every error names
 * file:line:col (syntax errors, duplicate or unknown keys, wrong types, alias bombs). */
#include <stdlib.h>

#include "check.h"
#include "repeval/cfg.h"

static re_cfg *parse(const char *text) {
  re_cfg *c = NULL;
  CHECK_OK(re_cfg_parse_string(text, (int64_t)strlen(text), "job.yaml", &c));
  return c;
}

int main(void) {
  re_cfg *c = parse("name: demo\n"
                    "batch: 256\n"
                    "ratio: 0.25\n"
                    "bundle: true\n"
                    "quoted: \"12\"\n"
                    "empty:\n"
                    "layers: [conv1, fc1]\n"
                    "data: {fmnist: {format: idx, limit: 100}}\n"
                    "base: &b {kernel: 3}\n"
                    "copy: *b\n");
  if (c) {
    const char *s = NULL;
    int64_t i = 0;
    double d = 0;
    int b = 0;
    CHECK_OK(re_cfg_get_string(c, "name", &s));
    CHECK(s && !strcmp(s, "demo"));
    CHECK_OK(re_cfg_get_int(c, "batch", &i));
    CHECK(i == 256);
    CHECK_OK(re_cfg_get_double(c, "ratio", &d));
    CHECK(d == 0.25);
    CHECK_OK(re_cfg_get_bool(c, "bundle", &b));
    CHECK(b == 1);
    CHECK_FAILS(re_cfg_get_int(c, "quoted", &i), RE_EINVAL, "job.yaml:5:9: expected an integer");
    CHECK(re_cfg_is_null(re_cfg_get(c, "empty")));
    const re_cfg *layers = re_cfg_get(c, "layers");
    CHECK(layers && layers->kind == RE_CFG_SEQ && layers->n == 2 && !strcmp(layers->items[1]->scalar, "fc1"));
    const re_cfg *fm = re_cfg_get(re_cfg_get(c, "data"), "fmnist");
    CHECK(fm && fm->line == 8);
    CHECK_OK(re_cfg_get_int(fm, "limit", &i));
    CHECK(i == 100);
    const char *allowed[] = {"format", "images", NULL};
    CHECK_FAILS(re_cfg_expect_map(fm, "dataset 'fmnist'", allowed), RE_EINVAL,
                "job.yaml:8:30: unknown key 'limit' in dataset 'fmnist' (expected one of: format, images)");
    CHECK_OK(re_cfg_get_int(re_cfg_get(c, "copy"), "kernel", &i));
    CHECK(i == 3);
    CHECK_FAILS(re_cfg_get_int(c, "name", &i), RE_EINVAL, "job.yaml:1:7: expected an integer, got 'demo'");
    CHECK_FAILS(re_cfg_get_bool(c, "batch", &b), RE_EINVAL, "job.yaml:2:8: expected true or false");
    CHECK_FAILS(re_cfg_get_string(c, "layers", &s), RE_EINVAL, "job.yaml:7:9: expected a string");
    CHECK(re_cfg_get(c, "missing") == NULL);
  }
  re_cfg_free(&c);
  CHECK(c == NULL);
  re_cfg *bad = NULL;
  const char *dup = "a: 1\nb: 2\na: 3\n";
  CHECK_FAILS(re_cfg_parse_string(dup, (int64_t)strlen(dup), "job.yaml", &bad), RE_EFORMAT,
              "job.yaml:3:1: duplicate key 'a' (first at line 1)");
  const char *syn = "a: [1, 2\nb: 3\n";
  CHECK_FAILS(re_cfg_parse_string(syn, (int64_t)strlen(syn), "job.yaml", &bad), RE_EFORMAT, "YAML syntax error");
  CHECK_FAILS(re_cfg_parse_string("", 0, "job.yaml", &bad), RE_EFORMAT, "empty");
  /* an alias bomb expands past the node budget instead of exhausting memory */
  char bomb[4096];
  int n = snprintf(bomb, sizeof bomb, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
  for (int k = 1; k < 8; k++)
    n += snprintf(bomb + n, sizeof bomb - (size_t)n, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n",
                  k, k, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1, k - 1);
  CHECK_FAILS(re_cfg_parse_string(bomb, n, "bomb.yaml", &bad), RE_EFORMAT, "nodes after expanding aliases");
  char deep[1024];
  memset(deep, '[', 200);
  deep[200] = '\0';
  CHECK(re_cfg_parse_string(deep, 200, "deep.yaml", &bad) != RE_OK);
  CHECK_FAILS(re_cfg_parse_file("/nonexistent/job.yaml", &bad), RE_EIO, "/nonexistent/job.yaml");
  return check_report();
}
