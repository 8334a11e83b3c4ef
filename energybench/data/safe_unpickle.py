"""Read CIFAR's python batches (pickles) without running code from them.

CIFAR-10/100 "python version" batches are pickled dicts of bytes keys, lists and numpy arrays.
Loading them with plain :func:`pickle.load` would execute whatever a crafted file asks for, so
this module's :class:`RestrictedUnpickler` resolves only the globals numpy needs to rebuild an
array; anything else is refused with :class:`pickle.UnpicklingError`.

This is the only module of energybench that uses :mod:`pickle` (a test checks it), and it must
never be used on a run folder: checkpoints are tensors-only (see ``lifecycle/checkpoint.py``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from pickle import UnpicklingError
from typing import Any

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "UnpicklingError", "load_restricted"]

#: (module, name) pairs a CIFAR batch may reference: numpy's array reconstruction only.
ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refused to load global {module}.{name}: a CIFAR batch holds only arrays and lists"
        )


def load_restricted(path: Path) -> Any:
    """The object pickled in ``path``, built from plain data and numpy arrays only."""
    with open(path, "rb") as fh:
        return RestrictedUnpickler(fh, encoding="bytes").load()
