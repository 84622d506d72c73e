/*
 * deep.c: the csae_deep_* functions (csae.h, "Deep networks"): forward pass
 * and objective + gradient of sigmoid layers under a softmax output.
 *
 * Every product goes through the active kernel path's GEMM (the csae_ops
 * table), so the network inherits the engine's guarantees: one fixed
 * multiply-add order per element, bit-identical for any thread count and
 * between the vector paths.  The few element-wise steps (softmax, the
 * sigmoid derivative, bias sums, weight decay) are plain loops compiled
 * once, here, and so run the same instructions whichever path is active.
 * docs/deep.md has the mathematics; csae/_deep_reference.py the NumPy twin.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "csae.h"
#include "kernels.h"

/* a * b and a + b, or SIZE_MAX when they overflow (kernels.h). */
#define mul_size csae_mul_size
#define add_size csae_add_size

/* Bytes rounded up to whole CSAE_ALIGN blocks, so the next buffer stays
 * aligned. */
static size_t padded(size_t bytes)
{
    return add_size(bytes, CSAE_ALIGN - 1) / CSAE_ALIGN * CSAE_ALIGN;
}

static size_t clamp_threads(size_t n_threads)
{
    return n_threads == 0 ? 1 : (n_threads > CSAE_MAX_THREADS ? CSAE_MAX_THREADS : n_threads);
}

/* The workspace of one call.  Objective: the activations A_1..A_L (each
 * rows x h_l, one after another, each padded), the logits / probabilities
 * (rows x k), one rows x max(h) buffer for D_{l+1} W_{l+1}, and the GEMM
 * packing scratch.  Forward: two rows x max(h) buffers used in turn, and
 * the packing scratch (the logits go straight into the caller's P). */
typedef struct {
    size_t acts, probs, temp, pack, total;
} deep_layout;

/* Largest hidden width (0 without hidden layers) and largest of all sizes. */
static void widths(const csae_deep_net *net, size_t *h_max, size_t *all_max)
{
    *h_max = 0;
    *all_max = 0;
    for (size_t l = 0; l < net->n_hidden_layers + 2; l++) {
        const size_t h = net->sizes[l];
        if (l > 0 && l <= net->n_hidden_layers && h > *h_max)
            *h_max = h;
        if (h > *all_max)
            *all_max = h;
    }
}

/* Bytes of A_1..A_L for `rows` rows (SIZE_MAX on overflow). */
static size_t acts_bytes(const csae_deep_net *net, size_t rows, size_t elem)
{
    size_t total = 0;
    for (size_t l = 1; l <= net->n_hidden_layers; l++)
        total = add_size(total, padded(mul_size(mul_size(rows, net->sizes[l]), elem)));
    return total;
}

static deep_layout layout_for(const csae_deep_net *net, size_t rows, size_t elem,
                              size_t threads, int objective)
{
    deep_layout D;
    memset(&D, 0, sizeof D);
    size_t h_max, all_max;
    widths(net, &h_max, &all_max);
    const size_t k = net->sizes[net->n_hidden_layers + 1];
    const size_t wide = padded(mul_size(mul_size(rows, h_max), elem));
    size_t cursor = 0;
    D.acts = cursor;
    if (objective) {
        cursor = add_size(cursor, acts_bytes(net, rows, elem));
        D.probs = cursor;
        cursor = add_size(cursor, padded(mul_size(mul_size(rows, k), elem)));
        D.temp = cursor;
        cursor = add_size(cursor, wide);
    } else {
        cursor = add_size(cursor, mul_size(wide, 2));
    }
    /* Every product's C is at most all_max wide; its depth is a layer size,
     * or the rows for the weight gradients.  One row needs no packing (its
     * products are GEMVs and outer products). */
    const size_t depth = objective && rows > all_max ? rows : all_max;
    D.pack = cursor;
    if (rows > 1)
        cursor = add_size(cursor, padded(csae_gemm_pack_size(all_max, depth, elem, threads)));
    D.total = add_size(cursor, CSAE_ALIGN); /* room to align the caller's pointer */
    return D;
}

/* Elements of theta, or 0 if the net is invalid or its bytes overflow. */
size_t csae_deep_n_params(const csae_deep_net *net)
{
    if (!net || !net->sizes || net->n_hidden_layers > SIZE_MAX - 2)
        return 0;
    size_t total = 0;
    for (size_t l = 0; l < net->n_hidden_layers + 2; l++)
        if (net->sizes[l] == 0)
            return 0;
    for (size_t l = 1; l < net->n_hidden_layers + 2; l++) {
        const size_t h = net->sizes[l], h_prev = net->sizes[l - 1];
        total = add_size(total, add_size(mul_size(h, h_prev), h));
    }
    return mul_size(total, sizeof(double)) == SIZE_MAX ? 0 : total;
}

static size_t workspace_size(const csae_deep_net *net, size_t rows, size_t elem_size,
                             size_t n_threads, int objective)
{
    if (csae_deep_n_params(net) == 0 ||
        (elem_size != sizeof(double) && elem_size != sizeof(float)))
        return SIZE_MAX;
    return layout_for(net, rows, elem_size, clamp_threads(n_threads), objective).total;
}

size_t csae_deep_forward_workspace_size(const csae_deep_net *net, size_t rows,
                                        size_t elem_size, size_t n_threads)
{
    return workspace_size(net, rows, elem_size, n_threads, 0);
}

size_t csae_deep_objective_workspace_size(const csae_deep_net *net, size_t rows,
                                          size_t elem_size, size_t n_threads)
{
    return workspace_size(net, rows, elem_size, n_threads, 1);
}

/* The workspace's data aligned up, or NULL when it is smaller than the
 * layout. */
static char *ws_base(const csae_workspace *ws, const deep_layout *D)
{
    return csae_ws_aligned(ws, D->total);
}

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

#define REAL double
#define SFX f64
#define EXP exp
#include "deep_template.h"
#undef REAL
#undef SFX
#undef EXP

#define REAL float
#define SFX f32
#define EXP expf
#include "deep_template.h"
#undef REAL
#undef SFX
#undef EXP
