/* Minibatch HSIC accumulator (Nguyen, Raghu, Kornblith 2021): for every batch of
 * b samples, the Gram matrix of every tap (a layer of a checkpoint), then HSIC of
 * every requested pair of taps from two symmetric rank-k updates; sums over
 * batches and ranks. CKA = mean HSIC(p, q) / sqrt(mean HSIC(p, p) mean HSIC(q, q)).
 *
 * Per batch, with K~ the Gram with zeroed diagonal, stored as its strict upper
 * triangle g (b(b-1)/2 values) and its row sums r = K~ 1:
 *   tr(K~ L~) = 2 g_K . g_L          (all pairs: G G^T, one dsyrk)
 *   1^T K~ L~ 1 = r_K . r_L          (all pairs: R R^T, one dsyrk)
 * which with 1^T K~ 1 = sum(r_K) gives the unbiased HSIC_1 (Song et al. 2012,
 * eq. 5) of every pair; the biased estimator adds the diagonals back.
 *
 * Resampling (optional, re_hsic_set_resampling): replicate sums ride in the
 * state and merge by addition, so they reduce like the other sums. Batch k of
 * the data (the index given to re_hsic_begin_batch_at) adds its per-pair HSIC
 *   - times w_rk ~ Poisson(1) drawn from (seed, RE_STREAM_BOOTSTRAP + r, k) to
 *     bootstrap replicate r (a bootstrap over batches),
 *   - to jackknife group k mod G (the estimate without group g is computed from
 *     the totals minus the group's sums),
 *   - and, for permutation m, the HSIC of every pair (p, q), p < q, with the rows
 *     of q's batch permuted by the permutation drawn from
 *     (seed, RE_STREAM_PERMUTATION + m, k): the permutation null. */
#ifndef REPEVAL_HSIC_H
#define REPEVAL_HSIC_H

#include "repeval/cka.h"
#include "repeval/resample.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum re_kernel { RE_KERNEL_LINEAR = 0, RE_KERNEL_RBF = 1 } re_kernel;

typedef struct re_hsic_config {
  int ntaps;              /* P */
  re_kernel kernel;
  const double *sigma2;   /* P bandwidths sigma^2 for RBF (fixed before accumulation), else NULL */
  int64_t max_batch;      /* largest b that will be added (workspace is sized once) */
  int npairs;             /* 0: all pairs */
  const int32_t *pairs;   /* npairs x 2 tap indices, order within a pair irrelevant */
} re_hsic_config;

typedef struct re_hsic re_hsic;

/* Create an accumulator; all memory is allocated here (P x b(b-1)/2 doubles for the
 * stacked Grams, P x b for row sums, 2 x P x P for the sums). */
re_status re_hsic_create(const re_hsic_config *cfg, re_hsic **out);
/* Destroy (NULL allowed); sets *h to NULL. */
void re_hsic_destroy(re_hsic **h);

/* Keep replicates in the state (before the first batch; it changes the serialized
 * layout): rs's bootstrap, jackknife and permutation counts and seed; the replicates
 * follow the biased sums when `biased`, else the unbiased HSIC_1 sums. */
re_status re_hsic_set_resampling(re_hsic *h, const re_resampling *rs, int biased);

/* Start a batch of b samples (2 <= b <= max_batch; batches with b < 4 add only to
 * the biased sums and are counted in re_hsic_skipped()). */
re_status re_hsic_begin_batch(re_hsic *h, int64_t b);
/* The same for batch `index` of the data (0, 1, ...): replicate weights and
 * permutations are keyed by it (re_hsic_begin_batch uses the number of batches
 * begun so far). */
re_status re_hsic_begin_batch_at(re_hsic *h, int64_t b, int64_t index);
/* Give tap p's features for the current batch: X is b x d row-major, leading
 * dimension ld (float32). Features are centred per batch before the Gram (HSIC is
 * invariant to it; it saves precision when features have large offsets). */
re_status re_hsic_add_tap_f32(re_hsic *h, int p, const float *X, int64_t d, int64_t ld);
/* Same for float64 features. */
re_status re_hsic_add_tap_f64(re_hsic *h, int p, const double *X, int64_t d, int64_t ld);
/* Finish the batch: pair products for every requested pair; every tap must have been given. */
re_status re_hsic_end_batch(re_hsic *h);

/* Forget every accumulated batch (sums and counts to zero; bandwidths kept). */
void re_hsic_reset(re_hsic *h);

/* Batches accumulated into the unbiased sums. */
int64_t re_hsic_batches(const re_hsic *h);
/* Batches accumulated into the biased sums (includes batches with 2 <= b < 4). */
int64_t re_hsic_batches_biased(const re_hsic *h);
/* Number of taps. */
int re_hsic_ntaps(const re_hsic *h);
/* Is the pair (p, q) accumulated? */
int re_hsic_has_pair(const re_hsic *h, int p, int q);
/* Mean HSIC estimate of pair (p, q) over batches (unbiased HSIC_1 or biased). */
double re_hsic_mean(const re_hsic *h, int p, int q, int unbiased);
/* Minibatch CKA of taps p and q; undefined (with a reason) when a self-HSIC is not
 * positive or no batch was accumulated. */
re_status re_hsic_cka(const re_hsic *h, int p, int q, int unbiased, re_cka_result *out);

/* CKA(p, q) of every replicate of a kind into out (B, G or M values, *n of them):
 * bootstrap replicates, the estimates without each jackknife group, or the
 * permutation-null CKA (p != q: q's rows permuted); NAN where undefined (an empty
 * group, a replicate without batches, a self-HSIC that is not positive). */
re_status re_hsic_cka_replicates(const re_hsic *h, int p, int q, re_replicate_kind kind, double *out, int *n);
/* Uncertainty of CKA(p, q) with the replicates' estimator: se and interval at
 * `level` from the bootstrap (interval: normal or percentile) or the jackknife
 * (method), and the null summary when permutations were kept (p != q). */
re_status re_hsic_cka_uncertainty(const re_hsic *h, int p, int q, re_replicate_kind method,
                                  re_interval_kind interval, double level, re_uncertainty *out);

/* Serialized state length in doubles, and the usual serialize / merge / deserialize. */
int64_t re_hsic_serial_len(const re_hsic *h);
void re_hsic_serialize(const re_hsic *h, double *buf);
re_status re_hsic_merge_serial(re_hsic *h, const double *buf, int64_t len);
re_status re_hsic_deserialize(re_hsic *h, const double *buf, int64_t len);

/* RBF bandwidth for a layer from a sample: sigma^2 = T^2 * median of the n^2 squared
 * pairwise distances (as re_gram_rbf). X: n x d float32, leading dimension ld. */
re_status re_rbf_sigma2_f32(const float *X, int64_t n, int64_t d, int64_t ld, double threshold, double *sigma2);
/* The same for float64 samples. */
re_status re_rbf_sigma2_f64(const double *X, int64_t n, int64_t d, int64_t ld, double threshold, double *sigma2);

#ifdef __cplusplus
}
#endif
#endif
