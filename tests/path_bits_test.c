/*
 * path_bits_test.c: prints a fingerprint of everything the engine computes
 * on one kernel path, so that two builds (x86-64 and aarch64 under QEMU,
 * GCC and Clang) or two paths can be compared bit for bit by
 * tests/test_aarch64.py.  The path is the program's argument (a
 * csae_kernel_path_name); the data are drawn from csae_rng_next, the same
 * on every platform.
 *
 * For both element types and both decoders, on shapes whose column tails
 * and thread splits fall mid-tile on every path and one deeper than a KC
 * panel: encode, decode, reconstruct, the objective and its gradients, an
 * SGD epoch with momentum (shuffled, batch 1 and batch 7), an Adam epoch
 * with the running sparsity estimate, an L-BFGS run of 12 iterations, at 1
 * and 3 threads; and the sigmoid over its whole range in every column.
 * Each result prints as "label: FNV-1a hash of its bytes" (NaN would hash
 * by payload; none occurs).  Exit status 2 if a call fails.
 *
 * Build: cc -std=c11 -fopenmp-simd -Isrc_c tests/path_bits_test.c src_c/[a-z]*.c -lm -lpthread
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csae.h"

/* The data are computed here too: round them the same under every
 * compiler (Clang would fuse 0.1 * j - 0.3 on aarch64; GCC in ISO C mode
 * does not). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static void print_hash(const char *label, const void *data, size_t bytes)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < bytes; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    printf("%s: %016llx\n", label, (unsigned long long)h);
}

static void need(csae_status st, const char *what)
{
    if (st != CSAE_OK) {
        printf("FAIL %s: %s\n", what, csae_status_message(st));
        exit(2);
    }
}

static void *alloc_ws(csae_workspace *ws, size_t bytes, size_t n_threads)
{
    ws->data = malloc(bytes ? bytes : 1);
    ws->size = bytes;
    ws->n_threads = n_threads;
    if (!ws->data)
        exit(2);
    return ws->data;
}

#define DEFINE_RUN(SFX, REAL)                                                  \
    static void run_##SFX(size_t M, size_t N, size_t H, int decoder, size_t threads) \
    {                                                                          \
        char tag[96], label[160];                                              \
        snprintf(tag, sizeof tag, "%s %zux%zux%zu %s t%zu", #REAL, M, N, H,    \
                 decoder ? "linear" : "sigmoid", threads);                     \
        csae_model model = {N, H, decoder ? CSAE_DECODER_LINEAR : CSAE_DECODER_SIGMOID, \
                            0.05, 3.0, 1e-3};                                  \
        const size_t np = 2 * H * N + H + N;                                   \
        REAL *theta = malloc(np * sizeof(REAL)), *keep = malloc(np * sizeof(REAL)); \
        REAL *grad = malloc(np * sizeof(REAL)), *vel = malloc(np * sizeof(REAL)); \
        REAL *am = malloc(np * sizeof(REAL)), *av = malloc(np * sizeof(REAL)); \
        REAL *X = malloc(M * N * sizeof(REAL)), *A = malloc(M * H * sizeof(REAL)); \
        REAL *Y = malloc(M * N * sizeof(REAL)), *q = malloc(H * sizeof(REAL)); \
        REAL *rho_hat = malloc(H * sizeof(REAL));                              \
        size_t order[1];                                                       \
        (void)order;                                                           \
        uint64_t state = 20261207 + M * 31 + N * 7 + H;                        \
        for (size_t i = 0; i < M * N; i++)                                     \
            X[i] = (REAL)((csae_rng_next(&state) >> 11) * 0x1.0p-53);          \
        csae_params_##SFX p = {theta, theta + H * N, theta + H * N + H,        \
                               theta + 2 * H * N + H};                         \
        csae_params_##SFX g = {grad, grad + H * N, grad + H * N + H,           \
                               grad + 2 * H * N + H};                          \
        csae_params_##SFX v = {vel, vel + H * N, vel + H * N + H, vel + 2 * H * N + H}; \
        csae_params_##SFX pm = {am, am + H * N, am + H * N + H, am + 2 * H * N + H}; \
        csae_params_##SFX pv = {av, av + H * N, av + H * N + H, av + 2 * H * N + H}; \
        need(csae_init_params_##SFX(&model, p, &state), "init");               \
        for (size_t j = 0; j < H; j++) p.b[j] = (REAL)(0.1 * (double)(j % 7) - 0.3); \
        for (size_t i = 0; i < N; i++) p.bd[i] = (REAL)(0.05 * (double)(i % 5));  \
        memcpy(keep, theta, np * sizeof(REAL));                                \
        csae_workspace ws;                                                     \
        csae_sgd sgd = {0.1, 0.5, 7, 1};                                       \
        size_t bytes = csae_train_workspace_size(&model, M, sizeof(REAL), threads); \
        const size_t e1 = csae_epoch_workspace_size(&model, &sgd, M, sizeof(REAL), threads); \
        sgd.batch_size = 1;                                                    \
        const size_t e2 = csae_epoch_workspace_size(&model, &sgd, M, sizeof(REAL), threads); \
        bytes = bytes > e1 ? bytes : e1;                                       \
        bytes = bytes > e2 ? bytes : e2;                                       \
        alloc_ws(&ws, bytes, threads);                                         \
        /* forward */                                                          \
        need(csae_encode_##SFX(&model, p.W, p.b, X, M, A, &ws), "encode");     \
        snprintf(label, sizeof label, "%s encode", tag);                       \
        print_hash(label, A, M * H * sizeof(REAL));                            \
        need(csae_decode_##SFX(&model, p.Wd, p.bd, A, M, Y, &ws), "decode");   \
        snprintf(label, sizeof label, "%s decode", tag);                       \
        print_hash(label, Y, M * N * sizeof(REAL));                            \
        need(csae_reconstruct_##SFX(&model, p, X, M, Y, &ws), "reconstruct");  \
        snprintf(label, sizeof label, "%s reconstruct", tag);                  \
        print_hash(label, Y, M * N * sizeof(REAL));                            \
        /* objective and gradients */                                          \
        double loss;                                                           \
        need(csae_objective_##SFX(&model, p, X, M, &loss, g, rho_hat, &ws), "objective"); \
        snprintf(label, sizeof label, "%s objective", tag);                    \
        print_hash(label, &loss, sizeof loss);                                 \
        snprintf(label, sizeof label, "%s gradients", tag);                    \
        print_hash(label, grad, np * sizeof(REAL));                            \
        snprintf(label, sizeof label, "%s rho_hat", tag);                      \
        print_hash(label, rho_hat, H * sizeof(REAL));                          \
        /* SGD epochs with momentum, batch 1 (the fused step) and 7 */         \
        for (size_t batch = 1; batch <= 7; batch += 6) {                       \
            memcpy(theta, keep, np * sizeof(REAL));                            \
            memset(vel, 0, np * sizeof(REAL));                                 \
            sgd.batch_size = batch;                                            \
            uint64_t rng = 99;                                                 \
            csae_epoch_result res;                                             \
            need(csae_sgd_epoch_##SFX(&model, &sgd, p, v, X, M, &rng, NULL, NULL, 0, &res, \
                                      &ws), "sgd epoch");                      \
            snprintf(label, sizeof label, "%s sgd batch %zu params", tag, batch); \
            print_hash(label, theta, np * sizeof(REAL));                       \
            snprintf(label, sizeof label, "%s sgd batch %zu loss", tag, batch); \
            print_hash(label, &res.loss, sizeof res.loss);                     \
        }                                                                      \
        /* an Adam epoch with the running sparsity estimate */                 \
        {                                                                      \
            memcpy(theta, keep, np * sizeof(REAL));                            \
            memset(am, 0, np * sizeof(REAL));                                  \
            memset(av, 0, np * sizeof(REAL));                                  \
            memset(q, 0, H * sizeof(REAL));                                    \
            csae_solver solver = {1, 0.9, 0.999, 1e-8, 0.1};                   \
            csae_train_state_##SFX st;                                         \
            memset(&st, 0, sizeof st);                                         \
            st.adam_m = pm;                                                    \
            st.adam_v = pv;                                                    \
            st.rho_running = q;                                                \
            sgd.batch_size = 7;                                                \
            sgd.learning_rate = 0.01;                                          \
            uint64_t rng = 5;                                                  \
            csae_epoch_result res;                                             \
            need(csae_train_epoch_##SFX(&model, &sgd, &solver, p, &st, X, M, &rng, NULL, \
                                        NULL, 0, &res, &ws), "adam epoch");    \
            snprintf(label, sizeof label, "%s adam params", tag);              \
            print_hash(label, theta, np * sizeof(REAL));                       \
            snprintf(label, sizeof label, "%s adam m", tag);                   \
            print_hash(label, am, np * sizeof(REAL));                          \
            snprintf(label, sizeof label, "%s adam v", tag);                   \
            print_hash(label, av, np * sizeof(REAL));                          \
            snprintf(label, sizeof label, "%s adam running", tag);             \
            print_hash(label, q, H * sizeof(REAL));                            \
            snprintf(label, sizeof label, "%s adam loss", tag);                \
            print_hash(label, &res.loss, sizeof res.loss);                     \
            sgd.learning_rate = 0.1;                                           \
        }                                                                      \
        /* L-BFGS from the initial point over the REAL objective (a float32    \
         * history for float32, as csae.solvers.lbfgs keeps it) */             \
        {                                                                      \
            memcpy(theta, keep, np * sizeof(REAL));                            \
            csae_lbfgs_options o = csae_lbfgs_default_options();               \
            o.max_iter = 12;                                                   \
            o.n_threads = threads;                                             \
            o.float32_storage = sizeof(REAL) == sizeof(float);                 \
            const size_t wl = csae_lbfgs_workspace_size(np, &o);               \
            double *work = malloc(wl * sizeof(double));                        \
            double *x = malloc(np * sizeof(double)), *gx = malloc(np * sizeof(double)); \
            for (size_t i = 0; i < np; i++) x[i] = (double)theta[i];           \
            double f = 0;                                                      \
            csae_lbfgs s;                                                      \
            need(csae_lbfgs_init(&s, np, &o, work, wl), "lbfgs init");         \
            csae_lbfgs_task task;                                              \
            for (;;) {                                                         \
                task = csae_lbfgs_step(&s, x, &f, gx);                         \
                if (task != CSAE_LBFGS_EVALUATE && task != CSAE_LBFGS_ITERATE) \
                    break;                                                     \
                if (task == CSAE_LBFGS_ITERATE)                                \
                    continue;                                                  \
                for (size_t i = 0; i < np; i++) theta[i] = (REAL)x[i];         \
                need(csae_objective_##SFX(&model, p, X, M, &f, g, NULL, &ws), "lbfgs objective"); \
                for (size_t i = 0; i < np; i++) gx[i] = (double)grad[i];       \
            }                                                                  \
            snprintf(label, sizeof label, "%s lbfgs x", tag);                  \
            print_hash(label, x, np * sizeof(double));                         \
            snprintf(label, sizeof label, "%s lbfgs f task %d iterations %zu evaluations %zu", \
                     tag, (int)task, s.iterations, s.evaluations);             \
            print_hash(label, &f, sizeof f);                                   \
            free(work);                                                        \
            free(x);                                                           \
            free(gx);                                                          \
        }                                                                      \
        free(ws.data);                                                         \
        free(theta); free(keep); free(grad); free(vel); free(am); free(av);    \
        free(X); free(A); free(Y); free(q); free(rho_hat);                     \
    }                                                                          \
                                                                               \
    /* sigmoid(x) through encode with W = I, b = 0: values from -1000 to 1000 \
     * (past both clamps of exp), infinities, -0 and tiny ones, across every \
     * column of a 37-wide row. */                                      \
    static void sigmoid_range_##SFX(void)                                      \
    {                                                                          \
        enum { H = 37, M = 420 };                                              \
        static REAL W[H * H], b[H], X[M * H], A[M * H];                        \
        const double special[] = {-0.0, 0.0, 1e-30, -1e-30, 88.0, -88.0, 709.0, -709.0, \
                                  -745.0, -746.0, -104.0, -87.5, INFINITY, -INFINITY}; \
        const size_t ns = sizeof special / sizeof special[0];                  \
        /* a fine grid over [-120, 120] (where exp's reduction and         \
         * polynomial matter), a coarse one to +-1000, then the specials */    \
        for (size_t i = 0; i < M * H; i++) {                                   \
            const size_t k = i;                                                \
            X[i] = (REAL)(k < M * H - ns - 401 ? -120.0 + 0.0157 * (double)k   \
                          : k < M * H - ns ? -1000.0 + 5.0 * (double)(k - (M * H - ns - 401)) \
                                           : special[k - (M * H - ns)]);      \
        }                                                                      \
        for (size_t i = 0; i < H; i++)                                         \
            for (size_t j = 0; j < H; j++) W[i * H + j] = (REAL)(i == j);      \
        csae_model model = {H, H, CSAE_DECODER_SIGMOID, 0.05, 3.0, 1e-3};      \
        csae_workspace ws;                                                     \
        alloc_ws(&ws, csae_forward_workspace_size(&model, M, sizeof(REAL), 1), 1); \
        need(csae_encode_##SFX(&model, W, b, X, M, A, &ws), "encode");         \
        print_hash(#REAL " sigmoid over its range", A, sizeof A);              \
        free(ws.data);                                                         \
    }

DEFINE_RUN(f64, double)
DEFINE_RUN(f32, float)

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <kernel path name>\n", argv[0]);
        return 1;
    }
    csae_kernel_path path = CSAE_PATH_AUTO;
    for (size_t i = 0; i < csae_kernel_path_count(); i++)
        if (strcmp(argv[1], csae_kernel_path_name(csae_kernel_path_at(i))) == 0)
            path = csae_kernel_path_at(i);
    if (path == CSAE_PATH_AUTO || csae_set_kernel_path(path) != CSAE_OK) {
        printf("no path %s here\n", argv[1]);
        return 3;
    }
    printf("path %s\n", csae_kernel_path_name(csae_get_kernel_path()));
    /* (m, n, h): tails mid-tile everywhere, a deep product (several KC
     * panels), one row (the GEMV products) */
    const size_t shapes[][3] = {{203, 97, 65}, {29, 600, 70}, {1, 37, 19}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int decoder = 0; decoder < 2; decoder++)
            for (size_t threads = 1; threads <= 3; threads += 2) {
                run_f64(shapes[s][0], shapes[s][1], shapes[s][2], decoder, threads);
                run_f32(shapes[s][0], shapes[s][1], shapes[s][2], decoder, threads);
            }
    sigmoid_range_f64();
    sigmoid_range_f32();
    return 0;
}
