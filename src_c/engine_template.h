/*
 * engine_template.h: the engine for one element type, included by engine.c
 * with REAL, SFX (f64 or f32) and EPS_CLIP (the rho_hat clip) defined.
 * docs/math.md has the formulas; csae/reference.py the same steps in NumPy.
 */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)
#define PARAMS CAT(csae_params_, SFX)
#define GEMM CAT(csae_gemm_, SFX)
#define BIAS_ACT CAT(bias_act_, SFX)

static int FN(params_ok_)(PARAMS p)
{
    return p.W && p.b && p.Wd && p.bd;
}

/* A = sigmoid(X W^T + b): W read as the n x h matrix W^T (strides 1, n). */
static void FN(encode_)(const csae_model *model, const REAL *W, const REAL *b,
                        const REAL *X, size_t m, REAL *A, void *pack, size_t threads)
{
    const size_t n = model->n_features, h = model->n_hidden;
    GEMM(m, h, n, 1, X, n, 1, W, 1, n, 0, A, h, pack, threads);
    csae_kernels_active()->BIAS_ACT(m, h, b, A, h, 1);
}

/* Y = g(A Wd^T + bd): Wd read as the h x n matrix Wd^T (strides 1, h). */
static void FN(decode_)(const csae_model *model, const REAL *Wd, const REAL *bd,
                        const REAL *A, size_t m, REAL *Y, void *pack, size_t threads)
{
    const size_t n = model->n_features, h = model->n_hidden;
    GEMM(m, n, h, 1, A, h, 1, Wd, 1, h, 0, Y, n, pack, threads);
    csae_kernels_active()->BIAS_ACT(m, n, bd, Y, n, model->decoder == CSAE_DECODER_SIGMOID);
}

csae_status FN(csae_encode_)(const csae_model *model, const REAL *W, const REAL *b,
                             const REAL *X, size_t m, REAL *A, const csae_workspace *ws)
{
    if (!model_ok(model) || !W || !b || (m && (!X || !A)))
        return CSAE_ERR_ARGUMENT;
    const ws_layout L = layout_for(model, m, sizeof(REAL), threads_of(ws), WS_FORWARD, 0, 0);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    FN(encode_)(model, W, b, X, m, A, base + L.pack, threads_of(ws));
    return CSAE_OK;
}

csae_status FN(csae_decode_)(const csae_model *model, const REAL *Wd, const REAL *bd,
                             const REAL *A, size_t m, REAL *Y, const csae_workspace *ws)
{
    if (!model_ok(model) || !Wd || !bd || (m && (!A || !Y)))
        return CSAE_ERR_ARGUMENT;
    const ws_layout L = layout_for(model, m, sizeof(REAL), threads_of(ws), WS_FORWARD, 0, 0);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    FN(decode_)(model, Wd, bd, A, m, Y, base + L.pack, threads_of(ws));
    return CSAE_OK;
}

csae_status FN(csae_reconstruct_)(const csae_model *model, PARAMS params,
                                  const REAL *X, size_t m, REAL *Y, const csae_workspace *ws)
{
    if (!model_ok(model) || !FN(params_ok_)(params) || (m && (!X || !Y)))
        return CSAE_ERR_ARGUMENT;
    const ws_layout L = layout_for(model, m, sizeof(REAL), threads_of(ws), WS_FORWARD, 0, 0);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    REAL *A = (REAL *)(base + L.A);
    FN(encode_)(model, params.W, params.b, X, m, A, base + L.pack, threads_of(ws));
    FN(decode_)(model, params.Wd, params.bd, A, m, Y, base + L.pack, threads_of(ws));
    return CSAE_OK;
}

/* Sum of squares in double, whatever REAL is. */
static double FN(sum_squares_)(const REAL *x, size_t len)
{
    double acc = 0;
    for (size_t i = 0; i < len; i++)
        acc += (double)x[i] * x[i];
    return acc;
}

/* Column sums of an m x w row-major matrix, rows added in order. */
static void FN(column_sums_)(const REAL *M, size_t m, size_t w, REAL *out)
{
    for (size_t j = 0; j < w; j++)
        out[j] = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < w; j++)
            out[j] += M[i * w + j];
}

/* The objective on one batch and, if grads.W is set, its gradients.
 * Uses the workspace buffers A, Y, T, rho and s of layout L at base. */
