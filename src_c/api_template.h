/*
 * api_template.h: the public csae_* functions for one element type,
 * included by engine.c with REAL and SFX (f64 or f32) defined.  They
 * validate arguments, carve the workspace and call the active kernel path.
 */

#define PARAMS CAT(csae_params_, SFX)
#define STATE CAT(csae_train_state_, SFX)
#define FLAT CAT(csae_flat_state_, SFX)
#define OP(name) csae_ops_active()->CAT(name, SFX)

static int FN(params_ok_)(PARAMS p)
{
    return p.W && p.b && p.Wd && p.bd;
}

/* Bytes of `count` elements, `rows` rows of `cols` elements (SIZE_MAX on
 * overflow, which csae_spans_ok refuses). */
static size_t FN(bytes_)(size_t count)
{
    return mul_size(count, sizeof(REAL));
}

static size_t FN(rows_bytes_)(size_t rows, size_t cols)
{
    return mul_size(mul_size(rows, cols), sizeof(REAL));
}

/* The four parameter-shaped arrays of p as spans s[0..4). */
static csae_span *FN(param_spans_)(csae_span *s, const csae_model *model, PARAMS p,
                                   int written)
{
    const size_t n = model->n_features, h = model->n_hidden;
    s[0] = (csae_span){p.W, FN(rows_bytes_)(h, n), written};
    s[1] = (csae_span){p.b, FN(bytes_)(h), written};
    s[2] = (csae_span){p.Wd, FN(rows_bytes_)(n, h), written};
    s[3] = (csae_span){p.bd, FN(bytes_)(n), written};
    return s + 4;
}

csae_status FN(csae_encode_)(const csae_model *model, const REAL *W, const REAL *b,
                             const REAL *X, size_t m, REAL *A, const csae_workspace *ws)
{
    if (!model_ok(model) || !W || !b || (m && (!X || !A)))
        return CSAE_ERR_ARGUMENT;
    const size_t n = model->n_features, h = model->n_hidden;
    const csae_span spans[] = {{W, FN(rows_bytes_)(h, n), 0}, {b, FN(bytes_)(h), 0},
                               {X, FN(rows_bytes_)(m, n), 0}, {A, FN(rows_bytes_)(m, h), 1},
                               ws_span(ws)};
    if (!csae_spans_ok(spans, sizeof spans / sizeof spans[0]))
        return CSAE_ERR_ARGUMENT;
    const csae_ws_layout L = layout_for(model, m, sizeof(REAL), threads_of(ws), WS_FORWARD, 0, 0);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    OP(encode_)(model, W, b, X, m, A, base, &L, threads_of(ws));
    return CSAE_OK;
}

csae_status FN(csae_decode_)(const csae_model *model, const REAL *Wd, const REAL *bd,
                             const REAL *A, size_t m, REAL *Y, const csae_workspace *ws)
{
    if (!model_ok(model) || !Wd || !bd || (m && (!A || !Y)))
        return CSAE_ERR_ARGUMENT;
    const size_t n = model->n_features, h = model->n_hidden;
    const csae_span spans[] = {{Wd, FN(rows_bytes_)(n, h), 0}, {bd, FN(bytes_)(n), 0},
                               {A, FN(rows_bytes_)(m, h), 0}, {Y, FN(rows_bytes_)(m, n), 1},
                               ws_span(ws)};
    if (!csae_spans_ok(spans, sizeof spans / sizeof spans[0]))
        return CSAE_ERR_ARGUMENT;
    const csae_ws_layout L = layout_for(model, m, sizeof(REAL), threads_of(ws), WS_FORWARD, 0, 0);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    OP(decode_)(model, Wd, bd, A, m, Y, base, &L, threads_of(ws));
    return CSAE_OK;
}

