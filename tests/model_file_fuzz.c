/*
 * model_file_fuzz.c: the model-file reader against thousands of damaged
 * files, built with AddressSanitizer + UBSan by tests/test_model_file.py.
 *
 *   model_file_fuzz WORKDIR ITERATIONS SEED FILE...
 *
 * For each FILE (a valid model saved by Python): every truncation, then
 * ITERATIONS mutants of three kinds:
 *   raw     bit flips, interesting bytes and 16/32/64-bit values at random
 *           places (most of them the zip headers' sizes and offsets), cut,
 *           repeated or deleted spans;
 *   deep    bytes changed inside one member (its .npy header, its values, or
 *           a character of the hyperparameter record) with the member's
 *           CRC-32 recomputed in both headers, so the parsers behind the
 *           CRC check see the damage;
 *   both.
 * Each mutant is written to WORKDIR and read with every function, the public
 * ones and the whole-file pair csae.load uses (model_file.h), which must
 * agree with them on whether the file is valid and on the weights; the
 * seeds may be SparseAutoencoder files or deep models' files, and each
 * mutant goes through both readers (csae_model_file_* and csae_deep_file_*),
 * of which at most one may accept it.  The
 * sanitizers abort on any memory error or undefined behaviour; the program
 * itself fails if a status is unknown, if a file is accepted whose info
 * makes no sense, or if accepted weights are not finite.  Accepted mutants
 * are kept as WORKDIR/accepted_<k>.npz (up to MAX_KEPT) for the test to
 * load in Python: what C accepts, Python must accept with the same values.
 * Prints one summary line ending in "0 failed".
 */
#define _POSIX_C_SOURCE 200809L /* open, close */

#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csae.h"
#include "model_file.h"

