/* Status messages carry context; size arithmetic refuses overflow; allocation
 * helpers report failures instead of crashing; atomic writes leave no trace on abort. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "repeval/atomic.h"

int main(void) {
  CHECK(re_err(RE_EFORMAT, "offset %d", 12) == RE_EFORMAT);
  CHECK(!strcmp(re_errmsg(), "offset 12"));
  CHECK(re_err_context(RE_EFORMAT, "reading %s: ", "a.npy") == RE_EFORMAT);
  CHECK(!strcmp(re_errmsg(), "reading a.npy: offset 12"));
  re_err_clear();
  CHECK(re_errmsg()[0] == '\0');
  char longmsg[5000];
  memset(longmsg, 'x', sizeof longmsg - 1);
  longmsg[sizeof longmsg - 1] = 0;
  re_err(RE_EIO, "%s", longmsg);
  re_err_context(RE_EIO, "%s", longmsg);
  CHECK(strlen(re_errmsg()) < 4096);
  for (int s = 0; s <= RE_EINTERRUPTED; s++)
    CHECK(strcmp(re_status_str((re_status)s), "unknown status") != 0);

  int64_t r;
  CHECK_OK(re_mul_i64(1 << 20, 1 << 20, &r));
  CHECK(r == (int64_t)1 << 40);
  CHECK_FAILS(re_mul_i64(INT64_MAX / 2, 3, &r), RE_ENOMEM, "overflow");
  CHECK_FAILS(re_mul_i64(-1, 3, &r), RE_ENOMEM, "overflow");
  CHECK_FAILS(re_add_i64(INT64_MAX, 1, &r), RE_ENOMEM, "overflow");
  void *p = (void *)1;
  CHECK_FAILS(re_malloc(INT64_MAX / 4, 8, &p), RE_ENOMEM, "overflow");
  CHECK(p == NULL);
  CHECK_OK(re_calloc(10, 8, &p));
  CHECK(p && ((double *)p)[9] == 0.0);
  CHECK_OK(re_realloc(&p, 20, 8));
  re_free(&p);
  CHECK(p == NULL);
  re_free(&p); /* freeing twice through the nulled pointer is harmless */

  char dir[] = "atomic_XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[256];
  snprintf(path, sizeof path, "%s/out.txt", dir);
  re_atomic a;
  CHECK_OK(re_atomic_open(path, &a));
  CHECK_OK(re_atomic_write(&a, "half", 4));
  CHECK(access(path, F_OK) != 0); /* not visible before commit */
  re_atomic_abort(&a);
  CHECK(access(path, F_OK) != 0);
  CHECK_OK(re_atomic_open(path, &a));
  CHECK_OK(re_atomic_write(&a, "whole", 5));
  CHECK_OK(re_atomic_commit(&a));
  struct stat sb;
  CHECK(stat(path, &sb) == 0 && sb.st_size == 5 && (sb.st_mode & 0777) == 0644);
  unlink(path);
  char nested[256];
  snprintf(nested, sizeof nested, "%s/a/b/c", dir);
  CHECK_OK(re_mkdir_p(nested));
  CHECK_OK(re_mkdir_p(nested));
  CHECK_FAILS(re_atomic_open("/nonexistent-dir/x", &a), RE_EIO, "/nonexistent-dir/x");
  rmdir(nested);
  snprintf(nested, sizeof nested, "%s/a/b", dir);
  rmdir(nested);
  snprintf(nested, sizeof nested, "%s/a", dir);
  rmdir(nested);
  rmdir(dir);
  return check_report();
}
