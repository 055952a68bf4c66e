"""BatchNorm folded into the synapse before it (evaluation mode): exact in float."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UnsupportedLayerError

__all__ = ["fold_bn"]


def fold_bn(syn: nn.Module, bn: nn.Module, where: str) -> nn.Module:
    """``bn(W x + b)`` in evaluation mode == ``W' x + b'``: ``W' = W g/s``, ``b' = (b - mean) g/s + beta``,
    ``s = sqrt(var + eps)``."""
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedLayerError(f"{where}: BatchNorm without running statistics (track_running_stats="
                                    "False) cannot be folded; train with track_running_stats=True.")
    if bn.num_features != (syn.out_channels if isinstance(syn, nn.Conv2d) else syn.out_features):
        raise UnsupportedLayerError(f"{where}: BatchNorm over {bn.num_features} features does not match the "
                                    "synapse before it")
    with torch.no_grad():
        scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
        b = syn.bias if syn.bias is not None else torch.zeros_like(bn.running_mean)
        new_b = (b - bn.running_mean) * scale + shift
        syn.weight.mul_(scale.view(-1, *([1] * (syn.weight.dim() - 1))))
        syn.bias = nn.Parameter(new_b.clone())
    return syn
