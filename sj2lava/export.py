"""Export a model of BlockContainers (or lava-dl blocks) to a NetX ``.net`` file, with h5py alone.

The file holds an ``input`` layer with the input shape, then one layer per block (schema in
:mod:`sj2lava.netx.hdf5`). Sum-pools become depthwise ``conv`` layers (tap weight 64, groups = C,
stride = pool stride), because NetX cannot load ``pool``. Export refuses, with
:class:`~sj2lava.errors.ExportError`, whatever would not run identically in Lava.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union, cast

import numpy as np
import torch
from torch import nn

from . import quant
from .block import BlockContainer, InputBlock
from .errors import ExportError
from .netx import hdf5
from .netx.spec import Conv, Cuba, Dense, Flatten, InputNeurons, Layer, NetSpec, Shape
from .synapses import host, rule_for, scaled

__all__ = ["export", "to_spec", "BlockExporter", "register_block_exporter", "neuron"]


def export(model: Union[nn.Module, Sequence[nn.Module]], path: Union[str, Path],
           input_shape: Optional[Sequence[int]] = None, *, strict: bool = True) -> Path:
    """Write ``model`` as a NetX ``.net`` file at ``path`` and return the path.

    Args:
        model: ``nn.Sequential`` (nesting allowed) or list of :class:`BlockContainer` or lava-dl
            ``slayer.block.cuba`` ``Dense`` / ``Conv`` / ``Pool`` / ``Flatten`` blocks.
        path: destination; written to a temporary file and renamed, so a failure never leaves a
            half-written file nor truncates an existing one.
        input_shape: per-sample input ``(C, H, W)`` or ``(features,)``; may be omitted when the
            model has run on an input (BlockContainers remember its shape) or starts with a dense.
        strict: refuse (``ExportError``) what would not run identically in Lava; ``False`` warns
            and writes anyway.
    """
    spec = to_spec(model, input_shape, strict=strict)
    try:
        return hdf5.write(spec, path)
    except ValueError as e:  # what a NetX file cannot hold (Lava's 8-bit conv fields)
        raise ExportError(f"export: {e}") from None


def to_spec(model: Union[nn.Module, Sequence[nn.Module]], input_shape: Optional[Sequence[int]] = None,
            *, strict: bool = True) -> NetSpec:
    """The :class:`NetSpec` ``export`` would write (same checks)."""
    blocks = list(_blocks(model))
    if not blocks:
        raise ExportError("export: the model has no blocks")
    if input_shape is None:  # from_nir and convert know the input's shape and say so on the Sequential
        input_shape = getattr(model, "input_shape", None)
    shape = net_input = _input_shape(blocks, input_shape)
    layers: List[Layer] = []
    if isinstance(blocks[0], InputBlock):  # its encoder runs on the host: the file starts at its neurons
        shape = net_input = _encoded_shape(blocks[0], shape)
    for i, blk in enumerate(blocks):
        where = f"block {i} ({type(blk).__name__})"
        if isinstance(blk, InputBlock):
            layers.append(_input_neurons(blk, i, shape, where))
            continue
        layer = _layer(blk, shape, where, strict)
        if isinstance(layer, Flatten) and (not layers or len(shape) == 1):
            # NetX cannot start with a flatten: a leading one is just the input's layout.
            shape = layer.out_shape
            if not layers:
                net_input = shape
            continue
        for problem in _problems(layer, where):
            _refuse(problem, strict)
        layers.append(layer)
        shape = layer.out_shape
    if not layers:
        raise ExportError("export: the model has no synaptic layer")
    return NetSpec(net_input, layers)


def _input_neurons(blk: InputBlock, i: int, shape: Shape, where: str) -> InputNeurons:
    """The file's input layer with neurons: an InputBlock's neurons (its encoder runs on the host)."""
    if i:
        raise ExportError(f"export: {where}: an InputBlock (input neurons) can only be the first block")
    _check_finite(blk, where)
    n = blk.neuron
    return InputNeurons(shape, shape, neuron(n.i_decay, n.v_decay, n.v_threshold_mant))


def _refuse(msg: str, strict: bool) -> None:
    if strict:
        raise ExportError(msg)
    warnings.warn(msg + " (written anyway: strict=False)", stacklevel=4)


def _blocks(model) -> Iterable[nn.Module]:
    items = model if isinstance(model, (list, tuple, nn.Sequential, nn.ModuleList)) else [model]
    for m in items:
        if isinstance(m, (nn.Sequential, nn.ModuleList)):
            yield from _blocks(m)
        else:
            yield m


def _encoded_shape(blk: InputBlock, shape: Shape) -> Shape:
    """The shape of an InputBlock's encoder output (its input neurons) for per-sample input ``shape``."""
    try:
        with torch.no_grad():
            p = next(blk.encoder.parameters())
            out = blk.encoder(torch.zeros(1, *shape, dtype=p.dtype, device=p.device))
    except RuntimeError as e:
        raise ExportError(f"export: the InputBlock's encoder does not take input of shape {shape}: {e}") from None
    return tuple(int(v) for v in out.shape[1:])


