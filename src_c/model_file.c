/*
 * model_file.c: reading a model saved by Python (SparseAutoencoder.save)
 * into caller-owned memory, without allocating.
 *
 * The file is an .npz archive (npz.c reads its structure: zip directory,
 * .npy headers, CRC-32 of every member); this file checks what it holds
 * against csae/_persist.py's format, as strictly as Python's loader:
 *
 *   fields   the set of names, format name and version, the hyperparameter
 *            record (JSON, checked like csae._validation does), shapes and
 *            dtypes of the weights, finiteness of every stored float
 *
 * A read validates the whole file in a first pass and copies the weights
 * in a second pass over the same open file.  The file may have been
 * rewritten in between (another process saving a model of another shape
 * in place), so the second pass checks everything again and, before it
 * copies anything, checks the file against the caller's model: the sizes
 * of the caller's buffers come from that model, never from the file.
 */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checked_mul.h"
#include "csae.h"
#include "model_file.h"
#include "npz.h"

/* Longest hyperparameter record accepted, in characters: csae/_persist.py's
 * _MAX_RECORD (Python writes about 400). */
#define MAX_HYPER 2048
/* Longest number or string in that record: the record itself, so that no
 * token is cut (Python reads a number of any length). */
#define MAX_NUMBER MAX_HYPER
/* Largest member that holds a string or a scalar, as csae/_persist.py
 * bounds them (_MAX_HEADER plus the data it allows: 4 * _MAX_LABEL for
 * format and csae_version, 4 * _MAX_RECORD for the record, _MAX_SCALAR for
 * the integers): a larger one is refused before it is read. */
#define MAX_NPY_HEADER 10000u
#define MAX_LABEL_MEMBER (MAX_NPY_HEADER + 4u * 64u)
#define MAX_RECORD_MEMBER (MAX_NPY_HEADER + 4u * MAX_HYPER)
#define MAX_SCALAR_MEMBER (MAX_NPY_HEADER + 16u)
/* Python's bounds on counts (csae._validation.MAX_COUNT, MAX_THREADS). */
#define MAX_COUNT UINT64_C(0x7FFFFFFFFFFFFFFF)
#define MAX_THREADS UINT64_C(0x7FFFFFFF)

static const char FORMAT_NAME[] = "csae.SparseAutoencoder";
#define FORMAT_VERSION 4

/* ---- Fields of a model file --------------------------------------------- */

enum {
    F_FORMAT, F_FORMAT_VERSION, F_CSAE_VERSION, F_HYPER, F_LOSS, F_NITER,
    F_W, F_B, F_WD, F_BD,
    F_VW, F_VB, F_VWD, F_VBD,
    F_RNG, F_DMIN, F_DSCALE,
    /* Version 3: the Adam moments and step count, the running sparsity
     * estimate (training state; checked, not returned). */
    F_AMW, F_AMB, F_AMWD, F_AMBD,
    F_AVW, F_AVB, F_AVWD, F_AVBD,
    F_ADAM_T, F_RHO_RUN, F_RUN_BATCHES,
    /* Version 4: why the last training call stopped (stop_reason_). */
    F_STOP_REASON,
    F_COUNT
};

static const char *const member_names[F_COUNT] = {
    "format.npy", "format_version.npy", "csae_version.npy", "hyperparameters.npy",
    "loss_curve.npy", "n_iter.npy",
    "encoder_weights.npy", "encoder_bias.npy", "decoder_weights.npy", "decoder_bias.npy",
    "velocity_encoder_weights.npy", "velocity_encoder_bias.npy",
    "velocity_decoder_weights.npy", "velocity_decoder_bias.npy",
    "rng_state.npy", "data_min.npy", "data_scale.npy",
    "adam_m_encoder_weights.npy", "adam_m_encoder_bias.npy",
    "adam_m_decoder_weights.npy", "adam_m_decoder_bias.npy",
    "adam_v_encoder_weights.npy", "adam_v_encoder_bias.npy",
    "adam_v_decoder_weights.npy", "adam_v_decoder_bias.npy",
    "adam_t.npy", "rho_running.npy", "running_batches.npy", "stop_reason.npy",
};

/* The values of stop_reason (csae.solvers.STOP_REASONS). */
static const char *const stop_reasons[] = {
    "converged", "max_epochs", "max_fun", "line_search", "no_improvement", "interrupted",
    "diverged",
};

/* ---- Checking a member's elements as they stream by --------------------- */

static void load_bytes(unsigned char *out, const unsigned char *p, size_t n, int swap)
{
    for (size_t i = 0; i < n; i++)
        out[i] = swap ? p[n - 1 - i] : p[i];
}

/* What read_floats asks of each value besides being finite. */
enum { ANY_FINITE = 0, POSITIVE = 1, NON_NEGATIVE = 2, UNIT_INTERVAL = 3 };

/* Floats: every one finite (and in the range asked for); copied to dest if
 * given (dest has the file's element type and room for cap elements). */
typedef struct {
    size_t itemsize;
    int swap;
    int positive;
    void *dest;
    size_t cap;
    size_t index;
} float_ctx;

static csae_status consume_floats(void *vctx, const unsigned char *p, size_t n)
{
    float_ctx *c = vctx;
    for (size_t at = 0; at < n; at += c->itemsize, c->index++) {
        unsigned char raw[8] = {0};
        double v;
        /* The last guard of the caller's memory: read_floats already
         * checked the count against cap, and nothing the file does can
         * make this stream hand over more elements than that. */
        if (c->dest && c->index >= c->cap)
            return CSAE_ERR_FORMAT;
        load_bytes(raw, p + at, c->itemsize, c->swap);
        if (c->itemsize == 8) {
            memcpy(&v, raw, 8);
            if (c->dest)
                ((double *)c->dest)[c->index] = v;
        } else {
            float f;
            memcpy(&f, raw, 4);
            v = f;
            if (c->dest)
                ((float *)c->dest)[c->index] = f;
        }
        if (!isfinite(v) || (c->positive == POSITIVE && !(v > 0))
            || (c->positive == NON_NEGATIVE && !(v >= 0))
            || (c->positive == UNIT_INTERVAL && !(v >= 0 && v <= 1)))
            return CSAE_ERR_FORMAT;
    }
    return CSAE_OK;
}

/* One integer (a 0-d array). */
typedef struct {
    const npy_array *a;
    int negative;
    uint64_t magnitude;
} int_ctx;

static csae_status consume_int(void *vctx, const unsigned char *p, size_t n)
{
    int_ctx *c = vctx;
    const size_t size = (size_t)c->a->itemsize;
    if (n != size)
        return CSAE_ERR_FORMAT;
    unsigned char raw[8];
    load_bytes(raw, p, size, c->a->swap);
    /* raw is now in host order; widen through the exact-width types */
    uint64_t u = 0;
    int64_t s = 0;
    switch (size) {
    case 1: { uint8_t v; memcpy(&v, raw, 1); u = v; s = (int8_t)v; break; }
    case 2: { uint16_t v; memcpy(&v, raw, 2); u = v; s = (int16_t)v; break; }
    case 4: { uint32_t v; memcpy(&v, raw, 4); u = v; s = (int32_t)v; break; }
    default: { uint64_t v; memcpy(&v, raw, 8); u = v; s = (int64_t)v; break; }
    }
    if (c->a->kind == 'i' && s < 0) {
        c->negative = 1;
        c->magnitude = (uint64_t)(-(s + 1)) + 1;
    } else {
        c->magnitude = c->a->kind == 'i' ? (uint64_t)s : u;
    }
    return CSAE_OK;
}

/* ---- Text members (numpy's 'U': UTF-32) ---------------------------------
 *
 * One scanner for every text member, so that each rule is written once:
 * numpy's byte order, the trailing NULs numpy strips (a NUL before other
 * characters is text, and not ASCII), code points past U+10FFFF (which no
 * Python str holds), what counts as ASCII text, and the length cap. */

/* Unicode's last code point. */
#define MAX_CODE_POINT 0x10FFFFu

/* What a text member may hold besides Unicode (read_text's rule). */
enum {
    TEXT_ANY,   /* anything (csae_version: shown to people, never compared) */
    TEXT_ASCII, /* 1 to cap characters of tab, newline, CR and printable ASCII
                 * (names C compares, records C parses or hands over: an
                 * empty one is none of them) */
};

/* One text as it streams by: its ASCII characters up to the trailing NULs
 * are counted, and copied to out when given (room for cap of them); any
 * other character is flagged, never copied. */
typedef struct {
    int swap;
    char *out;
    size_t cap, len;
    size_t pending_nul; /* NULs seen and not (yet) followed by other text */
    int not_unicode;    /* a code point past MAX_CODE_POINT */
    int not_ascii;      /* a NUL inside the text, a control or non-ASCII character */
    int too_long;       /* more than cap ASCII characters */
} text_ctx;

/* Printable ASCII, and the white space JSON allows between tokens (which
 * both Python readers accept in a record). */
static int ascii_text_char(uint32_t cp)
{
    return (cp >= 0x20 && cp <= 0x7E) || cp == '\t' || cp == '\n' || cp == '\r';
}

static csae_status consume_text(void *vctx, const unsigned char *p, size_t n)
{
    text_ctx *c = vctx;
    for (size_t at = 0; at < n; at += 4) {
        unsigned char raw[4];
        uint32_t cp;
        load_bytes(raw, p + at, 4, c->swap);
        memcpy(&cp, raw, 4);
        if (cp > MAX_CODE_POINT)
            c->not_unicode = 1;
        if (cp == 0) {
            c->pending_nul++;
            continue;
        }
        /* Flagged characters are never copied: a flagged text is refused
         * (TEXT_ASCII) or its characters unused (TEXT_ANY).  pending_nul
         * stays set, so all text after an inner NUL is flagged. */
        if (c->pending_nul || !ascii_text_char(cp)) {
            c->not_ascii = 1;
            continue;
        }
        if (c->len >= c->cap) {
            c->too_long = 1;
            continue;
        }
        if (c->out)
            c->out[c->len] = (char)cp;
        c->len++;
    }
    return CSAE_OK;
}