static uint64_t rng;
static uint64_t next(void) { return csae_rng_next(&rng); }
static size_t below(size_t n) { return n ? (size_t)(next() % n) : 0; }

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static void wr32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t crc32(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

/* A member of a valid seed (found by walking its central directory). */
typedef struct {
    size_t central, local, data, size;
    int hyper; /* the hyperparameter record */
} member;

#define MAX_MEMBERS 256

static size_t members_of(const unsigned char *f, size_t n, member *out)
{
    size_t eocd = n - 22, count = rd16(f + eocd + 10), pos = rd32(f + eocd + 16), k = 0;
    for (size_t e = 0; e < count && k < MAX_MEMBERS; e++) {
        const size_t nlen = rd16(f + pos + 28), xlen = rd16(f + pos + 30),
                     clen = rd16(f + pos + 32), local = rd32(f + pos + 42);
        out[k].central = pos;
        out[k].local = local;
        out[k].size = rd32(f + pos + 24);
        out[k].data = local + 30 + rd16(f + local + 26) + rd16(f + local + 28);
        out[k].hyper = nlen == 19 && memcmp(f + pos + 46, "hyperparameters.npy", 19) == 0;
        k++;
        pos += 46 + nlen + xlen + clen;
    }
    return k;
}

static const uint64_t interesting[] = {
    0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
    0x80000000u, 0xFFFFFFFFu, 0x100000000ull, 0x7FFFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull,
};
#define N_INTERESTING (sizeof interesting / sizeof interesting[0])

/* Raw damage anywhere; returns the new length. */
static size_t mutate_raw(unsigned char *f, size_t n, size_t cap)
{
    if (n == 0)
        return 0;
    const size_t at = (next() & 1) ? below(n) : n - 1 - below(n < 200 ? n : 200);
    switch (below(7)) {
    case 0:
        f[at] ^= (unsigned char)(1u << below(8));
        break;
    case 1:
        f[at] = (unsigned char)interesting[below(N_INTERESTING)];
        break;
    case 2:
    case 3: { /* a 2-, 4- or 8-byte little-endian value */
        const size_t width = (size_t)2 << below(3);
        uint64_t v = (next() & 3) ? interesting[below(N_INTERESTING)] : next() % (2 * n + 1);
        for (size_t i = 0; i < width && at + i < n; i++, v >>= 8)
            f[at + i] = (unsigned char)v;
        break;
    }
    case 4: /* cut */
        return below(n + 1);
    case 5: { /* delete a span */
        const size_t len = 1 + below(64);
        if (at + len <= n) {
            memmove(f + at, f + at + len, n - at - len);
            return n - len;
        }
        break;
    }
    case 6: { /* repeat a span */
        const size_t len = 1 + below(64);
        if (at + len <= n && n + len <= cap) {
            memmove(f + at + len, f + at, n - at);
            return n + len;
        }
        break;
    }
    }
    return n;
}

/* Damage inside one member, then fix its CRC in both headers. */
static void mutate_deep(unsigned char *f, const member *m, size_t count)
{
    const member *x = &m[below(count)];
    if (x->size == 0)
        return;
    const int edits = 1 + (int)below(3);
    for (int e = 0; e < edits; e++) {
        if (x->hyper && (next() & 1) && x->size > 200) {
            /* one character of the JSON (UTF-32: low byte of a code unit) */
            const size_t start = x->size > 128 ? 128 : 0;
            const size_t unit = (start + below(x->size - start)) & ~(size_t)3;
            static const char alphabet[] = "{}[]:,\"\\ -+.0123456789eEtruefalsnl\t\n";
            if (unit + 4 <= x->size)
                f[x->data + unit] = (unsigned char)alphabet[below(sizeof alphabet - 1)];
        } else if (next() & 1) {
            /* the .npy header (first 128 bytes): printable characters */
            const size_t at = below(x->size < 128 ? x->size : 128);
            static const char alphabet[] = "{}()':,<>|=fiuUTrueFalse0123456789 \n";
            f[x->data + at] = (unsigned char)alphabet[below(sizeof alphabet - 1)];
        } else {
            const size_t at = below(x->size);
            f[x->data + at] = (next() & 1) ? (unsigned char)next()
                                            : (unsigned char)interesting[below(N_INTERESTING)];
        }
    }
    const uint32_t crc = crc32(f + x->data, x->size);
    wr32(f + x->central + 16, crc);
    wr32(f + x->local + 14, crc);
}

#define MAX_KEPT 200

static int failed;
static size_t files_read, accepted, kept, by_status[16];

static void check_status(csae_status st, const char *what)
{
    if ((int)st < 0 || (int)st > CSAE_ERR_MISMATCH) {
        printf("FAIL: %s returned unknown status %d\n", what, (int)st);
        failed++;
        return;
    }
    by_status[st]++;
}

static int all_finite_f64(const double *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return 0;
    return 1;
}

/* The whole-file pair (model_file.h) on a file the public functions
 * accepted, a float64 model whose weights they read into w64. */
static void read_whole(const char *path, const csae_model *model, const double *w64,
                       size_t total)
{
    const int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("FAIL: cannot open %s\n", path);
        failed++;
        return;
    }
    csae_model_layout layout;
    csae_status st = csae_model_file_layout(fd, &layout);
    check_status(st, "layout");
    if (st != CSAE_OK || layout.model.n_features != model->n_features
        || layout.model.n_hidden != model->n_hidden || layout.elem_size != 8) {
        printf("FAIL: layout disagrees with info (status %d)\n", (int)st);
        failed++;
        close(fd);
        return;
    }
    const size_t n = model->n_features, h = model->n_hidden;
    /* One block: weights, velocities, both moments, rho, the range, the
     * loss curve; all doubles. */
    const size_t size = 4 * total + h + 2 * n + (size_t)layout.n_iter + 1;
    double *block = malloc(size * sizeof(double));
    if (!block) {
        printf("FAIL: out of memory\n");
        failed++;
        close(fd);
        return;
    }
    csae_model_arrays dest;
    memset(&dest, 0, sizeof dest);
    const size_t offsets[4] = {0, n * h, n * h + h, 2 * n * h + h};
    for (int k = 0; k < 4; k++) {
        dest.params[k] = block + offsets[k];
        dest.velocity[k] = block + total + offsets[k];
        dest.adam_m[k] = block + 2 * total + offsets[k];
        dest.adam_v[k] = block + 3 * total + offsets[k];
    }
    dest.rho_running = block + 4 * total;
    dest.data_min = block + 4 * total + h;
    dest.data_scale = block + 4 * total + h + n;
    dest.loss_curve = block + 4 * total + h + 2 * n;
    st = csae_model_file_read_all(fd, &layout, &dest);
    check_status(st, "read_all");
    if (st != CSAE_OK || memcmp(block, w64, total * sizeof(double)) != 0) {
        printf("FAIL: read_all gave status %d or other weights than read_f64\n", (int)st);
        failed++;
    }
    free(block);
    close(fd);
}

