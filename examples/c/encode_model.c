/*
 * encode_model.c: serve a model trained and saved from Python, in C.
 *
 *   encode_model MODEL.npz [ROWS.txt]
 *
 * Reads rows of n_features numbers (whitespace-separated, any line layout)
 * from ROWS.txt or standard input, and prints each row's hidden
 * activations -- what model.transform(rows) returns in Python -- one row
 * per line, with enough digits to round-trip (%.17g for a float64 model,
 * %.9g for float32).
 *
 * Build against the installed library (pip install csae):
 *
 *   cc encode_model.c $(csae-config --cflags --libs) -o encode_model
 *
 * In Python:
 *
 *   model = csae.SparseAutoencoder(n_hidden=25).fit(X)
 *   model.save("model.npz")
 *   np.savetxt("rows.txt", X[:10])
 *
 * then `./encode_model model.npz rows.txt`.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <csae.h>

static int fail(const char *what, csae_status st)
{
    fprintf(stderr, "encode_model: %s: %s\n", what, csae_status_message(st));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s MODEL.npz [ROWS.txt]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    FILE *in = argc == 3 ? fopen(argv[2], "r") : stdin;
    if (!in) {
        perror(argv[2]);
        return 1;
    }

    /* 1. What the file holds: shape, decoder, objective, element size. */
    csae_model model;
    size_t elem;
    csae_status st = csae_model_file_info(path, &model, &elem);
    if (st != CSAE_OK)
        return fail(path, st);
    const size_t n = model.n_features, h = model.n_hidden;

    /* 2. The weights, into memory this program owns.  W, b, Wd, bd are
     * h*n, h, n*h and n elements, one block here. */
    void *weights = malloc((2 * n * h + n + h) * elem);
    double *range = malloc(2 * n * sizeof(double)); /* data_min, data_scale */
    double *x = malloc(n * sizeof(double));
    void *row = malloc(n * elem), *hidden = malloc(h * elem);
    /* 3. Scratch memory for encoding one row on one thread. */
    csae_workspace ws = {NULL, csae_forward_workspace_size(&model, 1, elem, 1), 1};
    ws.data = malloc(ws.size);
    if (!weights || !range || !x || !row || !hidden || !ws.data) {
        fprintf(stderr, "encode_model: out of memory\n");
        return 1;
    }
    if (elem == sizeof(double)) {
        double *w = weights;
        const csae_params_f64 p = {w, w + h * n, w + h * n + h, w + 2 * h * n + h};
        st = csae_model_file_read_f64(path, &model, p);
    } else {
        float *w = weights;
        const csae_params_f32 p = {w, w + h * n, w + h * n + h, w + 2 * h * n + h};
        st = csae_model_file_read_f32(path, &model, p);
    }
    if (st != CSAE_OK)
        return fail(path, st);

    /* 4. A model trained with scale_inputs=True maps x to
     * (x - data_min) / data_scale first, in double. */
    int scale_inputs = 0;
    st = csae_model_file_input_range(path, &model, &scale_inputs, range, range + n);
    if (st != CSAE_OK)
        return fail(path, st);

    /* 5. Encode row by row. */
    for (size_t r = 0;; r++) {
        size_t got = 0;
        while (got < n && fscanf(in, "%lf", &x[got]) == 1)
            got++;
        if (got == 0 && feof(in))
            break;
        if (got < n) {
            fprintf(stderr, "encode_model: row %zu: expected %zu numbers, read %zu\n",
                    r + 1, n, got);
            return 1;
        }
        for (size_t j = 0; j < n; j++) {
            const double v = scale_inputs ? (x[j] - range[j]) / range[n + j] : x[j];
            if (elem == sizeof(double))
                ((double *)row)[j] = v;
            else
                ((float *)row)[j] = (float)v;
            if (!isfinite(elem == sizeof(double) ? v : (double)(float)v)) {
                fprintf(stderr, "encode_model: row %zu: value %zu is not finite "
                                "(after scaling)\n", r + 1, j + 1);
                return 1;
            }
        }
        if (elem == sizeof(double)) {
            const double *w = weights;
            st = csae_encode_f64(&model, w, w + h * n, row, 1, hidden, &ws);
        } else {
            const float *w = weights;
            st = csae_encode_f32(&model, w, w + h * n, row, 1, hidden, &ws);
        }
        if (st != CSAE_OK)
            return fail("encode", st);
        for (size_t k = 0; k < h; k++) {
            if (elem == sizeof(double))
                printf(k ? " %.17g" : "%.17g", ((double *)hidden)[k]);
            else
                printf(k ? " %.9g" : "%.9g", (double)((float *)hidden)[k]);
        }
        putchar('\n');
    }
    free(weights), free(range), free(x), free(row), free(hidden), free(ws.data);
    if (in != stdin)
        fclose(in);
    return 0;
}
