"""Time-major <-> time-last layouts.

SpikingJelly uses ``[T, N, *]`` (TNX); lava-dl uses ``[N, *, T]`` (NXT).
"""
from __future__ import annotations

import torch


def _check_rank(x: torch.Tensor, name: str) -> None:
    if x.dim() < 2:
        raise ValueError(
            f"{name} needs a tensor of rank >= 2 (time and batch); got shape {tuple(x.shape)}. "
            "Add a batch dimension, e.g. x.unsqueeze(1) for [T, features]."
        )


def TNX_to_NXT(x: torch.Tensor) -> torch.Tensor:
    """``[T, N, *] -> [N, *, T]`` (a view; exact inverse of :func:`NXT_to_TNX`)."""
    _check_rank(x, "TNX_to_NXT")
    return x.permute(*range(1, x.dim()), 0)


def NXT_to_TNX(x: torch.Tensor) -> torch.Tensor:
    """``[N, *, T] -> [T, N, *]`` (a view; exact inverse of :func:`TNX_to_NXT`)."""
    _check_rank(x, "NXT_to_TNX")
    return x.permute(x.dim() - 1, *range(x.dim() - 1))
