"""The fused per-sample SGD step (src_c/sample_template.h, batch_size 1).

One-row minibatches skip the GEMM-based step: these tests hold that path to
the same contract as the minibatch one.  Against the NumPy reference (RTOL
of conftest, parameters relative to the whole parameter set), against the
GEMM code path where it is still reachable (the objective and gradients of
one row, turned into the SGD update here in NumPy), on every kernel path,
both dtypes and decoders, with and without momentum, weight decay and
shuffling; bit-identical across thread counts and across the vector paths;
and the divergence contract: a step that would leave any non-finite value
changes nothing, even when the weights it updates last are the ones that
overflow.
"""

import numpy as np
import pytest

from conftest import assert_close, engine
from test_engine import (assert_epochs_match_reference, assert_params_close,
                         assert_params_equal, copy_params, make_problem, shape_id)

from csae import reference as ref
from csae._errors import NonFiniteError

eng = engine()

DECODERS = ("sigmoid", "linear")
HYPER = dict(rho=0.05, beta=3.0, lam=1e-3)
# (m samples, n features, h hidden): single units, widths on both sides of
# the 8-output blocks and vector widths, h > n, and the benchmark's S model.
SHAPES = [(1, 1, 1), (7, 3, 2), (9, 5, 9), (13, 17, 8), (6, 8, 17), (11, 33, 31),
          (20, 64, 25)]


def _lr(decoder):
    return 0.1 if decoder == "sigmoid" else 0.01


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_epoch_of_single_samples_matches_reference(kernel_path, dtype, decoder, momentum,
                                                   shuffle, shape):
    m, n, h = shape
    params, X = make_problem(m, n, h, decoder, seed=m * 31 + n + h, dtype=dtype)
    rng = np.random.default_rng(4)
    velocity = (tuple(rng.normal(0, 0.01, p.shape).astype(dtype) for p in params)
                if momentum else None)
    kw = dict(decoder=decoder, learning_rate=_lr(decoder), momentum=momentum,
              batch_size=1, shuffle=shuffle, **HYPER)
    assert_epochs_match_reference(params, velocity, X, dtype, 0x5EED, **kw)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("lam", [0.0, 1e-3, 0.05])
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 9, 5), (1, 64, 25), (1, 17, 40)],
                         ids=shape_id)
def test_step_matches_gemm_path_gradients(kernel_path, dtype, decoder, momentum, lam, shape):
    """The old code path still computes the objective and gradients of one
    row (csae_objective): the update built from them in NumPy, with the
    update formula of MATH.md, is what the fused step must produce."""
    _, n, h = shape
    params, X = make_problem(1, n, h, decoder, seed=n * h + 3, dtype=dtype)
    kw = dict(rho=0.1, beta=2.0, lam=lam, decoder=decoder)
    lr, mu = dtype(_lr(decoder)), dtype(momentum)
    rng = np.random.default_rng(8)
    velocity = (tuple(rng.normal(0, 0.01, p.shape).astype(dtype) for p in params)
                if momentum else None)
    for _ in range(3):
        loss_gemm, grads = eng.objective_and_gradients(params, X, **kw)
        if momentum:
            expected_v = [mu * v - lr * g for v, g in zip(velocity, grads)]
            expected = [p + v for p, v in zip(params, expected_v)]
        else:
            expected = [p - lr * g for p, g in zip(params, grads)]
        loss = eng.sgd_step(params, velocity, X, learning_rate=float(lr), momentum=momentum,
                            **kw)
        assert_close(loss, loss_gemm, dtype)
        assert_params_close(params, expected, dtype)
        if momentum:
            assert_params_close(velocity, expected_v, dtype)


@pytest.mark.parametrize("decoder", DECODERS)
def test_single_samples_bit_identical_across_threads(kernel_path, dtype, decoder):
    params, X = make_problem(40, 33, 19, decoder, seed=12, dtype=dtype)
    results = []
    for n_threads in (1, 2, 3):
        p = copy_params(params)
        v = tuple(np.zeros_like(q) for q in p)
        losses = [eng.sgd_epoch(p, v, X, decoder=decoder, learning_rate=_lr(decoder),
                                momentum=0.9, batch_size=1, shuffle=True, rng_state=s,
                                n_threads=n_threads, **HYPER)[0] for s in (1, 2)]
        results.append((losses, p, v))
    for losses, p, v in results[1:]:
        assert losses == results[0][0]
        assert_params_equal(p, results[0][1])
        assert_params_equal(v, results[0][2])


