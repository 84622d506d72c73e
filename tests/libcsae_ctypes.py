"""The shared library libcsae (csae.get_library()) through ctypes, for the
tests of the C model-file reader and the installed library.  Status codes
are read from the installed csae.h, so a renumbered enum fails loudly."""

import ctypes
import os
import re

import numpy as np
import pytest

import csae


class Model(ctypes.Structure):
    """csae_model."""
    _fields_ = [("n_features", ctypes.c_size_t), ("n_hidden", ctypes.c_size_t),
                ("decoder", ctypes.c_int), ("sparsity_target", ctypes.c_double),
                ("sparsity_weight", ctypes.c_double), ("weight_decay", ctypes.c_double)]


class Params(ctypes.Structure):
    """csae_params_f64 / csae_params_f32 (four pointers)."""
    _fields_ = [(name, ctypes.c_void_p) for name in ("W", "b", "Wd", "bd")]


def library():
    try:
        path = csae.get_library()
    except FileNotFoundError as err:
        pytest.fail(f"{err} (python setup.py build_ext --inplace builds it)")
    lib = ctypes.CDLL(path)
    lib.csae_status_message.restype = ctypes.c_char_p
    lib.csae_version.restype = ctypes.c_char_p
    for name in ("csae_model_file_info", "csae_model_file_read_f64",
                 "csae_model_file_read_f32", "csae_model_file_input_range"):
        getattr(lib, name).restype = ctypes.c_int
    lib.csae_model_file_info.argtypes = [ctypes.c_char_p, ctypes.POINTER(Model),
                                         ctypes.POINTER(ctypes.c_size_t)]
    for name in ("csae_model_file_read_f64", "csae_model_file_read_f32"):
        getattr(lib, name).argtypes = [ctypes.c_char_p, ctypes.POINTER(Model), Params]
    lib.csae_model_file_input_range.argtypes = [
        ctypes.c_char_p, ctypes.POINTER(Model), ctypes.POINTER(ctypes.c_int),
        ctypes.c_void_p, ctypes.c_void_p]
    return lib


def status_codes():
    """{name: value} of csae_status, read from the installed header."""
    with open(os.path.join(csae.get_include(), "csae.h")) as f:
        text = f.read()
    body = text[text.index("typedef enum {"):text.index("} csae_status;")]
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"\b(CSAE_(?:OK|ERR_\w+))\s*=\s*(\d+)", body)}


class Reader:
    """The model-file functions with Python arguments; each returns the
    status name (and results)."""

    def __init__(self):
        self.lib = library()
        self.names = {v: k for k, v in status_codes().items()}

    def name(self, status):
        return self.names.get(status, f"unknown status {status}")

    def info(self, path):
        model, elem = Model(), ctypes.c_size_t(0)
        st = self.lib.csae_model_file_info(_b(path), ctypes.byref(model), ctypes.byref(elem))
        return self.name(st), model, elem.value

    def read(self, path, model, dtype):
        """(status, (W, b, Wd, bd)) read into fresh arrays of dtype."""
        n, h = model.n_features, model.n_hidden
        arrays = tuple(np.full(shape, np.nan, dtype=dtype)
                       for shape in ((h, n), (h,), (n, h), (n,)))
        params = Params(*(a.ctypes.data for a in arrays))
        fn = (self.lib.csae_model_file_read_f64 if np.dtype(dtype) == np.float64
              else self.lib.csae_model_file_read_f32)
        return self.name(fn(_b(path), ctypes.byref(model), params)), arrays

    def input_range(self, path, model):
        """(status, scale_inputs flag, data_min, data_scale)."""
        n = model.n_features
        lo, scale = np.full(n, np.nan), np.full(n, np.nan)
        flag = ctypes.c_int(-1)
        st = self.lib.csae_model_file_input_range(_b(path), ctypes.byref(model),
                                                  ctypes.byref(flag), lo.ctypes.data,
                                                  scale.ctypes.data)
        return self.name(st), flag.value, lo, scale


def _b(path):
    return None if path is None else os.fsencode(path)


MAX_LAYERS = 16  # csae.h's CSAE_DEEP_FILE_MAX_LAYERS


class DeepFile(ctypes.Structure):
    """csae_deep_file."""
    _fields_ = [("kind", ctypes.c_int), ("n_hidden_layers", ctypes.c_size_t),
                ("sizes", ctypes.c_size_t * (MAX_LAYERS + 2)), ("elem_size", ctypes.c_size_t),
                ("n_params", ctypes.c_size_t), ("has_range", ctypes.c_int)]


class DeepReader(Reader):
    """The deep models' file functions (csae_deep_file_*)."""

    def __init__(self):
        super().__init__()
        lib = self.lib
        for name in ("csae_deep_file_info", "csae_deep_file_read_f64",
                     "csae_deep_file_read_f32", "csae_deep_file_input_range"):
            getattr(lib, name).restype = ctypes.c_int
        lib.csae_deep_file_info.argtypes = [ctypes.c_char_p, ctypes.POINTER(DeepFile)]
        for name in ("csae_deep_file_read_f64", "csae_deep_file_read_f32"):
            getattr(lib, name).argtypes = [ctypes.c_char_p, ctypes.POINTER(DeepFile),
                                           ctypes.c_void_p]
        lib.csae_deep_file_input_range.argtypes = [ctypes.c_char_p, ctypes.POINTER(DeepFile),
                                                   ctypes.c_void_p, ctypes.c_void_p]

    def info(self, path):
        info = DeepFile()
        st = self.lib.csae_deep_file_info(_b(path), ctypes.byref(info))
        return self.name(st), info

    def read(self, path, info, dtype):
        """(status, theta) read into a fresh array of dtype."""
        theta = np.full(info.n_params, np.nan, dtype=dtype)
        fn = (self.lib.csae_deep_file_read_f64 if np.dtype(dtype) == np.float64
              else self.lib.csae_deep_file_read_f32)
        return self.name(fn(_b(path), ctypes.byref(info), theta.ctypes.data)), theta

    def input_range(self, path, info):
        n = info.sizes[0]
        lo, scale = np.full(n, np.nan), np.full(n, np.nan)
        st = self.lib.csae_deep_file_input_range(_b(path), ctypes.byref(info), lo.ctypes.data,
                                                 scale.ctypes.data)
        return self.name(st), lo, scale
