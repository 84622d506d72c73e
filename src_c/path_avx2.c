/*
 * path_avx2.c: the AVX2 + FMA kernel path (x86-64 with GCC or Clang).
 *
 * The whole file, core and GEMM included, is compiled for AVX2 + FMA by the
 * target pragma rather than by -mavx2, so the rest of the library (and the
 * wheel) still runs on any x86-64; dispatch.c only selects this table after
 * __builtin_cpu_supports says the CPU has both.
 */
#include "kernels.h"

#ifdef CSAE_HAVE_AVX2_PATH

#pragma GCC target("avx2,fma")

#include <immintrin.h>
#include <math.h>

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

/* ---- exp and the sigmoid -----------------------------------------------
 * exp(x) for x <= 0 (all the sigmoid needs): x = n ln2 + r with |r| <= ln2/2
 * (Cody-Waite, ln2 split in a high part exact in n * hi and a low part),
 * exp(r) by its Taylor polynomial (degree 12 in double, 7 in float: the
 * truncation error stays below one ulp), times 2^n built in the exponent
 * bits.  x is clamped where 2^n would leave the normal range; below that
 * the sigmoid is 0 to working precision anyway. */

static inline __m256d exp_nonpos_pd(__m256d x)
{
    const __m256d magic = _mm256_set1_pd(6755399441055744.0); /* 1.5 * 2^52 */
    x = _mm256_max_pd(x, _mm256_set1_pd(-708.0));
    const __m256d t = _mm256_fmadd_pd(x, _mm256_set1_pd(1.4426950408889634), magic);
    const __m256d n = _mm256_sub_pd(t, magic);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), x);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);
    __m256d p = _mm256_set1_pd(1.0 / 479001600.0);
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 39916800.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 3628800.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 362880.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 40320.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 5040.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 720.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 120.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 24.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 6.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.5));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    /* t holds 2^51 + n in its low mantissa bits; (n + 1023) << 52 is 2^n. */
    const __m256i scale = _mm256_slli_epi64(
        _mm256_add_epi64(_mm256_castpd_si256(t), _mm256_set1_epi64x(1023)), 52);
    return _mm256_mul_pd(p, _mm256_castsi256_pd(scale));
}

static inline __m256 exp_nonpos_ps(__m256 x)
{
    const __m256 magic = _mm256_set1_ps(12582912.0f); /* 1.5 * 2^23 */
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504f), magic);
    const __m256 n = _mm256_sub_ps(t, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i scale = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

/* sigmoid(v) = s or e * s with e = exp(-|v|), s = 1 / (1 + e), as in the
 * portable path; the sign bit of v picks the branch.  path_avx512.c
 * evaluates the same operations in the same order, lane by lane, so both
 * paths give the same bits. */
static inline __m256d sigmoid_pd(__m256d v)
{
    const __m256d one = _mm256_set1_pd(1.0);
    const __m256d e = exp_nonpos_pd(_mm256_or_pd(v, _mm256_set1_pd(-0.0))); /* exp(-|v|) */
    const __m256d s = _mm256_div_pd(one, _mm256_add_pd(one, e));
    return _mm256_blendv_pd(s, _mm256_mul_pd(e, s), v);
}

static inline __m256 sigmoid_ps(__m256 v)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 e = exp_nonpos_ps(_mm256_or_ps(v, _mm256_set1_ps(-0.0f)));
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
    return _mm256_blendv_ps(s, _mm256_mul_ps(e, s), v);
}

/* Z = f(Z + bias) row by row.  The last n % W columns go through the same
 * vector code (padded with zeros in a small buffer), never a scalar exp:
 * which columns form the tail depends on the vector width, and every
 * column must round the same way on every vector path. */
#define DEFINE_BIAS_ACT(SFX, REAL, VT, W, LOAD, STORE, ADD, SIGMOID)           \
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
            if (j < n) {                                                       \
                REAL buf[W] = {0};                                             \
                for (size_t q = 0; j + q < n; q++) buf[q] = z[j + q] + bias[j + q]; \
                STORE(buf, SIGMOID(LOAD(buf)));                                \
                for (size_t q = 0; j + q < n; q++) z[j + q] = buf[q];          \
            }                                                                  \
        }                                                                      \
    }

DEFINE_BIAS_ACT(f64, double, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd,
                _mm256_add_pd, sigmoid_pd)
DEFINE_BIAS_ACT(f32, float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps,
                _mm256_add_ps, sigmoid_ps)

#include "path_tail.h"

const csae_ops csae_ops_avx2 = OPS_TABLE("avx2", CSAE_PATH_AVX2);

#endif /* CSAE_HAVE_AVX2_PATH */
