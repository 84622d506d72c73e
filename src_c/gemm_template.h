/*
 * THE BIT-IDENTITY RULES.  Every vector kernel path (avx2, avx512, neon)
 * gives the same bits for the same inputs, at any thread count, on any
 * CPU: every rounding in the engine is one that all of them perform in the
 * same order on the same operands.  A kernel keeps that by these rules
 * (the tests that hold them: tests/test_guarantees_same_bits.py between the x86
 * paths, tests/test_aarch64.py between x86 and aarch64):
 *
 *  1. Products: each element of C is ONE chain of FMAs, c = fma(a_ip, b_pj,
 *     c), in increasing p within a KC-deep panel, panels in increasing
 *     order; KC (CSAE_KC) and the panel split (kc_even below) are the same
 *     on every path, and K is never split across threads.  The register
 *     tile (MR x NR), MC, NC, the thread split and the vector width only
 *     decide which element is computed where, never its chain.  The
 *     epilogue is alpha * ab, then fma(beta, c, that) (beta 0 or 1).
 *  2. FMA is explicit: the build is ISO C (-std=c11: GCC does not
 *     contract) and kernels.h turns Clang's contraction off, so a * b + c
 *     rounds twice unless the source asks for fma (intrinsics, or
 *     exp_lane.h's madd where CSAE_LANE_FMA says the ISA fuses).
 *  3. exp and the sigmoid are vec_math.h's: one sequence of IEEE
 *     operations (max, FMA, add, mul, divide, integer add and shift) with
 *     fixed constants, the same in every lane of every width and in
 *     exp_lane.h's one-value version, which takes the columns past the
 *     last whole vector.  Never the C library's exp on a vector path.
 *  4. Reductions have a fixed shape independent of the vector width: the
 *     dot products below sum term p into lane p % ROW_LANES (64 bytes of
 *     lanes) and add the lanes by a fixed tree; sample_template.h's sums
 *     use eight running sums and a fixed tree; the other sums
 *     (core_template.h, sum_squares.h, lbfgs.c) have fixed shapes too.  No
 *     "omp simd" reduction (its order follows the width the compiler
 *     picks), no -ffast-math.
 *  5. Lane order never matters: lanes are independent elements; nothing is
 *     summed across the lanes of one vector except by rule 4's tree.
 *  6. The C library: sqrt is correctly rounded everywhere; log and pow
 *     (the KL term, Adam's bias correction) are the same function on every
 *     path of one build.  Across architectures they agree where the C
 *     library is the same code (glibc on x86-64 and aarch64, as
 *     test_aarch64.py shows); another libm (musl, macOS) may move the last
 *     bits of what depends on them.
 * The portable path is plain C without explicit FMA in its micro-kernel
 * and with the C library's exp: it follows rules 4 and 5 but may differ
 * from the vector paths in the last bits.  NaN payloads are not covered.
 */
/*
 * gemm_template.h: the blocked GEMM driver, included by each kernel path
 * once per element type with REAL, SFX (f64 or f32), MR and NR (that path's
 * register tile), BLK (its csae_blocking for REAL: MC and NC) and UKR (its
 * micro-kernel for REAL) defined.  KC is CSAE_KC on every path.
 *
 * C (m x n, row-major, row stride ldc) = alpha * A B + beta * C, where A is
 * m x k with element (i, p) at A[i * rsa + p * csa] and B is k x n with
 * element (p, j) at B[p * rsb + j * csb]: strides express transposes, and
 * packing absorbs them.  `pack` is scratch of csae_gemm_pack_size() bytes,
 * aligned to CSAE_ALIGN.  When beta == 0, C is never read.  The engine only
 * passes beta 0 or 1.
 *
 * Micro-kernel contract: UKR(k, a, rsa, csa, b, ldb, alpha, beta, c, ldc)
 * forms the MR x NR product AB of a (element (i, p) at a[i * rsa + p * csa])
 * and b (k rows of NR contiguous values, ldb apart), and writes
 * C = alpha * AB + beta * C (C never read when beta == 0).  Packed panels
 * have rsa = 1, csa = MR and ldb = NR.
 *
 * The BLIS design: five loops around an MR x NR micro-kernel, with panels of
 * A and B packed into contiguous, zero-padded buffers so the kernel streams
 * them with unit stride whatever the strides (transposes) of the operands.
 */