csae_status FN(csae_reconstruct_)(const csae_model *model, PARAMS params,
                                  const REAL *X, size_t m, REAL *Y, const csae_workspace *ws)
{
    if (!model_ok(model) || !FN(params_ok_)(params) || (m && (!X || !Y)))
        return CSAE_ERR_ARGUMENT;
    csae_span spans[7];
    csae_span *end = FN(param_spans_)(spans, model, params, 0);
    *end++ = (csae_span){X, FN(rows_bytes_)(m, model->n_features), 0};
    *end++ = (csae_span){Y, FN(rows_bytes_)(m, model->n_features), 1};
    *end++ = ws_span(ws);
    if (!csae_spans_ok(spans, (size_t)(end - spans)))
        return CSAE_ERR_ARGUMENT;
    const csae_ws_layout L = layout_for(model, m, sizeof(REAL), threads_of(ws), WS_FORWARD, 0, 0);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    REAL *A = (REAL *)(base + L.A);
    OP(encode_)(model, params.W, params.b, X, m, A, base, &L, threads_of(ws));
    OP(decode_)(model, params.Wd, params.bd, A, m, Y, base, &L, threads_of(ws));
    return CSAE_OK;
}

csae_status FN(csae_objective_)(const csae_model *model, PARAMS params, const REAL *X,
                                size_t m, double *loss, PARAMS grads, REAL *rho_hat,
                                const csae_workspace *ws)
{
    if (!model_ok(model) || !FN(params_ok_)(params) || !X || m == 0 || !loss)
        return CSAE_ERR_ARGUMENT;
    const int want = grads.W || grads.b || grads.Wd || grads.bd;
    if (want && !FN(params_ok_)(grads))
        return CSAE_ERR_ARGUMENT;
    csae_span spans[12];
    csae_span *end = FN(param_spans_)(spans, model, params, 0);
    if (want)
        end = FN(param_spans_)(end, model, grads, 1);
    *end++ = (csae_span){X, FN(rows_bytes_)(m, model->n_features), 0};
    *end++ = (csae_span){loss, sizeof *loss, 1};
    *end++ = (csae_span){rho_hat, FN(bytes_)(model->n_hidden), 1};
    *end++ = ws_span(ws);
    if (!csae_spans_ok(spans, (size_t)(end - spans)))
        return CSAE_ERR_ARGUMENT;
    const csae_ws_layout L = layout_for(model, m, sizeof(REAL), threads_of(ws), WS_TRAIN, 0, 0);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    OP(objective_)(model, params, X, m, loss, grads, base, &L, threads_of(ws));
    if (rho_hat)
        memcpy(rho_hat, base + L.rho, model->n_hidden * sizeof(REAL));
    return CSAE_OK;
}

/* The state members that sgd and solver (not NULL here) need are there. */
static int FN(state_ok_)(const csae_sgd *sgd, const csae_solver *solver, const STATE *state)
{
    if (!state)
        return 0;
    if (solver->adam && !(FN(params_ok_)(state->adam_m) && FN(params_ok_)(state->adam_v)))
        return 0;
    if (!solver->adam && sgd->momentum != 0 && !FN(params_ok_)(state->velocity))
        return 0;
    return solver->sparsity_smoothing == 0 || state->rho_running;
}

/* The state arrays that sgd and solver use, all written, as spans. */
static csae_span *FN(state_spans_)(csae_span *s, const csae_model *model, const csae_sgd *sgd,
                                   const csae_solver *solver, const STATE *state)
{
    if (solver->adam) {
        s = FN(param_spans_)(s, model, state->adam_m, 1);
        s = FN(param_spans_)(s, model, state->adam_v, 1);
    } else if (sgd->momentum != 0) {
        s = FN(param_spans_)(s, model, state->velocity, 1);
    }
    if (solver->sparsity_smoothing != 0)
        *s++ = (csae_span){state->rho_running, FN(bytes_)(model->n_hidden), 1};
    return s;
}

csae_status FN(csae_train_step_)(const csae_model *model, const csae_sgd *sgd,
                                 const csae_solver *solver, PARAMS params, STATE *state,
                                 const REAL *X, size_t m, double *loss,
                                 const csae_workspace *ws)
{
    if (!model_ok(model) || !sgd_ok(sgd) || !solver_ok(solver) || !FN(params_ok_)(params) ||
        !X || m == 0 || !loss)
        return CSAE_ERR_ARGUMENT;
    if (!solver)
        solver = &no_solver;
    if (!FN(state_ok_)(sgd, solver, state))
        return CSAE_ERR_ARGUMENT;
    csae_span spans[16];
    csae_span *end = FN(param_spans_)(spans, model, params, 1);
    end = FN(state_spans_)(end, model, sgd, solver, state);
    *end++ = (csae_span){X, FN(rows_bytes_)(m, model->n_features), 0};
    *end++ = (csae_span){loss, sizeof *loss, 1};
    *end++ = ws_span(ws);
    if (!csae_spans_ok(spans, (size_t)(end - spans)))
        return CSAE_ERR_ARGUMENT;
    const csae_ws_layout L = layout_for(model, m, sizeof(REAL), threads_of(ws), WS_TRAIN, 0, 0);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    return OP(train_step_)(model, sgd, solver, params, state, X, m, loss, base, &L,
                           threads_of(ws));
}

