"""Pools: each is a layer of its own, or composed exactly into the synapse before or after it::

    MaxPool2d over spikes                 -> an OR layer (sum-pool into memoryless neurons, threshold 1/2)
    MaxPool2d over currents               -> refused; under approximate, the average of the window
    AvgPool2d | SumPool2d  neuron         -> a sum-pool layer (tap 1/k^2 for an average)
    neuron  AvgPool2d  Conv2d | Linear    -> the pool composed into the weights after it (compose_pool)
    Conv2d  AvgPool2d | SumPool2d  neuron -> the pool composed into the conv before it (conv_then_pool)
"""
from __future__ import annotations

import copy
from typing import Any, List, Optional, Sequence, Tuple, cast

import torch
from torch import nn

from .. import quant
from ..block import BlockContainer, run_blocks
from ..errors import UnsupportedLayerError
from ..neuron import CubaLIFNode
from ..pool import SumPool2d, pair
from ..synapses import rule_for
from .walk import Leaf, is_sumpool

__all__ = ["max_pool_or", "max_over_currents", "pool_block_synapse", "compose_avgpool", "compose_pool",
           "conv_then_pool"]


def max_pool_or(m: nn.MaxPool2d, path: str, notes: List[str]) -> BlockContainer:
    """``MaxPool2d`` over 0/1 spikes is an OR over each window: a sum-pool (tap 1) into memoryless neurons
    (current and voltage decay 1, so ``v`` is this step's window sum; threshold 1/2, below one input spike; zero
    reset) fires exactly where the max is 1, one step later (one more Loihi layer). Trainable like any layer."""
    k = pair(m.kernel_size)
    s = pair(m.stride) if m.stride is not None else k
    if pair(m.padding) != (0, 0) or pair(m.dilation) != (1, 1) or m.ceil_mode or m.return_indices:
        raise UnsupportedLayerError(f"{path}: MaxPool2d with padding, dilation, ceil_mode or return_indices has no "
                                    "sum-pool form; use MaxPool2d(kernel_size, stride) alone")
    notes.append(f"{path}: MaxPool2d{k} over spikes as an OR layer (a sum-pool into memoryless neurons, threshold "
                 "1/2): exact, one step later (one more Loihi layer)")
    return BlockContainer(SumPool2d(k, s, weight=1.0), CubaLIFNode(1.0, 1.0, 0.5), "m")


def max_over_currents(pool: Leaf, path: str, approximate: bool, notes: List[str]) -> Leaf:
    """A ``MaxPool2d`` between a synapse and its neuron: a max of currents, which no weighted sum computes.
    Refused naming the choices; under ``approximate`` the average pool of the same window (noted)."""
    ppath, m = pool
    k = pair(m.kernel_size)
    if not approximate:
        raise UnsupportedLayerError(
            f"{ppath}: MaxPool2d{k} over the currents of {path} (before its neuron) has no exact Loihi form: a max of "
            "currents is not a weighted sum. Choices: put the max-pool after the neuron (over spikes it is exact, an "
            "OR layer), retrain with AvgPool2d / sj2lava.SumPool2d, or convert with approximate=True (the average of "
            "the window instead of its max, noted; sj2lava.finetune then recovers the accuracy).")
    if pair(m.padding) != (0, 0) or pair(m.dilation) != (1, 1) or m.ceil_mode:
        raise UnsupportedLayerError(f"{ppath}: MaxPool2d with padding, dilation or ceil_mode has no average-pool "
                                    "stand-in; use MaxPool2d(kernel_size, stride) alone")
    notes.append(f"{ppath}: MaxPool2d{k} over the currents of {path} replaced by AvgPool2d{k} (not exact: the window's "
                 "mean instead of its max; sj2lava.finetune recovers the accuracy, verify measures it)")
    return ppath, nn.AvgPool2d(k, m.stride if m.stride is not None else k)