/* Pack the mc x kc block of A into micro-panels of MR rows: for each p the
 * panel holds MR consecutive values A[ir + i, p]; rows past mc are zero. */
static void FN(pack_a_)(size_t mc, size_t kc, const REAL *A, size_t rsa,
                        size_t csa, REAL *restrict dst)
{
    for (size_t ir = 0; ir < mc; ir += MR) {
        const size_t mr = mc - ir < MR ? mc - ir : MR;
        const REAL *a = A + ir * rsa;
        if (mr < MR)
            for (size_t x = 0; x < kc * MR; x++) dst[x] = 0;
        if (rsa == 1 && mr == MR) {
            /* Column-major (a transposed operand): rows are contiguous per p.
             * The constant length keeps the copy inline (not a memmove call). */
            for (size_t p = 0; p < kc; p++)
                for (size_t i = 0; i < MR; i++) dst[p * MR + i] = a[p * csa + i];
        } else if (rsa == 1) {
            for (size_t p = 0; p < kc; p++)
                for (size_t i = 0; i < mr; i++) dst[p * MR + i] = a[p * csa + i];
        } else {
            /* Walk each source row contiguously, scattering into the panel. */
            for (size_t i = 0; i < mr; i++)
                for (size_t p = 0; p < kc; p++) dst[p * MR + i] = a[i * rsa + p * csa];
        }
        dst += kc * MR;
    }
}

/* Pack the kc x nc block of B into micro-panels of NR columns: for each p
 * the panel holds NR consecutive values B[p, jr + j]; columns past nc are 0. */
static void FN(pack_b_)(size_t kc, size_t nc, const REAL *B, size_t rsb,
                        size_t csb, REAL *restrict dst)
{
    for (size_t jr = 0; jr < nc; jr += NR) {
        const size_t nr = nc - jr < NR ? nc - jr : NR;
        const REAL *b = B + jr * csb;
        if (nr < NR)
            for (size_t x = 0; x < kc * NR; x++) dst[x] = 0;
        if (csb == 1 && nr == NR) {
            /* Constant length: an inline vector copy, not a memmove call. */
            for (size_t p = 0; p < kc; p++)
                for (size_t j = 0; j < NR; j++) dst[p * NR + j] = b[p * rsb + j];
        } else if (csb == 1) {
            /* Chunks of 8 of constant length, then the rest: a copy of a
             * variable nr would be a memmove call for every p. */
            const size_t nr8 = nr / 8 * 8;
            for (size_t p = 0; p < kc; p++) {
                for (size_t j0 = 0; j0 < nr8; j0 += 8)
                    for (size_t j = j0; j < j0 + 8; j++) dst[p * NR + j] = b[p * rsb + j];
                for (size_t j = nr8; j < nr; j++) dst[p * NR + j] = b[p * rsb + j];
            }
        } else {
            /* A transposed operand: walk each column of B contiguously. */
            for (size_t j = 0; j < nr; j++)
                for (size_t p = 0; p < kc; p++) dst[p * NR + j] = b[p * rsb + j * csb];
        }
        dst += kc * NR;
    }
}

#ifndef UKR_EDGE
/* Write an edge tile computed whole into `edge` (alpha 1, beta 0) into the
 * mr x nr part of C that exists.  beta is 0 or 1 here, so alpha * ab + beta * c
 * rounds as in the kernel and every element comes out the same whichever
 * way its tile was computed (thread splits stay bit-identical). */
static void FN(merge_edge_)(size_t mr, size_t nr, REAL alpha, const REAL *edge,
                            REAL beta, REAL *c, size_t ldc)
{
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++) {
            const REAL v = alpha * edge[i * NR + j];
            c[i * ldc + j] = beta == 0 ? v : v + beta * c[i * ldc + j];
        }
}
#endif

/* Small problems (BLIS's "sup" idea): with k within one panel and A small
 * enough to stay in cache, packing would copy about as much as the product
 * reads.  A is read in place; B too when its rows are contiguous.  Only a
 * transposed B (strided along j) and the edge panels (padded with zeros so
 * the kernel never reads outside the operands) are packed. */
