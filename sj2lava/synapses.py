"""Synapse translators: a registry keyed by module type.

Each supported synapse type has one :class:`SynapseRule` saying how it runs quantized in a
:class:`~sj2lava.block.BlockContainer`, what bias it carries and which NetX layer it is written as.
Front-ends add rules for their frameworks' modules (and :mod:`sj2lava.frontends.lavadl` keeps the
matching lava-dl blocks, keyed by the rule's ``kind``).
Lookup walks the type's MRO, so subclasses (SpikingJelly's ``layer.Conv2d`` is an ``nn.Conv2d``)
use their parent's rule. Adding a layer is one :func:`register` call.

Synaptic input ``z`` is in float units: a weight mantissa of 64 is 1.0, so with binary spikes
``z`` is a multiple of 2/64 and its state ``4096 z`` (:func:`sj2lava.quant.to_state`) is exact.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import quant
from .errors import ExportError, UnsupportedLayerError
from .netx.spec import Conv, Cuba, Dense, Flatten, Layer, Shape, conv_out_shape
from .pool import SumPool2d, pair

__all__ = ["SynapseRule", "register", "rule_for", "find_rule", "pool_tap"]


@dataclass(frozen=True)
class SynapseRule:
    """How one synapse type runs on Loihi.

    Attributes:
        kind: NetX layer kind: ``'conv'``, ``'dense'``, ``'pool'`` or ``'flatten'``.
        forward: ``(module, x [B, *], input_scale) -> z [B, *]`` with quantized weights, no bias.
        check: raises :class:`UnsupportedLayerError` for settings with no exact Loihi form.
        bias: ``(module, input_scale) -> float bias per output channel or None``.
        to_netx: ``(module, input_scale, in_shape, neuron, bias_mant, where) -> NetX layer`` (a
            :mod:`sj2lava.netx.spec` layer with the quantized integers :func:`sj2lava.export` writes).
        normalize: optional ``module -> module`` replacement done once at construction
            (``nn.AvgPool2d`` becomes :class:`SumPool2d`).
    """

    kind: str
    # (each rule's callables take its own module type: Callable[..., R] lets them say so)
    forward: Callable[..., torch.Tensor]
    to_netx: Callable[..., Layer]
    check: Callable[..., None] = lambda m, where: None
    bias: Callable[[nn.Module, float], Optional[torch.Tensor]] = lambda m, s: None
    normalize: Optional[Callable[..., nn.Module]] = field(default=None)


_RULES: Dict[type, SynapseRule] = {}
_RULES_BY_NAME: Dict[str, SynapseRule] = {}


def register(*types: type, names: Tuple[str, ...] = ()) -> Callable[[SynapseRule], SynapseRule]:
    """Register ``rule`` for module ``types`` (and fully qualified class ``names`` of optional
    packages, matched without importing them)."""

    def add(rule: SynapseRule) -> SynapseRule:
        _RESOLVED.clear()  # a new registration may be more specific than a cached MRO match
        for t in types:
            _RULES[t] = rule
        for n in names:
            _RULES_BY_NAME[n] = rule
        return rule

    return add


_RESOLVED: Dict[type, SynapseRule] = {}  # per concrete type: every forward asks, the MRO walk runs once


def find_rule(module: nn.Module) -> Optional[SynapseRule]:
    """The rule for ``module``'s type (walking its MRO), or None."""
    rule = _RESOLVED.get(type(module))
    if rule is not None:
        return rule
    for t in type(module).__mro__:
        rule = _RULES.get(t) or _RULES_BY_NAME.get(f"{t.__module__}.{t.__qualname__}")
        if rule is not None:
            _RESOLVED[type(module)] = rule
            return rule
    return None


def rule_for(module: nn.Module, where: str) -> SynapseRule:
    """The rule for ``module``, or :class:`UnsupportedLayerError` naming it and the fix."""
    rule = find_rule(module)
    if rule is None:
        raise UnsupportedLayerError(f"{where}: {_unsupported_hint(module)}")
    return rule


