/* repeval: evaluate neural-network representations (CKA, CCA family, probes). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: repeval <command> [options]\n"
          "\n"
          "Commands:\n"
          "  run         run an evaluation job (job.yaml) under mpiexec / srun\n"
          "  merge       combine the parts of an array job (run --part I/N) into results\n"
          "  finalize    recompute metrics from a results folder's saved statistics\n"
          "  report      write report.html for a results folder\n"
          "  status      what a run or Slurm job writing a results folder has done\n"
          "  submit      validate a job and submit it to Slurm (sbatch + srun), or --dry-run\n"
          "  cka         CKA between two embedding matrices (.npy / .npz:array), optionally under MPI\n"
          "  cka-matrix  CKA between every pair of many embeddings (minibatch or exact)\n"
          "  cca         CCA, SVCCA, PWCCA, Procrustes, regression R^2 of two embeddings\n"
          "  spectrum    PCA spectrum, effective rank and collapse of one embedding\n"
          "  probe       logistic, ridge or k-NN probe of an embedding with labels (lambda sweep)\n"
          "  embed       run a checkpoint on inputs and save the outputs of chosen layers\n"
          "  inspect     list the tensors of a checkpoint or array file\n"
          "  tokenize    text to token ids (or back) with a Hugging Face tokenizer.json\n"
          "  version     print the version\n"
          "\n"
          "Run 'repeval <command> --help' for the options of a command.\n"
          "Environment: REPEVAL_LOG=error|warn|info|debug sets the log level.\n"
          "Exit codes: 0 ok, 1 error, 2 usage, 3 metric undefined for this input.\n");
}

int main(int argc, char **argv) {
  re_log_init_from_env();
  if (argc < 2) {
    usage(stderr);
    return RE_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    usage(stdout);
    return RE_EXIT_OK;
  }
  if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
    printf("repeval %s\n", REPEVAL_VERSION);
    return RE_EXIT_OK;
  }
  if (!strcmp(cmd, "run"))
    return re_cmd_run(argc - 1, argv + 1);
  if (!strcmp(cmd, "merge"))
    return re_cmd_merge(argc - 1, argv + 1);
  if (!strcmp(cmd, "finalize"))
    return re_cmd_finalize(argc - 1, argv + 1);
  if (!strcmp(cmd, "status"))
    return re_cmd_status(argc - 1, argv + 1);
  if (!strcmp(cmd, "report"))
    return re_cmd_report(argc - 1, argv + 1);
  if (!strcmp(cmd, "submit"))
    return re_cmd_submit(argc - 1, argv + 1);
  if (!strcmp(cmd, "cka"))
    return re_cmd_cka(argc - 1, argv + 1);
  if (!strcmp(cmd, "cka-matrix"))
    return re_cmd_cka_matrix(argc - 1, argv + 1);
  if (!strcmp(cmd, "cca"))
    return re_cmd_cca(argc - 1, argv + 1);
  if (!strcmp(cmd, "spectrum"))
    return re_cmd_spectrum(argc - 1, argv + 1);
  if (!strcmp(cmd, "probe"))
    return re_cmd_probe(argc - 1, argv + 1);
  if (!strcmp(cmd, "embed"))
    return re_cmd_embed(argc - 1, argv + 1);
  if (!strcmp(cmd, "inspect"))
    return re_cmd_inspect(argc - 1, argv + 1);
  if (!strcmp(cmd, "tokenize"))
    return re_cmd_tokenize(argc - 1, argv + 1);
  fprintf(stderr, "repeval: unknown command '%s'\n", cmd);
  usage(stderr);
  return RE_EXIT_USAGE;
}
