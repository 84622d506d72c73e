/*
 * csae.h: the public C API of the csae engine (sparse autoencoder with a
 * KL-divergence sparsity penalty, trained by minibatch SGD or Adam, or by
 * full-batch L-BFGS).
 *
 * Plain C11 with libc, libm and POSIX threads.  No function prints, aborts
 * or allocates memory: every buffer belongs to the caller, scratch memory
 * comes in through a workspace whose size is asked for first, and every
 * function returns a csae_status.  The one resource the engine keeps is a
 * pool of worker threads, started the first time a call may use more than
 * one thread (n_threads > 1), grown to the largest n_threads asked for and
 * kept for the life of the process (a child of fork() starts its own).  A
 * call with n_threads = k involves at most k - 1 of them; the others sleep
 * and are not woken.  Mirrored for Cython by csae/engine.pxd (the public
 * cimport API, which csae's own binding uses too): keep the two in step.
 *
 * Axis letters used in names and comments:
 *   m  rows of a batch (samples)      n  features (inputs)      h  hidden units
 * All matrices are row-major and contiguous:
 *   X  (m x n) data       W  (h x n) encoder weights   b  (h) encoder bias
 *   A  (m x h) hidden     Wd (n x h) decoder weights   bd (n) decoder bias
 *   Y  (m x n) output
 *
 * The mathematics (objective, gradients, SGD, initialisation, the rho_hat
 * clip) is documented in docs/math.md; csae/reference.py is a readable
 * NumPy version of every function here.
 *
 * Every computing function exists for float64 (suffix _f64) and float32
 * (suffix _f32); the float32 version computes in float32 (accumulating the
 * scalar objective in double).
 *
 * What every function refuses with CSAE_ERR_ARGUMENT, before it writes
 * anything: an array it writes (an output, parameters or training state
 * updated in place, *loss, the workspace) that overlaps any other array of
 * the same call, input or output (A == X, gradients over the parameters,
 * a workspace inside an input, ...); arrays only read may overlap each
 * other.  And a size whose byte count does not fit an object (m * n,
 * n * h, ... times the element size above PTRDIFF_MAX).
 *
 * Values that are not finite numbers in the inputs are computed with, not
 * refused, by one rule on every kernel path (csae/reference.py follows
 * it): a NaN pre-activation gives a NaN activation, sigmoid(+inf) = 1,
 * sigmoid(-inf) = 0, and a finite pre-activation whose exp underflows
 * (below -746 in float64, -104 in float32) gives exactly 0.  Training
 * functions report a non-finite objective as CSAE_ERR_NONFINITE.
 *
 * Thread safety: functions touch only their arguments and the workspace, so
 * calls on different workspaces may run concurrently (one of them at a time
 * uses the worker pool; the others run on their own thread, with the same
 * results).  The kernel-path selection (csae_set_kernel_path) is
 * process-wide: change it only while no other call runs.
 */
#ifndef CSAE_H
#define CSAE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The shared library (libcsae, built with -fvisibility=hidden) exports
 * exactly the functions declared between this push and the pop at the end
 * of the header: the engine's internals stay hidden. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* Same as the Python package's csae.__version__ (a test checks it). */
#define CSAE_VERSION_MAJOR 0
#define CSAE_VERSION_MINOR 1
#define CSAE_VERSION_PATCH 0
#define CSAE_VERSION_STRING "0.1.0"

/* The version of the compiled library ("major.minor.patch"; static
 * storage): compare with CSAE_VERSION_STRING to catch a program built
 * against one header and run with another library. */
const char *csae_version(void);

typedef enum {
    CSAE_OK = 0,
    CSAE_ERR_ARGUMENT = 1,   /* a size, pointer or hyperparameter is invalid */
    CSAE_ERR_WORKSPACE = 2,  /* the workspace is smaller than its size query */
    CSAE_ERR_NONFINITE = 3,  /* training met a non-finite objective or gradient;
                                the parameters were left at their last finite
                                values (the update that would break them is
                                not applied) */
    CSAE_ERR_STOPPED = 4,    /* the stop callback asked training to end; the
                                parameters are those after the last whole
                                minibatch */
    /* Model files (csae_model_file_*): */
    CSAE_ERR_NOT_FOUND = 5,  /* no file at that path */
    CSAE_ERR_NOT_A_FILE = 6, /* the path is a directory or other non-regular file */
    CSAE_ERR_FILE = 7,       /* the file exists but cannot be opened or read
                                (permission, I/O error) */
    CSAE_ERR_FORMAT = 8,     /* not a valid csae model file: truncated,
                                corrupted, hand-crafted or not a model */
    CSAE_ERR_UNSUPPORTED = 9,/* a model file this reader cannot use: written
                                by a newer csae (format version), with
                                compressed or Fortran-ordered members, or a
                                scale_inputs model without an input range */
    CSAE_ERR_DTYPE = 10,     /* the model's element type is not the
                                function's (_f32 on a float64 model, ...) */
    CSAE_ERR_MISMATCH = 11,  /* the file's model (shape, decoder or objective)
                                differs from the csae_model passed */
    CSAE_ERR_LABEL = 12      /* a class label is negative or not below the
                                number of classes (csae_deep_objective_*) */
} csae_status;

