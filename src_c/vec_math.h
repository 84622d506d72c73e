/*
 * vec_math.h: exp(x) for x <= 0, the sigmoid, and the bias + sigmoid
 * epilogue of the GEMM, written once for every vector width.  The
 * operations, their order and their constants are the ones of
 * exp_lane.h's one-value versions (the rules: gemm_template.h, top), so
 * a value comes out with the same bits in any lane of any width.
 *
 * A path's file instantiates it once per vector type: it #defines the
 * handful of width-specific operations below and #includes this file,
 * which defines vm_exp_nonpos_<TAG>, vm_sigmoid_<TAG> and thin
 * vm_load/store/add_<TAG> wrappers, then #undefs them all.  Then
 * VM_DEFINE_BIAS_ACT builds bias_act_f64/f32 from one or two instances.
 *
 *   VM_TAG              suffix of the names (256_pd, 512_ps, neon_pd, ...)
 *   VM_F64              1 for double lanes, 0 for float lanes
 *   VM_REAL, VM_T, VM_W element type, vector type, lanes per vector
 *   VM_MASK             type of VM_NOT_BELOW's result
 *   VM_SET1(c) VM_LOAD(p) VM_STORE(p, v) VM_ADD VM_SUB VM_MUL VM_DIV
 *   VM_FMA(a, b, c)     a * b + c, one rounding
 *   VM_FNMA(a, b, c)    c - a * b, one rounding
 *   VM_MAX(lo, x)       max, x itself when x is NaN (as x86's max returns
 *                       its second operand)
 *   VM_NOT_BELOW(x, c)  lanes where !(x < c) (NaN included)
 *   VM_KEEP(mask, v)    v in the mask's lanes, +0 elsewhere
 *   VM_POW2(t)          2^n for t = magic + n: (bits(t) + bias) << mantissa bits
 *   VM_NEG_ABS(v)       v with its sign bit set (-|v|, NaNs too)
 *   VM_IF_NEG(v, a, b)  a where v's sign bit is set, else b
 */

#ifndef CSAE_VEC_MATH_ONCE
#define CSAE_VEC_MATH_ONCE

#include <stddef.h>

#include "exp_lane.h"

#define VM_CAT_(a, b) a##b
#define VM_CAT(a, b) VM_CAT_(a, b)

/* Z = f(Z + bias) row by row, f the sigmoid or the identity: whole WIDE
 * vectors, then at most one NARROW vector (pass WIDE again if there is no
 * narrower one), then one value at a time (exp_lane.h), never the C
 * library's exp: which columns form the tail depends on the vector width,
 * and every column must round the same way on every vector path. */
