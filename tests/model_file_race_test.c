/*
 * model_file_race_test.c: the model-file reader while the file changes
 * under it, made deterministic by interposing pread.
 *
 *   model_file_race_test SMALL LARGE
 *
 * SMALL and LARGE are two valid model files of the same size in bytes but
 * of different shapes (LARGE has more features and hidden units), and
 * SMALL scales its inputs.  Linked with -Wl,--wrap=pread, so every read
 * the reader makes goes through __wrap_pread below: after the first k
 * reads it is served LARGE's bytes instead of SMALL's, as if another
 * process had saved a bigger model over the same path (in place) at that
 * moment.  For every k from 0 to the number of reads a whole call makes,
 * csae_model_file_read_f64 and csae_model_file_input_range are called with
 * SMALL's model, and csae_model_file_read_all (what csae.load uses) with
 * SMALL's layout, all with buffers that end exactly at a PROT_NONE page: a
 * write past them kills the program.  A call must fail or return SMALL's
 * values.
 * Prints one summary line ending in "0 failed".
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#include "csae.h"
#include "model_file.h"

ssize_t __real_pread(int fd, void *buf, size_t n, off_t offset);
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t offset);

static long calls;                /* preads made since the last reset */
static long swap_after = -1;      /* serve the other file from this read on (-1: never) */
static unsigned char *other;      /* its bytes */
static size_t other_size;

ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t offset)
{
    const long index = calls++;
    if (swap_after < 0 || index < swap_after)
        return __real_pread(fd, buf, n, offset);
    if (offset < 0 || (size_t)offset >= other_size)
        return 0;
    const size_t left = other_size - (size_t)offset;
    const size_t k = n < left ? n : left;
    memcpy(buf, other + offset, k);
    return (ssize_t)k;
}

static int failures, checks;

static void check(int ok, const char *what, long k)
{
    checks++;
    if (!ok) {
        failures++;
        printf("FAIL %s (file replaced after %ld reads)\n", what, k);
    }
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return p;
}

/* count doubles that end exactly where a PROT_NONE page begins. */
typedef struct {
    void *map;
    size_t map_size;
    double *p;
} guarded;

static double *guarded_alloc(guarded *g, size_t count)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t bytes = count * sizeof(double);
    const size_t pages = (bytes + page - 1) / page;
    g->map_size = (pages + 1) * page;
    g->map = mmap(NULL, g->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                  -1, 0);
    if (g->map == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    unsigned char *guard = (unsigned char *)g->map + pages * page;
    if (mprotect(guard, page, PROT_NONE) != 0) {
        perror("mprotect");
        exit(2);
    }
    g->p = (double *)(guard - bytes);
    for (size_t i = 0; i < count; i++)
        g->p[i] = -12345.0; /* not a weight of either file */
    return g->p;
}

