"""One rule for values that are not finite numbers, on every kernel path and
in the reference (docs/guarantees.md): a NaN pre-activation gives NaN,
sigmoid(+inf) = 1, sigmoid(-inf) = 0, and a pre-activation too large for exp
gives the limit (exactly 0 below exp's underflow, 1 above).

Expected values are those mathematical limits, written here, never taken
from a path.  Each test runs on every kernel path this CPU has, in both
dtypes.  The special values are placed in every column of widths that put
columns in whole vectors, in half vectors and in the one-value tails of
both vector paths (8/16/32 floats, 4/8/16 doubles).
"""

import numpy as np
import pytest

from conftest import engine, kernel_paths

from csae import reference as ref

eng = engine()

# Widths covering whole vectors, the AVX-512 half vector and the lane tails.
WIDTHS = [1, 3, 7, 13, 29, 61]

# A finite pre-activation whose exp(-|z|) underflows to 0 in the dtype
# (below -745.13 in float64, -103.97 in float32): the limit is exact.
HUGE = {np.float64: 1e300, np.float32: 1e30}
MAX = {np.float64: 1e308, np.float32: 3e38}


def limits(dtype):
    """(pre-activation, its sigmoid) pairs the rule fixes exactly."""
    huge = HUGE[dtype]
    return [(np.nan, np.nan), (np.inf, 1.0), (-np.inf, 0.0), (huge, 1.0), (-huge, 0.0),
            (-800.0, 0.0), (-np.finfo(dtype).max, 0.0), (np.finfo(dtype).max, 1.0)]


def assert_same(actual, expected):
    """Equal, NaN where expected is NaN (np.testing's NaN-aware equality)."""
    np.testing.assert_array_equal(actual, np.asarray(expected, dtype=actual.dtype))


def test_every_limit_in_every_column(kernel_path, dtype):
    """The pre-activation is b alone (W = 0): every column of every width
    holds the special value; both the encoder and the sigmoid decoder."""
    for z, expected in limits(dtype):
        if dtype == np.float32 and z == -800.0:
            z = -200.0
        for h in WIDTHS:
            W = np.zeros((h, 2), dtype)
            b = np.full(h, z, dtype)
            X = np.ones((3, 2), dtype)
            assert_same(eng.encode(W, b, X), np.full((3, h), expected))
            # decode(Wd (n, h), bd (n,), A) is the same activation on n outputs
            Y = eng.decode(np.zeros((h, 2), dtype), b, X, "sigmoid")
            assert_same(Y, np.full((3, h), expected))


def test_a_nan_in_a_row_gives_a_nan_row_and_leaves_the_others(kernel_path, dtype):
    rng = np.random.default_rng(4)
    for h in WIDTHS:
        W = rng.normal(0, 1, (h, 9)).astype(dtype)
        b = rng.normal(0, 1, h).astype(dtype)
        X = rng.uniform(0, 1, (7, 9)).astype(dtype)
        clean = eng.encode(W, b, X)
        X[3, 5] = np.nan
        A = eng.encode(W, b, X)
        assert np.isnan(A[3]).all()
        rest = [0, 1, 2, 4, 5, 6]
        np.testing.assert_array_equal(A[rest], clean[rest])
        for n_threads in (2, 3):
            np.testing.assert_array_equal(eng.encode(W, b, X, n_threads=n_threads), A)


def test_infinite_inputs_give_the_limits(kernel_path, dtype):
    """x = +inf with positive weights is +inf: 1; -inf: 0; inf times a
    zero weight is NaN, and so is +inf - inf."""
    for h in WIDTHS:
        W = np.ones((h, 2), dtype)
        b = np.zeros(h, dtype)
        X = np.array([[np.inf, 0], [-np.inf, 0], [np.inf, 5], [-np.inf, 5], [np.inf, -np.inf]],
                     dtype)
        expected = np.array([1, 0, 1, 0, np.nan])[:, None].repeat(h, axis=1)
        assert_same(eng.encode(W, b, X), expected)
        W[:, 1] = 0
        assert_same(eng.encode(W, b, np.array([[np.inf, 1]], dtype)), np.ones((1, h)))
        X0 = np.array([[1, np.inf]], dtype)  # inf * 0
        assert np.isnan(eng.encode(W, b, X0)).all()


def test_huge_weights_give_the_limits_and_agree_with_the_reference(kernel_path, dtype):
    """Weights [[big, -big]]: each product either fits (the sum is exact) or
    overflows to the infinity of its sign, whose sigmoid is the limit."""
    big = MAX[dtype]
    W = np.array([[big, -big]], dtype)
    X = np.array([[1, 0], [0, 1], [1, 1], [0.5, 1], [1, 0.5]], dtype)
    b = np.zeros(1, dtype)
    expected = np.array([[1], [0], [0.5], [0], [1]])
    assert_same(eng.encode(W, b, X), expected)
    assert_same(ref.encode(W, b, X), expected)
    # One feature, two units: 2 * big overflows to +-inf.
    W = np.array([[big], [-big]], dtype)
    X = np.array([[1], [2], [-2], [0]], dtype)
    expected = np.array([[1, 0], [1, 0], [0, 1], [0.5, 0.5]])
    assert_same(eng.encode(W, np.zeros(2, dtype), X), expected)
    assert_same(ref.encode(W, np.zeros(2, dtype), X), expected)


@pytest.mark.parametrize("z", [np.nan, np.inf, -np.inf])
def test_non_finite_codes_are_the_same_bits_on_every_path(dtype, z):
    """NaN included (its sign and payload): the paths run the same IEEE
    operations on it."""
    h = 61
    b = np.full(h, z, dtype)
    X = np.ones((2, 1), dtype)
    before = eng.get_kernel_path()
    try:
        out = []
        for path in kernel_paths():
            eng.set_kernel_path(path)
            out.append(eng.encode(np.zeros((h, 1), dtype), b, X))
    finally:
        eng.set_kernel_path(before)
    for other in out[1:]:
        assert other.tobytes() == out[0].tobytes()
