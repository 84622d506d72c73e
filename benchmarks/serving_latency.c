/* One-row encode latency through the installed C library.  Built and run by benchmarks/serving.py:
 *
 *   cc -O2 serving_latency.c $(csae-config --cflags --libs) -o serving_latency
 *   ./serving_latency N_FEATURES N_HIDDEN ELEM_SIZE TRIALS
 *
 * A model of the given shape with csae's default initialisation, one input
 * row uniform in [0, 1), a forward workspace for one row on one thread,
 * allocated once (as a serving loop would).  Each trial times a batch of
 * calls of csae_encode_f64 / _f32 sized to take about 1 ms; the figure is the
 * median (and the best) over trials of the time per call.  Prints one JSON
 * line. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <csae.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static csae_status encode(const csae_model *m, size_t elem, const void *W, const void *b,
                          const void *x, void *a, const csae_workspace *ws)
{
    return elem == 8 ? csae_encode_f64(m, W, b, x, 1, a, ws)
                     : csae_encode_f32(m, W, b, x, 1, a, ws);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s N_FEATURES N_HIDDEN ELEM_SIZE TRIALS\n", argv[0]);
        return 2;
    }
    const size_t n = strtoul(argv[1], NULL, 10), h = strtoul(argv[2], NULL, 10);
    const size_t elem = strtoul(argv[3], NULL, 10);
    const int trials = atoi(argv[4]);
    if (elem != 4 && elem != 8) {
        fprintf(stderr, "ELEM_SIZE must be 4 or 8\n");
        return 2;
    }
    csae_model model = {n, h, CSAE_DECODER_SIGMOID, 0.05, 3.0, 1e-4};
    void *w = malloc((2 * n * h + n + h) * elem), *x = malloc(n * elem),
         *a = malloc(h * elem);
    double *times = malloc((size_t)trials * sizeof(double));
    csae_workspace ws = {NULL, csae_forward_workspace_size(&model, 1, elem, 1), 1};
    ws.data = malloc(ws.size);
    if (!w || !x || !a || !times || !ws.data)
        return 1;
    uint64_t rng = 1;
    csae_status st;
    const void *W = w, *b = (char *)w + n * h * elem;
    if (elem == 8) {
        double *p = w;
        st = csae_init_params_f64(&model, (csae_params_f64){p, p + n * h, p + n * h + h,
                                                           p + 2 * n * h + h}, &rng);
        for (size_t j = 0; j < n; j++)
            ((double *)x)[j] = (csae_rng_next(&rng) >> 11) * 0x1.0p-53;
    } else {
        float *p = w;
        st = csae_init_params_f32(&model, (csae_params_f32){p, p + n * h, p + n * h + h,
                                                           p + 2 * n * h + h}, &rng);
        for (size_t j = 0; j < n; j++)
            ((float *)x)[j] = (float)((csae_rng_next(&rng) >> 11) * 0x1.0p-53);
    }
    if (st != CSAE_OK) {
        fprintf(stderr, "%s\n", csae_status_message(st));
        return 1;
    }
    /* Warm up (first call resolves the kernel path) and size the batch. */
    long batch = 1;
    for (;;) {
        const double t0 = now();
        for (long i = 0; i < batch; i++)
            st = encode(&model, elem, W, b, x, a, &ws);
        if (st != CSAE_OK) {
            fprintf(stderr, "%s\n", csae_status_message(st));
            return 1;
        }
        if (now() - t0 > 1e-3 || batch > (1L << 24))
            break;
        batch *= 2;
    }
    for (int t = 0; t < trials; t++) {
        const double t0 = now();
        for (long i = 0; i < batch; i++)
            encode(&model, elem, W, b, x, a, &ws);
        times[t] = (now() - t0) / batch;
    }
    qsort(times, (size_t)trials, sizeof(double), cmp);
    const csae_kernel_path kp = csae_get_kernel_path();
    const char *path = kp == CSAE_PATH_PORTABLE ? "portable" : kp == CSAE_PATH_AVX2 ? "avx2"
                                                                                : "other";
    printf("{\"n_features\": %zu, \"n_hidden\": %zu, \"elem_size\": %zu, \"batch\": %ld, "
           "\"trials\": %d, \"median_us\": %.4f, \"best_us\": %.4f, \"kernel_path\": \"%s\", "
           "\"library\": \"%s\"}\n",
           n, h, elem, batch, trials, 1e6 * times[trials / 2], 1e6 * times[0], path,
           csae_version());
    free(w), free(x), free(a), free(times), free(ws.data);
    return 0;
}