def pool_block_synapse(m: nn.Module, path: str, notes: List[str]) -> SumPool2d:
    if is_sumpool(m):
        if isinstance(m, SumPool2d):
            return copy.deepcopy(m)
        return _as_sumpool(m, path)
    if pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override is not None:
        raise UnsupportedLayerError(f"{path}: AvgPool2d(padding={m.padding}, ceil_mode={m.ceil_mode}) is not "
                                    "supported; use padding=0 and ceil_mode=False.")
    k = pair(m.kernel_size)
    s = pair(m.stride) if m.stride is not None else k
    tap = 1.0 / (k[0] * k[1])
    q = float(quant.quantize_weight(torch.tensor(tap)))
    if q == 0.0:
        raise UnsupportedLayerError(
            f"{path}: AvgPool2d{k} averages with 1/{k[0] * k[1]}, which rounds to 0 on Loihi's 8-bit weight grid "
            "(steps of 2/64). Use a smaller kernel, or sj2lava.SumPool2d and retrain."
        )
    if q != tap:
        notes.append(f"{path}: AvgPool2d{k} tap weight 1/{k[0] * k[1]} = {tap:.5f} rounds to {q:.5f} on the 8-bit "
                     f"grid ({(q - tap) / tap:+.1%}); exact only for 2x2 and 4x4 windows")
    else:
        notes.append(f"{path}: AvgPool2d{k} becomes a sum-pool with tap weight {q:g} (exact)")
    return SumPool2d(k, s, weight=tap)


def _as_sumpool(m: nn.Module, path: str) -> SumPool2d:
    """A front-end's sum-pool module as sj2lava's SumPool2d (its synapse rule's ``normalize``)."""
    normalize = rule_for(m, path).normalize
    assert normalize is not None, f"{path}: a pool rule without normalize"
    return cast(SumPool2d, normalize(m, path))


def compose_avgpool(pool: Leaf, syn: nn.Module, path: str, blocks: Sequence[nn.Module],
                    example_input: Optional[torch.Tensor], notes: List[str]) -> nn.Module:
    """``syn(avgpool_k(x))`` as one synapse on ``x`` (see :func:`compose_pool`)."""
    ppath, p = pool
    k = pair(p.kernel_size)
    s = pair(p.stride) if p.stride is not None else k
    if p.ceil_mode:
        raise UnsupportedLayerError(f"{ppath}: AvgPool2d with ceil_mode cannot be composed into {path}; use "
                                    "ceil_mode=False.")
    needs_hw = isinstance(syn, nn.Linear) or pair(getattr(syn, "padding", 0)) != (0, 0)
    hw = _pool_input_hw(blocks, example_input, ppath, path) if needs_hw else None
    return compose_pool(k, s, pair(p.padding), 1.0 / (k[0] * k[1]), syn, ppath, path, hw, notes,
                        what=f"AvgPool2d{k}")


def compose_pool(k: Tuple[int, int], s: Tuple[int, int], padding: Tuple[int, int], tap: float, syn: nn.Module,
                 ppath: str, path: str, hw: Optional[Tuple[int, int]], notes: List[str], what: str) -> nn.Module:
    """``syn(pool(x))`` as one synapse on ``x``, for a pool of window ``k`` with every tap weighing ``tap`` (1 for a
    sum-pool, ``1/k^2`` for an average): kernel ``k K``, stride ``k S``, padding ``k P``, weights
    ``tap W[y // k, x // k]`` (a Linear sees the pre-pool image ``hw``, rows beyond ``k h`` weighted 0).
    Exact in float; needs stride == kernel and no pool padding."""
    if s != k or padding != (0, 0):
        raise UnsupportedLayerError(f"{ppath}: only a pool with stride == kernel_size and no padding can be "
                                    f"composed into {path}; change the pool or put a neuron after it.")
    new: Any
    with torch.no_grad():
        if isinstance(syn, nn.Conv2d):
            if pair(syn.dilation) != (1, 1) or isinstance(syn.padding, str):
                raise UnsupportedLayerError(f"{ppath}: a pool cannot be composed into the dilated or "
                                            f"string-padded Conv2d {path}.")
            pad = pair(syn.padding)
            if pad != (0, 0):
                assert hw is not None, "compose_pool: a padded conv needs the image size"
                h, w = hw
                if h % k[0] or w % k[1]:
                    raise UnsupportedLayerError(
                        f"{ppath}: a {h}x{w} map pooled by {k} drops rows/columns that the padding of {path} "
                        "would see as zeros; the composition is not exact. Use sizes divisible by the pool.")
            w0 = syn.weight
            kern = (w0.shape[2] * k[0], w0.shape[3] * k[1])
            stride = (syn.stride[0] * k[0], syn.stride[1] * k[1])
            new = nn.Conv2d(syn.in_channels, syn.out_channels, kern, stride=stride,
                            padding=(pad[0] * k[0], pad[1] * k[1]), groups=syn.groups, bias=syn.bias is not None)
            new.weight.copy_(w0.repeat_interleave(k[0], 2).repeat_interleave(k[1], 3) * tap)
        else:
            assert hw is not None, "compose_pool: a Linear needs the image size"
            h, w = hw
            hp, wp = h // k[0], w // k[1]
            c = syn.in_features // (hp * wp) if hp * wp else 0
            if c * hp * wp != syn.in_features:
                raise UnsupportedLayerError(f"{path}: Linear({syn.in_features}) does not fit the pooled {hp}x{wp} map")
            w4 = syn.weight.reshape(syn.out_features, c, hp, wp) * tap
            full = torch.zeros(syn.out_features, c, h, w)
            full[:, :, :hp * k[0], :wp * k[1]] = w4.repeat_interleave(k[0], 2).repeat_interleave(k[1], 3)
            new = nn.Linear(c * h * w, syn.out_features, bias=syn.bias is not None)
            new.weight.copy_(full.reshape(syn.out_features, -1))
        if syn.bias is not None:
            new.bias.copy_(syn.bias)
    notes.append(f"{ppath}: {what} composed into {path} (exact in float: weights x {tap:g}, kernel and "
                 f"stride x{k[0]}); the composed weights are quantized to 8 bits together")
    return new


