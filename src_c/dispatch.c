/*
 * dispatch.c: register the kernel paths (the one list of them), choose one
 * once, from the CPU, and let the caller (or CSAE_KERNEL_PATH=<name> in the
 * environment) override the choice; derive each path's cache blocking from the caches the CPU
 * reports.  Nothing else in the library asks which CPU it runs on.
 */
/* sysconf's cache queries are glibc extensions beyond C11. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

#include "csae.h"
#include "kernels.h"

/* ---- The registration table: one entry per kernel path --------------------
 * A kernel path is its file (path_<name>.c, which defines the register
 * tiles and micro-kernels and exports `csae_ops_<name>`) and one entry here:
 * its public id, its name (CSAE_KERNEL_PATH, csae_kernel_path_name, the
 * Python API), the test of whether this CPU runs it, and its table.  The
 * order is portable first, best last: AUTO picks the last entry the CPU
 * runs.  Ids are public and never reused: CSAE_PATH_PORTABLE, _AVX2 and
 * _AVX512 are csae.h's enumerators; a later path takes the next free
 * number, which C callers find by name (csae_kernel_path_at). */
typedef struct {
    csae_kernel_path id;
    const char *name;
    int (*supported)(void);
    const csae_ops *ops;
} path_entry;

static int runs_everywhere(void) { return 1; }

extern const csae_ops csae_ops_portable;

#ifdef CSAE_ARCH_X86_64
extern const csae_ops csae_ops_avx2, csae_ops_avx512;
/* __builtin_cpu_supports also checks that the OS saves the vector state
 * (XGETBV), not only the CPUID bits. */
static int cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static int cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}
#endif

#ifdef CSAE_ARCH_AARCH64
extern const csae_ops csae_ops_neon;
#endif

static const path_entry registry[] = {
    {CSAE_PATH_PORTABLE, "portable", runs_everywhere, &csae_ops_portable},
#ifdef CSAE_ARCH_X86_64
    {CSAE_PATH_AVX2, "avx2", cpu_has_avx2, &csae_ops_avx2},
    {CSAE_PATH_AVX512, "avx512", cpu_has_avx512, &csae_ops_avx512},
#endif
#ifdef CSAE_ARCH_AARCH64
    /* NEON and its FMA are part of the aarch64 baseline. */
    {(csae_kernel_path)4, "neon", runs_everywhere, &csae_ops_neon},
#endif
};
#define N_PATHS (sizeof registry / sizeof registry[0])

/* Set once by init() (pthread_once), then only by csae_set_kernel_path. */
static const path_entry *active;

/* The entry for `id` if this build has it and this CPU runs it (AUTO: the
 * best such entry), else NULL. */
static const path_entry *entry_for(csae_kernel_path id)
{
    if (id == CSAE_PATH_AUTO) {
        for (size_t i = N_PATHS; i-- > 0;)
            if (registry[i].supported())
                return &registry[i];
        return &registry[0];
    }
    for (size_t i = 0; i < N_PATHS; i++)
        if (registry[i].id == id)
            return registry[i].supported() ? &registry[i] : NULL;
    return NULL;
}

/* ---- Cache sizes -> block sizes ------------------------------------------ */

typedef struct {
    size_t l1d, l2, l3; /* bytes; 0 when unknown */
} cache_sizes;

#if defined(__x86_64__) && defined(__GNUC__)
/* CPUID's deterministic cache parameters: leaf 4 on Intel, 0x8000001D on
 * AMD, one subleaf per cache, in the same format. */
static void cpuid_caches(cache_sizes *c)
{
    unsigned a, b, cx, d;
    if (!__get_cpuid(0, &a, &b, &cx, &d))
        return;
    const int amd = b == 0x68747541; /* "Auth"enticAMD */
    const unsigned leaf = amd ? 0x8000001Du : 4u;
    if (amd ? (unsigned)__get_cpuid_max(0x80000000u, NULL) < leaf : a < leaf)
        return;
    for (unsigned sub = 0; sub < 16; sub++) {
        __cpuid_count(leaf, sub, a, b, cx, d);
        const unsigned type = a & 0x1f, level = (a >> 5) & 7;
        if (type == 0)
            break;
        if (type == 2) /* instruction cache */
            continue;
        const size_t size = (size_t)((b >> 22) + 1) * (((b >> 12) & 0x3ff) + 1) *
                            ((b & 0xfff) + 1) * ((size_t)cx + 1);
        if (level == 1) c->l1d = size;
        if (level == 2) c->l2 = size;
        if (level == 3) c->l3 = size;
    }
}
#endif