def _unsupported_hint(m: nn.Module) -> str:
    name = type(m).__name__
    if isinstance(m, (nn.MaxPool2d, nn.MaxPool1d, nn.AdaptiveMaxPool2d)):
        return (f"{name} has no Loihi synapse (max is not a weighted sum). Use sj2lava.SumPool2d "
                "or a strided Conv2d and retrain.")
    if isinstance(m, (nn.Conv1d, nn.Conv3d)):
        return (f"{name} is not supported; NetX convolutions are 2-D. Use nn.Conv2d (a 1-D signal "
                "can be a [C, 1, W] image).")
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return f"{name} is not supported; use sj2lava.SumPool2d with a fixed kernel."
    return (f"{type(m).__module__}.{name} is not a synapse sj2lava can put on Loihi. Supported: "
            "nn.Conv2d, nn.Linear (and SpikingJelly's layer.Conv2d / layer.Linear), "
            "sj2lava.SumPool2d, nn.AvgPool2d (as a sum-pool) and nn.Flatten.")


# --------------------------------------------------------------------------- helpers
def host(t: torch.Tensor) -> np.ndarray:
    """A parameter as a numpy array, wherever the model lives (training on a GPU is the normal path)."""
    return t.detach().cpu().numpy()


def need_image(shape: Shape, where: str) -> None:
    """Refuse a conv or pool layer fed by a flat (dense) layer."""
    if len(shape) != 3:
        raise ExportError(f"export: {where} needs a (C, H, W) input but gets {shape}; a conv or pool "
                          "layer cannot follow a flatten or dense layer")


def scaled(w: torch.Tensor, input_scale: float) -> torch.Tensor:
    # One expression, used by both the container and the lava-dl block, so both quantize the same floats.
    return w if input_scale == 1.0 else w * input_scale


# --------------------------------------------------------------------------- conv
def _check_conv(m: nn.Conv2d, where: str) -> None:
    if isinstance(m.padding, str):
        raise UnsupportedLayerError(
            f"{where}: Conv2d(padding={m.padding!r}) is not supported; NetX needs integer padding. "
            "Give padding as an int or a (pH, pW) pair."
        )
    if m.padding_mode != "zeros":
        raise UnsupportedLayerError(
            f"{where}: Conv2d(padding_mode={m.padding_mode!r}) is not supported; Loihi pads with "
            "zeros. Use padding_mode='zeros'."
        )


def _conv_forward(m: nn.Conv2d, x: torch.Tensor, scale: float) -> torch.Tensor:
    w = quant.quantize_weight(scaled(m.weight, scale))
    return F.conv2d(x, w, None, m.stride, m.padding, m.dilation, m.groups)


def _bias(m: nn.Module, scale: float) -> Optional[torch.Tensor]:
    b = getattr(m, "bias", None)
    return None if b is None else scaled(b, scale)


def _conv_to_netx(m: nn.Conv2d, scale: float, shape: Shape, neuron: Cuba, bias: Optional[np.ndarray],
                  where: str) -> Conv:
    need_image(shape, where)
    if shape[0] != m.in_channels:
        raise ExportError(f"export: {where} takes {m.in_channels} channels but gets {shape}")
    w = host(quant.weight_mant(scaled(m.weight, scale)))
    out = conv_out_shape(shape, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation)
    return Conv(shape, out, w, pair(m.stride), pair(m.padding), pair(m.dilation), m.groups, neuron, bias)


CONV = register(nn.Conv2d)(SynapseRule(
    kind="conv", forward=_conv_forward, to_netx=_conv_to_netx, check=_check_conv, bias=_bias,
))


# --------------------------------------------------------------------------- dense
def _dense_forward(m: nn.Linear, x: torch.Tensor, scale: float) -> torch.Tensor:
    return F.linear(x, quant.quantize_weight(scaled(m.weight, scale)))


