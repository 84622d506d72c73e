"""Differential fuzz of the two ways into the one model-file reader:
csae.load (through csae._engine.read_model_file) and the public C API
(csae_model_file_*, through ctypes on libcsae).  Mutants of saved models
(bytes flipped, files cut, bytes changed inside a member with its CRC-32
fixed, members edited and the archive rewritten) must be refused by both,
or read by both to bit-identical values.  Since both share the C reader,
this checks the binding, the Python model built from it and the writer."""

import json
import struct
import zlib

import numpy as np
import pytest

import csae
from libcsae_ctypes import Reader
from test_model_file import NAMES, arrays_of, saved, write
from test_model_file_rules import CASES

ITERATIONS = 700


@pytest.fixture(scope="module")
def reader():
    return Reader()


def members(data):
    """[(name, local header offset, data offset, size, central entry offset)]"""
    n, cd_size, cd_offset = struct.unpack_from("<HII", data, len(data) - 12)
    out, pos = [], cd_offset
    for _ in range(n):
        nlen, xlen, clen = struct.unpack_from("<HHH", data, pos + 28)
        size = struct.unpack_from("<I", data, pos + 24)[0]
        local = struct.unpack_from("<I", data, pos + 42)[0]
        lnlen, lxlen = struct.unpack_from("<HH", data, local + 26)
        out.append((data[pos + 46:pos + 46 + nlen].decode(), local,
                    local + 30 + lnlen + lxlen, size, pos))
        pos += 46 + nlen + xlen + clen
    return out


def raw_mutant(rng, data):
    data = bytearray(data)
    kind = rng.integers(3)
    if kind == 0:
        for _ in range(rng.integers(1, 5)):
            data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        data = data[:rng.integers(len(data))]
    else:  # damage near the end, where the zip records are
        at = len(data) - 1 - int(rng.integers(min(len(data), 200)))
        data[at] = int(rng.integers(256))
    return bytes(data)


def deep_mutant(rng, data):
    """A byte of one member changed, its CRC-32 fixed in both headers."""
    data = bytearray(data)
    name, local, start, size, central = members(bytes(data))[rng.integers(len(members(data)))]
    if size == 0:
        return bytes(data)
    for _ in range(rng.integers(1, 3)):
        at = start + int(rng.integers(size))
        data[at] = int(rng.integers(256)) if rng.random() < 0.5 else data[at] ^ 1 << int(
            rng.integers(8))
    crc = zlib.crc32(bytes(data[start:start + size]))
    struct.pack_into("<I", data, central + 16, crc)
    struct.pack_into("<I", data, local + 14, crc)
    return bytes(data)


def edited_arrays(rng, arrays):
    arrays = dict(arrays)
    kind = rng.integers(4)
    if kind == 0:  # a hyperparameter from the edge table
        changes, _ = CASES[rng.integers(len(CASES))]
        hp = json.loads(str(arrays["hyperparameters"][0]))
        hp.update(changes)
        arrays["hyperparameters"] = np.array([json.dumps(hp)])
    elif kind == 1:  # a value of some float member
        name = [k for k, v in arrays.items() if v.dtype.kind == "f" and v.size][
            rng.integers(sum(1 for v in arrays.values() if v.dtype.kind == "f" and v.size))]
        x = arrays[name].copy()
        with np.errstate(over="ignore"):  # 1e300 becomes inf in float32
            x.reshape(-1)[rng.integers(x.size)] = rng.choice(
                [np.nan, np.inf, -1.0, 0.0, 2.0, 1e300, 5e-324])
        arrays[name] = x
    elif kind == 2:  # a member dropped
        del arrays[list(arrays)[rng.integers(len(arrays))]]
    else:  # a member of another dtype or shape
        name = list(arrays)[rng.integers(len(arrays))]
        x = arrays[name]
        choice = rng.integers(3)
        if choice == 0 and x.dtype.kind in "fiu":
            arrays[name] = x.astype(rng.choice([np.float32, np.float64, np.int64, np.uint64]))
        elif choice == 1 and x.ndim:
            arrays[name] = x.reshape(-1)[:-1] if x.size else x
        else:
            arrays[name] = x.reshape(1, *x.shape)
    return arrays


