/*
 * path_avx512.c: the AVX-512 kernel path (x86-64 with GCC or Clang).
 *
 * Like path_avx2.c, the whole file (core and GEMM included) is compiled for
 * the instruction set by a target pragma, not by -mavx512f, so the library
 * still runs on any x86-64; dispatch.c selects this table only after
 * __builtin_cpu_supports reports AVX-512F (with the OS saving its state).
 * Only AVX-512F is used (no DQ/BW/VL), so every AVX-512 CPU runs it.
 *
 * Same bits as the AVX2 path: each element of C is one chain of FMAs in
 * the order of k over the same KC-deep panels; the exp and sigmoid below
 * are the AVX2 path's operations, in the same order, on wider vectors; and
 * the shared templates fix every other reduction order independently of
 * the vector width.
 */
#include "kernels.h"

#ifdef CSAE_ARCH_X86_64

/* GCC compiles the rest of the file for the instruction set by its target
 * pragma; Clang ignores that pragma, so there the same target attribute is
 * pushed onto every function defined below (after the intrinsics headers,
 * which carry their own). */
#if defined(__clang__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx2,fma")
#include <immintrin.h>
#endif
/* FMA is part of the target: scalar lanes fuse as the vectors do. */
#define CSAE_LANE_FMA 1

#include "sigmoid_x86.h"

/* Register tiles: two zmm vectors of C per row (32 floats, 16 doubles) by
 * 12 (float) or 14 (double) rows: 24 or 28 accumulators, two B vectors and
 * a broadcast A value within the 32 zmm registers (BLIS's Skylake-X
 * kernels, 32x12 and 16x14, with the roles of A and B swapped to suit
 * row-major C). */
#define PATH_MR_F64 14
#define PATH_NR_F64 16
#define PATH_MR_F32 12
#define PATH_NR_F32 32

/* ---- GEMM micro-kernels ------------------------------------------------
 * Same contract as path_avx2.c: A read through strides (a packed panel has
 * rsa = 1, csa = MR), B as rows of NR contiguous values ldb apart,
 * C = alpha * AB (+ beta * C). */

#define ROWS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define ROWS14(X) ROWS12(X) X(12) X(13)

#define DEFINE_UKR(SFX, ROWS)                                                  \
    CSAE_INLINE_ALWAYS void                                                    \
    ukr_body_##SFX(size_t k, const REAL_ *restrict a, size_t rsa, size_t csa,  \
                   const REAL_ *restrict b, size_t ldb, REAL_ alpha, REAL_ beta, \
                   REAL_ *restrict c, size_t ldc)                              \
    {                                                                          \
        ROWS(UKR_DECL)                                                         \
        for (size_t p = 0; p < k; p++) {                                       \
            const VT_ b0 = LOAD_(b), b1 = LOAD_(b + W_);                       \
            ROWS(UKR_ROW)                                                      \
            a += csa;                                                          \
            b += ldb;                                                          \
        }                                                                      \
        const VT_ valpha = SET1_(alpha), vbeta = SET1_(beta);                  \
        ROWS(UKR_STORE)                                                        \
    }                                                                          \
    /* A packed panel (rsa = 1) gets its own copy of the loop, with the        \
     * rows at constant offsets: the generic one needs a register per row. */  \
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

/* The kernel's element and vector types and intrinsics, VT_, REAL_, W_,
 * SET0_, SET1_, LOAD_, STORE_, MUL_ and FMA_, are #defined before each
 * DEFINE_UKR (and #undef'd after); DEFINE_UKR and these per-row pieces
 * both read them. */
#define UKR_DECL(i) VT_ c##i##0 = SET0_(), c##i##1 = SET0_();
#define UKR_ROW(i)                                                             \
    {                                                                          \
        const VT_ ai = SET1_(a[(i) * rsa]);                                    \
        c##i##0 = FMA_(ai, b0, c##i##0);                                       \
        c##i##1 = FMA_(ai, b1, c##i##1);                                       \
    }