/* Read the file at path with every function. */
static void read_all(const char *path, size_t file_size)
{
    csae_model model;
    size_t elem = 0;
    files_read++;
    csae_status st = csae_model_file_info(path, &model, &elem);
    check_status(st, "info");
    if (st != CSAE_OK)
        return;
    accepted++;
    const size_t n = model.n_features, h = model.n_hidden;
    /* A valid file holds its weights: the sizes are bounded by the file. */
    if ((elem != 4 && elem != 8) || n == 0 || h == 0 || n > file_size || h > file_size
        || n * h > file_size) {
        printf("FAIL: accepted a file with nonsense info (n=%zu h=%zu elem=%zu)\n", n, h, elem);
        failed++;
        return;
    }
    const size_t total = 2 * n * h + n + h;
    double *w64 = malloc(total * sizeof(double));
    float *w32 = malloc(total * sizeof(float));
    double *range = malloc(2 * n * sizeof(double));
    if (!w64 || !w32 || !range) {
        printf("FAIL: out of memory\n");
        failed++;
        free(w64), free(w32), free(range);
        return;
    }
    csae_params_f64 p64 = {w64, w64 + n * h, w64 + n * h + h, w64 + 2 * n * h + h};
    csae_params_f32 p32 = {w32, w32 + n * h, w32 + n * h + h, w32 + 2 * n * h + h};
    csae_status s64 = csae_model_file_read_f64(path, &model, p64);
    csae_status s32 = csae_model_file_read_f32(path, &model, p32);
    check_status(s64, "read_f64");
    check_status(s32, "read_f32");
    if ((elem == 8 && (s64 != CSAE_OK || s32 != CSAE_ERR_DTYPE))
        || (elem == 4 && (s32 != CSAE_OK || s64 != CSAE_ERR_DTYPE))) {
        printf("FAIL: info accepted %s but the reads gave %d and %d\n", path, s64, s32);
        failed++;
    }
    if (elem == 8 && s64 == CSAE_OK && !all_finite_f64(w64, total)) {
        printf("FAIL: accepted non-finite weights\n");
        failed++;
    }
    for (size_t i = 0; elem == 4 && s32 == CSAE_OK && i < total; i++)
        if (!isfinite(w32[i])) {
            printf("FAIL: accepted non-finite float32 weights\n");
            failed++;
            break;
        }
    int scales = -1;
    st = csae_model_file_input_range(path, &model, &scales, range, range + n);
    check_status(st, "input_range");
    if (st == CSAE_OK && scales == 1 && !all_finite_f64(range, 2 * n)) {
        printf("FAIL: accepted a non-finite input range\n");
        failed++;
    }
    if (elem == 8 && s64 == CSAE_OK)
        read_whole(path, &model, w64, total);
    free(w64), free(w32), free(range);
}

/* The whole-file pair for deep models (model_file.h) on a file the public
 * functions accepted: the same info, the same weights (theta, float64). */
