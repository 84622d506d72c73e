/*
 * lbfgs_pass_template.h: one block of an L-BFGS vector pass (lbfgs.c), for
 * one width VEC (double or float) of the optimizer's stored vectors: the
 * pairs s and y and the direction d.  Included by lbfgs.c with VEC,
 * PASS_BLOCK (the function's name), DOT_VV (VEC with VEC) and DOT_GV
 * (double with VEC) defined.  The caller's x and g, and x0 and g0, are
 * always double.
 *
 * A VEC value is widened exactly, so every product and sum below is a double
 * operation, the same ones in the same order for either width: a float
 * width only rounds what is stored.  With VEC = double every cast is the
 * identity.
 */

static void PASS_BLOCK(const pass *p, size_t k)
{
    const size_t lo = k * BLOCK, len = p->n - lo < BLOCK ? p->n - lo : BLOCK;
    VEC *d = (VEC *)p->d + lo;
    const double *g = p->g ? p->g + lo : NULL;
    switch (p->op) {
    case PASS_NEGATE: {
        double *g0 = p->t + lo, big = 0.0;
        for (size_t i = 0; i < len; i++) {
            const double a = fabs(g[i]);
            big = a > big ? a : big;
            d[i] = (VEC)-g[i];
            g0[i] = g[i];
        }
        p->part2[k] = big;
        break;
    }
    case PASS_AXPY: {
        const VEC *u = (const VEC *)p->hu + lo;
        for (size_t i = 0; i < len; i++) {
            const double t = p->a * (double)u[i];
            const double sum = (double)d[i] + t;
            d[i] = (VEC)(sum * p->b);
        }
        break;
    }
    case PASS_PLACE: {
        double *x = p->x + lo;
        const double *x0 = p->t + lo;
        for (size_t i = 0; i < len; i++) {
            const double t = p->a * (double)d[i];
            x[i] = x0[i] + t;
        }
        break;
    }
    case PASS_MOVE: {
        double *x = p->x + lo, *x0 = p->t + lo;
        for (size_t i = 0; i < len; i++) {
            const double t = p->a * (double)d[i];
            x0[i] = x[i];
            x[i] = x[i] + t;
        }
        break;
    }
    case PASS_PAIR: {
        const double *g0 = p->t + lo;
        VEC *y = (VEC *)p->hout + lo, *s = (VEC *)p->ht + lo;
        for (size_t i = 0; i < len; i++) {
            y[i] = (VEC)(g[i] - g0[i]);
            s[i] = (VEC)(p->a * (double)d[i]);
        }
        p->part[k] = DOT_VV(y, y, len);
        return;
    }
    default:
        break;
    }
    if (p->dot == DOT_HD)
        p->part[k] = DOT_VV((const VEC *)p->hv + lo, d, len);
    else if (p->dot == DOT_GD)
        p->part[k] = DOT_GV(g, d, len);
    else if (p->dot == DOT_DD)
        p->part[k] = DOT_VV(d, d, len);
}
