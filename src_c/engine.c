/*
 * engine.c: the public csae_* functions for both element types (the
 * per-type code lives in api_template.h) and the workspace layout they
 * share with the size queries.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "csae.h"
#include "kernels.h"

/* ---- Workspace layout -----------------------------------------------------
 * Every buffer starts on a CSAE_ALIGN boundary of the (aligned-up) workspace.
 * Offsets are computed in one place so the size queries and the functions
 * that carve the workspace can never disagree. */

typedef csae_ws_layout ws_layout;

enum { WS_FORWARD, WS_TRAIN, WS_EPOCH };

/* a * b and a + b, or SIZE_MAX if they overflow (then every size query
 * fails): kernels.h. */
#define mul_size csae_mul_size
#define add_size csae_add_size

/* The workspace as one more array a call writes (its caller-stated size). */
static csae_span ws_span(const csae_workspace *ws)
{
    csae_span s = {ws ? ws->data : NULL, ws ? ws->size : 0, 1};
    return s;
}

/* Append a buffer of `bytes` to the layout; returns its offset. */
static size_t take(size_t *cursor, size_t bytes)
{
    const size_t at = *cursor;
    const size_t padded = add_size(bytes, CSAE_ALIGN - 1) / CSAE_ALIGN * CSAE_ALIGN;
    *cursor = add_size(*cursor, padded);
    return at;
}

static ws_layout layout_for(const csae_model *model, size_t rows, size_t elem,
                            size_t n_threads, int kind, size_t n_samples, int shuffle)
{
    ws_layout L;
    memset(&L, 0, sizeof L);
    const size_t n = model->n_features, h = model->n_hidden;
    size_t cursor = 0;
    L.A = take(&cursor, mul_size(mul_size(rows, h), elem));
    if (kind != WS_FORWARD) {
        L.Y = take(&cursor, mul_size(mul_size(rows, n), elem));
        L.T = take(&cursor, mul_size(mul_size(rows, h), elem));
        L.rho = take(&cursor, mul_size(h, elem));
        L.s = take(&cursor, mul_size(h, elem));
        /* The gradients; for the fused small-batch step (sample_template.h)
         * the backups of the parameters and of the velocities, and n + h
         * column sums (counted as doubles), instead. */
        const size_t params = add_size(mul_size(2 * n, h), n + h);
        size_t grad_bytes = mul_size(params, elem);
        L.sample = rows <= CSAE_SAMPLE_MAX_ROWS;
        if (L.sample)
            grad_bytes = add_size(mul_size(grad_bytes, 2), mul_size(n + h, sizeof(double)));
        L.grad = take(&cursor, grad_bytes);
    }
    if (kind == WS_EPOCH) {
        L.order = take(&cursor, mul_size(n_samples, sizeof(size_t)));
        if (shuffle)
            L.gather = take(&cursor, mul_size(mul_size(rows, n), elem));
    }
    /* With one row every product is a GEMV or an outer product, which the
     * GEMM does without packing (and a small workspace is cheap to allocate
     * per call: single-row encoding is latency-bound). */
    /* Every product's C is at most max(n, h) wide; its depth is n or h, and
     * the batch rows for the gradients. */
    const size_t width = n > h ? n : h;
    const size_t depth = kind == WS_FORWARD || rows < width ? width : rows;
    L.pack = take(&cursor, rows > 1 ? csae_gemm_pack_size(width, depth, elem, n_threads) : 0);
    L.total = add_size(cursor, CSAE_ALIGN); /* room to align the caller's pointer */
    return L;
}

static int model_ok(const csae_model *model)
{
    if (!model || model->n_features == 0 || model->n_hidden == 0)
        return 0;
    if (model->decoder != CSAE_DECODER_SIGMOID && model->decoder != CSAE_DECODER_LINEAR)
        return 0;
    const double rho = model->sparsity_target;
    if (!(rho > 0.0 && rho < 1.0))
        return 0;
    if (!(model->sparsity_weight >= 0.0 && isfinite(model->sparsity_weight)))
        return 0;
    if (!(model->weight_decay >= 0.0 && isfinite(model->weight_decay)))
        return 0;
    /* Parameter counts must be addressable. */
    return mul_size(mul_size(model->n_features, model->n_hidden), 2 * sizeof(double)) != SIZE_MAX;
}

static int sgd_ok(const csae_sgd *sgd)
{
    return sgd && sgd->learning_rate > 0.0 && isfinite(sgd->learning_rate) &&
           sgd->momentum >= 0.0 && sgd->momentum < 1.0 && sgd->batch_size >= 1;
}

/* NULL counts as a zeroed solver (plain SGD / momentum, no running estimate). */
static int solver_ok(const csae_solver *solver)
{
    if (!solver)
        return 1;
    if (solver->adam && !(solver->beta_1 >= 0.0 && solver->beta_1 < 1.0 &&
                          solver->beta_2 >= 0.0 && solver->beta_2 < 1.0 &&
                          solver->epsilon > 0.0 && isfinite(solver->epsilon)))
        return 0;
    /* 0 (off) or in (0, 1]; NaN fails both tests. */
    const double tau = solver->sparsity_smoothing;
    return tau == 0.0 || (tau > 0.0 && tau <= 1.0);
}

static const csae_solver no_solver; /* all zero */

static size_t clamp_threads(size_t n_threads)
{
    return n_threads == 0 ? 1 : (n_threads > CSAE_MAX_THREADS ? CSAE_MAX_THREADS : n_threads);
}

/* The thread count a call may use.  A NULL workspace is read as one thread
 * here so that the size check after it reports CSAE_ERR_WORKSPACE. */
static size_t threads_of(const csae_workspace *ws)
{
    return ws ? clamp_threads(ws->n_threads) : 1;
}

size_t csae_forward_workspace_size(const csae_model *model, size_t rows,
                                   size_t elem_size, size_t n_threads)
{
    if (!model_ok(model))
        return SIZE_MAX;
    return layout_for(model, rows, elem_size, clamp_threads(n_threads), WS_FORWARD, 0, 0).total;
}

size_t csae_train_workspace_size(const csae_model *model, size_t rows,
                                 size_t elem_size, size_t n_threads)
{
    if (!model_ok(model))
        return SIZE_MAX;
    const size_t t = clamp_threads(n_threads);
    const size_t total = layout_for(model, rows, elem_size, t, WS_TRAIN, 0, 0).total;
    /* The size serves every batch of up to `rows` rows, and a one-row
     * batch's layout (the fused step's backups) can be the larger. */
    const size_t one = layout_for(model, 1, elem_size, t, WS_TRAIN, 0, 0).total;
    return total > one ? total : one;
}

size_t csae_epoch_workspace_size(const csae_model *model, const csae_sgd *sgd,
                                 size_t n_samples, size_t elem_size, size_t n_threads)
{
    if (!model_ok(model) || !sgd_ok(sgd))
        return SIZE_MAX;
    const size_t rows = sgd->batch_size < n_samples ? sgd->batch_size : n_samples;
    return layout_for(model, rows, elem_size, clamp_threads(n_threads), WS_EPOCH,
                      n_samples, sgd->shuffle).total;
}

/* The workspace's data aligned up, or NULL when it is smaller than the
 * layout. */
static char *ws_base(const csae_workspace *ws, const ws_layout *L)
{
    return csae_ws_aligned(ws, L->total);
}

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

#define REAL double
#define SFX f64
#include "api_template.h"
#undef REAL
#undef SFX

#define REAL float
#define SFX f32
#include "api_template.h"
#undef REAL
#undef SFX
