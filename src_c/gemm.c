/*
 * gemm.c: the GEMM driver for both element types (see gemm_template.h).
 */
#include "kernels.h"

/* Multiply-adds below which a GEMM stays on one thread. */
#define CSAE_GEMM_PARALLEL_MIN (1 << 20)

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

size_t csae_gemm_pack_size(size_t m, size_t n, size_t k, size_t elem_size,
                           size_t n_threads)
{
    (void)m;
    (void)k;
    const size_t nr = elem_size == sizeof(float) ? CSAE_NR_F32 : CSAE_NR_F64;
    const size_t nc = round_up(n < CSAE_NC ? n : CSAE_NC, nr);
    /* One packed A block and one packed B block per thread, each a whole
     * number of cache lines so the next buffer stays aligned. */
    const size_t per_thread =
        round_up(((size_t)CSAE_MC * CSAE_KC + (size_t)CSAE_KC * nc) * elem_size, CSAE_ALIGN);
    return per_thread * (n_threads ? n_threads : 1);
}

#define REAL double
#define SFX f64
#define NR CSAE_NR_F64
#define UKR gemm_ukr_f64
#include "gemm_template.h"
#undef REAL
#undef SFX
#undef NR
#undef UKR

#define REAL float
#define SFX f32
#define NR CSAE_NR_F32
#define UKR gemm_ukr_f32
#include "gemm_template.h"
#undef REAL
#undef SFX
#undef NR
#undef UKR
