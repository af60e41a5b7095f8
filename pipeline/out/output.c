/* Result files: CSV quoting, the tar.zst bundle and atomic folder replacement. */
#include "out/output.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "out/path.h"
#include "repeval/atomic.h"

void out_csv_field(FILE *f, const char *s) {
  if (!s)
    return;
  if (!strpbrk(s, ",\"\n\r")) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"')
      fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

typedef struct names {
  char **v;
  int n;
} names;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Collect regular files under root/rel, sorted, as paths relative to root. */
static re_status walk(const char *root, const char *rel, names *out) {
  char path[4096];
  RE_TRY(re_path_join(path, sizeof path, "%s%s%s", root, rel[0] ? "/" : "", rel));
  DIR *d = opendir(path);
  if (!d)
    return re_err(RE_EIO, "%s: cannot list: %s", path, strerror(errno));
  names here = {0};
  re_status st = RE_OK;
  struct dirent *e;
  while ((e = readdir(d)) && st == RE_OK) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char r[4096];
    st = re_path_join(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
    if (st == RE_OK)
      st = re_realloc(&here.v, here.n + 1, sizeof(char *));
    if (st == RE_OK)
      st = re_strdup(r, &here.v[here.n]);
    if (st == RE_OK)
      here.n++;
  }
  closedir(d);
  qsort(here.v, (size_t)here.n, sizeof(char *), cmp_str);
  for (int k = 0; k < here.n && st == RE_OK; k++) {
    char full[8192];
    struct stat sb;
    st = re_path_join(full, sizeof full, "%s/%s", root, here.v[k]);
    if (st != RE_OK)
      break;
    if (lstat(full, &sb) != 0)
      continue;
    if (S_ISDIR(sb.st_mode)) {
      st = walk(root, here.v[k], out);
    } else if (S_ISREG(sb.st_mode)) {
      st = re_realloc(&out->v, out->n + 1, sizeof(char *));
      if (st == RE_OK) {
        out->v[out->n++] = here.v[k];
        here.v[k] = NULL;
      }
    }
  }
  for (int k = 0; k < here.n; k++)
    free(here.v[k]);
  free(here.v);
  return st;
}

/* libarchive's message, with the system's reason when it has one ("Write error" alone
 * does not say that the disk is full). */
static const char *arch_why(struct archive *a, char *buf, size_t cap) {
  const char *msg = archive_error_string(a);
  int e = archive_errno(a);
  if (e > 0 && (!msg || !strstr(msg, strerror(e))))
    snprintf(buf, cap, "%s (%s)", msg ? msg : "error", strerror(e));
  else
    snprintf(buf, cap, "%s", msg ? msg : "error");
  return buf;
}

re_status out_list_files(const char *dir, char ***files, int *n) {
  names all = {0};
  re_status st = walk(dir, "", &all);
  *files = all.v;
  *n = all.n;
  return st;
}

re_status out_bundle(const char *dir, const char *tarpath, const char *skip) {
  size_t skl = skip ? strlen(skip) : 0;
  names files = {0};
  char tmp[4096], why[512];
  RE_TRY(re_path_join(tmp, sizeof tmp, "%s.tmp", tarpath)); /* before anything: a cut name is never unlinked */
  re_status st = walk(dir, "", &files);
  struct archive *a = NULL;
  const char *base = strrchr(tarpath, '/');
  base = base ? base + 1 : tarpath;
  if (st == RE_OK) {
    a = archive_write_new();
    if (!a || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_add_filter_zstd(a) != ARCHIVE_OK || archive_write_open_filename(a, tmp) != ARCHIVE_OK)
      st = re_err(RE_EIO, "%s: cannot create the bundle: %s", tarpath,
                  a ? arch_why(a, why, sizeof why) : "no memory");
  }
  char *buf = NULL;
  if (st == RE_OK)
    st = re_malloc(1 << 20, 1, &buf);
  for (int k = 0; k < files.n && st == RE_OK; k++) {
    if (!strcmp(files.v[k], base) || strstr(files.v[k], ".tmp") || !strncmp(files.v[k], OUT_HIDDEN_PREFIX, strlen(OUT_HIDDEN_PREFIX)))
      continue;
    if (skl && !strncmp(files.v[k], skip, skl) && files.v[k][skl] == '/')
      continue;
    char full[8192];
    if ((st = re_path_join(full, sizeof full, "%s/%s", dir, files.v[k])) != RE_OK)
      break;
    struct stat sb;
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0) {
      st = re_err(RE_EIO, "%s: cannot read for the bundle", full);
      if (fd >= 0)
        close(fd);
      break;
    }
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, files.v[k]);
    archive_entry_set_size(e, sb.st_size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, sb.st_mtime, 0);
    if (archive_write_header(a, e) != ARCHIVE_OK)
      st = re_err(RE_EIO, "%s: bundle header for %s: %s", tarpath, files.v[k], arch_why(a, why, sizeof why));
    ssize_t r;
    while (st == RE_OK && (r = read(fd, buf, 1 << 20)) > 0)
      if (archive_write_data(a, buf, (size_t)r) != r)
        st = re_err(RE_EIO, "%s: writing %s: %s", tarpath, files.v[k], arch_why(a, why, sizeof why));
    archive_entry_free(e);
    close(fd);
  }
  if (a) {
    if (archive_write_close(a) != ARCHIVE_OK && st == RE_OK)
      st = re_err(RE_EIO, "%s: cannot finish the bundle: %s", tarpath, arch_why(a, why, sizeof why));
    archive_write_free(a);
  }
  free(buf);
  for (int k = 0; k < files.n; k++)
    free(files.v[k]);
  free(files.v);
  if (st == RE_OK) /* libarchive closed the file: its data to disk before the rename */
    st = re_fsync_path(tmp);
  if (st == RE_OK && rename(tmp, tarpath) != 0)
    st = re_err(RE_EIO, "%s: %s", tarpath, strerror(errno));
  if (st != RE_OK)
    unlink(tmp);
  else
    st = re_fsync_parent(tarpath);
  return st;
}

