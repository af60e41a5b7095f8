/* repeval status OUT: what a run (or a Slurm job) writing the output folder OUT has
 * done, read only from OUT, OUT.state, OUT.parts and OUT.slurm: complete results
 * and their manifest, the last snapshot of an interrupted run (batches done of
 * total, resume count), finished array parts, and the last progress line and
 * start count of the newest Slurm log. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "out/path.h"

static const re_opts_cmd CMD = {
    "status", "OUTPUT_DIR",
    "Show what the run writing OUTPUT_DIR has done, from the files alone:\n"
    "complete results (manifest), an interrupted or running job's last snapshot\n"
    "(OUTPUT_DIR.state: dataset, batches done of total, resumes), array parts\n"
    "(OUTPUT_DIR.parts) and the newest Slurm log (OUTPUT_DIR.slurm: starts, last\n"
    "progress line). Exit code 0 when the results are complete, 1 otherwise.\n",
    NULL};

static char *slurp(const char *path, long max) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = malloc((size_t)max + 1);
  size_t n = buf ? fread(buf, 1, (size_t)max, f) : 0;
  fclose(f);
  if (buf)
    buf[n] = '\0';
  return buf;
}

/* The text of a JSON string or number field (first match), into out. */
static int field(const char *json, const char *key, char *out, size_t cap) {
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\": ", key);
  const char *p = json ? strstr(json, pat) : NULL;
  if (!p)
    return 0;
  p += strlen(pat);
  size_t n = 0;
  if (*p == '"') {
    p++;
    while (*p && *p != '"' && n + 1 < cap)
      out[n++] = *p++;
  } else {
    while (*p && *p != ',' && *p != '}' && *p != '\n' && n + 1 < cap)
      out[n++] = *p++;
  }
  out[n] = '\0';
  return 1;
}

static int is_dir(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static void show_manifest(const char *out) {
  char path[4200], v[256];
  if (re_path_join(path, sizeof path, "%s/manifest.json", out) != RE_OK)
    return;
  char *m = slurp(path, 1 << 20);
  if (!m)
    return;
  printf("results  complete in %s\n", out);
  if (field(m, "name", v, sizeof v))
    printf("  job        %s\n", v);
  if (field(m, "mode", v, sizeof v))
    printf("  mode       %s%s\n", v, strstr(m, "\"resumed\": true") ? " (resumed)" : "");
  if (field(m, "ranks", v, sizeof v))
    printf("  ranks      %s\n", v);
  if (field(m, "samples", v, sizeof v))
    printf("  samples    %s\n", v);
  if (field(m, "total", v, sizeof v))
    printf("  time       %s s\n", v);
  if (field(m, "undefined_values", v, sizeof v))
    printf("  undefined  %s values\n", v);
  const char *w = strstr(m, "\"warnings\": [");
  if (w) {
    w += 13;
    int n = 0;
    for (const char *q = w; *q && *q != ']'; q++)
      n += *q == '"';
    printf("  warnings   %d\n", n / 2);
  }
  free(m);
}

static int show_state(const char *out) {
  char dir[4200], path[4400], v[256];
  if (re_path_join(dir, sizeof dir, "%s.state", out) != RE_OK || !is_dir(dir))
    return 0;
  if (re_path_join(path, sizeof path, "%s/progress.json", dir) != RE_OK)
    return 0;
  char *p = slurp(path, 1 << 16);
  printf("state    %s (an unfinished run: the same command resumes it)\n", dir);
  if (p) {
    char done[64] = "?", total[64] = "?", ev[64] = "?", when[64] = "?", res[32] = "0", ranks[32] = "?";
    field(p, "dataset", v, sizeof v);
    field(p, "batches_done", done, sizeof done);
    field(p, "batches_total", total, sizeof total);
    field(p, "event", ev, sizeof ev);
    field(p, "time", when, sizeof when);
    field(p, "resumes", res, sizeof res);
    field(p, "ranks", ranks, sizeof ranks);
    long long d = atoll(done), t = atoll(total);
    if (d >= 0 && t > 0)
      printf("  dataset    %s: %lld of %lld batches (%.0f%%) at the last snapshot\n", v, d, t, 100.0 * (double)d / (double)t);
    else
      printf("  dataset    %s\n", v);
    printf("  last event %s at %s, %s ranks\n", ev, when, ranks);
    printf("  resumes    %s\n", res);
    free(p);
  }
  DIR *dd = opendir(dir);
  int snaps = 0, reduced = 0;
  struct dirent *e;
  while (dd && (e = readdir(dd))) {
    snaps += strstr(e->d_name, ".rank") != NULL;
    reduced += strstr(e->d_name, ".reduced.state") != NULL;
  }
  if (dd)
    closedir(dd);
  printf("  files      %d finished dataset pass%s, %d rank snapshot%s\n", reduced, reduced == 1 ? "" : "es", snaps,
         snaps == 1 ? "" : "s");
  return 1;
}

static int show_parts(const char *out) {
  char dir[4200];
  if (re_path_join(dir, sizeof dir, "%s.parts", out) != RE_OK || !is_dir(dir))
    return 0;
  DIR *d = opendir(dir);
  int done = 0, running = 0, n = 0;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    int i, k;
    char tail[64];
    if (sscanf(e->d_name, "part-%d-of-%d%63s", &i, &k, tail) == 3 && !strcmp(tail, ".state"))
      running++;
    else if (sscanf(e->d_name, "part-%d-of-%d", &i, &k) == 2)
      done++, n = k;
  }
  if (d)
    closedir(d);
  printf("parts    %s: %d of %d finished, %d unfinished (repeval merge combines them)\n", dir, done, n, running);
  return 1;
}

