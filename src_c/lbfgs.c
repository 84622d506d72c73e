/*
 * lbfgs.c: limited-memory BFGS with a Moré-Thuente line search, driven by
 * reverse communication (csae.h, "L-BFGS").
 *
 * The caller owns the loop and the evaluations: csae_lbfgs_step says what it
 * wants next (an evaluation at x, or "x is a new iterate"), so the same code
 * serves the engine's threaded objective, an objective read block by block
 * from disk or from Dask, and any C program's own function, and the caller
 * can stop between any two evaluations (Ctrl-C, early stopping).
 *
 * The algorithm is L-BFGS-B's (Byrd, Lu, Nocedal and Zhu 1995; Zhu et al.
 * 1997) without bounds, which is SciPy's minimize(method="L-BFGS-B") on an
 * unconstrained problem:
 *   - the search direction is -H g by the two-loop recursion over the last
 *     `history` pairs (s, y), with H0 = (s'y / y'y) I from the newest pair;
 *     a pair with s'y <= eps * (-g'd * step) is not stored;
 *   - the first step of the first iteration (and after a restart) is
 *     1/||g||, every later one starts at 1;
 *   - the line search is Moré and Thuente's (MINPACK-2 dcsrch/dcstep) with
 *     L-BFGS-B's constants: sufficient decrease 1e-3, curvature 0.9 (strong
 *     Wolfe), interval tolerance 0.1, steps up to 1e10;
 *   - a search that has not ended after 20 evaluations, or a direction that
 *     is not downhill, restarts from steepest descent with the memory
 *     cleared; when the memory is already empty the run ends
 *     (CSAE_LBFGS_LINE_SEARCH_FAILED) at the last iterate.
 * Two departures, both about points SciPy cannot use either: a trial point
 * whose objective or gradient is not finite halves the step towards the
 * best step so far (dcstep cannot interpolate through infinity), and a
 * search that ends on a warning at a point above its start is a failed
 * search (the iterate never gets worse).
 *
 * The same bits everywhere: every dot product is a sum of partial sums
 * over fixed blocks of BLOCK elements, each block summed in one fixed order
 * and the blocks added in index order, in plain C with each product and sum
 * a separate statement (so no compiler may fuse them into FMAs).  Threads
 * (options.n_threads) take whole blocks, so the result does not depend on
 * how many there are; nor on the CPU or the kernel path.  With an objective
 * that does not either (the engine's), neither does the whole run.
 *
 * Speed: the optimizer streams its history (2 x history vectors of n) twice
 * per iteration, once in each loop, so each pass fuses an update with the
 * dot product the next step needs (d += a u, then v'd, block by block while
 * the block is in cache): the direction costs 2 x history + 1 passes over
 * memory.  The vectors around it are fused the same way: the first pass
 * also copies g to g0 and takes max |g_i|, the first trial point is placed
 * while x is copied to x0, a kept pair is written straight into its slot,
 * and a trial point's g is checked for finiteness through g'd, so no pass
 * reads a vector only to copy or check it.  On large models the history
 * does not fit in any cache and moving it and d is most of a step's time;
 * float32 storage of the pairs and d (options.float32_storage, for float32
 * objectives, as torch.optim.LBFGS keeps its own in the model's dtype)
 * halves those bytes.
 */
#include <math.h>
#include <string.h>

#include "csae.h"
#include "kernels.h"

/* Line-search constants (L-BFGS-B's lnsrlb). */
#define LS_FTOL 1e-3       /* sufficient decrease */
#define LS_GTOL 0.9        /* curvature */
#define LS_XTOL 0.1        /* relative width of the bracket */
#define LS_STPMAX 1e10     /* largest step */
#define LS_MAX_EVAL 20     /* evaluations before a search restarts */
#define EPSMCH 2.220446049250313e-16
/* Elements per partial sum (the reduction order), and the least work in
 * elements worth waking a thread for. */
#define BLOCK 4096
#define PARALLEL_MIN 65536

