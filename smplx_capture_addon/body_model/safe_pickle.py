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
        matrix made dense), or None when its state is not one of those."""
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
    shape = tuple(state.get("_shape") or state.get("shape"))
    fmt = state.get("format") or ("csr" if shape[0] + 1 == len(state["indptr"]) else "csc")
    dense = np.zeros(shape, dtype=np.asarray(state["data"]).dtype)
    indptr, indices, data = (np.asarray(state[k]) for k in ("indptr", "indices", "data"))
    for outer in range(len(indptr) - 1):
        span = slice(indptr[outer], indptr[outer + 1])
        if fmt == "csr":
            dense[outer, indices[span]] = data[span]
        else:
            dense[indices[span], outer] = data[span]
    return dense
