/*
 * path_tail.h: included at the end of each kernel path (path_*.c), after it
 * defined its register tiles (PATH_MR_F64, PATH_NR_F64, PATH_MR_F32,
 * PATH_NR_F32), ukr_f64/ukr_f32 and bias_act_f64/bias_act_f32 (and, with
 * PATH_UKR_EDGE defined, ukr_edge_f64/ukr_edge_f32: a kernel that stores
 * only the mr x nr part of an edge tile), to build the
 * GEMM, the fused one-row SGD step and the computing core on top of them for
 * both element types.  A further shared template (one more part of the core)
 * is one more #include in each of the two blocks below.
 */

#include <math.h>
#include <string.h>

/* ---- Instantiate the GEMM and the core for both element types ---------- */

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, SFX)

#include <stdint.h>

/* MC and NC are placeholders until dispatch.c derives them from the caches
 * (before the table is first used). */
static csae_blocking blocking_f64 = {PATH_MR_F64, PATH_NR_F64, 8 * PATH_MR_F64, 64 * PATH_NR_F64};
static csae_blocking blocking_f32 = {PATH_MR_F32, PATH_NR_F32, 8 * PATH_MR_F32, 64 * PATH_NR_F32};

#define REAL double
#define UREAL uint64_t /* REAL's bit pattern, and its exponent bits */
#define EXP_BITS 0x7FF0000000000000ULL
#define SFX f64
#define MR PATH_MR_F64
#define NR PATH_NR_F64
#define BLK blocking_f64
#define UKR ukr_f64
#ifdef PATH_UKR_EDGE
#define UKR_EDGE ukr_edge_f64
#endif
#define BIAS_ACT bias_act_f64
#define EPS_CLIP 1e-12
#include "gemm_template.h"
#include "sample_template.h"
#include "core_template.h"
#undef REAL
#undef UREAL
#undef EXP_BITS
#undef SFX
#undef MR
#undef NR
#undef BLK
#undef UKR
#undef UKR_EDGE
#undef BIAS_ACT
#undef EPS_CLIP

#define REAL float
#define UREAL uint32_t
#define EXP_BITS 0x7F800000U
#define SFX f32
#define MR PATH_MR_F32
#define NR PATH_NR_F32
#define BLK blocking_f32
#define UKR ukr_f32
#ifdef PATH_UKR_EDGE
#define UKR_EDGE ukr_edge_f32
#endif
#define BIAS_ACT bias_act_f32
#define EPS_CLIP 1e-6
#include "gemm_template.h"
#include "sample_template.h"
#include "core_template.h"

/* The path's table: `const csae_ops csae_ops_<name> = OPS_TABLE;` */
#define OPS_TABLE                                                              \
    {                                                                          \
        &blocking_f64, &blocking_f32,                                          \
        encode_f64, decode_f64, objective_f64, step_f64, flat_step_f64,        \
        activation_sums_f64, objective_part_f64, gemm_f64,                     \
        encode_f32, decode_f32, objective_f32, step_f32, flat_step_f32,        \
        activation_sums_f32, objective_part_f32, gemm_f32                      \
    }