enum { STAGE_START, STAGE_FIRST_EVAL, STAGE_SEARCH, STAGE_ITERATE, STAGE_DONE };

/* ---- Vectors, in a fixed order ----------------------------------------- */

/* Four interleaved partial sums, combined as (0 + 1) + (2 + 3), then the
 * remainder in order: the sum over one block.  Each operand double or float
 * (a float history's values are widened exactly, so every product and sum
 * is a double operation in the same order either way). */
#define DEFINE_DOT(NAME, TA, TB)                                               \
    static double NAME(const TA *a, const TB *b, size_t n)                     \
    {                                                                          \
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;                         \
        size_t i = 0;                                                          \
        for (; i + 4 <= n; i += 4) {                                           \
            const double p0 = (double)a[i] * (double)b[i];                     \
            const double p1 = (double)a[i + 1] * (double)b[i + 1];             \
            const double p2 = (double)a[i + 2] * (double)b[i + 2];             \
            const double p3 = (double)a[i + 3] * (double)b[i + 3];             \
            s0 += p0;                                                          \
            s1 += p1;                                                          \
            s2 += p2;                                                          \
            s3 += p3;                                                          \
        }                                                                      \
        double s = (s0 + s1) + (s2 + s3);                                      \
        for (; i < n; i++) {                                                   \
            const double p = (double)a[i] * (double)b[i];                      \
            s += p;                                                            \
        }                                                                      \
        return s;                                                              \
    }
DEFINE_DOT(dot, double, double)
DEFINE_DOT(dot_df, double, float)
DEFINE_DOT(dot_ff, float, float)
#undef DEFINE_DOT

/* One fused pass over blocks: first an update, then (dot) one dot product
 * of the updated values:
 *   PASS_NEGATE  d = -g, and t = g (g0 = g), max |g_i| into part2
 *   PASS_AXPY    d = (d + a hu) * b    (b = 1 multiplies exactly)
 *   PASS_PLACE   x = t + a d           (x = x0 + step d)
 *   PASS_MOVE    t = x, then x = x + a d (x0 = x, x = x0 + step d)
 *   PASS_PAIR    hout = g - t (y = g - g0 into its slot), then hout'hout;
 *                ht = a d (s = step d into its slot)
 *   PASS_NONE    nothing written
 * hu, hv, hout and ht are pairs' vectors (pair_vector).  The dot product is
 * hv'd (DOT_HD), g'd (DOT_GD) or d'd (DOT_DD).  The pairs and d are stored
 * as double, or as float with options.float32_storage: one pass_block for
 * each width, from lbfgs_pass_template.h. */
enum { PASS_NONE, PASS_NEGATE, PASS_AXPY, PASS_PLACE, PASS_MOVE, PASS_PAIR };
enum { DOT_NONE, DOT_HD, DOT_GD, DOT_DD };

typedef struct {
    int op, dot, narrow;
    size_t n, blocks, tasks;
    double a, b;
    void *d;         /* the direction */
    double *x;       /* PLACE, MOVE */
    const double *g; /* NEGATE, PAIR, DOT_GD */
    double *t;       /* g0 (NEGATE writes it, PAIR reads it) or x0 (MOVE
                        writes it, PLACE reads it) */
    const void *hu, *hv;
    void *hout, *ht;
    double *part;  /* one partial sum per block */
    double *part2; /* PASS_NEGATE: max |g_i| per block */
} pass;

#define VEC double
#define PASS_BLOCK pass_block_f64
#define DOT_VV dot
#define DOT_GV dot
#include "lbfgs_pass_template.h"
#undef VEC
#undef PASS_BLOCK
#undef DOT_VV
#undef DOT_GV

#define VEC float
#define PASS_BLOCK pass_block_f32
#define DOT_VV dot_ff
#define DOT_GV dot_df
#include "lbfgs_pass_template.h"
#undef VEC
#undef PASS_BLOCK
#undef DOT_VV
#undef DOT_GV

