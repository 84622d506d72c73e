/*
 * checked_mul.h: the one rule for products of sizes that a file gave (an
 * array's shape, a network's widths): the product, or a refusal when it
 * does not fit.  Internal to the engine (npz.c reads .npy shapes in 64
 * bits, model_file.c sizes memory in size_t); not part of the public API.
 */
#ifndef CSAE_CHECKED_MUL_H
#define CSAE_CHECKED_MUL_H

#include <stddef.h>
#include <stdint.h>

#if SIZE_MAX > UINT64_MAX
#error "checked_mul_size assumes size_t is at most 64 bits"
#endif

/* *out = a * b; 0 (and *out untouched) if the product exceeds UINT64_MAX. */
static inline int checked_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (b != 0 && a > UINT64_MAX / b)
        return 0;
    *out = a * b;
    return 1;
}

/* The same product in size_t: 0 (and *out untouched) if it exceeds
 * SIZE_MAX, which on a 64-bit platform is the same bound. */
static inline int checked_mul_size(size_t a, size_t b, size_t *out)
{
    uint64_t p;
    if (!checked_mul_u64(a, b, &p) || p > SIZE_MAX)
        return 0;
    *out = (size_t)p;
    return 1;
}

#endif /* CSAE_CHECKED_MUL_H */
