/*
 * c_api_test.c: uses the engine from C alone (csae.h, no Python) to prove it
 * stands on its own.  For both element types and every kernel path it checks
 * gradients against central finite differences, trains a tiny model until
 * its objective falls, checks that results do not depend on the thread
 * count, and that bad arguments come back as status codes.  The L-BFGS
 * optimizer (path-independent) is checked once, on a problem of its own.
 *
 * Build (tests/test_c_api.py does this):
 *   cc -std=c11 -fopenmp-simd -Isrc_c tests/c_api_test.c src_c/[a-z]*.c -lm -lpthread
 * Prints one line per check and ends with "N passed, M failed".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csae.h"

static int passed, failed;

static void check(int ok, const char *what, const char *path, const char *type)
{
    printf("%s %s [%s, %s]\n", ok ? "ok  " : "FAIL", what, path, type);
    if (ok)
        passed++;
    else
        failed++;
}

/* A stop callback that asks to stop the second time it is asked. */
static int stop_at_second_call(void *context)
{
    int *calls = context;
    return ++*calls >= 2;
}

/* A workspace of `bytes` on the heap, for n_threads threads. */
static void *alloc_ws(csae_workspace *ws, size_t bytes, size_t n_threads)
{
    ws->data = malloc(bytes);
    ws->size = bytes;
    ws->n_threads = n_threads;
    return ws->data;
}