static void read_deep_whole(const char *path, const csae_deep_file *info, const double *theta)
{
    const int fd = open(path, O_RDONLY);
    csae_deep_layout *layout = malloc(sizeof *layout);
    void **dest = calloc(CSAE_DEEP_MEMBERS, sizeof(void *));
    double *block = NULL;
    if (fd < 0 || !layout || !dest) {
        printf("FAIL: cannot open %s or out of memory\n", path);
        failed++;
        goto done;
    }
    csae_status st = csae_deep_file_layout(fd, layout);
    check_status(st, "deep layout");
    if (st != CSAE_OK || layout->shape.info.n_params != info->n_params
        || layout->shape.info.n_hidden_layers != info->n_hidden_layers) {
        printf("FAIL: deep layout disagrees with info (status %d)\n", (int)st);
        failed++;
        goto done;
    }
    /* Room for every present member (8 bytes an element at most, labels
     * up to itemsize), in one block. */
    size_t total = 0;
    for (size_t i = 0; i < CSAE_DEEP_MEMBERS; i++)
        if (layout->shape.present[i]) {
            size_t count = 1;
            for (int d = 0; d < layout->shape.ndim[i]; d++)
                count *= (size_t)layout->shape.shape[i][d];
            total += count * (size_t)layout->shape.itemsize[i] / sizeof(double) + 1;
        }
    block = malloc((total + 1) * sizeof(double));
    if (!block) {
        printf("FAIL: out of memory\n");
        failed++;
        goto done;
    }
    size_t at = 0;
    for (size_t i = 0; i < CSAE_DEEP_MEMBERS; i++)
        if (layout->shape.present[i]) {
            size_t count = 1;
            for (int d = 0; d < layout->shape.ndim[i]; d++)
                count *= (size_t)layout->shape.shape[i][d];
            dest[i] = block + at;
            at += count * (size_t)layout->shape.itemsize[i] / sizeof(double) + 1;
        }
    st = csae_deep_file_read_all(fd, layout, dest);
    check_status(st, "deep read_all");
    /* weights_0 is theta's first block. */
    if (st != CSAE_OK || memcmp(dest[CSAE_DG_COUNT + CSAE_DL_W], theta,
                                info->sizes[0] * info->sizes[1] * sizeof(double)) != 0) {
        printf("FAIL: deep read_all gave status %d or other weights than read_f64\n", (int)st);
        failed++;
    }
done:
    if (fd >= 0)
        close(fd);
    free(layout), free(dest), free(block);
}

/* Read the file at path with every deep-model function; 1 if accepted. */
static int read_deep(const char *path, size_t file_size)
{
    csae_deep_file info;
    csae_status st = csae_deep_file_info(path, &info);
    check_status(st, "deep info");
    if (st != CSAE_OK)
        return 0;
    const size_t e = info.elem_size, L = info.n_hidden_layers;
    int sane = (e == 4 || e == 8) && L >= 1 && L <= CSAE_DEEP_FILE_MAX_LAYERS
               && (info.kind == CSAE_DEEP_FILE_ENCODER || info.kind == CSAE_DEEP_FILE_CLASSIFIER)
               && info.n_params >= 1 && info.n_params <= file_size / e;
    for (size_t l = 0; sane && l < L + 2; l++)
        sane = info.sizes[l] >= 1 && info.sizes[l] <= file_size;
    if (!sane) {
        printf("FAIL: accepted a deep file with nonsense info (L=%zu elem=%zu)\n", L, e);
        failed++;
        return 1;
    }
    double *t64 = malloc(info.n_params * sizeof(double));
    float *t32 = malloc(info.n_params * sizeof(float));
    double *range = malloc(2 * info.sizes[0] * sizeof(double));
    if (!t64 || !t32 || !range) {
        printf("FAIL: out of memory\n");
        failed++;
        free(t64), free(t32), free(range);
        return 1;
    }
    const csae_status s64 = csae_deep_file_read_f64(path, &info, t64);
    const csae_status s32 = csae_deep_file_read_f32(path, &info, t32);
    check_status(s64, "deep read_f64");
    check_status(s32, "deep read_f32");
    if ((e == 8 && (s64 != CSAE_OK || s32 != CSAE_ERR_DTYPE))
        || (e == 4 && (s32 != CSAE_OK || s64 != CSAE_ERR_DTYPE))) {
        printf("FAIL: deep info accepted %s but the reads gave %d and %d\n", path, s64, s32);
        failed++;
    }
    for (size_t i = 0; i < info.n_params; i++)
        if ((e == 8 && s64 == CSAE_OK && !isfinite(t64[i]))
            || (e == 4 && s32 == CSAE_OK && !isfinite(t32[i]))) {
            printf("FAIL: accepted non-finite deep weights\n");
            failed++;
            break;
        }
    if (info.has_range) {
        st = csae_deep_file_input_range(path, &info, range, range + info.sizes[0]);
        check_status(st, "deep input_range");
        if (st != CSAE_OK || !all_finite_f64(range, 2 * info.sizes[0])) {
            printf("FAIL: deep input range status %d or not finite\n", (int)st);
            failed++;
        }
    }
    if (e == 8 && s64 == CSAE_OK)
        read_deep_whole(path, &info, t64);
    free(t64), free(t32), free(range);
    return 1;
}