static void guarded_free(guarded *g) { munmap(g->map, g->map_size); }

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SMALL LARGE\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    size_t small_size;
    unsigned char *small = slurp(path, &small_size);
    other = slurp(argv[2], &other_size);
    if (!small || !other || small_size != other_size) {
        fprintf(stderr, "the two files must exist and have the same size\n");
        return 2;
    }

    /* What the files hold, read without interference. */
    csae_model model, large;
    size_t elem, large_elem;
    if (csae_model_file_info(path, &model, &elem) != CSAE_OK
        || csae_model_file_info(argv[2], &large, &large_elem) != CSAE_OK || elem != 8
        || large_elem != 8 || large.n_features <= model.n_features
        || large.n_hidden <= model.n_hidden) {
        fprintf(stderr, "SMALL and LARGE must be float64 models, LARGE the bigger\n");
        return 2;
    }
    const size_t n = model.n_features, h = model.n_hidden;
    const size_t sizes[4] = {h * n, h, n * h, n};
    double *expected[4], *lo_expected = malloc(n * sizeof(double)),
           *scale_expected = malloc(n * sizeof(double));
    for (int k = 0; k < 4; k++)
        expected[k] = malloc(sizes[k] * sizeof(double));
    csae_params_f64 ref = {expected[0], expected[1], expected[2], expected[3]};
    int scales = 0;
    calls = 0;
    if (csae_model_file_read_f64(path, &model, ref) != CSAE_OK
        || csae_model_file_input_range(path, &model, &scales, lo_expected, scale_expected)
               != CSAE_OK
        || !scales) {
        fprintf(stderr, "SMALL must read, and scale its inputs\n");
        return 2;
    }
    /* Every read a call makes (both functions, whichever makes more, with
     * a margin): each is a point where the file may change. */
    const long total = calls + 16;

    for (long k = 0; k <= total; k++) {
        guarded g[4];
        double *w[4];
        for (int i = 0; i < 4; i++)
            w[i] = guarded_alloc(&g[i], sizes[i]);
        calls = 0;
        swap_after = k;
        const csae_params_f64 params = {w[0], w[1], w[2], w[3]};
        csae_status st = csae_model_file_read_f64(path, &model, params);
        swap_after = -1;
        if (st == CSAE_OK)
            for (int i = 0; i < 4; i++)
                check(memcmp(w[i], expected[i], sizes[i] * sizeof(double)) == 0,
                      "read_f64 returned OK with other values than the file's", k);
        else
            check(st == CSAE_ERR_FORMAT || st == CSAE_ERR_MISMATCH
                      || st == CSAE_ERR_UNSUPPORTED || st == CSAE_ERR_DTYPE,
                  "read_f64 failed with an unexpected status", k);
        for (int i = 0; i < 4; i++)
            guarded_free(&g[i]);

        guarded gl, gs;
        double *lo = guarded_alloc(&gl, n), *scale = guarded_alloc(&gs, n);
        int flag = -1;
        calls = 0;
        swap_after = k;
        st = csae_model_file_input_range(path, &model, &flag, lo, scale);
        swap_after = -1;
        if (st == CSAE_OK)
            check(flag == 1 && memcmp(lo, lo_expected, n * sizeof(double)) == 0
                      && memcmp(scale, scale_expected, n * sizeof(double)) == 0,
                  "input_range returned OK with other values than the file's", k);
        else
            check(st == CSAE_ERR_FORMAT || st == CSAE_ERR_MISMATCH
                      || st == CSAE_ERR_UNSUPPORTED,
                  "input_range failed with an unexpected status", k);
        guarded_free(&gl);
        guarded_free(&gs);

        /* The whole-file pair: the layout read from SMALL, then the file
         * replaced during read_all. */
        const int fd = open(path, O_RDONLY);
        csae_model_layout layout;
        if (fd < 0 || csae_model_file_layout(fd, &layout) != CSAE_OK) {
            fprintf(stderr, "cannot read the layout of SMALL\n");
            return 2;
        }
        guarded ga[19];
        int used = 0;
        csae_model_arrays dest;
        memset(&dest, 0, sizeof dest);
        for (int i = 0; i < 4; i++) {
            dest.params[i] = guarded_alloc(&ga[used++], sizes[i]);
            if (layout.has_velocity)
                dest.velocity[i] = guarded_alloc(&ga[used++], sizes[i]);
            if (layout.has_adam) {
                dest.adam_m[i] = guarded_alloc(&ga[used++], sizes[i]);
                dest.adam_v[i] = guarded_alloc(&ga[used++], sizes[i]);
            }
        }
        if (layout.has_running)
            dest.rho_running = guarded_alloc(&ga[used++], h);
        if (layout.has_range) {
            dest.data_min = guarded_alloc(&ga[used++], n);
            dest.data_scale = guarded_alloc(&ga[used++], n);
        }
        dest.loss_curve = guarded_alloc(&ga[used++], (size_t)layout.n_iter);
        calls = 0;
        swap_after = k;
        st = csae_model_file_read_all(fd, &layout, &dest);
        swap_after = -1;
        if (st == CSAE_OK)
            for (int i = 0; i < 4; i++)
                check(memcmp(dest.params[i], expected[i], sizes[i] * sizeof(double)) == 0,
                      "read_all returned OK with other values than the file's", k);
        else
            check(st == CSAE_ERR_FORMAT || st == CSAE_ERR_MISMATCH
                      || st == CSAE_ERR_UNSUPPORTED,
                  "read_all failed with an unexpected status", k);
        for (int i = 0; i < used; i++)
            guarded_free(&ga[i]);
        close(fd);
    }
    for (int k = 0; k < 4; k++)
        free(expected[k]);
    free(lo_expected);
    free(scale_expected);
    free(small);
    free(other);
    printf("%d checks, %ld switch points, %d failed\n", checks, total + 1, failures);
    return failures != 0;
}
