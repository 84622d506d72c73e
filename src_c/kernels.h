/*
 * kernels.h: the engine's internals (not public API).
 *
 * The computing core (core_template.h, with the GEMM of gemm_template.h) is
 * compiled once per kernel path: path_portable.c builds it as plain C,
 * path_avx2.c, path_avx512.c and path_neon.c build the same source for their
 * instruction set (so every loop, not only the micro-kernel, is vectorised
 * for it) with a hand-written micro-kernel and vec_math.h's exp each.  Each
 * path exports a csae_ops table; dispatch.c registers every table once
 * (name, CPU test, table), picks one from the CPU, and engine.c validates
 * arguments and calls through it.
 */
#ifndef CSAE_KERNELS_H
#define CSAE_KERNELS_H

#include <stddef.h>

#include "csae.h"

/* Every rounding is the one the source writes (rule 2 at the top of
 * gemm_template.h): no compiler may fuse a * b + c into an FMA on its own (Clang does by default where FMA is available, as
 * in the vector paths' files; GCC does not in ISO C mode).  The kernels ask
 * for FMA explicitly where they want it. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Depth of a packed GEMM panel: the same on every kernel path and for every
 * thread count (the bit-identity rules: gemm_template.h, top). */
#define CSAE_KC 256

/* The rest of a path's blocking for one element type.  MR x NR is its
 * register tile (fixed by the micro-kernel); MC, the rows of a packed A
 * block, and NC, the columns of a packed B block (both kept in L2), are
 * derived once from the caches the CPU reports (dispatch.c). */
typedef struct {
    size_t mr, nr, mc, nc;
} csae_blocking;

/* Multiply-adds below which a GEMM stays on one thread: waking a thread
 * costs microseconds, so only split work that dwarfs it. */
#define CSAE_GEMM_PARALLEL_MIN (1 << 20)

/* Minibatches of at most this many rows take the fused SGD step of
 * sample_template.h instead of the GEMM-based one (engine.c sizes the
 * workspace for it).  One: a fused step over 2 to 8 rows, measured, lost
 * to the GEMM step on 64-25 and 784-196 models, so the step is written for
 * one row only. */
#define CSAE_SAMPLE_MAX_ROWS 1

/* Force inlining where a call site's constant argument (a unit stride) must
 * reach the loop, so that it gets its own specialised copy. */
#if defined(__GNUC__)
#define CSAE_INLINE_ALWAYS static inline __attribute__((always_inline))
#else
#define CSAE_INLINE_ALWAYS static inline
#endif

/* Alignment of every workspace buffer (a cache line; AVX2 needs 32). */
#define CSAE_ALIGN 64

/* Byte offsets of the buffers inside a workspace (see engine.c). */
typedef struct {
    size_t A, Y, T, rho, s, grad, pack, order, gather;
    size_t total;
    /* Non-zero when the layout has room for the fused one-row step (a
     * training layout made for CSAE_SAMPLE_MAX_ROWS rows or fewer): only
     * then may a one-row batch take that step.  An epoch's last, shorter
     * batch uses its epoch's layout and so the GEMM step.  The value
     * CSAE_SAMPLE_CHECKPOINTED tells the step to keep no backups: its
     * caller, an epoch, keeps a checkpoint and replays from it. */
    int sample;
} csae_ws_layout;
#define CSAE_SAMPLE_CHECKPOINTED 2
/* One-row batches between an epoch's checkpoints of the parameters. */
#define CSAE_SAMPLE_CHECKPOINT_EVERY 64

/* Scratch bytes for GEMM packing with C up to n columns wide and a depth
 * (inner dimension) up to k: enough for whichever path is active
 * (dispatch.c). */
size_t csae_gemm_pack_size(size_t n, size_t k, size_t elem_size, size_t n_threads);

/* The computing core of one kernel path, for arguments engine.c has already
 * validated.  `base` is the aligned workspace, laid out as `L`. */
