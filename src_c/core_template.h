/*
 * core_template.h: the computing core for one element type, included by each
 * kernel path with REAL, SFX (f64 or f32), EPS_CLIP (the rho_hat clip),
 * BIAS_ACT (that path's bias + activation kernel) and FN defined, after
 * gemm_template.h.  Arguments are validated by engine.c before they get here.
 * docs/math.md has the formulas; csae/reference.py the same steps in NumPy.
 */

#define PARAMS CAT(csae_params_, SFX)
#define STATE CAT(csae_train_state_, SFX)
#define FLAT CAT(csae_flat_state_, SFX)
#define GEMM FN(gemm_)

/* A = sigmoid(X W^T + b): W read as the n x h matrix W^T (strides 1, n). */
static void FN(encode_)(const csae_model *model, const REAL *W, const REAL *b,
                        const REAL *X, size_t m, REAL *A, char *base,
                        const csae_ws_layout *L, size_t threads)
{
    void *pack = base + L->pack;
    const size_t n = model->n_features, h = model->n_hidden;
    GEMM(m, h, n, 1, X, n, 1, W, 1, n, 0, A, h, pack, threads, b, 1);
}

/* Y = g(A Wd^T + bd): Wd read as the h x n matrix Wd^T (strides 1, h). */
static void FN(decode_)(const csae_model *model, const REAL *Wd, const REAL *bd,
                        const REAL *A, size_t m, REAL *Y, char *base,
                        const csae_ws_layout *L, size_t threads)
{
    void *pack = base + L->pack;
    const size_t n = model->n_features, h = model->n_hidden;
    GEMM(m, n, h, 1, A, h, 1, Wd, 1, h, 0, Y, n, pack, threads, bd,
         model->decoder == CSAE_DECODER_SIGMOID);
}

#include "sum_squares.h"

/* Column sums of an m x w row-major matrix, rows added in order. */
static void FN(column_sums_)(const REAL *M, size_t m, size_t w, REAL *out)
{
    for (size_t j = 0; j < w; j++)
        out[j] = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < w; j++)
            out[j] += M[i * w + j];
}

/* One reconstruction residual r = y - x: returns r^2 (in double) and turns
 * *y into the output delta (2/m) r g'(z). */
static inline double FN(residual_)(REAL *y, REAL x, REAL two_over_m, int sigmoid_out)
{
    const REAL yv = *y, r = yv - x;
    REAL d = two_over_m * r;
    if (sigmoid_out)
        d *= yv * ((REAL)1 - yv);
    *y = d;
    return (double)r * r;
}

/* All len residuals, r^2 added to sq_lanes[x % 16].  Inlined with a
 * constant sigmoid_out, so the lane loop has no branch and vectorises. */
CSAE_INLINE_ALWAYS void FN(residuals_)(REAL *Y, const REAL *X, size_t len, REAL two_over_m,
                                       int sigmoid_out, double *sq_lanes)
{
    const size_t len16 = len / 16 * 16;
    for (size_t x0 = 0; x0 < len16; x0 += 16)
#pragma omp simd
        for (size_t l = 0; l < 16; l++)
            sq_lanes[l] += FN(residual_)(Y + x0 + l, X[x0 + l], two_over_m, sigmoid_out);
    for (size_t l = 0; len16 + l < len; l++)
        sq_lanes[l] += FN(residual_)(Y + len16 + l, X[len16 + l], two_over_m, sigmoid_out);
}

/* The same residuals row by row when n is a multiple of 16 (then x % 16 is
 * j % 16: the same lanes), adding each row's deltas into the column sums
 * `bd` (zeroed by the caller) as it goes: rows in order, as column_sums_
 * adds them, without a second pass over the m x n deltas. */
CSAE_INLINE_ALWAYS void FN(residuals_sums_)(REAL *Y, const REAL *X, size_t m, size_t n,
                                            REAL two_over_m, int sigmoid_out,
                                            double *sq_lanes, REAL *restrict bd)
{
    for (size_t i = 0; i < m; i++)
        for (size_t x0 = 0; x0 < n; x0 += 16) {
            REAL *y = Y + i * n + x0;
            const REAL *x = X + i * n + x0;
#pragma omp simd
            for (size_t l = 0; l < 16; l++) {
                sq_lanes[l] += FN(residual_)(y + l, x[l], two_over_m, sigmoid_out);
                bd[x0 + l] += y[l];
            }
        }
}