static void pass_task(void *context, size_t t)
{
    const pass *p = context;
    const size_t first = t * p->blocks / p->tasks, last = (t + 1) * p->blocks / p->tasks;
    for (size_t k = first; k < last; k++) {
        if (p->narrow)
            pass_block_f32(p, k);
        else
            pass_block_f64(p, k);
    }
}

/* Run the pass p (its op, dot, scalars and operands set) on up to n_threads
 * threads; the dot product it computes (blocks added in order), or 0. */
static double run(const csae_lbfgs *s, pass p)
{
    p.narrow = s->options.float32_storage != 0;
    p.n = s->n;
    p.d = s->d;
    p.blocks = (s->n + BLOCK - 1) / BLOCK;
    p.tasks = 1;
    p.part = s->part;
    p.part2 = s->part + p.blocks;
    if (s->options.n_threads > 1 && s->n >= PARALLEL_MIN)
        p.tasks = s->options.n_threads < p.blocks ? s->options.n_threads : p.blocks;
    csae_parallel_run(p.tasks, pass_task, &p);
    if (p.dot == DOT_NONE && p.op != PASS_PAIR)
        return 0.0;
    double sum = 0.0;
    for (size_t k = 0; k < p.blocks; k++)
        sum += s->part[k];
    return sum;
}

/* Pair j's s or y (base s->S or s->Y), as a pass operand. */
static void *pair_vector(const csae_lbfgs *s, void *base, size_t j)
{
    const size_t elem = s->options.float32_storage ? sizeof(float) : sizeof(double);
    return (char *)base + j * s->n * elem;
}

static int all_finite(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static double max_abs(const double *x, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double a = fabs(x[i]);
        if (a > m)
            m = a;
    }
    return m;
}

/* ---- Moré-Thuente line search (dcsrch/dcstep) --------------------------- */

/* A safeguarded trial step from the best step (stx, fx, dx), the other end
 * of the interval (sty, fy, dy) and the last trial (stp, fp, dp); updates
 * the interval.  MINPACK-2's dcstep. */