static void FN(objective_)(const csae_model *model, PARAMS p, const REAL *X, size_t m,
                           double *loss, PARAMS grads, char *base, const ws_layout *L,
                           size_t threads)
{
    const size_t n = model->n_features, h = model->n_hidden;
    const double rho = model->sparsity_target, beta = model->sparsity_weight;
    const double lambda = model->weight_decay;
    REAL *A = (REAL *)(base + L->A), *Y = (REAL *)(base + L->Y), *T = (REAL *)(base + L->T);
    REAL *rho_hat = (REAL *)(base + L->rho), *s = (REAL *)(base + L->s);
    void *pack = base + L->pack;

    /* Forward pass. */
    FN(encode_)(model, p.W, p.b, X, m, A, pack, threads);
    FN(decode_)(model, p.Wd, p.bd, A, m, Y, pack, threads);
    FN(column_sums_)(A, m, h, rho_hat);
    for (size_t j = 0; j < h; j++)
        rho_hat[j] /= (REAL)m;

    /* Reconstruction error, turning Y into D3 = (2/m)(Y - X) g'(Z2) as we go. */
    const REAL two_over_m = (REAL)(2.0 / (double)m);
    const int sigmoid_out = model->decoder == CSAE_DECODER_SIGMOID;
    double sq = 0;
    for (size_t x = 0; x < m * n; x++) {
        const REAL y = Y[x], r = y - X[x];
        sq += (double)r * r;
        REAL d = two_over_m * r;
        if (sigmoid_out)
            d *= y * ((REAL)1 - y);
        Y[x] = d;
    }
    const REAL *D3 = Y;

    /* Sparsity: KL(rho || rho_hat_j) with rho_hat clipped to [eps, 1 - eps],
     * and s_j, its derivative, which the backward pass spreads over rows. */
    double kl = 0;
    for (size_t j = 0; j < h; j++) {
        double q = rho_hat[j];
        q = q < EPS_CLIP ? EPS_CLIP : (q > 1 - EPS_CLIP ? 1 - EPS_CLIP : q);
        kl += rho * log(rho / q) + (1 - rho) * log((1 - rho) / (1 - q));
        s[j] = (REAL)(beta * (-rho / q + (1 - rho) / (1 - q)));
    }
    const double decay = lambda * (FN(sum_squares_)(p.W, h * n) + FN(sum_squares_)(p.Wd, n * h));
    *loss = sq / (double)m + decay + beta * kl;
    if (!grads.W)
        return;

    /* dL/dWd = D3^T A + 2 lambda Wd; D3^T read through strides (1, n). */
    const REAL two_lambda = (REAL)(2.0 * lambda);
    GEMM(n, h, m, 1, D3, 1, n, A, h, 1, 0, grads.Wd, h, pack, threads);
    for (size_t x = 0; x < n * h; x++)
        grads.Wd[x] += two_lambda * p.Wd[x];
    FN(column_sums_)(D3, m, n, grads.bd);

    /* D2 = (D3 Wd + s/m) f'(Z1), with f'(Z1) = A (1 - A).  The sparsity
     * term sits inside the bracket: it reaches W through rho_hat. */
    GEMM(m, h, n, 1, D3, n, 1, p.Wd, h, 1, 0, T, h, pack, threads);
    for (size_t j = 0; j < h; j++)
        s[j] /= (REAL)m;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < h; j++) {
            const REAL a = A[i * h + j];
            T[i * h + j] = (T[i * h + j] + s[j]) * (a * ((REAL)1 - a));
        }
    const REAL *D2 = T;

    /* dL/dW = D2^T X + 2 lambda W (2 lambda W, not 2 W). */
    GEMM(h, n, m, 1, D2, 1, h, X, n, 1, 0, grads.W, n, pack, threads);
    for (size_t x = 0; x < h * n; x++)
        grads.W[x] += two_lambda * p.W[x];
    FN(column_sums_)(D2, m, h, grads.b);
}

csae_status FN(csae_objective_)(const csae_model *model, PARAMS params, const REAL *X,
                                size_t m, double *loss, PARAMS grads, REAL *rho_hat,
                                const csae_workspace *ws)
{
    if (!model_ok(model) || !FN(params_ok_)(params) || !X || m == 0 || !loss)
        return CSAE_ERR_ARGUMENT;
    const int want = grads.W || grads.b || grads.Wd || grads.bd;
    if (want && !FN(params_ok_)(grads))
        return CSAE_ERR_ARGUMENT;
    const ws_layout L = layout_for(model, m, sizeof(REAL), threads_of(ws), WS_TRAIN, 0, 0);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    FN(objective_)(model, params, X, m, loss, grads, base, &L, threads_of(ws));
    if (rho_hat)
        memcpy(rho_hat, base + L.rho, model->n_hidden * sizeof(REAL));
    return CSAE_OK;
}

/* One update from the gradient in `g` (the four blocks laid end to end).
 * First pass: the new values go into g itself and are checked; only if all
 * are finite does the second pass commit them, so a failed step changes
 * nothing.  With momentum, g receives the new velocity v' = mu v - lr g and
 * the parameters become theta + v'. */
static csae_status FN(apply_update_)(REAL *const theta[4], REAL *const vel[4],
                                     REAL *const g[4], const size_t len[4],
                                     double learning_rate, double momentum, double loss)
{
    const REAL lr = (REAL)learning_rate, mu = (REAL)momentum;
    int finite = isfinite(loss);
    for (int k = 0; k < 4; k++) {
        for (size_t x = 0; x < len[k]; x++) {
            REAL step;
            if (momentum == 0) {
                step = -(lr * g[k][x]);
                g[k][x] = theta[k][x] + step;
                finite &= isfinite(g[k][x]);
            } else {
                step = mu * vel[k][x] - lr * g[k][x];
                g[k][x] = step;
                finite &= isfinite(step) && isfinite(theta[k][x] + step);
            }
        }
    }
    if (!finite)
        return CSAE_ERR_NONFINITE;
    for (int k = 0; k < 4; k++) {
        if (momentum == 0) {
            memcpy(theta[k], g[k], len[k] * sizeof(REAL));
        } else {
            for (size_t x = 0; x < len[k]; x++) {
                vel[k][x] = g[k][x];
                theta[k][x] += g[k][x];
            }
        }
    }
    return CSAE_OK;
}