/* A short English description of a status code (static storage). */
const char *csae_status_message(csae_status status);

typedef enum {
    CSAE_DECODER_SIGMOID = 0, /* y = sigmoid(z2): inputs must lie in [0, 1] */
    CSAE_DECODER_LINEAR = 1   /* y = z2: inputs on any scale */
} csae_decoder;

/* The shape and objective of a model.  Validated by every call. */
typedef struct {
    size_t n_features;         /* n >= 1 */
    size_t n_hidden;           /* h >= 1 */
    csae_decoder decoder;
    double sparsity_target;    /* rho, in (0, 1) */
    double sparsity_weight;    /* beta >= 0 */
    double weight_decay;       /* lambda >= 0 */
} csae_model;

/* Hyperparameters of minibatch SGD. */
typedef struct {
    double learning_rate;      /* > 0 */
    double momentum;           /* in [0, 1); 0 means plain SGD, no velocity used;
                                  ignored (but still checked) with Adam */
    size_t batch_size;         /* >= 1; the last minibatch of an epoch may be shorter */
    int shuffle;               /* nonzero: visit rows in a fresh random order each epoch */
} csae_sgd;

/* What csae_train_step / csae_train_epoch add to csae_sgd.  A NULL pointer,
 * or a zeroed struct, means SGD with momentum and rho_hat per minibatch
 * (what csae_sgd_step / csae_sgd_epoch do). */
typedef struct {
    /* Adam (scikit-learn's convention, docs/math.md): nonzero adam replaces
     * SGD/momentum.  With g the gradient including 2 lambda W, at step t:
     *   m = beta_1 m + (1 - beta_1) g;  v = beta_2 v + (1 - beta_2) g^2
     *   lr_t = learning_rate sqrt(1 - beta_2^t) / (1 - beta_1^t)
     *   theta -= lr_t m / (sqrt(v) + epsilon)
     * Needs the training state's adam_m and adam_v. */
    int adam;
    double beta_1;             /* in [0, 1) (checked only with adam) */
    double beta_2;             /* in [0, 1) (checked only with adam) */
    double epsilon;            /* > 0 (checked only with adam) */
    /* The running sparsity estimate: 0 (off) uses each minibatch's own
     * rho_hat in the backward pass; tau in (0, 1] keeps q in the training
     * state: q = rho_hat of q's first minibatch, then
     * q = (1 - tau) q + tau rho_hat(batch), and s_j comes from q.  Needs
     * the training state's rho_running. */
    double sparsity_smoothing;
} csae_solver;

/* Parameters (and, with the same layout, gradients and velocities). */
typedef struct { double *W, *b, *Wd, *bd; } csae_params_f64;
typedef struct { float *W, *b, *Wd, *bd; } csae_params_f32;

/* ---- Random numbers: SplitMix64, owned by the caller as one uint64 ------ */

/* Next 64-bit output; advances *state.  Output k of a stream started at s is
 * mix(s + k * 0x9E3779B97F4A7C15). */
uint64_t csae_rng_next(uint64_t *state);

/* Fisher-Yates shuffle of order[0..m) set to 0..m-1 first: for i = m-1 down
 * to 1, j is drawn uniform in [0, i] by rejection (no modulo bias). */
void csae_rng_permutation(uint64_t *state, size_t *order, size_t m);

/* Default initialisation: W, Wd uniform in [-r, r], r = sqrt(6 / (n + h + 1)),
 * drawn in that order (row-major) as r * (2u - 1) with u = (x >> 11) * 2^-53
 * computed in double; b and bd set to zero.  Only the model's n_features
 * and n_hidden are used; CSAE_ERR_ARGUMENT when n * h overflows or the four
 * arrays and *state overlap. */
csae_status csae_init_params_f64(const csae_model *model, csae_params_f64 params, uint64_t *state);
csae_status csae_init_params_f32(const csae_model *model, csae_params_f32 params, uint64_t *state);

/* ---- Workspace ---------------------------------------------------------- */

/* Scratch memory and parallelism for one call.  The caller allocates `size`
 * bytes (any alignment) as returned by the size query below for the same
 * model, rows, element size and n_threads (or more), and must not share one
 * workspace between concurrent calls.  n_threads >= 1 is how many threads the
 * call may use (0 counts as 1, more than CSAE_MAX_THREADS as that many);
 * results are bit-identical for every n_threads. */
#define CSAE_MAX_THREADS 64
typedef struct {
    void *data;
    size_t size;
    size_t n_threads;
} csae_workspace;

/* Bytes for encode, decode and reconstruct on up to `rows` rows. */
size_t csae_forward_workspace_size(const csae_model *model, size_t rows,
                                   size_t elem_size, size_t n_threads);
/* Bytes for objective/gradient and sgd_step on batches of up to `rows` rows. */
size_t csae_train_workspace_size(const csae_model *model, size_t rows,
                                 size_t elem_size, size_t n_threads);
/* Bytes for sgd_epoch over n_samples rows in minibatches of sgd->batch_size. */
size_t csae_epoch_workspace_size(const csae_model *model, const csae_sgd *sgd,
                                 size_t n_samples, size_t elem_size, size_t n_threads);

/* ---- Forward pass ------------------------------------------------------- */

