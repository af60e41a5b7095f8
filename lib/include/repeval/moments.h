/* Co-moment accumulator: streaming, mergeable first and second moments of
 * several layers' features and their cross-products, in float64.
 *
 * For layers l = 0..L-1 of widths d_l it keeps n, the means mu_l (d_l) and,
 * for every stored block (i, j) with i <= j, the centred co-moment
 *   C_ij = sum_s (x_i,s - mu_i)(x_j,s - mu_j)^T          (d_i x d_j, row-major).
 * Diagonal blocks (l, l) are always stored for every layer that appears in a
 * requested pair. With RE_MOMENTS_DEBIASED it also keeps, per block, the sums
 * needed for the unbiased HSIC estimator from features:
 *   sqq_ij = sum_s q_i,s q_j,s,  aq_ij = sum_s (x_i,s - mu_i) q_j,s  (d_i),
 *   aq_ji = sum_s (x_j,s - mu_j) q_i,s (d_j),   q_l,s = ||x_l,s - mu_l||^2.
 *
 * Batches are folded in with a Chan–Golub–LeVeque style update: the old state
 * is re-centred on the new mean (exact algebra, see moments.c), and the batch
 * is centred on the new mean before its GEMM, so large feature offsets do not
 * cancel catastrophically. Merging two accumulators re-centres both on the
 * pooled mean and adds; merge is what the MPI reduction applies.
 *
 * Contract shared by all accumulators: create / add_batch / merge /
 * serialize (to a flat double buffer) / deserialize / finalize (metrics from
 * the state) / destroy. */
#ifndef REPEVAL_MOMENTS_H
#define REPEVAL_MOMENTS_H

#include "repeval/core.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { RE_MOMENTS_DEBIASED = 1u << 0 };

typedef struct re_moments re_moments;

/* Number of doubles the state occupies for these layers and requested pairs
 * (before deduplication; diagonal blocks are added). Use it to refuse jobs that
 * do not fit: 8 * re_moments_state_len(...) bytes per copy. */
re_status re_moments_state_len(int nlayers, const int64_t *dims, int npairs, const int32_t *pairs,
                               unsigned flags, int64_t *len);

/* Create an accumulator. dims: nlayers widths; pairs: npairs x 2 layer indices
 * (order within a pair does not matter; duplicates are merged). */
re_status re_moments_create(int nlayers, const int64_t *dims, int npairs, const int32_t *pairs, unsigned flags,
                            re_moments **out);
/* Destroy (NULL allowed); sets *m to NULL. */
void re_moments_destroy(re_moments **m);
/* Reset to n = 0. */
void re_moments_reset(re_moments *m);

/* Add a batch of b samples: X[l] is b x dims[l], row-major, leading dimension
 * ld[l] (>= dims[l]); every layer of the accumulator must be given.
 * Non-finite values are refused with the layer, row and column in the message. */
re_status re_moments_add_batch(re_moments *m, int64_t b, const double *const *X, const int64_t *ld);

/* The same with a count per row: row r counts w[r] times (w: b whole numbers >= 0),
 * as in a bootstrap resample that holds it w[r] times; rows of count 0 are skipped. */
re_status re_moments_add_batch_weighted(re_moments *m, int64_t b, const double *const *X, const int64_t *ld,
                                        const double *w);
/* Use owner's batch workspace instead of m's own (accumulators that add batches one
 * after the other, e.g. bootstrap replicates); owner must outlive m. */
void re_moments_share_workspace(re_moments *m, re_moments *owner);

/* m <- m (+) other, where other holds later samples (order matters only for rounding). */
re_status re_moments_merge(re_moments *m, const re_moments *other);

/* Length in doubles of the serialized state (constant for a given layout). */
int64_t re_moments_serial_len(const re_moments *m);
/* Copy the state to buf (re_moments_serial_len doubles). */
void re_moments_serialize(const re_moments *m, double *buf);
/* Merge a serialized state produced by an accumulator of the same layout. */
re_status re_moments_merge_serial(re_moments *m, const double *buf, int64_t len);
/* x <- x (+) y for two serialized states of m's layout (y holds later samples; its
 * contents are undefined afterwards), in place: m's own state is neither read nor
 * changed and nothing is copied. The same bits as deserialize x, merge y, serialize. */
re_status re_moments_merge_serial_into(re_moments *m, double *x, double *y, int64_t len);
/* x <- x (+) m's state, x serialized in m's layout (m holds later samples; its state is
 * undefined afterwards: reset it before adding batches). The same bits as
 * merge_serial_into(x, serialized m), without the copy. */
re_status re_moments_merge_state_into(re_moments *m, double *x, int64_t len);
/* m <- m (+) y, y serialized in m's layout (later samples; its contents are undefined
 * afterwards). The same bits as merge_serial, without its scratch copy. */
re_status re_moments_merge_serial_consume(re_moments *m, double *y, int64_t len);
/* Replace the state by a serialized one of the same layout. */
re_status re_moments_deserialize(re_moments *m, const double *buf, int64_t len);

/* The state in pieces, for partial transfers between accumulators of one layout: the
 * head [0, head) holds the count and the means; block b (0 <= b < nblocks) holds one
 * stored pair's co-moment and debiased extras at [off, off + len). */
int64_t re_moments_head_len(const re_moments *m);
int re_moments_nblocks(const re_moments *m);
/* The block of layers (i, j) (either order); -1: not stored. */
int re_moments_block_id(const re_moments *m, int i, int j);
void re_moments_block_span(const re_moments *m, int b, int64_t *off, int64_t *len);
/* Copy len doubles of the state from offset off to out (len doubles), or from in. */
void re_moments_get_span(const re_moments *m, int64_t off, int64_t len, double *out);
void re_moments_set_span(re_moments *m, int64_t off, int64_t len, const double *in);
/* The state's doubles from offset off, in place (sent and received as they are, with no
 * staging buffer: memory the accumulator already touched). */
double *re_moments_span_data(re_moments *m, int64_t off);

/* Accessors for finalize-time metrics. */
double re_moments_n(const re_moments *m);
int re_moments_nlayers(const re_moments *m);
int64_t re_moments_dim(const re_moments *m, int layer);
/* Mean of a layer (d_l). */
const double *re_moments_mean(const re_moments *m, int layer);
/* Centred co-moment C_ij (d_i x d_j row-major) or NULL if (i, j) is not stored.
 * If i > j the stored block is C_ji: *transposed is set to 1. */
const double *re_moments_block(const re_moments *m, int i, int j, int *transposed);
/* Debiased extras of block (i, j): sqq_ij and the two vectors (aq for layer i, aq for layer j).
 * RE_EINVAL if the accumulator was created without RE_MOMENTS_DEBIASED or (i, j) is not stored. */
re_status re_moments_debiased_terms(const re_moments *m, int i, int j, double *sqq, const double **aq_i,
                                    const double **aq_j);

#ifdef __cplusplus
}
#endif
#endif
