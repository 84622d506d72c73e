/* The engine's speed by thread CPU time, for a machine shared with other
 * jobs: run.py's wall-clock medians move with the neighbours' load, while
 * the minimum CPU time over repeats of a single-threaded call barely does.
 * Calls the C API directly (no Python), one thread, on the benchmark's L, M
 * and S shapes; the kernel path is the engine's choice or CSAE_KERNEL_PATH.
 * blas_cputime.py measures OpenBLAS the same way.
 *
 *   cc -std=c11 -O3 -fopenmp-simd -Isrc_c benchmarks/engine_cputime.c src_c/[a-z]*.c \
 *      -lm -lpthread -o engine_cputime
 *   CSAE_KERNEL_PATH=avx2 ./engine_cputime [repeats]
 *
 * Prints, per shape and dtype: one SGD step (GFLOP/s counting the five
 * products, 10 n h FLOP per sample, elementwise work included), a
 * 4096-row encode (2 n h FLOP per row) and a one-row encode (us). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csae.h"

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

#define ROWS 4096

#define DEFINE_RUN(SFX, REAL)                                                  \
    static void run_##SFX(size_t n, size_t h, size_t batch, int repeats)      \
    {                                                                          \
        const csae_model model = {n, h, CSAE_DECODER_SIGMOID, 0.05, 3.0, 1e-4}; \
        const csae_sgd sgd = {0.1, 0.0, batch, 0};                             \
        /* 64-byte aligned, as csae publishes a model's weights: a one-row     \
         * encode reads W in place, and unaligned rows cost it 12-17%. */      \
        const size_t q_bytes =                                                 \
            ((2 * n * h + n + h) * sizeof(REAL) + 63) / 64 * 64;               \
        REAL *q = aligned_alloc(64, q_bytes);                                  \
        memset(q, 0, q_bytes);                                                 \
        const csae_params_##SFX p = {q, q + h * n, q + h * n + h, q + 2 * h * n + h}; \
        uint64_t state = 1;                                                    \
        csae_init_params_##SFX(&model, p, &state);                             \
        REAL *X = malloc(ROWS * n * sizeof(REAL)), *A = malloc(ROWS * h * sizeof(REAL)); \
        for (size_t i = 0; i < ROWS * n; i++)                                  \
            X[i] = (REAL)((csae_rng_next(&state) >> 11) * 0x1.0p-53);          \
        csae_workspace ws = {NULL, csae_train_workspace_size(&model, ROWS, sizeof(REAL), 1), 1}; \
        ws.data = malloc(ws.size);                                             \
        double step = 1e30, enc = 1e30, one = 1e30, loss;                      \
        for (int r = 0; r < repeats; r++) {                                    \
            double t0 = cpu_seconds();                                         \
            for (int s = 0; s < 8; s++)                                        \
                csae_sgd_step_##SFX(&model, &sgd, p, p, X + (s * batch % (ROWS - batch)) * n, \
                                    batch, &loss, &ws);                        \
            double t = (cpu_seconds() - t0) / 8;                               \
            step = t < step ? t : step;                                        \
            t0 = cpu_seconds();                                                \
            csae_encode_##SFX(&model, p.W, p.b, X, ROWS, A, &ws);              \
            t = cpu_seconds() - t0;                                            \
            enc = t < enc ? t : enc;                                           \
            t0 = cpu_seconds();                                                \
            for (int s = 0; s < 50; s++)                                       \
                csae_encode_##SFX(&model, p.W, p.b, X + s * n, 1, A, &ws);     \
            t = (cpu_seconds() - t0) / 50;                                     \
            one = t < one ? t : one;                                           \
        }                                                                      \
        printf("%-6s n %4zu h %4zu batch %3zu: step %8.3f ms %6.1f GFLOP/s | "  \
               "encode %d rows %6.1f GFLOP/s | encode 1 row %7.2f us\n",       \
               #REAL, n, h, batch, step * 1e3, 10.0 * n * h * batch / step / 1e9, \
               ROWS, 2.0 * n * h * ROWS / enc / 1e9, one * 1e6);               \
        free(q);                                                               \
        free(X);                                                               \
        free(A);                                                               \
        free(ws.data);                                                         \
    }

DEFINE_RUN(f32, float)
DEFINE_RUN(f64, double)

int main(int argc, char **argv)
{
    const int repeats = argc > 1 ? atoi(argv[1]) : 10;
    const csae_kernel_path path = csae_get_kernel_path();
    printf("kernel path %s\n", path == CSAE_PATH_AVX512 ? "avx512"
                               : path == CSAE_PATH_AVX2 ? "avx2" : "portable");
    const size_t shapes[3][3] = {{784, 1024, 256}, {784, 196, 128}, {64, 25, 100}};
    for (int s = 0; s < 3; s++) {
        const int r = s == 2 ? 20 * repeats : repeats; /* S is short: more tries */
        run_f32(shapes[s][0], shapes[s][1], shapes[s][2], r);
        run_f64(shapes[s][0], shapes[s][1], shapes[s][2], r);
    }
    return 0;
}