/* A = sigmoid(X W^T + b).  One row (m = 1) is read straight from W, so a
 * W starting on a 64-byte boundary (as csae's Python models keep theirs)
 * reads no row across an extra cache line: 8.8 -> 7.3-7.8 us for 784 -> 196
 * in float32 on a Zen 4 core.  Any alignment gives the same result. */
csae_status csae_encode_f64(const csae_model *model, const double *W, const double *b,
                            const double *X, size_t m, double *A,
                            const csae_workspace *ws);
csae_status csae_encode_f32(const csae_model *model, const float *W, const float *b,
                            const float *X, size_t m, float *A,
                            const csae_workspace *ws);

/* Y = g(A Wd^T + bd), g the model's decoder. */
csae_status csae_decode_f64(const csae_model *model, const double *Wd, const double *bd,
                            const double *A, size_t m, double *Y,
                            const csae_workspace *ws);
csae_status csae_decode_f32(const csae_model *model, const float *Wd, const float *bd,
                            const float *A, size_t m, float *Y,
                            const csae_workspace *ws);

/* Y = decode(encode(X)). */
csae_status csae_reconstruct_f64(const csae_model *model, csae_params_f64 params,
                                 const double *X, size_t m, double *Y,
                                 const csae_workspace *ws);
csae_status csae_reconstruct_f32(const csae_model *model, csae_params_f32 params,
                                 const float *X, size_t m, float *Y,
                                 const csae_workspace *ws);

/* ---- Objective and gradients -------------------------------------------- */

/* Objective L on the batch X (m rows; rho_hat is the batch mean) into *loss.
 * If grads has non-NULL pointers, also dL/dW, dL/db, dL/dWd, dL/dbd (all four
 * or none).  rho_hat (h values) is written when rho_hat is not NULL. */
csae_status csae_objective_f64(const csae_model *model, csae_params_f64 params,
                               const double *X, size_t m, double *loss,
                               csae_params_f64 grads, double *rho_hat,
                               const csae_workspace *ws);
csae_status csae_objective_f32(const csae_model *model, csae_params_f32 params,
                               const float *X, size_t m, double *loss,
                               csae_params_f32 grads, float *rho_hat,
                               const csae_workspace *ws);

/* ---- Stochastic gradient descent ---------------------------------------- */

/* One SGD update on the minibatch X (m rows), in place:
 *   momentum 0:  theta -= lr * g
 *   momentum mu: v = mu * v - lr * g; theta += v   (velocity must be given)
 * *loss receives the objective on X before the update.  If the objective or
 * any gradient entry is not finite the parameters are left untouched and
 * CSAE_ERR_NONFINITE is returned.  (csae_train_step without a solver,
 * with a state holding only the velocity.) */
csae_status csae_sgd_step_f64(const csae_model *model, const csae_sgd *sgd,
                              csae_params_f64 params, csae_params_f64 velocity,
                              const double *X, size_t m, double *loss,
                              const csae_workspace *ws);
csae_status csae_sgd_step_f32(const csae_model *model, const csae_sgd *sgd,
                              csae_params_f32 params, csae_params_f32 velocity,
                              const float *X, size_t m, double *loss,
                              const csae_workspace *ws);

/* What training carries from one step (and epoch) to the next besides the
 * parameters: caller-owned arrays, updated in place, and two counters.
 * Only the members that sgd and solver use need to be set (the others may
 * be NULL / 0): velocity for SGD with momentum > 0, adam_m and adam_v
 * (shaped like the parameters) with adam, rho_running (h values) with
 * sparsity_smoothing > 0.  A step that returns CSAE_ERR_NONFINITE changes
 * none of them; every applied step adds 1 to adam_t (with adam) and to
 * running_batches (with the running estimate).  Start from zeroed moments,
 * adam_t = 0 and running_batches = 0 (rho_running is then overwritten by
 * the first minibatch's rho_hat, whatever it held). */
typedef struct {
    csae_params_f64 velocity;   /* SGD with momentum: the velocities */
    csae_params_f64 adam_m;     /* Adam: first moments */
    csae_params_f64 adam_v;     /* Adam: second moments */
    uint64_t adam_t;            /* Adam steps taken so far */
    double *rho_running;        /* running estimate q (h values) */
    uint64_t running_batches;   /* minibatches q has seen */
} csae_train_state_f64;
typedef struct {
    csae_params_f32 velocity;
    csae_params_f32 adam_m;
    csae_params_f32 adam_v;
    uint64_t adam_t;
    float *rho_running;
    uint64_t running_batches;
} csae_train_state_f32;

/* One training step (SGD, momentum or Adam; with or without the running
 * sparsity estimate, as solver says) on the minibatch X (m rows), in place.
 * *loss receives the objective on X before the update (with X's own
 * rho_hat).  If the objective, a gradient entry or any new value is not
 * finite, nothing is written (parameters, state and counters keep their
 * values) and CSAE_ERR_NONFINITE is returned.  Workspace: as for
 * csae_sgd_step. */
csae_status csae_train_step_f64(const csae_model *model, const csae_sgd *sgd,
                                const csae_solver *solver, csae_params_f64 params, csae_train_state_f64 *state,
                                const double *X, size_t m, double *loss,
                                const csae_workspace *ws);
