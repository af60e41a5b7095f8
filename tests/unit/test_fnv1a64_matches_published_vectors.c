/* re_fnv1a64 reproduces the published FNV-1a 64 test vectors (Fowler, Noll, Vo:
 * "" -> cbf29ce484222325, "a" -> af63dc4c8601ec8c, "foobar" -> 85944171f73967e8),
 * chains across calls, and re_fnv1a64_file hashes a file's bytes the same way. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "repeval/core.h"

int main(void) {
  CHECK(re_fnv1a64(RE_FNV1A64_INIT, "", 0) == 0xcbf29ce484222325ULL);
  CHECK(re_fnv1a64(RE_FNV1A64_INIT, "a", 1) == 0xaf63dc4c8601ec8cULL);
  CHECK(re_fnv1a64(RE_FNV1A64_INIT, "foobar", 6) == 0x85944171f73967e8ULL);
  CHECK(re_fnv1a64(re_fnv1a64(RE_FNV1A64_INIT, "foo", 3), "bar", 3) == 0x85944171f73967e8ULL);
  const char *path = "fnv-test.bin";
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (f) {
    fputs("foobar", f);
    fclose(f);
    uint64_t h = 0;
    int64_t n = -1;
    CHECK(re_fnv1a64_file(RE_FNV1A64_INIT, path, &h, &n) == RE_OK);
    CHECK(h == 0x85944171f73967e8ULL && n == 6);
    remove(path);
  }
  CHECK(re_fnv1a64_file(RE_FNV1A64_INIT, "no-such-file-here", &(uint64_t){0}, NULL) == RE_EIO);
  CHECK(strstr(re_errmsg(), "no-such-file-here") != NULL);
  return check_report();
}
