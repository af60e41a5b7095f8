/* The Hugging Face hub cache, offline: branches matching a glob come back in
 * natural order (step0, step1000, step2000, step10000; lexical order would put
 * step10000 before step2000) with their commits and snapshot folders; the repo
 * folder opens refs/main; run folders list the same way. Refused, naming the refs
 * file or the link: a commit that is not 40 hex digits (including one that would
 * climb out of snapshots/), a refs file that is a link, a missing snapshot, a
 * snapshot that is a link, a link out of the repo folder, a dangling blob link. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hf_fixtures.h"
#include "repeval/checkpoint.h"

#define REPO "models--Org--tiny"

static float w0 = 1.0f, w1 = 2.0f;

static void test_natural_cmp(void) {
  const char *sorted[] = {"main", "step", "step0", "step1", "step9", "step10", "step99", "step100", "step1000",
                          "step2000", "step10000", "step143000", "step99999999999999999999", "stepa", "v1.2",
                          "v1.10"};
  int n = (int)(sizeof sorted / sizeof sorted[0]);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) {
      int c = re_natural_cmp(sorted[i], sorted[j]);
      CHECK(i < j ? c < 0 : i > j ? c > 0 : c == 0);
    }
  /* equal as numbers, still a total order */
  CHECK(re_natural_cmp("step01", "step1") != 0);
  CHECK((re_natural_cmp("step01", "step1") < 0) == (re_natural_cmp("step1", "step01") > 0));
}

static void snapshot(const char *commit, float *w) {
  char rel[256], blob[128];
  hf_tensor t = {"w", "F32", 1, {1}, w, 4};
  snprintf(blob, sizeof blob, REPO "/blobs/blob-%s", commit);
  hf_safetensors(blob, &t, 1);
  snprintf(rel, sizeof rel, REPO "/snapshots/%s", commit);
  hf_mkdir(rel);
  snprintf(rel, sizeof rel, REPO "/snapshots/%s/model.safetensors", commit);
  char target[128];
  snprintf(target, sizeof target, "../../blobs/blob-%s", commit);
  hf_link(target, rel);
}

static void ref(const char *branch, const char *commit) {
  char rel[256];
  snprintf(rel, sizeof rel, REPO "/refs/%s", branch);
  unlink(hf_path(rel)); /* it may be a link: never write through it */
  hf_text(rel, commit);
}

#define C0 "1111111111111111111111111111111111111111"
#define C1 "2222222222222222222222222222222222222222"
#define C2 "3333333333333333333333333333333333333333"
#define C3 "abcdef0123456789abcdef0123456789abcdef01"

static void test_branches(void) {
  snapshot(C0, &w0);
  snapshot(C1, &w1);
  snapshot(C2, &w1);
  snapshot(C3, &w0);
  ref("step0", C0);
  ref("step1000", C1 "\n"); /* a final newline is allowed */
  ref("step10000", C2);
  ref("step2000", C3);
  ref("main", C2);
  re_ckpt_list *l = NULL;
  CHECK_OK(re_hf_cache_list(hf_path(REPO), "step*", &l));
  const char *want[] = {"step0", "step1000", "step2000", "step10000"};
  const char *commit[] = {C0, C1, C3, C2};
  CHECK(l && l->count == 4);
  for (int k = 0; l && k < 4 && k < l->count; k++) {
    char snap[512];
    snprintf(snap, sizeof snap, "%s/snapshots/%s", hf_path(REPO), commit[k]);
    CHECK(!strcmp(l->entries[k].name, want[k]));
    CHECK(!strcmp(l->entries[k].revision, commit[k]));
    CHECK(!strcmp(l->entries[k].path, snap));
  }
  re_ckpt_list_free(&l);
  CHECK(l == NULL);
  CHECK_OK(re_hf_cache_list(hf_path(REPO), "main", &l));
  CHECK(l && l->count == 1 && !strcmp(l->entries[0].revision, C2));
  re_ckpt_list_free(&l);
  CHECK_OK(re_hf_cache_list(hf_path(REPO), "step[0-2]*", &l));
  CHECK(l && l->count == 4);
  re_ckpt_list_free(&l);
  CHECK_FAILS(re_hf_cache_list(hf_path(REPO), "epoch*", &l), RE_EINVAL,
              "refs: no branch matches 'epoch*' (branches: main, step0, step1000, step2000, step10000)");
  CHECK_FAILS(re_hf_cache_list(hf_path(REPO "/refs"), "*", &l), RE_EINVAL, "not a Hugging Face cache repo folder");
  /* the repo folder opens refs/main: step10000's weights */
  re_ckpt *c = NULL;
  float v = 0;
  CHECK_OK(re_ckpt_open(hf_path(REPO), NULL, &c));
  CHECK(c && re_ckpt_folder(c) && strstr(re_ckpt_folder(c), "/snapshots/" C2));
  if (c)
    CHECK_OK(re_ckpt_read_f32(c, 0, &v));
  CHECK(v == w1);
  re_ckpt_close(&c);
  /* each snapshot opens; equal contents under two commits have one content hash */
  uint64_t h[4] = {0};
  CHECK_OK(re_hf_cache_list(hf_path(REPO), "step*", &l));
  for (int k = 0; l && k < l->count; k++) {
    CHECK_OK(re_ckpt_open(l->entries[k].path, NULL, &c));
    if (c)
      CHECK_OK(re_ckpt_content_hash(c, &h[k]));
    re_ckpt_close(&c);
  }
  CHECK(h[0] == h[2] && h[1] == h[3] && h[0] != h[1]);
  re_ckpt_list_free(&l);
}

