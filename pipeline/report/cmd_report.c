/* repeval report RESULTS_DIR: write report.html (figures by matplotlib, embedded). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"

#ifndef REPEVAL_REPORT_INSTALLED
#define REPEVAL_REPORT_INSTALLED ""
#endif
#ifndef REPEVAL_REPORT_BUILDTREE
#define REPEVAL_REPORT_BUILDTREE ""
#endif

static const re_opts_cmd CMD = {
    "report", "RESULTS_DIR [--out FILE]",
    "Write RESULTS_DIR/report.html for the results of `repeval run`: layer x layer CKA\n"
    "between runs, checkpoint x checkpoint CKA per layer and the full tap matrix, CKA\n"
    "with the last step, probe accuracy and effective rank over training, RBF against\n"
    "linear CKA, a CCA table, the manifest (inputs, versions, timings) and every\n"
    "warning. Shows what the folder holds. Self-contained: images embedded, no\n"
    "network access when viewed. Labels like seed1/epoch_03 are read as run/step.\n",
    "Needs Python 3 with NumPy and matplotlib (scripts/install-deps demo).\n"
    "Exit codes: 0 written, 1 not a results folder or a part failed to draw (the page\n"
    "is still written and says which), 2 usage.\n"
    "Environment: REPEVAL_PYTHON (default /usr/bin/python3), REPEVAL_REPORT_SCRIPT.\n"};

static int is_file(const char *p) {
  struct stat sb;
  return p && *p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

int re_cmd_report(int argc, char **argv) {
  char *dir = NULL;
  const char *out = NULL;
  const re_opt opts[] = {
      RE_OPT_STRING("out", &out, "FILE", "write the page to FILE instead"),
      RE_OPT_END,
  };
  const re_opts_pos pos = {.min = 1, .max = 1, .v = &dir, .too_few = "give a results folder",
                           .too_many = "give one results folder"};
  int rc = re_opts_parse(&CMD, opts, argc, argv, &pos);
  if (rc != RE_OPTS_RUN)
    return rc;
  struct stat sb;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    fprintf(stderr, "repeval: error: %s: not a folder (give the output folder of repeval run)\n", dir);
    return RE_EXIT_ERROR;
  }
  const char *script = getenv("REPEVAL_REPORT_SCRIPT");
  if (!is_file(script))
    script = is_file(REPEVAL_REPORT_INSTALLED) ? REPEVAL_REPORT_INSTALLED : REPEVAL_REPORT_BUILDTREE;
  if (!is_file(script)) {
    fprintf(stderr, "repeval: error: the report script is not installed (set REPEVAL_REPORT_SCRIPT)\n");
    return RE_EXIT_ERROR;
  }
  const char *python = getenv("REPEVAL_PYTHON");
  if (!python || !*python)
    python = "/usr/bin/python3";
  char *args[6] = {(char *)python, (char *)script, (char *)dir, NULL, NULL, NULL};
  if (out) {
    args[3] = "--out";
    args[4] = (char *)out;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "repeval: error: cannot start %s\n", python);
    return RE_EXIT_ERROR;
  }
  if (pid == 0) {
    execv(python, args);
    fprintf(stderr, "repeval: error: cannot run %s (install python3, python3-numpy and python3-matplotlib)\n",
            python);
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) {
    fprintf(stderr, "repeval: error: lost the report process\n");
    return RE_EXIT_ERROR;
  }
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "repeval: error: the report script was stopped by signal %d\n", WTERMSIG(status));
    return RE_EXIT_ERROR;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? RE_EXIT_OK : RE_EXIT_ERROR;
}