static void FN(gemm_small_)(size_t m, size_t n, size_t k, REAL alpha,
                            const REAL *A, size_t rsa, size_t csa,
                            const REAL *B, size_t rsb, size_t csb, REAL beta,
                            REAL *C, size_t ldc, REAL *pack)
{
#ifndef UKR_EDGE
    REAL edge[MR * NR];
#endif
    /* The pack buffer's usual regions: A block (MC x k), then B (k x nc). */
    REAL *edgeA = pack;                                 /* the last mr < MR rows */
    REAL *packB = pack + BLK.mc * k;           /* k x n, or one edge panel */
    const int pack_all_b = csb != 1;
    if (pack_all_b)
        FN(pack_b_)(k, n, B, rsb, csb, packB);
    const size_t m_full = m / MR * MR;
    if (m_full < m)
        FN(pack_a_)(m - m_full, k, A + m_full * rsa, rsa, csa, edgeA);
    for (size_t jr = 0; jr < n; jr += NR) {
        const size_t nr = n - jr < NR ? n - jr : NR;
        const REAL *b = packB + jr * k;
        size_t ldb = NR;
        if (!pack_all_b && nr == NR) {
            b = B + jr;
            ldb = rsb;
        } else if (!pack_all_b) {
            FN(pack_b_)(k, nr, B + jr, rsb, csb, packB);
            b = packB;
        }
        for (size_t ir = 0; ir < m; ir += MR) {
            const size_t mr = m - ir < MR ? m - ir : MR;
            const REAL *a = mr == MR ? A + ir * rsa : edgeA;
            const size_t ra = mr == MR ? rsa : 1, ca = mr == MR ? csa : MR;
            REAL *c = C + ir * ldc + jr;
            if (mr == MR && nr == NR) {
                UKR(k, a, ra, ca, b, ldb, alpha, beta, c, ldc);
            } else {
#ifdef UKR_EDGE
                UKR_EDGE(k, a, ra, ca, b, ldb, alpha, beta, c, ldc, mr, nr);
#else
                UKR(k, a, ra, ca, b, ldb, (REAL)1, (REAL)0, edge, NR);
                FN(merge_edge_)(mr, nr, alpha, edge, beta, c, ldc);
#endif
            }
        }
    }
}

