/*
 * path_avx512.c: the AVX-512 kernel path (x86-64 with GCC or Clang).
 *
 * Like path_avx2.c, the whole file (core and GEMM included) is compiled for
 * the instruction set by a target pragma, not by -mavx512f, so the library
 * still runs on any x86-64; dispatch.c selects this table only after
 * __builtin_cpu_supports reports AVX-512F (with the OS saving its state).
 * Only AVX-512F is used (no DQ/BW/VL), so every AVX-512 CPU runs it.
 *
 * Same bits as the AVX2 path, by the rules at the top of gemm_template.h.
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
 * 8 rows: 16 accumulators, two B vectors and a broadcast A value.  BLIS's
 * Skylake-X kernels use 12 and 14 rows (32x12 and 16x14, with the roles of
 * A and B swapped to suit row-major C), and so did this path until
 * measured on Zen 4 (32 KiB L1): there a 14-row float64 A micro-panel (28
 * KiB at KC = 256) does not stay in L1 while B's micro-panels stream past
 * it, and 8 rows made the L model's whole objective 11% faster in float64
 * and 4% in float32 (M unchanged).  Sixteen chains still cover two FMA
 * units of latency 4, and 2 + 8 loads per 16 FMAs fit two load ports. */
#define PATH_MR_F64 8
#define PATH_NR_F64 16
#define PATH_MR_F32 8
#define PATH_NR_F32 32

/* ---- GEMM micro-kernels ------------------------------------------------
 * Same contract as path_avx2.c: A read through strides (a packed panel has
 * rsa = 1, csa = MR), B as rows of NR contiguous values ldb apart,
 * C = alpha * AB (+ beta * C). */

#define ROWS8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

#define DEFINE_UKR(SFX, ROWS)                                                  \
    CSAE_INLINE_ALWAYS void                                                    \
    ukr_body_##SFX(size_t k, const REAL_ *restrict a, size_t rsa, size_t csa,  \
                   const REAL_ *restrict b, size_t ldb, REAL_ alpha, REAL_ beta, \
                   REAL_ *restrict c, size_t ldc, size_t mr, size_t nr, int edge, \
                   int half)                                                   \
    {                                                                          \
        ROWS(UKR_DECL)                                                         \
        if (beta != 0) {                                                       \
            ROWS(UKR_PREFETCH_C)                                               \
        }                                                                      \
        for (size_t p = 0; p < k; p++) {                                       \
            const VT_ b0 = LOAD_(b), b1 = half ? b0 : LOAD_(b + W_);           \
            ROWS(UKR_ROW)                                                      \
            a += csa;                                                          \
            b += ldb;                                                          \
        }                                                                      \
        const VT_ valpha = SET1_(alpha), vbeta = SET1_(beta);                  \
        if (!edge) {                                                           \
            ROWS(UKR_STORE)                                                    \
        } else {                                                               \
            const MASK_ m0 = nr >= W_ ? (MASK_)~0u : (MASK_)((1u << nr) - 1);  \
            const MASK_ m1 = nr >= 2 * W_ ? (MASK_)~0u                         \
                             : nr > W_ ? (MASK_)((1u << (nr - W_)) - 1) : 0;   \
            ROWS(UKR_STORE_EDGE)                                               \
        }                                                                      \
    }                                                                          \
    /* A packed panel (rsa = 1) gets its own copy of the loop, with the        \
     * rows at constant offsets: the generic one needs a register per row. */  \
    static inline void ukr_##SFX(size_t k, const REAL_ *restrict a, size_t rsa, \
                                 size_t csa, const REAL_ *restrict b, size_t ldb, \
                                 REAL_ alpha, REAL_ beta, REAL_ *restrict c,   \
                                 size_t ldc)                                   \
    {                                                                          \
        if (rsa == 1)                                                          \
            ukr_body_##SFX(k, a, 1, csa, b, ldb, alpha, beta, c, ldc, 0, 0, 0, 0); \
        else                                                                   \
            ukr_body_##SFX(k, a, rsa, csa, b, ldb, alpha, beta, c, ldc, 0, 0, 0, 0); \
    }                                                                          \
    /* An edge tile: the same products (the same FMA chains), with only the    \
     * mr x nr part that exists loaded and stored, through masks, instead of   \
     * a whole tile written to scratch and copied over (merge_edge_).  The     \
     * masked-off lanes of a load read nothing (and cannot fault).  A tile    \
     * at most one vector wide (the last 4 of 196 float32 columns) runs only   \
     * the first vector's FMAs: half the work of a whole tile, with the same   \
     * chain for every element it keeps. */                                   \
    static void ukr_edge_##SFX(size_t k, const REAL_ *restrict a, size_t rsa,  \
                               size_t csa, const REAL_ *restrict b, size_t ldb, \
                               REAL_ alpha, REAL_ beta, REAL_ *restrict c,     \
                               size_t ldc, size_t mr, size_t nr)               \
    {                                                                          \
        if (nr <= W_ && rsa == 1)                                              \
            ukr_body_##SFX(k, a, 1, csa, b, ldb, alpha, beta, c, ldc, mr, nr, 1, 1); \
        else if (nr <= W_)                                                     \
            ukr_body_##SFX(k, a, rsa, csa, b, ldb, alpha, beta, c, ldc, mr, nr, 1, 1); \
        else if (rsa == 1)                                                     \
            ukr_body_##SFX(k, a, 1, csa, b, ldb, alpha, beta, c, ldc, mr, nr, 1, 0); \
        else                                                                   \
            ukr_body_##SFX(k, a, rsa, csa, b, ldb, alpha, beta, c, ldc, mr, nr, 1, 0); \
    }