static void ls_step(double *stx, double *fx, double *dx, double *sty, double *fy, double *dy,
                    double *stp, double fp, double dp, int *brackt, double stpmin,
                    double stpmax)
{
    const double sgnd = (dp < 0 ? -1.0 : dp > 0 ? 1.0 : 0.0)
                        * (*dx < 0 ? -1.0 : *dx > 0 ? 1.0 : 0.0);
    double stpf;
    if (fp > *fx) {
        /* Higher objective: the minimum is bracketed.  The cubic step if
         * it is nearer stx than the quadratic one, else their mean. */
        const double theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        const double s = fmax(fabs(theta), fmax(fabs(*dx), fabs(dp)));
        double gamma = s * sqrt((theta / s) * (theta / s) - (*dx / s) * (dp / s));
        if (*stp < *stx)
            gamma = -gamma;
        const double p = (gamma - *dx) + theta;
        const double q = ((gamma - *dx) + gamma) + dp;
        const double stpc = *stx + (p / q) * (*stp - *stx);
        const double stpq = *stx + ((*dx / ((*fx - fp) / (*stp - *stx) + *dx)) / 2.0)
                                       * (*stp - *stx);
        stpf = fabs(stpc - *stx) <= fabs(stpq - *stx) ? stpc : stpc + (stpq - stpc) / 2.0;
        *brackt = 1;
    } else if (sgnd < 0.0) {
        /* Lower objective, derivatives of opposite signs: bracketed.  The
         * cubic step if it is farther from stp than the secant step. */
        const double theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        const double s = fmax(fabs(theta), fmax(fabs(*dx), fabs(dp)));
        double gamma = s * sqrt((theta / s) * (theta / s) - (*dx / s) * (dp / s));
        if (*stp > *stx)
            gamma = -gamma;
        const double p = (gamma - dp) + theta;
        const double q = ((gamma - dp) + gamma) + *dx;
        const double stpc = *stp + (p / q) * (*stx - *stp);
        const double stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        stpf = fabs(stpc - *stp) > fabs(stpq - *stp) ? stpc : stpq;
        *brackt = 1;
    } else if (fabs(dp) < fabs(*dx)) {
        /* Lower objective, same signs, the derivative shrinking: the cubic
         * step only if the cubic tends to infinity in the step's direction
         * or its minimum lies beyond stp; else the secant step. */
        const double theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        const double s = fmax(fabs(theta), fmax(fabs(*dx), fabs(dp)));
        double gamma = s * sqrt(fmax(0.0, (theta / s) * (theta / s) - (*dx / s) * (dp / s)));
        if (*stp > *stx)
            gamma = -gamma;
        const double p = (gamma - dp) + theta;
        const double q = (gamma + (*dx - dp)) + gamma;
        const double r = p / q;
        double stpc;
        if (r < 0.0 && gamma != 0.0)
            stpc = *stp + r * (*stx - *stp);
        else
            stpc = *stp > *stx ? stpmax : stpmin;
        const double stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        if (*brackt) {
            stpf = fabs(stpc - *stp) < fabs(stpq - *stp) ? stpc : stpq;
            const double limit = *stp + 0.66 * (*sty - *stp);
            stpf = *stp > *stx ? fmin(limit, stpf) : fmax(limit, stpf);
        } else {
            stpf = fabs(stpc - *stp) > fabs(stpq - *stp) ? stpc : stpq;
            stpf = fmin(stpmax, fmax(stpmin, stpf));
        }
    } else {
        /* Lower objective, same signs, the derivative not shrinking: the
         * cubic step between stp and sty if bracketed, else a bound. */
        if (*brackt) {
            const double theta = 3.0 * (fp - *fy) / (*sty - *stp) + *dy + dp;
            const double s = fmax(fabs(theta), fmax(fabs(*dy), fabs(dp)));
            double gamma = s * sqrt((theta / s) * (theta / s) - (*dy / s) * (dp / s));
            if (*stp > *sty)
                gamma = -gamma;
            const double p = (gamma - dp) + theta;
            const double q = ((gamma - dp) + gamma) + *dy;
            stpf = *stp + (p / q) * (*sty - *stp);
        } else {
            stpf = *stp > *stx ? stpmax : stpmin;
        }
    }
    if (fp > *fx) {
        *sty = *stp;
        *fy = fp;
        *dy = dp;
    } else {
        if (sgnd < 0.0) {
            *sty = *stx;
            *fy = *fx;
            *dy = *dx;
        }
        *stx = *stp;
        *fx = fp;
        *dx = dp;
    }
    *stp = stpf;
}

enum { LS_EVALUATE, LS_CONVERGED, LS_WARNING };

/* Start a search from the objective s->f0 and directional derivative
 * s->gd0 < 0 at step 0 (dcsrch's finit and ginit). */
static void ls_start(csae_lbfgs *s)
{
    const double f0 = s->f0, g0 = s->gd0;
    s->ls_brackt = 0;
    s->ls_stage = 1;
    s->ls_gtest = LS_FTOL * g0;
    s->ls_width = LS_STPMAX;
    s->ls_width1 = LS_STPMAX / 0.5;
    s->ls_stx = 0.0;
    s->ls_fx = f0;
    s->ls_gx = g0;
    s->ls_sty = 0.0;
    s->ls_fy = f0;
    s->ls_gy = g0;
    s->ls_stmin = 0.0;
    s->ls_stmax = s->step + 4.0 * s->step;
    s->ls_bad = HUGE_VAL;
}

/* The objective f and derivative g at s->step: converged, a warning (no
 * further progress possible), or a new s->step to evaluate.  dcsrch. */