/* One bad branch at a time, each in a fresh refs file "bad". */
static void test_bad_branches(void) {
  re_ckpt_list *l = NULL;
  ref("bad", "0123");
  CHECK_FAILS(re_hf_cache_list(hf_path(REPO), "bad", &l), RE_EFORMAT,
              "refs/bad: expected a commit hash of 40 lowercase hex digits, found '0123'");
  ref("bad", "../../../../../../../../../../../../../../../etc");
  CHECK_FAILS(re_hf_cache_list(hf_path(REPO), "bad", &l), RE_EFORMAT, "refs/bad: expected a commit hash");
  ref("bad", "ABCDEF0123456789ABCDEF0123456789ABCDEF01");
  CHECK_FAILS(re_hf_cache_list(hf_path(REPO), "bad", &l), RE_EFORMAT, "40 lowercase hex digits");
  ref("bad", "4444444444444444444444444444444444444444");
  CHECK_FAILS(re_hf_cache_list(hf_path(REPO), "bad", &l), RE_EFORMAT,
              "refs/bad: branch 'bad' names commit 4444444444444444444444444444444444444444, but its snapshot folder");
  CHECK(l == NULL);
  /* a step* listing fails as a whole when one of its branches is bad */
  ref("step5", "4444444444444444444444444444444444444444");
  CHECK_FAILS(re_hf_cache_list(hf_path(REPO), "step*", &l), RE_EFORMAT, "refs/step5: branch 'step5'");
  unlink(hf_path(REPO "/refs/step5"));
  /* a refs file that is a link */
  hf_link("main", REPO "/refs/bad");
  CHECK_FAILS(re_hf_cache_list(hf_path(REPO), "bad", &l), RE_EFORMAT, "refs/bad: a symbolic link");
  /* a snapshot folder that is a link (to another snapshot, even) */
  hf_link(C0, REPO "/snapshots/5555555555555555555555555555555555555555");
  ref("bad", "5555555555555555555555555555555555555555");
  CHECK_FAILS(re_hf_cache_list(hf_path(REPO), "bad", &l), RE_EFORMAT, "is a symbolic link, not a folder of the repo");
  /* a file of the snapshot that links out of the repo folder */
  hf_tensor t = {"w", "F32", 1, {1}, &w0, 4};
  hf_safetensors("outside.safetensors", &t, 1);
  hf_mkdir(REPO "/snapshots/6666666666666666666666666666666666666666");
  hf_link("../../../outside.safetensors", REPO "/snapshots/6666666666666666666666666666666666666666/model.safetensors");
  ref("bad", "6666666666666666666666666666666666666666");
  CHECK_FAILS(re_hf_cache_list(hf_path(REPO), "bad", &l), RE_EFORMAT, "the link leads outside the cache repo folder");
  /* and opened directly, the snapshot folder is refused too */
  re_ckpt *c = NULL;
  CHECK_FAILS(re_ckpt_open(hf_path(REPO "/snapshots/6666666666666666666666666666666666666666"), NULL, &c),
              RE_EFORMAT, "the file leads outside the cache repo folder");
  /* a link to a blob that is gone */
  hf_mkdir(REPO "/snapshots/7777777777777777777777777777777777777777");
  hf_link("../../blobs/gone", REPO "/snapshots/7777777777777777777777777777777777777777/model.safetensors");
  ref("bad", "7777777777777777777777777777777777777777");
  CHECK_FAILS(re_hf_cache_list(hf_path(REPO), "bad", &l), RE_EFORMAT, "leads to a missing file");
  CHECK_FAILS(re_ckpt_open(hf_path(REPO "/snapshots/7777777777777777777777777777777777777777"), NULL, &c),
              RE_EFORMAT, "model.safetensors, which is missing (a link whose target is gone");
  unlink(hf_path(REPO "/refs/bad"));
  /* a repo without refs/main */
  unlink(hf_path(REPO "/refs/main"));
  CHECK_FAILS(re_ckpt_open(hf_path(REPO), NULL, &c), RE_EINVAL, "a Hugging Face cache repo without refs/main");
}

static void test_run_folders(void) {
  const char *steps[] = {"step10000", "step0", "step2000", "step1000"};
  for (int k = 0; k < 4; k++) {
    char rel[128];
    hf_tensor t = {"w", "F32", 1, {1}, &w0, 4};
    snprintf(rel, sizeof rel, "runs/%s/model.safetensors", steps[k]);
    hf_safetensors(rel, &t, 1);
  }
  hf_text("runs/step5.txt", "a file, not a run");
  hf_mkdir("runs/.step7");
  re_ckpt_list *l = NULL;
  CHECK_OK(re_ckpt_dir_list(hf_path("runs"), "step*", &l));
  const char *want[] = {"step0", "step1000", "step2000", "step10000"};
  CHECK(l && l->count == 4);
  for (int k = 0; l && k < l->count && k < 4; k++) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", hf_path("runs"), want[k]);
    CHECK(!strcmp(l->entries[k].name, want[k]) && !strcmp(l->entries[k].path, p) && !l->entries[k].revision);
  }
  re_ckpt_list_free(&l);
  CHECK_FAILS(re_ckpt_dir_list(hf_path("runs"), "epoch*", &l), RE_EINVAL, "runs: no folder matches 'epoch*'");
  CHECK_FAILS(re_ckpt_dir_list(hf_path("nowhere"), "*", &l), RE_EINVAL, "nowhere: cannot list");
}

int main(void) {
  hf_scratch("hf_cache");
  test_natural_cmp();
  test_branches();
  test_bad_branches();
  test_run_folders();
  hf_cleanup();
  return check_report();
}
