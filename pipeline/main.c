/* repeval: evaluate neural-network representations (CKA, CCA family, probes). */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"

/* When a command runs under MPI: main calls MPI_Init before it and MPI_Finalize after. */
typedef enum mpi_need {
  WITHOUT_MPI,
  WITH_MPI,
  WITH_MPI_IF_SHARDED /* with --sharded */
} mpi_need;

typedef struct command {
  const char *name;
  int (*fn)(int argc, char **argv); /* argv[0] is the command's name */
  mpi_need mpi;
  const char *summary;
} command;

static int cmd_version(int argc, char **argv) {
  printf("repeval %s\n", REPEVAL_VERSION);
  return RE_EXIT_OK;
}

static const command commands[] = {
    {"run", re_cmd_run, WITH_MPI, "run an evaluation job (job.yaml) under mpiexec / srun"},
    {"merge", re_cmd_merge, WITH_MPI, "combine the parts of an array job (run --part I/N) into results"},
    {"finalize", re_cmd_finalize, WITH_MPI, "recompute metrics from a results folder's saved statistics"},
    {"report", re_cmd_report, WITHOUT_MPI, "write report.html for a results folder"},
    {"status", re_cmd_status, WITHOUT_MPI, "what a run or Slurm job writing a results folder has done"},
    {"submit", re_cmd_submit, WITHOUT_MPI, "validate a job and submit it to Slurm (sbatch + srun), or --dry-run"},
    {"cka", re_cmd_cka, WITH_MPI_IF_SHARDED,
     "CKA between two embedding matrices (.npy / .npz:array), optionally under MPI"},
    {"cka-matrix", re_cmd_cka_matrix, WITH_MPI_IF_SHARDED, "CKA between every pair of many embeddings (minibatch or exact)"},
    {"cca", re_cmd_cca, WITH_MPI_IF_SHARDED, "CCA, SVCCA, PWCCA, Procrustes, regression R^2 of two embeddings"},
    {"spectrum", re_cmd_spectrum, WITH_MPI_IF_SHARDED, "PCA spectrum, effective rank and collapse of one embedding"},
    {"knn", re_cmd_knn, WITHOUT_MPI, "mutual k-NN, CKNNA, cycle k-NN and Jaccard of exact k-NN graphs of embeddings"},
    {"rsa", re_cmd_rsa, WITHOUT_MPI, "representational similarity analysis: RDMs of embeddings and their comparison"},
    {"shape", re_cmd_shape, WITHOUT_MPI, "generalized shape metrics (partial whitening, permutation) of two embeddings"},
    {"probe", re_cmd_probe, WITHOUT_MPI, "logistic, ridge or k-NN probe of an embedding with labels (lambda sweep)"},
    {"embed", re_cmd_embed, WITHOUT_MPI, "run a checkpoint on inputs and save the outputs of chosen layers"},
    {"inspect", re_cmd_inspect, WITHOUT_MPI, "list the tensors of a checkpoint or array file"},
    {"tokenize", re_cmd_tokenize, WITHOUT_MPI, "text to token ids (or back) with a Hugging Face tokenizer.json"},
    {"version", cmd_version, WITHOUT_MPI, "print the version"},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f) {
  int w = 0;
  for (int k = 0; k < NCOMMANDS; k++)
    w = (int)strlen(commands[k].name) > w ? (int)strlen(commands[k].name) : w;
  fprintf(f, "usage: repeval <command> [options]\n\nCommands:\n");
  for (int k = 0; k < NCOMMANDS; k++)
    fprintf(f, "  %-*s  %s\n", w, commands[k].name, commands[k].summary);
  fprintf(f, "\n"
             "Run 'repeval <command> --help' for the options of a command.\n"
             "Environment: REPEVAL_LOG=error|warn|info|debug sets the log level.\n"
             "Exit codes: 0 ok, 1 error, 2 usage, 3 metric undefined for this input.\n");
}

/* Whether command c with these arguments runs under MPI. Help asked for first
 * (`repeval run --help`) needs no MPI. --sharded anywhere counts, even as the value of
 * another option: initialising MPI without using it is harmless, the reverse is not. */
static int wants_mpi(const command *c, int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
    return 0;
  return c->mpi == WITH_MPI || (c->mpi == WITH_MPI_IF_SHARDED && re_opts_given(argc, argv, "--sharded"));
}

int main(int argc, char **argv) {
  re_log_init_from_env();
  if (argc < 2) {
    usage(stderr);
    return RE_EXIT_USAGE;
  }
  const char *name = argv[1];
  if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
    usage(stdout);
    return RE_EXIT_OK;
  }
  if (!strcmp(name, "--version"))
    name = "version";
  for (int k = 0; k < NCOMMANDS; k++) {
    const command *c = &commands[k];
    if (strcmp(name, c->name))
      continue;
    int mpi = wants_mpi(c, argc - 1, argv + 1);
    if (mpi) {
      int rank = 0, size = 1;
      MPI_Init(NULL, NULL);
      MPI_Comm_rank(MPI_COMM_WORLD, &rank);
      MPI_Comm_size(MPI_COMM_WORLD, &size);
      if (size > 1)
        re_log_set_rank(rank);
    }
    int rc = c->fn(argc - 1, argv + 1);
    if (mpi)
      MPI_Finalize();
    return rc;
  }
  fprintf(stderr, "repeval: unknown command '%s'\n", name);
  usage(stderr);
  return RE_EXIT_USAGE;
}
