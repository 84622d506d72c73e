/*
 * rng.c: SplitMix64 (Steele, Lea and Flood 2014), the engine's only source
 * of randomness.  A single uint64 of state, owned by the caller, makes runs
 * reproducible; csae/reference.py implements the same stream in NumPy.
 */
#include <math.h>

#include "csae.h"
#include "kernels.h"

#define GOLDEN_GAMMA 0x9E3779B97F4A7C15ULL

uint64_t csae_rng_next(uint64_t *state)
{
    uint64_t z = (*state += GOLDEN_GAMMA);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound) without modulo bias: reject the lowest
 * 2^64 mod bound outputs, so the rest split evenly into bound classes. */
static uint64_t next_below(uint64_t *state, uint64_t bound)
{
    const uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        const uint64_t r = csae_rng_next(state);
        if (r >= threshold)
            return r % bound;
    }
}

void csae_rng_permutation(uint64_t *state, size_t *order, size_t m)
{
    for (size_t i = 0; i < m; i++)
        order[i] = i;
    for (size_t i = m; i-- > 1;) {
        const size_t j = (size_t)next_below(state, (uint64_t)i + 1);
        const size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* u = (x >> 11) * 2^-53 is uniform on the 2^53 doubles k * 2^-53 in [0, 1). */
static double next_uniform(uint64_t *state)
{
    return (double)(csae_rng_next(state) >> 11) * 0x1.0p-53;
}

#define DEFINE_INIT(SFX, REAL)                                                 \
    csae_status csae_init_params_##SFX(const csae_model *model,                \
                                       csae_params_##SFX params, uint64_t *state) \
    {                                                                          \
        if (!model || !state || !params.W || !params.b || !params.Wd ||        \
            !params.bd || model->n_features == 0 || model->n_hidden == 0)      \
            return CSAE_ERR_ARGUMENT;                                          \
        const size_t n = model->n_features, h = model->n_hidden;               \
        /* n * h must not wrap (the loops would leave W unwritten), and the    \
         * five outputs must not overlap (later ones would overwrite). */      \
        const size_t nh = csae_mul_size(csae_mul_size(n, h), sizeof(REAL));    \
        const csae_span spans[] = {{params.W, nh, 1},                          \
                                   {params.b, csae_mul_size(h, sizeof(REAL)), 1}, \
                                   {params.Wd, nh, 1},                         \
                                   {params.bd, csae_mul_size(n, sizeof(REAL)), 1}, \
                                   {state, sizeof *state, 1}};                 \
        if (!csae_spans_ok(spans, sizeof spans / sizeof spans[0]))             \
            return CSAE_ERR_ARGUMENT;                                          \
        const double r = sqrt(6.0 / ((double)n + (double)h + 1.0));            \
        for (size_t i = 0; i < n * h; i++)                                     \
            params.W[i] = (REAL)(r * (2.0 * next_uniform(state) - 1.0));       \
        for (size_t i = 0; i < n * h; i++)                                     \
            params.Wd[i] = (REAL)(r * (2.0 * next_uniform(state) - 1.0));      \
        for (size_t j = 0; j < h; j++) params.b[j] = 0;                        \
        for (size_t i = 0; i < n; i++) params.bd[i] = 0;                       \
        return CSAE_OK;                                                        \
    }

DEFINE_INIT(f64, double)
DEFINE_INIT(f32, float)
