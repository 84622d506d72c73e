/*
 * sample_template.h: the fused SGD step for tiny minibatches (batch_size 1,
 * true per-sample SGD, up to CSAE_SAMPLE_MAX_ROWS rows), included by each
 * kernel path through path_tail.h once per element type, before
 * core_template.h (whose step_ routes small batches here), with REAL, UREAL,
 * EXP_BITS, SFX and EPS_CLIP defined.
 *
 * Why a separate path: a 64-25-64 model's weights sit in L1, and a step of
 * one sample is a handful of matrix-vector products that the blocked GEMM,
 * its packing and the two-pass checked update spend most of their time
 * setting up.  Here one step is
 *   1. the forward pass (Z1 = X W^T + b, A = f(Z1); Z2 = A Wd^T + bd,
 *      Y = g(Z2));
 *   2. the reconstruction and sparsity terms and the deltas;
 *   3. one pass over Wd that accumulates T = D3 Wd from the old values,
 *      sums their squares (the decay term) and writes the new ones, then b
 *      and bd, then one pass over W (squares summed likewise);
 * the same formulas as core_template.h (MATH.md; rho_hat is the minibatch
 * mean, the sample's own activations when it has one row).
 *
 * Divergence: the update loops copy each old value to a backup in the
 * workspace as they overwrite it and OR a non-finite test of every new
 * value (and new velocity) into one flag.  If the flag is set at the end,
 * the backups are copied back, so the parameters and velocities are exactly
 * the last finite ones, as core_template.h's check-then-commit guarantees,
 * without a second pass over the weights on the steps that succeed.
 *
 * Same bits on every vector path: the template is plain C, compiled per
 * path for that path's ISA, and nothing in it depends on the vector width.
 * Every output of a product is one multiply-add chain in a fixed order
 * (vectorised across outputs when the compiler can, never split across
 * lanes), every double sum has a fixed shape (eight running sums by index
 * mod 8, combined pairwise), and the sigmoid's exp is one polynomial
 * (path_avx2.c's, constant for constant) evaluated per element.  The build
 * is ISO C (no FP contraction), so a multiply-add is fused exactly where
 * madd_ says so: on every path whose ISA has FMA.  Only the portable path
 * on a CPU without FMA rounds the product separately.
 */

#ifndef CSAE_SAMPLE_TEMPLATE_ONCE
#define CSAE_SAMPLE_TEMPLATE_ONCE

/* a * b + c, fused (one rounding) where the target has FMA. */
#if defined(__FMA__) || defined(__AVX512F__) || defined(__FP_FAST_FMA) || \
    defined(__aarch64__)
#define CSAE_SAMPLE_FMA 1
static inline double madd_f64(double a, double b, double c) { return fma(a, b, c); }
static inline float madd_f32(float a, float b, float c) { return fmaf(a, b, c); }
#else
#define CSAE_SAMPLE_FMA 0
static inline double madd_f64(double a, double b, double c) { return a * b + c; }
static inline float madd_f32(float a, float b, float c) { return a * b + c; }
#endif

/* exp(x) for x <= 0, path_avx2.c's exp_nonpos_pd/ps one element at a time:
 * Cody-Waite reduction x = n ln2 + r, Taylor polynomial of exp(r) (degree
 * 12 in double, 7 in float), 2^n built in the exponent bits of t.  x is
 * clamped as max(x, lo) is on x86 (a NaN gives lo). */