/* What objective_grads_ computes beyond the plain batch objective.  The
 * plain one (objective_) is {m, NULL, NULL, 0, 0, 1, 1}. */
typedef struct {
    /* The m of 1/m, 2/m and s/m: the batch's rows, or (objective_part_)
     * the rows of the whole data set the batch is a block of. */
    size_t divisor;
    /* objective_part_: the data set's mean activation (h doubles), used for
     * s instead of the batch's own (and the KL term is then not computed:
     * penalties must be 0); NULL: the batch's rho_hat. */
    const double *rho_given;
    /* The running estimate (a training step with sparsity smoothing): q
     * before this batch, or NULL.  Then the rho buffer ends up holding the
     * new q, (1 - tau) q_prev + tau rho_hat, or rho_hat itself when
     * q_first, and s comes from it; the objective keeps the batch's own
     * rho_hat. */
    const REAL *q_prev;
    REAL tau;
    int q_first;
    /* Add lambda (||W||^2 + ||Wd||^2) and beta sum KL to the objective. */
    int penalties;
    /* Add 2 lambda W and 2 lambda Wd to the weight gradients.  A training
     * step leaves it out: its update adds it while it reads the weights. */
    int decay_in_grads;
} FN(objective_how_);

/* The objective on one batch and, if grads.W is set, its gradients, as
 * `how` says.  Uses the workspace buffers A, Y, T, rho and s of layout L at
 * base. */
static void FN(objective_grads_)(const csae_model *model, PARAMS p, const REAL *X, size_t m,
                                 double *loss, PARAMS grads, char *base,
                                 const csae_ws_layout *L, size_t threads,
                                 const FN(objective_how_) *how)
{
    const size_t n = model->n_features, h = model->n_hidden;
    const double rho = model->sparsity_target, beta = model->sparsity_weight;
    const double lambda = model->weight_decay;
    REAL *A = (REAL *)(base + L->A), *Y = (REAL *)(base + L->Y), *T = (REAL *)(base + L->T);
    REAL *rho_hat = (REAL *)(base + L->rho), *s = (REAL *)(base + L->s);
    void *pack = base + L->pack;

    /* Forward pass. */
    FN(encode_)(model, p.W, p.b, X, m, A, base, L, threads);
    FN(decode_)(model, p.Wd, p.bd, A, m, Y, base, L, threads);
    if (!how->rho_given) {
        FN(column_sums_)(A, m, h, rho_hat);
        for (size_t j = 0; j < h; j++)
            rho_hat[j] /= (REAL)m;
    }

    /* Reconstruction error, turning Y into D3 = (2/m)(Y - X) g'(Z2) as we go. */
    const REAL two_over_m = (REAL)(2.0 / (double)how->divisor);
    const int sigmoid_out = model->decoder == CSAE_DECODER_SIGMOID;
    /* The squares go to sixteen running sums by index (x % 16), added up at
     * the end in a fixed order: vectorised, yet rounded the same way on every
     * path, where an "omp simd" reduction would follow the vector width. */
    double sq_lanes[16] = {0};
    const int fuse_bd = grads.W && n % 16 == 0;
    if (fuse_bd) {
        for (size_t j = 0; j < n; j++)
            grads.bd[j] = 0;
        if (sigmoid_out)
            FN(residuals_sums_)(Y, X, m, n, two_over_m, 1, sq_lanes, grads.bd);
        else
            FN(residuals_sums_)(Y, X, m, n, two_over_m, 0, sq_lanes, grads.bd);
    } else if (sigmoid_out) {
        FN(residuals_)(Y, X, m * n, two_over_m, 1, sq_lanes);
    } else {
        FN(residuals_)(Y, X, m * n, two_over_m, 0, sq_lanes);
    }
    double sq = 0;
    for (size_t l = 0; l < 16; l++)
        sq += sq_lanes[l];
    const REAL *D3 = Y;

    /* Sparsity: KL(rho || rho_hat_j) with rho_hat clipped to [eps, 1 - eps],
     * and s_j, its derivative, which the backward pass spreads over rows
     * (from the running estimate q instead when there is one). */
    double kl = 0;
    /* Clip in REAL, as the reference does: in float32, 1 - eps rounds. */
    const REAL lo = (REAL)EPS_CLIP, hi = (REAL)1 - (REAL)EPS_CLIP;
    const REAL tau = how->tau, keep = (REAL)1 - how->tau;
    for (size_t j = 0; j < h; j++) {
        double q;
        if (how->rho_given) {
            /* The data set's rho_hat is float64: clipped in double (the
             * reference's objective_part), only s is converted to REAL. */
            const double r = how->rho_given[j];
            q = r < EPS_CLIP ? EPS_CLIP : (r > 1 - EPS_CLIP ? 1 - EPS_CLIP : r);
        } else {
            if (how->penalties) {
                q = rho_hat[j] < lo ? lo : (rho_hat[j] > hi ? hi : rho_hat[j]);
                kl += rho * log(rho / q) + (1 - rho) * log((1 - rho) / (1 - q));
            }
            if (how->q_prev && !how->q_first)
                rho_hat[j] = keep * how->q_prev[j] + tau * rho_hat[j];
            q = rho_hat[j] < lo ? lo : (rho_hat[j] > hi ? hi : rho_hat[j]);
        }
        s[j] = (REAL)(beta * (-rho / q + (1 - rho) / (1 - q)));
    }
    *loss = sq / (double)how->divisor;
    if (how->penalties)
        *loss += lambda * (FN(sum_squares_)(p.W, h * n) + FN(sum_squares_)(p.Wd, n * h)) +
                 beta * kl;
    if (!grads.W)
        return;

    /* dL/dWd = D3^T A + 2 lambda Wd; D3^T read through strides (1, n). */
    const REAL two_lambda = (REAL)(2.0 * lambda);
    GEMM(n, h, m, 1, D3, 1, n, A, h, 1, 0, grads.Wd, h, pack, threads, NULL, 0);
    if (how->decay_in_grads)
        for (size_t x = 0; x < n * h; x++)
            grads.Wd[x] += two_lambda * p.Wd[x];
    if (!fuse_bd)
        FN(column_sums_)(D3, m, n, grads.bd);

    /* D2 = (D3 Wd + s/m) f'(Z1), with f'(Z1) = A (1 - A).  The sparsity
     * term sits inside the bracket: it reaches W through rho_hat. */
    GEMM(m, h, n, 1, D3, n, 1, p.Wd, h, 1, 0, T, h, pack, threads, NULL, 0);
    const REAL divisor = (REAL)how->divisor;
    for (size_t j = 0; j < h; j++)
        s[j] /= divisor;
    /* dL/db, the column sums of D2 (rows in order), added as each row of
     * D2 is made rather than in a second pass. */
    for (size_t j = 0; j < h; j++)
        grads.b[j] = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < h; j++) {
            const REAL a = A[i * h + j];
            const REAL d2 = (T[i * h + j] + s[j]) * (a * ((REAL)1 - a));
            T[i * h + j] = d2;
            grads.b[j] += d2;
        }
    const REAL *D2 = T;

    /* dL/dW = D2^T X + 2 lambda W (2 lambda W, not 2 W). */
    GEMM(h, n, m, 1, D2, 1, h, X, n, 1, 0, grads.W, n, pack, threads, NULL, 0);
    if (how->decay_in_grads)
        for (size_t x = 0; x < h * n; x++)
            grads.W[x] += two_lambda * p.W[x];
}