/* The serial five-loop driver on one block of C (m x n). */
static void FN(gemm_serial_)(size_t m, size_t n, size_t k,
                             REAL alpha, const REAL *A, size_t rsa, size_t csa,
                             const REAL *B, size_t rsb, size_t csb, REAL beta,
                             REAL *C, size_t ldc, REAL *packA, REAL *packB)
{
#ifndef UKR_EDGE
    REAL edge[MR * NR];
#endif
    for (size_t jc = 0; jc < n; jc += BLK.nc) {            /* loop 5: NC columns of C */
        const size_t nc = n - jc < BLK.nc ? n - jc : BLK.nc;
        /* Panels of equal depth (at most KC): 784 = 4 x 196, not 3 x 256 + 16,
         * whose last sliver would spend more on C's tiles than on products. */
        const size_t kc_even = (k + (k + CSAE_KC - 1) / CSAE_KC - 1) / ((k + CSAE_KC - 1) / CSAE_KC);
        for (size_t pc = 0; pc < k; pc += kc_even) {        /* loop 4: KC-deep panels */
            const size_t kc = k - pc < kc_even ? k - pc : kc_even;
            /* Later panels accumulate onto what the first one wrote. */
            const REAL beta_pc = pc == 0 ? beta : (REAL)1;
            /* With few rows of C each B micro-panel serves only a few A
             * panels, and packing B (a weight gradient's k x n operand, all
             * of X for D^T X) would copy about as much as the products
             * read: rows of B that are contiguous are then read in place,
             * ldb = rsb, and only a last partial panel is packed. */
            const int b_in_place = csb == 1 && m <= 4 * MR;
            const size_t nc_full = b_in_place ? nc / NR * NR : 0;
            if (!b_in_place)
                FN(pack_b_)(kc, nc, B + pc * rsb + jc * csb, rsb, csb, packB);
            else if (nc_full < nc)
                FN(pack_b_)(kc, nc - nc_full, B + pc * rsb + jc + nc_full, rsb, csb, packB);
            for (size_t ic = 0; ic < m; ic += BLK.mc) {    /* loop 3: MC rows of C */
                const size_t mc = m - ic < BLK.mc ? m - ic : BLK.mc;
                const REAL *Ablock = A + ic * rsa + pc * csa;
                /* A row-major A is read in place when C is narrow (its rows
                 * are what the kernel walks, and packing them is a scalar
                 * transpose that a few B panels do not repay); only a last
                 * partial tile of rows is packed, padded with zeros.  So is
                 * a transposed A (rsa = 1: the MR values of each p are
                 * contiguous, csa apart), which the kernel reads as it reads
                 * a packed panel.  A wide C reuses the block often enough to
                 * pack it. */
                const int in_place = (csa == 1 || rsa == 1) && nc <= 16 * NR;
                const size_t mc_full = in_place ? mc / MR * MR : 0;
                if (!in_place)
                    FN(pack_a_)(mc, kc, Ablock, rsa, csa, packA);
                else if (mc_full < mc)
                    FN(pack_a_)(mc - mc_full, kc, Ablock + mc_full * rsa, rsa, csa, packA);
                /* One A micro-panel (MR x kc) stays in L1 while the B
                 * micro-panels stream past it from L2, where the packed B
                 * block sits (BLIS's order puts B's micro-panel in L1
                 * instead; with B's panel the wide one here, 32 KiB for the
                 * AVX-512 float kernel at KC = 256, this order measured
                 * 10-25% faster on a 48 KiB L1). */
                for (size_t ir = 0; ir < mc; ir += MR) {    /* loop 2: MR-tall A panels */
                    const size_t mr = mc - ir < MR ? mc - ir : MR;
                    for (size_t jr = 0; jr < nc; jr += NR) { /* loop 1: NR-wide B panels */
                        const size_t nr = nc - jr < NR ? nc - jr : NR;
                        REAL *c = C + (ic + ir) * ldc + jc + jr;
                        const REAL *b = packB + jr * kc;
                        size_t ldb = NR;
                        if (b_in_place && jr < nc_full) {
                            b = B + pc * rsb + jc + jr;
                            ldb = rsb;
                        } else if (b_in_place) {
                            b = packB;
                        }
                        const REAL *a = packA + ir * kc;
                        size_t ra = 1, ca = MR;
                        if (in_place && ir < mc_full) {
                            a = Ablock + ir * rsa;
                            ra = rsa;
                            ca = csa;
                        } else if (in_place) {
                            a = packA;
                        }
                        if (mr == MR && nr == NR) {
                            UKR(kc, a, ra, ca, b, ldb, alpha, beta_pc, c, ldc);
                            continue;
                        }
                        /* Edge tile: compute it whole, keep the part inside C
                         * (stored through masks where the path has UKR_EDGE).
                         * beta_pc is 0 or 1 here, so alpha * ab + beta * c rounds
                         * as in the kernel and thread splits stay bit-identical. */
#ifdef UKR_EDGE
                        UKR_EDGE(kc, a, ra, ca, b, ldb, alpha, beta_pc, c, ldc, mr, nr);
#else
                        UKR(kc, a, ra, ca, b, ldb, (REAL)1, (REAL)0, edge, NR);
                        FN(merge_edge_)(mr, nr, alpha, edge, beta_pc, c, ldc);
#endif
                    }
                }
            }
        }
    }
}

typedef struct {
    size_t m, n, k;
    REAL alpha, beta;
    const REAL *A, *B;
    size_t rsa, csa, rsb, csb, ldc;
    REAL *C;
    char *pack;
    size_t pack_per_thread;     /* bytes */
    size_t n_parts, split_rows; /* split_rows: split m (else n) */
    int small;                  /* use gemm_small_ (else the packed driver) */
    const REAL *bias;           /* epilogue: C = act(C + bias) per row, if set */
    int sigmoid;
} FN(gemm_job_);

