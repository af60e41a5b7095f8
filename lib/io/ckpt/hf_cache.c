/* The Hugging Face hub cache, offline (see hf_cache.h), and lists of checkpoint
 * folders in natural order. Nothing here writes: refs are read, links resolved and
 * checked, folders listed. */
#define _XOPEN_SOURCE 700 /* realpath (XSI) */
#include "hf_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HF_MAX_DEPTH 8        /* folder nesting under refs/ and inside a snapshot */
#define HF_MAX_ENTRIES 1000000 /* branches or subfolders in one list */

int re_natural_cmp(const char *a, const char *b) {
  const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
  while (*x && *y) {
    if (*x >= '0' && *x <= '9' && *y >= '0' && *y <= '9') {
      while (*x == '0')
        x++;
      while (*y == '0')
        y++;
      size_t nx = 0, ny = 0;
      while (x[nx] >= '0' && x[nx] <= '9')
        nx++;
      while (y[ny] >= '0' && y[ny] <= '9')
        ny++;
      if (nx != ny) /* without leading zeros, the longer run is the larger number */
        return nx < ny ? -1 : 1;
      int d = memcmp(x, y, nx);
      if (d)
        return d;
      x += nx;
      y += ny;
      continue;
    }
    if (*x != *y)
      return *x < *y ? -1 : 1;
    x++;
    y++;
  }
  if (*x || *y)
    return *x ? 1 : -1;
  return strcmp(a, b); /* "step01" and "step1": a total order all the same */
}

