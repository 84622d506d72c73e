/*
 * deep_template.h: the csae_deep_* functions for one element type, included
 * by deep.c with REAL, SFX (f64 or f32) and EXP (exp or expf) defined.
 * Arrays are named after their axes: m rows, n = h_0 features, h_l the
 * width of layer l, k classes.
 */

#define GEMM_OF(ops) ((ops)->CAT(gemm_, SFX))

#include "sum_squares.h"

/* Whether x[0..len) holds a NaN or an infinity: x * 0 is 0 for a finite
 * value and NaN otherwise, summed in sixteen independent lanes (which the
 * compiler vectorises; order does not matter for a NaN). */
static int FN(deep_nonfinite_)(const REAL *x, size_t len)
{
    REAL acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= len; i += 16)
        for (size_t j = 0; j < 16; j++)
            acc[j] += x[i + j] * 0;
    REAL total = 0;
    for (; i < len; i++)
        total += x[i] * 0;
    for (size_t j = 0; j < 16; j++)
        total += acc[j];
    return total != 0 || total != total;
}

/* Softmax of each row of Z (m x k) in place.  The row maximum is
 * subtracted first, so every exp is at most 1 and the sum at least 1: no
 * logit overflows, and log(sum) is the shifted log-sum-exp.  With `y`,
 * also returns the sum over rows of -log P[i, y_i] = log(sum) - (z_iy - max)
 * in double (the probabilities themselves would underflow to 0 and give
 * -log 0).  A NaN in a row makes its sum, and so the whole row, NaN. */
static double FN(deep_softmax_)(REAL *Z, size_t m, size_t k, const int64_t *y)
{
    double ce = 0;
    for (size_t i = 0; i < m; i++) {
        REAL *z = Z + i * k;
        REAL mx = z[0];
        for (size_t j = 1; j < k; j++)
            if (z[j] > mx)
                mx = z[j];
        const REAL zy = y ? z[y[i]] - mx : 0;
        REAL s = 0;
        for (size_t j = 0; j < k; j++) {
            const REAL e = EXP(z[j] - mx);
            z[j] = e;
            s += e;
        }
        for (size_t j = 0; j < k; j++)
            z[j] /= s;
        if (y)
            ce += log((double)s) - (double)zy;
    }
    return ce;
}

/* theta's W_l and b_l for layer l = 1..L+1 (h_0 = n, h_{L+1} = k). */
static void FN(deep_layer_)(const size_t *sz, size_t l, REAL *theta, REAL **W, REAL **b)
{
    size_t off = 0;
    for (size_t j = 1; j < l; j++)
        off += sz[j] * sz[j - 1] + sz[j];
    *W = theta + off;
    *b = theta + off + sz[l] * sz[l - 1];
}

/* The forward pass of layers 1..top, A_l = sigmoid(A_{l-1} W_l^T + b_l)
 * for the hidden layers (W_l read as the h_{l-1} x h_l matrix W_l^T:
 * strides 1, h_{l-1}), the bias and sigmoid fused into the GEMM's epilogue;
 * the softmax layer (top = L + 1) gets its logits, bias only.  Layer top
 * writes into Z (the logits, or A_L itself when top = L: the encoder
 * alone); the layers below it into acts(l). */
static void FN(deep_forward_pass_)(const csae_ops *ops, const csae_deep_net *net, size_t top,
                                   const REAL *theta, const REAL *X, size_t m, REAL *Z,
                                   REAL *(*acts)(void *, size_t), void *ctx, void *pack,
                                   size_t threads)
{
    const size_t *sz = net->sizes, L = net->n_hidden_layers;
    const REAL *prev = X;
    for (size_t l = 1; l <= top; l++) {
        REAL *W, *b;
        FN(deep_layer_)(sz, l, (REAL *)theta, &W, &b);
        REAL *out = l < top ? acts(ctx, l) : Z;
        GEMM_OF(ops)(m, sz[l], sz[l - 1], 1, prev, sz[l - 1], 1, W, 1, sz[l - 1], 0, out, sz[l],
                     pack, threads, b, l <= L);
        prev = out;
    }
}

/* Where A_l lives: the forward pass alternates two buffers... */
typedef struct {
    char *base;
    const deep_layout *D;
    const csae_deep_net *net;
    size_t m;
} FN(deep_acts_ctx_);

static REAL *FN(deep_acts_pingpong_)(void *context, size_t l)
{
    const FN(deep_acts_ctx_) *c = context;
    size_t h_max, all_max;
    widths(c->net, &h_max, &all_max);
    const size_t wide = padded(c->m * h_max * sizeof(REAL));
    return (REAL *)(c->base + c->D->acts + (l % 2) * wide);
}

