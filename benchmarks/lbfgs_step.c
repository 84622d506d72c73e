/* The L-BFGS optimizer's own step (csae_lbfgs_step, src_c/lbfgs.c) by thread
 * CPU time, without the objective: what a fit spends outside its
 * evaluations.  Runs the optimizer on a cheap separable quartic with the
 * parameter counts of lbfgs_fit.py's M (308 308) and L (1 050 112) models,
 * history 10, its vectors stored in float64 and in float32
 * (csae_lbfgs_options.float32_storage, what a float32 model's fit uses),
 * alternating the two in each round so both see the same machine.
 *
 *   cc -std=c11 -O3 -fopenmp-simd -fno-math-errno -Isrc_c benchmarks/lbfgs_step.c \
 *      src_c/[a-z]*.c -lm -lpthread -o lbfgs_step
 *   ./lbfgs_step [rounds] [threads]
 *
 * Prints, per size and storage, the CPU time of the optimizer's calls per
 * iteration over iterations 11-30 (the history full), each round and the
 * median.  The quartic's curvatures spread over four orders of magnitude so
 * that 30 iterations stay far from the minimum: near it the gradients are
 * denormal and every pass runs several times slower.  The memory bandwidth
 * other jobs leave decides these times: compare the two storages within a
 * run, not runs on different days. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csae.h"

#define ITERATIONS 30
#define FULL 10 /* iterations before the history is full (history 10) */
#define MAX_ROUNDS 15

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double quartic(const double *x, double *g, size_t n)
{
    double f = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double q = (double)(i % 1000), c = 1.0 + q * q / 100.0, e = x[i] - 1.0;
        g[i] = c * e * (1.0 + e * e);
        f += c * e * e * (0.5 + 0.25 * e * e);
    }
    return f;
}

/* ms of optimizer CPU time per iteration once the history is full; -1 if
 * the run could not start. */
static double step_ms(size_t n, int narrow, size_t threads)
{
    csae_lbfgs_options o = csae_lbfgs_default_options();
    o.max_iter = ITERATIONS;
    o.ftol = 0.0;
    o.float32_storage = narrow;
    o.n_threads = threads;
    const size_t len = csae_lbfgs_workspace_size(n, &o);
    double *work = malloc(len * sizeof(double)), *x = malloc(n * sizeof(double));
    double *g = malloc(n * sizeof(double));
    double ms = -1.0;
    csae_lbfgs s;
    if (work && x && g && csae_lbfgs_init(&s, n, &o, work, len) == CSAE_OK) {
        for (size_t i = 0; i < n; i++)
            x[i] = 3.0 * sin(0.1 * (double)i);
        double f = 0.0, spent = 0.0;
        for (;;) {
            const double t0 = cpu_seconds();
            const csae_lbfgs_task task = csae_lbfgs_step(&s, x, &f, g);
            if (s.iterations > FULL)
                spent += cpu_seconds() - t0;
            if (task == CSAE_LBFGS_EVALUATE)
                f = quartic(x, g, n);
            else if (task != CSAE_LBFGS_ITERATE)
                break;
        }
        ms = 1e3 * spent / (ITERATIONS - FULL);
    }
    free(work);
    free(x);
    free(g);
    return ms;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    const size_t threads = argc > 2 ? strtoul(argv[2], NULL, 10) : 1;
    if (rounds < 1 || rounds > MAX_ROUNDS || threads < 1) {
        fprintf(stderr, "usage: %s [rounds 1-%d] [threads >= 1]\n", argv[0], MAX_ROUNDS);
        return 2;
    }
    const size_t sizes[2] = {308308, 1050112};
    const char *names[2] = {"M", "L"};
    for (int c = 0; c < 2; c++) {
        double ms[2][MAX_ROUNDS];
        printf("%s (%zu parameters), %zu thread(s), ms per iteration:\n", names[c], sizes[c],
               threads);
        for (int r = 0; r < rounds; r++)
            for (int narrow = 0; narrow <= 1; narrow++)
                ms[narrow][r] = step_ms(sizes[c], narrow, threads);
        for (int narrow = 0; narrow <= 1; narrow++) {
            printf("  %s storage:", narrow ? "float32" : "float64");
            for (int r = 0; r < rounds; r++)
                printf(" %.2f", ms[narrow][r]);
            qsort(ms[narrow], (size_t)rounds, sizeof(double), by_value);
            printf("  median %.2f\n", ms[narrow][rounds / 2]);
        }
    }
    return 0;
}