static void FN(gemm_task_)(void *context, size_t t)
{
    const FN(gemm_job_) *job = context;
    const size_t len = job->split_rows ? job->m : job->n;
    const size_t unit = job->split_rows ? MR : NR;
    /* Contiguous chunks of whole tiles, so every element of C sits in the
     * same tile (and is summed in the same order) for any thread count. */
    const size_t tiles = (len + unit - 1) / unit;
    const size_t lo = tiles * t / job->n_parts * unit;
    size_t hi = tiles * (t + 1) / job->n_parts * unit;
    if (hi > len) hi = len;
    if (lo >= hi) return;
    REAL *packA = (REAL *)(job->pack + t * job->pack_per_thread);
    REAL *packB = packA + BLK.mc * (job->k < CSAE_KC ? job->k : CSAE_KC);
    const size_t m = job->split_rows ? hi - lo : job->m;
    const size_t n = job->split_rows ? job->n : hi - lo;
    const REAL *A = job->split_rows ? job->A + lo * job->rsa : job->A;
    const REAL *B = job->split_rows ? job->B : job->B + lo * job->csb;
    REAL *C = job->split_rows ? job->C + lo * job->ldc : job->C + lo;
    if (job->small)
        FN(gemm_small_)(m, n, job->k, job->alpha, A, job->rsa, job->csa, B, job->rsb,
                        job->csb, job->beta, C, job->ldc, packA);
    else
        FN(gemm_serial_)(m, n, job->k, job->alpha, A, job->rsa, job->csa, B, job->rsb,
                         job->csb, job->beta, C, job->ldc, packA, packB);
    /* The epilogue runs on this task's own block while it is still in cache,
     * and so in parallel with the other tasks' blocks. */
    if (job->bias)
        BIAS_ACT(m, n, job->split_rows ? job->bias : job->bias + lo, C, job->ldc,
                 job->sigmoid);
}

/* Partial sums of a dot product in a fixed layout: term p goes to lane
 * p % ROW_LANES, and the lanes are added by a fixed pairwise tree.  Every
 * path, whatever its vector width, then rounds in the same order (an
 * "omp simd" reduction would follow the width the compiler picked). */
#define ROW_LANES (64 / sizeof(REAL))

static inline REAL FN(lane_tree_)(REAL *acc)
{
    for (size_t w = ROW_LANES / 2; w >= 1; w /= 2)
        for (size_t l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0];
}

/* Four dot products x . b_q of length k at once (x is read once for all
 * four), each in the lane layout above. */
CSAE_INLINE_ALWAYS void
FN(dot4_)(size_t k, const REAL *restrict x, size_t incx, const REAL *restrict b0,
          const REAL *restrict b1, const REAL *restrict b2, const REAL *restrict b3,
          REAL *out)
{
    REAL a0[ROW_LANES] = {0}, a1[ROW_LANES] = {0}, a2[ROW_LANES] = {0}, a3[ROW_LANES] = {0};
    size_t p = 0;
    /* "omp simd" on the lane loop (lanes are independent: no reduction):
     * left alone, the compiler may vectorise the outer loop instead, with
     * strided loads. */
    for (; p + ROW_LANES <= k; p += ROW_LANES)
#pragma omp simd
        for (size_t l = 0; l < ROW_LANES; l++) {
            const REAL xl = x[(p + l) * incx];
            a0[l] += xl * b0[p + l];
            a1[l] += xl * b1[p + l];
            a2[l] += xl * b2[p + l];
            a3[l] += xl * b3[p + l];
        }
    for (size_t l = 0; p + l < k; l++) {
        const REAL xl = x[(p + l) * incx];
        a0[l] += xl * b0[p + l];
        a1[l] += xl * b1[p + l];
        a2[l] += xl * b2[p + l];
        a3[l] += xl * b3[p + l];
    }
    out[0] = FN(lane_tree_)(a0);
    out[1] = FN(lane_tree_)(a1);
    out[2] = FN(lane_tree_)(a2);
    out[3] = FN(lane_tree_)(a3);
}

/* C (1 x n) = alpha x B + beta C for a row vector x (a GEMV): packing and a
 * tile of MR rows would waste most of the work on one row. */