static int ls_next(csae_lbfgs *s, double f, double g)
{
    double stp = s->step;
    const double ftest = s->f0 + stp * s->ls_gtest;
    if (s->ls_stage == 1 && f <= ftest && g >= 0.0)
        s->ls_stage = 2;
    int warn = 0;
    if (s->ls_brackt && (stp <= s->ls_stmin || stp >= s->ls_stmax))
        warn = 1; /* rounding errors prevent progress */
    if (s->ls_brackt && s->ls_stmax - s->ls_stmin <= LS_XTOL * s->ls_stmax)
        warn = 1; /* the bracket is narrow enough */
    if (stp == LS_STPMAX && f <= ftest && g <= s->ls_gtest)
        warn = 1;
    if (stp == 0.0 && (f > ftest || g >= s->ls_gtest))
        warn = 1;
    if (f <= ftest && fabs(g) <= LS_GTOL * -s->gd0)
        return LS_CONVERGED;
    if (warn)
        return LS_WARNING;

    if (s->ls_stage == 1 && f <= s->ls_fx && f > ftest) {
        /* Lower objective but not yet a sufficient decrease: step on the
         * modified function psi(a) = f(a) - f(0) - ftol a f'(0). */
        double fm = f - stp * s->ls_gtest, gm = g - s->ls_gtest;
        double fxm = s->ls_fx - s->ls_stx * s->ls_gtest, gxm = s->ls_gx - s->ls_gtest;
        double fym = s->ls_fy - s->ls_sty * s->ls_gtest, gym = s->ls_gy - s->ls_gtest;
        ls_step(&s->ls_stx, &fxm, &gxm, &s->ls_sty, &fym, &gym, &stp, fm, gm, &s->ls_brackt,
                s->ls_stmin, s->ls_stmax);
        s->ls_fx = fxm + s->ls_stx * s->ls_gtest;
        s->ls_fy = fym + s->ls_sty * s->ls_gtest;
        s->ls_gx = gxm + s->ls_gtest;
        s->ls_gy = gym + s->ls_gtest;
    } else {
        ls_step(&s->ls_stx, &s->ls_fx, &s->ls_gx, &s->ls_sty, &s->ls_fy, &s->ls_gy, &stp, f, g,
                &s->ls_brackt, s->ls_stmin, s->ls_stmax);
    }
    if (s->ls_brackt) {
        /* Bisect when the interval has not shrunk enough in two steps. */
        if (fabs(s->ls_sty - s->ls_stx) >= 0.66 * s->ls_width1)
            stp = s->ls_stx + 0.5 * (s->ls_sty - s->ls_stx);
        s->ls_width1 = s->ls_width;
        s->ls_width = fabs(s->ls_sty - s->ls_stx);
        s->ls_stmin = fmin(s->ls_stx, s->ls_sty);
        s->ls_stmax = fmax(s->ls_stx, s->ls_sty);
    } else {
        s->ls_stmin = stp + 1.1 * (stp - s->ls_stx);
        s->ls_stmax = stp + 4.0 * (stp - s->ls_stx);
    }
    stp = fmin(LS_STPMAX, fmax(0.0, stp));
    if ((s->ls_brackt && (stp <= s->ls_stmin || stp >= s->ls_stmax))
        || (s->ls_brackt && s->ls_stmax - s->ls_stmin <= LS_XTOL * s->ls_stmax))
        stp = s->ls_stx; /* no further progress: the best step so far */
    s->step = stp;
    return LS_EVALUATE;
}

/* ---- The L-BFGS iteration ---------------------------------------------- */

/* Doubles that hold the stored vectors, S and Y (history x n each) and d
 * (n): (2 history + 1) n doubles, or as many floats rounded up to whole
 * doubles (so x0 after them stays aligned). */
static size_t stored_doubles(size_t n, const csae_lbfgs_options *options)
{
    const size_t elements = (2 * options->history + 1) * n;
    return options->float32_storage ? elements / 2 + elements % 2 : elements;
}

