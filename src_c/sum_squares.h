/*
 * sum_squares.h: FN(sum_squares_) for the REAL of the template including it
 * (core_template.h, deep_template.h): the weight-decay sum, in one fixed
 * order whichever kernel path compiles it.  No include guard: each
 * inclusion defines the function for that REAL.
 */
/* Sum of squares in double, whatever REAL is.  Sixteen running sums, which
 * the compiler keeps in vector registers: several independent chains of
 * adds instead of one that waits on itself. */
static double FN(sum_squares_)(const REAL *x, size_t len)
{
    double acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= len; i += 16)
        for (size_t j = 0; j < 16; j++)
            acc[j] += (double)x[i + j] * x[i + j];
    double total = 0;
    for (; i < len; i++)
        total += (double)x[i] * x[i];
    for (size_t j = 0; j < 16; j++)
        total += acc[j];
    return total;
}