/* ...the objective keeps them all, one after another. */
static REAL *FN(deep_acts_all_)(void *context, size_t l)
{
    const FN(deep_acts_ctx_) *c = context;
    size_t off = c->D->acts;
    for (size_t j = 1; j < l; j++)
        off += padded(c->m * c->net->sizes[j] * sizeof(REAL));
    return (REAL *)(c->base + off);
}

/* The checks shared by both entry points: a valid net, sizes whose bytes
 * do not overflow, pointers present.  Returns theta's length, 0 if bad. */
static size_t FN(deep_check_)(const csae_deep_net *net, const REAL *theta, const REAL *X,
                              size_t m)
{
    const size_t n_params = csae_deep_n_params(net);
    if (n_params == 0 || !theta || (m && !X))
        return 0;
    if (mul_size(mul_size(m, net->sizes[0]), sizeof(REAL)) == SIZE_MAX ||
        mul_size(mul_size(m, net->sizes[net->n_hidden_layers + 1]), sizeof(REAL)) == SIZE_MAX)
        return 0;
    return n_params;
}

/* The forward pass's outputs for both entry points: the class
 * probabilities (`classes`: layers 1..L+1, then the softmax) or the top
 * hidden layer A_L (layers 1..L; only the hidden layers' part of theta is
 * read, so the softmax layer's weights may be absent).  One set of
 * argument checks and one rule for non-finite inputs serves both. */
static csae_status FN(deep_outputs_)(const csae_deep_net *net, const REAL *theta,
                                     const REAL *X, size_t m, REAL *out,
                                     const csae_workspace *ws, int classes)
{
    const size_t n_params = FN(deep_check_)(net, theta, X, m);
    const size_t L = n_params ? net->n_hidden_layers : 0;
    if (n_params == 0 || (!classes && L == 0) || (m && !out))
        return CSAE_ERR_ARGUMENT;
    const size_t threads = ws ? clamp_threads(ws->n_threads) : 1;
    const deep_layout D = layout_for(net, m, sizeof(REAL), threads, 0);
    if (D.total == SIZE_MAX)
        return CSAE_ERR_ARGUMENT;
    const size_t *sz = net->sizes, n = sz[0];
    const size_t top = classes ? L + 1 : L, width = sz[top];
    const size_t n_read = classes ? n_params : n_params - (sz[L + 1] * sz[L] + sz[L + 1]);
    /* The output must not overlap theta, X or the workspace (csae.h). */
    const csae_span spans[4] = {{theta, n_read * sizeof(REAL), 0},
                                {X, m * n * sizeof(REAL), 0},
                                {out, m * width * sizeof(REAL), 1},
                                {ws ? ws->data : NULL, ws ? ws->size : 0, 1}};
    if (!csae_spans_ok(spans, 4))
        return CSAE_ERR_ARGUMENT;
    char *base = ws_base(ws, &D);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    if (m == 0)
        return CSAE_OK;
    FN(deep_acts_ctx_) ctx = {base, &D, net, m};
    FN(deep_forward_pass_)(csae_ops_active(), net, top, theta, X, m, out,
                           FN(deep_acts_pingpong_), &ctx, base + D.pack, threads);
    if (classes)
        FN(deep_softmax_)(out, m, width, NULL);
    /* Non-finite inputs give NaN outputs (csae.h), stated and applied
     * here rather than left to the arithmetic: an infinity can come out of
     * the products as +-inf (a saturated sigmoid, a finite probability) or
     * as NaN (inf - inf), depending on the weights. */
    const int bad_theta = FN(deep_nonfinite_)(theta, n_read);
    for (size_t i = 0; i < m; i++)
        if (bad_theta || FN(deep_nonfinite_)(X + i * n, n))
            for (size_t j = 0; j < width; j++)
                out[i * width + j] = (REAL)NAN;
    return CSAE_OK;
}

csae_status FN(csae_deep_forward_)(const csae_deep_net *net, const REAL *theta, const REAL *X,
                                   size_t m, REAL *P, const csae_workspace *ws)
{
    return FN(deep_outputs_)(net, theta, X, m, P, ws, 1);
}

csae_status FN(csae_deep_encode_)(const csae_deep_net *net, const REAL *theta, const REAL *X,
                                  size_t m, REAL *H, const csae_workspace *ws)
{
    return FN(deep_outputs_)(net, theta, X, m, H, ws, 0);
}