size_t csae_lbfgs_workspace_size(size_t n, const csae_lbfgs_options *options)
{
    /* The stored vectors, then x0 and g0 (n doubles each), then rho and
     * alpha (history each) and two partial results per block (a sum and a
     * maximum): at most (2 history + 5) n + 2 history doubles, which must
     * not overflow (for either width); 0 if it would. */
    const size_t most = SIZE_MAX / sizeof(double);
    if (!options || n == 0 || options->history == 0 || options->history > (most - 5) / 4)
        return 0;
    const size_t m = options->history;
    if (n > (most - 2 * m) / (2 * m + 5))
        return 0;
    return stored_doubles(n, options) + 2 * n + 2 * m + 2 * ((n + BLOCK - 1) / BLOCK);
}

csae_lbfgs_options csae_lbfgs_default_options(void)
{
    const csae_lbfgs_options o = {10, 15000, 15000, 1e7 * EPSMCH, 0.0, 1, 0};
    return o;
}

csae_status csae_lbfgs_init(csae_lbfgs *s, size_t n, const csae_lbfgs_options *options,
                            double *work, size_t work_len)
{
    if (!s || !options || !work || n == 0 || options->history == 0 || options->max_iter == 0
        || options->max_eval == 0 || !(options->ftol >= 0.0) || !(options->gtol >= 0.0)
        || options->n_threads == 0)
        return CSAE_ERR_ARGUMENT;
    const size_t need = csae_lbfgs_workspace_size(n, options);
    if (need == 0)
        return CSAE_ERR_ARGUMENT;
    if (work_len < need)
        return CSAE_ERR_WORKSPACE;
    memset(s, 0, sizeof *s);
    s->n = n;
    s->options = *options;
    s->S = work;
    s->Y = pair_vector(s, s->S, options->history);
    s->d = pair_vector(s, s->Y, options->history);
    s->x0 = work + stored_doubles(n, options);
    s->g0 = s->x0 + n;
    s->rho = s->g0 + n;
    s->alpha = s->rho + options->history;
    s->part = s->alpha + options->history;
    s->stage = STAGE_START;
    s->result = CSAE_LBFGS_EVALUATE;
    return CSAE_OK;
}

/* max |g_i| over the blocks of the last PASS_NEGATE (a maximum: the same
 * in any order). */
static double negate_max(const csae_lbfgs *s)
{
    const size_t blocks = (s->n + BLOCK - 1) / BLOCK;
    double big = 0.0;
    for (size_t k = 0; k < blocks; k++)
        big = fmax(big, s->part[blocks + k]);
    return big;
}

/* d = -H g by the two-loop recursion over the stored pairs; returns g'd.
 * Each pass updates d and computes the dot product the next step needs;
 * the first one also copies g to g0 (the search starts there) and takes
 * max |g_i| (negate_max). */
static double direction(csae_lbfgs *s, const double *g)
{
    const size_t m = s->options.history, pairs = s->pairs;
#define PAIR(k) ((s->newest + m - (k)) % m) /* k = 0: newest */
    if (pairs == 0)
        return run(s, (pass){.op = PASS_NEGATE, .dot = DOT_GD, .g = g, .t = s->g0});
    /* Newest first: alpha_j = rho_j s_j'd, d -= alpha_j y_j; the last
     * update also scales d by gamma (H0 = gamma I). */
    double sd = run(s, (pass){.op = PASS_NEGATE, .dot = DOT_HD, .g = g, .t = s->g0,
                              .hv = pair_vector(s, s->S, PAIR(0))});
    for (size_t k = 0; k < pairs; k++) {
        const size_t j = PAIR(k);
        const double a = s->rho[j] * sd;
        s->alpha[j] = a;
        const void *y = pair_vector(s, s->Y, j);
        if (k + 1 < pairs)
            sd = run(s, (pass){.op = PASS_AXPY, .dot = DOT_HD, .a = -a, .b = 1.0, .hu = y,
                               .hv = pair_vector(s, s->S, PAIR(k + 1))});
        else
            sd = run(s, (pass){.op = PASS_AXPY, .dot = DOT_HD, .a = -a, .b = s->gamma,
                               .hu = y, .hv = y});
    }
    /* Oldest first: b_j = rho_j y_j'd, d += (alpha_j - b_j) s_j; the last
     * pass computes g'd for the line search. */
    for (size_t k = pairs; k-- > 0;) {
        const size_t j = PAIR(k);
        const double c = s->alpha[j] - s->rho[j] * sd;
        pass p = {.op = PASS_AXPY, .dot = DOT_HD, .a = c, .b = 1.0,
                  .hu = pair_vector(s, s->S, j)};
        if (k > 0) {
            p.hv = pair_vector(s, s->Y, PAIR(k - 1));
        } else {
            p.dot = DOT_GD;
            p.g = g;
        }
        sd = run(s, p);
    }
#undef PAIR
    return sd;
}