csae_status csae_train_step_f32(const csae_model *model, const csae_sgd *sgd,
                                const csae_solver *solver, csae_params_f32 params, csae_train_state_f32 *state,
                                const float *X, size_t m, double *loss,
                                const csae_workspace *ws);

/* ---- One optimizer step on a flat vector --------------------------------
 * The update of csae_train_step_* (SGD, momentum or Adam: the same arithmetic,
 * element by element) applied to the n parameters theta given their
 * gradient grad, for an optimizer of another model than the autoencoder
 * (the deep networks' minibatch fine-tuning): grad must already hold every
 * penalty (nothing is added to it).  sgd gives learning_rate and momentum
 * (its batch_size and shuffle are checked, not used); solver (NULL: SGD)
 * adam, beta_1, beta_2 and epsilon, and its sparsity_smoothing must be 0.
 * The state's arrays have n elements: velocity with momentum > 0 (not
 * adam), adam_m and adam_v with adam (start them at zero, adam_t at 0);
 * the others may be NULL.  If any new value is not finite nothing is
 * written and CSAE_ERR_NONFINITE is returned; otherwise theta and the state
 * are updated in place and adam_t advances by 1 (with adam).  No sum is
 * taken, so the result is bit-identical for any n_threads (0 counts as 1)
 * and on every kernel path; no workspace, nothing allocated. */
typedef struct {
    double *velocity;           /* SGD with momentum */
    double *adam_m, *adam_v;    /* Adam's moments */
    uint64_t adam_t;            /* Adam steps taken so far */
} csae_flat_state_f64;
typedef struct {
    float *velocity;
    float *adam_m, *adam_v;
    uint64_t adam_t;
} csae_flat_state_f32;
csae_status csae_flat_step_f64(const csae_sgd *sgd, const csae_solver *solver, double *theta,
                               const double *grad, size_t n, csae_flat_state_f64 *state,
                               size_t n_threads);
csae_status csae_flat_step_f32(const csae_sgd *sgd, const csae_solver *solver, float *theta,
                               const float *grad, size_t n, csae_flat_state_f32 *state,
                               size_t n_threads);

/* Called between minibatches of an epoch (at most every `check_every`
 * minibatches); returning nonzero ends the epoch with CSAE_ERR_STOPPED. */
typedef int (*csae_stop_fn)(void *context);

typedef struct {
    double loss;            /* mean minibatch objective (before each update),
                               weighted by minibatch rows, over the minibatches done */
    size_t batches_done;    /* whole minibatches applied */
    size_t rows_done;       /* rows in those minibatches */
} csae_epoch_result;

/* One epoch of minibatch SGD over X (n_samples rows), in place.  Rows are
 * taken in order, or, when sgd->shuffle, in the order of
 * csae_rng_permutation(rng_state, n_samples) (which advances *rng_state).
 * stop may be NULL.  (csae_train_epoch without a solver, with a state
 * holding only the velocity.) */
csae_status csae_sgd_epoch_f64(const csae_model *model, const csae_sgd *sgd,
                               csae_params_f64 params, csae_params_f64 velocity,
                               const double *X, size_t n_samples, uint64_t *rng_state,
                               csae_stop_fn stop, void *stop_context, size_t check_every,
                               csae_epoch_result *result,
                               const csae_workspace *ws);
csae_status csae_sgd_epoch_f32(const csae_model *model, const csae_sgd *sgd,
                               csae_params_f32 params, csae_params_f32 velocity,
                               const float *X, size_t n_samples, uint64_t *rng_state,
                               csae_stop_fn stop, void *stop_context, size_t check_every,
                               csae_epoch_result *result,
                               const csae_workspace *ws);

/* One epoch of training (csae_train_step per minibatch, rows taken as in
 * csae_sgd_epoch), in place.  On CSAE_ERR_NONFINITE or CSAE_ERR_STOPPED the
 * minibatches before (result->batches_done of them) stay applied, and the
 * state's counters have advanced by that many.  Workspace: as for
 * csae_sgd_epoch. */
csae_status csae_train_epoch_f64(const csae_model *model, const csae_sgd *sgd,
                                 const csae_solver *solver, csae_params_f64 params, csae_train_state_f64 *state,
                                 const double *X, size_t n_samples, uint64_t *rng_state,
                                 csae_stop_fn stop, void *stop_context, size_t check_every,
                                 csae_epoch_result *result, const csae_workspace *ws);
csae_status csae_train_epoch_f32(const csae_model *model, const csae_sgd *sgd,
                                 const csae_solver *solver, csae_params_f32 params, csae_train_state_f32 *state,
                                 const float *X, size_t n_samples, uint64_t *rng_state,
                                 csae_stop_fn stop, void *stop_context, size_t check_every,
                                 csae_epoch_result *result, const csae_workspace *ws);

/* ---- Block-wise full-batch objective ------------------------------------
 *
 * For a data set too big for one call (chunked or distributed), split into
 * row blocks B_1..B_k (n_total rows in all):
 *   1. rho_hat = (sum over blocks of csae_activation_sums) / n_total;
 *   2. per block, csae_objective_part with that rho_hat;
 *   3. L = sum of parts + lambda (||W||^2 + ||Wd||^2)
 *          + beta sum_j KL(rho || rho_hat_j)   (rho_hat clipped as usual),
 *      gradient = sum of part gradients + 2 lambda (W, 0, Wd, 0).
 * That equals csae_objective on the whole data set up to the order of the
 * sums (docs/math.md, "Block-wise evaluation"). */

