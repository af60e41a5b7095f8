/* The exit codes of the repeval program (documented in docs/cli.md), shared by the
 * commands and the engine, which returns them the same on every rank. */
#ifndef REPEVAL_EXIT_CODES_H
#define REPEVAL_EXIT_CODES_H

/* Exit codes of the repeval program (documented in docs/cli.md). */
enum {
  RE_EXIT_OK = 0,        /* success */
  RE_EXIT_ERROR = 1,     /* bad input, I/O or runtime error */
  RE_EXIT_USAGE = 2,     /* bad command line */
  RE_EXIT_UNDEFINED = 3, /* the requested metric is undefined for this input */
  RE_EXIT_INTERRUPTED = 75 /* stopped by a signal after saving state (EX_TEMPFAIL) */
};

#endif
