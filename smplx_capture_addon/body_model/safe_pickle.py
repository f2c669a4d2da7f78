"""The one safe reader of the user's pickles (SMPL-X model files, SMPLify's GMM prior).

Pickles are untrusted input: a pickle can name any Python callable to run as it loads.
This unpickler rebuilds numpy arrays and plain containers only; chumpy and scipy.sparse
objects (which old SMPL-X pickles hold) become inert stand-ins whose state is read as an
array. Any other global the file names is refused before it is imported.
"""

from __future__ import annotations

import codecs
import collections
import pickle
from typing import BinaryIO

import numpy as np


class StandIn:
    """Receives the pickled state of a chumpy or scipy.sparse object, runs nothing."""

    def __init__(self, *args, **kwargs) -> None:
        self.state = {}

    def __setstate__(self, state) -> None:
        self.state = state if isinstance(state, dict) else {"state": state}

    def array(self) -> np.ndarray | None:
        """The array the object stood for (a chumpy value, a scipy.sparse csc or csr
        matrix made dense), or None when its state is not one of those. Raises BadArray
        for a sparse matrix that does not make sense."""
        if "x" in self.state:  # chumpy Ch: the value is its `x`
            return np.asarray(self.state["x"])
        if {"data", "indices", "indptr"} <= self.state.keys():
            return _dense_from_sparse(self.state)
        return None


def _numpy_global(name: str):
    """The numpy functions and types that array pickles name, whatever numpy's version."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2 without the forward-compatible aliases
        from numpy.core import multiarray, numeric
    table = {
        "_reconstruct": multiarray._reconstruct,
        "scalar": multiarray.scalar,
        "ndarray": np.ndarray,
        "dtype": np.dtype,
        "_frombuffer": getattr(numeric, "_frombuffer", None),
    }
    return table.get(name)


class RefusedPickle(pickle.UnpicklingError):
    """The pickle names code, not data."""


class BadArray(ValueError):
    """A stand-in's state does not make a sensible array (a sparse matrix with a negative
    or a huge shape, or indices outside it)."""


# 800 MB as float64: past any body model array (SMPL-X's largest, posedirs, has 15 million
# values), so a file claiming more is damaged and is refused before anything is allocated.
MAX_ARRAY_ELEMENTS = 100_000_000


def unpickle_arrays(handle: BinaryIO) -> object:
    """What a pickle of numpy arrays and plain containers holds (Python 2 pickles too),
    with chumpy and scipy.sparse objects as inert stand-ins. Any other global the file
    names raises RefusedPickle before it is imported, so nothing in the file runs: the
    one safe reader for the user's pickles (model files, GMM pose priors)."""
    # latin1: Python 2 pickles store numpy buffers as str.
    return _SafeUnpickler(handle, encoding="latin1").load()


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module.split(".")[0] == "numpy":
            found = _numpy_global(name)
            if found is not None:
                return found
        if module.split(".")[0] in ("chumpy", "scipy"):
            return StandIn
        if (module, name) in (("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")):
            return _reconstruct_stand_in
        if (module, name) in (("__builtin__", "object"), ("builtins", "object")):
            return object
        if (module, name) == ("_codecs", "encode"):  # how protocol 2 stores bytes
            return codecs.encode
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise RefusedPickle(f"refusing to load {module}.{name}")


def _reconstruct_stand_in(cls, base, state):
    if cls is not StandIn:
        raise RefusedPickle("refusing to rebuild an object that is not data")
    return StandIn()


def _dense_from_sparse(state: dict) -> np.ndarray:
    indptr, indices, data = (np.asarray(state[k]) for k in ("indptr", "indices", "data"))
    shape = _sparse_shape(next((state[k] for k in ("_shape", "shape") if state.get(k) is not None), None))
    fmt = state.get("format") or ("csr" if indptr.shape == (shape[0] + 1,) else "csc")
    if fmt not in ("csr", "csc"):
        raise BadArray(f"a sparse matrix in the {fmt!r} format; only csr and csc are read")
    outer, inner = shape if fmt == "csr" else shape[::-1]
    _check_sparse_structure(indptr, indices, data, outer, inner, "columns" if fmt == "csr" else "rows")
    dense = np.zeros(shape, dtype=data.dtype)
    for row in range(outer):
        span = slice(indptr[row], indptr[row + 1])
        if fmt == "csr":
            dense[row, indices[span]] = data[span]
        else:
            dense[indices[span], row] = data[span]
    return dense


def _sparse_shape(shape: object) -> tuple[int, int]:
    """The (rows, columns) a sparse matrix claims, refused before anything is allocated
    when they are not two sizes or would make a dense array past MAX_ARRAY_ELEMENTS."""
    if (
        not isinstance(shape, tuple | list)
        or len(shape) != 2
        or not all(isinstance(size, int | np.integer) and size >= 0 for size in shape)
    ):
        raise BadArray(f"a sparse matrix with the shape {shape!r}, not two whole numbers of zero or more")
    rows, columns = int(shape[0]), int(shape[1])
    if rows * columns > MAX_ARRAY_ELEMENTS:
        raise BadArray(f"a sparse matrix of {rows} x {columns}, larger than any model array")
    return rows, columns


def _check_sparse_structure(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, outer: int, inner: int, inner_name: str
) -> None:
    """indptr: outer + 1 offsets rising from 0 to the number of values; indices: one per
    value, each inside the matrix (a negative one would silently count from the end)."""
    if (
        indptr.shape != (outer + 1,)
        or indices.shape != data.shape
        or indices.ndim != 1
        or indptr.dtype.kind not in "iu"
        or indices.dtype.kind not in "iu"
        or data.dtype.kind not in "biuf"
        or indptr[0] != 0
        or indptr[-1] != len(indices)
        or np.any(np.diff(indptr) < 0)
    ):
        raise BadArray("a sparse matrix whose index arrays do not fit together")
    if len(indices) and (indices.min() < 0 or indices.max() >= inner):
        raise BadArray(f"a sparse matrix with indices outside its {inner} {inner_name}")