#define DEFINE_SUITE(SFX, REAL, TOL_FD, TOL_THREADS)                           \
    static void suite_##SFX(const char *path)                                  \
    {                                                                          \
        const char *type = #REAL;                                              \
        enum { M = 40, N = 9, H = 7 };                                         \
        csae_model model = {N, H, CSAE_DECODER_SIGMOID, 0.1, 3.0, 1e-3};       \
        REAL W[H * N], b[H], Wd[N * H], bd[N], X[M * N];                       \
        REAL gW[H * N], gb[H], gWd[N * H], gbd[N], hidden[M * H];              \
        uint64_t state = 20261128;                                             \
        for (size_t i = 0; i < M * N; i++)                                     \
            X[i] = (REAL)((csae_rng_next(&state) >> 11) * 0x1.0p-53);          \
        csae_params_##SFX p = {W, b, Wd, bd}, g = {gW, gb, gWd, gbd};          \
        csae_params_##SFX none = {NULL, NULL, NULL, NULL};                     \
        check(csae_init_params_##SFX(&model, p, &state) == CSAE_OK, "init", path, type); \
        for (size_t j = 0; j < H; j++) b[j] = (REAL)(0.1 * j - 0.3);           \
        for (size_t i = 0; i < N; i++) bd[i] = (REAL)(0.05 * i);               \
                                                                               \
        csae_workspace ws;                                                     \
        alloc_ws(&ws, csae_train_workspace_size(&model, M, sizeof(REAL), 1), 1); \
        for (int dec = 0; dec < 2; dec++) {                                    \
            model.decoder = dec ? CSAE_DECODER_LINEAR : CSAE_DECODER_SIGMOID;  \
            double loss, worst = 0;                                            \
            csae_status st = csae_objective_##SFX(&model, p, X, M, &loss, g, NULL, &ws); \
            REAL *theta[4] = {W, b, Wd, bd}, *grad[4] = {gW, gb, gWd, gbd};     \
            const size_t len[4] = {H * N, H, N * H, N};                        \
            for (int k = 0; k < 4; k++)                                        \
                for (size_t x = 0; x < len[k]; x++) {                          \
                    const REAL keep = theta[k][x];                             \
                    const REAL e = (REAL)(sizeof(REAL) == 8 ? 1e-6 : 1e-2);    \
                    double up, down;                                           \
                    theta[k][x] = keep + e;                                    \
                    csae_objective_##SFX(&model, p, X, M, &up, none, NULL, &ws); \
                    theta[k][x] = keep - e;                                    \
                    csae_objective_##SFX(&model, p, X, M, &down, none, NULL, &ws); \
                    theta[k][x] = keep;                                        \
                    const double fd = (up - down) / (2.0 * e);                 \
                    const double err = fabs(fd - grad[k][x]) / (fabs(fd) + fabs(grad[k][x]) + 1e-3); \
                    if (err > worst) worst = err;                              \
                }                                                              \
            printf("     gradient check worst relative error %.3g\n", worst);  \
            check(st == CSAE_OK && isfinite(loss) && worst < TOL_FD,           \
                  dec ? "gradients vs finite differences (linear)"             \
                      : "gradients vs finite differences (sigmoid)", path, type); \
        }                                                                      \
        free(ws.data);                                                         \
                                                                               \
        /* Train: ten epochs of shuffled minibatch SGD lower the objective,    \
         * with the same result on one and on two threads. */                  \
        model.decoder = CSAE_DECODER_SIGMOID;                                  \
        csae_sgd sgd = {0.5, 0.5, 8, 1};                                       \
        REAL vW[H * N] = {0}, vb[H] = {0}, vWd[N * H] = {0}, vbd[N] = {0};     \
        csae_params_##SFX v = {vW, vb, vWd, vbd};                              \
        REAL W2[H * N], b2[H], Wd2[N * H], bd2[N];                             \
        memcpy(W2, W, sizeof W); memcpy(b2, b, sizeof b);                      \
        memcpy(Wd2, Wd, sizeof Wd); memcpy(bd2, bd, sizeof bd);                \
        REAL vW2[H * N] = {0}, vb2[H] = {0}, vWd2[N * H] = {0}, vbd2[N] = {0}; \
        csae_params_##SFX p2 = {W2, b2, Wd2, bd2}, v2 = {vW2, vb2, vWd2, vbd2}; \
        csae_workspace ws1, ws2;                                               \
        alloc_ws(&ws1, csae_epoch_workspace_size(&model, &sgd, M, sizeof(REAL), 1), 1); \
        alloc_ws(&ws2, csae_epoch_workspace_size(&model, &sgd, M, sizeof(REAL), 2), 2); \
        uint64_t s1 = 7, s2 = 7;                                               \
        double first = 0, last = 0;                                            \
        int ok = 1;                                                            \
        for (int epoch = 0; epoch < 10; epoch++) {                             \
            csae_epoch_result r1, r2;                                          \
            ok &= csae_sgd_epoch_##SFX(&model, &sgd, p, v, X, M, &s1, NULL, NULL, 0, &r1, &ws1) == CSAE_OK; \
            ok &= csae_sgd_epoch_##SFX(&model, &sgd, p2, v2, X, M, &s2, NULL, NULL, 0, &r2, &ws2) == CSAE_OK; \
            ok &= r1.batches_done == 5 && r1.rows_done == M && r1.loss == r2.loss; \
            if (epoch == 0) first = r1.loss;                                   \
            last = r1.loss;                                                    \
        }                                                                      \
        printf("     epoch objective %.6f -> %.6f\n", first, last);             \
        check(ok && last < first, "ten epochs lower the objective", path, type); \
        check(memcmp(W, W2, sizeof W) == 0 && memcmp(Wd, Wd2, sizeof Wd) == 0 && \
              memcmp(b, b2, sizeof b) == 0 && memcmp(bd, bd2, sizeof bd) == 0 && s1 == s2, \
              "1 and 2 threads give bit-identical weights", path, type);       \
                                                                               \
        /* One sgd_step equals an unshuffled epoch whose one batch is all of X. */ \
        {                                                                      \
            csae_sgd whole = {0.3, 0.0, M, 0};                                 \
            csae_workspace wst, wse;                                           \
            alloc_ws(&wst, csae_train_workspace_size(&model, M, sizeof(REAL), 1), 1); \
            alloc_ws(&wse, csae_epoch_workspace_size(&model, &whole, M, sizeof(REAL), 1), 1); \
            double step_loss;                                                  \
            csae_epoch_result er;                                              \
            int same = csae_sgd_step_##SFX(&model, &whole, p, none, X, M, &step_loss, &wst) == CSAE_OK; \
            same &= csae_sgd_epoch_##SFX(&model, &whole, p2, none, X, M, NULL, NULL, NULL, 0, &er, &wse) == CSAE_OK; \
            same &= er.loss == step_loss && memcmp(W, W2, sizeof W) == 0 && memcmp(bd, bd2, sizeof bd) == 0; \
            check(same, "sgd_step equals a one-batch epoch", path, type);      \
            free(wst.data);                                                    \
            free(wse.data);                                                    \
        }                                                                      \
                                                                               \
        /* A stop request between minibatches leaves exactly the parameters \
         * after the last whole minibatch: here two, as an epoch over the     \
         * first two minibatches' rows gives. */                              \
        {                                                                      \
            csae_sgd plain = {0.3, 0.0, 8, 0};                                 \
            csae_workspace wse;                                                \
            alloc_ws(&wse, csae_epoch_workspace_size(&model, &plain, M, sizeof(REAL), 1), 1); \
            csae_epoch_result r_stop, r_two;                                   \
            int calls = 0;                                                     \
            memcpy(W2, W, sizeof W); memcpy(b2, b, sizeof b);                  \
            memcpy(Wd2, Wd, sizeof Wd); memcpy(bd2, bd, sizeof bd);            \
            csae_status st_stop = csae_sgd_epoch_##SFX(&model, &plain, p, none, X, M, NULL, \
                                                       stop_at_second_call, &calls, 1, &r_stop, &wse); \
            csae_status st_two = csae_sgd_epoch_##SFX(&model, &plain, p2, none, X, 16, NULL, \
                                                      NULL, NULL, 0, &r_two, &wse); \
            check(st_stop == CSAE_ERR_STOPPED && st_two == CSAE_OK &&          \
                  r_stop.batches_done == 2 && r_stop.rows_done == 16 &&        \
                  r_stop.loss == r_two.loss && memcmp(W, W2, sizeof W) == 0 &&  \
                  memcmp(bd, bd2, sizeof bd) == 0,                             \
                  "stopping keeps the last whole minibatch", path, type);      \
            free(wse.data);                                                    \
        }                                                                      \
                                                                               \
        /* Batch 1 (the fused step of sample_template.h): each step equals  \
         * the update built here from the gradients that csae_objective (the \
         * GEMM code path) gives on that row, with and without momentum.     \
         * Then a step whose last block written (W) overflows while the rest \
         * is finite: it must change nothing.  On p2, v2 (scratch by now). */ \
        {                                                                      \
            enum { P = 2 * N * H + N + H };                                    \
            memcpy(W2, W, sizeof W); memcpy(b2, b, sizeof b);                  \
            memcpy(Wd2, Wd, sizeof Wd); memcpy(bd2, bd, sizeof bd);            \
            memcpy(vW2, vW, sizeof vW); memcpy(vb2, vb, sizeof vb);            \
            memcpy(vWd2, vWd, sizeof vWd); memcpy(vbd2, vbd, sizeof vbd);      \
            csae_workspace wso, wss;                                           \
            alloc_ws(&wso, csae_train_workspace_size(&model, 1, sizeof(REAL), 1), 1); \
            alloc_ws(&wss, csae_train_workspace_size(&model, 1, sizeof(REAL), 1), 1); \
            REAL *th[4] = {W2, b2, Wd2, bd2}, *ve[4] = {vW2, vb2, vWd2, vbd2};  \
            REAL *gr[4] = {gW, gb, gWd, gbd};                                  \
            const size_t len[4] = {H * N, H, N * H, N};                        \
            REAL want[P], want_v[P];                                           \
            double worst1 = 0;                                                 \
            int ok1 = 1;                                                       \
            for (int mom = 0; mom < 2; mom++)                                  \
                for (size_t row = 0; row < 5; row++) {                         \
                    csae_sgd one = {0.2, mom ? 0.5 : 0.0, 1, 0};               \
                    const REAL lr = (REAL)one.learning_rate, mu = (REAL)one.momentum; \
                    double loss_o, loss_s;                                     \
                    ok1 &= csae_objective_##SFX(&model, p2, X + row * N, 1, &loss_o, g, NULL, \
                                                &wso) == CSAE_OK;              \
                    double scale = 0;                                          \
                    for (int k = 0, at = 0; k < 4; k++)                        \
                        for (size_t x = 0; x < len[k]; x++, at++) {            \
                            const REAL step = mom ? mu * ve[k][x] - lr * gr[k][x] : -(lr * gr[k][x]); \
                            want_v[at] = step;                                 \
                            want[at] = th[k][x] + step;                        \
                            if (fabs((double)want[at]) > scale) scale = fabs((double)want[at]); \
                        }                                                      \
                    ok1 &= csae_sgd_step_##SFX(&model, &one, p2, v2, X + row * N, 1, &loss_s, \
                                               &wss) == CSAE_OK;               \
                    double err = fabs(loss_s - loss_o) / fabs(loss_o);         \
                    for (int k = 0, at = 0; k < 4; k++)                        \
                        for (size_t x = 0; x < len[k]; x++, at++) {            \
                            double e = fabs((double)th[k][x] - want[at]) / scale; \
                            if (mom) {                                         \
                                const double ev = fabs((double)ve[k][x] - want_v[at]) / scale; \
                                if (ev > e) e = ev;                            \
                            }                                                  \
                            if (e > err) err = e;                              \
                        }                                                      \
                    if (err > worst1) worst1 = err;                            \
                }                                                              \
            printf("     batch-1 steps vs objective gradients: worst relative error %.3g\n", worst1); \
            check(ok1 && worst1 < (sizeof(REAL) == 8 ? 1e-10 : 1e-4),          \
                  "batch-1 steps match the update from the objective's gradients", path, type); \
            /* W[:, 0] huge meets x[0] = 0: forward pass and objective stay   \
             * finite, only the decay part of W's update overflows. */         \
            REAL xrow[N], before[P], vbefore[P];                               \
            memcpy(xrow, X, sizeof xrow);                                      \
            xrow[0] = 0;                                                       \
            for (size_t j = 0; j < H; j++) W2[j * N] = (REAL)(sizeof(REAL) == 8 ? 1e150 : 1e15); \
            for (int k = 0, at = 0; k < 4; k++)                                \
                for (size_t x = 0; x < len[k]; x++, at++) {                    \
                    before[at] = th[k][x];                                     \
                    vbefore[at] = ve[k][x];                                    \
                }                                                              \
            csae_sgd wild = {sizeof(REAL) == 8 ? 1e200 : 1e30, 0.5, 1, 0};     \
            double loss_w;                                                     \
            const csae_status st_w = csae_sgd_step_##SFX(&model, &wild, p2, v2, xrow, 1, &loss_w, &wss); \
            int same = 1;                                                      \
            for (int k = 0, at = 0; k < 4; k++)                                \
                for (size_t x = 0; x < len[k]; x++, at++)                      \
                    same &= memcmp(&th[k][x], &before[at], sizeof(REAL)) == 0 && \
                            memcmp(&ve[k][x], &vbefore[at], sizeof(REAL)) == 0; \
            check(st_w == CSAE_ERR_NONFINITE && same,                          \
                  "a batch-1 step overflowing in W changes nothing", path, type); \
            /* An epoch of one-row batches that fails at sample 5 (a NaN)     \
             * replays from its checkpoint: the bits of a clean epoch over    \
             * samples 0-4. */                                                 \
            {                                                                  \
                csae_sgd ones = {0.2, 0.5, 1, 0};                              \
                REAL Xn[M * N], keep[P], keep_v[P];                            \
                memcpy(Xn, X, sizeof Xn);                                      \
                Xn[5 * N + 1] = (REAL)NAN;                                     \
                memcpy(W2, W, sizeof W); memcpy(b2, b, sizeof b);              \
                memcpy(Wd2, Wd, sizeof Wd); memcpy(bd2, bd, sizeof bd);        \
                memcpy(vW2, vW, sizeof vW); memcpy(vb2, vb, sizeof vb);        \
                memcpy(vWd2, vWd, sizeof vWd); memcpy(vbd2, vbd, sizeof vbd);  \
                csae_workspace wsc, wsf;                                       \
                alloc_ws(&wsc, csae_epoch_workspace_size(&model, &ones, 5, sizeof(REAL), 1), 1); \
                alloc_ws(&wsf, csae_epoch_workspace_size(&model, &ones, M, sizeof(REAL), 1), 1); \
                csae_epoch_result rc, rf;                                      \
                int okc = csae_sgd_epoch_##SFX(&model, &ones, p2, v2, Xn, 5, NULL, NULL, NULL, 0, \
                                               &rc, &wsc) == CSAE_OK;          \
                for (int k = 0, at = 0; k < 4; k++)                            \
                    for (size_t x = 0; x < len[k]; x++, at++) {                \
                        keep[at] = th[k][x];                                   \
                        keep_v[at] = ve[k][x];                                 \
                    }                                                          \
                memcpy(W2, W, sizeof W); memcpy(b2, b, sizeof b);              \
                memcpy(Wd2, Wd, sizeof Wd); memcpy(bd2, bd, sizeof bd);        \
                memcpy(vW2, vW, sizeof vW); memcpy(vb2, vb, sizeof vb);        \
                memcpy(vWd2, vWd, sizeof vWd); memcpy(vbd2, vbd, sizeof vbd);  \
                okc &= csae_sgd_epoch_##SFX(&model, &ones, p2, v2, Xn, M, NULL, NULL, NULL, 0, \
                                            &rf, &wsf) == CSAE_ERR_NONFINITE && rf.batches_done == 5; \
                for (int k = 0, at = 0; k < 4; k++)                            \
                    for (size_t x = 0; x < len[k]; x++, at++)                  \
                        okc &= memcmp(&th[k][x], &keep[at], sizeof(REAL)) == 0 && \
                               memcmp(&ve[k][x], &keep_v[at], sizeof(REAL)) == 0; \
                check(okc, "a failed batch-1 epoch leaves the clean epoch's bits", path, type); \
                free(wsc.data);                                                \
                free(wsf.data);                                                \
            }                                                                  \
            free(wso.data);                                                    \
            free(wss.data);                                                    \
        }                                                                      \
                                                                               \
        /* Bad arguments come back as status codes and change nothing. */     \
        REAL Wkeep[H * N];                                                     \
        memcpy(Wkeep, W, sizeof W);                                            \
        csae_epoch_result r;                                                   \
        csae_workspace tiny = {ws1.data, 16, 1};                               \
        check(csae_sgd_epoch_##SFX(&model, &sgd, p, v, X, M, &s1, NULL, NULL, 0, &r, &tiny) \
                  == CSAE_ERR_WORKSPACE, "small workspace is refused", path, type); \
        check(csae_sgd_epoch_##SFX(&model, &sgd, p, v, X, M, &s1, NULL, NULL, 0, &r, NULL) \
                  == CSAE_ERR_WORKSPACE &&                                     \
                  csae_encode_##SFX(&model, W, b, X, M, hidden, NULL) == CSAE_ERR_WORKSPACE, \
              "a missing workspace is refused", path, type);                   \
        csae_model bad = model;                                                \
        bad.sparsity_target = 1.5;                                             \
        check(csae_sgd_epoch_##SFX(&bad, &sgd, p, v, X, M, &s1, NULL, NULL, 0, &r, &ws1) \
                  == CSAE_ERR_ARGUMENT, "rho outside (0, 1) is refused", path, type); \
        csae_sgd huge = {sizeof(REAL) == 8 ? 1e300 : 1e38, 0.0, 8, 0};                                     \
        csae_status st = csae_sgd_epoch_##SFX(&model, &huge, p, v, X, M, &s1, NULL, NULL, 0, &r, &ws1); \
        int finite = 1;                                                        \
        for (size_t i = 0; i < H * N; i++) finite &= isfinite(W[i]);           \
        check(st == CSAE_ERR_NONFINITE && finite,                              \
              "divergence stops with finite weights", path, type);             \
        (void)Wkeep;                                                           \
        free(ws1.data);                                                        \
        free(ws2.data);                                                        \
    }

