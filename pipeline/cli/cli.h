/* Shared pieces of the repeval command-line program (not part of the library API). */
#ifndef REPEVAL_CLI_H
#define REPEVAL_CLI_H

#include <stdio.h>

#include "cli/opts.h"
#include "exit_codes.h"
#include "mpi/tree.h"
#include "out/json.h"
#include "repeval/hsic.h"
#include "repeval/moments.h"
#include "repeval/npy.h"


int re_cmd_cka(int argc, char **argv);
int re_cmd_cka_matrix(int argc, char **argv);
int re_cmd_inspect(int argc, char **argv);
int re_cmd_cca(int argc, char **argv);
int re_cmd_spectrum(int argc, char **argv);
int re_cmd_embed(int argc, char **argv);
int re_cmd_probe(int argc, char **argv);
int re_cmd_run(int argc, char **argv);
int re_cmd_merge(int argc, char **argv);
int re_cmd_finalize(int argc, char **argv);
int re_cmd_report(int argc, char **argv);
int re_cmd_status(int argc, char **argv);
int re_cmd_submit(int argc, char **argv);
int re_cmd_tokenize(int argc, char **argv);
int re_cmd_knn(int argc, char **argv);
int re_cmd_rsa(int argc, char **argv);
int re_cmd_shape(int argc, char **argv);

/* Accumulate co-moments of 1..8 embedding files (same rows) with every pair; with
 * `sharded` (MPI initialised) each rank reads its rows and the result is reduced to
 * rank 0 (collective). *n gets the sample count; scales (nfiles, may be NULL) the
 * power of two each file was multiplied by (re_cli_scale_of). */
re_status re_cli_moments(char *const *files, int nfiles, unsigned flags, int sharded, re_moments **out,
                         int64_t *n, double *scales);

/* A minibatch HSIC accumulator as the reduction tree sees it (co-moments: tree_moments_acc). */
tree_acc re_cli_hsic_acc(re_hsic *h);
/* The communicator of the standalone commands: MPI_COMM_WORLD with --sharded (MPI is
 * initialised), else MPI_COMM_NULL (one process, no MPI). */
MPI_Comm re_cli_comm(int sharded);

/* Print "repeval: error: <message>" for a failed status; returns RE_EXIT_ERROR. */
int re_cli_fail(re_status st);
/* Print "repeval: <what> undefined: <reason>" for a metric undefined for this input;
 * returns RE_EXIT_UNDEFINED. */
int re_cli_undefined(const char *what, const char *reason);


/* Read argv with the option table and two positional matrices X and Y (into xy[2]);
 * re_opts_parse's answer. */
int re_cli_parse_pair(const re_opts_cmd *cmd, const re_opt *opts, int argc, char **argv, char **xy);
/* Read argv with the option table and 2 to max embeddings (into files, *nfiles of them);
 * re_opts_parse's answer. */
int re_cli_parse_embeddings(const re_opts_cmd *cmd, const re_opt *opts, int argc, char **argv, char **files, int max,
                            int *nfiles);
/* This process's rank and the number of ranks: MPI_COMM_WORLD's with `sharded` (main has
 * initialised MPI), else 0 and 1. */
void re_cli_rank_size(int sharded, int *rank, int *size);
/* RE_OK and *n0 = n if file f holds n rows like the files before it (*n0 < 0 before the
 * first), else RE_ESHAPE naming both files and what they all must hold ("samples"). */
re_status re_cli_same_rows(char *const *files, int f, int64_t n, int64_t *n0, const char *what);

/* Open a matrix given as "file.npy" or "file.npz:array" (validated, memory-mapped for .npy). */
re_status re_cli_open_matrix(const char *spec, re_npy **out);

/* Scale-invariant metrics (CKA, the CCA family, R^2, effective ranks) see their inputs
 * multiplied by a power of two 2^-e that brings max |x| into [0.5, 1): exact, and
 * products of 1e150 or 1e-150 neither overflow nor underflow. The scale of rows
 * [r0, r1) of a; with `sharded` (collective) the largest |x| over every rank's rows.
 * 1 for an all-zero matrix; NaN/Inf are left for the reader to refuse. */
re_status re_cli_scale_of(const re_npy *a, int64_t r0, int64_t r1, int sharded, double *scale);
/* Read rows [r0, r0+nr) of a as doubles times `scale`, refusing NaN/Inf with file, row
 * and column. */
re_status re_cli_read_rows_finite(const re_npy *a, int64_t r0, int64_t nr, double scale, double *out);


#endif