#define UKR_STORE(i)                                                           \
    {                                                                          \
        REAL_ *ci = c + (i) * ldc;                                             \
        VT_ r0 = MUL_(valpha, c##i##0), r1 = MUL_(valpha, c##i##1);            \
        if (beta != 0) {                                                       \
            r0 = FMA_(vbeta, LOAD_(ci), r0);                                   \
            r1 = FMA_(vbeta, LOAD_(ci + W_), r1);                              \
        }                                                                      \
        STORE_(ci, r0);                                                        \
        STORE_(ci + W_, r1);                                                   \
    }

#define VT_ __m512d
#define REAL_ double
#define W_ 8
#define SET0_ _mm512_setzero_pd
#define SET1_ _mm512_set1_pd
#define LOAD_ _mm512_loadu_pd
#define STORE_ _mm512_storeu_pd
#define MUL_ _mm512_mul_pd
#define FMA_ _mm512_fmadd_pd
DEFINE_UKR(f64, ROWS14)
#undef VT_
#undef REAL_
#undef W_
#undef SET0_
#undef SET1_
#undef LOAD_
#undef STORE_
#undef MUL_
#undef FMA_

#define VT_ __m512
#define REAL_ float
#define W_ 16
#define SET0_ _mm512_setzero_ps
#define SET1_ _mm512_set1_ps
#define LOAD_ _mm512_loadu_ps
#define STORE_ _mm512_storeu_ps
#define MUL_ _mm512_mul_ps
#define FMA_ _mm512_fmadd_ps
DEFINE_UKR(f32, ROWS12)
#undef VT_
#undef REAL_
#undef W_
#undef SET0_
#undef SET1_
#undef LOAD_
#undef STORE_
#undef MUL_
#undef FMA_

/* ---- exp and the sigmoid -----------------------------------------------
 * exp(x) for x <= 0, operation for operation the AVX2 path's exp_nonpos
 * (see there for the method): Cody-Waite reduction, Taylor polynomial,
 * 2^n built in the exponent bits.  Every step is an IEEE operation
 * (max, FMA, add, mul, integer add and shift), so each lane rounds as the
 * same lane of the AVX2 vector does; NaN, the clamp and the zero below the
 * underflow limit as there too (a zeroing mask instead of an AND). */

static inline __m512d exp512_nonpos_pd(__m512d x)
{
    const __m512d magic = _mm512_set1_pd(6755399441055744.0); /* 1.5 * 2^52 */
    const __mmask8 live = _mm512_cmp_pd_mask(x, _mm512_set1_pd(CSAE_EXP_ZERO_F64), _CMP_NLT_UQ);
    x = _mm512_max_pd(_mm512_set1_pd(-708.0), x);
    const __m512d t = _mm512_fmadd_pd(x, _mm512_set1_pd(1.4426950408889634), magic);
    const __m512d n = _mm512_sub_pd(t, magic);
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), x);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
    __m512d p = _mm512_set1_pd(1.0 / 479001600.0);
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 39916800.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 3628800.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 362880.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 40320.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 5040.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 720.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 120.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 24.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 6.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.5));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    const __m512i scale = _mm512_slli_epi64(
        _mm512_add_epi64(_mm512_castpd_si512(t), _mm512_set1_epi64(1023)), 52);
    return _mm512_maskz_mul_pd(live, p, _mm512_castsi512_pd(scale));
}

