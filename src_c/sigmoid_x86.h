/*
 * sigmoid_x86.h: exp(x) for x <= 0 and the sigmoid on 4 doubles / 8 floats
 * (AVX2 + FMA) and on one value, included by path_avx2.c and path_avx512.c
 * (both compiled with AVX2 and FMA, so fma and fmaf are single
 * instructions).  path_avx512.c has the same on 16 floats / 8 doubles.
 *
 * Every version performs the same IEEE operations in the same order: max
 * (returning its second operand for a NaN, as vmaxps does), FMA, add, mul,
 * divide and integer operations.  So a value comes out bit-identical
 * whichever version computes it, in whichever lane: the vector paths
 * process the columns past their last whole vector with the narrower
 * versions (how many there are depends on the vector width), and agree
 * bit for bit.  Scalar loads and stores there also avoid the
 * store-forwarding stalls of masked loads of data just written.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "exp_lane.h"

/* ---- exp and the sigmoid -----------------------------------------------
 * exp(x) for x <= 0 (all the sigmoid needs): x = n ln2 + r with |r| <= ln2/2
 * (Cody-Waite, ln2 split in a high part exact in n * hi and a low part),
 * exp(r) by its Taylor polynomial (degree 12 in double, 7 in float: the
 * truncation error stays below one ulp), times 2^n built in the exponent
 * bits.  x is clamped where 2^n would leave the normal range, so inputs
 * from the clamp down to the underflow limit all give exp(clamp) (kept: it
 * fixes the bits of every finite result so far); below the underflow
 * limit, -inf included, the result is exactly 0, the value exp rounds to.
 * A NaN stays NaN: max returns its second operand when one is NaN, so the
 * clamp is max(clamp, x), and the compare that zeroes is false for NaN. */

static inline __m256d exp256_nonpos_pd(__m256d x)
{
    const __m256d magic = _mm256_set1_pd(6755399441055744.0); /* 1.5 * 2^52 */
    const __m256d live = _mm256_cmp_pd(x, _mm256_set1_pd(CSAE_EXP_ZERO_F64), _CMP_NLT_UQ);
    x = _mm256_max_pd(_mm256_set1_pd(-708.0), x);
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
    return _mm256_and_pd(live, _mm256_mul_pd(p, _mm256_castsi256_pd(scale)));
}

static inline __m256 exp256_nonpos_ps(__m256 x)
{
    const __m256 magic = _mm256_set1_ps(12582912.0f); /* 1.5 * 2^23 */
    const __m256 live = _mm256_cmp_ps(x, _mm256_set1_ps(CSAE_EXP_ZERO_F32), _CMP_NLT_UQ);
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);
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
    return _mm256_and_ps(live, _mm256_mul_ps(p, _mm256_castsi256_ps(scale)));
}

/* sigmoid(v) = s or e * s with e = exp(-|v|), s = 1 / (1 + e), as in the
 * portable path; the sign bit of v picks the branch. */
static inline __m256d sigmoid256_pd(__m256d v)
{
    const __m256d one = _mm256_set1_pd(1.0);
    const __m256d e = exp256_nonpos_pd(_mm256_or_pd(v, _mm256_set1_pd(-0.0))); /* exp(-|v|) */
    const __m256d s = _mm256_div_pd(one, _mm256_add_pd(one, e));
    return _mm256_blendv_pd(s, _mm256_mul_pd(e, s), v);
}

static inline __m256 sigmoid256_ps(__m256 v)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 e = exp256_nonpos_ps(_mm256_or_ps(v, _mm256_set1_ps(-0.0f)));
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
    return _mm256_blendv_ps(s, _mm256_mul_ps(e, s), v);
}

/* ---- One value at a time ------------------------------------------------- */

/* sigmoid(v) = s or e * s, e = exp(-|v|), s = 1 / (1 + e); v's sign bit
 * picks (as the vector blend does, for -0 and NaNs too). */
static inline double sigmoid_lane_f64(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    const uint64_t neg_bits = bits | 0x8000000000000000ULL;
    double neg_abs;
    memcpy(&neg_abs, &neg_bits, sizeof neg_abs);
    const double e = exp_nonpos_lane_f64(neg_abs);
    const double s = 1.0 / (1.0 + e);
    return bits >> 63 ? e * s : s;
}

static inline float sigmoid_lane_f32(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    const uint32_t neg_bits = bits | 0x80000000U;
    float neg_abs;
    memcpy(&neg_abs, &neg_bits, sizeof neg_abs);
    const float e = exp_nonpos_lane_f32(neg_abs);
    const float s = 1.0f / (1.0f + e);
    return bits >> 31 ? e * s : s;
}