static void FN(objective_)(const csae_model *model, PARAMS p, const REAL *X, size_t m,
                           double *loss, PARAMS grads, char *base, const csae_ws_layout *L,
                           size_t threads)
{
    const FN(objective_how_) how = {m, NULL, NULL, 0, 0, 1, 1};
    FN(objective_grads_)(model, p, X, m, loss, grads, base, L, threads, &how);
}

/* Block-wise evaluation (csae.h): a block's share of the full-batch
 * objective and gradient, divided by the data set's rows and with its
 * rho_hat, without the decay and KL terms.  An empty block gives zeros. */
static void FN(objective_part_)(const csae_model *model, PARAMS p, const REAL *X, size_t m,
                                const double *rho_hat, size_t n_total, double *part,
                                PARAMS grads, char *base, const csae_ws_layout *L,
                                size_t threads)
{
    const FN(objective_how_) how = {n_total, rho_hat, NULL, 0, 0, 0, 0};
    FN(objective_grads_)(model, p, X, m, part, grads, base, L, threads, &how);
}

/* Column sums of A = sigmoid(X W^T + b) in double, rows in order (the
 * workspace's A buffer holds A). */
static void FN(activation_sums_)(const csae_model *model, const REAL *W, const REAL *b,
                                 const REAL *X, size_t m, double *sums, char *base,
                                 const csae_ws_layout *L, size_t threads)
{
    const size_t h = model->n_hidden;
    REAL *A = (REAL *)(base + L->A);
    FN(encode_)(model, W, b, X, m, A, base, L, threads);
    for (size_t j = 0; j < h; j++)
        sums[j] = 0;
    for (size_t i = 0; i < m; i++)
#pragma omp simd
        for (size_t j = 0; j < h; j++)
            sums[j] += (double)A[i * h + j];
}