/* ---- The hyperparameter record (JSON) ----------------------------------- */

typedef enum { J_STRING, J_NUMBER, J_TRUE, J_FALSE, J_NULL } json_type;

typedef struct {
    json_type type;
    char text[MAX_NUMBER + 1]; /* a string's characters or a number's token */
    int too_long;              /* text was cut */
    int is_int;                /* a number without fraction or exponent */
    int negative;              /* an integer below zero ("-0" is zero) */
    int overflow;              /* an integer beyond 2^64 - 1 */
    uint64_t magnitude;
} json_value;

/* One JSON value: a string without escapes (csae writes none), a number in
 * JSON's grammar, true, false or null. */
static int json_parse_value(text_cursor *c, json_value *v)
{
    memset(v, 0, sizeof *v);
    csae_text_space(c);
    if (c->i >= c->n)
        return 0;
    const char first = c->s[c->i];
    size_t len = 0;
    if (first == '"') {
        v->type = J_STRING;
        c->i++;
        while (c->i < c->n && c->s[c->i] != '"') {
            const char ch = c->s[c->i++];
            if (ch == '\\' || (unsigned char)ch < 0x20)
                return 0;
            if (len < MAX_NUMBER)
                v->text[len++] = ch;
            else
                v->too_long = 1;
        }
        if (c->i >= c->n)
            return 0;
        c->i++;
        v->text[len] = '\0';
        return 1;
    }
    if (csae_text_word(c, "true")) {
        v->type = J_TRUE;
        return 1;
    }
    if (csae_text_word(c, "false")) {
        v->type = J_FALSE;
        return 1;
    }
    if (csae_text_word(c, "null")) {
        v->type = J_NULL;
        return 1;
    }
    v->type = J_NUMBER;
    const size_t start = c->i;
    int minus = 0;
    if (c->s[c->i] == '-') {
        minus = 1;
        c->i++;
    }
    text_cursor digits = *c;
    uint64_t magnitude = 0;
    const int fits = csae_text_u64(&digits, &magnitude);
    /* JSON: one or more digits, no leading zero (skip_space in take_u64
     * must not have moved: a space after '-' is not a number) */
    size_t d = c->i;
    while (d < c->n && c->s[d] >= '0' && c->s[d] <= '9')
        d++;
    if (d == c->i || (c->s[c->i] == '0' && d - c->i > 1))
        return 0;
    v->overflow = !fits;
    v->magnitude = fits ? magnitude : 0;
    c->i = d;
    v->is_int = 1;
    if (c->i < c->n && c->s[c->i] == '.') {
        v->is_int = 0;
        const size_t at = ++c->i;
        while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9')
            c->i++;
        if (c->i == at)
            return 0;
    }
    if (c->i < c->n && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
        v->is_int = 0;
        c->i++;
        if (c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-'))
            c->i++;
        const size_t at = c->i;
        while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9')
            c->i++;
        if (c->i == at)
            return 0;
    }
    v->negative = minus && (v->overflow || v->magnitude != 0);
    len = c->i - start;
    if (len > MAX_NUMBER) {
        v->too_long = 1;
        len = MAX_NUMBER;
    }
    memcpy(v->text, c->s + start, len);
    v->text[len] = '\0';
    return 1;
}

/* A JSON number as a double (strtod with the C locale's '.' swapped for
 * the current locale's decimal point). */
static int json_double(const json_value *v, double *out)
{
    if (v->type != J_NUMBER || v->too_long)
        return 0;
    const char *point = localeconv()->decimal_point;
    const size_t plen = (point && point[0]) ? strlen(point) : 1;
    char buf[MAX_NUMBER + 8]; /* one '.' may become a point of up to 7 bytes */
    size_t len = 0;
    for (const char *p = v->text; *p; p++) {
        if (*p == '.' && point && point[0]) {
            if (plen > 7 || len + plen > MAX_NUMBER + 7)
                return 0;
            memcpy(buf + len, point, plen);
            len += plen;
        } else {
            if (len + 1 >= sizeof buf)
                return 0;
            buf[len++] = *p;
        }
    }
    buf[len] = '\0';
    char *end;
    const double x = strtod(buf, &end);
    if (end != buf + len)
        return 0;
    *out = x;
    return 1;
}

/* An integer >= minimum (any size, as Python's int). */
static int json_int_at_least(const json_value *v, uint64_t minimum)
{
    return v->type == J_NUMBER && v->is_int && !v->negative
           && (v->overflow || v->magnitude >= minimum);
}

/* An integer in [minimum, maximum], as csae._validation.int_param checks it. */
static int json_int_between(const json_value *v, uint64_t minimum, uint64_t maximum)
{
    return json_int_at_least(v, minimum) && !v->overflow && v->magnitude <= maximum;
}

/* A finite real number (integer or not) between low and high, each bound
 * open or closed, as csae._validation._real_param checks it. */
static int json_real(const json_value *v, double low, double high, int low_open, int high_open,
                     double *out)
{
    double x;
    if (!json_double(v, &x) || !isfinite(x))
        return 0;
    if (low_open ? x <= low : x < low)
        return 0;
    if (high_open ? x >= high : x > high)
        return 0;
    *out = x;
    return 1;
}

/* The record's keys: those of format version 1, then those version 2 added,
 * then version 3's (a version-1 file has only the first K_COUNT_V1, a
 * version-2 file the first K_COUNT_V2). */
enum {
    K_BACKEND, K_BATCH_SIZE, K_DECODER, K_DTYPE, K_LEARNING_RATE, K_MAX_EPOCHS, K_MOMENTUM,
    K_N_HIDDEN, K_N_THREADS, K_RANDOM_STATE, K_SCALE_INPUTS, K_SHUFFLE, K_SPARSITY_TARGET,
    K_SPARSITY_WEIGHT, K_VERBOSE, K_WEIGHT_DECAY, K_COUNT_V1,
    K_MAX_FUN = K_COUNT_V1, K_SOLVER, K_TOL, K_COUNT_V2,
    K_BETA_1 = K_COUNT_V2, K_BETA_2, K_EARLY_STOPPING, K_EPSILON, K_N_ITER_NO_CHANGE,
    K_SPARSITY_ESTIMATE, K_SPARSITY_SMOOTHING, K_VALIDATION_FRACTION, K_WARM_START, K_COUNT
};

static const char *const hyper_names[K_COUNT] = {
    "backend", "batch_size", "decoder", "dtype", "learning_rate", "max_epochs", "momentum",
    "n_hidden", "n_threads", "random_state", "scale_inputs", "shuffle", "sparsity_target",
    "sparsity_weight", "verbose", "weight_decay",
    "max_fun", "solver", "tol",
    "beta_1", "beta_2", "early_stopping", "epsilon", "n_iter_no_change",
    "sparsity_estimate", "sparsity_smoothing", "validation_fraction", "warm_start",
};

typedef struct {
    uint64_t n_hidden;
    double sparsity_target, sparsity_weight, weight_decay;
    double learning_rate, momentum, beta_1, beta_2, epsilon, sparsity_smoothing;
    int adam, running; /* solver "adam"; sparsity_estimate "running" */
    csae_decoder decoder;
    size_t elem_size;
    int scale_inputs;
} hyper;

/* One hyperparameter, checked as csae._validation.validate_hyperparameters
 * checks it (dtype only by the names csae writes, "float64" and "float32"). */
static int check_hyper(int key, const json_value *v, hyper *hp)
{
    const double inf = HUGE_VAL;
    double unused;
    switch (key) {
    case K_BACKEND:
        return v->type == J_STRING && (strcmp(v->text, "c") == 0 || strcmp(v->text, "python") == 0);
    case K_BATCH_SIZE:
    case K_MAX_EPOCHS:
        return json_int_between(v, 1, MAX_COUNT);
    case K_DECODER:
        if (v->type != J_STRING)
            return 0;
        if (strcmp(v->text, "sigmoid") == 0)
            hp->decoder = CSAE_DECODER_SIGMOID;
        else if (strcmp(v->text, "linear") == 0)
            hp->decoder = CSAE_DECODER_LINEAR;
        else
            return 0;
        return 1;
    case K_DTYPE:
        if (v->type != J_STRING)
            return 0;
        if (strcmp(v->text, "float64") == 0)
            hp->elem_size = 8;
        else if (strcmp(v->text, "float32") == 0)
            hp->elem_size = 4;
        else
            return 0;
        return 1;
    case K_LEARNING_RATE:
        return json_real(v, 0.0, inf, 1, 1, &hp->learning_rate);
    case K_MOMENTUM:
        return json_real(v, 0.0, 1.0, 0, 1, &hp->momentum);
    case K_N_HIDDEN:
        if (!json_int_at_least(v, 1) || v->overflow)
            return 0;
        hp->n_hidden = v->magnitude;
        return 1;
    case K_N_THREADS:
        return v->type == J_NULL || json_int_between(v, 1, MAX_THREADS);
    case K_RANDOM_STATE:
        return v->type == J_NULL || (json_int_at_least(v, 0) && !v->overflow);
    case K_SCALE_INPUTS:
        hp->scale_inputs = v->type == J_TRUE;
        return v->type == J_TRUE || v->type == J_FALSE;
    case K_SHUFFLE:
        return v->type == J_TRUE || v->type == J_FALSE;
    case K_SPARSITY_TARGET:
        return json_real(v, 0.0, 1.0, 1, 1, &hp->sparsity_target);
    case K_SPARSITY_WEIGHT:
        return json_real(v, 0.0, inf, 0, 1, &hp->sparsity_weight);
    case K_VERBOSE:
        return v->type == J_TRUE || v->type == J_FALSE || json_int_at_least(v, 0);
    case K_WEIGHT_DECAY:
        return json_real(v, 0.0, inf, 0, 1, &hp->weight_decay);
    case K_MAX_FUN:
        return json_int_between(v, 1, MAX_COUNT);
    case K_SOLVER:
        hp->adam = v->type == J_STRING && strcmp(v->text, "adam") == 0;
        return v->type == J_STRING && (strcmp(v->text, "sgd") == 0 || strcmp(v->text, "adam") == 0
                                       || strcmp(v->text, "lbfgs") == 0);
    case K_TOL:
        return json_real(v, 0.0, inf, 0, 1, &unused);
    case K_BETA_1:
        return json_real(v, 0.0, 1.0, 0, 1, &hp->beta_1);
    case K_BETA_2:
        return json_real(v, 0.0, 1.0, 0, 1, &hp->beta_2);
    case K_EPSILON:
        return json_real(v, 0.0, inf, 1, 1, &hp->epsilon);
    case K_EARLY_STOPPING:
    case K_WARM_START:
        return v->type == J_TRUE || v->type == J_FALSE;
    case K_N_ITER_NO_CHANGE:
        return json_int_between(v, 1, MAX_COUNT);
    case K_SPARSITY_ESTIMATE:
        hp->running = v->type == J_STRING && strcmp(v->text, "running") == 0;
        return v->type == J_STRING
               && (strcmp(v->text, "batch") == 0 || strcmp(v->text, "running") == 0);
    case K_SPARSITY_SMOOTHING:
        return json_real(v, 0.0, 1.0, 1, 0, &hp->sparsity_smoothing);
    case K_VALIDATION_FRACTION:
        return json_real(v, 0.0, 1.0, 1, 1, &unused);
    }
    return 0;
}

/* Whether the model's element type holds x as csae._validation's
 * _representable requires: finite once rounded to it, and, if asked, a
 * normal number above 0 (positive) or below 1 (below_one).  Python rounds
 * with NumPy's cast, round to nearest even, as C's cast does. */
static int representable(double x, size_t elem_size, int positive, int below_one)
{
    double rounded = x;
    if (elem_size == 4) {
        /* At or past halfway between FLT_MAX and 2^128 rounds to infinity
         * (and converting it would be undefined behaviour in C). */
        if (fabs(x) >= 0x1.ffffffp127)
            return 0;
        rounded = (double)(float)x;
    }
    if (!isfinite(rounded))
        return 0;
    if (positive && rounded < (elem_size == 4 ? (double)FLT_MIN : DBL_MIN))
        return 0;
    if (below_one && rounded >= 1.0)
        return 0;
    return 1;
}

/* The checks validate_hyperparameters makes after each value's own: the
 * values the engine computes with, in the model's element type. */
static int hyper_representable(const hyper *hp)
{
    const size_t e = hp->elem_size;
    if (!representable(hp->sparsity_target, e, 1, 1) || !representable(hp->sparsity_weight, e, 0, 0)
        || !representable(hp->weight_decay, e, 0, 0) || !representable(hp->learning_rate, e, 1, 0)
        || !representable(hp->momentum, e, 0, 1))
        return 0;
    if (hp->adam && (!representable(hp->beta_1, e, 0, 1) || !representable(hp->beta_2, e, 0, 1)
                     || !representable(hp->epsilon, e, 1, 0)))
        return 0;
    if (hp->running && !representable(hp->sparsity_smoothing, e, 1, 0))
        return 0;
    return 1;
}

/* The record: a JSON object naming every constructor parameter of its
 * format version once. */
static csae_status parse_hyper(const char *text, size_t len, uint64_t version, hyper *hp)
{
    const int keys = version >= 3 ? K_COUNT : version == 2 ? K_COUNT_V2 : K_COUNT_V1;
    text_cursor c = {text, len, 0};
    int seen[K_COUNT] = {0};
    memset(hp, 0, sizeof *hp);
    /* What an older record lacks takes the constructor's default (as
     * csae._estimator.defaults_for_older_models gives it). */
    hp->beta_1 = 0.9;
    hp->beta_2 = 0.999;
    hp->epsilon = 1e-8;
    hp->sparsity_smoothing = 0.1;
    if (!csae_text_char(&c, '{'))
        return CSAE_ERR_FORMAT;
    for (int count = 0; count < keys; count++) {
        json_value key, value;
        if (!json_parse_value(&c, &key) || key.type != J_STRING || !csae_text_char(&c, ':')
            || !json_parse_value(&c, &value))
            return CSAE_ERR_FORMAT;
        int k = -1;
        for (int i = 0; i < keys; i++)
            if (!key.too_long && strcmp(key.text, hyper_names[i]) == 0)
                k = i;
        if (k < 0 || seen[k] || !check_hyper(k, &value, hp))
            return CSAE_ERR_FORMAT;
        seen[k] = 1;
        if (!csae_text_char(&c, count + 1 < keys ? ',' : '}'))
            return CSAE_ERR_FORMAT;
    }
    csae_text_space(&c);
    if (c.i != c.n || !hyper_representable(hp))
        return CSAE_ERR_FORMAT;
    return CSAE_OK;
}

/* ---- Fields ------------------------------------------------------------- */

/* What member_header lets through unchecked. */
#define ANY_SIZE 0u
#define ANY_KIND NULL
#define ANY_ITEMSIZE 0u
#define ANY_RANK (-1)

/* Member m's .npy header into m->array: the one rule for what a header
 * must say, shared by every member of both formats.  Refused (FORMAT) when
 * the member takes more than max_size bytes (checked before anything in
 * it is parsed), its kind is not one of kinds, its element size not
 * itemsize, its rank not ndim, or (native) it is stored in the other byte
 * order: Python's loader wants the native dtype exactly where it compares
 * dtypes (a float64 file written on a big-endian machine is refused on a
 * little-endian one), and converts text and the format version. */
static csae_status member_header(const npz_file *r, npz_member *m, uint64_t max_size,
                                 const char *kinds, uint64_t itemsize, int ndim, int native)
{
    if (max_size != ANY_SIZE && m->size > max_size)
        return CSAE_ERR_FORMAT;
    csae_status st = csae_npy_read_header(r, m);
    if (st != CSAE_OK)
        return st;
    const npy_array *a = &m->array;
    if ((kinds && !strchr(kinds, a->kind)) || (itemsize != ANY_ITEMSIZE && a->itemsize != itemsize)
        || (ndim != ANY_RANK && a->ndim != ndim) || (native && a->swap))
        return CSAE_ERR_FORMAT;
    return CSAE_OK;
}

/* A text member of ndim 0 (or shape (1,)) whose member takes at most
 * max_size bytes, refused unless Unicode and (TEXT_ASCII) 1 to cap
 * characters of ASCII text.  Its ASCII characters go to out when not NULL
 * (cap + 1 bytes, NUL-terminated once accepted) and their count to *len. */
static csae_status read_text(const npz_file *r, npz_member *m, int ndim, uint64_t max_size,
                             int rule, char *out, size_t cap, size_t *len)
{
    csae_status st = member_header(r, m, max_size, "U", ANY_ITEMSIZE, ndim, 0);
    if (st != CSAE_OK)
        return st;
    const npy_array *a = &m->array;
    if (ndim == 1 && a->shape[0] != 1)
        return CSAE_ERR_FORMAT;
    text_ctx c;
    memset(&c, 0, sizeof c);
    c.swap = a->swap;
    c.out = out;
    c.cap = cap;
    st = csae_npz_stream(r, m, 4, consume_text, &c);
    if (st != CSAE_OK)
        return st;
    if (c.not_unicode || (rule == TEXT_ASCII && (c.not_ascii || c.too_long || c.len == 0)))
        return CSAE_ERR_FORMAT;
    if (out)
        out[c.len] = '\0';
    if (len)
        *len = c.len;
    return CSAE_OK;
}

/* A 0-d integer field whose kind is in kinds ("iu" or "u"); itemsize 0
 * accepts any width and byte order, else exactly that width, native. */
static csae_status read_int(const npz_file *r, npz_member *m, const char *kinds, uint64_t itemsize,
                            int_ctx *ic)
{
    /* rng_state: Python wants the native uint64 */
    csae_status st = member_header(r, m, MAX_SCALAR_MEMBER, kinds, itemsize, 0,
                                   itemsize != ANY_ITEMSIZE);
    if (st != CSAE_OK)
        return st;
    const npy_array *a = &m->array;
    memset(ic, 0, sizeof *ic);
    ic->a = a;
    return csae_npz_stream(r, m, (size_t)a->itemsize, consume_int, ic);
}

/* A format_version member: newer than newest is unsupported (such a file
 * may hold what this reader does not know), below 1 is no version. */
static csae_status read_version(const npz_file *r, npz_member *m, uint64_t newest,
                                uint64_t *version)
{
    int_ctx ic;
    csae_status st = read_int(r, m, "iu", 0, &ic);
    if (st != CSAE_OK)
        return st;
    if (!ic.negative && ic.magnitude > newest)
        return CSAE_ERR_UNSUPPORTED;
    if (ic.negative || ic.magnitude < 1)
        return CSAE_ERR_FORMAT;
    *version = ic.magnitude;
    return CSAE_OK;
}

/* Longest name a text member is compared with, in characters (a format's
 * name, a stop reason; MAX_LABEL_MEMBER holds 64). */
#define MAX_NAME_CHARS 64

/* A 0-d text member holding one of names: its index into *which, its text
 * into out (cap + 1 bytes; cap at least the longest name, since a longer
 * text is refused as too long rather than compared). */
static csae_status read_name(const npz_file *r, npz_member *m, const char *const *names,
                             size_t count, char *out, size_t cap, size_t *which)
{
    csae_status st = read_text(r, m, 0, MAX_LABEL_MEMBER, TEXT_ASCII, out, cap, NULL);
    if (st != CSAE_OK)
        return st;
    for (size_t i = 0; i < count; i++)
        if (strcmp(out, names[i]) == 0) {
            *which = i;
            return CSAE_OK;
        }
    return CSAE_ERR_FORMAT;
}

/* ---- The head of a model file -------------------------------------------
 *
 * Both formats begin alike: the format's name and version, which say how
 * the rest is read (a newer version may well add members this reader does
 * not know: unsupported, not corrupt), then the set of members (once the
 * version is known, a member it does not know makes the file corrupt,
 * whatever the others hold), then the version of csae that wrote it (only
 * shown to people) and the hyperparameter record.  One reader for that
 * head; each format gives its rules in a file_head. */
typedef struct {
    const char *const *names;   /* the format's names: which one says the kind of file */
    size_t n_names;
    uint64_t newest;            /* the newest format_version this reader knows */
    /* the head's members, as indices into the format's member table */
    size_t format, version, csae_version, record;
    const size_t *required;     /* members every version of the format has */
    size_t n_required;
    uint64_t record_member_max; /* the record's largest member, in bytes */
    size_t record_max;          /* and its longest text, in characters */
} file_head;

/* The head of the file whose directory is m (unknown: it lists other
 * names): which of h->names it has, its format version, its record into
 * record (h->record_max + 1 bytes, or NULL) and the record's length. */
static csae_status read_head(const npz_file *r, npz_member *m, int unknown, const file_head *h,
                             size_t *which, uint64_t *version, char *record, size_t *record_len)
{
    if (!m[h->format].present || !m[h->version].present)
        return CSAE_ERR_FORMAT;
    char name[MAX_NAME_CHARS + 1];
    csae_status st = read_name(r, &m[h->format], h->names, h->n_names, name, MAX_NAME_CHARS,
                               which);
    if (st != CSAE_OK)
        return st;
    st = read_version(r, &m[h->version], h->newest, version);
    if (st != CSAE_OK)
        return st;
    if (unknown)
        return CSAE_ERR_FORMAT;
    for (size_t i = 0; i < h->n_required; i++)
        if (!m[h->required[i]].present)
            return CSAE_ERR_FORMAT;
    st = read_text(r, &m[h->csae_version], 0, MAX_LABEL_MEMBER, TEXT_ANY, NULL, 0, NULL);
    if (st != CSAE_OK)
        return st;
    return read_text(r, &m[h->record], 1, h->record_member_max, TEXT_ASCII, record,
                     h->record_max, record_len);
}

#define ANY_LENGTH UINT64_MAX

/* A float field of element size itemsize and the given shape (d1 unused
 * for ndim 1; d0 == ANY_LENGTH accepts any length), every value finite (and
 * in the range ``positive`` names: ANY_FINITE, POSITIVE, ...); copied to
 * dest, which holds cap elements, when not NULL. */
static csae_status read_floats(const npz_file *r, npz_member *m, size_t itemsize, int ndim,
                               uint64_t d0, uint64_t d1, int positive, void *dest, size_t cap)
{
    csae_status st = member_header(r, m, ANY_SIZE, "f", itemsize, ndim, 1);
    if (st != CSAE_OK)
        return st;
    const npy_array *a = &m->array;
    if ((d0 != ANY_LENGTH && a->shape[0] != d0) || (ndim == 2 && a->shape[1] != d1))
        return CSAE_ERR_FORMAT;
    if (dest && a->count != cap)
        return CSAE_ERR_MISMATCH;
    float_ctx fc = {itemsize, a->swap, positive, dest, cap, 0};
    return csae_npz_stream(r, m, itemsize, consume_floats, &fc);
}

/* An input range: two members, data_min then data_scale (next to each
 * other in both member tables), of one float64 per feature: the lows
 * finite, the scales positive (inputs are divided by them). */
#define RANGE_ITEMSIZE 8
static const int range_values[2] = {ANY_FINITE, POSITIVE};

/* Version 4's stop_reason: one of stop_reasons, into out (cap bytes). */
static csae_status read_stop_reason(const npz_file *r, npz_member *m, uint64_t version, char *out,
                                    size_t cap)
{
    if (version < 4)
        return CSAE_ERR_FORMAT;
    size_t which;
    return read_name(r, m, stop_reasons, sizeof stop_reasons / sizeof stop_reasons[0], out,
                     cap - 1, &which);
}

typedef csae_model_layout parsed;

/* Where a pass copies values to (NULL: check only), and the caller's model
 * those buffers were sized for: a copying pass checks the file against it
 * again before it writes anything, since the file may have changed since
 * the pass that validated it (the buffers hold exactly the caller's model's
 * sizes, whatever the file says now). */
typedef struct {
    void *W, *b, *Wd, *bd;
    double *data_min, *data_scale;
    const csae_model *model;
    size_t elem_size; /* of W, b, Wd, bd (0 when they are not copied) */
    /* csae_model_file_read_all only (NULL otherwise) */
    void *velocity[4], *adam_m[4], *adam_v[4], *rho_running;
    double *loss_curve;
    size_t loss_count;
} destinations;

static int same_model(const csae_model *a, const csae_model *b)
{
    return a->n_features == b->n_features && a->n_hidden == b->n_hidden
           && a->decoder == b->decoder && a->sparsity_target == b->sparsity_target
           && a->sparsity_weight == b->sparsity_weight && a->weight_decay == b->weight_decay;
}

static const char *const format_names[] = {FORMAT_NAME};
static const size_t required_fields[] = {F_CSAE_VERSION, F_HYPER, F_LOSS, F_NITER,
                                         F_W, F_B, F_WD, F_BD};
static const file_head single_head = {
    format_names, 1, FORMAT_VERSION, F_FORMAT, F_FORMAT_VERSION, F_CSAE_VERSION, F_HYPER,
    required_fields, sizeof required_fields / sizeof required_fields[0],
    /* Longer than MAX_HYPER characters: Python refuses it as invalid. */
    MAX_RECORD_MEMBER, MAX_HYPER,
};

/* Check the whole file; fill *out; copy to *dest's non-NULL arrays. */
static csae_status scan(const npz_file *r, parsed *out, const destinations *dest)
{
    npz_member m[F_COUNT];
    int unknown;
    csae_status st = csae_npz_directory(r, member_names, F_COUNT, m, &unknown);
    if (st != CSAE_OK)
        return st;
    char text[MAX_HYPER + 1];
    size_t which, len;
    uint64_t version;
    st = read_head(r, m, unknown, &single_head, &which, &version, text, &len);
    if (st != CSAE_OK)
        return st;
    hyper hp;
    st = parse_hyper(text, len, version, &hp);
    if (st != CSAE_OK)
        return st;
    memcpy(out->record, text, len + 1);
    out->record_len = len;

    /* n comes from the encoder's columns, h from the record (as in Python). */
    st = member_header(r, &m[F_W], ANY_SIZE, ANY_KIND, ANY_ITEMSIZE, 2, 0);
    if (st != CSAE_OK)
        return st;
    if (m[F_W].array.shape[1] < 1)
        return CSAE_ERR_FORMAT;
    const uint64_t n = m[F_W].array.shape[1], h = hp.n_hidden;
    if (n > SIZE_MAX || h > SIZE_MAX)
        return CSAE_ERR_FORMAT;
    if (dest) {
        const csae_model now = {(size_t)n, (size_t)h, hp.decoder, hp.sparsity_target,
                                hp.sparsity_weight, hp.weight_decay};
        if (!same_model(&now, dest->model))
            return CSAE_ERR_MISMATCH;
        if (dest->elem_size && hp.elem_size != dest->elem_size)
            return CSAE_ERR_DTYPE;
    }
    const uint64_t dims[4][2] = {{h, n}, {h, 0}, {n, h}, {n, 0}};
    const int ndims[4] = {2, 1, 2, 1};
    void *targets[4] = {dest ? dest->W : NULL, dest ? dest->b : NULL,
                        dest ? dest->Wd : NULL, dest ? dest->bd : NULL};
    /* Element counts of the caller's buffers, from the caller's model (n*h
     * fits: the file's n and h equal the model's and the header check made
     * their product with the element size). */
    const size_t mn = dest ? dest->model->n_features : 0, mh = dest ? dest->model->n_hidden : 0;
    const size_t caps[4] = {mh * mn, mh, mn * mh, mn};
    for (int k = 0; k < 4; k++) {
        st = read_floats(r, &m[F_W + k], hp.elem_size, ndims[k], dims[k][0], dims[k][1], 0,
                         targets[k], caps[k]);
        if (st != CSAE_OK)
            return st;
    }
    const int velocities = m[F_VW].present + m[F_VB].present + m[F_VWD].present
                           + m[F_VBD].present;
    if (velocities != 0 && velocities != 4)
        return CSAE_ERR_FORMAT;
    for (int k = 0; k < velocities; k++) {
        st = read_floats(r, &m[F_VW + k], hp.elem_size, ndims[k], dims[k][0], dims[k][1], 0,
                         dest ? dest->velocity[k] : NULL, caps[k]);
        if (st != CSAE_OK)
            return st;
    }

    st = read_floats(r, &m[F_LOSS], 8, 1, ANY_LENGTH, 0, 0, dest ? dest->loss_curve : NULL,
                     dest ? dest->loss_count : 0);
    if (st != CSAE_OK)
        return st;
    int_ctx ic;
    st = read_int(r, &m[F_NITER], "iu", 0, &ic);
    if (st != CSAE_OK)
        return st;
    if (ic.negative || ic.magnitude != m[F_LOSS].array.shape[0])
        return CSAE_ERR_FORMAT;
    out->n_iter = ic.magnitude;
    out->rng_state = 0;
    if (m[F_RNG].present) {
        st = read_int(r, &m[F_RNG], "u", 8, &ic);
        if (st != CSAE_OK)
            return st;
        out->rng_state = ic.magnitude;
    }
    if (m[F_DMIN].present != m[F_DSCALE].present)
        return CSAE_ERR_FORMAT;
    /* Version 3's training state: all eight moments with the step count, or
     * none; the running estimate with its batch count, or neither. */
    int adam = m[F_ADAM_T].present;
    for (int k = F_AMW; k <= F_AVBD; k++)
        adam += m[k].present;
    if (adam != 0 && (adam != 9 || version < 3))
        return CSAE_ERR_FORMAT;
    if (m[F_RHO_RUN].present != m[F_RUN_BATCHES].present
        || (m[F_RHO_RUN].present && version < 3))
        return CSAE_ERR_FORMAT;
    for (int k = 0; adam && k < 8; k++) {
        /* Second moments (F_AVW...) are averages of squares. */
        void *target = !dest ? NULL : k < 4 ? dest->adam_m[k] : dest->adam_v[k - 4];
        st = read_floats(r, &m[F_AMW + k], hp.elem_size, ndims[k % 4], dims[k % 4][0],
                         dims[k % 4][1], k < 4 ? ANY_FINITE : NON_NEGATIVE, target, caps[k % 4]);
        if (st != CSAE_OK)
            return st;
    }
    out->adam_t = 0;
    if (adam) {
        st = read_int(r, &m[F_ADAM_T], "iu", 0, &ic);
        if (st != CSAE_OK)
            return st;
        if (ic.negative)
            return CSAE_ERR_FORMAT;
        out->adam_t = ic.magnitude;
    }
    out->running_batches = 0;
    if (m[F_RHO_RUN].present) {
        st = read_floats(r, &m[F_RHO_RUN], hp.elem_size, 1, h, 0, UNIT_INTERVAL,
                         dest ? dest->rho_running : NULL, mh);
        if (st != CSAE_OK)
            return st;
        st = read_int(r, &m[F_RUN_BATCHES], "iu", 0, &ic);
        if (st != CSAE_OK)
            return st;
        if (ic.negative)
            return CSAE_ERR_FORMAT;
        out->running_batches = ic.magnitude;
    }
    out->has_stop_reason = m[F_STOP_REASON].present;
    out->stop_reason[0] = '\0';
    if (m[F_STOP_REASON].present) {
        st = read_stop_reason(r, &m[F_STOP_REASON], version, out->stop_reason,
                              sizeof out->stop_reason);
        if (st != CSAE_OK)
            return st;
    }
    double *range_targets[2] = {dest ? dest->data_min : NULL, dest ? dest->data_scale : NULL};
    for (int k = 0; m[F_DMIN].present && k < 2; k++) {
        st = read_floats(r, &m[F_DMIN + k], RANGE_ITEMSIZE, 1, n, 0, range_values[k],
                         range_targets[k], mn);
        if (st != CSAE_OK)
            return st;
    }

    out->model.n_features = (size_t)n;
    out->model.n_hidden = (size_t)h;
    out->model.decoder = hp.decoder;
    out->model.sparsity_target = hp.sparsity_target;
    out->model.sparsity_weight = hp.sparsity_weight;
    out->model.weight_decay = hp.weight_decay;
    out->elem_size = hp.elem_size;
    out->scale_inputs = hp.scale_inputs;
    out->has_range = m[F_DMIN].present;
    out->version = version;
    out->has_velocity = velocities == 4;
    out->has_adam = adam != 0;
    out->has_running = m[F_RHO_RUN].present;
    out->has_rng = m[F_RNG].present;
    return CSAE_OK;
}

/* ---- Public functions --------------------------------------------------- */

csae_status csae_model_file_info(const char *path, csae_model *model, size_t *elem_size)
{
    if (!path || !model || !elem_size)
        return CSAE_ERR_ARGUMENT;
    npz_file r;
    csae_status st = csae_npz_open(path, &r);
    if (st != CSAE_OK)
        return st;
    parsed p;
    st = scan(&r, &p, NULL);
    csae_npz_close(&r);
    if (st == CSAE_OK) {
        *model = p.model;
        *elem_size = p.elem_size;
    }
    return st;
}

/* Validate, check the caller's model and element type, then copy. */
static csae_status read_weights(const char *path, const csae_model *model, size_t elem_size,
                                void *W, void *b, void *Wd, void *bd)
{
    if (!path || !model || !W || !b || !Wd || !bd)
        return CSAE_ERR_ARGUMENT;
    npz_file r;
    csae_status st = csae_npz_open(path, &r);
    if (st != CSAE_OK)
        return st;
    parsed p;
    st = scan(&r, &p, NULL);
    if (st == CSAE_OK && p.elem_size != elem_size)
        st = CSAE_ERR_DTYPE;
    if (st == CSAE_OK && !same_model(&p.model, model))
        st = CSAE_ERR_MISMATCH;
    if (st == CSAE_OK) {
        const destinations dest = {W, b, Wd, bd, NULL, NULL, model, elem_size,
                                   {NULL}, {NULL}, {NULL}, NULL, NULL, 0};
        st = scan(&r, &p, &dest);
    }
    csae_npz_close(&r);
    return st;
}

csae_status csae_model_file_read_f64(const char *path, const csae_model *model,
                                     csae_params_f64 params)
{
    return read_weights(path, model, sizeof(double), params.W, params.b, params.Wd, params.bd);
}

csae_status csae_model_file_read_f32(const char *path, const csae_model *model,
                                     csae_params_f32 params)
{
    return read_weights(path, model, sizeof(float), params.W, params.b, params.Wd, params.bd);
}

csae_status csae_model_file_input_range(const char *path, const csae_model *model,
                                        int *scale_inputs, double *data_min,
                                        double *data_scale)
{
    if (!path || !model || !scale_inputs || (data_min == NULL) != (data_scale == NULL))
        return CSAE_ERR_ARGUMENT;
    npz_file r;
    csae_status st = csae_npz_open(path, &r);
    if (st != CSAE_OK)
        return st;
    parsed p;
    st = scan(&r, &p, NULL);
    if (st == CSAE_OK && !same_model(&p.model, model))
        st = CSAE_ERR_MISMATCH;
    int scales = -1; /* known once the file is valid and is this model */
    if (st == CSAE_OK) {
        scales = p.scale_inputs;
        if (scales && !p.has_range)
            st = CSAE_ERR_UNSUPPORTED;
    }
    if (st == CSAE_OK && scales && data_min) {
        const destinations dest = {NULL, NULL, NULL, NULL, data_min, data_scale, model, 0,
                                   {NULL}, {NULL}, {NULL}, NULL, NULL, 0};
        st = scan(&r, &p, &dest);
    }
    csae_npz_close(&r);
    if (scales >= 0)
        *scale_inputs = scales;
    return st;
}

/* ---- The whole file, for the Python binding (model_file.h) --------------- */


csae_status csae_model_file_layout(int fd, csae_model_layout *layout)
{
    if (!layout)
        return CSAE_ERR_ARGUMENT;
    npz_file r;
    csae_status st = csae_npz_from_fd(fd, &r);
    if (st != CSAE_OK)
        return st;
    parsed p;
    memset(&p, 0, sizeof p);
    st = scan(&r, &p, NULL);
    if (st == CSAE_OK)
        *layout = p;
    return st;
}

static int same_layout(const csae_model_layout *a, const csae_model_layout *b)
{
    return same_model(&a->model, &b->model) && a->elem_size == b->elem_size
           && a->scale_inputs == b->scale_inputs && a->version == b->version
           && a->n_iter == b->n_iter && a->has_velocity == b->has_velocity
           && a->has_adam == b->has_adam && a->has_running == b->has_running
           && a->has_range == b->has_range && a->has_rng == b->has_rng
           && a->rng_state == b->rng_state && a->adam_t == b->adam_t
           && a->running_batches == b->running_batches && a->record_len == b->record_len
           && a->has_stop_reason == b->has_stop_reason
           && strcmp(a->stop_reason, b->stop_reason) == 0
           && memcmp(a->record, b->record, a->record_len) == 0;
}

csae_status csae_model_file_read_all(int fd, const csae_model_layout *layout,
                                     const csae_model_arrays *dest)
{
    if (!layout || !dest)
        return CSAE_ERR_ARGUMENT;
    for (int k = 0; k < 4; k++)
        if (!dest->params[k] || (layout->has_velocity && !dest->velocity[k])
            || (layout->has_adam && (!dest->adam_m[k] || !dest->adam_v[k])))
            return CSAE_ERR_ARGUMENT;
    if ((layout->has_running && !dest->rho_running) || (layout->n_iter && !dest->loss_curve)
        || (layout->has_range && (!dest->data_min || !dest->data_scale)))
        return CSAE_ERR_ARGUMENT;
    if (layout->n_iter > SIZE_MAX)
        return CSAE_ERR_ARGUMENT;
    npz_file r;
    csae_status st = csae_npz_from_fd(fd, &r);
    if (st != CSAE_OK)
        return st;
    /* Arrays the layout says the file lacks are not copied even if the file
     * now holds them: the caller has no room for them. */
    destinations d;
    memset(&d, 0, sizeof d);
    d.W = dest->params[0];
    d.b = dest->params[1];
    d.Wd = dest->params[2];
    d.bd = dest->params[3];
    d.model = &layout->model;
    d.elem_size = layout->elem_size;
    for (int k = 0; k < 4; k++) {
        d.velocity[k] = layout->has_velocity ? dest->velocity[k] : NULL;
        d.adam_m[k] = layout->has_adam ? dest->adam_m[k] : NULL;
        d.adam_v[k] = layout->has_adam ? dest->adam_v[k] : NULL;
    }
    d.rho_running = layout->has_running ? dest->rho_running : NULL;
    d.loss_curve = layout->n_iter ? dest->loss_curve : NULL;
    d.loss_count = (size_t)layout->n_iter;
    d.data_min = layout->has_range ? dest->data_min : NULL;
    d.data_scale = layout->has_range ? dest->data_scale : NULL;
    parsed now;
    memset(&now, 0, sizeof now);
    st = scan(&r, &now, &d);
    if (st == CSAE_OK && !same_layout(&now, layout))
        st = CSAE_ERR_MISMATCH;
    return st;
}

/* ==== Deep models' files ================================================
 *
 * csae/_deep_persist.py's format: one member per array, named by layer
 * (weights_0, bias_0, ...).  A first pass checks every member against the
 * sizes member (the network's widths) and the rules of its kind; a copying
 * pass checks everything again and copies into the caller's buffers, whose
 * sizes come from the caller's layout, never from the file. */

#define DEEP_FORMAT_VERSION 1
#define DEEP_SLOTS (CSAE_DEEP_FILE_MAX_LAYERS + 1)
/* Directory entries: every member there can be (fewer than 256). */
#define DEEP_MAX_ENTRIES 256u
#define MAX_DEEP_RECORD_MEMBER (MAX_NPY_HEADER + 4u * CSAE_DEEP_RECORD_MAX)
/* Longest class label, in characters (csae/_deep_persist.py's _MAX_LABEL_CHARS). */
#define MAX_CLASS_CHARS 256u
#define DEEP_NAME_MAX 40

static const char *const deep_global_names[CSAE_DG_COUNT] = {
    "format", "format_version", "csae_version", "hyperparameters", "sizes", "data_min",
    "data_scale", "classes", "loss_curve", "validation_loss_curve",
};
static const char *const deep_layer_names[CSAE_DL_COUNT] = {
    "weights_", "bias_", "pretrained_weights_", "pretrained_bias_", "decoder_weights_",
    "decoder_bias_", "autoencoder_data_min_", "autoencoder_data_scale_",
    "autoencoder_weights_", "autoencoder_bias_", "autoencoder_loss_curve_",
};

static size_t deep_name(size_t i, char *out, size_t cap, int npy)
{
    if (i >= CSAE_DEEP_MEMBERS || cap < DEEP_NAME_MAX)
        return 0;
    const char *base = i < CSAE_DG_COUNT ? deep_global_names[i]
                                          : deep_layer_names[(i - CSAE_DG_COUNT) % CSAE_DL_COUNT];
    size_t len = strlen(base);
    memcpy(out, base, len);
    if (i >= CSAE_DG_COUNT) {
        const size_t slot = (i - CSAE_DG_COUNT) / CSAE_DL_COUNT; /* < 100 */
        if (slot >= 10)
            out[len++] = (char)('0' + slot / 10);
        out[len++] = (char)('0' + slot % 10);
    }
    if (npy) {
        memcpy(out + len, ".npy", 4);
        len += 4;
    }
    out[len] = '\0';
    return len;
}

size_t csae_deep_member_name(size_t i, char *out, size_t cap)
{
    return out ? deep_name(i, out, cap, 0) : 0;
}

static size_t slot_member(size_t slot, int which)
{
    return CSAE_DG_COUNT + slot * CSAE_DL_COUNT + (size_t)which;
}

/* The sizes member: int64 values, each >= 1. */
typedef struct {
    uint64_t *values;
    size_t cap, count;
} sizes_ctx;

static csae_status consume_sizes(void *vctx, const unsigned char *p, size_t n)
{
    sizes_ctx *c = vctx;
    for (size_t at = 0; at < n; at += 8) {
        int64_t v;
        memcpy(&v, p + at, 8);
        if (c->count >= c->cap || v < 1)
            return CSAE_ERR_FORMAT;
        c->values[c->count++] = (uint64_t)v;
    }
    return CSAE_OK;
}

/* Class labels other than floats: copied as they are (to dest when given,
 * cap bytes); UTF-32 code points checked. */
typedef struct {
    int text;
    unsigned char *dest;
    size_t cap, done;
} labels_ctx;

static csae_status consume_labels(void *vctx, const unsigned char *p, size_t n)
{
    labels_ctx *c = vctx;
    if (c->dest && (n > c->cap || c->done > c->cap - n))
        return CSAE_ERR_FORMAT;
    for (size_t at = 0; c->text && at < n; at += 4) {
        uint32_t cp;
        memcpy(&cp, p + at, 4);
        if (cp > MAX_CODE_POINT)
            return CSAE_ERR_FORMAT;
    }
    if (c->dest)
        memcpy(c->dest + c->done, p, n);
    c->done += n;
    return CSAE_OK;
}

typedef struct {
    const npz_file *r;
    npz_member *m;
    csae_deep_shape *out;
    void *const *dest;              /* NULL: check only */
    const csae_deep_shape *expect;  /* with dest: the caller's sizes */
} deep_scan;

static void deep_note(deep_scan *s, size_t i)
{
    const npy_array *a = &s->m[i].array;
    s->out->present[i] = 1;
    s->out->kind[i] = a->kind;
    s->out->itemsize[i] = a->itemsize;
    s->out->ndim[i] = a->ndim;
    s->out->shape[i][0] = a->ndim > 0 ? a->shape[0] : 0;
    s->out->shape[i][1] = a->ndim > 1 ? a->shape[1] : 0;
}

/* Elements the caller's buffer for member i holds (from its layout). */
static size_t deep_cap(const deep_scan *s, size_t i)
{
    const csae_deep_shape *e = s->expect;
    size_t count = 1;
    for (int d = 0; d < e->ndim[i]; d++)
        count *= (size_t)e->shape[i][d]; /* fits: checked when that layout was read */
    return count;
}

/* A float member of the given shape (ANY_LENGTH: any), finite (and in the
 * range `rule` names); copied when the caller gave a buffer. */
static csae_status deep_floats(deep_scan *s, size_t i, size_t itemsize, int ndim, uint64_t d0,
                               uint64_t d1, int rule)
{
    void *target = s->dest ? s->dest[i] : NULL;
    if (target && (!s->expect->present[i] || s->expect->kind[i] != 'f'
                   || s->expect->itemsize[i] != itemsize || s->expect->ndim[i] != ndim))
        return CSAE_ERR_MISMATCH;
    csae_status st = read_floats(s->r, &s->m[i], itemsize, ndim, d0, d1, rule, target,
                                 target ? deep_cap(s, i) : 0);
    if (st == CSAE_OK)
        deep_note(s, i);
    return st;
}

static int present(const deep_scan *s, size_t i) { return s->m[i].present; }

/* A layer from `in` to `out` units in the model's element type e: its
 * weights (out, in) in member w and its bias (out,) in member b, finite. */
static csae_status deep_layer(deep_scan *s, size_t w, size_t b, size_t e, uint64_t out,
                              uint64_t in)
{
    csae_status st = deep_floats(s, w, e, 2, out, in, ANY_FINITE);
    return st != CSAE_OK ? st : deep_floats(s, b, e, 1, out, 0, ANY_FINITE);
}

/* An input range of n values: members i (the lows) and i + 1 (the scales). */
static csae_status deep_range(deep_scan *s, size_t i, uint64_t n)
{
    csae_status st = CSAE_OK;
    for (size_t k = 0; k < 2 && st == CSAE_OK; k++)
        st = deep_floats(s, i + k, RANGE_ITEMSIZE, 1, n, 0, range_values[k]);
    return st;
}

/* The kinds of deep file and their format names (a SparseAutoencoder's
 * file is none of them). */
static const char *const deep_format_names[] = {"csae.StackedEncoder",
                                                "csae.SparseAutoencoderClassifier"};
static const csae_deep_file_kind deep_kinds[] = {CSAE_DEEP_FILE_ENCODER,
                                                 CSAE_DEEP_FILE_CLASSIFIER};
static const size_t deep_required[] = {CSAE_DG_CSAE_VERSION, CSAE_DG_HYPER, CSAE_DG_SIZES};
static const file_head deep_file_head = {
    deep_format_names, 2, DEEP_FORMAT_VERSION, CSAE_DG_FORMAT, CSAE_DG_VERSION,
    CSAE_DG_CSAE_VERSION, CSAE_DG_HYPER, deep_required,
    sizeof deep_required / sizeof deep_required[0],
    /* The record's content is Python's to check: here, bounded ASCII text. */
    MAX_DEEP_RECORD_MEMBER, CSAE_DEEP_RECORD_MAX,
};

/* The sizes member into info: widths chained, byte counts that fit. */
static csae_status deep_sizes(deep_scan *s)
{
    npz_member *m = &s->m[CSAE_DG_SIZES];
    csae_deep_file *info = &s->out->info;
    const int classifier = info->kind == CSAE_DEEP_FILE_CLASSIFIER;
    csae_status st = member_header(s->r, m, MAX_NPY_HEADER + 8u * (CSAE_DEEP_FILE_MAX_LAYERS + 2),
                                   "i", 8, 1, 1);
    if (st != CSAE_OK)
        return st;
    const npy_array *a = &m->array;
    const uint64_t extra = classifier ? 2 : 1; /* n (and k) besides the hidden widths */
    if (a->shape[0] < extra + 1 || a->shape[0] > extra + CSAE_DEEP_FILE_MAX_LAYERS)
        return CSAE_ERR_FORMAT;
    uint64_t values[CSAE_DEEP_FILE_MAX_LAYERS + 2];
    sizes_ctx c = {values, CSAE_DEEP_FILE_MAX_LAYERS + 2, 0};
    st = csae_npz_stream(s->r, m, 8, consume_sizes, &c);
    if (st != CSAE_OK)
        return st;
    if (c.count != a->shape[0])
        return CSAE_ERR_FORMAT;
    info->n_hidden_layers = (size_t)(a->shape[0] - extra);
    const size_t L = info->n_hidden_layers, layers = L + (size_t)classifier;
    memset(info->sizes, 0, sizeof info->sizes);
    for (size_t l = 0; l < c.count; l++) {
        if (values[l] > MAX_COUNT || values[l] > SIZE_MAX)
            return CSAE_ERR_FORMAT;
        info->sizes[l] = (size_t)values[l];
    }
    if (classifier && info->sizes[L + 1] < 2)
        return CSAE_ERR_FORMAT;
    if (!classifier)
        info->sizes[L + 1] = 1;
    /* Every layer's element count, and their sum, as bytes of float64. */
    size_t total = 0;
    for (size_t l = 0; l < layers; l++) {
        size_t w, bytes;
        if (!checked_mul_size(info->sizes[l + 1], info->sizes[l], &w)
            || w > SIZE_MAX - info->sizes[l + 1] || w + info->sizes[l + 1] > SIZE_MAX - total)
            return CSAE_ERR_FORMAT;
        total += w + info->sizes[l + 1];
        if (!checked_mul_size(total, sizeof(double), &bytes))
            return CSAE_ERR_FORMAT;
    }
    info->n_params = total;
    deep_note(s, CSAE_DG_SIZES);
    return CSAE_OK;
}

/* The classes member: k labels, numbers or text, native byte order. */
static csae_status deep_classes(deep_scan *s, size_t k)
{
    npz_member *m = &s->m[CSAE_DG_CLASSES];
    csae_status st = member_header(s->r, m, ANY_SIZE, ANY_KIND, ANY_ITEMSIZE, 1, 1);
    if (st != CSAE_OK)
        return st;
    const npy_array *a = &m->array;
    if (a->shape[0] != k
        || (a->kind == 'U' && (a->itemsize < 4 || a->itemsize > 4 * MAX_CLASS_CHARS)))
        return CSAE_ERR_FORMAT;
    if (a->kind == 'f')
        return deep_floats(s, CSAE_DG_CLASSES, (size_t)a->itemsize, 1, k, 0, ANY_FINITE);
    void *target = s->dest ? s->dest[CSAE_DG_CLASSES] : NULL;
    size_t cap = 0;
    if (target) {
        const csae_deep_shape *e = s->expect;
        if (e->kind[CSAE_DG_CLASSES] != a->kind || e->itemsize[CSAE_DG_CLASSES] != a->itemsize
            || e->shape[CSAE_DG_CLASSES][0] != k)
            return CSAE_ERR_MISMATCH;
        cap = (size_t)a->itemsize * k; /* fits: the header check bounded it by the file */
    }
    labels_ctx c = {a->kind == 'U', target, cap, 0};
    st = csae_npz_stream(s->r, m, a->kind == 'U' ? 4 : (size_t)a->itemsize, consume_labels, &c);
    if (st == CSAE_OK)
        deep_note(s, CSAE_DG_CLASSES);
    return st;
}

/* The autoencoder of hidden layer l (of a stack, or a classifier's
 * pretraining): its decoder, loss curve, own input range, and, when that
 * range is folded into the network's layer (l > 0), its own encoder. */
static csae_status deep_autoencoder(deep_scan *s, size_t l)
{
    const size_t *z = s->out->info.sizes;
    const size_t e = s->out->info.elem_size;
    const size_t i = slot_member(l, 0);
    csae_status st;
    if (!present(s, i + CSAE_DL_DB) || !present(s, i + CSAE_DL_ALOSS))
        return CSAE_ERR_FORMAT;
    const int ranged = present(s, i + CSAE_DL_AMIN);
    if (ranged != present(s, i + CSAE_DL_ASCALE))
        return CSAE_ERR_FORMAT;
    const int own = ranged && l > 0;
    if (present(s, i + CSAE_DL_AW) != own || present(s, i + CSAE_DL_AB) != own)
        return CSAE_ERR_FORMAT;
    /* its decoder: back from layer l's width to its input's */
    if ((st = deep_layer(s, i + CSAE_DL_DW, i + CSAE_DL_DB, e, z[l], z[l + 1])) != CSAE_OK
        || (st = deep_floats(s, i + CSAE_DL_ALOSS, 8, 1, ANY_LENGTH, 0, ANY_FINITE)) != CSAE_OK)
        return st;
    if (ranged && (st = deep_range(s, i + CSAE_DL_AMIN, z[l])) != CSAE_OK)
        return st;
    if (own && (st = deep_layer(s, i + CSAE_DL_AW, i + CSAE_DL_AB, e, z[l + 1], z[l])) != CSAE_OK)
        return st;
    return CSAE_OK;
}

/* Every layer slot: the network, the classifier's pretrained network, the
 * autoencoders; nothing in a slot the network does not have. */
static csae_status deep_layers(deep_scan *s)
{
    const csae_deep_file *info = &s->out->info;
    const int classifier = info->kind == CSAE_DEEP_FILE_CLASSIFIER;
    const size_t L = info->n_hidden_layers, layers = L + (size_t)classifier;
    const size_t *z = info->sizes;
    const size_t e = info->elem_size;
    csae_status st;
    /* The classifier's autoencoders are all there or none (pretrain=False). */
    const int autoencoders = present(s, slot_member(0, CSAE_DL_DW));
    if (!classifier && !autoencoders)
        return CSAE_ERR_FORMAT;
    for (size_t l = 0; l < DEEP_SLOTS; l++) {
        const size_t i = slot_member(l, 0);
        int expected[CSAE_DL_COUNT] = {0};
        expected[CSAE_DL_W] = expected[CSAE_DL_B] = l < layers;
        expected[CSAE_DL_PW] = expected[CSAE_DL_PB] = classifier && l < layers;
        expected[CSAE_DL_DW] = autoencoders && l < L;
        for (int k = 0; k < CSAE_DL_COUNT; k++) {
            const int optional = k >= CSAE_DL_DB && k <= CSAE_DL_ALOSS;
            if (present(s, i + (size_t)k) != expected[k]
                && !(optional && expected[CSAE_DL_DW]))
                return CSAE_ERR_FORMAT;
        }
        if (l >= layers)
            continue;
        if ((st = deep_layer(s, i + CSAE_DL_W, i + CSAE_DL_B, e, z[l + 1], z[l])) != CSAE_OK)
            return st;
        if (classifier
            && (st = deep_layer(s, i + CSAE_DL_PW, i + CSAE_DL_PB, e, z[l + 1], z[l])) != CSAE_OK)
            return st;
        if (expected[CSAE_DL_DW] && (st = deep_autoencoder(s, l)) != CSAE_OK)
            return st;
    }
    return CSAE_OK;
}

/* The input range and the classifier's labels and curves. */
static csae_status deep_rest(deep_scan *s)
{
    const csae_deep_file *info = &s->out->info;
    const int classifier = info->kind == CSAE_DEEP_FILE_CLASSIFIER;
    const size_t n = info->sizes[0];
    csae_status st;
    const int ranged = present(s, CSAE_DG_DMIN);
    if (ranged != present(s, CSAE_DG_DSCALE))
        return CSAE_ERR_FORMAT;
    /* A stack scales its input as its first autoencoder does. */
    if (!classifier && ranged != present(s, slot_member(0, CSAE_DL_AMIN)))
        return CSAE_ERR_FORMAT;
    if (ranged && (st = deep_range(s, CSAE_DG_DMIN, n)) != CSAE_OK)
        return st;
    s->out->info.has_range = ranged;
    if (present(s, CSAE_DG_CLASSES) != classifier || present(s, CSAE_DG_LOSS) != classifier
        || (!classifier && present(s, CSAE_DG_VLOSS)))
        return CSAE_ERR_FORMAT;
    if (!classifier)
        return CSAE_OK;
    if ((st = deep_classes(s, info->sizes[info->n_hidden_layers + 1])) != CSAE_OK
        || (st = deep_floats(s, CSAE_DG_LOSS, 8, 1, ANY_LENGTH, 0, ANY_FINITE)) != CSAE_OK)
        return st;
    if (present(s, CSAE_DG_VLOSS))
        return deep_floats(s, CSAE_DG_VLOSS, 8, 1, ANY_LENGTH, 0, ANY_FINITE);
    return CSAE_OK;
}

static int same_info(const csae_deep_file *a, const csae_deep_file *b)
{
    if (a->kind != b->kind || a->n_hidden_layers != b->n_hidden_layers
        || a->n_hidden_layers > CSAE_DEEP_FILE_MAX_LAYERS || a->elem_size != b->elem_size
        || a->n_params != b->n_params || a->has_range != b->has_range)
        return 0;
    for (size_t l = 0; l < a->n_hidden_layers + 2; l++)
        if (a->sizes[l] != b->sizes[l])
            return 0;
    return 1;
}

/* Check the whole file (out: what it holds; record: its record when not
 * NULL, CSAE_DEEP_RECORD_MAX + 1 bytes); with dest, copy each member i
 * whose dest[i] is not NULL, after checking the file against expect. */
static csae_status deep_scan_file(const npz_file *r, csae_deep_shape *out, char *record,
                                  void *const *dest, const csae_deep_shape *expect)
{
    npz_member m[CSAE_DEEP_MEMBERS];
    char names[CSAE_DEEP_MEMBERS][DEEP_NAME_MAX];
    const char *name_of[CSAE_DEEP_MEMBERS];
    for (size_t i = 0; i < CSAE_DEEP_MEMBERS; i++) {
        deep_name(i, names[i], DEEP_NAME_MAX, 1);
        name_of[i] = names[i];
    }
    int unknown;
    csae_status st = csae_npz_directory_max(r, name_of, CSAE_DEEP_MEMBERS, m, &unknown,
                                            DEEP_MAX_ENTRIES);
    if (st != CSAE_OK)
        return st;
    memset(out, 0, sizeof *out);
    deep_scan s = {r, m, out, dest, expect};
    size_t which;
    if ((st = read_head(r, m, unknown, &deep_file_head, &which, &out->version, record,
                        &out->record_len)) != CSAE_OK)
        return st;
    out->info.kind = deep_kinds[which];
    if ((st = deep_sizes(&s)) != CSAE_OK)
        return st;
    /* The element type: the first layer's weights' (every other array of
     * the model's type is checked against it). */
    npz_member *w0 = &m[slot_member(0, CSAE_DL_W)];
    if (!w0->present)
        return CSAE_ERR_FORMAT;
    if ((st = member_header(r, w0, ANY_SIZE, "f", ANY_ITEMSIZE, ANY_RANK, 0)) != CSAE_OK)
        return st;
    out->info.elem_size = (size_t)w0->array.itemsize;
    if (dest) {
        /* The caller's buffers were sized from expect: the file must
         * still have its sizes and element type before anything is copied
         * (its input range is known once read: compared at the end). */
        csae_deep_file now = out->info;
        now.has_range = expect->info.has_range;
        if (now.elem_size != expect->info.elem_size && now.kind == expect->info.kind)
            return CSAE_ERR_DTYPE;
        if (!same_info(&now, &expect->info))
            return CSAE_ERR_MISMATCH;
    }
    if ((st = deep_layers(&s)) != CSAE_OK || (st = deep_rest(&s)) != CSAE_OK)
        return st;
    if (dest && out->info.has_range != expect->info.has_range)
        return CSAE_ERR_MISMATCH;
    return CSAE_OK;
}

/* ---- Public functions (csae.h) ------------------------------------------ */

csae_status csae_deep_file_info(const char *path, csae_deep_file *info)
{
    if (!path || !info)
        return CSAE_ERR_ARGUMENT;
    npz_file r;
    csae_status st = csae_npz_open(path, &r);
    if (st != CSAE_OK)
        return st;
    csae_deep_shape shape;
    st = deep_scan_file(&r, &shape, NULL, NULL, NULL);
    csae_npz_close(&r);
    if (st == CSAE_OK)
        *info = shape.info;
    return st;
}

/* expect for a read into theta (and the range): the caller's info, and
 * the shapes of the members it copies, from that info alone. */
static csae_status deep_expect(const csae_deep_file *info, size_t elem_size,
                               csae_deep_shape *expect)
{
    if (info->n_hidden_layers < 1 || info->n_hidden_layers > CSAE_DEEP_FILE_MAX_LAYERS
        || (info->kind != CSAE_DEEP_FILE_ENCODER && info->kind != CSAE_DEEP_FILE_CLASSIFIER))
        return CSAE_ERR_ARGUMENT;
    memset(expect, 0, sizeof *expect);
    expect->info = *info;
    const size_t layers = info->n_hidden_layers + (info->kind == CSAE_DEEP_FILE_CLASSIFIER);
    for (size_t l = 0; l < layers; l++) {
        const size_t w = slot_member(l, CSAE_DL_W), b = slot_member(l, CSAE_DL_B);
        expect->present[w] = expect->present[b] = 1;
        expect->kind[w] = expect->kind[b] = 'f';
        expect->itemsize[w] = expect->itemsize[b] = elem_size;
        expect->ndim[w] = 2;
        expect->ndim[b] = 1;
        expect->shape[w][0] = expect->shape[b][0] = info->sizes[l + 1];
        expect->shape[w][1] = info->sizes[l];
    }
    for (size_t i = CSAE_DG_DMIN; i <= CSAE_DG_DSCALE; i++) {
        expect->present[i] = info->has_range;
        expect->kind[i] = 'f';
        expect->itemsize[i] = RANGE_ITEMSIZE;
        expect->ndim[i] = 1;
        expect->shape[i][0] = info->sizes[0];
    }
    return CSAE_OK;
}

/* theta's layer arrays (weights then bias per layer) into dest; the
 * caller's n_params must be what its sizes give. */
static csae_status read_deep(const char *path, const csae_deep_file *info, size_t elem_size,
                             unsigned char *theta, double *data_min, double *data_scale)
{
    if (!path || !info || (!theta && !data_min) || (data_min == NULL) != (data_scale == NULL))
        return CSAE_ERR_ARGUMENT;
    csae_deep_shape expect;
    csae_status st = deep_expect(info, elem_size, &expect);
    if (st != CSAE_OK)
        return st;
    void *dest[CSAE_DEEP_MEMBERS] = {NULL};
    const size_t layers = info->n_hidden_layers + (info->kind == CSAE_DEEP_FILE_CLASSIFIER);
    size_t at = 0;
    for (size_t l = 0; theta && l < layers; l++) {
        size_t w;
        const size_t h = info->sizes[l + 1];
        if (!checked_mul_size(h, info->sizes[l], &w) || w > info->n_params - at
            || h > info->n_params - at - w)
            return CSAE_ERR_ARGUMENT; /* sizes and n_params disagree */
        dest[slot_member(l, CSAE_DL_W)] = theta + at * elem_size;
        dest[slot_member(l, CSAE_DL_B)] = theta + (at + w) * elem_size;
        at += w + h;
    }
    if (theta && at != info->n_params)
        return CSAE_ERR_ARGUMENT;
    if (data_min) {
        if (!info->has_range)
            return CSAE_ERR_ARGUMENT;
        dest[CSAE_DG_DMIN] = data_min;
        dest[CSAE_DG_DSCALE] = data_scale;
    }
    npz_file r;
    st = csae_npz_open(path, &r);
    if (st != CSAE_OK)
        return st;
    csae_deep_shape shape;
    /* One pass that validates, a second that copies (as read_weights). */
    st = deep_scan_file(&r, &shape, NULL, NULL, NULL);
    if (st == CSAE_OK && theta && shape.info.elem_size != elem_size
        && shape.info.kind == info->kind)
        st = CSAE_ERR_DTYPE;
    if (st == CSAE_OK && !same_info(&shape.info, info))
        st = CSAE_ERR_MISMATCH;
    if (st == CSAE_OK)
        st = deep_scan_file(&r, &shape, NULL, dest, &expect);
    csae_npz_close(&r);
    return st;
}

csae_status csae_deep_file_read_f64(const char *path, const csae_deep_file *info, double *theta)
{
    if (!theta)
        return CSAE_ERR_ARGUMENT;
    return read_deep(path, info, sizeof(double), (unsigned char *)theta, NULL, NULL);
}

csae_status csae_deep_file_read_f32(const char *path, const csae_deep_file *info, float *theta)
{
    if (!theta)
        return CSAE_ERR_ARGUMENT;
    return read_deep(path, info, sizeof(float), (unsigned char *)theta, NULL, NULL);
}

csae_status csae_deep_file_input_range(const char *path, const csae_deep_file *info,
                                       double *data_min, double *data_scale)
{
    if (!info || !data_min || !data_scale)
        return CSAE_ERR_ARGUMENT;
    return read_deep(path, info, info->elem_size, NULL, data_min, data_scale);
}

/* ---- The whole file, for the Python binding (model_file.h) -------------- */

csae_status csae_deep_file_layout(int fd, csae_deep_layout *layout)
{
    if (!layout)
        return CSAE_ERR_ARGUMENT;
    npz_file r;
    csae_status st = csae_npz_from_fd(fd, &r);
    if (st != CSAE_OK)
        return st;
    return deep_scan_file(&r, &layout->shape, layout->record, NULL, NULL);
}

static int same_shape(const csae_deep_shape *a, const csae_deep_shape *b)
{
    if (!same_info(&a->info, &b->info) || a->version != b->version
        || a->record_len != b->record_len)
        return 0;
    for (size_t i = 0; i < CSAE_DEEP_MEMBERS; i++)
        if (a->present[i] != b->present[i] || a->kind[i] != b->kind[i]
            || a->itemsize[i] != b->itemsize[i] || a->ndim[i] != b->ndim[i]
            || a->shape[i][0] != b->shape[i][0] || a->shape[i][1] != b->shape[i][1])
            return 0;
    return 1;
}

csae_status csae_deep_file_read_all(int fd, const csae_deep_layout *layout, void *const *dest)
{
    if (!layout || !dest)
        return CSAE_ERR_ARGUMENT;
    void *copy[CSAE_DEEP_MEMBERS];
    for (size_t i = 0; i < CSAE_DEEP_MEMBERS; i++) {
        /* The strings and sizes are in the layout; what it lacks has no room. */
        const int copied = i != CSAE_DG_FORMAT && i != CSAE_DG_VERSION
                           && i != CSAE_DG_CSAE_VERSION && i != CSAE_DG_HYPER
                           && i != CSAE_DG_SIZES && layout->shape.present[i];
        if (copied && !dest[i])
            return CSAE_ERR_ARGUMENT;
        copy[i] = copied ? dest[i] : NULL;
    }
    npz_file r;
    csae_status st = csae_npz_from_fd(fd, &r);
    if (st != CSAE_OK)
        return st;
    csae_deep_shape now;
    char record[CSAE_DEEP_RECORD_MAX + 1];
    st = deep_scan_file(&r, &now, record, copy, &layout->shape);
    if (st == CSAE_OK && (!same_shape(&now, &layout->shape)
                          || memcmp(record, layout->record, now.record_len) != 0))
        st = CSAE_ERR_MISMATCH;
    return st;
}