/* x = x0 + step d */
static void place(const csae_lbfgs *s, double *x)
{
    run(s, (pass){.op = PASS_PLACE, .a = s->step, .x = x, .t = s->x0});
}

static csae_lbfgs_task finish(csae_lbfgs *s, csae_lbfgs_task result)
{
    s->stage = STAGE_DONE;
    s->result = result;
    return result;
}

/* Begin a line search from the iterate (x, f, g): the direction, then the
 * first trial point into x.  Restarts from steepest descent once if the
 * direction is not downhill.  With check_gtol, first ends the run if
 * every |g_i| <= gtol (the direction's first pass measured them). */
static csae_lbfgs_task begin_search(csae_lbfgs *s, double *x, double f, const double *g,
                                    int check_gtol)
{
    double gd = direction(s, g);
    if (check_gtol && negate_max(s) <= s->options.gtol)
        return finish(s, CSAE_LBFGS_CONVERGED);
    if (!(gd < 0.0) && s->pairs > 0) {
        s->pairs = 0;
        s->restarts++;
        gd = direction(s, g);
    }
    if (!(gd < 0.0))
        return finish(s, CSAE_LBFGS_LINE_SEARCH_FAILED);
    s->f0 = f;
    s->gd0 = gd;
    /* The first step of a run (or after a restart) is 1/||d||, as far as the
     * steepest-descent direction's length says nothing of the scale. */
    if (s->pairs == 0) {
        const double norm = sqrt(run(s, (pass){.op = PASS_NONE, .dot = DOT_DD}));
        s->step = fmin(1.0 / norm, LS_STPMAX);
    } else {
        s->step = 1.0;
    }
    s->ls_evals = 0;
    ls_start(s);
    /* x0 = x, x += step d */
    run(s, (pass){.op = PASS_MOVE, .a = s->step, .x = x, .t = s->x0});
    s->stage = STAGE_SEARCH;
    return CSAE_LBFGS_EVALUATE;
}

/* The search failed: back to the iterate it started from; restart from
 * steepest descent, or end if the memory is already empty. */
static csae_lbfgs_task search_failed(csae_lbfgs *s, double *x, double *f, double *g)
{
    const size_t n = s->n;
    memcpy(x, s->x0, n * sizeof(double));
    memcpy(g, s->g0, n * sizeof(double));
    *f = s->f0;
    if (s->pairs == 0)
        return finish(s, CSAE_LBFGS_LINE_SEARCH_FAILED);
    s->pairs = 0;
    s->restarts++;
    return begin_search(s, x, *f, g, 0);
}