static void show_slurm(const char *out) {
  char dir[4200];
  if (re_path_join(dir, sizeof dir, "%s.slurm", out) != RE_OK)
    return;
  DIR *d = opendir(dir);
  if (!d)
    return;
  char best[4600] = "";
  time_t newest = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "slurm-", 6) || !strstr(e->d_name, ".out"))
      continue;
    char p[4600];
    struct stat sb;
    if (re_path_join(p, sizeof p, "%s/%s", dir, e->d_name) == RE_OK && stat(p, &sb) == 0 && sb.st_mtime >= newest) {
      newest = sb.st_mtime;
      memcpy(best, p, sizeof best);
    }
  }
  closedir(d);
  if (!best[0])
    return;
  char *log = slurp(best, 1 << 24);
  if (!log)
    return;
  int starts = 0;
  char last[1024] = "", end[1024] = "";
  for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
    if (strstr(line, "repeval.sbatch: job ") && strstr(line, " start "))
      starts++;
    if (!strncmp(line, "repeval: ", 9) && strstr(line, "/"))
      snprintf(last, sizeof last, "%s", line);
    if (!strncmp(line, "repeval.sbatch: ", 16))
      snprintf(end, sizeof end, "%s", line);
  }
  printf("slurm    %s\n", best);
  printf("  starts     %d (%d requeue%s)\n", starts, starts > 0 ? starts - 1 : 0, starts == 2 ? "" : "s");
  if (last[0])
    printf("  progress   %s\n", last);
  if (end[0])
    printf("  script     %s\n", end);
  free(log);
}

int re_cmd_status(int argc, char **argv) {
  char *out = NULL;
  const re_opt opts[] = {RE_OPT_END};
  const re_opts_pos pos = {.min = 1, .max = 1, .v = &out, .too_few = "give the output folder of a job",
                           .too_many = "give one output folder"};
  int rc = re_opts_parse(&CMD, opts, argc, argv, &pos);
  if (rc != RE_OPTS_RUN)
    return rc;
  /* every path below is o plus a short suffix, and fits its buffer when o does */
  char o[4096], man[4200];
  re_status st = re_path_join(o, sizeof o, "%s", out);
  size_t n = strlen(o);
  while (n > 1 && o[n - 1] == '/')
    o[--n] = '\0';
  if (st == RE_OK)
    st = re_path_join(man, sizeof man, "%s/manifest.json", o);
  if (st != RE_OK)
    return re_cli_fail(st);
  struct stat sb;
  int complete = stat(man, &sb) == 0;
  if (complete)
    show_manifest(o);
  int any = complete;
  any |= show_state(o);
  any |= show_parts(o);
  show_slurm(o);
  if (!any)
    printf("nothing   no results, state or parts for %s yet\n", o);
  return complete ? RE_EXIT_OK : RE_EXIT_ERROR;
}