/* Gradient buffers inside the workspace, in the order W, b, Wd, bd. */
static PARAMS FN(grad_views_)(const csae_model *model, char *base, const ws_layout *L)
{
    const size_t n = model->n_features, h = model->n_hidden;
    REAL *g = (REAL *)(base + L->grad);
    PARAMS grads = {g, g + h * n, g + h * n + h, g + 2 * h * n + h};
    return grads;
}

static csae_status FN(step_)(const csae_model *model, const csae_sgd *sgd, PARAMS p,
                             PARAMS v, const REAL *X, size_t m, double *loss, char *base,
                             const ws_layout *L, size_t threads)
{
    const size_t n = model->n_features, h = model->n_hidden;
    PARAMS grads = FN(grad_views_)(model, base, L);
    FN(objective_)(model, p, X, m, loss, grads, base, L, threads);
    REAL *const theta[4] = {p.W, p.b, p.Wd, p.bd};
    REAL *const vel[4] = {v.W, v.b, v.Wd, v.bd};
    REAL *const g[4] = {grads.W, grads.b, grads.Wd, grads.bd};
    const size_t len[4] = {h * n, h, n * h, n};
    return FN(apply_update_)(theta, vel, g, len, sgd->learning_rate, sgd->momentum, *loss);
}

csae_status FN(csae_sgd_step_)(const csae_model *model, const csae_sgd *sgd,
                               PARAMS params, PARAMS velocity, const REAL *X, size_t m,
                               double *loss, const csae_workspace *ws)
{
    if (!model_ok(model) || !sgd_ok(sgd) || !FN(params_ok_)(params) || !X || m == 0 || !loss)
        return CSAE_ERR_ARGUMENT;
    if (sgd->momentum != 0 && !FN(params_ok_)(velocity))
        return CSAE_ERR_ARGUMENT;
    const ws_layout L = layout_for(model, m, sizeof(REAL), threads_of(ws), WS_TRAIN, 0, 0);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    return FN(step_)(model, sgd, params, velocity, X, m, loss, base, &L, threads_of(ws));
}

csae_status FN(csae_sgd_epoch_)(const csae_model *model, const csae_sgd *sgd,
                                PARAMS params, PARAMS velocity, const REAL *X,
                                size_t n_samples, uint64_t *rng_state, csae_stop_fn stop,
                                void *stop_context, size_t check_every,
                                csae_epoch_result *result, const csae_workspace *ws)
{
    if (!model_ok(model) || !sgd_ok(sgd) || !FN(params_ok_)(params) || !X ||
        n_samples == 0 || !result || (sgd->shuffle && !rng_state))
        return CSAE_ERR_ARGUMENT;
    if (sgd->momentum != 0 && !FN(params_ok_)(velocity))
        return CSAE_ERR_ARGUMENT;
    const size_t n = model->n_features;
    const size_t batch = sgd->batch_size < n_samples ? sgd->batch_size : n_samples;
    const ws_layout L = layout_for(model, batch, sizeof(REAL), threads_of(ws), WS_EPOCH,
                                   n_samples, sgd->shuffle);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;

    size_t *order = (size_t *)(base + L.order);
    REAL *gathered = (REAL *)(base + L.gather);
    if (sgd->shuffle)
        csae_rng_permutation(rng_state, order, n_samples);
    if (check_every == 0)
        check_every = 1;

    double total = 0;
    memset(result, 0, sizeof *result);
    csae_status status = CSAE_OK;
    for (size_t start = 0, index = 0; start < n_samples; start += batch, index++) {
        if (stop && index > 0 && index % check_every == 0 && stop(stop_context)) {
            status = CSAE_ERR_STOPPED;
            break;
        }
        const size_t rows = n_samples - start < batch ? n_samples - start : batch;
        const REAL *Xb = X + start * n;
        if (sgd->shuffle) {
            for (size_t i = 0; i < rows; i++)
                memcpy(gathered + i * n, X + order[start + i] * n, n * sizeof(REAL));
            Xb = gathered;
        }
        double loss;
        status = FN(step_)(model, sgd, params, velocity, Xb, rows, &loss, base, &L,
                           threads_of(ws));
        if (status != CSAE_OK)
            break;
        total += loss * (double)rows;
        result->batches_done++;
        result->rows_done += rows;
    }
    result->loss = result->rows_done ? total / (double)result->rows_done : 0.0;
    return status;
}

#undef BIAS_ACT
#undef GEMM
#undef PARAMS
#undef FN
#undef CAT
#undef CAT_