/* The search accepted x: store the pair (s, y) and report the iterate. */
static csae_lbfgs_task accept(csae_lbfgs *s, const double *g, double gd)
{
    const size_t m = s->options.history;
    s->iterations++;
    /* s = step d (x - x0 exactly as the optimizer moved), y = g - g0;
     * s'y from the directional derivatives, as L-BFGS-B computes it.
     * Both go straight into the slot (the oldest pair's when the memory
     * is full), with y'y from the same pass. */
    const double sy = (gd - s->gd0) * s->step;
    if (!(sy > EPSMCH * (-s->gd0 * s->step))) {
        s->skipped++;
        s->stage = STAGE_ITERATE;
        return CSAE_LBFGS_ITERATE;
    }
    const size_t j = s->pairs == 0 ? 0 : (s->newest + 1) % m;
    const double yy = run(s, (pass){.op = PASS_PAIR, .a = s->step, .g = g, .t = s->g0,
                                    .hout = pair_vector(s, s->Y, j),
                                    .ht = pair_vector(s, s->S, j)});
    if (yy > 0.0) {
        s->rho[j] = 1.0 / sy;
        s->gamma = sy / yy;
        s->newest = j;
        if (s->pairs < m)
            s->pairs++;
    } else {
        /* y'y underflowed to 0 (every |y_i| below 1e-162): no pair, and
         * when the memory was full the oldest one, whose slot it took, is
         * gone too. */
        s->skipped++;
        if (s->pairs == m)
            s->pairs--;
    }
    s->stage = STAGE_ITERATE;
    return CSAE_LBFGS_ITERATE;
}

csae_lbfgs_task csae_lbfgs_step(csae_lbfgs *s, double *x, double *f, double *g)
{
    if (!s || !x || !f || !g)
        return CSAE_LBFGS_ERROR;
    const size_t n = s->n;
    switch (s->stage) {
    case STAGE_START:
        s->stage = STAGE_FIRST_EVAL;
        return CSAE_LBFGS_EVALUATE;

    case STAGE_FIRST_EVAL:
        s->evaluations++;
        if (!isfinite(*f) || !all_finite(g, n))
            return finish(s, CSAE_LBFGS_NONFINITE);
        if (max_abs(g, n) <= s->options.gtol)
            return finish(s, CSAE_LBFGS_CONVERGED);
        return begin_search(s, x, *f, g, 0);

    case STAGE_SEARCH: {
        s->evaluations++;
        s->ls_evals++;
        /* g'd is finite whenever g is (a NaN or infinite g_i makes its
         * term, and so the sum, NaN or infinite): the full check only when
         * it is not. */
        const double gd = run(s, (pass){.op = PASS_NONE, .dot = DOT_GD, .g = g});
        if (!isfinite(*f) || (!isfinite(gd) && !all_finite(g, n))) {
            /* dcstep cannot interpolate through infinity: halve the step
             * towards the best one and never try beyond this one again. */
            s->ls_bad = fmin(s->ls_bad, s->step);
            if (s->ls_evals >= LS_MAX_EVAL)
                return search_failed(s, x, f, g);
            s->step = s->ls_stx + 0.5 * (s->step - s->ls_stx);
            place(s, x);
            return CSAE_LBFGS_EVALUATE;
        }
        const int ls = ls_next(s, *f, gd);
        if (ls == LS_CONVERGED || (ls == LS_WARNING && *f <= s->f0))
            return accept(s, g, gd);
        if (ls == LS_WARNING || s->ls_evals >= LS_MAX_EVAL)
            return search_failed(s, x, f, g);
        if (s->step >= s->ls_bad) /* stay below a step known to overflow */
            s->step = s->ls_stx + 0.5 * (s->ls_bad - s->ls_stx);
        place(s, x);
        return CSAE_LBFGS_EVALUATE;
    }

    case STAGE_ITERATE: {
        /* The caller has seen the iterate (x, f, g); the tests of
         * L-BFGS-B, in its order, then the next search.  f0 is still the
         * objective at the previous iterate, where this search began. */
        if (s->iterations >= s->options.max_iter)
            return finish(s, CSAE_LBFGS_MAX_ITER);
        if (s->evaluations >= s->options.max_eval)
            return finish(s, CSAE_LBFGS_MAX_EVAL);
        /* The gradient test (every |g_i| <= gtol) comes with the
         * direction's first pass, in begin_search: both tests mean
         * converged, so their order does not matter. */
        const double scale = fmax(fmax(fabs(s->f0), fabs(*f)), 1.0);
        if (s->f0 - *f <= s->options.ftol * scale)
            return finish(s, CSAE_LBFGS_CONVERGED);
        return begin_search(s, x, *f, g, 1);
    }

    default:
        return s->result;
    }
}