/* The update of the four parameter blocks (SGD, momentum or Adam), from
 * the gradients g[k] that still lack the weight decay term decay[k] *
 * theta[k] (2 lambda for the weights, 0 for the biases).  A first pass
 * computes every new value and only checks it; the second commits them, so
 * a step that would leave a non-finite parameter (velocity, moment)
 * changes nothing.  Both passes are split over threads in contiguous
 * chunks: every element is computed the same way whatever the split
 * (vectorised loop bodies and their scalar remainders round alike: no
 * reassociation happens inside one element's update). */
#ifndef CSAE_UPDATE_KINDS
#define CSAE_UPDATE_KINDS
enum { UPDATE_PLAIN, UPDATE_MOMENTUM, UPDATE_ADAM };
#endif

typedef struct {
    REAL *theta[4], *vel[4], *m1[4], *m2[4];
    const REAL *g[4];
    size_t len[4];
    REAL decay[4], lr, mu;
    /* Adam: lr is lr_t; beta_1, 1 - beta_1, beta_2, 1 - beta_2, epsilon. */
    REAL b1, c1, b2, c2, eps;
    int kind, commit;
    size_t n_parts;
    int bad[CSAE_MAX_THREADS];    /* per task: a new value was not finite */
} FN(update_job_);

/* The loops of the update, one small function each so that the
 * compiler sees plain restrict-qualified streams and vectorises every one.
 * g + decay * theta rounds as the reference's gradient does.  A value is
 * NaN or inf exactly when its exponent bits are all ones: the checks OR
 * that test over the bit patterns, an integer reduction that vectorises
 * without waiting on a chain of floating-point adds. */
static inline UREAL FN(nonfinite_)(REAL v)
{
    UREAL bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits & EXP_BITS) == EXP_BITS;
}

static int FN(check_plain_)(const REAL *restrict th, const REAL *restrict g,
                            REAL lr, REAL decay, size_t len)
{
    UREAL bad = 0;
    for (size_t x = 0; x < len; x++)
        bad |= FN(nonfinite_)(th[x] - lr * (g[x] + decay * th[x]));
    return bad != 0;
}

static void FN(commit_plain_)(REAL *restrict th, const REAL *restrict g, REAL lr,
                              REAL decay, size_t len)
{
#pragma omp simd
    for (size_t x = 0; x < len; x++)
        th[x] -= lr * (g[x] + decay * th[x]);
}

static int FN(check_momentum_)(const REAL *restrict th, const REAL *restrict v,
                               const REAL *restrict g, REAL lr, REAL mu, REAL decay,
                               size_t len)
{
    UREAL bad = 0;
    for (size_t x = 0; x < len; x++) {
        const REAL step = mu * v[x] - lr * (g[x] + decay * th[x]);
        bad |= FN(nonfinite_)(step) | FN(nonfinite_)(th[x] + step);
    }
    return bad != 0;
}

static void FN(commit_momentum_)(REAL *restrict th, REAL *restrict v,
                                 const REAL *restrict g, REAL lr, REAL mu, REAL decay,
                                 size_t len)
{
#pragma omp simd
    for (size_t x = 0; x < len; x++) {
        v[x] = mu * v[x] - lr * (g[x] + decay * th[x]);
        th[x] += v[x];
    }
}

/* sqrt in REAL (sqrtf for float: correctly rounded either way). */
static inline REAL FN(sqrt_)(REAL x)
{
    return sizeof(REAL) == sizeof(float) ? (REAL)sqrtf((float)x) : (REAL)sqrt((double)x);
}

/* Adam, element x: the new first and second moments and parameter.  A
 * macro so that check and commit compute the very same expressions. */
#define ADAM_NEW(x)                                                            \
    const REAL g_ = g[x] + decay * th[x];                                      \
    const REAL m_ = b1 * m1[x] + c1 * g_;                                      \
    const REAL v_ = b2 * m2[x] + c2 * (g_ * g_);                               \
    const REAL t_ = th[x] - lr * m_ / (FN(sqrt_)(v_) + eps)