@pytest.mark.parametrize("decoder", DECODERS)
def test_vector_paths_bit_identical(dtype, decoder):
    """Every vector path (AVX2, AVX-512, ...) gives the same bits; only the
    portable path may round differently."""
    paths = [p for p in eng.kernel_paths() if p != "portable"]
    if len(paths) < 2:
        pytest.skip(f"one vector path on this machine: {paths}")
    before = eng.get_kernel_path()
    outs = []
    try:
        for path in paths:
            eng.set_kernel_path(path)
            params, X = make_problem(30, 37, 21, decoder, seed=5, dtype=dtype)
            v = tuple(np.zeros_like(q) for q in params)
            L, _ = eng.sgd_epoch(params, v, X, decoder=decoder, learning_rate=_lr(decoder),
                                 momentum=0.5, batch_size=1, shuffle=True, rng_state=3,
                                 **HYPER)
            outs.append((L, params, v))
    finally:
        eng.set_kernel_path(before)
    for L, p, v in outs[1:]:
        assert L == outs[0][0]
        assert_params_equal(p, outs[0][1])
        assert_params_equal(v, outs[0][2])


# --------------------------------------------------------------------------
# Divergence: the last finite parameters stay
# --------------------------------------------------------------------------

@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_overflowing_step_changes_nothing(kernel_path, dtype, momentum):
    params, X = make_problem(1, 4, 3, "linear", seed=33, dtype=dtype)
    X = (X * 5).astype(dtype)
    velocity = tuple(np.full_like(p, 0.01) for p in params) if momentum else None
    before, vbefore = copy_params(params), copy_params(velocity)
    lr = 1e308 if dtype == np.float64 else 1e38
    with pytest.raises(NonFiniteError):
        eng.sgd_step(params, velocity, X, decoder="linear", learning_rate=lr,
                     momentum=momentum, **HYPER)
    assert_params_equal(params, before)
    if momentum:
        assert_params_equal(velocity, vbefore)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_overflow_in_the_last_block_restores_the_others(kernel_path, momentum):
    """Only W (updated last) overflows: Wd, b and bd were already written
    with finite values when the step finds out, and must be put back.
    W[:, 0] = 1e150 meets x[0] = 0, so the forward pass and the objective
    stay finite (the decay term is lam * 3e300), but the decay part of W's
    update, lr * 2 lam W = 2e347, overflows; every other update is ~1e198."""
    params, X = make_problem(1, 4, 3, "linear", seed=7, dtype=np.float64)
    params[0][:, 0] = 1e150
    X[0, 0] = 0.0
    kw = dict(rho=0.1, beta=1.0, lam=1e-3, decoder="linear", learning_rate=1e200,
              momentum=momentum)
    velocity = tuple(np.full_like(p, 0.01) for p in params) if momentum else None
    p_ref, v_ref = copy_params(params), copy_params(velocity)
    with pytest.raises(NonFiniteError), np.errstate(over="ignore", invalid="ignore"):
        ref.sgd_step(p_ref, v_ref, X, **kw)
    loss, grads = ref.objective_and_gradients(params, X, rho=0.1, beta=1.0, lam=1e-3,
                                              decoder="linear")
    assert np.isfinite(loss)
    with np.errstate(over="ignore"):
        steps = [1e200 * g for g in grads]
    assert all(np.all(np.isfinite(s)) for s in steps[1:])  # b, Wd, bd would be finite
    assert not np.all(np.isfinite(steps[0]))               # W's is not
    before, vbefore = copy_params(params), copy_params(velocity)
    with pytest.raises(NonFiniteError):
        eng.sgd_step(params, velocity, X, **kw)
    assert_params_equal(params, before)
    if momentum:
        assert_params_equal(velocity, vbefore)


