/*
 * sample_template.h: the fused SGD step for minibatches of one row
 * (batch_size 1, true per-sample SGD), included by each kernel path through
 * path_tail.h once per element type, before core_template.h (whose step_
 * routes one-row batches here), with REAL, UREAL, EXP_BITS, SFX and
 * EPS_CLIP defined.
 *
 * Why a separate path: a 64-25-64 model's weights sit in L1, and a step of
 * one sample is a handful of matrix-vector products that the blocked GEMM,
 * its packing and the two-pass checked update spend most of their time
 * setting up.  Here one step is
 *   1. the forward pass (a = f(W x + b), y = g(Wd a + bd));
 *   2. the reconstruction and sparsity terms and the deltas;
 *   3. one pass over Wd that accumulates d3 Wd from the old values, sums
 *      their squares (the decay term) and writes the new ones, then b and
 *      bd, then one pass over W (squares summed likewise);
 * the same formulas as core_template.h (docs/math.md; rho_hat, the minibatch
 * mean, is the sample's own activations).
 *
 * Divergence: the update loops test every new value for finiteness as
 * they write it (one flag ORed over the block) and the objective is checked
 * at the end.  A step on its own (csae_sgd_step) also copies each old value
 * (and velocity) to a backup as it overwrites it and, if the flag is set,
 * copies them back: the parameters are exactly the last finite ones, as
 * core_template.h's check-then-commit leaves them, without a second pass
 * over the weights.  In an epoch of one-row batches the per-step backups
 * (a quarter of the step's time, measured) give way to a checkpoint every
 * CSAE_SAMPLE_CHECKPOINT_EVERY samples, and a failed step is undone by
 * restoring the checkpoint and replaying the samples since, which
 * recomputes the same bits (api_template.h).
 *
 * Same bits on every vector path, by the rules at the top of
 * gemm_template.h: the template is plain C, compiled per path for that
 * path's ISA, and nothing in it depends on the vector width (a product's
 * outputs are single multiply-add chains, the double sums have the fixed
 * shape below, the sigmoid is exp_lane.h's).  Only the portable path on a
 * CPU without FMA rounds the product separately (madd_).
 */

#ifndef CSAE_SAMPLE_TEMPLATE_ONCE
#define CSAE_SAMPLE_TEMPLATE_ONCE

#include "exp_lane.h"

/* Outputs of a strided product computed together: eight independent
 * chains hide the multiply-add latency. */
#define SAMPLE_BLOCK 8

/* Combine eight running sums in a fixed tree. */
static inline double sample_combine8(const double acc[8])
{
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

#endif /* CSAE_SAMPLE_TEMPLATE_ONCE */

#define SPARAMS CAT(csae_params_, SFX)
#define MADD FN(madd_)

/* NaN or inf exactly when the exponent bits are all ones. */
static inline UREAL FN(sample_nonfinite_)(REAL v)
{
    UREAL bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits & EXP_BITS) == EXP_BITS;
}

/* The sum of len values in double, in a fixed shape: sums by index mod 8,
 * then the tree of sample_combine8. */
static inline double FN(sample_sum_)(const REAL *x, size_t len)
{
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= len; i += 8)
        for (size_t q = 0; q < 8; q++)
            acc[q] += x[i + q];
    for (; i < len; i++)
        acc[i % 8] += x[i];
    return sample_combine8(acc);
}

/* The sigmoid as everywhere in the engine: e = exp(-|v|), s = 1 / (1 + e),
 * sigmoid(v) = s for v >= 0 and e * s below.  The sign bit picks (as the
 * AVX2 blend does; -0 gives 0.5 either way), by integer masks: a
 * floating-point select would not vectorise under -ftrapping-math. */