/* sums[j] = sum over the m rows of A = sigmoid(X W^T + b) of A[i, j]: A in
 * the element type, the sums in double in row order.  m may be 0 (sums are
 * then 0).  Workspace: csae_forward_workspace_size for m rows (the train
 * size, which is larger, also does). */
csae_status csae_activation_sums_f64(const csae_model *model, const double *W,
                                     const double *b, const double *X, size_t m,
                                     double *sums, const csae_workspace *ws);
csae_status csae_activation_sums_f32(const csae_model *model, const float *W,
                                     const float *b, const float *X, size_t m,
                                     double *sums, const csae_workspace *ws);

/* The contribution of the m rows X (a block of a data set of n_total >= m
 * rows, n_total >= 1, whose mean activation is rho_hat: h doubles) to the
 * full-batch objective and gradient, without the weight decay and KL terms
 * (the model's weight_decay is not used):
 *   *part = sum_rows ||y - x||^2 / n_total
 *   D3 = (2 / n_total) (Y - X) g'(Z2)
 *   s_j = beta (-rho / q_j + (1 - rho) / (1 - q_j)) computed in double and
 *         converted to the element type, q = rho_hat clipped (in double) to
 *         [eps, 1 - eps] with the element type's eps
 *   D2 = (D3 Wd + s / n_total) A (1 - A)
 *   dWd = D3^T A,  dbd = colsum D3,  dW = D2^T X,  db = colsum D2
 * grads: all four pointers, or all NULL for the part only.  m may be 0
 * (part and gradients are then 0).  A NaN in rho_hat gives
 * CSAE_ERR_ARGUMENT.  Workspace: csae_train_workspace_size for m rows. */
csae_status csae_objective_part_f64(const csae_model *model, csae_params_f64 params,
                                    const double *X, size_t m, const double *rho_hat,
                                    size_t n_total, double *part, csae_params_f64 grads,
                                    const csae_workspace *ws);
csae_status csae_objective_part_f32(const csae_model *model, csae_params_f32 params,
                                    const float *X, size_t m, const double *rho_hat,
                                    size_t n_total, double *part, csae_params_f32 grads,
                                    const csae_workspace *ws);

/* ---- L-BFGS (lbfgs.c) ---------------------------------------------------
 *
 * Full-batch minimisation by limited-memory BFGS with a Moré-Thuente line
 * search (strong Wolfe conditions), the algorithm of SciPy's L-BFGS-B
 * without bounds; docs/training.md gives its constants.  Driven by reverse
 * communication, so any objective works (csae_objective_*, a block-wise sum,
 * the caller's own function) and the caller may stop between any two
 * evaluations:
 *
 *     csae_lbfgs s;  csae_lbfgs_options o = csae_lbfgs_default_options();
 *     csae_lbfgs_init(&s, n, &o, work, csae_lbfgs_workspace_size(n, &o));
 *     (x holds the starting point)
 *     for (;;) {
 *         task = csae_lbfgs_step(&s, x, &f, g);
 *         if (task == CSAE_LBFGS_EVALUATE)      f = objective and g = gradient at x;
 *         else if (task == CSAE_LBFGS_ITERATE)  x, f, g are the new iterate (stop here if
 *                                                you like: it is the best point so far);
 *         else break;                           x, f, g are the last iterate
 *     }
 *
 * Iterates only ever lower the objective.  Every reduction runs in one
 * fixed order on the calling thread, so the sequence of points asked for
 * is the same on every CPU for the same objective values (bit for bit).
 * x, f and g belong to the caller and must be passed unchanged between
 * calls except where the task asks for an evaluation. */

typedef enum {
    CSAE_LBFGS_EVALUATE = 0,    /* put the objective at x in *f, its gradient in g */
    CSAE_LBFGS_ITERATE = 1,     /* (x, *f, g) is a new iterate */
    /* Final (the same task again on every later call; x, *f, g hold the
     * last iterate, or the starting point): */
    CSAE_LBFGS_CONVERGED = 2,   /* relative reduction (f_prev - f) / max(|f_prev|, |f|, 1)
                                   at most ftol, or every |g_i| at most gtol */
    CSAE_LBFGS_MAX_ITER = 3,    /* max_iter iterations done */
    CSAE_LBFGS_MAX_EVAL = 4,    /* max_eval evaluations reached (checked after an iteration) */
    CSAE_LBFGS_LINE_SEARCH_FAILED = 5, /* no step lowers the objective, even along
                                   steepest descent with the memory cleared */
    CSAE_LBFGS_NONFINITE = 6,   /* the objective or gradient at the start is not finite */
    CSAE_LBFGS_ERROR = 7        /* a NULL argument */
} csae_lbfgs_task;

