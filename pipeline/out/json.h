/* JSON output helpers of the program (manifests, --json answers). */
#ifndef REPEVAL_OUT_JSON_H
#define REPEVAL_OUT_JSON_H

#include <stdio.h>

/* Print a double as JSON (null for NaN/Inf). */
void re_json_number(FILE *f, double v);
/* Print a JSON string literal with escapes. */
void re_json_string(FILE *f, const char *s);

#endif