csae_status FN(csae_deep_objective_)(const csae_deep_net *net, const REAL *theta,
                                     const REAL *X, const int64_t *y, size_t m,
                                     double weight_decay, double *loss, REAL *grad,
                                     const csae_workspace *ws)
{
    const size_t n_params = FN(deep_check_)(net, theta, X, m);
    if (n_params == 0 || m == 0 || !y || !loss ||
        !(weight_decay >= 0 && isfinite(weight_decay)))
        return CSAE_ERR_ARGUMENT;
    const size_t threads = ws ? clamp_threads(ws->n_threads) : 1;
    const deep_layout D = layout_for(net, m, sizeof(REAL), threads, 1);
    if (D.total == SIZE_MAX)
        return CSAE_ERR_ARGUMENT;
    const size_t *sz = net->sizes, L = net->n_hidden_layers;
    const size_t n = sz[0], k = sz[L + 1];
    /* Outputs must not overlap inputs, each other or the workspace: they are
     * written while the inputs are still being read. */
    const csae_span spans[6] = {{theta, n_params * sizeof(REAL), 0},
                                {X, m * n * sizeof(REAL), 0},
                                {y, m * sizeof(int64_t), 0},
                                {loss, sizeof(double), 1},
                                {grad, grad ? n_params * sizeof(REAL) : 0, 1},
                                {ws ? ws->data : NULL, ws ? ws->size : 0, 1}};
    if (!csae_spans_ok(spans, 6))
        return CSAE_ERR_ARGUMENT;
    for (size_t i = 0; i < m; i++)
        if (y[i] < 0 || (uint64_t)y[i] >= (uint64_t)k)
            return CSAE_ERR_LABEL;
    char *base = ws_base(ws, &D);
    if (!base)
        return CSAE_ERR_WORKSPACE;

    /* Non-finite inputs: NaN objective and gradient (see the forward pass). */
    if (FN(deep_nonfinite_)(theta, n_params) || FN(deep_nonfinite_)(X, m * n)) {
        *loss = NAN;
        if (grad)
            for (size_t x = 0; x < n_params; x++)
                grad[x] = (REAL)NAN;
        return CSAE_OK;
    }
    const csae_ops *ops = csae_ops_active();
    void *pack = base + D.pack;
    FN(deep_acts_ctx_) ctx = {base, &D, net, m};
    REAL *P = (REAL *)(base + D.probs), *T = (REAL *)(base + D.temp);
    FN(deep_forward_pass_)(ops, net, L + 1, theta, X, m, P, FN(deep_acts_all_), &ctx, pack,
                           threads);
    const double ce = FN(deep_softmax_)(P, m, k, y);
    double decay = 0;
    for (size_t l = 1; l <= L + 1; l++) {
        REAL *W, *b;
        FN(deep_layer_)(sz, l, (REAL *)theta, &W, &b);
        decay += FN(sum_squares_)(W, sz[l] * sz[l - 1]);
    }
    *loss = ce / (double)m + 0.5 * weight_decay * decay;
    if (!grad)
        return CSAE_OK;

    /* D_o = (P - T) / m, T the one-hot labels, in place over P. */
    const REAL rows = (REAL)m, lam = (REAL)weight_decay;
    for (size_t i = 0; i < m; i++) {
        REAL *d = P + i * k;
        d[y[i]] -= 1;
        for (size_t j = 0; j < k; j++)
            d[j] /= rows;
    }
    /* Layer by layer from the top: D holds D_l (m x h_l). */
    REAL *Dl = P;
    for (size_t l = L + 1; l >= 1; l--) {
        const size_t h = sz[l], h_prev = sz[l - 1];
        REAL *W, *b, *gW, *gb;
        FN(deep_layer_)(sz, l, (REAL *)theta, &W, &b);
        FN(deep_layer_)(sz, l, grad, &gW, &gb);
        const REAL *A_prev = l > 1 ? FN(deep_acts_all_)(&ctx, l - 1) : X;
        /* dJ/dW_l = D_l^T A_{l-1} + lambda W_l; D_l^T read through strides
         * (1, h). */
        GEMM_OF(ops)(h, h_prev, m, 1, Dl, 1, h, A_prev, h_prev, 1, 0, gW, h_prev, pack,
                     threads, NULL, 0);
        for (size_t x = 0; x < h * h_prev; x++)
            gW[x] += lam * W[x];
        /* dJ/db_l = column sums of D_l, rows added in order. */
        for (size_t j = 0; j < h; j++)
            gb[j] = 0;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < h; j++)
                gb[j] += Dl[i * h + j];
        if (l == 1)
            break;
        /* D_{l-1} = (D_l W_l) * A_{l-1} (1 - A_{l-1}), the sigmoid's
         * derivative from its output; written over A_{l-1}, which no later
         * step needs. */
        GEMM_OF(ops)(m, h_prev, h, 1, Dl, h, 1, W, h_prev, 1, 0, T, h_prev, pack, threads,
                     NULL, 0);
        REAL *A = FN(deep_acts_all_)(&ctx, l - 1);
        for (size_t x = 0; x < m * h_prev; x++) {
            const REAL a = A[x];
            A[x] = T[x] * (a * ((REAL)1 - a));
        }
        Dl = A;
    }
    return CSAE_OK;
}

#undef GEMM_OF