/* Both readers; a file is accepted by at most one. */
static void read_any(const char *path, size_t file_size)
{
    const size_t before = accepted;
    read_all(path, file_size);
    const int single = accepted != before;
    if (read_deep(path, file_size)) {
        if (single) {
            printf("FAIL: %s accepted as a SparseAutoencoder and as a deep model\n", path);
            failed++;
        }
        accepted = before + 1;
    }
}

static int write_file(const char *path, const unsigned char *f, size_t n)
{
    FILE *out = fopen(path, "wb");
    if (!out || fwrite(f, 1, n, out) != n || fclose(out) != 0) {
        printf("FAIL: cannot write %s\n", path);
        failed++;
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s WORKDIR ITERATIONS SEED FILE...\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/mutant.npz", argv[1]);
    const long iterations = atol(argv[2]);
    rng = strtoull(argv[3], NULL, 10);
    for (int a = 4; a < argc; a++) {
        FILE *in = fopen(argv[a], "rb");
        if (!in) {
            printf("FAIL: cannot open seed %s\n", argv[a]);
            return 1;
        }
        fseek(in, 0, SEEK_END);
        const size_t size = (size_t)ftell(in);
        fseek(in, 0, SEEK_SET);
        const size_t cap = size + 4096;
        unsigned char *seed = malloc(cap), *f = malloc(cap);
        if (!seed || !f || fread(seed, 1, size, in) != size) {
            printf("FAIL: cannot read seed %s\n", argv[a]);
            return 1;
        }
        fclose(in);
        member m[MAX_MEMBERS];
        const size_t count = members_of(seed, size, m);

        /* The seed itself must be accepted. */
        if (!write_file(path, seed, size))
            return 1;
        const size_t before = accepted;
        read_any(path, size);
        if (accepted != before + 1) {
            printf("FAIL: the seed %s is refused\n", argv[a]);
            failed++;
        }
        /* Every truncation. */
        for (size_t len = 0; len < size; len++) {
            if (!write_file(path, seed, len))
                return 1;
            read_any(path, len);
        }
        for (long it = 0; it < iterations; it++) {
            memcpy(f, seed, size);
            size_t n = size;
            const int kind = (int)below(3);
            if (kind != 0)
                mutate_deep(f, m, count);
            if (kind != 1) {
                const int edits = 1 + (int)below(4);
                for (int e = 0; e < edits; e++)
                    n = mutate_raw(f, n, cap);
            }
            if (!write_file(path, f, n))
                return 1;
            const size_t before_mutant = accepted;
            read_any(path, n);
            if (accepted != before_mutant && kept < MAX_KEPT) {
                char keep[4096 + 32];
                snprintf(keep, sizeof keep, "%s/accepted_%zu.npz", argv[1], kept++);
                if (!write_file(keep, f, n))
                    return 1;
            }
        }
        free(seed);
        free(f);
    }
    printf("statuses:");
    for (int s = 0; s <= CSAE_ERR_MISMATCH; s++)
        printf(" %d:%zu", s, by_status[s]);
    printf("\n%zu files read, %zu accepted, %d failed\n", files_read, accepted, failed);
    return failed != 0;
}