/* The kernel's element and vector types and intrinsics, VT_, REAL_, W_,
 * SET0_, SET1_, LOAD_, STORE_, MUL_ and FMA_, are #defined before each
 * DEFINE_UKR (and #undef'd after); DEFINE_UKR and these per-row pieces
 * both read them. */
#define UKR_DECL(i) VT_ c##i##0 = SET0_(), c##i##1 = SET0_();
/* The tile of C that the epilogue adds to (a later KC panel's, beta = 1)
 * is fetched while the products run, not waited for after them: its rows
 * are ldc apart, often in another page each (measured on Zen 4: the whole
 * L and M objectives 1-2% faster with it, in both dtypes). */
#define UKR_PREFETCH_C(i)                                                      \
    _mm_prefetch((const char *)(c + (i) * ldc), _MM_HINT_T0);                  \
    _mm_prefetch((const char *)(c + (i) * ldc + W_), _MM_HINT_T0);
#define UKR_ROW(i)                                                             \
    {                                                                          \
        const VT_ ai = SET1_(a[(i) * rsa]);                                    \
        c##i##0 = FMA_(ai, b0, c##i##0);                                       \
        if (!half)                                                             \
            c##i##1 = FMA_(ai, b1, c##i##1);                                   \
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

/* Row i of an edge tile: nothing for rows past mr, lanes masked past nr.
 * alpha * ab, then fma(beta, c, that), as UKR_STORE and merge_edge_ round. */
#define UKR_STORE_EDGE(i)                                                      \
    if ((i) < mr) {                                                            \
        REAL_ *ci = c + (i) * ldc;                                             \
        VT_ r0 = MUL_(valpha, c##i##0), r1 = MUL_(valpha, c##i##1);            \
        if (beta != 0) {                                                       \
            r0 = FMA_(vbeta, MLOAD_(m0, ci), r0);                              \
            r1 = FMA_(vbeta, MLOAD_(m1, ci + W_), r1);                         \
        }                                                                      \
        MSTORE_(ci, m0, r0);                                                   \
        MSTORE_(ci + W_, m1, r1);                                              \
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
#define MASK_ __mmask8
#define MLOAD_ _mm512_maskz_loadu_pd
#define MSTORE_ _mm512_mask_storeu_pd
DEFINE_UKR(f64, ROWS8)
#undef VT_
#undef REAL_
#undef W_
#undef SET0_
#undef SET1_
#undef LOAD_
#undef STORE_
#undef MUL_
#undef FMA_
#undef MASK_
#undef MLOAD_
#undef MSTORE_

#define VT_ __m512
#define REAL_ float
#define W_ 16
#define SET0_ _mm512_setzero_ps
#define SET1_ _mm512_set1_ps
#define LOAD_ _mm512_loadu_ps
#define STORE_ _mm512_storeu_ps
#define MUL_ _mm512_mul_ps
#define FMA_ _mm512_fmadd_ps
#define MASK_ __mmask16
#define MLOAD_ _mm512_maskz_loadu_ps
#define MSTORE_ _mm512_mask_storeu_ps
DEFINE_UKR(f32, ROWS8)
#undef VT_
#undef REAL_
#undef W_
#undef SET0_
#undef SET1_
#undef LOAD_
#undef STORE_
#undef MUL_
#undef FMA_
#undef MASK_
#undef MLOAD_
#undef MSTORE_

/* ---- exp, the sigmoid and the epilogue ----------------------------------
 * vec_math.h on 8 doubles / 16 floats.  AVX-512F has no floating-point
 * AND or OR (that is DQ) and no blendv: masks and integer operations stand
 * in, with the same bits. */

#define VM_TAG 512_pd
#define VM_F64 1
#define VM_REAL double
#define VM_T __m512d
#define VM_W 8
#define VM_MASK __mmask8
#define VM_SET1 _mm512_set1_pd
#define VM_LOAD _mm512_loadu_pd
#define VM_STORE _mm512_storeu_pd
#define VM_ADD _mm512_add_pd
#define VM_SUB _mm512_sub_pd
#define VM_MUL _mm512_mul_pd
#define VM_DIV _mm512_div_pd
#define VM_FMA _mm512_fmadd_pd
#define VM_FNMA _mm512_fnmadd_pd
#define VM_MAX _mm512_max_pd
#define VM_NOT_BELOW(x, c) _mm512_cmp_pd_mask(x, c, _CMP_NLT_UQ)
#define VM_KEEP(mask, v) _mm512_maskz_mov_pd(mask, v)
#define VM_POW2(t)                                                             \
    _mm512_castsi512_pd(_mm512_slli_epi64(                                     \
        _mm512_add_epi64(_mm512_castpd_si512(t), _mm512_set1_epi64(1023)), 52))
#define VM_NEG_ABS(v)                                                          \
    _mm512_castsi512_pd(_mm512_or_si512(                                       \
        _mm512_castpd_si512(v), _mm512_set1_epi64((long long)0x8000000000000000ULL)))
#define VM_IF_NEG(v, a, b)                                                     \
    _mm512_mask_blend_pd(                                                      \
        _mm512_cmplt_epi64_mask(_mm512_castpd_si512(v), _mm512_setzero_si512()), b, a)
#include "vec_math.h"

#define VM_TAG 512_ps
#define VM_F64 0
#define VM_REAL float
#define VM_T __m512
#define VM_W 16
#define VM_MASK __mmask16
#define VM_SET1 _mm512_set1_ps
#define VM_LOAD _mm512_loadu_ps
#define VM_STORE _mm512_storeu_ps
#define VM_ADD _mm512_add_ps
#define VM_SUB _mm512_sub_ps
#define VM_MUL _mm512_mul_ps
#define VM_DIV _mm512_div_ps
#define VM_FMA _mm512_fmadd_ps
#define VM_FNMA _mm512_fnmadd_ps
#define VM_MAX _mm512_max_ps
#define VM_NOT_BELOW(x, c) _mm512_cmp_ps_mask(x, c, _CMP_NLT_UQ)
#define VM_KEEP(mask, v) _mm512_maskz_mov_ps(mask, v)
#define VM_POW2(t)                                                             \
    _mm512_castsi512_ps(_mm512_slli_epi32(                                     \
        _mm512_add_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(127)), 23))
#define VM_NEG_ABS(v)                                                          \
    _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(v),                \
                                        _mm512_set1_epi32((int)0x80000000U)))
#define VM_IF_NEG(v, a, b)                                                     \
    _mm512_mask_blend_ps(                                                      \
        _mm512_cmplt_epi32_mask(_mm512_castps_si512(v), _mm512_setzero_si512()), b, a)
#include "vec_math.h"

/* Whole 512-bit vectors, then one 256-bit vector (sigmoid_x86.h), then
 * single values. */
VM_DEFINE_BIAS_ACT(f64, double, 512_pd, 256_pd)
VM_DEFINE_BIAS_ACT(f32, float, 512_ps, 256_ps)

/* The GEMM driver stores edge tiles through ukr_edge_* (gemm_template.h). */
#define PATH_UKR_EDGE 1
#include "path_tail.h"

const csae_ops csae_ops_avx512 = OPS_TABLE;

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif /* CSAE_ARCH_X86_64 */
