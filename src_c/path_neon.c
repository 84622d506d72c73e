/*
 * path_neon.c: the NEON (Advanced SIMD) kernel path for aarch64 (GCC or
 * Clang).  NEON and its FMA are part of the aarch64 baseline, so the file
 * needs no target attribute, and dispatch.c registers it as running on
 * every aarch64 CPU.  On other targets it compiles to nothing.
 *
 * Same bits as the x86 vector paths, by the rules at the top of
 * gemm_template.h: one FMA chain per element of C in the order of k over
 * the same KC-deep panels, vec_math.h's exp and sigmoid, and the shared
 * templates' fixed reduction orders.
 */
#include "kernels.h"

#ifdef CSAE_ARCH_AARCH64

#include <arm_neon.h>

/* FMA is in the baseline: scalar lanes fuse as the vectors do. */
#define CSAE_LANE_FMA 1

/* Register tiles: 6 rows of C by four 128-bit vectors (8 doubles, 16
 * floats), the AVX2 path's tile: 24 accumulators, four B vectors and one A
 * value within the 32 vector registers. */
#define PATH_MR_F64 6
#define PATH_NR_F64 8
#define PATH_MR_F32 6
#define PATH_NR_F32 16

/* ---- GEMM micro-kernels ------------------------------------------------
 * Same contract as path_avx2.c: A read through strides (a packed panel has
 * rsa = 1, csa = MR), B as rows of NR contiguous values ldb apart,
 * C = alpha * AB (+ beta * C).  The kernel's types and intrinsics (VT_,
 * REAL_, W_, SET0_, SET1_, LOAD_, STORE_, MUL_, FMA_ with FMA_(c, a, b) =
 * c + a * b in one rounding, FMA_N_ the same with a scalar b) are
 * #defined before each DEFINE_UKR and #undef'd after. */

#define ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)

#define UKR_DECL(i) VT_ c##i##0 = SET0_(), c##i##1 = SET0_(), c##i##2 = SET0_(), c##i##3 = SET0_();
#define UKR_ROW(i)                                                             \
    {                                                                          \
        const REAL_ ai = a[(i) * rsa];                                         \
        c##i##0 = FMA_N_(c##i##0, b0, ai);                                     \
        c##i##1 = FMA_N_(c##i##1, b1, ai);                                     \
        c##i##2 = FMA_N_(c##i##2, b2, ai);                                     \
        c##i##3 = FMA_N_(c##i##3, b3, ai);                                     \
    }
#define UKR_STORE_ONE(ci, q, r)                                                \
    {                                                                          \
        if (beta != 0)                                                         \
            r = FMA_(r, vbeta, LOAD_(ci + (q) * W_));                          \
        STORE_(ci + (q) * W_, r);                                              \
    }
#define UKR_STORE(i)                                                           \
    {                                                                          \
        REAL_ *ci = c + (i) * ldc;                                             \
        VT_ r0 = MUL_(valpha, c##i##0), r1 = MUL_(valpha, c##i##1);            \
        VT_ r2 = MUL_(valpha, c##i##2), r3 = MUL_(valpha, c##i##3);            \
        UKR_STORE_ONE(ci, 0, r0)                                               \
        UKR_STORE_ONE(ci, 1, r1)                                               \
        UKR_STORE_ONE(ci, 2, r2)                                               \
        UKR_STORE_ONE(ci, 3, r3)                                               \
    }

#define DEFINE_UKR(SFX)                                                        \
    CSAE_INLINE_ALWAYS void                                                    \
    ukr_body_##SFX(size_t k, const REAL_ *restrict a, size_t rsa, size_t csa,  \
                   const REAL_ *restrict b, size_t ldb, REAL_ alpha, REAL_ beta, \
                   REAL_ *restrict c, size_t ldc)                              \
    {                                                                          \
        ROWS6(UKR_DECL)                                                        \
        for (size_t p = 0; p < k; p++) {                                       \
            const VT_ b0 = LOAD_(b), b1 = LOAD_(b + W_);                       \
            const VT_ b2 = LOAD_(b + 2 * W_), b3 = LOAD_(b + 3 * W_);          \
            ROWS6(UKR_ROW)                                                     \
            a += csa;                                                          \
            b += ldb;                                                          \
        }                                                                      \
        const VT_ valpha = SET1_(alpha), vbeta = SET1_(beta);                  \
        ROWS6(UKR_STORE)                                                       \
    }                                                                          \
    /* A packed panel (rsa = 1) gets its own copy of the loop, with the        \
     * rows at constant offsets. */                                            \
    static inline void ukr_##SFX(size_t k, const REAL_ *restrict a, size_t rsa, \
                                 size_t csa, const REAL_ *restrict b, size_t ldb, \
                                 REAL_ alpha, REAL_ beta, REAL_ *restrict c,   \
                                 size_t ldc)                                   \
    {                                                                          \
        if (rsa == 1)                                                          \
            ukr_body_##SFX(k, a, 1, csa, b, ldb, alpha, beta, c, ldc);         \
        else                                                                   \
            ukr_body_##SFX(k, a, rsa, csa, b, ldb, alpha, beta, c, ldc);       \
    }