static inline REAL FN(sample_sigmoid_)(REAL v)
{
    const REAL e = CAT(exp_nonpos_lane_, SFX)(-(REAL)fabs(v));
    const REAL s = (REAL)1 / ((REAL)1 + e), es = e * s;
    UREAL vb, sb, eb;
    memcpy(&vb, &v, sizeof vb);
    memcpy(&sb, &s, sizeof sb);
    memcpy(&eb, &es, sizeof eb);
    const UREAL neg = (UREAL)0 - (vb >> (8 * sizeof(UREAL) - 1)); /* all ones if v < 0 */
    const UREAL out = (sb & ~neg) | (eb & neg);
    REAL result;
    memcpy(&result, &out, sizeof result);
    return result;
}

/* out[j] = sum_k M[j * depth + k] x[k] for j < nout: the outputs are rows
 * of M, so the product runs across M's rows (stride depth), SAMPLE_BLOCK
 * outputs at a time, each output one chain in k order.  Kept scalar on
 * purpose (GCC): superword vectorisation would assemble each column of the
 * block from single-element inserts, which costs more than independent
 * scalar multiply-adds. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-slp-vectorize")))
#endif
static void FN(sample_product_)(const REAL *restrict M, size_t nout, size_t depth,
                                const REAL *restrict x, REAL *restrict out)
{
    for (size_t j0 = 0; j0 < nout; j0 += SAMPLE_BLOCK) {
        const size_t nb = nout - j0 < SAMPLE_BLOCK ? nout - j0 : SAMPLE_BLOCK;
        const REAL *rows = M + j0 * depth;
        REAL acc[SAMPLE_BLOCK] = {0};
        if (nb == SAMPLE_BLOCK) {
            for (size_t k = 0; k < depth; k++) {
                const REAL xk = x[k];
                for (size_t q = 0; q < SAMPLE_BLOCK; q++)
                    acc[q] = MADD(rows[q * depth + k], xk, acc[q]);
            }
        } else {
            for (size_t k = 0; k < depth; k++) {
                const REAL xk = x[k];
                for (size_t q = 0; q < nb; q++)
                    acc[q] = MADD(rows[q * depth + k], xk, acc[q]);
            }
        }
        for (size_t q = 0; q < nb; q++)
            out[j0 + q] = acc[q];
    }
}

/* z = f(z + bias), f the sigmoid or (sigmoid == 0) the identity. */
static void FN(sample_bias_act_)(REAL *restrict z, const REAL *restrict bias, size_t w,
                                 int sigmoid)
{
    if (sigmoid) {
#pragma omp simd
        for (size_t j = 0; j < w; j++)
            z[j] = FN(sample_sigmoid_)(z[j] + bias[j]);
    } else {
#pragma omp simd
        for (size_t j = 0; j < w; j++)
            z[j] += bias[j];
    }
}

/* The SGD update of element x, as core_template.h's commit loops do it:
 * theta <- theta - lr (g + decay theta), or with momentum
 * v <- mu v - lr (g + decay theta), theta <- theta + v.  The old values go
 * to the backups (th_old, v_old) if BACKUP; the non-finite test of the new
 * value is ORed into bad (a non-finite step makes it non-finite too).  A
 * statement macro, so that each loop below is one plain loop body that the
 * compiler vectorises (MOMENTUM and BACKUP are constants). */
#define SAMPLE_APPLY(MOMENTUM, BACKUP, th, v, th_old, v_old, x, g, decay)       \
    do {                                                                       \
        const REAL old_ = th[x];                                               \
        if (BACKUP)                                                            \
            th_old[x] = old_;                                                  \
        if (MOMENTUM) {                                                        \
            const REAL vel_ = v[x];                                            \
            if (BACKUP)                                                        \
                v_old[x] = vel_;                                               \
            const REAL step_ = mu * vel_ - lr * ((g) + (decay) * old_);        \
            const REAL new_ = old_ + step_;                                    \
            v[x] = step_;                                                      \
            th[x] = new_;                                                      \
            bad |= FN(sample_nonfinite_)(new_);                                \
        } else {                                                               \
            const REAL new_ = old_ - lr * ((g) + (decay) * old_);              \
            th[x] = new_;                                                      \
            bad |= FN(sample_nonfinite_)(new_);                                \
        }                                                                      \
    } while (0)