def test_nonfinite_objective_after_the_writes_restores(kernel_path):
    """A weight whose square overflows makes only the decay term (summed by
    the update passes) infinite: the step reports it and restores."""
    params, X = make_problem(1, 4, 3, "linear", seed=9, dtype=np.float64)
    params[0][1, 0] = 1e200
    X[0, 0] = 0.0
    before = copy_params(params)
    kw = dict(rho=0.1, beta=1.0, lam=1e-3, decoder="linear", learning_rate=1e-3)
    with pytest.raises(NonFiniteError), np.errstate(over="ignore", invalid="ignore"):
        ref.sgd_step(copy_params(params), None, X, **kw)
    with pytest.raises(NonFiniteError):
        eng.sgd_step(params, None, X, **kw)
    assert_params_equal(params, before)


@pytest.mark.parametrize("shuffle", [False, True])
def test_epoch_stops_at_the_same_sample_as_reference(kernel_path, shuffle):
    """lr = 1e300 with lambda > 0: the first sample leaves weights ~1e300,
    a later one overflows.  Same sample index as the reference, and the
    weights it leaves are the reference's last finite ones."""
    params, X = make_problem(6, 3, 2, "linear", seed=52, dtype=np.float64)
    kw = dict(rho=0.1, beta=1.0, lam=1e-2, decoder="linear", learning_rate=1e300,
              batch_size=1, shuffle=shuffle, rng_state=7)
    p_ref = copy_params(params)
    with pytest.raises(NonFiniteError) as info_ref, np.errstate(over="ignore", invalid="ignore"):
        ref.sgd_epoch(p_ref, None, X, **kw)
    assert info_ref.value.batch >= 1
    with pytest.raises(NonFiniteError) as info:
        eng.sgd_epoch(params, None, X, **kw)
    assert info.value.batch == info_ref.value.batch
    assert all(np.all(np.isfinite(p)) for p in params)
    assert_params_close(params, p_ref, np.float64)


def test_nan_sample_changes_nothing(kernel_path, dtype):
    params, X = make_problem(3, 4, 3, "sigmoid", seed=2, dtype=dtype)
    X[1, 2] = np.nan
    p0 = copy_params(params)
    eng.sgd_step(p0, None, X[:1], learning_rate=0.1, **HYPER)  # a finite row steps
    before = copy_params(p0)
    with pytest.raises(NonFiniteError):
        eng.sgd_step(p0, None, X[1:2], learning_rate=0.1, **HYPER)
    assert_params_equal(p0, before)
    with pytest.raises(NonFiniteError) as info:
        eng.sgd_epoch(params, None, X, learning_rate=0.1, batch_size=1, **HYPER)
    assert info.value.batch == 1
    assert_params_equal(params, before)  # sample 0 applied, sample 1 not



@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("bad_at", [1, 63, 64, 65, 130])
def test_epoch_replays_from_its_checkpoint(kernel_path, dtype, momentum, shuffle, bad_at):
    """An epoch of one-row batches keeps a checkpoint every 64 samples
    instead of per-step backups, and after a failed step replays from it.
    The parameters it leaves must be bit for bit those of a clean epoch over
    the samples before the failing one, whichever side of a checkpoint the
    failure falls."""
    m, n, h = 150, 7, 5
    params, X = make_problem(m, n, h, "linear", seed=bad_at, dtype=dtype)
    state = 11
    order = ref.permutation(m, state)[0] if shuffle else np.arange(m)
    X[order[bad_at], 3] = np.nan  # the bad_at-th sample visited
    velocity = tuple(np.full_like(p, 0.01) for p in params) if momentum else None
    kw = dict(decoder="linear", learning_rate=0.01, momentum=momentum, batch_size=1,
              **HYPER)
    p_clean, v_clean = copy_params(params), copy_params(velocity)
    if bad_at:
        eng.sgd_epoch(p_clean, v_clean, np.ascontiguousarray(X[order[:bad_at]]), **kw)
    with pytest.raises(NonFiniteError) as info:
        eng.sgd_epoch(params, velocity, X, shuffle=shuffle, rng_state=state, **kw)
    assert info.value.batch == bad_at
    assert_params_equal(params, p_clean)
    if momentum:
        assert_params_equal(velocity, v_clean)