#define CSAE_DECLARE_OPS(SFX, REAL)                                            \
    void (*encode_##SFX)(const csae_model *model, const REAL *W, const REAL *b,  \
                         const REAL *X, size_t m, REAL *A, char *base,           \
                         const csae_ws_layout *L, size_t threads);              \
    void (*decode_##SFX)(const csae_model *model, const REAL *Wd, const REAL *bd, \
                         const REAL *A, size_t m, REAL *Y, char *base,           \
                         const csae_ws_layout *L, size_t threads);              \
    void (*objective_##SFX)(const csae_model *model, csae_params_##SFX p,        \
                            const REAL *X, size_t m, double *loss,              \
                            csae_params_##SFX grads, char *base,                \
                            const csae_ws_layout *L, size_t threads);           \
    csae_status (*train_step_##SFX)(const csae_model *model, const csae_sgd *sgd, \
                                    const csae_solver *solver,                  \
                                    csae_params_##SFX p,                        \
                                    csae_train_state_##SFX *state,              \
                                    const REAL *X, size_t m, double *loss,      \
                                    char *base, const csae_ws_layout *L,        \
                                    size_t threads);                            \
    csae_status (*flat_step_##SFX)(const csae_sgd *sgd, const csae_solver *solver, \
                                   REAL *theta, const REAL *grad, size_t n,      \
                                   csae_flat_state_##SFX *state, size_t threads); \
    void (*activation_sums_##SFX)(const csae_model *model, const REAL *W,        \
                                  const REAL *b, const REAL *X, size_t m,        \
                                  double *sums, char *base,                     \
                                  const csae_ws_layout *L, size_t threads);     \
    void (*objective_part_##SFX)(const csae_model *model, csae_params_##SFX p,   \
                                 const REAL *X, size_t m, const double *rho_hat, \
                                 size_t n_total, double *part,                  \
                                 csae_params_##SFX grads, char *base,           \
                                 const csae_ws_layout *L, size_t threads);      \
    /* The path's GEMM itself (gemm_template.h's contract): deep.c builds    \
     * its layers on it, so they share the products' guarantees. */          \
    void (*gemm_##SFX)(size_t m, size_t n, size_t k, REAL alpha, const REAL *A, \
                       size_t rsa, size_t csa, const REAL *B, size_t rsb,       \
                       size_t csb, REAL beta, REAL *C, size_t ldc, void *pack,  \
                       size_t n_threads, const REAL *bias, int sigmoid);

/* A kernel path's table: its blocking and its computing core (built by
 * path_tail.h).  Its name, public id and CPU test are its entry in
 * dispatch.c's registration table, the one list of paths. */
typedef struct {
    /* Filled in by dispatch.c before the table is first used. */
    csae_blocking *blocking_f64, *blocking_f32;
    CSAE_DECLARE_OPS(f64, double)
    CSAE_DECLARE_OPS(f32, float)
} csae_ops;

/* The architectures that have vector paths; a path's file compiles to
 * nothing elsewhere, so every build compiles every .c file of src_c.  __GNUC__:
 * GCC, Clang and MinGW (the target attributes and intrinsics they share). */
#if defined(__x86_64__) && defined(__GNUC__)
#define CSAE_ARCH_X86_64 1
#endif
#if defined(__aarch64__) && defined(__GNUC__)
#define CSAE_ARCH_AARCH64 1
#endif

/* The table chosen at start-up or by csae_set_kernel_path. */
const csae_ops *csae_ops_active(void);

/* ---- Arrays a call is given (spans.c) ------------------------------------
 * One array of a public call: `bytes` from p (SIZE_MAX when the size
 * product overflowed), and whether the call writes it.  csae_spans_ok is 1
 * when every size is that of an object that can exist (at most
 * PTRDIFF_MAX bytes) and no written array overlaps any other array of the
 * call (arrays only read may overlap each other); NULL or empty arrays are
 * skipped.  csae_mul_size is a * b and csae_add_size a + b, or SIZE_MAX
 * when that overflows (SIZE_MAX then carries through every later size, and
 * the callers refuse it). */
typedef struct {
    const void *p;
    size_t bytes;
    int written;
} csae_span;
int csae_spans_ok(const csae_span *spans, size_t count);
size_t csae_mul_size(size_t a, size_t b);
size_t csae_add_size(size_t a, size_t b);
/* The workspace's data aligned up to CSAE_ALIGN, or NULL when the
 * workspace is missing or smaller than `total` bytes (a layout's size,
 * which includes the alignment slack). */
char *csae_ws_aligned(const csae_workspace *ws, size_t total);

/* ---- Thread pool (threads.c) --------------------------------------------
 * Runs task(context, i) for i in [0, n_tasks) on up to n_tasks threads (the
 * caller's thread takes task 0, workers 1..n_tasks-1 the others; no other
 * worker is woken) and returns when all are done.  Falls back to running
 * the tasks one after another on the caller's thread when the pool is busy
 * with another caller or cannot start threads. */
void csae_parallel_run(size_t n_tasks, void (*task)(void *context, size_t i),
                       void *context);

/* Test hook (not public API): workers started so far, workers the last
 * parallel job waited on, and jobs run by all workers since they started.
 * Any pointer may be NULL. */
void csae_pool_stats(size_t *workers, size_t *last_job, unsigned long *worker_runs);

#endif /* CSAE_KERNELS_H */