static int FN(check_adam_)(const REAL *restrict th, const REAL *restrict m1,
                           const REAL *restrict m2, const REAL *restrict g, REAL lr,
                           REAL decay, REAL b1, REAL c1, REAL b2, REAL c2, REAL eps,
                           size_t len)
{
    UREAL bad = 0;
    for (size_t x = 0; x < len; x++) {
        ADAM_NEW(x);
        bad |= FN(nonfinite_)(m_) | FN(nonfinite_)(v_) | FN(nonfinite_)(t_);
    }
    return bad != 0;
}

static void FN(commit_adam_)(REAL *restrict th, REAL *restrict m1, REAL *restrict m2,
                             const REAL *restrict g, REAL lr, REAL decay, REAL b1, REAL c1,
                             REAL b2, REAL c2, REAL eps, size_t len)
{
    for (size_t x = 0; x < len; x++) {
        ADAM_NEW(x);
        m1[x] = m_;
        m2[x] = v_;
        th[x] = t_;
    }
}
#undef ADAM_NEW

static void FN(update_task_)(void *context, size_t t)
{
    FN(update_job_) *job = context;
    int bad = 0;
    for (int k = 0; k < 4; k++) {
        const size_t lo = job->len[k] * t / job->n_parts;
        const size_t hi = job->len[k] * (t + 1) / job->n_parts;
        REAL *th = job->theta[k] + lo;
        const REAL *g = job->g[k] + lo;
        const size_t len = hi - lo;
        switch (job->kind * 2 + job->commit) {
        case UPDATE_PLAIN * 2:
            bad |= FN(check_plain_)(th, g, job->lr, job->decay[k], len);
            break;
        case UPDATE_PLAIN * 2 + 1:
            FN(commit_plain_)(th, g, job->lr, job->decay[k], len);
            break;
        case UPDATE_MOMENTUM * 2:
            bad |= FN(check_momentum_)(th, job->vel[k] + lo, g, job->lr, job->mu,
                                       job->decay[k], len);
            break;
        case UPDATE_MOMENTUM * 2 + 1:
            FN(commit_momentum_)(th, job->vel[k] + lo, g, job->lr, job->mu, job->decay[k], len);
            break;
        case UPDATE_ADAM * 2:
            bad |= FN(check_adam_)(th, job->m1[k] + lo, job->m2[k] + lo, g, job->lr,
                                   job->decay[k], job->b1, job->c1, job->b2, job->c2,
                                   job->eps, len);
            break;
        default:
            FN(commit_adam_)(th, job->m1[k] + lo, job->m2[k] + lo, g, job->lr, job->decay[k],
                             job->b1, job->c1, job->b2, job->c2, job->eps, len);
            break;
        }
    }
    job->bad[t] = bad;
}

/* Element updates below which the update stays on one thread. */
#define UPDATE_PARALLEL_MIN (1 << 16)

static csae_status FN(apply_update_)(FN(update_job_) *job, size_t threads, double loss)
{
    const size_t total = job->len[0] + job->len[1] + job->len[2] + job->len[3];
    job->n_parts = total >= UPDATE_PARALLEL_MIN ? threads : 1;
    for (job->commit = 0; job->commit < 2; job->commit++) {
        if (job->n_parts == 1)
            FN(update_task_)(job, 0);
        else
            csae_parallel_run(job->n_parts, FN(update_task_), job);
        if (!job->commit) {
            int finite = isfinite(loss);
            for (size_t t = 0; t < job->n_parts; t++)
                finite &= !job->bad[t];
            if (!finite)
                return CSAE_ERR_NONFINITE;
        }
    }
    return CSAE_OK;
}

/* Gradient buffers inside the workspace, in the order W, b, Wd, bd. */
static PARAMS FN(grad_views_)(const csae_model *model, char *base, const csae_ws_layout *L)
{
    const size_t n = model->n_features, h = model->n_hidden;
    REAL *g = (REAL *)(base + L->grad);
    PARAMS grads = {g, g + h * n, g + h * n + h, g + 2 * h * n + h};
    return grads;
}

/* Make job an Adam update of step t = adam_t + 1 (the bias-corrected rate
 * in double, then in REAL). */
static void FN(adam_job_)(FN(update_job_) *job, const csae_sgd *sgd, const csae_solver *solver,
                          uint64_t adam_t)
{
    const double t = (double)adam_t + 1.0;
    const double b1 = solver->beta_1, b2 = solver->beta_2;
    job->kind = UPDATE_ADAM;
    job->lr = (REAL)(sgd->learning_rate * sqrt(1.0 - pow(b2, t)) / (1.0 - pow(b1, t)));
    job->b1 = (REAL)b1;
    job->c1 = (REAL)1 - job->b1;
    job->b2 = (REAL)b2;
    job->c2 = (REAL)1 - job->b2;
    job->eps = (REAL)solver->epsilon;
}

