/*
 * spans.c: the argument checks every public function shares (kernels.h):
 * size products that report overflow, arrays that must not overlap, and
 * the workspace's aligned start.
 * On their own so that a program linking part of the engine (rng.c's
 * csae_init_params, the model-file reader) needs nothing else.
 */
#include <stddef.h>
#include <stdint.h>

#include "checked_mul.h"
#include "kernels.h"

char *csae_ws_aligned(const csae_workspace *ws, size_t total)
{
    if (!ws || !ws->data || ws->size < total)
        return NULL;
    const uintptr_t p = (uintptr_t)ws->data;
    return (char *)((p + CSAE_ALIGN - 1) / CSAE_ALIGN * CSAE_ALIGN);
}

size_t csae_mul_size(size_t a, size_t b)
{
    size_t product;
    return checked_mul_size(a, b, &product) ? product : SIZE_MAX;
}

size_t csae_add_size(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* ---- Overlapping arrays ----------------------------------------------------
 * The kernels write an output while they still read the inputs (A panel by
 * panel while X and W are read, a gradient before the parameters it
 * depends on, the workspace throughout), so an output sharing memory with
 * anything else the call touches would give wrong numbers with CSAE_OK:
 * every public function refuses it with CSAE_ERR_ARGUMENT (csae.h).  The
 * addresses are compared as integers: the arrays are distinct objects, and
 * C gives no meaning to ordering pointers into different ones. */
int csae_spans_ok(const csae_span *s, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (!s[i].p || s[i].bytes == 0)
            continue;
        if (s[i].bytes > (size_t)PTRDIFF_MAX)
            return 0;
        const uintptr_t a0 = (uintptr_t)s[i].p;
        if (a0 > UINTPTR_MAX - s[i].bytes)
            return 0;
        for (size_t j = 0; j < i; j++) {
            if (!s[j].p || s[j].bytes == 0 || !(s[i].written || s[j].written))
                continue;
            const uintptr_t b0 = (uintptr_t)s[j].p;
            if (a0 < b0 + s[j].bytes && b0 < a0 + s[i].bytes)
                return 0;
        }
    }
    return 1;
}
