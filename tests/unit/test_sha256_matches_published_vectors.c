/* re_sha256 reproduces the FIPS 180-4 example digests ("abc", the 448-bit message,
 * one million 'a') and the digest of the empty message, gives the same digest
 * whatever the pieces given to update (every split of a 200-byte message), and
 * re_sha256_file hashes a file's bytes the same way (as sha256sum would). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "repeval/core.h"

static void digest(const void *p, size_t n, char hex[65]) {
  re_sha256 s;
  uint8_t d[32];
  re_sha256_init(&s);
  re_sha256_update(&s, p, n);
  re_sha256_final(&s, d);
  re_sha256_hex(d, hex);
}

int main(void) {
  char hex[65], other[65];
  digest("", 0, hex);
  CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  digest("abc", 3, hex);
  CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  digest(m448, strlen(m448), hex);
  CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
  char *million = malloc(1000000);
  CHECK(million != NULL);
  if (million) {
    memset(million, 'a', 1000000);
    digest(million, 1000000, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    free(million);
  }
  /* every split point of a message longer than three blocks */
  unsigned char msg[200];
  for (int k = 0; k < 200; k++)
    msg[k] = (unsigned char)(k * 7 + 3);
  digest(msg, sizeof msg, hex);
  int same = 1;
  for (size_t cut = 0; cut <= sizeof msg; cut++) {
    re_sha256 s;
    uint8_t d[32];
    re_sha256_init(&s);
    re_sha256_update(&s, msg, cut);
    re_sha256_update(&s, msg + cut, sizeof msg - cut);
    re_sha256_final(&s, d);
    re_sha256_hex(d, other);
    same &= !strcmp(hex, other);
  }
  CHECK(same);
  const char *path = "sha256-test.bin";
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (f) {
    fputs("abc", f);
    fclose(f);
    int64_t n = -1;
    CHECK_OK(re_sha256_file(path, hex, &n));
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") && n == 3);
    remove(path);
  }
  CHECK(re_sha256_file("no-such-file-here", hex, NULL) == RE_EIO);
  CHECK(strstr(re_errmsg(), "no-such-file-here") != NULL);
  return check_report();
}
