/*
 * path_avx2.c: the AVX2 + FMA kernel path (x86-64 with GCC or Clang).
 *
 * The whole file, core and GEMM included, is compiled for AVX2 + FMA by the
 * target pragma rather than by -mavx2, so the rest of the library (and the
 * wheel) still runs on any x86-64; dispatch.c only selects this table after
 * __builtin_cpu_supports says the CPU has both.
 */
#include "kernels.h"

#ifdef CSAE_ARCH_X86_64

/* GCC compiles the rest of the file for the instruction set by its target
 * pragma; Clang ignores that pragma, so there the same target attribute is
 * pushed onto every function defined below (after the intrinsics headers,
 * which carry their own). */
#if defined(__clang__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#include <immintrin.h>
#endif
/* FMA is part of the target: scalar lanes fuse as the vectors do. */
#define CSAE_LANE_FMA 1

#include "sigmoid_x86.h"

/* Register tiles: 6 rows of C by two vectors (8 doubles, 16 floats). */
#define PATH_MR_F64 6
#define PATH_NR_F64 8
#define PATH_MR_F32 6
#define PATH_NR_F32 16


/* ---- GEMM micro-kernels ------------------------------------------------
 * 6 x 8 (double) and 6 x 16 (float): twelve accumulators, two B vectors and
 * one broadcast A value, fifteen of the sixteen ymm registers.  A is read
 * through strides (a packed panel has rsa = 1, csa = MR; an operand left in
 * place has its own), B as rows of NR contiguous values ldb apart. */

#define UKR_ROW(i, VT, BCAST, FMA, a, b0, b1)                                  \
    do {                                                                       \
        const VT ai = BCAST(a + (i) * rsa);                                    \
        c##i##0 = FMA(ai, b0, c##i##0);                                        \
        c##i##1 = FMA(ai, b1, c##i##1);                                        \
    } while (0)

/* Store row i of the tile: C = alpha * AB (+ beta * C). */
#define UKR_STORE(i, VT, W, LOAD, STORE, MUL, FMA, valpha, vbeta, beta, c, ldc) \
    do {                                                                       \
        double_or_float *ci = c + (i) * ldc;                                   \
        VT r0 = MUL(valpha, c##i##0), r1 = MUL(valpha, c##i##1);               \
        if (beta != 0) {                                                       \
            r0 = FMA(vbeta, LOAD(ci), r0);                                     \
            r1 = FMA(vbeta, LOAD(ci + W), r1);                                 \
        }                                                                      \
        STORE(ci, r0);                                                         \
        STORE(ci + W, r1);                                                     \
    } while (0)

#define DEFINE_UKR(SFX, REAL, VT, W, SET0, LOAD, STORE, BCAST, SET1, MUL, FMA)   \
    static inline void ukr_##SFX(size_t k, const REAL *restrict a, size_t rsa,   \
                                 size_t csa, const REAL *restrict b, size_t ldb, \
                                 REAL alpha, REAL beta, REAL *restrict c,      \
                                 size_t ldc)                                   \
    {                                                                          \
        typedef REAL double_or_float;                                          \
        VT c00 = SET0(), c01 = SET0(), c10 = SET0(), c11 = SET0();             \
        VT c20 = SET0(), c21 = SET0(), c30 = SET0(), c31 = SET0();             \
        VT c40 = SET0(), c41 = SET0(), c50 = SET0(), c51 = SET0();             \
        for (size_t p = 0; p < k; p++) {                                       \
            const VT b0 = LOAD(b), b1 = LOAD(b + W);                           \
            UKR_ROW(0, VT, BCAST, FMA, a, b0, b1);                             \
            UKR_ROW(1, VT, BCAST, FMA, a, b0, b1);                             \
            UKR_ROW(2, VT, BCAST, FMA, a, b0, b1);                             \
            UKR_ROW(3, VT, BCAST, FMA, a, b0, b1);                             \
            UKR_ROW(4, VT, BCAST, FMA, a, b0, b1);                             \
            UKR_ROW(5, VT, BCAST, FMA, a, b0, b1);                             \
            a += csa;                                                          \
            b += ldb;                                                          \
        }                                                                      \
        const VT valpha = SET1(alpha), vbeta = SET1(beta);                     \
        UKR_STORE(0, VT, W, LOAD, STORE, MUL, FMA, valpha, vbeta, beta, c, ldc); \
        UKR_STORE(1, VT, W, LOAD, STORE, MUL, FMA, valpha, vbeta, beta, c, ldc); \
        UKR_STORE(2, VT, W, LOAD, STORE, MUL, FMA, valpha, vbeta, beta, c, ldc); \
        UKR_STORE(3, VT, W, LOAD, STORE, MUL, FMA, valpha, vbeta, beta, c, ldc); \
        UKR_STORE(4, VT, W, LOAD, STORE, MUL, FMA, valpha, vbeta, beta, c, ldc); \
        UKR_STORE(5, VT, W, LOAD, STORE, MUL, FMA, valpha, vbeta, beta, c, ldc); \
    }

DEFINE_UKR(f64, double, __m256d, 4, _mm256_setzero_pd, _mm256_loadu_pd,
           _mm256_storeu_pd, _mm256_broadcast_sd, _mm256_set1_pd, _mm256_mul_pd,
           _mm256_fmadd_pd)
DEFINE_UKR(f32, float, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps,
           _mm256_storeu_ps, _mm256_broadcast_ss, _mm256_set1_ps, _mm256_mul_ps,
           _mm256_fmadd_ps)

/* The bias + sigmoid epilogue: whole 256-bit vectors, then single values. */
VM_DEFINE_BIAS_ACT(f64, double, 256_pd, 256_pd)
VM_DEFINE_BIAS_ACT(f32, float, 256_ps, 256_ps)

#include "path_tail.h"

const csae_ops csae_ops_avx2 = OPS_TABLE;

#if defined(__clang__)
#pragma clang attribute pop
#endif

#endif /* CSAE_ARCH_X86_64 */
