"""Synapse translators: a registry keyed by module type.

Each supported synapse type has one :class:`SynapseRule` saying how it runs quantized in a
:class:`~sj2lava.block.BlockContainer`, what bias it carries and which lava-dl block it becomes.
Lookup walks the type's MRO, so subclasses (SpikingJelly's ``layer.Conv2d`` is an ``nn.Conv2d``)
use their parent's rule. Adding a layer is one :func:`register` call.

Synaptic input ``z`` is in float units: a weight mantissa of 64 is 1.0, so with binary spikes
``z`` is a multiple of 2/64 and its state ``4096 z`` (:func:`sj2lava.quant.to_state`) is exact.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from . import quant
from ._deps import slayer as _slayer
from .errors import UnsupportedLayerError
from .layers import SumPool2d, pair
from .neuron import CubaLIFNode, copy_decays_to_lava, lava_neuron_params

__all__ = [
    "SynapseRule",
    "register",
    "rule_for",
    "conv2d_to_lava_synapse_conv",
    "linear_to_lava_synapse_dense",
    "avgpool2d_to_lava_synapse_pool",
]


@dataclass(frozen=True)
class SynapseRule:
    """How one synapse type runs on Loihi.

    Attributes:
        kind: NetX layer kind: ``'conv'``, ``'dense'``, ``'pool'`` or ``'flatten'``.
        forward: ``(module, x [B, *], input_scale) -> z [B, *]`` with quantized weights, no bias.
        check: raises :class:`UnsupportedLayerError` for settings with no exact Loihi form.
        bias: ``(module, input_scale) -> float bias per output channel or None``.
        to_lava: ``(module, neuron_kwargs, delay_shift, input_scale) -> lava-dl block``.
        normalize: optional ``module -> module`` replacement done once at construction
            (``nn.AvgPool2d`` becomes :class:`SumPool2d`).
    """

    kind: str
    forward: Callable[[nn.Module, torch.Tensor, float], torch.Tensor]
    to_lava: Callable[[nn.Module, Optional[dict], bool, float], nn.Module]
    check: Callable[[nn.Module, str], None] = lambda m, where: None
    bias: Callable[[nn.Module, float], Optional[torch.Tensor]] = lambda m, s: None
    normalize: Optional[Callable[[nn.Module, str], nn.Module]] = field(default=None)


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


def rule_for(module: nn.Module, where: str) -> SynapseRule:
    """The rule for ``module``, or :class:`UnsupportedLayerError` naming it and the fix."""
    rule = _RESOLVED.get(type(module))
    if rule is not None:
        return rule
    for t in type(module).__mro__:
        rule = _RULES.get(t) or _RULES_BY_NAME.get(f"{t.__module__}.{t.__qualname__}")
        if rule is not None:
            _RESOLVED[type(module)] = rule
            return rule
    raise UnsupportedLayerError(f"{where}: {_unsupported_hint(module)}")


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
def _scaled(w: torch.Tensor, input_scale: float) -> torch.Tensor:
    # One expression, used by both the container and the lava-dl block, so both quantize the same floats.
    return w if input_scale == 1.0 else w * input_scale


def _neuron_kwargs_with_bias(neuron_kwargs: dict, bias: Optional[torch.Tensor]) -> dict:
    if bias is None:
        return neuron_kwargs
    mant = quant.bias_mant(bias).double()
    return dict(neuron_kwargs, norm=lambda: _NeuronBias(mant))


class _NeuronBias(nn.Module):
    """lava-dl ``norm`` hook that adds a per-channel bias to the neuron's voltage input.

    slayer's CUBA neuron feeds ``norm(current)`` to the voltage integrator, so adding the bias here is
    ``v = a_v v + u + bias``, NetX's ``bias_mant`` (exponent 6) semantics; lava-dl's HDF5 export
    writes ``norm.bias`` as the layer's ``bias``.
    """

    def __init__(self, bias_mant: torch.Tensor):
        super().__init__()
        self.register_buffer("bias", bias_mant.float())

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        b = self.bias / quant.W_SCALE
        return current + b.view(1, -1, *([1] * (current.dim() - 2)))


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
    w = quant.quantize_weight(_scaled(m.weight, scale))
    return F.conv2d(x, w, None, m.stride, m.padding, m.dilation, m.groups)


def _conv_to_lava(m: nn.Conv2d, neuron_kwargs: Optional[dict], delay_shift: bool, scale: float):
    blk = _slayer().block.cuba.Conv(
        _neuron_kwargs_with_bias(neuron_kwargs, _bias(m, scale)),
        in_features=m.in_channels, out_features=m.out_channels, kernel_size=m.kernel_size,
        stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups,
        delay_shift=delay_shift,
    )
    with torch.no_grad():
        blk.synapse.weight.data[..., 0] = _scaled(m.weight.detach(), scale)
    return blk


def _bias(m: nn.Module, scale: float) -> Optional[torch.Tensor]:
    b = getattr(m, "bias", None)
    return None if b is None else _scaled(b, scale)


CONV = register(nn.Conv2d)(SynapseRule(
    kind="conv", forward=_conv_forward, to_lava=_conv_to_lava, check=_check_conv, bias=_bias,
))


# --------------------------------------------------------------------------- dense
def _dense_forward(m: nn.Linear, x: torch.Tensor, scale: float) -> torch.Tensor:
    return F.linear(x, quant.quantize_weight(_scaled(m.weight, scale)))


def _dense_to_lava(m: nn.Linear, neuron_kwargs: Optional[dict], delay_shift: bool, scale: float):
    blk = _slayer().block.cuba.Dense(
        _neuron_kwargs_with_bias(neuron_kwargs, _bias(m, scale)),
        m.in_features, m.out_features, delay_shift=delay_shift,
    )
    with torch.no_grad():
        blk.synapse.weight.data[:, :, 0, 0, 0] = _scaled(m.weight.detach(), scale)
    return blk


DENSE = register(nn.Linear)(SynapseRule(
    kind="dense", forward=_dense_forward, to_lava=_dense_to_lava, bias=_bias,
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


def _pool_to_lava(m: SumPool2d, neuron_kwargs: Optional[dict], delay_shift: bool, scale: float):
    if m.stride != m.kernel_size:
        raise UnsupportedLayerError(
            f"SumPool2d(kernel_size={m.kernel_size}, stride={m.stride}): lava-dl's Pool block is only "
            "correct for stride == kernel_size (it pools across channel boundaries otherwise). "
            "Use stride=kernel_size; sj2lava.export writes other strides as a depthwise conv."
        )
    return _slayer().block.cuba.Pool(
        neuron_kwargs, m.kernel_size, stride=m.stride, weight_scale=pool_tap(m, scale),
        delay_shift=delay_shift,
    )


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


def _sj_sumpool_as_sumpool(m: nn.Module, where: str) -> SumPool2d:
    if pair(m.padding) != (0, 0) or pair(m.dilation) != (1, 1):
        raise UnsupportedLayerError(
            f"{where}: lava_exchange.SumPool2d(padding={m.padding}, dilation={m.dilation}) is not "
            "supported; use padding=0 and dilation=1."
        )
    return SumPool2d(m.kernel_size, m.stride)




POOL = register(SumPool2d)(SynapseRule(kind="pool", forward=_pool_forward, to_lava=_pool_to_lava))
register(nn.AvgPool2d)(SynapseRule(
    kind="pool", forward=_pool_forward, to_lava=_pool_to_lava, normalize=_avgpool_as_sumpool,
))
register(names=("spikingjelly.activation_based.lava_exchange.SumPool2d",))(SynapseRule(
    kind="pool", forward=_pool_forward, to_lava=_pool_to_lava, normalize=_sj_sumpool_as_sumpool,
))


# --------------------------------------------------------------------------- flatten
def _check_flatten(m: nn.Flatten, where: str) -> None:
    if m.start_dim != 1 or m.end_dim != -1:
        raise UnsupportedLayerError(
            f"{where}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) is not supported; NetX "
            "flattens everything but the batch. Use nn.Flatten() (start_dim=1, end_dim=-1)."
        )


def _flatten_to_lava(m: nn.Flatten, neuron_kwargs: Optional[dict], delay_shift: bool, scale: float):
    return _slayer().block.cuba.Flatten()


FLATTEN = register(nn.Flatten)(SynapseRule(
    kind="flatten", forward=lambda m, x, s: x.flatten(1), to_lava=_flatten_to_lava,
    check=_check_flatten,
))


# --------------------------------------------------------------------------- lava-dl blocks
def lava_block(synapse: nn.Module, neuron: Optional[CubaLIFNode], delay_shift: bool,
               input_scale: float = 1.0, where: str = "block") -> nn.Module:
    """The lava-dl ``slayer.block.cuba`` block computing ``neuron(synapse(x))`` (needs lava-dl)."""
    rule = rule_for(synapse, where)
    if neuron is None:
        return rule.to_lava(synapse, None, delay_shift, input_scale)
    blk = rule.to_lava(synapse, lava_neuron_params(neuron), delay_shift, input_scale)
    copy_decays_to_lava(neuron, blk.neuron)
    return blk


# --------------------------------------------------------------------------- SpikingJelly names
def _no_bias(m: nn.Module, fn: str) -> None:
    if getattr(m, "bias", None) is not None:
        raise UnsupportedLayerError(
            f"{fn}: {type(m).__name__} has a bias, and lava-dl synapses have none. Build a "
            "sj2lava.BlockContainer instead: it carries the bias into the neuron (NetX bias)."
        )


def conv2d_to_lava_synapse_conv(conv2d_nn: nn.Conv2d) -> nn.Module:
    """SpikingJelly-compatible: a lava-dl ``slayer.synapse.Conv`` with ``conv2d_nn``'s weights."""
    _check_conv(conv2d_nn, "conv2d_to_lava_synapse_conv")
    _no_bias(conv2d_nn, "conv2d_to_lava_synapse_conv")
    syn = _slayer().synapse.Conv(
        in_features=conv2d_nn.in_channels, out_features=conv2d_nn.out_channels,
        kernel_size=conv2d_nn.kernel_size, stride=conv2d_nn.stride, padding=conv2d_nn.padding,
        dilation=conv2d_nn.dilation, groups=conv2d_nn.groups,
    )
    with torch.no_grad():
        syn.weight.data[..., 0] = conv2d_nn.weight.detach()
    return syn


def linear_to_lava_synapse_dense(fc: nn.Linear) -> nn.Module:
    """SpikingJelly-compatible: a lava-dl ``slayer.synapse.Dense`` with ``fc``'s weights."""
    _no_bias(fc, "linear_to_lava_synapse_dense")
    syn = _slayer().synapse.Dense(fc.in_features, fc.out_features)
    with torch.no_grad():
        syn.weight.data[:, :, 0, 0, 0] = fc.weight.detach()
    return syn


def avgpool2d_to_lava_synapse_pool(pool2d_nn: nn.AvgPool2d) -> nn.Module:
    """SpikingJelly-compatible: a lava-dl ``slayer.synapse.Pool`` (a sum-pool; warns)."""
    pool = _avgpool_as_sumpool(pool2d_nn, "avgpool2d_to_lava_synapse_pool")
    return _slayer().synapse.Pool(pool.kernel_size, pool.stride)