csae_status FN(csae_flat_step_)(const csae_sgd *sgd, const csae_solver *solver, REAL *theta,
                                const REAL *grad, size_t n, FLAT *state, size_t n_threads)
{
    if (!sgd_ok(sgd) || !solver_ok(solver) || !theta || !grad || n == 0 || !state)
        return CSAE_ERR_ARGUMENT;
    if (!solver)
        solver = &no_solver;
    const int adam = solver->adam != 0, momentum = !adam && sgd->momentum != 0;
    if (solver->sparsity_smoothing != 0 || (adam && !(state->adam_m && state->adam_v)) ||
        (momentum && !state->velocity))
        return CSAE_ERR_ARGUMENT;
    const size_t bytes = FN(bytes_)(n);
    const csae_span spans[] = {{theta, bytes, 1}, {grad, bytes, 0},
                               {momentum ? state->velocity : NULL, bytes, 1},
                               {adam ? state->adam_m : NULL, bytes, 1},
                               {adam ? state->adam_v : NULL, bytes, 1},
                               {state, sizeof *state, 1}};
    if (!csae_spans_ok(spans, sizeof spans / sizeof spans[0]))
        return CSAE_ERR_ARGUMENT;
    FLAT used = {momentum ? state->velocity : NULL, adam ? state->adam_m : NULL,
                 adam ? state->adam_v : NULL, state->adam_t};
    const csae_status status = OP(flat_step_)(sgd, solver, theta, grad, n, &used,
                                              clamp_threads(n_threads));
    state->adam_t = used.adam_t;
    return status;
}

/* The state of the plain entry points: the velocities, nothing else. */
static STATE FN(velocity_state_)(PARAMS velocity)
{
    STATE state;
    memset(&state, 0, sizeof state);
    state.velocity = velocity;
    return state;
}

csae_status FN(csae_sgd_step_)(const csae_model *model, const csae_sgd *sgd,
                               PARAMS params, PARAMS velocity, const REAL *X, size_t m,
                               double *loss, const csae_workspace *ws)
{
    STATE state = FN(velocity_state_)(velocity);
    return FN(csae_train_step_)(model, sgd, NULL, params, &state, X, m, loss, ws);
}

csae_status FN(csae_activation_sums_)(const csae_model *model, const REAL *W, const REAL *b,
                                      const REAL *X, size_t m, double *sums,
                                      const csae_workspace *ws)
{
    if (!model_ok(model) || !W || !b || (m && !X) || !sums)
        return CSAE_ERR_ARGUMENT;
    const size_t n = model->n_features, h = model->n_hidden;
    const csae_span spans[] = {{W, FN(rows_bytes_)(h, n), 0}, {b, FN(bytes_)(h), 0},
                               {X, FN(rows_bytes_)(m, n), 0},
                               {sums, mul_size(h, sizeof *sums), 1}, ws_span(ws)};
    if (!csae_spans_ok(spans, sizeof spans / sizeof spans[0]))
        return CSAE_ERR_ARGUMENT;
    const csae_ws_layout L = layout_for(model, m, sizeof(REAL), threads_of(ws), WS_FORWARD, 0, 0);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    OP(activation_sums_)(model, W, b, X, m, sums, base, &L, threads_of(ws));
    return CSAE_OK;
}