static int is_dir(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static re_status join(const char *a, const char *b, char **out) {
  size_t n = strlen(a) + strlen(b) + 2;
  RE_TRY(re_malloc((int64_t)n, 1, out));
  snprintf(*out, n, "%s/%s", a, b);
  return RE_OK;
}

int re_hf_cache_is_repo(const char *dir) {
  char *refs = NULL, *snaps = NULL;
  int yes = join(dir, "refs", &refs) == RE_OK && join(dir, "snapshots", &snaps) == RE_OK && is_dir(refs) &&
            is_dir(snaps);
  free(refs);
  free(snaps);
  return yes;
}

static re_status real_path(const char *path, const char *what, char **out) {
  *out = realpath(path, NULL);
  if (!*out) {
    if (errno == ENOMEM)
      return re_err(RE_ENOMEM, "%s: out of memory", path);
    return re_err(errno == ENOENT ? RE_EFORMAT : RE_EIO, "%s: %s%s", path, what,
                  errno == ENOENT ? "leads to a missing file (a link into blobs/ whose blob is gone?)"
                                  : strerror(errno));
  }
  return RE_OK;
}

re_status re_hf_cache_check_within(const char *root, const char *path, const char *what) {
  char *real = NULL;
  RE_TRY(real_path(path, "", &real));
  size_t n = strlen(root);
  int inside = !strncmp(real, root, n) && real[n] == '/';
  re_status st = RE_OK;
  if (!inside)
    st = re_err(RE_EFORMAT, "%s: %s leads outside the cache repo folder %s (to %s)", path, what, root, real);
  free(real);
  return st;
}

re_status re_hf_cache_root_of(const char *folder, char **root) {
  char *real = NULL, *up = NULL;
  *root = NULL;
  RE_TRY(real_path(folder, "", &real));
  char *slash = strrchr(real, '/');
  re_status st = RE_OK;
  if (slash && slash != real) {
    *slash = '\0'; /* real: the parent */
    char *s2 = strrchr(real, '/');
    if (s2 && !strcmp(s2 + 1, "snapshots")) {
      *s2 = '\0'; /* real: the grandparent */
      const char *parent = *real ? real : "/";
      char *blobs = NULL, *refs = NULL;
      st = join(parent, "blobs", &blobs);
      if (st == RE_OK)
        st = join(parent, "refs", &refs);
      if (st == RE_OK && (is_dir(blobs) || is_dir(refs)))
        st = re_strdup(parent, &up);
      free(blobs);
      free(refs);
    }
  }
  free(real);
  *root = up;
  return st;
}

/* Every symbolic link under `dir` (a snapshot) must resolve inside `root`. */
static re_status check_links(const char *root, const char *dir, const char *refs_file, int depth) {
  if (depth > HF_MAX_DEPTH)
    return re_err(RE_EFORMAT, "%s: folders nested deeper than %d levels", dir, HF_MAX_DEPTH);
  DIR *d = opendir(dir);
  if (!d)
    return re_err(RE_EIO, "%s: cannot list: %s", dir, strerror(errno));
  re_status st = RE_OK;
  struct dirent *e;
  while (st == RE_OK && (e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char *p = NULL;
    struct stat sb;
    st = join(dir, e->d_name, &p);
    if (st != RE_OK)
      break;
    if (lstat(p, &sb) != 0)
      st = re_err(RE_EIO, "%s: %s", p, strerror(errno));
    else if (S_ISLNK(sb.st_mode))
      st = re_hf_cache_check_within(root, p, "the link");
    else if (S_ISDIR(sb.st_mode))
      st = check_links(root, p, refs_file, depth + 1);
    free(p);
  }
  closedir(d);
  if (st != RE_OK)
    re_err_context(st, "snapshot of %s: ", refs_file);
  return st;
}

static int is_commit(const char *s, size_t n) {
  if (n != 40)
    return 0;
  for (size_t k = 0; k < n; k++)
    if (!((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f')))
      return 0;
  return 1;
}

/* The commit in refs/<branch>: 40 lowercase hex digits, optionally a final newline. */
static re_status read_ref(const char *refs_file, char commit[41]) {
  int fd = open(refs_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ELOOP)
      return re_err(RE_EFORMAT, "%s: a symbolic link; a branch must be a file holding a commit", refs_file);
    return re_err(errno == ENOENT ? RE_EINVAL : RE_EIO, "%s: cannot open: %s", refs_file, strerror(errno));
  }
  struct stat sb;
  char buf[64];
  ssize_t n = -1;
  if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
    n = read(fd, buf, sizeof buf);
  close(fd);
  if (n < 0)
    return re_err(RE_EFORMAT, "%s: not a readable file", refs_file);
  size_t len = (size_t)n;
  if (len > 0 && buf[len - 1] == '\n')
    len--;
  if (!is_commit(buf, len)) {
    char shown[64];
    size_t m = (size_t)n < 48 ? (size_t)n : 48;
    for (size_t k = 0; k < m; k++)
      shown[k] = buf[k] >= 32 && buf[k] < 127 ? buf[k] : '?';
    shown[m] = '\0';
    return re_err(RE_EFORMAT, "%s: expected a commit hash of 40 lowercase hex digits, found '%s'%s", refs_file, shown,
                  (size_t)n > m ? "..." : "");
  }
  memcpy(commit, buf, 40);
  commit[40] = '\0';
  return RE_OK;
}

re_status re_hf_cache_resolve(const char *repo, const char *branch, char **snapshot, char **commit_out) {
  re_status st = RE_OK;
  char *root = NULL, *refs_dir = NULL, *refs_file = NULL, *snaps = NULL, *snap = NULL;
  char commit[41];
  *snapshot = NULL;
  if (commit_out)
    *commit_out = NULL;
  RE_CHECK(real_path(repo, "", &root));
  RE_CHECK(join(repo, "refs", &refs_dir));
  RE_CHECK(join(refs_dir, branch, &refs_file));
  RE_CHECK(read_ref(refs_file, commit));
  RE_CHECK(join(repo, "snapshots", &snaps));
  RE_CHECK(join(snaps, commit, &snap));
  struct stat sb;
  if (lstat(snap, &sb) != 0) {
    st = re_err(RE_EFORMAT, "%s: branch '%s' names commit %s, but its snapshot folder %s is missing", refs_file,
                branch, commit, snap);
    goto done;
  }
  if (!S_ISDIR(sb.st_mode)) {
    st = re_err(RE_EFORMAT, "%s: branch '%s' names commit %s, but %s is %s, not a folder of the repo", refs_file,
                branch, commit, snap, S_ISLNK(sb.st_mode) ? "a symbolic link" : "a file");
    goto done;
  }
  RE_CHECK(check_links(root, snap, refs_file, 0));
  if (commit_out)
    RE_CHECK(re_strdup(commit, commit_out));
  *snapshot = snap;
  snap = NULL;
done:
  free(root);
  free(refs_dir);
  free(refs_file);
  free(snaps);
  free(snap);
  return st;
}

/* ---- lists ------------------------------------------------------------- */

typedef struct names {
  char **v;
  int64_t n;
} names;

static void names_free(names *ns) {
  for (int64_t k = 0; k < ns->n; k++)
    free(ns->v[k]);
  free(ns->v);
  ns->v = NULL;
  ns->n = 0;
}

static re_status names_add(names *ns, const char *s, const char *where) {
  if (ns->n >= HF_MAX_ENTRIES)
    return re_err(RE_EFORMAT, "%s: more than %d entries", where, HF_MAX_ENTRIES);
  RE_TRY(re_realloc(&ns->v, ns->n + 1, sizeof *ns->v));
  RE_TRY(re_strdup(s, &ns->v[ns->n]));
  ns->n++;
  return RE_OK;
}

static int cmp_natural(const void *a, const void *b) {
  return re_natural_cmp(*(const char *const *)a, *(const char *const *)b);
}

/* Branch names under refs/ ("main", "step1000", "pr/1"): the files, recursively. */
static re_status list_refs(const char *dir, const char *prefix, int depth, names *out) {
  if (depth > HF_MAX_DEPTH)
    return re_err(RE_EFORMAT, "%s: folders nested deeper than %d levels", dir, HF_MAX_DEPTH);
  DIR *d = opendir(dir);
  if (!d)
    return re_err(RE_EIO, "%s: cannot list: %s", dir, strerror(errno));
  re_status st = RE_OK;
  struct dirent *e;
  while (st == RE_OK && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char *p = NULL, *name = NULL;
    struct stat sb;
    st = join(dir, e->d_name, &p);
    if (st == RE_OK)
      st = *prefix ? join(prefix, e->d_name, &name) : re_strdup(e->d_name, &name);
    if (st == RE_OK && lstat(p, &sb) == 0) {
      if (S_ISDIR(sb.st_mode))
        st = list_refs(p, name, depth + 1, out);
      else /* files and anything else: read_ref says what is wrong with it */
        st = names_add(out, name, dir);
    }
    free(p);
    free(name);
  }
  closedir(d);
  return st;
}

/* "a, b, c" of the first names, for messages. */
static void summarize(const names *ns, char *buf, size_t cap) {
  size_t at = 0;
  buf[0] = '\0';
  for (int64_t k = 0; k < ns->n && at + 16 < cap; k++) {
    int w = snprintf(buf + at, cap - at, "%s%s", k ? ", " : "", ns->v[k]);
    if (w < 0 || (size_t)w >= cap - at) {
      snprintf(buf + cap - 4, 4, "...");
      return;
    }
    at += (size_t)w;
  }
  if (!ns->n)
    snprintf(buf, cap, "none");
}

static re_status list_new(int64_t n, re_ckpt_list **out) {
  re_ckpt_list *l = NULL;
  RE_TRY(re_calloc(1, sizeof *l, &l));
  if (re_calloc(n + 1, sizeof *l->entries, &l->entries) != RE_OK) {
    free(l);
    return RE_ENOMEM;
  }
  *out = l;
  return RE_OK;
}

re_status re_hf_cache_list(const char *repo, const char *pattern, re_ckpt_list **out) {
  re_status st = RE_OK;
  char *refs = NULL;
  names all = {0}, hits = {0};
  re_ckpt_list *l = NULL;
  char msg[512];
  *out = NULL;
  if (!pattern)
    pattern = "*";
  if (!re_hf_cache_is_repo(repo))
    return re_err(RE_EINVAL, "%s: not a Hugging Face cache repo folder (models--<org>--<name> with refs/ and "
                  "snapshots/)", repo);
  RE_CHECK(join(repo, "refs", &refs));
  RE_CHECK(list_refs(refs, "", 0, &all));
  qsort(all.v, (size_t)all.n, sizeof *all.v, cmp_natural);
  for (int64_t k = 0; k < all.n; k++)
    if (fnmatch(pattern, all.v[k], FNM_PATHNAME) == 0)
      RE_CHECK(names_add(&hits, all.v[k], refs));
  if (!hits.n) {
    summarize(&all, msg, sizeof msg);
    st = re_err(RE_EINVAL, "%s: no branch matches '%s' (branches: %s)", refs, pattern, msg);
    goto done;
  }
  RE_CHECK(list_new(hits.n, &l));
  for (int64_t k = 0; k < hits.n; k++) {
    re_ckpt_entry *e = &l->entries[k];
    RE_CHECK(re_strdup(hits.v[k], &e->name));
    l->count++;
    RE_CHECK(re_hf_cache_resolve(repo, hits.v[k], &e->path, &e->revision));
  }
  *out = l;
  l = NULL;
done:
  re_ckpt_list_free(&l);
  names_free(&all);
  names_free(&hits);
  free(refs);
  return st;
}

re_status re_ckpt_dir_list(const char *dir, const char *pattern, re_ckpt_list **out) {
  re_status st = RE_OK;
  names hits = {0};
  re_ckpt_list *l = NULL;
  *out = NULL;
  if (!pattern)
    pattern = "*";
  DIR *d = opendir(dir);
  if (!d)
    return re_err(errno == ENOENT || errno == ENOTDIR ? RE_EINVAL : RE_EIO, "%s: cannot list: %s", dir,
                  strerror(errno));
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || fnmatch(pattern, e->d_name, FNM_PERIOD) != 0)
      continue;
    char *p = NULL;
    st = join(dir, e->d_name, &p);
    if (st == RE_OK && is_dir(p))
      st = names_add(&hits, e->d_name, dir);
    free(p);
    if (st != RE_OK)
      break;
  }
  closedir(d);
  if (st != RE_OK)
    goto done;
  if (!hits.n) {
    st = re_err(RE_EINVAL, "%s: no folder matches '%s'", dir, pattern);
    goto done;
  }
  qsort(hits.v, (size_t)hits.n, sizeof *hits.v, cmp_natural);
  RE_CHECK(list_new(hits.n, &l));
  for (int64_t k = 0; k < hits.n; k++) {
    re_ckpt_entry *en = &l->entries[k];
    RE_CHECK(re_strdup(hits.v[k], &en->name));
    l->count++;
    RE_CHECK(join(dir, hits.v[k], &en->path));
  }
  *out = l;
  l = NULL;
done:
  re_ckpt_list_free(&l);
  names_free(&hits);
  return st;
}

void re_ckpt_list_free(re_ckpt_list **pl) {
  re_ckpt_list *l = *pl;
  if (!l)
    return;
  for (int64_t k = 0; k < l->count; k++) {
    free(l->entries[k].name);
    free(l->entries[k].revision);
    free(l->entries[k].path);
  }
  free(l->entries);
  free(l);
  *pl = NULL;
}