#define VM_DEFINE_BIAS_ACT(SFX, REAL, WIDE, NARROW)                            \
    static inline void bias_act_##SFX(size_t m, size_t n, const REAL *restrict bias, \
                                      REAL *restrict Z, size_t ldz, int sigmoid) \
    {                                                                          \
        for (size_t i = 0; i < m; i++) {                                       \
            REAL *z = Z + i * ldz;                                             \
            size_t j = 0;                                                      \
            if (!sigmoid) {                                                    \
                for (; j + vm_lanes_##WIDE <= n; j += vm_lanes_##WIDE)         \
                    vm_store_##WIDE(z + j, vm_add_##WIDE(vm_load_##WIDE(z + j), \
                                                         vm_load_##WIDE(bias + j))); \
                for (; j < n; j++) z[j] += bias[j];                            \
                continue;                                                      \
            }                                                                  \
            for (; j + vm_lanes_##WIDE <= n; j += vm_lanes_##WIDE)             \
                vm_store_##WIDE(z + j, vm_sigmoid_##WIDE(vm_add_##WIDE(          \
                                           vm_load_##WIDE(z + j), vm_load_##WIDE(bias + j)))); \
            if (j + vm_lanes_##NARROW <= n) {                                  \
                vm_store_##NARROW(z + j, vm_sigmoid_##NARROW(vm_add_##NARROW(    \
                                             vm_load_##NARROW(z + j),           \
                                             vm_load_##NARROW(bias + j))));     \
                j += vm_lanes_##NARROW;                                        \
            }                                                                  \
            for (; j < n; j++)                                                 \
                z[j] = sigmoid_lane_##SFX(z[j] + bias[j]);                     \
        }                                                                      \
    }

#endif /* CSAE_VEC_MATH_ONCE */

#define VM_FN(name) VM_CAT(name, VM_TAG)

enum { VM_FN(vm_lanes_) = VM_W };

static inline VM_T VM_FN(vm_load_)(const VM_REAL *p) { return VM_LOAD(p); }
static inline void VM_FN(vm_store_)(VM_REAL *p, VM_T v) { VM_STORE(p, v); }
static inline VM_T VM_FN(vm_add_)(VM_T a, VM_T b) { return VM_ADD(a, b); }

/* exp(x) for x <= 0 (all the sigmoid needs): x = n ln2 + r with |r| <= ln2/2
 * (Cody-Waite, ln2 split in a high part exact in n * hi and a low part),
 * exp(r) by its Taylor polynomial (degree 12 in double, 7 in float: the
 * truncation error stays below one ulp), times 2^n built in the exponent
 * bits.  x is clamped where 2^n would leave the normal range, so inputs
 * from the clamp down to the underflow limit all give exp(clamp) (kept: it
 * fixes the bits of every finite result so far); below the underflow
 * limit, -inf included, the result is exactly 0, the value exp rounds to.
 * A NaN stays NaN: the clamp is VM_MAX(clamp, x), and the compare that
 * zeroes is true for NaN. */
static inline VM_T VM_FN(vm_exp_nonpos_)(VM_T x)
{
#if VM_F64
    const VM_T magic = VM_SET1(6755399441055744.0); /* 1.5 * 2^52 */
    const VM_MASK live = VM_NOT_BELOW(x, VM_SET1(CSAE_EXP_ZERO_F64));
    x = VM_MAX(VM_SET1(-708.0), x);
    const VM_T t = VM_FMA(x, VM_SET1(1.4426950408889634), magic);
    const VM_T n = VM_SUB(t, magic);
    VM_T r = VM_FNMA(n, VM_SET1(6.93147180369123816490e-01), x);
    r = VM_FNMA(n, VM_SET1(1.90821492927058770002e-10), r);
    VM_T p = VM_SET1(1.0 / 479001600.0);
    p = VM_FMA(p, r, VM_SET1(1.0 / 39916800.0));
    p = VM_FMA(p, r, VM_SET1(1.0 / 3628800.0));
    p = VM_FMA(p, r, VM_SET1(1.0 / 362880.0));
    p = VM_FMA(p, r, VM_SET1(1.0 / 40320.0));
    p = VM_FMA(p, r, VM_SET1(1.0 / 5040.0));
    p = VM_FMA(p, r, VM_SET1(1.0 / 720.0));
    p = VM_FMA(p, r, VM_SET1(1.0 / 120.0));
    p = VM_FMA(p, r, VM_SET1(1.0 / 24.0));
    p = VM_FMA(p, r, VM_SET1(1.0 / 6.0));
    p = VM_FMA(p, r, VM_SET1(0.5));
    p = VM_FMA(p, r, VM_SET1(1.0));
    p = VM_FMA(p, r, VM_SET1(1.0));
#else
    const VM_T magic = VM_SET1(12582912.0f); /* 1.5 * 2^23 */
    const VM_MASK live = VM_NOT_BELOW(x, VM_SET1(CSAE_EXP_ZERO_F32));
    x = VM_MAX(VM_SET1(-87.0f), x);
    const VM_T t = VM_FMA(x, VM_SET1(1.44269504f), magic);
    const VM_T n = VM_SUB(t, magic);
    VM_T r = VM_FNMA(n, VM_SET1(0.693359375f), x);
    r = VM_FNMA(n, VM_SET1(-2.12194440e-4f), r);
    VM_T p = VM_SET1(1.0f / 5040.0f);
    p = VM_FMA(p, r, VM_SET1(1.0f / 720.0f));
    p = VM_FMA(p, r, VM_SET1(1.0f / 120.0f));
    p = VM_FMA(p, r, VM_SET1(1.0f / 24.0f));
    p = VM_FMA(p, r, VM_SET1(1.0f / 6.0f));
    p = VM_FMA(p, r, VM_SET1(0.5f));
    p = VM_FMA(p, r, VM_SET1(1.0f));
    p = VM_FMA(p, r, VM_SET1(1.0f));
#endif
    /* t holds 1.5 * 2^mant + n in its low mantissa bits: VM_POW2 is 2^n. */
    return VM_KEEP(live, VM_MUL(p, VM_POW2(t)));
}

/* sigmoid(v) = s or e * s with e = exp(-|v|), s = 1 / (1 + e); the sign bit
 * of v picks the branch (-0 and NaNs included), as in sigmoid_lane. */
static inline VM_T VM_FN(vm_sigmoid_)(VM_T v)
{
    const VM_T one = VM_SET1((VM_REAL)1);
    const VM_T e = VM_FN(vm_exp_nonpos_)(VM_NEG_ABS(v));
    const VM_T s = VM_DIV(one, VM_ADD(one, e));
    return VM_IF_NEG(v, VM_MUL(e, s), s);
}

#undef VM_FN
#undef VM_TAG
#undef VM_F64
#undef VM_REAL
#undef VM_T
#undef VM_W
#undef VM_MASK
#undef VM_SET1
#undef VM_LOAD
#undef VM_STORE
#undef VM_ADD
#undef VM_SUB
#undef VM_MUL
#undef VM_DIV
#undef VM_FMA
#undef VM_FNMA
#undef VM_MAX
#undef VM_NOT_BELOW
#undef VM_KEEP
#undef VM_POW2
#undef VM_NEG_ABS
#undef VM_IF_NEG