csae_status FN(csae_objective_part_)(const csae_model *model, PARAMS params, const REAL *X,
                                     size_t m, const double *rho_hat, size_t n_total,
                                     double *part, PARAMS grads, const csae_workspace *ws)
{
    if (!model_ok(model) || !FN(params_ok_)(params) || (m && !X) || !rho_hat || !part ||
        n_total == 0 || m > n_total)
        return CSAE_ERR_ARGUMENT;
    const int want = grads.W || grads.b || grads.Wd || grads.bd;
    if (want && !FN(params_ok_)(grads))
        return CSAE_ERR_ARGUMENT;
    csae_span spans[12];
    csae_span *end = FN(param_spans_)(spans, model, params, 0);
    if (want)
        end = FN(param_spans_)(end, model, grads, 1);
    *end++ = (csae_span){X, FN(rows_bytes_)(m, model->n_features), 0};
    *end++ = (csae_span){rho_hat, mul_size(model->n_hidden, sizeof *rho_hat), 0};
    *end++ = (csae_span){part, sizeof *part, 1};
    *end++ = ws_span(ws);
    if (!csae_spans_ok(spans, (size_t)(end - spans)))
        return CSAE_ERR_ARGUMENT;
    /* A NaN rho_hat would pass the clip to [eps, 1 - eps] and poison the
     * part and every gradient with a success status. */
    for (size_t j = 0; j < model->n_hidden; j++)
        if (isnan(rho_hat[j]))
            return CSAE_ERR_ARGUMENT;
    const csae_ws_layout L = layout_for(model, m, sizeof(REAL), threads_of(ws), WS_TRAIN, 0, 0);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;
    OP(objective_part_)(model, params, X, m, rho_hat, n_total, part, grads, base, &L,
                        threads_of(ws));
    return CSAE_OK;
}

/* Copy the four blocks of p to or from the flat array at flat. */
static void FN(copy_params_)(const csae_model *model, PARAMS p, REAL *flat, int to_flat)
{
    const size_t n = model->n_features, h = model->n_hidden;
    REAL *block[4] = {p.W, p.b, p.Wd, p.bd};
    const size_t len[4] = {h * n, h, n * h, n};
    for (int k = 0; k < 4; k++) {
        if (to_flat)
            memcpy(flat, block[k], len[k] * sizeof(REAL));
        else
            memcpy(block[k], flat, len[k] * sizeof(REAL));
        flat += len[k];
    }
}

