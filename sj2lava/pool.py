"""Torch layers that sj2lava adds to what PyTorch has."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_Pair = Union[int, Tuple[int, int]]


def pair(v) -> Tuple[int, int]:
    """``(h, w)`` from an int, a pair, or a one- or two-element array (as NIR stores them)."""
    if isinstance(v, int):
        return (v, v)
    flat = [int(x) for x in np.asarray(v).reshape(-1)]
    return (flat[0], flat[0]) if len(flat) == 1 else (flat[0], flat[1])


class SumPool2d(nn.Module):
    """Sum pooling, Loihi's pooling synapse: ``y[c, i, j] = sum_{a<kH, b<kW} x[c, i*sH + a, j*sW + b]``.

    Every tap has the same weight (default 1.0, i.e. 64 in NetX's integer units; ``sj2lava.convert`` uses
    ``1/k^2`` for an ``AvgPool2d`` that feeds a neuron). Output size follows PyTorch's floor rule,
    ``H_out = (H - kH) // sH + 1``: rows and columns that do not fill a window are dropped. (lava-dl's
    ``slayer.synapse.Pool`` instead pads odd sizes with zeros at the bottom/right; NetX cannot load
    its ``pool`` layer, so sj2lava exports sum-pools as depthwise convolutions, which drop them.)

    Args:
        kernel_size: window size ``kH`` or ``(kH, kW)``.
        stride: step between windows; default ``kernel_size``.
        weight: weight of every tap (quantized to the 2/64 grid inside a BlockContainer).
    """

    def __init__(self, kernel_size: _Pair, stride: Optional[_Pair] = None, weight: float = 1.0):
        super().__init__()
        self.weight = float(weight)
        self.kernel_size = pair(kernel_size)
        self.stride = pair(stride) if stride is not None else self.kernel_size
        if min(self.kernel_size) < 1 or min(self.stride) < 1:
            raise ValueError(
                f"SumPool2d: kernel_size {self.kernel_size} and stride {self.stride} must be >= 1"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # divisor_override=1 turns the average into an exact integer sum (no 1/k^2 round trip).
        y = F.avg_pool2d(x, self.kernel_size, self.stride, divisor_override=1)
        return y if self.weight == 1.0 else y * self.weight

    def extra_repr(self) -> str:
        w = f", weight={self.weight:g}" if self.weight != 1.0 else ""
        return f"kernel_size={self.kernel_size}, stride={self.stride}{w}"
