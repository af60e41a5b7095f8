/* repeval run, the report: metrics rows, warnings (rank 0's, those only one rank saw,
 * gathered, and those a task captured), tap tables. */
#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "out/path.h"
#include "out/output.h"
#include "run/run.h"

static void keep_warning(runner *r, const char *msg) {
  if (r->rep.nwarnings < RUN_MAX_WARNINGS)
    snprintf(r->rep.warnings[r->rep.nwarnings], sizeof r->rep.warnings[0], "%s", msg);
  r->rep.nwarnings++;
}

void run_warn(runner *r, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (r->rep.task_warn) {
    for (char *c = msg; *c; c++)
      if (*c == '\n')
        *c = ' ';
    fprintf(r->rep.task_warn, "%s\n", msg);
  } else if (r->comm.rank == 0) {
    re_log(RE_LOG_WARN, "%s", msg);
    keep_warning(r, msg);
  }
}

void run_warn_replay(runner *r, const char *lines, size_t len) {
  char msg[512];
  for (size_t at = 0; at < len;) {
    size_t end = at;
    while (end < len && lines[end] != '\n')
      end++;
    size_t n = end - at < sizeof msg - 1 ? end - at : sizeof msg - 1;
    memcpy(msg, lines + at, n);
    msg[n] = '\0';
    re_log(RE_LOG_WARN, "%s", msg);
    keep_warning(r, msg);
    at = end + 1;
  }
}

void run_warn_local(runner *r, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  int at = r->comm.size > 1 ? snprintf(msg, sizeof msg, "rank %d: ", r->comm.rank) : 0;
  vsnprintf(msg + at, sizeof msg - (size_t)at, fmt, ap);
  va_end(ap);
  re_log(RE_LOG_WARN, "%s", msg);
  if (r->comm.rank == 0)
    keep_warning(r, msg);
  else if (r->rep.nlocal < RUN_MAX_WARNINGS)
    snprintf(r->rep.warnings[r->rep.nlocal++], sizeof r->rep.warnings[0], "%s", msg);
}

void run_gather_warnings(runner *r) {
  if (r->comm.size < 2)
    return;
  /* rank k > 0 sends its first local warnings, one fixed-size record each, in rank order */
  const int rec = (int)sizeof r->rep.warnings[0];
  int mine = r->comm.rank == 0 ? 0 : r->rep.nlocal, *counts = NULL, *displs = NULL;
  char *all = NULL;
  if (r->comm.rank == 0) {
    counts = calloc((size_t)r->comm.size, sizeof *counts);
    displs = calloc((size_t)r->comm.size, sizeof *displs);
  }
  MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, r->comm.comm);
  int total = 0;
  if (r->comm.rank == 0 && counts && displs) {
    for (int k = 0; k < r->comm.size; k++) {
      displs[k] = total * rec;
      total += counts[k];
      counts[k] *= rec;
    }
    all = calloc((size_t)(total ? total : 1), (size_t)rec);
  }
  MPI_Gatherv(r->rep.warnings, mine * rec, MPI_CHAR, all, counts, displs, MPI_CHAR, 0, r->comm.comm);
  if (r->comm.rank == 0 && all)
    for (int w = 0; w < total; w++) {
      all[(size_t)w * (size_t)rec + (size_t)rec - 1] = '\0';
      keep_warning(r, all + (size_t)w * (size_t)rec);
    }
  free(all);
  free(counts);
  free(displs);
}

/* One metrics.csv row without its uncertainty columns and line end. b < 0 for per-tap metrics. */
void run_row_open(runner *r, const char *analysis, const char *metric, int a, int b, const char *dataset,
                  const char *param, double value, const char *why) {
  FILE *f = r->rep.metrics;
  out_csv_field(f, analysis);
  fputc(',', f);
  out_csv_field(f, metric);
  fputc(',', f);
  out_csv_field(f, run_tap_model(r, a));
  fputc(',', f);
  out_csv_field(f, run_tap_ckpt(r, a));
  fputc(',', f);
  out_csv_field(f, run_tap_layer(r, a));
  fputc(',', f);
  if (b >= 0) {
    out_csv_field(f, run_tap_model(r, b));
    fputc(',', f);
    out_csv_field(f, run_tap_ckpt(r, b));
    fputc(',', f);
    out_csv_field(f, run_tap_layer(r, b));
  } else {
    fputs(",,", f);
  }
  fputc(',', f);
  out_csv_field(f, dataset);
  fputc(',', f);
  out_csv_field(f, param);
  fputc(',', f);
  if (!why && isfinite(value)) {
    fprintf(f, "%.17g,ok", value);
  } else {
    char st[300];
    snprintf(st, sizeof st, "undefined: %s", why ? why : "not finite");
    fputc(',', f);
    out_csv_field(f, st);
    r->rep.nundefined++;
  }
}

void run_row(runner *r, const char *analysis, const char *metric, int a, int b, const char *dataset,
             const char *param, double value, const char *why) {
  run_row_open(r, analysis, metric, a, b, dataset, param, value, why);
  fputs(",,,,,,\n", r->rep.metrics); /* se, ci_low, ci_high, null_mean, null_q95, p_value: none */
}

re_status run_create_file(const runner *r, FILE **f, char *path, size_t cap, const char *fmt, ...) {
  char file[400];
  va_list ap;
  va_start(ap, fmt);
  re_status st = re_path_vjoin(file, sizeof file, fmt, ap);
  va_end(ap);
  *f = NULL;
  RE_TRY(st);
  RE_TRY(re_path_join(path, cap, "%s/%s", r->plan.partial, file));
  *f = fopen(path, "w");
  return *f ? RE_OK : re_err(RE_EIO, "%s: cannot write", path);
}

re_status run_close_file(FILE *f, const char *path) {
  int bad = ferror(f); /* a write that failed before the last flush */
  if (fclose(f) != 0 || bad)
    return re_err(RE_EIO, "%s: write failed: %s", path, strerror(errno ? errno : EIO));
  return RE_OK;
}

re_status run_write_taps_csv(const runner *r, const char *file, const int *taps, int P) {
  char path[4400];
  FILE *f;
  RE_TRY(run_create_file(r, &f, path, sizeof path, "%s", file));
  fprintf(f, "index,model,checkpoint,layer,mode,dim\n");
  for (int p = 0; p < P; p++) {
    int t = taps ? taps[p] : p;
    fprintf(f, "%d,", p);
    out_csv_field(f, run_tap_model(r, t));
    fputc(',', f);
    out_csv_field(f, run_tap_ckpt(r, t));
    fputc(',', f);
    out_csv_field(f, run_tap_layer(r, t));
    fprintf(f, ",%s,%lld\n", run_mode_name(r->plan.j->models[r->plan.taps[t].model].layers[r->plan.taps[t].layer].mode),
            (long long)r->plan.taps[t].dim);
  }
  return run_close_file(f, path);
}