def _input_shape(blocks: List[nn.Module], given: Optional[Sequence[int]]) -> Shape:
    if given is not None:
        shape = tuple(int(s) for s in given)
        if len(shape) not in (1, 3) or min(shape) <= 0:
            raise ExportError(f"export: input_shape {tuple(given)} must be (C, H, W) or (features,)")
        return shape
    first = blocks[0]
    if isinstance(first, (BlockContainer, InputBlock)) and first.input_shape is not None:
        return tuple(first.input_shape)
    if isinstance(first, InputBlock):
        head = first.encoder[0] if isinstance(first.encoder, nn.Sequential) else first.encoder
        if isinstance(head, nn.Linear):
            return (head.in_features,)
    if isinstance(first, BlockContainer) and first.kind == "dense":
        return (first.synapse.in_features,)
    exporter = exporter_for(first)
    known = exporter.input_shape(first) if exporter is not None else None
    if known is not None:
        return tuple(known)
    raise ExportError(
        f"export: the input shape is unknown ({type(first).__name__} has not seen an input). "
        "Pass input_shape=(C, H, W) or (features,), or run the model on one batch first."
    )


# --------------------------------------------------------------------------- block -> layer
def neuron(i_decay: int, v_decay: int, v_th_mant: int) -> Cuba:
    """A NetX CUBA neuron (one decay pair and threshold per layer; decays in 1/4096, threshold in 1/64)."""
    return Cuba(np.asarray(i_decay), np.asarray(v_decay), np.asarray(v_th_mant))


@dataclass(frozen=True)
class BlockExporter:
    """How a front-end's block type (e.g. lava-dl's ``slayer.block.cuba``) becomes a NetX layer.

    Attributes:
        recognises: ``module -> bool``.
        to_netx: ``(block, in_shape, where, refuse) -> Layer``; ``refuse(message)`` raises or, with
            ``strict=False``, warns.
        input_shape: ``block -> per-sample input shape or None`` (a dense block knows its fan-in).
    """

    recognises: Callable[[nn.Module], bool]
    to_netx: Callable[..., Layer]
    input_shape: Callable[[nn.Module], Optional[Shape]] = lambda blk: None


_EXPORTERS: List[BlockExporter] = []


def register_block_exporter(exporter: BlockExporter) -> BlockExporter:
    """Let :func:`export` write a front-end's blocks (first match wins; BlockContainers need none)."""
    _EXPORTERS.append(exporter)
    return exporter


def exporter_for(blk: nn.Module) -> Optional[BlockExporter]:
    """The registered exporter that writes ``blk`` (a front-end's block, e.g. lava-dl's), or None."""
    return next((e for e in _EXPORTERS if e.recognises(blk)), None)


def _check_finite(blk: nn.Module, where: str) -> None:
    """NaN or inf in a weight, bias, decay or threshold has no Loihi integer: refused by name (quantizing it
    would write 0, or -2^63)."""
    tensors = list(blk.named_parameters()) + list(blk.named_buffers())
    for name, t in tensors:
        if t.is_floating_point() and not bool(torch.isfinite(t.detach()).all()):
            bad = "NaN" if bool(torch.isnan(t.detach()).any()) else "inf"
            raise ExportError(f"export: {where}: {name} holds {bad}; a Loihi layer needs finite weights, biases, "
                              "decays and thresholds (check the training for divergence)")
    for m in blk.modules():
        th = getattr(m, "v_threshold", None)
        if isinstance(th, float) and not math.isfinite(th):
            raise ExportError(f"export: {where}: the threshold is {th}; a Loihi layer needs a finite one")


def _layer(blk: nn.Module, shape: Shape, where: str, strict: bool) -> Layer:
    _check_finite(blk, where)
    if isinstance(blk, BlockContainer):
        return _container_layer(blk, shape, where, strict)
    exporter = exporter_for(blk)
    if exporter is None:
        raise ExportError(
            f"export: {where} is not a block sj2lava can export. Use sj2lava.BlockContainer (or "
            "lava-dl slayer.block.cuba Dense/Conv/Pool/Flatten); sj2lava.convert turns a SpikingJelly "
            "net into BlockContainers."
        )
    return exporter.to_netx(blk, shape, where, lambda msg: _refuse(msg, strict))


