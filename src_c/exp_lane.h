/*
 * exp_lane.h: exp(x) for x <= 0 and the sigmoid one value at a time, with
 * the operations of vec_math.h's vector versions in the same order (the
 * rules: gemm_template.h, top), so that a value computed here (a column
 * tail, or the fused one-row step's sigmoid) has the bits a vector lane
 * would give it.  Shared by vec_math.h and sample_template.h; plain C, so
 * the portable path includes it too.
 */
#ifndef CSAE_EXP_LANE_H
#define CSAE_EXP_LANE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* a * b + c, fused (one rounding) where the target has FMA.  A vector
 * path's file says so itself (CSAE_LANE_FMA 1 before including this):
 * GCC's target pragma defines __FMA__ for the rest of the file, but Clang's
 * target attribute does not, and the lanes must round as the vectors do. */
#ifndef CSAE_LANE_FMA
#if defined(__FMA__) || defined(__AVX512F__) || defined(__FP_FAST_FMA) || \
    defined(__aarch64__)
#define CSAE_LANE_FMA 1
#else
#define CSAE_LANE_FMA 0
#endif
#endif
#if CSAE_LANE_FMA
static inline double madd_f64(double a, double b, double c) { return fma(a, b, c); }
static inline float madd_f32(float a, float b, float c) { return fmaf(a, b, c); }
#else
static inline double madd_f64(double a, double b, double c) { return a * b + c; }
static inline float madd_f32(float a, float b, float c) { return a * b + c; }
#endif

/* Below these, exp(x) rounds to 0 in the type (ln of half the smallest
 * subnormal is -745.13 in double, -103.97 in float), so the exp kernels
 * return exactly 0 there: the limit, -inf included, on every path. */
#define CSAE_EXP_ZERO_F64 (-746.0)
#define CSAE_EXP_ZERO_F32 (-104.0f)

/* exp(x) for x <= 0, vec_math.h's vm_exp_nonpos one element at a time:
 * Cody-Waite reduction x = n ln2 + r, Taylor polynomial of exp(r) (degree
 * 12 in double, 7 in float), 2^n built in the exponent bits of t.  x is
 * clamped as max(lo, x) is on x86 (a NaN stays NaN), and the result is 0
 * below the underflow limit (-inf included), as there. */
static inline double exp_nonpos_lane_f64(double x)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    const uint64_t live = (uint64_t)0 - (uint64_t)!(x < CSAE_EXP_ZERO_F64);
    x = x < -708.0 ? -708.0 : x;
    const double t = madd_f64(x, 1.4426950408889634, magic);
    const double n = t - magic;
    double r = madd_f64(-n, 6.93147180369123816490e-01, x);
    r = madd_f64(-n, 1.90821492927058770002e-10, r);
    double p = 1.0 / 479001600.0;
    p = madd_f64(p, r, 1.0 / 39916800.0);
    p = madd_f64(p, r, 1.0 / 3628800.0);
    p = madd_f64(p, r, 1.0 / 362880.0);
    p = madd_f64(p, r, 1.0 / 40320.0);
    p = madd_f64(p, r, 1.0 / 5040.0);
    p = madd_f64(p, r, 1.0 / 720.0);
    p = madd_f64(p, r, 1.0 / 120.0);
    p = madd_f64(p, r, 1.0 / 24.0);
    p = madd_f64(p, r, 1.0 / 6.0);
    p = madd_f64(p, r, 0.5);
    p = madd_f64(p, r, 1.0);
    p = madd_f64(p, r, 1.0);
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    /* zeroed by an integer mask, as the vector AND does: a floating-point
     * select would not vectorise under -ftrapping-math */
    const double out = p * scale;
    memcpy(&bits, &out, sizeof bits);
    bits &= live;
    double result;
    memcpy(&result, &bits, sizeof result);
    return result;
}

static inline float exp_nonpos_lane_f32(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    const uint32_t live = (uint32_t)0 - (uint32_t)!(x < CSAE_EXP_ZERO_F32);
    x = x < -87.0f ? -87.0f : x;
    const float t = madd_f32(x, 1.44269504f, magic);
    const float n = t - magic;
    float r = madd_f32(-n, 0.693359375f, x);
    r = madd_f32(-n, -2.12194440e-4f, r);
    float p = 1.0f / 5040.0f;
    p = madd_f32(p, r, 1.0f / 720.0f);
    p = madd_f32(p, r, 1.0f / 120.0f);
    p = madd_f32(p, r, 1.0f / 24.0f);
    p = madd_f32(p, r, 1.0f / 6.0f);
    p = madd_f32(p, r, 0.5f);
    p = madd_f32(p, r, 1.0f);
    p = madd_f32(p, r, 1.0f);
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    const float out = p * scale;
    memcpy(&bits, &out, sizeof bits);
    bits &= live;
    float result;
    memcpy(&result, &bits, sizeof result);
    return result;
}

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

#endif
