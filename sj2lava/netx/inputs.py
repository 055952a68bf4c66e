"""Input checks shared by everything that runs a net: the emulator and the Lava runner.

Both take spikes ``[T, N, *input_shape]`` (``'TNX'``) or ``[N, *input_shape, T]`` (``'NXT'``) and refuse
bad input (wrong shape, NaN, non-binary values) with a ``ValueError`` before any work.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch

from ..layout import NXT_to_TNX
from .spec import NetSpec

__all__ = ["prepare_input", "check_binary", "reset_phases"]


def prepare_input(spec: NetSpec, x: torch.Tensor, layout: str, what: str, check_values: bool = True) -> torch.Tensor:
    """Check ``x`` against the network and return it as ``[T, N, *input_shape]`` float spikes.
    With ``check_values=False`` the caller checks the values itself (with :func:`check_binary` or as
    fast) before any work."""
    if layout not in ("TNX", "NXT"):
        raise ValueError(f"{what}: layout must be 'TNX' or 'NXT', got {layout!r}")
    x = torch.as_tensor(x)
    if x.dim() < 3:
        raise ValueError(f"{what}: input must be [T, N, *shape] (TNX) or [N, *shape, T] (NXT); got "
                         f"shape {tuple(x.shape)}. Add a batch dimension for a single sample.")
    x = x if layout == "TNX" else NXT_to_TNX(x)
    sample = tuple(x.shape[2:])
    want = tuple(spec.input_shape)
    if sample != want and not (len(want) == 1 and int(np.prod(sample)) == want[0]):
        raise ValueError(f"{what}: each sample has shape {sample} but the network takes {want}")
    if check_values:
        check_binary(x, what)
    return x.reshape(x.shape[0], x.shape[1], *want).float()


def check_binary(x: torch.Tensor, what: str) -> None:
    """Raise ``ValueError`` unless every value of ``x`` is 0 or 1 (the network has no message bits)."""
    if x.is_floating_point() and torch.isnan(x).any():
        raise ValueError(f"{what}: input contains NaN")
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(f"{what}: input must be binary spikes (0/1); the network has no message bits "
                         "for graded input. Encode it first (e.g. rate coding).")


def reset_phases(spec: NetSpec, reset_interval: Optional[int], reset_offset: int = 0
                 ) -> Optional[List[Tuple[int, int]]]:
    """Per synaptic layer ``(interval, phase)`` of NetX's periodic reset (``hdf5.Network(reset_interval=,
    reset_offset=)``): layer ``i`` resets at Lava steps ``k`` with ``k % interval == phase``, ``phase =
    (reset_offset + 1 + i) % interval`` (NetX counts hardware time from 1 and shifts each layer by one)."""
    if reset_interval is None:
        return None
    for name, value, low in (("reset_interval", reset_interval, 1), ("reset_offset", reset_offset, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    interval = int(reset_interval)
    return [(interval, (int(reset_offset) + 1 + i) % interval) for i in range(spec.synaptic_layers)]