/* The update of one row of a weight matrix (len values) whose gradient is
 * the rank-1 row g[x] = u V[x], without (NAME_plain_) or with
 * (NAME_momentum_) momentum.  With T set, the same loop accumulates
 * T[x] += u theta[x] from the old values: the back-propagation through the
 * decoder reads the weights that this pass overwrites.  sq[x] += theta[x]^2
 * (old values) sums the squares for the decay term column by column, each
 * column in row order, in REAL (a double sum per column cost a quarter of
 * the float step; the columns are then added in double).  Returns non-zero
 * if a new value is not finite. */
#define SAMPLE_DEFINE_UPDATE(NAME, MOMENTUM, BACKUP)                           \
    static UREAL FN(NAME)(REAL *restrict th, REAL *restrict v, REAL *restrict th_old,  \
                          REAL *restrict v_old, REAL u, const REAL *restrict V, \
                          REAL *restrict T, size_t len, REAL lr, REAL mu,      \
                          REAL decay, REAL *restrict sq)                       \
    {                                                                          \
        UREAL bad = 0;                                                         \
        if (T) {                                                               \
            for (size_t x = 0; x < len; x++) {                                 \
                T[x] = MADD(u, th[x], T[x]);                                   \
                sq[x] = MADD(th[x], th[x], sq[x]);                             \
                SAMPLE_APPLY(MOMENTUM, BACKUP, th, v, th_old, v_old, x, u * V[x], decay); \
            }                                                                  \
        } else {                                                               \
            for (size_t x = 0; x < len; x++) {                                 \
                sq[x] = MADD(th[x], th[x], sq[x]);                             \
                SAMPLE_APPLY(MOMENTUM, BACKUP, th, v, th_old, v_old, x, u * V[x], decay); \
            }                                                                  \
        }                                                                      \
        return bad;                                                            \
    }

SAMPLE_DEFINE_UPDATE(sample_update_plain_, 0, 1)
SAMPLE_DEFINE_UPDATE(sample_update_momentum_, 1, 1)
SAMPLE_DEFINE_UPDATE(sample_update_plain_nobackup_, 0, 0)
SAMPLE_DEFINE_UPDATE(sample_update_momentum_nobackup_, 1, 0)

/* A bias's gradient is the delta itself (the column sum of one row); no
 * decay. */
static UREAL FN(sample_update_bias_)(REAL *restrict th, REAL *restrict v,
                                     REAL *restrict th_old, REAL *restrict v_old,
                                     const REAL *restrict D, size_t len, REAL lr, REAL mu,
                                     int momentum, int backup)
{
    UREAL bad = 0;
    if (momentum)
        for (size_t x = 0; x < len; x++)
            SAMPLE_APPLY(1, backup, th, v, th_old, v_old, x, D[x], 0);
    else
        for (size_t x = 0; x < len; x++)
            SAMPLE_APPLY(0, backup, th, v, th_old, v_old, x, D[x], 0);
    return bad;
}

/* One fused SGD step on the single row x (CSAE_SAMPLE_MAX_ROWS is 1:
 * measured, a fused step over 2 to 8 rows lost to the GEMM one).  rho_hat
 * is the row's own activations.  Uses the workspace buffers A, Y, T and s,
 * and the gradient buffer (which engine.c sizes for this when batches have
 * one row) as the backups of the parameters and of the velocities, then
 * n + h column sums of squares. */