static cache_sizes detect_caches(void)
{
    cache_sizes c = {0, 0, 0};
#ifdef _SC_LEVEL2_CACHE_SIZE
    const long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE),
               l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    c.l1d = l1 > 0 ? (size_t)l1 : 0;
    c.l2 = l2 > 0 ? (size_t)l2 : 0;
    c.l3 = l3 > 0 ? (size_t)l3 : 0;
#endif
#if defined(__x86_64__) && defined(__GNUC__)
    if (!c.l2) /* a C library that does not answer (musl, ...) */
        cpuid_caches(&c);
#endif
    return c;
}

/* NC: the packed B block (KC x NC) takes half of L2, since every A
 * micro-panel streams all of it from there (gemm_template.h's loop order).
 * MC: the packed A block (MC x KC) a quarter of L2, so it is still there
 * when its micro-panels are read, one at a time, into L1 after packing.
 * Both whole tiles, within sane bounds for unknown or odd reports.  These
 * change speed only, never results: KC is fixed. */
static void derive_blocking(csae_blocking *b, size_t elem, cache_sizes c)
{
    const size_t l2 = c.l2 ? c.l2 : (size_t)256 << 10;
    size_t mc = l2 / 4 / (CSAE_KC * elem) / b->mr * b->mr;
    const size_t mc_max = 1024 / b->mr * b->mr;
    mc = mc < 4 * b->mr ? 4 * b->mr : (mc > mc_max ? mc_max : mc);
    size_t nc = l2 / 2 / (CSAE_KC * elem) / b->nr * b->nr;
    const size_t nc_max = 4096 / b->nr * b->nr;
    nc = nc < 8 * b->nr ? 8 * b->nr : (nc > nc_max ? nc_max : nc);
    b->mc = mc;
    b->nc = nc;
}

static cache_sizes caches;

static void init(void)
{
    caches = detect_caches();
    for (size_t i = 0; i < N_PATHS; i++) {
        derive_blocking(registry[i].ops->blocking_f64, sizeof(double), caches);
        derive_blocking(registry[i].ops->blocking_f32, sizeof(float), caches);
    }
    const char *forced = getenv("CSAE_KERNEL_PATH");
    const path_entry *entry = NULL;
    for (size_t i = 0; forced && i < N_PATHS; i++)
        if (strcmp(forced, registry[i].name) == 0)
            entry = entry_for(registry[i].id);
    /* An unknown or unsupported name falls back to the best path (the
     * Python binding warns about it). */
    active = entry ? entry : entry_for(CSAE_PATH_AUTO);
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

const csae_ops *csae_ops_active(void)
{
    pthread_once(&init_once, init);
    return active->ops;
}

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

size_t csae_gemm_pack_size(size_t n, size_t k, size_t elem_size, size_t n_threads)
{
    pthread_once(&init_once, init);
    /* The largest any path needs, so that a workspace sized before a
     * csae_set_kernel_path still fits after it.  One packed A block and one
     * packed B block per thread, each a whole number of cache lines so the
     * next buffer stays aligned.  A shallow product needs less: small models
     * get small, cheap workspaces. */
    const size_t kc = k < CSAE_KC ? k : CSAE_KC;
    size_t per_thread = 0;
    for (size_t i = 0; i < N_PATHS; i++) {
        const csae_blocking *b = elem_size == sizeof(float) ? registry[i].ops->blocking_f32
                                                            : registry[i].ops->blocking_f64;
        const size_t nc = round_up(n < b->nc ? n : b->nc, b->nr);
        const size_t bytes = round_up((b->mc * kc + kc * nc) * elem_size, CSAE_ALIGN);
        per_thread = bytes > per_thread ? bytes : per_thread;
    }
    n_threads = n_threads ? n_threads : 1;
    return csae_mul_size(per_thread, n_threads);
}

int csae_kernel_path_supported(csae_kernel_path path)
{
    return entry_for(path) != NULL;
}

csae_status csae_set_kernel_path(csae_kernel_path path)
{
    pthread_once(&init_once, init);
    const path_entry *entry = entry_for(path);
    if (!entry)
        return CSAE_ERR_ARGUMENT;
    active = entry;
    return CSAE_OK;
}

csae_kernel_path csae_get_kernel_path(void)
{
    pthread_once(&init_once, init);
    return active->id;
}

size_t csae_kernel_path_count(void)
{
    return N_PATHS;
}

csae_kernel_path csae_kernel_path_at(size_t i)
{
    return i < N_PATHS ? registry[i].id : CSAE_PATH_AUTO;
}

const char *csae_kernel_path_name(csae_kernel_path path)
{
    if (path == CSAE_PATH_AUTO)
        return "auto";
    for (size_t i = 0; i < N_PATHS; i++)
        if (registry[i].id == path)
            return registry[i].name;
    return NULL;
}
