/*
 * path_portable.c: the plain-C kernel path.  Runs on any CPU; the compiler
 * may still vectorise it with the baseline instruction set.
 */
#include <math.h>
#include <string.h>

#include "kernels.h"

/* Register tiles: 6 rows of C by 8 (double) or 16 (float) columns. */
#define PATH_MR_F64 6
#define PATH_NR_F64 8
#define PATH_MR_F32 6
#define PATH_NR_F32 16

/* C = alpha * AB + beta * C for one MR x NR tile, AB accumulated in order of
 * p so that every entry is a plain left-to-right sum over the panel depth.
 * A is read through strides (rsa, csa), B as rows of NR values ldb apart. */
#define DEFINE_UKR(SFX, REAL, MR, NR)                                              \
    static inline void ukr_##SFX(size_t k, const REAL *restrict a, size_t rsa,   \
                                 size_t csa, const REAL *restrict b, size_t ldb, \
                                 REAL alpha, REAL beta, REAL *restrict c,      \
                                 size_t ldc)                                   \
    {                                                                          \
        REAL ab[MR * NR];                                                 \
        memset(ab, 0, sizeof ab);                                              \
        for (size_t p = 0; p < k; p++) {                                       \
            for (size_t i = 0; i < MR; i++) {                             \
                const REAL ai = a[i * rsa + p * csa];                          \
                for (size_t j = 0; j < NR; j++)                                \
                    ab[i * NR + j] += ai * b[p * ldb + j];                     \
            }                                                                  \
        }                                                                      \
        for (size_t i = 0; i < MR; i++) {                                 \
            REAL *ci = c + i * ldc;                                            \
            if (beta == 0) {                                                   \
                for (size_t j = 0; j < NR; j++) ci[j] = alpha * ab[i * NR + j];\
            } else {                                                           \
                for (size_t j = 0; j < NR; j++)                                \
                    ci[j] = alpha * ab[i * NR + j] + beta * ci[j];             \
            }                                                                  \
        }                                                                      \
    }

DEFINE_UKR(f64, double, PATH_MR_F64, PATH_NR_F64)
DEFINE_UKR(f32, float, PATH_MR_F32, PATH_NR_F32)

/* The sigmoid in the form that never overflows: with e = exp(-|z|),
 * sigmoid(z) = 1 / (1 + e) for z >= 0 and e / (1 + e) for z < 0. */
#define DEFINE_BIAS_ACT(SFX, REAL, EXP)                                        \
    static inline void bias_act_##SFX(size_t m, size_t n, const REAL *restrict bias,  \
                               REAL *restrict Z, size_t ldz, int sigmoid)      \
    {                                                                          \
        for (size_t i = 0; i < m; i++) {                                       \
            REAL *z = Z + i * ldz;                                             \
            if (!sigmoid) {                                                    \
                for (size_t j = 0; j < n; j++) z[j] += bias[j];                \
                continue;                                                      \
            }                                                                  \
            for (size_t j = 0; j < n; j++) {                                   \
                const REAL v = z[j] + bias[j];                                 \
                const REAL e = EXP(-(REAL)fabs(v));                            \
                const REAL s = (REAL)1 / ((REAL)1 + e);                        \
                z[j] = v >= 0 ? s : e * s;                                     \
            }                                                                  \
        }                                                                      \
    }

DEFINE_BIAS_ACT(f64, double, exp)
DEFINE_BIAS_ACT(f32, float, expf)

#include "path_tail.h"

const csae_ops csae_ops_portable = OPS_TABLE;