typedef struct {
    size_t history;    /* pairs (s, y) kept, >= 1 (default 10, SciPy's maxcor) */
    size_t max_iter;   /* >= 1 (default 15000) */
    size_t max_eval;   /* >= 1 (default 15000) */
    double ftol;       /* >= 0: relative-reduction test (default 1e7 * DBL_EPSILON,
                          SciPy's factr 1e7); 0 turns it off */
    double gtol;       /* >= 0: largest gradient component (default 0: off) */
    size_t n_threads;  /* >= 1: threads for the optimizer's vector work (default 1);
                          the results do not depend on it */
    int float32_storage; /* nonzero: store the pairs (s, y) and the search
                          direction in float32 (default 0): half the workspace and
                          of the memory an iteration reads, for an objective
                          computed in float32 (the engine's on a float32 model),
                          whose gradients carry float32 rounding anyway.  x, g and
                          every product and sum stay double. */
} csae_lbfgs_options;

csae_lbfgs_options csae_lbfgs_default_options(void);

/* The state of one run: caller-owned, filled by csae_lbfgs_init; the fields
 * after the counters are private. */
typedef struct {
    size_t iterations;  /* accepted iterates so far */
    size_t evaluations; /* objective evaluations so far */
    size_t restarts;    /* times the memory was cleared after a failed search */
    size_t skipped;     /* pairs not stored (s'y too small) */
    /* private */
    size_t n, pairs, newest, ls_evals;
    csae_lbfgs_options options;
    void *S, *Y, *d; /* double, or float with options.float32_storage */
    double *x0, *g0, *rho, *alpha, *part;
    double f0, gd0, gamma, step; /* f0, gd0: where the current search began */
    int stage, ls_brackt, ls_stage;
    csae_lbfgs_task result;
    double ls_gtest, ls_width, ls_width1, ls_stx, ls_fx, ls_gx, ls_sty, ls_fy, ls_gy,
        ls_stmin, ls_stmax, ls_bad;
} csae_lbfgs;

/* Doubles of workspace for n parameters with these options (a little over
 * (2 * history + 3) * n, or (history + 2.5) * n with float32_storage); 0 if
 * options is NULL, n or options->history is 0 or the size overflows. */
size_t csae_lbfgs_workspace_size(size_t n, const csae_lbfgs_options *options);

/* Start a run over n parameters.  CSAE_ERR_ARGUMENT for a NULL pointer,
 * n = 0 or an option out of range; CSAE_ERR_WORKSPACE if work_len (in
 * doubles) is below csae_lbfgs_workspace_size.  The workspace must stay
 * untouched until the run ends. */
csae_status csae_lbfgs_init(csae_lbfgs *state, size_t n, const csae_lbfgs_options *options,
                            double *work, size_t work_len);

/* The next step of the run; see the task codes above. */
csae_lbfgs_task csae_lbfgs_step(csae_lbfgs *state, double *x, double *f, double *g);

/* ---- Deep networks (deep.c) ---------------------------------------------
 *
 * A classifier made of L >= 0 sigmoid layers and a softmax output layer
 * (UFLDL's stackedAECost; docs/deep.md has the derivation, and
 * csae/reference.py's deep_* functions the same steps in NumPy):
 *
 *   A_0 = X,  A_l = sigmoid(A_{l-1} W_l^T + b_l)   (l = 1..L)
 *   P = softmax(A_L W_o^T + b_o), row by row
 *   J = -(1/m) sum_i log P[i, y_i] + (lambda/2) (sum_l ||W_l||^2 + ||W_o||^2)
 *
 * Every weight matrix, the softmax layer's included, is decayed with the
 * one lambda; no bias is.  The softmax subtracts each row's maximum before
 * exp, so no logit overflows.  A NaN or infinity in a row of X gives NaN
 * for that row's probabilities, one in theta NaN for all of them; either
 * makes the objective and every gradient entry NaN.
 *
 * The parameters are one flat vector theta (the layout an optimizer such as
 * csae_lbfgs works on), the gradient another of the same layout: for each
 * layer l = 1..L and then the softmax layer, its weights W_l (h_l x h_{l-1},
 * row-major) followed by its bias b_l (h_l).
 *
 * Products run on the active kernel path's GEMM, so results are
 * bit-identical for every n_threads and between the avx2 and avx512 paths;
 * the other steps are the same code on every path.  Labels are class
 * indices 0..k-1 (int64_t).  The functions refuse (CSAE_ERR_ARGUMENT) a
 * NULL pointer, an invalid net, sizes whose byte counts overflow, an output
 * (P, grad, loss) that overlaps an input or the workspace, and a workspace
 * that overlaps an input. */

typedef struct {
    size_t n_hidden_layers;  /* L >= 0 */
    const size_t *sizes;     /* L + 2 entries, each >= 1: n_features (h_0),
                                h_1..h_L, n_classes (k) */
} csae_deep_net;

/* Elements of theta (and of the gradient); 0 for an invalid net or a count
 * whose bytes (as float64) would overflow. */
size_t csae_deep_n_params(const csae_deep_net *net);

/* Bytes of workspace for csae_deep_forward_* / csae_deep_objective_* on up
 * to `rows` rows (SIZE_MAX for an invalid net or a size that overflows). */
size_t csae_deep_forward_workspace_size(const csae_deep_net *net, size_t rows,
                                        size_t elem_size, size_t n_threads);
size_t csae_deep_objective_workspace_size(const csae_deep_net *net, size_t rows,
                                          size_t elem_size, size_t n_threads);