def _dense_to_netx(m: nn.Linear, scale: float, shape: Shape, neuron: Cuba, bias: Optional[np.ndarray],
                   where: str) -> Dense:
    if len(shape) != 1:
        raise ExportError(f"export: {where} is a Linear after a {shape} layer; put "
                          "BlockContainer(nn.Flatten(), None) before it.")
    if shape[0] != m.in_features:
        raise ExportError(f"export: {where} takes {m.in_features} features but gets {shape[0]}")
    return Dense(shape, (m.out_features,), host(quant.weight_mant(scaled(m.weight, scale))), neuron, bias)


DENSE = register(nn.Linear)(SynapseRule(
    kind="dense", forward=_dense_forward, to_netx=_dense_to_netx, bias=_bias,
))


# --------------------------------------------------------------------------- sum-pool
def pool_tap(m: SumPool2d, scale: float) -> float:
    """The float weight of every sum-pool tap before quantization (``m.weight`` times a folded scale)."""
    return float(m.weight) * scale


def _pool_forward(m: SumPool2d, x: torch.Tensor, scale: float) -> torch.Tensor:
    y = F.avg_pool2d(x, m.kernel_size, m.stride, divisor_override=1)  # exact integer sums
    tap = pool_tap(m, scale)
    if tap != 1.0:
        y = y * quant.quantize_weight(torch.tensor(tap, dtype=y.dtype, device=y.device))
    return y


def _avgpool_as_sumpool(m: nn.AvgPool2d, where: str) -> SumPool2d:
    if pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override is not None:
        raise UnsupportedLayerError(
            f"{where}: AvgPool2d(padding={m.padding}, ceil_mode={m.ceil_mode}, "
            f"divisor_override={m.divisor_override}) is not supported; use padding=0, "
            "ceil_mode=False and no divisor_override."
        )
    pool = SumPool2d(m.kernel_size, m.stride if m.stride is not None else m.kernel_size)
    warnings.warn(
        f"{where}: AvgPool2d{pool.kernel_size} becomes a sum-pool (Loihi's pooling synapse): the "
        f"layer after it sees sums, {pool.kernel_size[0] * pool.kernel_size[1]}x the averages. "
        "Train with sj2lava.SumPool2d, or let sj2lava.convert fold 1/k^2 into the pool's weights.",
        stacklevel=4,
    )
    return pool


def _pool_to_netx(m: SumPool2d, scale: float, shape: Shape, neuron: Cuba, bias: Optional[np.ndarray],
                  where: str) -> Conv:
    # a depthwise conv with every tap weighing quantize(tap) (1.0 -> 64): what NetX can load
    need_image(shape, where)
    tap = int(quant.weight_mant(torch.tensor(pool_tap(m, scale))))
    k, s = m.kernel_size, m.stride
    w = np.full((shape[0], 1, *k), tap, dtype=np.int64)
    return Conv(shape, conv_out_shape(shape, shape[0], k, s, (0, 0), (1, 1)), w, pair(s), (0, 0), (1, 1),
                shape[0], neuron, None)


POOL = register(SumPool2d)(SynapseRule(kind="pool", forward=_pool_forward, to_netx=_pool_to_netx))
register(nn.AvgPool2d)(SynapseRule(
    kind="pool", forward=_pool_forward, to_netx=_pool_to_netx, normalize=_avgpool_as_sumpool,
))


# --------------------------------------------------------------------------- flatten
def _check_flatten(m: nn.Flatten, where: str) -> None:
    if m.start_dim != 1 or m.end_dim != -1:
        raise UnsupportedLayerError(
            f"{where}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) is not supported; NetX "
            "flattens everything but the batch. Use nn.Flatten() (start_dim=1, end_dim=-1)."
        )


FLATTEN = register(nn.Flatten)(SynapseRule(
    kind="flatten", forward=lambda m, x, s: x.flatten(1),
    to_netx=lambda m, scale, shape, neuron, bias, where: Flatten(shape, (int(np.prod(shape)),)),
    check=_check_flatten,
))