static csae_status FN(sample_step_)(const csae_model *model, const csae_sgd *sgd, SPARAMS p,
                                    SPARAMS v, const REAL *x, double *loss, char *base,
                                    const csae_ws_layout *L)
{
    const size_t n = model->n_features, h = model->n_hidden;
    const double rho = model->sparsity_target, beta = model->sparsity_weight;
    const double lambda = model->weight_decay;
    REAL *a = (REAL *)(base + L->A), *d3 = (REAL *)(base + L->Y), *t = (REAL *)(base + L->T);
    REAL *s = (REAL *)(base + L->s);
    const size_t n_params = 2 * n * h + n + h;
    REAL *old = (REAL *)(base + L->grad), *old_v = old + n_params;
    REAL *sq_w = old_v + n_params, *sq_wd = sq_w + n;
    const int momentum = sgd->momentum != 0;
    /* Without backups (an epoch of one-row batches, which keeps its own
     * checkpoint, see api_template.h) a failed step leaves the parameters
     * half written and says so. */
    const int backup = L->sample != CSAE_SAMPLE_CHECKPOINTED;

    /* Forward pass: a = f(W x + b), y = g(Wd a + bd), y kept in d3. */
    FN(sample_product_)(p.W, h, n, x, a);
    FN(sample_bias_act_)(a, p.b, h, 1);
    FN(sample_product_)(p.Wd, n, h, a, d3);
    const int sigmoid_out = model->decoder == CSAE_DECODER_SIGMOID;
    FN(sample_bias_act_)(d3, p.bd, n, sigmoid_out);

    /* Reconstruction error, y turned into d3 = 2 (y - x) g'(z2) (2/m with
     * m = 1); the squared error in eight running sums (index mod 8). */
    double sq8[8] = {0};
    size_t i = 0;
    if (sigmoid_out) {
        for (; i + 8 <= n; i += 8)
            for (size_t q = 0; q < 8; q++) {
                const REAL y = d3[i + q], r = y - x[i + q];
                sq8[q] += (double)r * r;
                d3[i + q] = ((REAL)2 * r) * (y * ((REAL)1 - y));
            }
        for (; i < n; i++) {
            const REAL y = d3[i], r = y - x[i];
            sq8[i % 8] += (double)r * r;
            d3[i] = ((REAL)2 * r) * (y * ((REAL)1 - y));
        }
    } else {
        for (; i + 8 <= n; i += 8)
            for (size_t q = 0; q < 8; q++) {
                const REAL r = d3[i + q] - x[i + q];
                sq8[q] += (double)r * r;
                d3[i + q] = (REAL)2 * r;
            }
        for (; i < n; i++) {
            const REAL r = d3[i] - x[i];
            sq8[i % 8] += (double)r * r;
            d3[i] = (REAL)2 * r;
        }
    }
    const double sq = sample_combine8(sq8);

    /* Sparsity, as in core_template.h (rho_hat clipped in REAL), and s_j
     * (over m = 1). */
    double kl = 0;
    for (size_t j = 0; j < h; j++) {
        const REAL lo = (REAL)EPS_CLIP, hi = (REAL)1 - (REAL)EPS_CLIP;
        const double q = a[j] < lo ? lo : (a[j] > hi ? hi : a[j]);
        kl += rho * log(rho / q) + (1 - rho) * log((1 - rho) / (1 - q));
        s[j] = (REAL)(beta * (-rho / q + (1 - rho) / (1 - q)));
    }
    /* The decay term's squares are summed by the update passes, which read
     * every weight anyway; a non-finite rest of the objective stops here,
     * before anything is written. */
    if (!isfinite(sq + beta * kl))
        return CSAE_ERR_NONFINITE;
    for (size_t c = 0; c < n + h; c++)
        sq_w[c] = 0;

    const REAL lr = (REAL)sgd->learning_rate, mu = (REAL)sgd->momentum;
    const REAL two_lambda = (REAL)(2.0 * lambda);
    REAL *old_W = old, *old_b = old_W + h * n, *old_Wd = old_b + h, *old_bd = old_Wd + n * h;
    REAL *ov_W = old_v, *ov_b = ov_W + h * n, *ov_Wd = ov_b + h, *ov_bd = ov_Wd + n * h;
    UREAL bad = 0;

    /* Wd (n x h), row r: gradient d3[r] a; the same pass accumulates
     * t = d3 Wd from the old rows. */
    for (size_t j = 0; j < h; j++)
        t[j] = 0;
    for (size_t r = 0; r < n; r++) {
        const size_t off = r * h;
        if (momentum && backup)
            bad |= FN(sample_update_momentum_)(p.Wd + off, v.Wd + off, old_Wd + off, ov_Wd + off,
                                               d3[r], a, t, h, lr, mu, two_lambda, sq_wd);
        else if (momentum)
            bad |= FN(sample_update_momentum_nobackup_)(p.Wd + off, v.Wd + off, NULL, NULL,
                                                        d3[r], a, t, h, lr, mu, two_lambda,
                                                        sq_wd);
        else if (backup)
            bad |= FN(sample_update_plain_)(p.Wd + off, NULL, old_Wd + off, NULL, d3[r], a, t,
                                            h, lr, mu, two_lambda, sq_wd);
        else
            bad |= FN(sample_update_plain_nobackup_)(p.Wd + off, NULL, NULL, NULL, d3[r], a, t,
                                                     h, lr, mu, two_lambda, sq_wd);
    }

    /* D2 = (d3 Wd + s) f'(z1), in t. */
#pragma omp simd
    for (size_t j = 0; j < h; j++)
        t[j] = (t[j] + s[j]) * (a[j] * ((REAL)1 - a[j]));

    bad |= FN(sample_update_bias_)(p.bd, v.bd, old_bd, ov_bd, d3, n, lr, mu, momentum, backup);
    bad |= FN(sample_update_bias_)(p.b, v.b, old_b, ov_b, t, h, lr, mu, momentum, backup);

    /* W (h x n), row j: gradient D2[j] x. */
    for (size_t j = 0; j < h; j++) {
        const size_t off = j * n;
        if (momentum && backup)
            bad |= FN(sample_update_momentum_)(p.W + off, v.W + off, old_W + off, ov_W + off,
                                               t[j], x, NULL, n, lr, mu, two_lambda, sq_w);
        else if (momentum)
            bad |= FN(sample_update_momentum_nobackup_)(p.W + off, v.W + off, NULL, NULL, t[j],
                                                        x, NULL, n, lr, mu, two_lambda, sq_w);
        else if (backup)
            bad |= FN(sample_update_plain_)(p.W + off, NULL, old_W + off, NULL, t[j], x, NULL,
                                            n, lr, mu, two_lambda, sq_w);
        else
            bad |= FN(sample_update_plain_nobackup_)(p.W + off, NULL, NULL, NULL, t[j], x, NULL,
                                                     n, lr, mu, two_lambda, sq_w);
    }

    /* The objective at the old weights, as core_template.h adds it up. */
    *loss = sq + lambda * (FN(sample_sum_)(sq_w, n) + FN(sample_sum_)(sq_wd, h)) + beta * kl;
    if ((bad || !isfinite(*loss)) && !backup)
        return CSAE_ERR_NONFINITE; /* the epoch restores its checkpoint */
    if (bad || !isfinite(*loss)) {
        /* Put back the last finite parameters (and velocities). */
        memcpy(p.W, old_W, h * n * sizeof(REAL));
        memcpy(p.b, old_b, h * sizeof(REAL));
        memcpy(p.Wd, old_Wd, n * h * sizeof(REAL));
        memcpy(p.bd, old_bd, n * sizeof(REAL));
        if (momentum) {
            memcpy(v.W, ov_W, h * n * sizeof(REAL));
            memcpy(v.b, ov_b, h * sizeof(REAL));
            memcpy(v.Wd, ov_Wd, n * h * sizeof(REAL));
            memcpy(v.bd, ov_bd, n * sizeof(REAL));
        }
        return CSAE_ERR_NONFINITE;
    }
    return CSAE_OK;
}

#undef MADD
#undef SPARAMS