static inline double sample_exp_nonpos_f64(double x)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    x = x > -708.0 ? x : -708.0;
    const double t = madd_f64(x, 1.4426950408889634, magic);
    const double n = t - magic;
    double r = madd_f64(-n, 6.93147180369123816490e-01, x);
    r = madd_f64(-n, 1.90821492927058770002e-10, r);
    double p = 1.0 / 479001600.0;
    p = madd_f64(p, r, 1.0 / 39916800.0);
    p = madd_f64(p, r, 1.0 / 3628800.0);
    p = madd_f64(p, r, 1.0 / 362880.0);
    p = madd_f64(p, r, 1.0 / 40320.0);
    p = madd_f64(p, r, 1.0 / 5040.0);
    p = madd_f64(p, r, 1.0 / 720.0);
    p = madd_f64(p, r, 1.0 / 120.0);
    p = madd_f64(p, r, 1.0 / 24.0);
    p = madd_f64(p, r, 1.0 / 6.0);
    p = madd_f64(p, r, 0.5);
    p = madd_f64(p, r, 1.0);
    p = madd_f64(p, r, 1.0);
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sample_exp_nonpos_f32(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    x = x > -87.0f ? x : -87.0f;
    const float t = madd_f32(x, 1.44269504f, magic);
    const float n = t - magic;
    float r = madd_f32(-n, 0.693359375f, x);
    r = madd_f32(-n, -2.12194440e-4f, r);
    float p = 1.0f / 5040.0f;
    p = madd_f32(p, r, 1.0f / 720.0f);
    p = madd_f32(p, r, 1.0f / 120.0f);
    p = madd_f32(p, r, 1.0f / 24.0f);
    p = madd_f32(p, r, 1.0f / 6.0f);
    p = madd_f32(p, r, 0.5f);
    p = madd_f32(p, r, 1.0f);
    p = madd_f32(p, r, 1.0f);
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Outputs of a strided product computed together: eight independent
 * chains hide the multiply-add latency. */
#define SAMPLE_BLOCK 8

/* Combine eight running sums in a fixed tree. */
static inline double sample_combine8(const double acc[8])
{
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* The sum of len doubles in a fixed shape: sums by index mod 8, then the
 * tree of sample_combine8. */
static inline double sample_sum(const double *x, size_t len)
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

/* The sigmoid as everywhere in the engine: e = exp(-|v|), s = 1 / (1 + e),
 * sigmoid(v) = s for v >= 0 and e * s below.  The sign bit picks (as the
 * AVX2 blend does; -0 gives 0.5 either way), by integer masks: a
 * floating-point select would not vectorise under -ftrapping-math. */
static inline REAL FN(sample_sigmoid_)(REAL v)
{
    const REAL e = CAT(sample_exp_nonpos_, SFX)(-(REAL)fabs(v));
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

/* out[r * nout + j] = sum_k M[j * depth + k] in[r * depth + k] for the m
 * rows r of `in`: outputs are rows of M, so the products run across M's
 * rows (stride depth), SAMPLE_BLOCK outputs at a time, each output one
 * chain in k order.  Kept scalar on purpose (GCC): superword vectorisation
 * would assemble each column of the block from single-element inserts,
 * which costs more than the independent scalar multiply-adds. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-slp-vectorize")))
#endif
static void FN(sample_product_)(const REAL *restrict M, size_t nout, size_t depth,
                                const REAL *restrict in, size_t m, REAL *restrict out)
{
    for (size_t j0 = 0; j0 < nout; j0 += SAMPLE_BLOCK) {
        const size_t nb = nout - j0 < SAMPLE_BLOCK ? nout - j0 : SAMPLE_BLOCK;
        const REAL *rows = M + j0 * depth;
        for (size_t r = 0; r < m; r++) {
            const REAL *x = in + r * depth;
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
                out[r * nout + j0 + q] = acc[q];
        }
    }
}

/* Z = f(Z + bias) row by row, f the sigmoid or (sigmoid == 0) the identity. */
static void FN(sample_bias_act_)(REAL *restrict Z, const REAL *restrict bias, size_t m,
                                 size_t w, int sigmoid)
{
    for (size_t r = 0; r < m; r++) {
        REAL *z = Z + r * w;
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
}

/* The SGD update of one element, as core_template.h's commit loops do it:
 * theta <- theta - lr (g + decay theta), or with momentum
 * v <- mu v - lr (g + decay theta), theta <- theta + v.  The old values go
 * to the backups (th_old, v_old); the non-finite test of the new values is
 * ORed into bad.  A statement macro, so that each loop below is one plain
 * loop body the compiler vectorises. */
#define SAMPLE_APPLY(MOMENTUM, th, v, th_old, v_old, x, g, decay)               \
    do {                                                                       \
        const REAL old_ = th[x];                                               \
        th_old[x] = old_;                                                      \
        if (MOMENTUM) {                                                        \
            const REAL vel_ = v[x];                                            \
            v_old[x] = vel_;                                                   \
            const REAL step_ = mu * vel_ - lr * ((g) + (decay) * old_);        \
            const REAL new_ = old_ + step_;                                    \
            v[x] = step_;                                                      \
            th[x] = new_;                                                      \
            bad |= FN(sample_nonfinite_)(step_) | FN(sample_nonfinite_)(new_); \
        } else {                                                               \
            const REAL new_ = old_ - lr * ((g) + (decay) * old_);              \
            th[x] = new_;                                                      \
            bad |= FN(sample_nonfinite_)(new_);                                \
        }                                                                      \
    } while (0)

/* The update of one row of a weight matrix (len values), without or with
 * momentum, whose gradient is a sum of m rank-1 rows:
 * g[x] = sum_r U[r * ldu] V[r * ldv + x], in row order.  With T set, the
 * same loop accumulates T[r * ldt + x] += U[r * ldu] theta[x] from the old
 * values: the back-propagation through the decoder reads the weights that
 * this pass overwrites.  sq[x] += theta[x]^2 (old values, in double) sums
 * the squares for the decay term column by column, each column in row
 * order.  Returns non-zero if a new value is not finite. */
#define SAMPLE_DEFINE_UPDATE(NAME, MOMENTUM)                                   \
    static UREAL FN(NAME)(REAL *restrict th, REAL *restrict v, REAL *restrict th_old,  \
                          REAL *restrict v_old, const REAL *U, size_t ldu,     \
                          const REAL *restrict V, size_t ldv, size_t m,        \
                          REAL *restrict T, size_t ldt, size_t len, REAL lr,   \
                          REAL mu, REAL decay, double *restrict sq)            \
    {                                                                          \
        UREAL bad = 0;                                                         \
        const REAL u0 = U[0];                                                  \
        if (m == 1 && T) {                                                     \
            for (size_t x = 0; x < len; x++) {                                 \
                T[x] = MADD(u0, th[x], T[x]);                                  \
                sq[x] += (double)th[x] * th[x];                                \
                SAMPLE_APPLY(MOMENTUM, th, v, th_old, v_old, x, u0 * V[x], decay); \
            }                                                                  \
        } else if (m == 1) {                                                   \
            for (size_t x = 0; x < len; x++) {                                 \
                sq[x] += (double)th[x] * th[x];                                \
                SAMPLE_APPLY(MOMENTUM, th, v, th_old, v_old, x, u0 * V[x], decay); \
            }                                                                  \
        } else {                                                               \
            for (size_t x = 0; x < len; x++) {                                 \
                if (T)                                                         \
                    for (size_t r = 0; r < m; r++)                             \
                        T[r * ldt + x] = MADD(U[r * ldu], th[x], T[r * ldt + x]); \
                REAL g = u0 * V[x];                                            \
                for (size_t r = 1; r < m; r++)                                 \
                    g = MADD(U[r * ldu], V[r * ldv + x], g);                   \
                sq[x] += (double)th[x] * th[x];                                \
                SAMPLE_APPLY(MOMENTUM, th, v, th_old, v_old, x, g, decay);     \
            }                                                                  \
        }                                                                      \
        return bad;                                                            \
    }

SAMPLE_DEFINE_UPDATE(sample_update_plain_, 0)
SAMPLE_DEFINE_UPDATE(sample_update_momentum_, 1)

/* A bias's gradient is the column sum of the deltas D (m x len), rows in
 * order (core_template.h's column_sums_); no decay. */
static UREAL FN(sample_update_bias_)(REAL *restrict th, REAL *restrict v,
                                     REAL *restrict th_old, REAL *restrict v_old,
                                     const REAL *restrict D, size_t m, size_t len, REAL lr,
                                     REAL mu, int momentum)
{
    UREAL bad = 0;
    for (size_t x = 0; x < len; x++) {
        REAL g = 0;
        for (size_t r = 0; r < m; r++)
            g += D[r * len + x];
        if (momentum)
            SAMPLE_APPLY(1, th, v, th_old, v_old, x, g, 0);
        else
            SAMPLE_APPLY(0, th, v, th_old, v_old, x, g, 0);
    }
    return bad;
}

/* One fused SGD step on the m <= CSAE_SAMPLE_MAX_ROWS rows of X.  Uses the
 * workspace buffers A, Y, T, rho and s, and the gradient buffer (which
 * engine.c sizes for this when batches are small) as the backups of the
 * parameters and of the velocities, then n + h doubles of column sums of
 * squares. */
static csae_status FN(sample_step_)(const csae_model *model, const csae_sgd *sgd, SPARAMS p,
                                    SPARAMS v, const REAL *X, size_t m, double *loss,
                                    char *base, const csae_ws_layout *L)
{
    const size_t n = model->n_features, h = model->n_hidden;
    const double rho = model->sparsity_target, beta = model->sparsity_weight;
    const double lambda = model->weight_decay;
    REAL *A = (REAL *)(base + L->A), *Y = (REAL *)(base + L->Y), *T = (REAL *)(base + L->T);
    REAL *rho_hat = (REAL *)(base + L->rho), *s = (REAL *)(base + L->s);
    const size_t n_params = 2 * n * h + n + h;
    REAL *old = (REAL *)(base + L->grad), *old_v = old + n_params;
    const int momentum = sgd->momentum != 0;

    /* Forward pass. */
    FN(sample_product_)(p.W, h, n, X, m, A);
    FN(sample_bias_act_)(A, p.b, m, h, 1);
    FN(sample_product_)(p.Wd, n, h, A, m, Y);
    const int sigmoid_out = model->decoder == CSAE_DECODER_SIGMOID;
    FN(sample_bias_act_)(Y, p.bd, m, n, sigmoid_out);

    /* rho_hat: the column means of A (A itself for one row). */
    for (size_t j = 0; j < h; j++) {
        REAL sum = 0;
        for (size_t r = 0; r < m; r++)
            sum += A[r * h + j];
        rho_hat[j] = sum / (REAL)m;
    }

    /* Reconstruction error, Y turned into D3 = (2/m)(Y - X) g'(Z2); the
     * squared error in eight running sums (index mod 8). */
    const REAL two_over_m = (REAL)(2.0 / (double)m);
    double sq8[8] = {0};
    size_t x = 0;
    /* g'(Z2) = Y (1 - Y) for the sigmoid, 1 (no multiply) for the linear decoder. */
#define SAMPLE_D3(x, acc)                                                        \
    do {                                                                       \
        const REAL y = Y[x], r = y - X[x];                                     \
        acc += (double)r * r;                                                  \
        Y[x] = sigmoid_out ? two_over_m * r * (y * ((REAL)1 - y)) : two_over_m * r; \
    } while (0)
    if (sigmoid_out) {
        for (; x + 8 <= m * n; x += 8)
            for (size_t q = 0; q < 8; q++) {
                const REAL y = Y[x + q], r = y - X[x + q];
                sq8[q] += (double)r * r;
                Y[x + q] = (two_over_m * r) * (y * ((REAL)1 - y));
            }
    } else {
        for (; x + 8 <= m * n; x += 8)
            for (size_t q = 0; q < 8; q++) {
                const REAL r = Y[x + q] - X[x + q];
                sq8[q] += (double)r * r;
                Y[x + q] = two_over_m * r;
            }
    }
    for (; x < m * n; x++)
        SAMPLE_D3(x, sq8[x % 8]);
#undef SAMPLE_D3
    const double sq = sample_combine8(sq8);
    const REAL *D3 = Y;

    /* Sparsity: as in core_template.h (rho_hat clipped in REAL). */
    double kl = 0;
    for (size_t j = 0; j < h; j++) {
        const REAL lo = (REAL)EPS_CLIP, hi = (REAL)1 - (REAL)EPS_CLIP;
        const double q = rho_hat[j] < lo ? lo : (rho_hat[j] > hi ? hi : rho_hat[j]);
        kl += rho * log(rho / q) + (1 - rho) * log((1 - rho) / (1 - q));
        s[j] = (REAL)(beta * (-rho / q + (1 - rho) / (1 - q)));
        s[j] /= (REAL)m;
    }
    /* The decay term's squares are summed by the update passes, which read
     * every weight anyway; a non-finite rest of the objective stops here,
     * before anything is written. */
    const double partial = sq / (double)m + beta * kl;
    if (!isfinite(partial))
        return CSAE_ERR_NONFINITE;
    double *sq_w = (double *)(old_v + n_params), *sq_wd = sq_w + n;
    for (size_t c = 0; c < n + h; c++)
        sq_w[c] = 0;

    const REAL lr = (REAL)sgd->learning_rate, mu = (REAL)sgd->momentum;
    const REAL two_lambda = (REAL)(2.0 * lambda);
    REAL *old_W = old, *old_b = old_W + h * n, *old_Wd = old_b + h, *old_bd = old_Wd + n * h;
    REAL *ov_W = old_v, *ov_b = ov_W + h * n, *ov_Wd = ov_b + h, *ov_bd = ov_Wd + n * h;
    UREAL bad = 0;

    /* Wd (n x h), row i: T[r, :] += D3[r, i] Wd[i, :] from the old row, and
     * the row's update with gradient sum_r D3[r, i] A[r, :]. */
    for (size_t c = 0; c < m * h; c++)
        T[c] = 0;
    for (size_t i = 0; i < n; i++) {
        const size_t off = i * h;
        if (momentum)
            bad |= FN(sample_update_momentum_)(p.Wd + off, v.Wd + off, old_Wd + off, ov_Wd + off,
                                               D3 + i, n, A, h, m, T, h, h, lr, mu, two_lambda,
                                               sq_wd);
        else
            bad |= FN(sample_update_plain_)(p.Wd + off, NULL, old_Wd + off, NULL, D3 + i, n, A,
                                            h, m, T, h, h, lr, mu, two_lambda, sq_wd);
    }

    /* D2 = (D3 Wd + s/m) f'(Z1), in T. */
    for (size_t r = 0; r < m; r++)
#pragma omp simd
        for (size_t j = 0; j < h; j++) {
            const REAL a = A[r * h + j];
            T[r * h + j] = (T[r * h + j] + s[j]) * (a * ((REAL)1 - a));
        }
    const REAL *D2 = T;

    bad |= FN(sample_update_bias_)(p.bd, v.bd, old_bd, ov_bd, D3, m, n, lr, mu, momentum);
    bad |= FN(sample_update_bias_)(p.b, v.b, old_b, ov_b, D2, m, h, lr, mu, momentum);

    /* W (h x n), row j: gradient sum_r D2[r, j] X[r, :]. */
    for (size_t j = 0; j < h; j++) {
        const size_t off = j * n;
        if (momentum)
            bad |= FN(sample_update_momentum_)(p.W + off, v.W + off, old_W + off, ov_W + off,
                                               D2 + j, h, X, n, m, NULL, 0, n, lr, mu,
                                               two_lambda, sq_w);
        else
            bad |= FN(sample_update_plain_)(p.W + off, NULL, old_W + off, NULL, D2 + j, h, X, n,
                                            m, NULL, 0, n, lr, mu, two_lambda, sq_w);
    }

    /* The objective at the old weights, as core_template.h adds it up. */
    *loss = sq / (double)m + lambda * (sample_sum(sq_w, n) + sample_sum(sq_wd, h)) + beta * kl;
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
