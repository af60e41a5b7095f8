/* Private: exp over arrays of doubles for the probes' softmax (vexp.c), with SLEEF's
 * 1-ulp AVX2 exp (vexp_avx2.c) when it is built in and the CPU has AVX2 and FMA, else
 * libm's exp value by value. */
#ifndef REPEVAL_STATS_VEXP_H
#define REPEVAL_STATS_VEXP_H

#include <stdint.h>

/* x[i] = exp(x[i]) for i < n (exp(-inf) = 0). Within 1 ulp of libm; the same bits on
 * every call of one process. */
void re_vexp(double *x, int64_t n);

/* The AVX2 loop (vexp_avx2.c); only called when re_vexp found the CPU able. */
void re_vexp_avx2(double *x, int64_t n);

#endif