static void FN(gemm_row_)(size_t n, size_t k, REAL alpha, const REAL *x, size_t incx,
                          const REAL *B, size_t rsb, size_t csb, REAL beta, REAL *c)
{
    if (rsb == 1) {
        /* Columns of B are contiguous: one dot product per output, four at
         * a time (the last group repeats its last column: its extra sums
         * are dropped).  A contiguous x gets its own copy of the loop. */
        for (size_t j = 0; j < n; j += 4) {
            const REAL *bq[4];
            for (size_t q = 0; q < 4; q++)
                bq[q] = B + (j + q < n ? j + q : n - 1) * csb;
            REAL sums[4];
            if (incx == 1)
                FN(dot4_)(k, x, 1, bq[0], bq[1], bq[2], bq[3], sums);
            else
                FN(dot4_)(k, x, incx, bq[0], bq[1], bq[2], bq[3], sums);
            for (size_t q = 0; q < 4 && j + q < n; q++)
                c[j + q] = beta == 0 ? alpha * sums[q] : alpha * sums[q] + beta * c[j + q];
        }
        return;
    }
    /* Rows of B are contiguous: accumulate x[p] times row p (one running
     * sum per output, in order of p). */
    if (beta == 0) {
        for (size_t j = 0; j < n; j++) c[j] = 0;
    } else {
        for (size_t j = 0; j < n; j++) c[j] *= beta;
    }
    for (size_t p = 0; p < k; p++) {
        const REAL xp = alpha * x[p * incx];
        const REAL *bp = B + p * rsb;
#pragma omp simd
        for (size_t j = 0; j < n; j++)
            c[j] += xp * bp[j * csb];
    }
}

#undef ROW_LANES

/* C = alpha A B + beta C, then, if bias is set, C = f(C + bias) row by row
 * with f the sigmoid (sigmoid != 0) or the identity: the bias and activation
 * of a layer fused into the product's epilogue. */
static void FN(gemm_)(size_t m, size_t n, size_t k, REAL alpha,
                      const REAL *A, size_t rsa, size_t csa,
                      const REAL *B, size_t rsb, size_t csb,
                      REAL beta, REAL *C, size_t ldc, void *pack, size_t n_threads,
                      const REAL *bias, int sigmoid)
{
    if (m == 0 || n == 0)
        return;
    if (k == 0 || m == 1 || k == 1) {
        if (k == 0) {
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < n; j++)
                    C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        } else if (m == 1) {
            FN(gemm_row_)(n, k, alpha, A, csa, B, rsb, csb, beta, C);
        } else {
            /* An outer product: every element is a single product. */
            for (size_t i = 0; i < m; i++) {
                const REAL ai = alpha * A[i * rsa];
                REAL *ci = C + i * ldc;
                if (beta == 0) {
#pragma omp simd
                    for (size_t j = 0; j < n; j++) ci[j] = ai * B[j * csb];
                } else {
#pragma omp simd
                    for (size_t j = 0; j < n; j++) ci[j] = ai * B[j * csb] + beta * ci[j];
                }
            }
        }
        if (bias)
            BIAS_ACT(m, n, bias, C, ldc, sigmoid);
        return;
    }
    FN(gemm_job_) job = {m, n, k, alpha, beta, A, B, rsa, csa, rsb, csb, ldc, C, pack,
                         csae_gemm_pack_size(n, k, sizeof(REAL), 1), 1, m > n, 0,
                         bias, sigmoid};
    /* Small: one panel deep, and either A small enough to stay in cache or
     * B so narrow that each piece of A is used only a few times: packing
     * would copy about as much as the product reads. */
    job.small = k <= CSAE_KC && n <= BLK.nc &&
                (m * k * sizeof(REAL) <= (128u << 10) || n <= 4 * NR);
    if (n_threads > 1 && (double)m * n * k >= CSAE_GEMM_PARALLEL_MIN)
        job.n_parts = n_threads;
    if (job.n_parts == 1)
        FN(gemm_task_)(&job, 0);
    else
        csae_parallel_run(job.n_parts, FN(gemm_task_), &job);
}
