/*
 * kernels.h: the engine's internal BLAS-style kernels (not public API).
 *
 * Each kernel path (portable C, AVX2+FMA) fills one csae_kernels table;
 * dispatch.c picks a table once, from the CPU, and the engine only ever calls
 * through csae_kernels_active().  Both paths share the panel packing format,
 * so MR and NR are the same for every path.
 */
#ifndef CSAE_KERNELS_H
#define CSAE_KERNELS_H

#include <stddef.h>

/* Register tile of the GEMM micro-kernel: MR rows x NR columns of C. */
#define CSAE_MR 6
#define CSAE_NR_F64 8
#define CSAE_NR_F32 16
/* Cache blocking: KC is the depth of a packed panel (L1), MC the rows of a
 * packed A block (L2), NC the columns of a packed B block (L3). */
#define CSAE_KC 256
#define CSAE_MC 120
#define CSAE_NC 4096

/* Alignment of every workspace buffer (a cache line; AVX2 needs 32). */
#define CSAE_ALIGN 64

/*
 * Micro-kernel contract (BLIS style): a holds k packed columns of MR values,
 * b holds k packed rows of NR values; the kernel forms the MR x NR product
 * AB and writes C = alpha * AB + beta * C, with C row-major, row stride ldc.
 * When beta == 0, C is never read (it may hold garbage or NaN).
 */
typedef void (*csae_ukr_f64)(size_t k, const double *a, const double *b,
                             double alpha, double beta, double *c, size_t ldc);
typedef void (*csae_ukr_f32)(size_t k, const float *a, const float *b,
                             float alpha, float beta, float *c, size_t ldc);

/* Row-wise activation: Z[i, j] = f(Z[i, j] + bias[j]) for an m x n matrix
 * with row stride ldz; f the sigmoid (or the identity, for bias only). */
typedef void (*csae_bias_act_f64)(size_t m, size_t n, const double *bias,
                                  double *Z, size_t ldz, int sigmoid);
typedef void (*csae_bias_act_f32)(size_t m, size_t n, const float *bias,
                                  float *Z, size_t ldz, int sigmoid);

typedef struct {
    const char *name;
    csae_ukr_f64 gemm_ukr_f64;
    csae_ukr_f32 gemm_ukr_f32;
    csae_bias_act_f64 bias_act_f64;
    csae_bias_act_f32 bias_act_f32;
} csae_kernels;

extern const csae_kernels csae_kernels_portable;
#if defined(__x86_64__) || defined(_M_X64)
#define CSAE_HAVE_AVX2_PATH 1
extern const csae_kernels csae_kernels_avx2;
#endif

/* The table chosen at start-up or by csae_set_kernel_path. */
const csae_kernels *csae_kernels_active(void);

/* ---- GEMM driver (gemm.c) ----------------------------------------------
 * C (m x n, row-major, row stride ldc) = alpha * A B + beta * C, where A is
 * m x k with element (i, p) at A[i * rsa + p * csa] and B is k x n with
 * element (p, j) at B[p * rsb + j * csb]: strides express transposes, and
 * packing absorbs them.  `pack` is scratch of csae_gemm_pack_size() bytes,
 * aligned to CSAE_ALIGN.  When beta == 0, C is never read. */
size_t csae_gemm_pack_size(size_t m, size_t n, size_t k, size_t elem_size,
                           size_t n_threads);
void csae_gemm_f64(size_t m, size_t n, size_t k, double alpha,
                   const double *A, size_t rsa, size_t csa,
                   const double *B, size_t rsb, size_t csb,
                   double beta, double *C, size_t ldc,
                   void *pack, size_t n_threads);
void csae_gemm_f32(size_t m, size_t n, size_t k, float alpha,
                   const float *A, size_t rsa, size_t csa,
                   const float *B, size_t rsb, size_t csb,
                   float beta, float *C, size_t ldc,
                   void *pack, size_t n_threads);

/* ---- Thread pool (threads.c) --------------------------------------------
 * Runs task(context, i) for i in [0, n_tasks) on up to n_tasks threads (the
 * caller's thread takes task 0) and returns when all are done.  Falls back
 * to running the tasks one after another on the caller's thread when the
 * pool is busy with another caller or cannot start threads. */
void csae_parallel_run(size_t n_tasks, void (*task)(void *context, size_t i),
                       void *context);

#endif /* CSAE_KERNELS_H */
