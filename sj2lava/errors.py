"""Errors sj2lava raises for input it cannot handle exactly.

Each message names the layer (module path or class), the attribute at fault, and what to change.
"""
from __future__ import annotations


class UnsupportedLayerError(ValueError):
    """A module, neuron or setting that has no exact Loihi (CUBA / NetX) equivalent."""


class ExportError(ValueError):
    """A model that would not run identically once written as a NetX ``.net`` file."""


class NetFileError(ValueError):
    """A ``.net`` (NetX HDF5) file that is missing data, malformed or inconsistent."""