/* P (m x k) = the class probabilities of the m rows of X (m x n). */
csae_status csae_deep_forward_f64(const csae_deep_net *net, const double *theta,
                                  const double *X, size_t m, double *P,
                                  const csae_workspace *ws);
csae_status csae_deep_forward_f32(const csae_deep_net *net, const float *theta,
                                  const float *X, size_t m, float *P,
                                  const csae_workspace *ws);

/* H (m x h_L) = A_L, the top hidden layer's activations of the m rows of X:
 * the network without its softmax layer (a stack of autoencoders'
 * encoders, or a classifier's learned features).  Needs L >= 1.  Reads only
 * the hidden layers' part of theta (its first elements), so the softmax
 * layer's size k = sizes[L + 1] must be >= 1 but its weights may be absent.
 * Workspace: csae_deep_forward_workspace_size.  The same products, in the
 * same order, as the first L layers of csae_deep_forward_*, and the same
 * rule for non-finite inputs (NaN rows). */
csae_status csae_deep_encode_f64(const csae_deep_net *net, const double *theta,
                                 const double *X, size_t m, double *H,
                                 const csae_workspace *ws);
csae_status csae_deep_encode_f32(const csae_deep_net *net, const float *theta,
                                 const float *X, size_t m, float *H,
                                 const csae_workspace *ws);

/* *loss = J over the m >= 1 rows of X with labels y (m entries), and, when
 * grad is not NULL, dJ/dtheta into grad.  weight_decay (lambda) >= 0 and
 * finite.  CSAE_ERR_LABEL, before anything is written, if a label is
 * negative or not below k. */
csae_status csae_deep_objective_f64(const csae_deep_net *net, const double *theta,
                                    const double *X, const int64_t *y, size_t m,
                                    double weight_decay, double *loss, double *grad,
                                    const csae_workspace *ws);
csae_status csae_deep_objective_f32(const csae_deep_net *net, const float *theta,
                                    const float *X, const int64_t *y, size_t m,
                                    double weight_decay, double *loss, float *grad,
                                    const csae_workspace *ws);

/* ---- Kernel paths ------------------------------------------------------- */

typedef enum {
    CSAE_PATH_AUTO = 0,     /* the best the CPU supports (the default) */
    CSAE_PATH_PORTABLE = 1, /* plain C, any CPU */
    CSAE_PATH_AVX2 = 2,     /* AVX2 + FMA */
    CSAE_PATH_AVX512 = 3    /* AVX-512 (F) */
} csae_kernel_path;

/* Choose the kernels used by later calls.  CSAE_ERR_ARGUMENT if the CPU
 * lacks the path.  At start-up the path is AUTO, or the one named by the
 * environment variable CSAE_KERNEL_PATH (a csae_kernel_path_name: portable,
 * avx2, avx512, neon) when the CPU has it.  The vector paths (avx2, avx512
 * on x86-64, neon on aarch64) give bit-identical results for the same
 * inputs, at any thread count; portable may differ in the last bits (it
 * rounds a * b + c twice and uses the C library's exp). */
csae_status csae_set_kernel_path(csae_kernel_path path);
/* The path in use now (never AUTO: AUTO is resolved). */
csae_kernel_path csae_get_kernel_path(void);
/* Nonzero if this CPU (and this build) can run the path. */
int csae_kernel_path_supported(csae_kernel_path path);
/* The kernel paths this build has (whether or not this CPU runs them),
 * portable first, the best last: how many, and the id of the i-th
 * (CSAE_PATH_AUTO when i >= the count).  Paths added after AVX-512 (neon,
 * on aarch64) have no enumerator above: their ids come from here, and stay
 * the same in every release. */
size_t csae_kernel_path_count(void);
csae_kernel_path csae_kernel_path_at(size_t i);
/* The path's name ("auto" for CSAE_PATH_AUTO), a static string, or NULL
 * for an id this build does not have. */
const char *csae_kernel_path_name(csae_kernel_path path);

/* ---- Model files written by Python (model_file.c) ----------------------
 *
 * Read a model saved by SparseAutoencoder.save (an .npz archive, format
 * "csae.SparseAutoencoder" versions 1 to 4: see csae/_persist.py; version 4
 * adds stop_reason, which these functions check and do not return) into caller-owned
 * memory.  Python's csae.load reads through the same code, so both accept
 * the same files, whatever they hold: the zip structure (stored members
 * only, CRC-32 of every member, no archive comment, a zip64 end record
 * only right before its locator, local headers agreeing with the
 * directory, members apart, at most 64 entries), the format name and
 * version, the set of fields,
 * every .npy header (version, dtype, shape, size), the hyperparameter record,
 * the shapes and dtype of the weights and finiteness of every stored float.
 * Any fault gives a status code; no size computation can overflow and no
 * read goes past the file.  The functions read with open/pread into a small
 * buffer on the stack: csae allocates nothing (libc's strtod and localeconv
 * are called on short numbers of the hyperparameter record).
 *
 * Each call opens, validates and closes the file again: a file that changes
 * between two calls is checked afresh.  A read validates the whole file
 * before writing anything into params; only a file that changes during
 * the call can leave params partly written (with a status code), and never
 * more than the sizes *model gives: every copy is checked against *model,
 * not against what the file says.
 *
 * Every function returns CSAE_ERR_ARGUMENT for a NULL pointer argument,
 * CSAE_ERR_NOT_FOUND, CSAE_ERR_NOT_A_FILE or CSAE_ERR_FILE when the path
 * cannot be read, CSAE_ERR_FORMAT or CSAE_ERR_UNSUPPORTED for a file that is
 * not a usable model, and CSAE_OK on success. */