#define VT_ float64x2_t
#define REAL_ double
#define W_ 2
#define SET0_() vdupq_n_f64(0.0)
#define SET1_ vdupq_n_f64
#define LOAD_ vld1q_f64
#define STORE_ vst1q_f64
#define MUL_ vmulq_f64
#define FMA_ vfmaq_f64
#define FMA_N_ vfmaq_n_f64
DEFINE_UKR(f64)
#undef VT_
#undef REAL_
#undef W_
#undef SET0_
#undef SET1_
#undef LOAD_
#undef STORE_
#undef MUL_
#undef FMA_
#undef FMA_N_

#define VT_ float32x4_t
#define REAL_ float
#define W_ 4
#define SET0_() vdupq_n_f32(0.0f)
#define SET1_ vdupq_n_f32
#define LOAD_ vld1q_f32
#define STORE_ vst1q_f32
#define MUL_ vmulq_f32
#define FMA_ vfmaq_f32
#define FMA_N_ vfmaq_n_f32
DEFINE_UKR(f32)
#undef VT_
#undef REAL_
#undef W_
#undef SET0_
#undef SET1_
#undef LOAD_
#undef STORE_
#undef MUL_
#undef FMA_
#undef FMA_N_

/* ---- exp, the sigmoid and the epilogue ----------------------------------
 * vec_math.h on 2 doubles / 4 floats.  vmaxq returns the NaN when x is one,
 * as x86's max(lo, x) does; the "not below" mask is the complement of
 * vcltq (true for NaN, as _CMP_NLT_UQ is); an arithmetic shift of the sign
 * bit is the blend's selector. */

#define VM_TAG neon_pd
#define VM_F64 1
#define VM_REAL double
#define VM_T float64x2_t
#define VM_W 2
#define VM_MASK uint64x2_t
#define VM_SET1 vdupq_n_f64
#define VM_LOAD vld1q_f64
#define VM_STORE vst1q_f64
#define VM_ADD vaddq_f64
#define VM_SUB vsubq_f64
#define VM_MUL vmulq_f64
#define VM_DIV vdivq_f64
#define VM_FMA(a, b, c) vfmaq_f64(c, a, b)
#define VM_FNMA(a, b, c) vfmsq_f64(c, a, b)
#define VM_MAX vmaxq_f64
#define VM_NOT_BELOW(x, c) veorq_u64(vcltq_f64(x, c), vdupq_n_u64(~0ULL))
#define VM_KEEP(mask, v) vreinterpretq_f64_u64(vandq_u64(mask, vreinterpretq_u64_f64(v)))
#define VM_POW2(t)                                                             \
    vreinterpretq_f64_s64(                                                     \
        vshlq_n_s64(vaddq_s64(vreinterpretq_s64_f64(t), vdupq_n_s64(1023)), 52))
#define VM_NEG_ABS(v)                                                          \
    vreinterpretq_f64_u64(                                                     \
        vorrq_u64(vreinterpretq_u64_f64(v), vdupq_n_u64(0x8000000000000000ULL)))
#define VM_IF_NEG(v, a, b)                                                     \
    vbslq_f64(vreinterpretq_u64_s64(vshrq_n_s64(vreinterpretq_s64_f64(v), 63)), a, b)
#include "vec_math.h"

#define VM_TAG neon_ps
#define VM_F64 0
#define VM_REAL float
#define VM_T float32x4_t
#define VM_W 4
#define VM_MASK uint32x4_t
#define VM_SET1 vdupq_n_f32
#define VM_LOAD vld1q_f32
#define VM_STORE vst1q_f32
#define VM_ADD vaddq_f32
#define VM_SUB vsubq_f32
#define VM_MUL vmulq_f32
#define VM_DIV vdivq_f32
#define VM_FMA(a, b, c) vfmaq_f32(c, a, b)
#define VM_FNMA(a, b, c) vfmsq_f32(c, a, b)
#define VM_MAX vmaxq_f32
#define VM_NOT_BELOW(x, c) vmvnq_u32(vcltq_f32(x, c))
#define VM_KEEP(mask, v) vreinterpretq_f32_u32(vandq_u32(mask, vreinterpretq_u32_f32(v)))
#define VM_POW2(t)                                                             \
    vreinterpretq_f32_s32(                                                     \
        vshlq_n_s32(vaddq_s32(vreinterpretq_s32_f32(t), vdupq_n_s32(127)), 23))
#define VM_NEG_ABS(v)                                                          \
    vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(v), vdupq_n_u32(0x80000000U)))
#define VM_IF_NEG(v, a, b)                                                     \
    vbslq_f32(vreinterpretq_u32_s32(vshrq_n_s32(vreinterpretq_s32_f32(v), 31)), a, b)
#include "vec_math.h"

/* Whole 128-bit vectors, then single values. */
VM_DEFINE_BIAS_ACT(f64, double, neon_pd, neon_pd)
VM_DEFINE_BIAS_ACT(f32, float, neon_ps, neon_ps)

#include "path_tail.h"

const csae_ops csae_ops_neon = OPS_TABLE;

#endif /* CSAE_ARCH_AARCH64 */