csae_status FN(csae_train_epoch_)(const csae_model *model, const csae_sgd *sgd,
                                  const csae_solver *solver, PARAMS params, STATE *state,
                                  const REAL *X, size_t n_samples, uint64_t *rng_state,
                                  csae_stop_fn stop, void *stop_context, size_t check_every,
                                  csae_epoch_result *result, const csae_workspace *ws)
{
    if (!model_ok(model) || !sgd_ok(sgd) || !solver_ok(solver) || !FN(params_ok_)(params) ||
        !X || n_samples == 0 || !result || (sgd->shuffle && !rng_state))
        return CSAE_ERR_ARGUMENT;
    if (!solver)
        solver = &no_solver;
    if (!FN(state_ok_)(sgd, solver, state))
        return CSAE_ERR_ARGUMENT;
    csae_span spans[18];
    csae_span *end = FN(param_spans_)(spans, model, params, 1);
    end = FN(state_spans_)(end, model, sgd, solver, state);
    *end++ = (csae_span){X, FN(rows_bytes_)(n_samples, model->n_features), 0};
    *end++ = (csae_span){sgd->shuffle ? rng_state : NULL, sizeof *rng_state, 1};
    *end++ = (csae_span){result, sizeof *result, 1};
    *end++ = ws_span(ws);
    if (!csae_spans_ok(spans, (size_t)(end - spans)))
        return CSAE_ERR_ARGUMENT;
    const size_t n = model->n_features;
    const size_t batch = sgd->batch_size < n_samples ? sgd->batch_size : n_samples;
    const csae_ws_layout L = layout_for(model, batch, sizeof(REAL), threads_of(ws), WS_EPOCH,
                                   n_samples, sgd->shuffle);
    char *base = ws_base(ws, &L);
    if (!base)
        return CSAE_ERR_WORKSPACE;

    size_t *order = (size_t *)(base + L.order);
    REAL *gathered = (REAL *)(base + L.gather);
    if (sgd->shuffle)
        csae_rng_permutation(rng_state, order, n_samples);
    if (check_every == 0)
        check_every = 1;

    /* One-row batches of plain SGD or momentum (without the running
     * estimate) take the fused step (sample_template.h) without its
     * per-step backups: the epoch copies the parameters (and velocities)
     * into the backup area every CSAE_SAMPLE_CHECKPOINT_EVERY batches
     * instead, and after a failed step puts that copy back and replays the
     * batches since.  The step is deterministic (one thread, a fixed order
     * of operations), so the replay recomputes the same bits: the
     * parameters end as the last finite ones, exactly as with per-step
     * backups, for a fraction of their cost.  Adam and the running
     * estimate take the general step, whose check-then-commit update needs
     * no checkpoint. */
    /* One table for the whole epoch, so that a replay runs the same code
     * as the steps it repeats even if another thread switches paths. */
    const csae_ops *ops = csae_ops_active();
    csae_ws_layout Lstep = L;
    const int fused = !solver->adam && solver->sparsity_smoothing == 0;
    const int checkpointing = L.sample && batch == 1 && fused;
    if (checkpointing)
        Lstep.sample = CSAE_SAMPLE_CHECKPOINTED;
    const int momentum = sgd->momentum != 0;
    const size_t n_params = 2 * n * model->n_hidden + n + model->n_hidden;
    REAL *saved = (REAL *)(base + L.grad), *saved_v = saved + n_params;
    size_t checkpoint = 0;

    double total = 0;
    memset(result, 0, sizeof *result);
    csae_status status = CSAE_OK;
    for (size_t start = 0, index = 0; start < n_samples; start += batch, index++) {
        if (stop && index > 0 && index % check_every == 0 && stop(stop_context)) {
            status = CSAE_ERR_STOPPED;
            break;
        }
        const size_t rows = n_samples - start < batch ? n_samples - start : batch;
        const REAL *Xb = X + start * n;
        if (sgd->shuffle && rows == 1) {
            Xb = X + order[start] * n; /* one row: read in place, no copy */
        } else if (sgd->shuffle) {
            for (size_t i = 0; i < rows; i++)
                memcpy(gathered + i * n, X + order[start + i] * n, n * sizeof(REAL));
            Xb = gathered;
        }
        if (checkpointing && index % CSAE_SAMPLE_CHECKPOINT_EVERY == 0) {
            FN(copy_params_)(model, params, saved, 1);
            if (momentum)
                FN(copy_params_)(model, state->velocity, saved_v, 1);
            checkpoint = index;
        }
        double loss;
        status = ops->CAT(train_step_, SFX)(model, sgd, solver, params, state, Xb, rows, &loss,
                                            base, &Lstep, threads_of(ws));
        if (status != CSAE_OK && checkpointing) {
            /* Back to the checkpoint, then the batches that succeeded since
             * (one row each: batch index i is sample i, or order[i]). */
            FN(copy_params_)(model, params, saved, 0);
            if (momentum)
                FN(copy_params_)(model, state->velocity, saved_v, 0);
            for (size_t i = checkpoint; i < index; i++) {
                const REAL *row = X + (sgd->shuffle ? order[i] : i) * n;
                double replayed;
                ops->CAT(train_step_, SFX)(model, sgd, solver, params, state, row, 1, &replayed,
                                           base, &Lstep, threads_of(ws));
            }
        }
        if (status != CSAE_OK)
            break;
        total += loss * (double)rows;
        result->batches_done++;
        result->rows_done += rows;
    }
    result->loss = result->rows_done ? total / (double)result->rows_done : 0.0;
    return status;
}

csae_status FN(csae_sgd_epoch_)(const csae_model *model, const csae_sgd *sgd,
                                PARAMS params, PARAMS velocity, const REAL *X,
                                size_t n_samples, uint64_t *rng_state, csae_stop_fn stop,
                                void *stop_context, size_t check_every,
                                csae_epoch_result *result, const csae_workspace *ws)
{
    STATE state = FN(velocity_state_)(velocity);
    return FN(csae_train_epoch_)(model, sgd, NULL, params, &state, X, n_samples, rng_state,
                                 stop, stop_context, check_every, result, ws);
}

#undef OP
#undef STATE
#undef FLAT
#undef PARAMS
