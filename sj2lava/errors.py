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


class NirFileError(NetFileError):
    """A NIR graph (``.nir`` file or ``nir.NIRGraph``) that is malformed, inconsistent or beyond what Loihi holds,
    named by node and field."""


class GradedOverflowError(OverflowError):
    """A graded (SDNN) synaptic sum that may leave int32, where Lava's numpy arithmetic wraps in an order the
    emulator does not reproduce. Both emulator backends raise it before any wrong number is returned; ``layer``
    (the synaptic layer's index) and ``top`` (the largest message) say where, when known."""

    def __init__(self, message: str, layer: int = -1, top: int = 0):
        super().__init__(message)
        self.layer, self.top = layer, top


class LavaRunError(RuntimeError):
    """Lava's runtime failed under a run: a worker process died or the run stalled past its ``timeout``.

    The runtime has been stopped and its shared memory released when this is raised. ``samples_done`` is how many
    samples had finished."""

    def __init__(self, message: str, samples_done: int = 0):
        super().__init__(message)
        self.samples_done = samples_done
