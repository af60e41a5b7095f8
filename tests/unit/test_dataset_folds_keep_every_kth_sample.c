/* re_dataset_open_folds keeps exactly the samples i of the inner dataset with
 * i mod K among the kept folds, in their order: for arrays (with normalisation
 * applied by the subset) and token datasets (a fortune-style text corpus with
 * class names), every range read, in any order, equals the inner samples picked
 * by that definition; counts, labels and class names follow; bad counts, folds,
 * duplicates and empty selections are refused naming the problem, and the inner
 * dataset is taken in every case. */
#include "check.h"
#include "text_fixtures.h"

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static int64_t next_rand(int64_t n) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (int64_t)(rng % (uint64_t)n);
}

/* The definition: inner indices i < n with i mod k in use[], increasing. */
static int64_t pick(int64_t n, int64_t k, const int64_t *use, int nuse, int64_t *idx) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; i++)
    for (int u = 0; u < nuse; u++)
      if (i % k == use[u])
        idx[c++] = i;
  return c;
}

static const char *inputs, *labels, *fortunes;
enum { N = 23, D = 3 };

static void check_arrays(int64_t k, const int64_t *use, int nuse) {
  re_dataset *all = NULL, *sub = NULL, *ref = NULL;
  CHECK_OK(re_dataset_open_npy(inputs, labels, &all));
  CHECK_OK(re_dataset_open_npy(inputs, labels, &ref));
  CHECK_OK(re_dataset_open_folds(&all, k, use, nuse, &sub));
  CHECK(all == NULL);
  if (!sub) {
    re_dataset_close(&ref);
    return;
  }
  float mean[1] = {0.5f}, std[1] = {2.0f};
  CHECK_OK(re_dataset_set_normalize(sub, mean, std, 1));
  CHECK_OK(re_dataset_set_normalize(ref, mean, std, 1));
  int64_t idx[N];
  int64_t n = pick(N, k, use, nuse, idx);
  const re_dataset_info *in = re_dataset_get_info(sub);
  CHECK(in->count == n);
  CHECK(in->sample_dim == D && in->has_labels && in->num_classes == re_dataset_get_info(ref)->num_classes);
  float want[N * D], got[N * D];
  int32_t ywant[N], ygot[N];
  for (int64_t g = 0; g < n; g++)
    CHECK_OK(re_dataset_read(ref, idx[g], idx[g] + 1, want + g * D, ywant + g));
  int bad = 0;
  for (int r = 0; r < 30; r++) {
    int64_t i = r == 0 ? 0 : next_rand(n), j = r == 0 ? n : i + 1 + next_rand(n - i);
    memset(got, 0xAB, sizeof got);
    CHECK_OK(re_dataset_read(sub, i, j, got, ygot));
    bad += memcmp(got, want + i * D, sizeof(float) * (size_t)((j - i) * D)) != 0;
    bad += memcmp(ygot, ywant + i, sizeof(int32_t) * (size_t)(j - i)) != 0;
  }
  CHECK(bad == 0);
  CHECK_FAILS(re_dataset_read(sub, 0, n + 1, got, ygot), RE_EINVAL, "out of range");
  re_dataset_close(&sub);
  re_dataset_close(&ref);
}