def conv_then_pool(conv: nn.Conv2d, pool: Leaf, path: str, notes: List[str]) -> nn.Conv2d:
    """``pool(conv(x))`` as one conv: the kernel convolved with the pool window (size ``K + k - 1``),
    stride = the pool's, padding = the conv's. Needs a stride-1, undilated conv."""
    ppath, p = pool
    if is_sumpool(p) and not isinstance(p, SumPool2d):
        p = _as_sumpool(p, ppath)
    k = pair(p.kernel_size)
    s = pair(p.stride) if p.stride is not None else k
    if isinstance(p, nn.AvgPool2d):
        if pair(p.padding) != (0, 0) or p.ceil_mode:
            raise UnsupportedLayerError(f"{ppath}: AvgPool2d with padding or ceil_mode cannot be composed into {path}")
        tap = 1.0 / (k[0] * k[1])
    else:
        tap = float(p.weight)
    if pair(conv.stride) != (1, 1) or pair(conv.dilation) != (1, 1) or isinstance(conv.padding, str):
        raise UnsupportedLayerError(
            f"{ppath}: a pool right after the strided or dilated Conv2d {path} has no single-layer Loihi form; "
            "put a neuron between them, or replace the pool by the conv's stride and retrain.")
    new: Any
    with torch.no_grad():
        o, i, kh, kw = conv.weight.shape
        window = torch.full((1, 1, *k), tap)
        w = torch.nn.functional.conv2d(conv.weight.reshape(o * i, 1, kh, kw), window, padding=(k[0] - 1, k[1] - 1))
        new = nn.Conv2d(conv.in_channels, conv.out_channels, (kh + k[0] - 1, kw + k[1] - 1), stride=s,
                        padding=cast(Any, conv.padding), groups=conv.groups, bias=conv.bias is not None)
        new.weight.copy_(w.reshape(o, i, *w.shape[2:]))
        if conv.bias is not None:
            new.bias.copy_(conv.bias * tap * k[0] * k[1])
    notes.append(f"{ppath}: {type(p).__name__}{k} after {path} composed into one conv (kernel "
                 f"{tuple(new.kernel_size)}, stride {s}); exact in float, the composed weights are then quantized")
    return new


def _pool_input_hw(blocks: Sequence[nn.Module], example_input: Optional[torch.Tensor], ppath: str,
                   path: str) -> Tuple[int, int]:
    if example_input is None:
        raise UnsupportedLayerError(f"{ppath}: composing AvgPool2d into {path} needs the image size; pass "
                                    "example_input=(a [T, N, C, H, W] batch) to convert().")
    x = example_input if example_input.dim() >= 5 else example_input.unsqueeze(0)
    # the pool sits before any flatten that follows the last neuron, so neuron blocks alone give its input
    outs = run_blocks([b for b in blocks if b.neuron is not None], x[:1, :1].float())
    h = outs[-1] if outs else x[:1, :1]
    if h.dim() != 5:
        raise UnsupportedLayerError(f"{ppath}: AvgPool2d needs a (C, H, W) map, but gets {tuple(h.shape[2:])}")
    return int(h.shape[-2]), int(h.shape[-1])
