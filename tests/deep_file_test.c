/*
 * deep_file_test.c: a deep model's file saved by Python, read and run with
 * the C API alone (tests/test_deep_persist.py builds and runs it).
 *
 *   deep_file_test MODEL INPUT OUTPUT
 *
 * INPUT holds m rows of n doubles (raw, the host's byte order), m taken
 * from its size.  The program reads the model (csae_deep_file_*), scales
 * the rows by the stored input range as Python does (in double, then the
 * model's type), runs csae_deep_forward_* (a classifier) or
 * csae_deep_encode_* (a stack) and writes the result to OUTPUT in the
 * model's type.  Prints "ok" or the failing step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csae.h"

static int fail(const char *what, csae_status st)
{
    printf("%s: %s\n", what, csae_status_message(st));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL INPUT OUTPUT\n", argv[0]);
        return 2;
    }
    csae_deep_file info;
    csae_status st = csae_deep_file_info(argv[1], &info);
    if (st != CSAE_OK)
        return fail("info", st);
    const csae_deep_net net = {info.n_hidden_layers, info.sizes};
    const size_t n = info.sizes[0], e = info.elem_size;
    const int classifier = info.kind == CSAE_DEEP_FILE_CLASSIFIER;
    const size_t out_cols = classifier ? info.sizes[info.n_hidden_layers + 1]
                                       : info.sizes[info.n_hidden_layers];

    FILE *in = fopen(argv[2], "rb");
    if (!in)
        return 2;
    fseek(in, 0, SEEK_END);
    const size_t m = (size_t)ftell(in) / (n * sizeof(double));
    fseek(in, 0, SEEK_SET);
    double *X = malloc(m * n * sizeof(double));
    if (!X || fread(X, sizeof(double), m * n, in) != m * n)
        return 2;
    fclose(in);

    double *lo = malloc(n * sizeof(double)), *scale = malloc(n * sizeof(double));
    if (info.has_range) {
        st = csae_deep_file_input_range(argv[1], &info, lo, scale);
        if (st != CSAE_OK)
            return fail("input_range", st);
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                X[i * n + j] = (X[i * n + j] - lo[j]) / scale[j];
    }
    void *theta = malloc(info.n_params * e), *Xe = malloc(m * n * e), *out = malloc(m * out_cols * e);
    if (e == 8) {
        st = csae_deep_file_read_f64(argv[1], &info, theta);
        memcpy(Xe, X, m * n * sizeof(double));
    } else {
        st = csae_deep_file_read_f32(argv[1], &info, theta);
        for (size_t i = 0; i < m * n; i++)
            ((float *)Xe)[i] = (float)X[i];
    }
    if (st != CSAE_OK)
        return fail("read", st);
    const size_t ws_size = csae_deep_forward_workspace_size(&net, m, e, 1);
    void *ws_mem = malloc(ws_size ? ws_size : 1);
    const csae_workspace ws = {ws_mem, ws_size, 1};
    if (e == 8)
        st = classifier ? csae_deep_forward_f64(&net, theta, Xe, m, out, &ws)
                        : csae_deep_encode_f64(&net, theta, Xe, m, out, &ws);
    else
        st = classifier ? csae_deep_forward_f32(&net, theta, Xe, m, out, &ws)
                        : csae_deep_encode_f32(&net, theta, Xe, m, out, &ws);
    if (st != CSAE_OK)
        return fail("run", st);
    FILE *o = fopen(argv[3], "wb");
    if (!o || fwrite(out, e, m * out_cols, o) != m * out_cols || fclose(o) != 0)
        return 2;
    printf("ok %s %zu layers\n", classifier ? "classifier" : "encoder", info.n_hidden_layers);
    free(X), free(lo), free(scale), free(theta), free(Xe), free(out), free(ws_mem);
    return 0;
}
