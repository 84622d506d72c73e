/*
 * sigmoid_x86.h: vec_math.h's exp and sigmoid on 4 doubles / 8 floats
 * (AVX2 + FMA), included by path_avx2.c and path_avx512.c (both compiled
 * with AVX2 and FMA; the AVX-512 path takes the columns past its last whole
 * 512-bit vector with these).  Only the width-specific operations are here.
 */
#include <immintrin.h>

#define VM_TAG 256_pd
#define VM_F64 1
#define VM_REAL double
#define VM_T __m256d
#define VM_W 4
#define VM_MASK __m256d
#define VM_SET1 _mm256_set1_pd
#define VM_LOAD _mm256_loadu_pd
#define VM_STORE _mm256_storeu_pd
#define VM_ADD _mm256_add_pd
#define VM_SUB _mm256_sub_pd
#define VM_MUL _mm256_mul_pd
#define VM_DIV _mm256_div_pd
#define VM_FMA _mm256_fmadd_pd
#define VM_FNMA _mm256_fnmadd_pd
#define VM_MAX _mm256_max_pd
#define VM_NOT_BELOW(x, c) _mm256_cmp_pd(x, c, _CMP_NLT_UQ)
#define VM_KEEP(mask, v) _mm256_and_pd(mask, v)
#define VM_POW2(t)                                                             \
    _mm256_castsi256_pd(_mm256_slli_epi64(                                     \
        _mm256_add_epi64(_mm256_castpd_si256(t), _mm256_set1_epi64x(1023)), 52))
#define VM_NEG_ABS(v) _mm256_or_pd(v, _mm256_set1_pd(-0.0))
#define VM_IF_NEG(v, a, b) _mm256_blendv_pd(b, a, v)
#include "vec_math.h"

#define VM_TAG 256_ps
#define VM_F64 0
#define VM_REAL float
#define VM_T __m256
#define VM_W 8
#define VM_MASK __m256
#define VM_SET1 _mm256_set1_ps
#define VM_LOAD _mm256_loadu_ps
#define VM_STORE _mm256_storeu_ps
#define VM_ADD _mm256_add_ps
#define VM_SUB _mm256_sub_ps
#define VM_MUL _mm256_mul_ps
#define VM_DIV _mm256_div_ps
#define VM_FMA _mm256_fmadd_ps
#define VM_FNMA _mm256_fnmadd_ps
#define VM_MAX _mm256_max_ps
#define VM_NOT_BELOW(x, c) _mm256_cmp_ps(x, c, _CMP_NLT_UQ)
#define VM_KEEP(mask, v) _mm256_and_ps(mask, v)
#define VM_POW2(t)                                                             \
    _mm256_castsi256_ps(_mm256_slli_epi32(                                     \
        _mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127)), 23))
#define VM_NEG_ABS(v) _mm256_or_ps(v, _mm256_set1_ps(-0.0f))
#define VM_IF_NEG(v, a, b) _mm256_blendv_ps(b, a, v)
#include "vec_math.h"