/* One optimizer step on a flat vector (csae_flat_step): the update of
 * step_ above, on one block of n elements whose gradient already holds
 * every penalty (decay 0).  The other three blocks are empty views of the
 * first, so the update's loops run unchanged. */
static csae_status FN(flat_step_)(const csae_sgd *sgd, const csae_solver *solver, REAL *theta,
                                  const REAL *grad, size_t n, FLAT *state, size_t threads)
{
    REAL *v = state->velocity ? state->velocity : theta;
    REAL *m1 = state->adam_m ? state->adam_m : theta;
    REAL *m2 = state->adam_v ? state->adam_v : theta;
    FN(update_job_) job = {
        {theta, theta, theta, theta}, {v, v, v, v}, {m1, m1, m1, m1}, {m2, m2, m2, m2},
        {grad, grad, grad, grad}, {n, 0, 0, 0}, {0, 0, 0, 0},
        (REAL)sgd->learning_rate, (REAL)sgd->momentum,
        0, 0, 0, 0, 0,
        sgd->momentum != 0 ? UPDATE_MOMENTUM : UPDATE_PLAIN, 0, 1, {0}};
    if (solver->adam)
        FN(adam_job_)(&job, sgd, solver, state->adam_t);
    const csae_status status = FN(apply_update_)(&job, threads, 0.0);
    if (status == CSAE_OK && solver->adam)
        state->adam_t++;
    return status;
}

/* One training step (csae_train_step).  One-row batches of plain SGD or
 * momentum without the running estimate take the fused step of
 * sample_template.h; everything else the GEMM-based objective and the
 * checked update above.  The running estimate's new q is checked with the
 * rest and stored only once the update went through. */
static csae_status FN(step_)(const csae_model *model, const csae_sgd *sgd,
                             const csae_solver *solver, PARAMS p, STATE *state, const REAL *X,
                             size_t m, double *loss, char *base, const csae_ws_layout *L,
                             size_t threads)
{
    const int running = solver->sparsity_smoothing != 0;
    if (m == 1 && L->sample && !solver->adam && !running)
        return FN(sample_step_)(model, sgd, p, state->velocity, X, loss, base, L);
    const size_t n = model->n_features, h = model->n_hidden;
    const REAL two_lambda = (REAL)(2.0 * model->weight_decay);
    PARAMS grads = FN(grad_views_)(model, base, L);
    const FN(objective_how_) how = {m,
                                    NULL,
                                    running ? state->rho_running : NULL,
                                    (REAL)solver->sparsity_smoothing,
                                    state->running_batches == 0,
                                    1,
                                    0};
    FN(objective_grads_)(model, p, X, m, loss, grads, base, L, threads, &how);
    const REAL *q_new = (const REAL *)(base + L->rho);
    if (running) {
        UREAL bad = 0;
        for (size_t j = 0; j < h; j++)
            bad |= FN(nonfinite_)(q_new[j]);
        if (bad)
            return CSAE_ERR_NONFINITE;
    }
    PARAMS v = state->velocity, m1 = state->adam_m, m2 = state->adam_v;
    FN(update_job_) job = {
        {p.W, p.b, p.Wd, p.bd}, {v.W, v.b, v.Wd, v.bd}, {m1.W, m1.b, m1.Wd, m1.bd},
        {m2.W, m2.b, m2.Wd, m2.bd}, {grads.W, grads.b, grads.Wd, grads.bd},
        {h * n, h, n * h, n}, {two_lambda, 0, two_lambda, 0},
        (REAL)sgd->learning_rate, (REAL)sgd->momentum,
        0, 0, 0, 0, 0,
        sgd->momentum != 0 ? UPDATE_MOMENTUM : UPDATE_PLAIN, 0, 1, {0}};
    if (solver->adam)
        FN(adam_job_)(&job, sgd, solver, state->adam_t);
    const csae_status status = FN(apply_update_)(&job, threads, *loss);
    if (status != CSAE_OK)
        return status;
    if (running) {
        memcpy(state->rho_running, q_new, h * sizeof(REAL));
        state->running_batches++;
    }
    if (solver->adam)
        state->adam_t++;
    return CSAE_OK;
}

#undef GEMM
#undef STATE
#undef FLAT
#undef PARAMS