def _container_layer(blk: BlockContainer, shape: Shape, where: str, strict: bool) -> Layer:
    rule = rule_for(blk.synapse, where)
    if blk.neuron is None:
        return rule.to_netx(blk.synapse, blk.input_scale, shape, None, None, where)
    if not blk.delay_shift:
        _refuse(f"export: {where} has delay_shift=False, but Lava delays every synaptic layer by one "
                "step, so the .net would lag the model. Build it with delay_shift=True (the default).",
                strict)
    n = blk.neuron
    b = blk.bias()
    bias = None if b is None else host(quant.bias_mant(b).reshape(-1))
    layer = rule.to_netx(blk.synapse, blk.input_scale, shape, neuron(n.i_decay, n.v_decay, n.v_threshold_mant),
                         bias, where)
    if blk.axon_delay is not None:  # one per output neuron, repeated over the inputs (BlockContainer: dense only)
        d = host(blk.axon_delay).reshape(-1, 1)
        layer = dataclasses.replace(cast(Dense, layer), delay=np.repeat(d, cast(Dense, layer).weight.shape[1], 1))
    if blk.recurrent is not None:  # NetX dense_rec
        w_rec = host(quant.weight_mant(scaled(blk.recurrent.weight, blk.input_scale)))
        layer = dataclasses.replace(cast(Dense, layer), weight_rec=w_rec)
    return layer


# --------------------------------------------------------------------------- refusals
def _problems(layer: Layer, where: str) -> List[str]:
    """What would make Lava compute something else than the model for this layer."""
    if not isinstance(layer, (Conv, Dense)):
        return []
    out = []
    w = layer.weight
    if isinstance(layer, Dense) and not np.any(w):
        out.append(f"export: {where}: every weight is zero after 8-bit quantization; NetX cannot load an "
                   "all-zero dense layer (OverflowError in optimize_weight_bits). Remove or retrain the layer.")
    if isinstance(layer, Dense) and w.max() <= 0 and w.min() == quant.W_MANT_MIN:
        out.append(f"export: {where}: all weights are <= 0 and some are -256; NetX's weight-bit optimisation "
                   "then loses precision. Clamp the weights to >= -254/64 (e.g. "
                   "synapse.weight.data.clamp_(min=-254/64)) or add a positive weight.")
    th = int(np.max(layer.neuron.v_th_mant))
    if th > quant.V_TH_MANT_MAX:
        out.append(f"export: {where}: threshold {th / 64:g} (vThMant {th}) exceeds Lava's 17-bit vThMant "
                   f"(max {quant.V_TH_MANT_MAX}, threshold < 2048). Lower the threshold and scale the weights.")
    if layer.bias is not None and (layer.bias.min() < quant.BIAS_MANT_MIN or layer.bias.max() > quant.BIAS_MANT_MAX):
        out.append(f"export: {where}: bias {layer.bias.min() / 64:g}..{layer.bias.max() / 64:g} exceeds Lava's "
                   f"13-bit bias_mant ({quant.BIAS_MANT_MIN}..{quant.BIAS_MANT_MAX}, i.e. |bias| < 64).")
    for bound, what in _state_bounds(layer):
        if bound > quant.STATE_MAX:
            out.append(f"export: {where}: {what} can reach {bound:,.0f} state units, beyond Lava's 24-bit "
                       f"register (+-{quant.STATE_MAX:,}), where Lava wraps it around (its sign flips). Use smaller "
                       "weights, a smaller fan-in or a larger current decay (sj2lava.rescale refits a layer).")
    return out


def _state_bounds(layer: Union[Conv, Dense]) -> List[Tuple[float, str]]:
    """Worst-case |u| (state units) of a NetX layer when every input spikes every step
    (:func:`sj2lava.quant.state_bounds`; v saturates and needs no bound)."""
    assert isinstance(layer.neuron, Cuba), "export writes CUBA neurons"
    w = np.abs(layer.weight).reshape(layer.weight.shape[0], -1).sum(1)
    if isinstance(layer, Dense) and layer.weight_rec is not None:
        w = w + np.abs(layer.weight_rec).sum(1)
    return quant.state_bounds(float(w.max()) * quant.W_SCALE, int(np.min(layer.neuron.i_decay)))