/* The model's shape, decoder and objective into *model, and its element
 * size (8 for float64, 4 for float32) into *elem_size; both are written
 * only on success. */
csae_status csae_model_file_info(const char *path, csae_model *model, size_t *elem_size);

/* The weights into caller-allocated arrays of the sizes that info reported
 * (W: h*n, b: h, Wd: n*h, bd: n elements).  *model must be the one info
 * filled in for this file (else CSAE_ERR_MISMATCH); the function's element
 * type must be the file's (else CSAE_ERR_DTYPE). */
csae_status csae_model_file_read_f64(const char *path, const csae_model *model,
                                     csae_params_f64 params);
csae_status csae_model_file_read_f32(const char *path, const csae_model *model,
                                     csae_params_f32 params);

/* Input scaling (the estimator's scale_inputs=True): *scale_inputs is set to
 * 1 if the model scales its inputs, else 0.  When it does and data_min and
 * data_scale are not NULL, they receive the learned range (n doubles each):
 * transform encodes (x - data_min) / data_scale, computed in double and
 * then converted to the model's element type.  data_min and data_scale are
 * both NULL (ask only) or both given.  A scale_inputs model saved without a
 * range (it cannot transform in Python either) gives CSAE_ERR_UNSUPPORTED. */
csae_status csae_model_file_input_range(const char *path, const csae_model *model,
                                        int *scale_inputs, double *data_min,
                                        double *data_scale);

/* ---- Deep models' files written by Python (model_file.c) ---------------
 *
 * Read a stacked encoder (StackedEncoder.save, format "csae.StackedEncoder")
 * or a classifier (SparseAutoencoderClassifier.save, format
 * "csae.SparseAutoencoderClassifier"), version 1 (see
 * csae/_deep_persist.py), into the layout csae_deep_encode_* and
 * csae_deep_forward_* take: a csae_deep_net and a flat theta.  The same
 * rules as the model files above (the zip structure, every .npy header,
 * shapes, finiteness of every float, no allocation, pread into a stack
 * buffer, Python's load reading through the same code); besides, every
 * layer's shape must follow the file's sizes (each weight matrix h_l x
 * h_{l-1}), every byte count fit in size_t, the classifier have at least
 * two classes.  The class labels are Python's (strings or numbers): C
 * checks their array, never returns it; column j of csae_deep_forward_*'s
 * P is the j-th label in sorted order (classes_[j] in Python).  A
 * SparseAutoencoder's file given to these functions, or a deep model's to
 * csae_model_file_*, is refused with CSAE_ERR_FORMAT.  Status codes as
 * for csae_model_file_*. */

/* Most hidden layers a deep model file may have. */
#define CSAE_DEEP_FILE_MAX_LAYERS 16

typedef enum {
    CSAE_DEEP_FILE_ENCODER = 1,    /* a StackedEncoder: csae_deep_encode_* */
    CSAE_DEEP_FILE_CLASSIFIER = 2  /* a classifier: csae_deep_forward_* (and encode) */
} csae_deep_file_kind;

typedef struct {
    csae_deep_file_kind kind;
    size_t n_hidden_layers;  /* L, 1 to CSAE_DEEP_FILE_MAX_LAYERS */
    /* n_features, h_1..h_L, then the number of classes k >= 2 (classifier)
     * or 1 (an encoder, which has no softmax layer: csae_deep_encode_*
     * reads only the hidden layers) */
    size_t sizes[CSAE_DEEP_FILE_MAX_LAYERS + 2];
    size_t elem_size;        /* 8 float64, 4 float32 */
    size_t n_params;         /* elements of theta: every layer's W_l then b_l, the
                                softmax layer's last (classifier only) */
    int has_range;           /* the model scales its inputs (see input_range) */
} csae_deep_file;

/* What the file holds into *info (written only on success).  The net for
 * the csae_deep_* functions is {info.n_hidden_layers, info.sizes}. */
csae_status csae_deep_file_info(const char *path, csae_deep_file *info);

/* theta (info->n_params elements) from the file; *info must be what
 * csae_deep_file_info gave for it (else CSAE_ERR_MISMATCH), the function's
 * element type the file's (else CSAE_ERR_DTYPE). */
csae_status csae_deep_file_read_f64(const char *path, const csae_deep_file *info,
                                    double *theta);
csae_status csae_deep_file_read_f32(const char *path, const csae_deep_file *info,
                                    float *theta);

/* When info->has_range: the input range (sizes[0] doubles each); the
 * network's input is (x - data_min) / data_scale, computed in double and
 * then converted to the model's element type (Python's rule).
 * CSAE_ERR_ARGUMENT when info->has_range is 0. */
csae_status csae_deep_file_input_range(const char *path, const csae_deep_file *info,
                                       double *data_min, double *data_scale);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* CSAE_H */