def read_both(reader, path):
    try:
        model = csae.load(path)
    except ValueError:
        model = None
    st, info, elem = reader.info(path)
    return model, st, info, elem


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def compare(reader, path, what, failures):
    model, st, info, elem = read_both(reader, path)
    if (model is None) != (st != "CSAE_OK"):
        failures.append(f"{what}: csae.load {'refuses' if model is None else 'accepts'}, "
                        f"C says {st}")
        return model is not None
    if model is None:
        return False
    dtype = model.encoder_weights_.dtype
    st, weights = reader.read(path, info, dtype)
    ok = st == "CSAE_OK" and elem == dtype.itemsize
    ok = ok and all(same_bits(w, getattr(model, name + "_")) for name, w in zip(NAMES, weights))
    ok = ok and (info.n_features, info.n_hidden) == model.decoder_weights_.shape
    ok = ok and (info.sparsity_target, info.sparsity_weight, info.weight_decay) == (
        model.sparsity_target, model.sparsity_weight, model.weight_decay)
    st, flag, lo, scale = reader.input_range(path, info)
    ok = ok and st == "CSAE_OK" and flag == int(model.scale_inputs)
    if flag and model._state.data_min is not None:
        ok = ok and same_bits(lo, model._state.data_min) and same_bits(scale, model._state.data_scale)
    if not ok:
        failures.append(f"{what}: both accept, values differ")
    return True


@pytest.mark.parametrize("seed_kwargs", [
    {"momentum": 0.5, "scale_inputs": True},
    {"dtype": np.float32, "n": 3, "n_hidden": 2, "solver": "adam"},
    {"decoder": "linear", "n": 5, "n_hidden": 6, "sparsity_estimate": "running"},
], ids=["f64-velocity-range", "f32-adam", "linear-running"])
def test_mutants_are_refused_by_both_or_read_alike(reader, tmp_path, seed_kwargs):
    seed = saved(tmp_path, "seed.npz", **seed_kwargs)
    data = seed.read_bytes()
    arrays = arrays_of(seed)
    rng = np.random.default_rng(sum(map(ord, repr(seed_kwargs))))
    failures, accepted = [], 0
    path = tmp_path / "mutant.npz"
    for i in range(ITERATIONS):
        kind = i % 3
        if kind == 0:
            path.write_bytes(raw_mutant(rng, data))
        elif kind == 1:
            path.write_bytes(deep_mutant(rng, data))
        else:
            write(path, edited_arrays(rng, arrays))
        accepted += compare(reader, path, f"mutant {i} ({['raw', 'deep', 'edit'][kind]})",
                            failures)
    assert not failures, failures[:10]
    # Both outcomes occurred: the mutants were neither all fatal nor all harmless.
    assert 10 < accepted < ITERATIONS - 10, accepted


# --------------------------------------------------------------------------
# Deep models' files: csae.load against csae_deep_file_*
# --------------------------------------------------------------------------

def compare_deep(deep, path, what, failures):
    try:
        model = csae.load(path)
    except ValueError:
        model = None
    st, info = deep.info(path)
    if model is not None and isinstance(model, csae.SparseAutoencoder):
        failures.append(f"{what}: a deep file's mutant loads as a SparseAutoencoder")
        return True
    if st != "CSAE_OK":
        # The C reader leaves the record's content to Python: it may accept
        # what Python refuses, never the other way round.
        if model is not None:
            failures.append(f"{what}: csae.load accepts, C says {st}")
        return False
    if model is None:
        return False
    dtype = model.layers_[0][0].dtype
    st, theta = deep.read(path, info, dtype)
    ok = st == "CSAE_OK" and info.elem_size == dtype.itemsize
    ok = ok and theta.tobytes() == b"".join(a.tobytes() for layer in model.layers_
                                            for a in layer)
    ok = ok and list(info.sizes[:info.n_hidden_layers + 1]) == [
        model.n_features_in_, *(W.shape[0] for W, _ in model.layers_[:info.n_hidden_layers])]
    if info.has_range:
        st, lo, scale = deep.input_range(path, info)
        ok = ok and st == "CSAE_OK" and same_bits(lo, model._data_min)
        ok = ok and same_bits(scale, model._data_scale)
    else:
        ok = ok and model._data_min is None
    if not ok:
        failures.append(f"{what}: both accept, values differ")
    return True


@pytest.mark.parametrize("kind", ["classifier", "stack"])
def test_deep_mutants_are_refused_by_both_or_read_alike(tmp_path, kind):
    from libcsae_ctypes import DeepReader
    from test_model_file import deep_seeds
    seed = deep_seeds(tmp_path)[kind == "stack"]
    data = seed.read_bytes()
    arrays = arrays_of(seed)
    rng = np.random.default_rng(11 + (kind == "stack"))
    deep = DeepReader()
    failures, accepted = [], 0
    path = tmp_path / "mutant.npz"
    for i in range(ITERATIONS):
        step = i % 3
        if step == 0:
            path.write_bytes(raw_mutant(rng, data))
        elif step == 1:
            path.write_bytes(deep_mutant(rng, data))
        else:
            write(path, edited_arrays(rng, arrays))
        accepted += compare_deep(deep, path, f"mutant {i} ({['raw', 'deep', 'edit'][step]})",
                                 failures)
    assert not failures, failures[:10]
    assert 10 < accepted < ITERATIONS - 10, accepted
