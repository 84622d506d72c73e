/*
 * dispatch.c: choose a kernel path once, from the CPU, and let the caller
 * (or CSAE_KERNEL_PATH=portable in the environment) override the choice.
 */
#include <stdlib.h>
#include <string.h>

#include "csae.h"
#include "kernels.h"

/* NULL until the first call resolves it.  A racing first call from two
 * threads resolves to the same table, so a plain pointer is enough; it is
 * only written again by csae_set_kernel_path. */
static const csae_ops *active_ops;

/* Only where the AVX2 path is built (x86-64 with GCC or Clang): elsewhere,
 * aarch64 say, it would be an unused function and __builtin_cpu_supports
 * does not exist. */
#ifdef CSAE_HAVE_AVX2_PATH
static int cpu_has_avx2_fma(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

static const csae_ops *table_for(csae_kernel_path path)
{
    switch (path) {
    case CSAE_PATH_PORTABLE:
        return &csae_ops_portable;
    case CSAE_PATH_AVX2:
#ifdef CSAE_HAVE_AVX2_PATH
        return cpu_has_avx2_fma() ? &csae_ops_avx2 : NULL;
#else
        return NULL;
#endif
    case CSAE_PATH_AUTO: {
        const csae_ops *best = table_for(CSAE_PATH_AVX2);
        return best ? best : &csae_ops_portable;
    }
    }
    return NULL;
}

const csae_ops *csae_ops_active(void)
{
    if (!active_ops) {
        const char *forced = getenv("CSAE_KERNEL_PATH");
        int portable = forced && strcmp(forced, "portable") == 0;
        active_ops = table_for(portable ? CSAE_PATH_PORTABLE : CSAE_PATH_AUTO);
    }
    return active_ops;
}

int csae_kernel_path_supported(csae_kernel_path path)
{
    return table_for(path) != NULL;
}

csae_status csae_set_kernel_path(csae_kernel_path path)
{
    const csae_ops *table = table_for(path);
    if (!table)
        return CSAE_ERR_ARGUMENT;
    active_ops = table;
    return CSAE_OK;
}

csae_kernel_path csae_get_kernel_path(void)
{
    return csae_ops_active() == &csae_ops_portable ? CSAE_PATH_PORTABLE
                                                           : CSAE_PATH_AVX2;
}