static void check_tokens(int64_t k, const int64_t *use, int nuse) {
  re_text_options o = tx_opts("gpt2_bytelevel", 5);
  re_dataset *all = NULL, *sub = NULL, *ref = NULL;
  const char *files[1] = {fortunes};
  CHECK_OK(re_dataset_open_text(files, 1, NULL, "%", "name", &o, &all));
  CHECK_OK(re_dataset_open_text(files, 1, NULL, "%", "name", &o, &ref));
  CHECK_OK(re_dataset_open_folds(&all, k, use, nuse, &sub));
  if (!sub) {
    re_dataset_close(&ref);
    return;
  }
  const re_dataset_info *rin = re_dataset_get_info(ref), *in = re_dataset_get_info(sub);
  int64_t T = rin->seq_len, idx[64];
  int64_t n = pick(rin->count, k, use, nuse, idx);
  CHECK(in->count == n && in->tokens && in->seq_len == T && in->vocab == rin->vocab);
  CHECK(re_dataset_class_name(sub, 0) && !strcmp(re_dataset_class_name(sub, 0), "fortunes"));
  int64_t want[64 * 5], got[64 * 5];
  uint8_t mwant[64 * 5], mgot[64 * 5];
  int32_t ywant[64], ygot[64];
  for (int64_t g = 0; g < n; g++)
    CHECK_OK(re_dataset_read_tokens(ref, idx[g], idx[g] + 1, want + g * T, mwant + g * T, ywant + g));
  int bad = 0;
  for (int r = 0; r < 30; r++) {
    int64_t i = r == 0 ? 0 : next_rand(n), j = r == 0 ? n : i + 1 + next_rand(n - i);
    CHECK_OK(re_dataset_read_tokens(sub, i, j, got, mgot, ygot));
    bad += memcmp(got, want + i * T, sizeof(int64_t) * (size_t)((j - i) * T)) != 0;
    bad += memcmp(mgot, mwant + i * T, (size_t)((j - i) * T)) != 0;
    bad += memcmp(ygot, ywant + i, sizeof(int32_t) * (size_t)(j - i)) != 0;
  }
  CHECK(bad == 0);
  re_dataset_close(&sub);
  re_dataset_close(&ref);
}

static void check_refused(int64_t k, const int64_t *use, int nuse, const char *msg) {
  re_dataset *all = NULL, *sub = NULL;
  CHECK_OK(re_dataset_open_npy(inputs, labels, &all));
  CHECK_FAILS(re_dataset_open_folds(&all, k, use, nuse, &sub), RE_EINVAL, msg);
  CHECK(all == NULL && sub == NULL); /* taken and closed (LeakSanitizer checks the closing) */
}

int main(void) {
  fx_mkdir();
  float x[N * D];
  int32_t y[N];
  for (int i = 0; i < N; i++) {
    for (int c = 0; c < D; c++)
      x[i * D + c] = (float)(i * 10 + c) * 0.25f;
    y[i] = (i * 7) % 4;
  }
  inputs = tx_npy("x.npy", RE_DTYPE_F32, 2, (int64_t[]){N, D}, x);
  labels = tx_npy("y.npy", RE_DTYPE_I32, 1, (int64_t[]){N}, y);
  fx_buf txt = {0};
  for (int d = 0; d < 17; d++) {
    char doc[64];
    snprintf(doc, sizeof doc, "fortune %d says %.*s\n%%\n", d, 1 + d % 9, "abcdefghij");
    fx_put(&txt, doc, strlen(doc));
  }
  fortunes = fx_write("fortunes", txt.p, txt.n);
  free(txt.p);

  check_arrays(5, (int64_t[]){0}, 1);            /* a held-out fifth */
  check_arrays(5, (int64_t[]){1, 2, 3, 4}, 4);   /* the rest: runs of four */
  check_arrays(5, (int64_t[]){4, 0, 2}, 3);      /* any order given, kept in dataset order */
  check_arrays(2, (int64_t[]){1, 0}, 2);         /* every fold: the dataset itself */
  check_arrays(30, (int64_t[]){22}, 1);          /* more folds than samples, one non-empty fold */
  check_tokens(5, (int64_t[]){0}, 1);
  check_tokens(5, (int64_t[]){1, 2, 3, 4}, 4);
  check_tokens(3, (int64_t[]){2}, 1);

  check_refused(1, (int64_t[]){0}, 1, "count must be 2");
  check_refused(5, (int64_t[]){5}, 1, "fold 5 does not exist");
  check_refused(5, (int64_t[]){-1}, 1, "fold -1 does not exist");
  check_refused(5, (int64_t[]){1, 3, 1}, 3, "fold 1 is listed twice");
  check_refused(5, (int64_t[]){0}, 0, "use 1 ... 5");
  check_refused(30, (int64_t[]){23, 29}, 2, "the kept folds are empty");
  re_dataset *none = NULL, *sub = NULL;
  CHECK_FAILS(re_dataset_open_folds(&none, 5, (int64_t[]){0}, 1, &sub), RE_EINVAL, "no dataset");
  fx_rmdir();
  return check_report();
}