/* The files of a model folder: regular files directly in dir (symbolic links followed,
 * as a Hugging Face cache snapshot is links into its blobs; hidden files skipped),
 * sorted by name. */
static re_status folder_files(const char *dir, names *out) {
  DIR *d = opendir(dir);
  if (!d)
    return re_err(RE_EIO, "%s: %s", dir, strerror(errno));
  re_status st = RE_OK;
  struct dirent *e;
  while (st == RE_OK && (e = readdir(d))) {
    char full[8192];
    struct stat sb;
    if (e->d_name[0] == '.')
      continue;
    st = re_path_join(full, sizeof full, "%s/%s", dir, e->d_name);
    if (st != RE_OK || stat(full, &sb) != 0 || !S_ISREG(sb.st_mode))
      continue;
    st = re_realloc(&out->v, out->n + 1, sizeof(char *));
    if (st == RE_OK)
      st = re_strdup(e->d_name, &out->v[out->n]);
    if (st == RE_OK)
      out->n++;
  }
  closedir(d);
  qsort(out->v, (size_t)out->n, sizeof(char *), cmp_str);
  return st;
}

static void names_free(names *x) {
  for (int k = 0; k < x->n; k++)
    free(x->v[k]);
  free(x->v);
  x->v = NULL;
  x->n = 0;
}

re_status out_checksum(const char *path, uint64_t *sum, int64_t *bytes) {
  struct stat sb;
  if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return re_fnv1a64_file(RE_FNV1A64_INIT, path, sum, bytes);
  names files = {0};
  re_status st = folder_files(path, &files);
  uint64_t h = RE_FNV1A64_INIT;
  int64_t total = 0;
  for (int k = 0; k < files.n && st == RE_OK; k++) {
    char full[8192];
    int64_t b = 0;
    h = re_fnv1a64(h, files.v[k], strlen(files.v[k]) + 1);
    st = re_path_join(full, sizeof full, "%s/%s", path, files.v[k]);
    if (st == RE_OK)
      st = re_fnv1a64_file(h, full, &h, &b);
    total += b;
  }
  names_free(&files);
  *sum = h;
  if (bytes)
    *bytes = total;
  return st;
}

static uint64_t meta_one(uint64_t h, const char *path) {
  struct stat sb;
  h = re_fnv1a64(h, path, strlen(path) + 1);
  if (stat(path, &sb) == 0) {
    int64_t v[3] = {(int64_t)sb.st_size, (int64_t)sb.st_mtim.tv_sec, (int64_t)sb.st_mtim.tv_nsec};
    h = re_fnv1a64(h, v, sizeof v);
  }
  return h;
}

uint64_t out_meta_hash(uint64_t h, const char *path) {
  struct stat sb;
  if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return meta_one(h, path);
  names files = {0};
  if (folder_files(path, &files) != RE_OK)
    re_err_clear();
  h = re_fnv1a64(h, path, strlen(path) + 1);
  for (int k = 0; k < files.n; k++) {
    char full[8192];
    if (re_path_join(full, sizeof full, "%s/%s", path, files.v[k]) == RE_OK)
      h = meta_one(h, full);
    else
      re_err_clear();
  }
  names_free(&files);
  return h;
}