static inline __m512 exp512_nonpos_ps(__m512 x)
{
    const __m512 magic = _mm512_set1_ps(12582912.0f); /* 1.5 * 2^23 */
    const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(CSAE_EXP_ZERO_F32), _CMP_NLT_UQ);
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
    const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504f), magic);
    const __m512 n = _mm512_sub_ps(t, magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    const __m512i scale = _mm512_slli_epi32(
        _mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps(live, p, _mm512_castsi512_ps(scale));
}

/* sigmoid(v) = s or e * s with e = exp(-|v|), s = 1 / (1 + e); the sign bit
 * of v picks the branch (as blendv does on the AVX2 path, -0 and NaNs
 * included).  The bit operations are integer ones: AVX-512F has no
 * floating-point OR (that is DQ). */
static inline __m512d sigmoid512_pd(__m512d v)
{
    const __m512d one = _mm512_set1_pd(1.0);
    const __m512i bits = _mm512_castpd_si512(v);
    const __m512d neg_abs = _mm512_castsi512_pd(
        _mm512_or_si512(bits, _mm512_set1_epi64((long long)0x8000000000000000ULL)));
    const __m512d e = exp512_nonpos_pd(neg_abs);
    const __m512d s = _mm512_div_pd(one, _mm512_add_pd(one, e));
    const __mmask8 negative = _mm512_cmplt_epi64_mask(bits, _mm512_setzero_si512());
    return _mm512_mask_blend_pd(negative, s, _mm512_mul_pd(e, s));
}

static inline __m512 sigmoid512_ps(__m512 v)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i bits = _mm512_castps_si512(v);
    const __m512 neg_abs = _mm512_castsi512_ps(
        _mm512_or_si512(bits, _mm512_set1_epi32((int)0x80000000U)));
    const __m512 e = exp512_nonpos_ps(neg_abs);
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, e));
    const __mmask16 negative = _mm512_cmplt_epi32_mask(bits, _mm512_setzero_si512());
    return _mm512_mask_blend_ps(negative, s, _mm512_mul_ps(e, s));
}

/* Z = f(Z + bias) row by row.  The columns past the last whole vector get
 * the same operations on a half-width vector (sigmoid_x86.h) and then one
 * value at a time, as on the AVX2 path. */
#define DEFINE_BIAS_ACT(SFX, REAL, VT, W, LOAD, STORE, ADD, SIGMOID, VT2, LOAD2, STORE2, \
                        ADD2, SIGMOID2, SIGMOID_LANE)                          \
    static inline void bias_act_##SFX(size_t m, size_t n, const REAL *restrict bias, \
                                      REAL *restrict Z, size_t ldz, int sigmoid) \
    {                                                                          \
        for (size_t i = 0; i < m; i++) {                                       \
            REAL *z = Z + i * ldz;                                             \
            size_t j = 0;                                                      \
            if (!sigmoid) {                                                    \
                for (; j + W <= n; j += W)                                     \
                    STORE(z + j, ADD(LOAD(z + j), LOAD(bias + j)));            \
                for (; j < n; j++) z[j] += bias[j];                            \
                continue;                                                      \
            }                                                                  \
            for (; j + W <= n; j += W)                                         \
                STORE(z + j, SIGMOID(ADD(LOAD(z + j), LOAD(bias + j))));       \
            if (j + W / 2 <= n) {                                              \
                STORE2(z + j, SIGMOID2(ADD2(LOAD2(z + j), LOAD2(bias + j))));  \
                j += W / 2;                                                    \
            }                                                                  \
            for (; j < n; j++)                                                 \
                z[j] = SIGMOID_LANE(z[j] + bias[j]);                           \
        }                                                                      \
    }

DEFINE_BIAS_ACT(f64, double, __m512d, 8, _mm512_loadu_pd, _mm512_storeu_pd, _mm512_add_pd,
                sigmoid512_pd, __m256d, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_add_pd,
                sigmoid256_pd, sigmoid_lane_f64)
DEFINE_BIAS_ACT(f32, float, __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_add_ps,
                sigmoid512_ps, __m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_add_ps,
                sigmoid256_ps, sigmoid_lane_f32)

#include "path_tail.h"

const csae_ops csae_ops_avx512 = OPS_TABLE;

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif /* CSAE_ARCH_X86_64 */