DEFINE_SUITE(f64, double, 1e-6, 0)
DEFINE_SUITE(f32, float, 2e-2, 0)

/* A model big enough that the engine really splits its products and its
 * update over threads: one epoch on two threads must give bit-identical
 * weights to one thread. */
#define DEFINE_THREAD_CHECK(SFX, REAL)                                         \
    static void threads_##SFX(const char *path)                                \
    {                                                                          \
        enum { M = 128, N = 256, H = 256 };                                    \
        csae_model model = {N, H, CSAE_DECODER_SIGMOID, 0.05, 3.0, 1e-4};      \
        csae_sgd sgd = {0.1, 0.5, 64, 1};                                      \
        REAL *mem = calloc(2 * (4 * N * H + 2 * N + 2 * H) + M * N, sizeof(REAL)); \
        REAL *X = mem, *q = mem + M * N;                                       \
        csae_params_##SFX p[2], v[2];                                          \
        uint64_t state = 99, rng[2] = {5, 5};                                  \
        for (size_t i = 0; i < M * N; i++)                                     \
            X[i] = (REAL)((csae_rng_next(&state) >> 11) * 0x1.0p-53);          \
        for (int t = 0; t < 2; t++) {                                          \
            p[t] = (csae_params_##SFX){q, q + H * N, q + H * N + H, q + 2 * H * N + H}; \
            q += 2 * N * H + N + H;                                            \
            v[t] = (csae_params_##SFX){q, q + H * N, q + H * N + H, q + 2 * H * N + H}; \
            q += 2 * N * H + N + H;                                            \
            uint64_t s = 1;                                                    \
            csae_init_params_##SFX(&model, p[t], &s);                          \
        }                                                                      \
        int ok = 1;                                                            \
        for (int t = 0; t < 2; t++) {                                          \
            csae_workspace ws;                                                 \
            alloc_ws(&ws, csae_epoch_workspace_size(&model, &sgd, M, sizeof(REAL), t + 1), t + 1); \
            csae_epoch_result r;                                               \
            ok &= csae_sgd_epoch_##SFX(&model, &sgd, p[t], v[t], X, M, &rng[t], NULL, NULL, 0, \
                                       &r, &ws) == CSAE_OK;                    \
            free(ws.data);                                                     \
        }                                                                      \
        ok &= memcmp(p[0].W, p[1].W, (2 * N * H + N + H) * sizeof(REAL)) == 0; \
        ok &= memcmp(v[0].W, v[1].W, (2 * N * H + N + H) * sizeof(REAL)) == 0; \
        check(ok, "a threaded epoch is bit-identical to one thread", path, #REAL); \
        free(mem);                                                             \
    }

DEFINE_THREAD_CHECK(f64, double)
DEFINE_THREAD_CHECK(f32, float)

/* A training workspace sized for batches of up to R rows serves a one-row
 * step too, although that step (the fused one) keeps backups that a wide
 * model's two-row layout has no room for; and an epoch whose last batch
 * has one row runs it inside the epoch's own layout. */
#define DEFINE_ONE_ROW_CHECK(SFX, REAL)                                        \
    static void one_row_##SFX(const char *path)                                \
    {                                                                          \
        enum { N = 256, H = 256, R = 2, P = 2 * N * H + N + H, M = 9 };        \
        csae_model model = {N, H, CSAE_DECODER_SIGMOID, 0.05, 3.0, 1e-4};      \
        REAL *mem = calloc(P + M * N, sizeof(REAL));                           \
        REAL *X = mem + P;                                                     \
        csae_params_##SFX p = {mem, mem + H * N, mem + H * N + H, mem + 2 * H * N + H}; \
        csae_params_##SFX none = {NULL, NULL, NULL, NULL};                     \
        uint64_t state = 3;                                                    \
        for (size_t i = 0; i < M * N; i++)                                     \
            X[i] = (REAL)((csae_rng_next(&state) >> 11) * 0x1.0p-53);          \
        csae_init_params_##SFX(&model, p, &state);                             \
        csae_sgd sgd = {0.1, 0.0, 1, 0}, eight = {0.1, 0.0, 8, 0};             \
        csae_workspace ws;                                                     \
        alloc_ws(&ws, csae_train_workspace_size(&model, R, sizeof(REAL), 1), 1); \
        double loss;                                                           \
        int ok = csae_sgd_step_##SFX(&model, &sgd, p, none, X, 1, &loss, &ws) == CSAE_OK; \
        ok &= csae_sgd_step_##SFX(&model, &sgd, p, none, X, R, &loss, &ws) == CSAE_OK; \
        free(ws.data);                                                         \
        csae_epoch_result r;                                                   \
        alloc_ws(&ws, csae_epoch_workspace_size(&model, &eight, M, sizeof(REAL), 1), 1); \
        ok &= csae_sgd_epoch_##SFX(&model, &eight, p, none, X, M, NULL, NULL, NULL, 0, &r, \
                                   &ws) == CSAE_OK && r.batches_done == 2 && isfinite(r.loss); \
        free(ws.data);                                                         \
        check(ok, "one-row batches fit workspaces sized for more rows", path, #REAL); \
        free(mem);                                                             \
    }

DEFINE_ONE_ROW_CHECK(f64, double)
DEFINE_ONE_ROW_CHECK(f32, float)

/* Adam, the running sparsity estimate and the block-wise objective
 * (csae_train_step/epoch, csae_activation_sums, csae_objective_part). */
#define DEFINE_SOLVER_CHECK(SFX, REAL, TOL)                                    \
    static void solvers_##SFX(const char *path)                                \
    {                                                                          \
        const char *type = #REAL;                                              \
        enum { M = 40, N = 9, H = 7, P = 2 * N * H + N + H };                  \
        csae_model model = {N, H, CSAE_DECODER_SIGMOID, 0.1, 3.0, 1e-3};       \
        /* params, a copy, gradients, two sets of moments, X */                \
        REAL *mem = calloc(7 * P + M * N, sizeof(REAL));                       \
        REAL *base = mem, *copy = mem + P, *grad = mem + 2 * P;                \
        REAL *m1 = mem + 3 * P, *v1 = mem + 4 * P, *m2 = mem + 5 * P, *v2 = mem + 6 * P; \
        REAL *X = mem + 7 * P;                                                 \
        REAL q[H] = {0}, q2[H] = {0}, rho_hat[H];                              \
        uint64_t state = 11;                                                   \
        for (size_t i = 0; i < M * N; i++)                                     \
            X[i] = (REAL)((csae_rng_next(&state) >> 11) * 0x1.0p-53);          \
        csae_params_##SFX p = {base, base + H * N, base + H * N + H, base + 2 * H * N + H}; \
        csae_params_##SFX c = {copy, copy + H * N, copy + H * N + H, copy + 2 * H * N + H}; \
        csae_params_##SFX g = {grad, grad + H * N, grad + H * N + H, grad + 2 * H * N + H}; \
        csae_params_##SFX none = {NULL, NULL, NULL, NULL};                     \
        csae_init_params_##SFX(&model, p, &state);                             \
        memcpy(copy, base, P * sizeof(REAL));                                  \
        csae_workspace ws;                                                     \
        alloc_ws(&ws, csae_train_workspace_size(&model, M, sizeof(REAL), 1), 1); \
                                                                               \
        /* The first Adam step from zero moments moves each parameter by     \
         * lr g / (|g| + epsilon / sqrt(1 - beta_2)), g the full gradient. */  \
        double loss, loss0;                                                    \
        csae_objective_##SFX(&model, p, X, M, &loss0, g, rho_hat, &ws);         \
        csae_sgd sgd = {0.01, 0.0, M, 0};                                      \
        csae_solver adam = {1, 0.9, 0.999, 1e-3, 0.0};                         \
        csae_train_state_##SFX st;                                             \
        memset(&st, 0, sizeof st);                                             \
        st.adam_m = (csae_params_##SFX){m1, m1 + H * N, m1 + H * N + H, m1 + 2 * H * N + H}; \
        st.adam_v = (csae_params_##SFX){v1, v1 + H * N, v1 + H * N + H, v1 + 2 * H * N + H}; \
        int ok = csae_train_step_##SFX(&model, &sgd, &adam, p, &st, X, M, &loss, &ws) == CSAE_OK; \
        double worst = 0;                                                      \
        for (size_t x = 0; x < P; x++) {                                       \
            const double gx = grad[x];                                         \
            const double want = copy[x] - 0.01 * gx / (fabs(gx) + 1e-3 / sqrt(1 - 0.999)); \
            const double err = fabs(base[x] - want) / 0.01;                    \
            if (err > worst) worst = err;                                      \
        }                                                                      \
        printf("     first Adam step worst error %.3g (of lr)\n", worst);      \
        check(ok && loss == loss0 && st.adam_t == 1 && worst < TOL,            \
              "first Adam step by hand", path, type);                          \
                                                                               \
        /* A step on NaN data changes nothing, counters included. */           \
        memcpy(copy, base, P * sizeof(REAL));                                  \
        memcpy(m2, m1, 2 * P * sizeof(REAL)); /* m1 and v1 are adjacent */     \
        adam.sparsity_smoothing = 0.5;                                         \
        st.rho_running = q;                                                    \
        const REAL keep = X[3];                                                \
        X[3] = (REAL)NAN;                                                      \
        ok = csae_train_step_##SFX(&model, &sgd, &adam, p, &st, X, M, &loss, &ws) == \
             CSAE_ERR_NONFINITE;                                               \
        X[3] = keep;                                                           \
        ok &= memcmp(copy, base, P * sizeof(REAL)) == 0 &&                     \
              memcmp(m2, m1, 2 * P * sizeof(REAL)) == 0 && st.adam_t == 1 &&   \
              st.running_batches == 0 && q[0] == 0;                            \
        check(ok, "a non-finite Adam step changes nothing", path, type);       \
                                                                               \
        /* The running estimate starts as the first batch's rho_hat. */        \
        csae_objective_##SFX(&model, p, X, M, &loss0, none, rho_hat, &ws);      \
        ok = csae_train_step_##SFX(&model, &sgd, &adam, p, &st, X, M, &loss, &ws) == CSAE_OK; \
        ok &= memcmp(q, rho_hat, sizeof q) == 0 && st.running_batches == 1 && st.adam_t == 2; \
        check(ok, "running estimate starts at rho_hat", path, type);           \
                                                                               \
        /* Bad solver settings and missing state are argument errors. */      \
        csae_solver bad = adam;                                                \
        bad.beta_1 = 1.0;                                                      \
        ok = csae_train_step_##SFX(&model, &sgd, &bad, p, &st, X, M, &loss, &ws) == CSAE_ERR_ARGUMENT; \
        bad = adam; bad.sparsity_smoothing = 1.5;                              \
        ok &= csae_train_step_##SFX(&model, &sgd, &bad, p, &st, X, M, &loss, &ws) == CSAE_ERR_ARGUMENT; \
        bad = adam; bad.epsilon = 0.0;                                         \
        ok &= csae_train_step_##SFX(&model, &sgd, &bad, p, &st, X, M, &loss, &ws) == CSAE_ERR_ARGUMENT; \
        csae_train_state_##SFX empty;                                          \
        memset(&empty, 0, sizeof empty);                                       \
        ok &= csae_train_step_##SFX(&model, &sgd, &adam, p, &empty, X, M, &loss, &ws) == CSAE_ERR_ARGUMENT; \
        ok &= csae_train_step_##SFX(&model, &sgd, &adam, p, NULL, X, M, &loss, &ws) == CSAE_ERR_ARGUMENT; \
        ok &= st.adam_t == 2 && st.running_batches == 1;                       \
        check(ok, "bad solver arguments are rejected", path, type);            \
        free(ws.data);                                                         \
                                                                               \
        /* Epochs of Adam with the running estimate lower the objective, the   \
         * same on one and two threads. */                                     \
        memcpy(copy, base, P * sizeof(REAL));                                  \
        memcpy(m2, m1, 2 * P * sizeof(REAL));                                  \
        memcpy(q2, q, sizeof q);                                               \
        csae_train_state_##SFX st2 = st;                                       \
        st2.adam_m = (csae_params_##SFX){m2, m2 + H * N, m2 + H * N + H, m2 + 2 * H * N + H}; \
        st2.adam_v = (csae_params_##SFX){v2, v2 + H * N, v2 + H * N + H, v2 + 2 * H * N + H}; \
        st2.rho_running = q2;                                                  \
        csae_sgd epoch_sgd = {0.01, 0.0, 8, 1};                                \
        csae_workspace w1, w2;                                                 \
        alloc_ws(&w1, csae_epoch_workspace_size(&model, &epoch_sgd, M, sizeof(REAL), 1), 1); \
        alloc_ws(&w2, csae_epoch_workspace_size(&model, &epoch_sgd, M, sizeof(REAL), 2), 2); \
        uint64_t r1 = 5, r2 = 5;                                               \
        double first = 0, last = 0;                                            \
        ok = 1;                                                                \
        for (int epoch = 0; epoch < 10; epoch++) {                             \
            csae_epoch_result e1, e2;                                          \
            ok &= csae_train_epoch_##SFX(&model, &epoch_sgd, &adam, p, &st, X, M, &r1, NULL, \
                                         NULL, 0, &e1, &w1) == CSAE_OK;        \
            ok &= csae_train_epoch_##SFX(&model, &epoch_sgd, &adam, c, &st2, X, M, &r2, NULL, \
                                         NULL, 0, &e2, &w2) == CSAE_OK;        \
            ok &= e1.batches_done == 5 && e1.loss == e2.loss;                  \
            if (epoch == 0) first = e1.loss;                                   \
            last = e1.loss;                                                    \
        }                                                                      \
        printf("     Adam epoch objective %.6f -> %.6f\n", first, last);        \
        ok &= st.adam_t == 52 && st.running_batches == 51;                     \
        ok &= memcmp(base, copy, P * sizeof(REAL)) == 0 && memcmp(q, q2, sizeof q) == 0 && \
              memcmp(m1, m2, 2 * P * sizeof(REAL)) == 0;                       \
        check(ok && last < first, "Adam epochs lower the objective, same on 2 threads", \
              path, type);                                                     \
        free(w1.data);                                                         \
        free(w2.data);                                                         \
                                                                               \
        /* Block-wise: blocks of 0, 13, 1 and 26 rows add up to the whole. */  \
        const size_t cut[5] = {0, 0, 13, 14, M};                               \
        double sums[H] = {0}, part_sums[H], rho_d[H], total = 0;               \
        REAL *acc = m2; /* the summed part gradients */                        \
        memset(acc, 0, P * sizeof(REAL));                                      \
        alloc_ws(&ws, csae_train_workspace_size(&model, M, sizeof(REAL), 2), 2); \
        ok = 1;                                                                \
        for (int k = 0; k < 4; k++) {                                          \
            ok &= csae_activation_sums_##SFX(&model, p.W, p.b, X + cut[k] * N,  \
                                             cut[k + 1] - cut[k], part_sums, &ws) == CSAE_OK; \
            for (size_t j = 0; j < H; j++) sums[j] += part_sums[j];            \
        }                                                                      \
        for (size_t j = 0; j < H; j++) rho_d[j] = sums[j] / M;                 \
        for (int k = 0; k < 4; k++) {                                          \
            double part;                                                       \
            ok &= csae_objective_part_##SFX(&model, p, X + cut[k] * N, cut[k + 1] - cut[k], \
                                            rho_d, M, &part, g, &ws) == CSAE_OK; \
            total += part;                                                     \
            for (size_t x = 0; x < P; x++) acc[x] += grad[x];                  \
        }                                                                      \
        double sq = 0, kl = 0;                                                 \
        for (size_t x = 0; x < H * N; x++)                                     \
            sq += (double)p.W[x] * p.W[x] + (double)p.Wd[x] * p.Wd[x];         \
        for (size_t j = 0; j < H; j++) {                                       \
            const double r = 0.1, qj = (REAL)rho_d[j];                         \
            kl += r * log(r / qj) + (1 - r) * log((1 - r) / (1 - qj));         \
        }                                                                      \
        total += 1e-3 * sq + 3.0 * kl;                                         \
        for (size_t x = 0; x < H * N; x++) {                                   \
            acc[x] += (REAL)2e-3 * p.W[x];                                     \
            acc[H * N + H + x] += (REAL)2e-3 * p.Wd[x];                        \
        }                                                                      \
        ok &= csae_objective_##SFX(&model, p, X, M, &loss, g, rho_hat, &ws) == CSAE_OK; \
        worst = fabs(total - loss) / fabs(loss);                               \
        double gscale = 0;                                                     \
        for (size_t x = 0; x < P; x++) gscale = fmax(gscale, fabs(grad[x]));   \
        for (size_t x = 0; x < P; x++) worst = fmax(worst, fabs(acc[x] - grad[x]) / gscale); \
        for (size_t j = 0; j < H; j++) worst = fmax(worst, fabs(rho_d[j] - rho_hat[j])); \
        printf("     block-wise vs whole worst relative error %.3g\n", worst); \
        check(ok && worst < TOL, "block-wise objective adds up to the whole", path, type); \
        double part;                                                           \
        ok = csae_objective_part_##SFX(&model, p, X, M, rho_d, M - 1, &part, g, &ws) == \
             CSAE_ERR_ARGUMENT;                                                \
        ok &= csae_objective_part_##SFX(&model, p, X, M, NULL, M, &part, g, &ws) == \
              CSAE_ERR_ARGUMENT;                                               \
        ok &= csae_activation_sums_##SFX(&model, p.W, p.b, X, M, NULL, &ws) == CSAE_ERR_ARGUMENT; \
        check(ok, "bad block-wise arguments are rejected", path, type);        \
        free(ws.data);                                                         \
        free(mem);                                                             \
    }

DEFINE_SOLVER_CHECK(f64, double, 1e-12)
DEFINE_SOLVER_CHECK(f32, float, 1e-4)

/* A deep network (two sigmoid layers under a softmax) big enough that its
 * products split over threads: objective and gradient on three threads
 * bit-identical to one, a few gradient entries of every layer against
 * central differences, and a label out of range refused. */
#define DEFINE_DEEP_CHECK(SFX, REAL, TOL_FD)                                   \
    static void deep_##SFX(const char *path)                                   \
    {                                                                          \
        enum { M = 300, K = 5 };                                               \
        const size_t sizes[4] = {70, 90, 40, K};                               \
        const csae_deep_net net = {2, sizes};                                  \
        const size_t np = csae_deep_n_params(&net);                            \
        REAL *theta = malloc(np * sizeof(REAL)), *X = malloc(M * 70 * sizeof(REAL)); \
        REAL *g1 = malloc(np * sizeof(REAL)), *g3 = malloc(np * sizeof(REAL));  \
        int64_t y[M];                                                          \
        uint64_t state = 7;                                                    \
        for (size_t i = 0; i < np; i++)                                        \
            theta[i] = (REAL)(((csae_rng_next(&state) >> 11) * 0x1.0p-53 - 0.5) * 0.4); \
        for (size_t i = 0; i < M * 70; i++)                                    \
            X[i] = (REAL)((csae_rng_next(&state) >> 11) * 0x1.0p-53);          \
        for (size_t i = 0; i < M; i++)                                         \
            y[i] = (int64_t)(csae_rng_next(&state) % K);                       \
        csae_workspace ws1, ws3;                                               \
        alloc_ws(&ws1, csae_deep_objective_workspace_size(&net, M, sizeof(REAL), 1), 1); \
        alloc_ws(&ws3, csae_deep_objective_workspace_size(&net, M, sizeof(REAL), 3), 3); \
        double f1 = 0, f3 = 0;                                                 \
        int ok = np == 90 * 70 + 90 + 40 * 90 + 40 + K * 40 + K;               \
        ok &= csae_deep_objective_##SFX(&net, theta, X, y, M, 1e-3, &f1, g1, &ws1) == CSAE_OK; \
        ok &= csae_deep_objective_##SFX(&net, theta, X, y, M, 1e-3, &f3, g3, &ws3) == CSAE_OK; \
        ok &= f1 == f3 && memcmp(g1, g3, np * sizeof(REAL)) == 0;              \
        check(ok, "deep objective and gradient bit-identical on 1 and 3 threads", path, #REAL); \
        /* One weight and one bias entry of each layer. */                     \
        const size_t probe[6] = {5, 6300 + 7, 6390 + 100, 6390 + 3600 + 3,     \
                                 6390 + 3640 + 17, 6390 + 3640 + 200 + 2};     \
        double worst = 0;                                                      \
        for (int q = 0; q < 6; q++) {                                          \
            const size_t i = probe[q];                                         \
            const REAL keep = theta[i], eps = (REAL)(sizeof(REAL) == 8 ? 1e-5 : 1e-2); \
            double up, down;                                                   \
            theta[i] = keep + eps;                                             \
            csae_deep_objective_##SFX(&net, theta, X, y, M, 1e-3, &up, NULL, &ws1); \
            theta[i] = keep - eps;                                             \
            csae_deep_objective_##SFX(&net, theta, X, y, M, 1e-3, &down, NULL, &ws1); \
            theta[i] = keep;                                                   \
            const double fd = (up - down) / (2 * (double)eps);                 \
            const double err = fabs(fd - g1[i]) / (fabs(fd) + 1e-3);           \
            worst = err > worst ? err : worst;                                 \
        }                                                                      \
        check(worst < TOL_FD, "deep gradient matches central differences", path, #REAL); \
        y[M - 1] = K;                                                          \
        check(csae_deep_objective_##SFX(&net, theta, X, y, M, 0, &f1, g1, &ws1) == CSAE_ERR_LABEL, \
              "deep objective refuses a label >= k", path, #REAL);             \
        free(ws1.data);                                                        \
        free(ws3.data);                                                        \
        free(theta);                                                           \
        free(X);                                                               \
        free(g1);                                                              \
        free(g3);                                                              \
    }

DEFINE_DEEP_CHECK(f64, double, 1e-6)
DEFINE_DEEP_CHECK(f32, float, 5e-2)

/* What the API refuses (csae.h): a written array overlapping another array
 * of the call, a NaN rho_hat, sizes whose byte count overflows.  Each
 * refusal is CSAE_ERR_ARGUMENT with nothing written.  Before, A == X
 * encoded in place (wrong codes, CSAE_OK), gradients over the parameters
 * were returned as OK, and init_params with a wrapping n * h left W
 * unwritten and returned OK. */
#define DEFINE_MISUSE_CHECK(SFX, REAL)                                         \
    static void misuse_##SFX(const char *path)                                 \
    {                                                                          \
        const char *type = #REAL;                                              \
        enum { M = 6, N = 5, H = 5 }; /* n == h: X, A and Y have one shape */  \
        csae_model model = {N, H, CSAE_DECODER_SIGMOID, 0.1, 3.0, 1e-3};       \
        REAL W[H * N], b[H], Wd[N * H], bd[N], X[M * N], A[M * H], keep[M * N]; \
        REAL gW[H * N], gb[H], gWd[N * H], gbd[N], vel[2 * N * H + N + H];     \
        uint64_t state = 11;                                                   \
        for (size_t i = 0; i < M * N; i++)                                     \
            X[i] = (REAL)((csae_rng_next(&state) >> 11) * 0x1.0p-53);          \
        memcpy(keep, X, sizeof X);                                             \
        csae_params_##SFX p = {W, b, Wd, bd}, g = {gW, gb, gWd, gbd};          \
        csae_params_##SFX none = {NULL, NULL, NULL, NULL};                     \
        check(csae_init_params_##SFX(&model, p, &state) == CSAE_OK, "init", path, type); \
        csae_workspace ws;                                                     \
        alloc_ws(&ws, csae_train_workspace_size(&model, M, sizeof(REAL), 1), 1); \
        /* the reference call, and the same arguments aliased */               \
        check(csae_encode_##SFX(&model, W, b, X, M, A, &ws) == CSAE_OK,        \
              "encode with distinct arrays", path, type);                      \
        check(csae_encode_##SFX(&model, W, b, X, M, X, &ws) == CSAE_ERR_ARGUMENT && \
              memcmp(X, keep, sizeof X) == 0, "encode refuses A == X, X unchanged", path, type); \
        check(csae_encode_##SFX(&model, W, b, X, M, X + 1, &ws) == CSAE_ERR_ARGUMENT && \
              memcmp(X, keep, sizeof X) == 0, "encode refuses A overlapping X", path, type); \
        check(csae_encode_##SFX(&model, W, b, X, 1, W + H * N - 1, &ws) == CSAE_ERR_ARGUMENT, \
              "encode refuses A overlapping W", path, type);                   \
        csae_workspace inside = {X, sizeof X, 1};                              \
        check(csae_encode_##SFX(&model, W, b, X + N, 1, A, &inside) == CSAE_ERR_ARGUMENT && \
              memcmp(X, keep, sizeof X) == 0, "encode refuses a workspace over X", path, type); \
        check(csae_encode_##SFX(&model, W, b, X, (size_t)-1 / 2, A, &ws) == CSAE_ERR_ARGUMENT, \
              "encode refuses m * n overflowing", path, type);                 \
        check(csae_decode_##SFX(&model, Wd, bd, A, M, A, &ws) == CSAE_ERR_ARGUMENT, \
              "decode refuses Y == A", path, type);                            \
        check(csae_reconstruct_##SFX(&model, p, X, M, Wd, &ws) == CSAE_ERR_ARGUMENT, \
              "reconstruct refuses Y over the parameters", path, type);        \
        double loss;                                                           \
        REAL Wkeep[H * N];                                                     \
        memcpy(Wkeep, W, sizeof W);                                            \
        csae_params_##SFX over = {W, gb, gWd, gbd};                            \
        check(csae_objective_##SFX(&model, p, X, M, &loss, g, NULL, &ws) == CSAE_OK, \
              "objective with distinct arrays", path, type);                   \
        check(csae_objective_##SFX(&model, p, X, M, &loss, over, NULL, &ws) == CSAE_ERR_ARGUMENT && \
              memcmp(W, Wkeep, sizeof W) == 0,                                 \
              "objective refuses gradients over the parameters, W unchanged", path, type); \
        check(csae_objective_##SFX(&model, p, X, M, &loss, g, b, &ws) == CSAE_ERR_ARGUMENT, \
              "objective refuses rho_hat over b", path, type);                 \
        csae_sgd sgd = {0.1, 0.5, M, 0};                                       \
        csae_params_##SFX v = {vel, vel + H * N, vel + H * N + H, vel + 2 * H * N + H}; \
        memset(vel, 0, sizeof vel);                                            \
        check(csae_sgd_step_##SFX(&model, &sgd, p, p, X, M, &loss, &ws) == CSAE_ERR_ARGUMENT && \
              memcmp(W, Wkeep, sizeof W) == 0,                                 \
              "sgd_step refuses velocity == parameters", path, type);          \
        csae_params_##SFX in_x = {X, b, Wd, bd};                               \
        check(csae_sgd_step_##SFX(&model, &sgd, in_x, v, X, M, &loss, &ws) == CSAE_ERR_ARGUMENT && \
              memcmp(X, keep, sizeof X) == 0, "sgd_step refuses W over X", path, type); \
        csae_epoch_result r;                                                   \
        free(ws.data);                                                         \
        alloc_ws(&ws, csae_epoch_workspace_size(&model, &sgd, M, sizeof(REAL), 1), 1); \
        check(csae_sgd_epoch_##SFX(&model, &sgd, p, p, X, M, NULL, NULL, NULL, 0, &r, &ws) \
                  == CSAE_ERR_ARGUMENT && memcmp(W, Wkeep, sizeof W) == 0,     \
              "sgd_epoch refuses velocity == parameters", path, type);         \
        check(csae_sgd_epoch_##SFX(&model, &sgd, p, v, X, M, NULL, NULL, NULL, 0, &r, &ws) \
                  == CSAE_OK, "sgd_epoch with distinct arrays", path, type);   \
        free(ws.data);                                                         \
        /* block-wise: sums over X, NaN rho_hat */                             \
        alloc_ws(&ws, csae_train_workspace_size(&model, M, sizeof(REAL), 1), 1); \
        double sums[H], rho_hat[H], part;                                      \
        check(csae_activation_sums_##SFX(&model, W, b, X, M, sums, &ws) == CSAE_OK, \
              "activation_sums with distinct arrays", path, type);             \
        check(csae_activation_sums_##SFX(&model, W, b, X, M, (double *)(void *)X, &ws) \
                  == CSAE_ERR_ARGUMENT && memcmp(X, keep, sizeof X) == 0,     \
              "activation_sums refuses sums over X", path, type);              \
        for (size_t j = 0; j < H; j++) rho_hat[j] = sums[j] / M;               \
        check(csae_objective_part_##SFX(&model, p, X, M, rho_hat, M, &part, g, &ws) == CSAE_OK, \
              "objective_part with a finite rho_hat", path, type);             \
        rho_hat[2] = NAN;                                                      \
        part = 7.0;                                                            \
        check(csae_objective_part_##SFX(&model, p, X, M, rho_hat, M, &part, g, &ws) \
                  == CSAE_ERR_ARGUMENT && part == 7.0,                         \
              "objective_part refuses a NaN rho_hat", path, type);             \
        rho_hat[2] = 0.5;                                                      \
        check(csae_objective_part_##SFX(&model, p, X, M, rho_hat, M, &part, p, &ws) \
                  == CSAE_ERR_ARGUMENT, "objective_part refuses gradients over the parameters", \
              path, type);                                                     \
        free(ws.data);                                                         \
        /* init: n * h wrapping around (to 2^33 + 1, then to 0), overlapping outputs */ \
        const size_t big = ((size_t)1 << 32) + 1;                              \
        csae_model wraps = {big, big, CSAE_DECODER_SIGMOID, 0.1, 3.0, 1e-3};   \
        csae_model zero = {(size_t)1 << 33, (size_t)1 << 31, CSAE_DECODER_SIGMOID, 0.1, 3.0, 1e-3}; \
        memcpy(Wkeep, W, sizeof W);                                            \
        check(csae_init_params_##SFX(&wraps, p, &state) == CSAE_ERR_ARGUMENT && \
              csae_init_params_##SFX(&zero, p, &state) == CSAE_ERR_ARGUMENT && \
              memcmp(W, Wkeep, sizeof W) == 0, "init refuses n * h overflowing", path, type); \
        csae_params_##SFX same = {W, b, W, bd};                                \
        check(csae_init_params_##SFX(&model, same, &state) == CSAE_ERR_ARGUMENT && \
              memcmp(W, Wkeep, sizeof W) == 0, "init refuses Wd == W", path, type); \
        (void)none;                                                            \
    }

DEFINE_MISUSE_CHECK(f64, double)
DEFINE_MISUSE_CHECK(f32, float)

/* ---- L-BFGS (lbfgs.c), on a separable quartic ---------------------------
 * f(x) = sum_i c_i (e_i^2 / 2 + e_i^4 / 4), e = x - 1, c_i in 1..7: long
 * enough (70 001 > 65 536) for the optimizer's passes to be shared by
 * threads and to end mid-block, so the sanitizers and valgrind see those. */

static double quartic(const double *x, double *g, size_t n)
{
    double f = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double c = 1.0 + (double)(i % 7), e = x[i] - 1.0;
        g[i] = c * e * (1.0 + e * e);
        f += c * e * e * (0.5 + 0.25 * e * e);
    }
    return f;
}

/* Runs L-BFGS from x = sin(0.1 i) for at most max_iter iterations on
 * n_threads threads, its pairs and direction stored in float32 if narrow;
 * the final task, x in x, counts in *state.  The workspace is exactly the
 * size asked for, so the sanitizers see any access past it. */
static csae_lbfgs_task lbfgs_run(csae_lbfgs *state, double *x, double *g, size_t n,
                                 size_t max_iter, double gtol, size_t n_threads, int narrow)
{
    csae_lbfgs_options o = csae_lbfgs_default_options();
    o.max_iter = max_iter;
    o.ftol = 0.0;
    o.gtol = gtol;
    o.n_threads = n_threads;
    o.float32_storage = narrow;
    const size_t len = csae_lbfgs_workspace_size(n, &o);
    double *work = malloc(len * sizeof(double));
    for (size_t i = 0; i < n; i++)
        x[i] = sin(0.1 * (double)i);
    csae_lbfgs_task task = CSAE_LBFGS_ERROR;
    if (work && csae_lbfgs_init(state, n, &o, work, len) == CSAE_OK) {
        double f = 0.0;
        for (;;) {
            task = csae_lbfgs_step(state, x, &f, g);
            if (task == CSAE_LBFGS_EVALUATE)
                f = quartic(x, g, n);
            else if (task != CSAE_LBFGS_ITERATE)
                break;
        }
    }
    free(work);
    return task;
}

static void lbfgs_checks(void)
{
    const size_t n = 70001;
    double *x1 = malloc(n * sizeof(double)), *x3 = malloc(n * sizeof(double));
    double *g = malloc(n * sizeof(double));
    if (!x1 || !x3 || !g) {
        check(0, "lbfgs buffers", "any", "f64");
        free(x1), free(x3), free(g);
        return;
    }
    csae_lbfgs a, b;
    double *x25 = NULL;
    for (int narrow = 0; narrow <= 1; narrow++) {
        /* Stored in double, then in float32: each runs, is the same on
         * 1 and 3 threads and converges; the two differ only by rounding. */
        const char *dtype = narrow ? "f32" : "f64";
        const csae_lbfgs_task t1 = lbfgs_run(&a, x1, g, n, 25, 0.0, 1, narrow);
        const csae_lbfgs_task t3 = lbfgs_run(&b, x3, g, n, 25, 0.0, 3, narrow);
        check(t1 == CSAE_LBFGS_MAX_ITER && a.iterations == 25, "lbfgs runs its iterations",
              "any", dtype);
        check(t3 == t1 && b.evaluations == a.evaluations
                  && memcmp(x1, x3, n * sizeof(double)) == 0,
              "lbfgs on 3 threads is bit-identical to 1", "any", dtype);
        if (!narrow) {
            x25 = malloc(n * sizeof(double));
            if (x25)
                memcpy(x25, x1, n * sizeof(double));
        } else {
            check(x25 && memcmp(x25, x1, n * sizeof(double)) != 0,
                  "float32 storage rounds the stored vectors", "any", dtype);
        }
        /* Converged by the gradient test (every |g_i| <= gtol) near x = 1. */
        const csae_lbfgs_task tc = lbfgs_run(&a, x1, g, n, 500, 1e-8, 2, narrow);
        double worst = 0.0;
        for (size_t i = 0; i < n; i++)
            worst = fmax(worst, fabs(x1[i] - 1.0));
        check(tc == CSAE_LBFGS_CONVERGED && worst < 1e-7, "lbfgs converges to the minimum",
              "any", dtype);
    }
    free(x25);
    /* Status codes, not crashes; float32 storage needs a smaller
     * workspace, which a double one refuses. */
    csae_lbfgs_options o = csae_lbfgs_default_options(), o0 = o, narrow = o;
    o0.history = 0;
    narrow.float32_storage = 1;
    const size_t wide_len = csae_lbfgs_workspace_size(n, &o),
                 narrow_len = csae_lbfgs_workspace_size(n, &narrow);
    double small[8];
    check(csae_lbfgs_workspace_size(0, &o) == 0 && csae_lbfgs_workspace_size(10, &o0) == 0
              && csae_lbfgs_workspace_size(10, NULL) == 0
              && csae_lbfgs_workspace_size((size_t)-1 / 4, &o) == 0
              && csae_lbfgs_workspace_size((size_t)-1 / 4, &narrow) == 0
              && narrow_len > 0 && wide_len - narrow_len == (2 * o.history + 1) * n / 2
              && csae_lbfgs_init(&a, n, &o, x1, narrow_len) == CSAE_ERR_WORKSPACE
              && csae_lbfgs_init(&a, 10, &o, small, 8) == CSAE_ERR_WORKSPACE
              && csae_lbfgs_init(NULL, 10, &o, small, 8) == CSAE_ERR_ARGUMENT
              && csae_lbfgs_step(NULL, x1, &small[0], g) == CSAE_LBFGS_ERROR,
          "lbfgs refuses bad arguments", "any", "f64");
    free(x1);
    free(x3);
    free(g);
}

/* csae_flat_step: an applied step, a refused one (nothing written), and
 * arguments it must refuse. */
#define DEFINE_FLAT(SFX, REAL)                                                 \
    static void flat_##SFX(const char *path)                                   \
    {                                                                          \
        const char *type = #REAL;                                              \
        enum { P = 6 };                                                        \
        REAL theta[P], grad[P], m1[P] = {0}, m2[P] = {0}, vel[P] = {0}, keep[P]; \
        for (int i = 0; i < P; i++) {                                          \
            theta[i] = (REAL)(0.5 * i);                                        \
            grad[i] = (REAL)(1.0 - 0.3 * i);                                   \
        }                                                                      \
        csae_sgd sgd = {0.1, 0.9, 1, 0};                                       \
        csae_solver adam = {1, 0.9, 0.999, 1e-8, 0.0};                         \
        csae_flat_state_##SFX state = {vel, m1, m2, 0};                        \
        check(csae_flat_step_##SFX(&sgd, &adam, theta, grad, P, &state, 2) == CSAE_OK && \
                  state.adam_t == 1 && theta[0] < 0 && theta[5] > 2.5,         \
              "flat adam step", path, type);                                   \
        memcpy(keep, theta, sizeof keep);                                      \
        grad[2] = (REAL)INFINITY;                                              \
        check(csae_flat_step_##SFX(&sgd, NULL, theta, grad, P, &state, 1) ==    \
                      CSAE_ERR_NONFINITE && !memcmp(keep, theta, sizeof keep) && \
                  vel[0] == 0,                                                 \
              "flat step that overflows writes nothing", path, type);          \
        grad[2] = 0;                                                           \
        csae_flat_state_##SFX empty = {NULL, NULL, NULL, 0};                   \
        csae_solver running = {0, 0.9, 0.999, 1e-8, 0.1};                      \
        check(csae_flat_step_##SFX(&sgd, &adam, theta, grad, P, &empty, 1) ==   \
                      CSAE_ERR_ARGUMENT &&                                     \
                  csae_flat_step_##SFX(&sgd, NULL, theta, grad, P, &empty, 1) == \
                      CSAE_ERR_ARGUMENT &&                                     \
                  csae_flat_step_##SFX(&sgd, &running, theta, grad, P, &state, 1) == \
                      CSAE_ERR_ARGUMENT &&                                     \
                  csae_flat_step_##SFX(&sgd, NULL, theta, theta, P, &state, 1) == \
                      CSAE_ERR_ARGUMENT &&                                     \
                  csae_flat_step_##SFX(&sgd, NULL, theta, grad, 0, &state, 1) == \
                      CSAE_ERR_ARGUMENT,                                       \
              "flat step refuses bad arguments", path, type);                  \
    }
DEFINE_FLAT(f64, double)
DEFINE_FLAT(f32, float)

int main(void)
{
    /* Every path this build registers (the library's list, not one of
     * this program's own). */
    for (size_t i = 0; i < csae_kernel_path_count(); i++) {
        const csae_kernel_path path = csae_kernel_path_at(i);
        const char *name = csae_kernel_path_name(path);
        if (!csae_kernel_path_supported(path)) {
            printf("skip %s: not supported on this CPU\n", name);
            continue;
        }
        csae_set_kernel_path(path);
        suite_f64(name);
        suite_f32(name);
        threads_f64(name);
        threads_f32(name);
        one_row_f64(name);
        one_row_f32(name);
        solvers_f64(name);
        solvers_f32(name);
        deep_f64(name);
        deep_f32(name);
        misuse_f64(name);
        misuse_f32(name);
        flat_f64(name);
        flat_f32(name);
    }
    lbfgs_checks();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
