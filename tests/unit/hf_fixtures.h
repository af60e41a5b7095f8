/* Builders for the model-folder tests: safetensors files written by hand, text
 * files, folders and links, inside a scratch folder made in the working folder and
 * removed at the end (links are removed, never followed). */
#ifndef REPEVAL_TEST_HF_FIXTURES_H
#define REPEVAL_TEST_HF_FIXTURES_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct hf_tensor {
  const char *name;
  const char *dtype; /* "F32", "F16", "BF16" */
  int ndim;
  int64_t shape[4];
  const void *data;
  int64_t nbytes;
} hf_tensor;

static char hf_root[64];

/* Path of `rel` inside the scratch folder (one of 64 rotating static buffers). */
static inline const char *hf_path(const char *rel) {
  static char bufs[64][768];
  static int next = 0;
  char *p = bufs[next++ % 64];
  snprintf(p, 768, "%.63s/%.600s", hf_root, rel);
  return p;
}

static inline void hf_scratch(const char *tag) {
  snprintf(hf_root, sizeof hf_root, "%s_XXXXXX", tag);
  if (!mkdtemp(hf_root)) {
    perror("mkdtemp");
    exit(2);
  }
}

static inline void hf_mkdir(const char *rel) {
  char p[768];
  snprintf(p, sizeof p, "%s", hf_path(rel));
  for (char *s = p + strlen(hf_root) + 1; *s; s++)
    if (*s == '/') {
      *s = '\0';
      mkdir(p, 0755);
      *s = '/';
    }
  mkdir(p, 0755);
}

static inline void hf_write(const char *rel, const void *data, size_t n) {
  char dir[768];
  snprintf(dir, sizeof dir, "%s", rel);
  char *slash = strrchr(dir, '/');
  if (slash) {
    *slash = '\0';
    hf_mkdir(dir);
  }
  FILE *f = fopen(hf_path(rel), "wb");
  if (!f || (n && fwrite(data, 1, n, f) != n)) {
    perror(rel);
    exit(2);
  }
  fclose(f);
}

static inline void hf_text(const char *rel, const char *text) { hf_write(rel, text, strlen(text)); }

static inline void hf_link(const char *target, const char *rel) {
  unlink(hf_path(rel));
  if (symlink(target, hf_path(rel)) != 0) {
    perror(rel);
    exit(2);
  }
}

/* A safetensors file of t[0..n): header and data in that order, the header padded to 8 bytes. */
static inline void hf_safetensors(const char *rel, const hf_tensor *t, int n) {
  char *h = (char *)malloc(1 << 16);
  size_t at = 0;
  int64_t off = 0;
  at += (size_t)snprintf(h + at, 4096, "{\"__metadata__\": {\"format\": \"pt\"}");
  for (int k = 0; k < n; k++) {
    at += (size_t)snprintf(h + at, 4096, ", \"%s\": {\"dtype\": \"%s\", \"shape\": [", t[k].name, t[k].dtype);
    for (int d = 0; d < t[k].ndim; d++)
      at += (size_t)snprintf(h + at, 64, "%s%lld", d ? ", " : "", (long long)t[k].shape[d]);
    at += (size_t)snprintf(h + at, 128, "], \"data_offsets\": [%lld, %lld]}", (long long)off,
                           (long long)(off + t[k].nbytes));
    off += t[k].nbytes;
  }
  h[at++] = '}';
  while ((8 + at) % 8)
    h[at++] = ' ';
  size_t total = 8 + at + (size_t)off;
  uint8_t *img = (uint8_t *)malloc(total);
  for (int b = 0; b < 8; b++)
    img[b] = (uint8_t)((uint64_t)at >> (8 * b));
  memcpy(img + 8, h, at);
  size_t p = 8 + at;
  for (int k = 0; k < n; k++) {
    memcpy(img + p, t[k].data, (size_t)t[k].nbytes);
    p += (size_t)t[k].nbytes;
  }
  hf_write(rel, img, total);
  free(img);
  free(h);
}

static inline void hf_rm_rf(const char *p) {
  struct stat sb;
  if (lstat(p, &sb) != 0)
    return;
  if (S_ISDIR(sb.st_mode)) {
    DIR *d = opendir(p);
    struct dirent *e;
    while (d && (e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
        continue;
      char q[1024];
      snprintf(q, sizeof q, "%.700s/%.255s", p, e->d_name);
      hf_rm_rf(q);
    }
    if (d)
      closedir(d);
    rmdir(p);
  } else {
    unlink(p);
  }
}

static inline void hf_cleanup(void) { hf_rm_rf(hf_root); }

#endif
