"""Grouping: how modules become Loihi layers, shared by :func:`sj2lava.convert` and :func:`sj2lava.from_nir`.

A Loihi layer is one synapse (conv, dense or sum-pool) and its CUBA neurons; a flatten is a block of its
own. :class:`Layers` collects them in order with what the conversion notes: the spiking layers made from
float modules (rescaled at the end, :func:`sj2lava.convert.rescale_block`), and per spiking layer the source
whose output it equals (``float_layers``, which :func:`sj2lava.verify` compares with).
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable, List, Optional, Tuple, Union, cast

import torch
from torch import nn

from .. import quant
from ..block import BlockContainer, InputBlock
from ..errors import UnsupportedLayerError
from ..neuron import CubaLIFNode, neuron_notes, neuron_rule, to_cuba
from .rescaling import rescale_block

__all__ = ["Converted", "Layers", "block", "cuba", "current_bias"]


class Converted(nn.Sequential):
    """The ``nn.Sequential`` of BlockContainers a conversion returns, with what it found out on the way.

    Attributes:
        conversion_notes: everything not exact or changed, one line each.
        float_layers: per spiking block, the module (or NIR node) whose output its spikes equal.
        input_shape: the per-sample input shape, where the conversion knows it (``export`` then needs none).
        static_input: the steps a model that takes one static input makes itself (0: it takes a sequence).
        float_reference: a from_nir net's float model (the graph's own equations), which ``verify`` runs.
    """

    conversion_notes: List[str]
    float_layers: List[str]
    input_shape: Optional[Tuple[int, ...]]
    static_input: int
    float_reference: Optional[Callable[[torch.Tensor], List[torch.Tensor]]]


class Layers:
    """The Loihi layers of a net, in order, as a conversion builds them.

    Attributes:
        blocks: the BlockContainers so far (spiking layers, flattens, pre-built blocks).
        notes: everything not exact or changed, one line each (the result's ``conversion_notes``).
        sources: per spiking block, the module (or node) whose output its spikes equal.
    """

    def __init__(self) -> None:
        self.blocks: List[Union[BlockContainer, InputBlock]] = []
        self.notes: List[str] = []
        self.sources: List[str] = []
        self._made: List[Tuple[BlockContainer, str]] = []  # spiking layers built from float modules

    def add(self, b: Union[BlockContainer, InputBlock], source: Optional[str] = None) -> None:
        """Append ``b`` as it is; a spiking one records ``source``."""
        self.blocks.append(b)
        if b.neuron is not None and source is not None:
            self.sources.append(source)

    def add_made(self, b: BlockContainer, where: str) -> None:
        """Append the spiking layer ``b`` built from float modules at ``where``: it is rescaled at the end."""
        self.add(b, where)
        self._made.append((b, where))

    def spiking(self, syn: nn.Module, neu: nn.Module, where: str, recurrent: Optional[nn.Linear] = None) -> None:
        """A layer ``syn -> neu`` built from float modules (errors name ``where``), appended."""
        self.add_made(block(syn, neu, where, recurrent=recurrent), where)

    def flatten(self) -> None:
        """A flatten block (``[N, C, H, W] -> [N, C*H*W]`` per step)."""
        self.blocks.append(BlockContainer(nn.Flatten(), None, "m"))

    @property
    def made(self) -> List[Tuple[BlockContainer, str]]:
        """``(block, where)`` of the spiking layers built from float modules."""
        return list(self._made)

    def after_spikes(self) -> bool:
        """The next layer reads spikes: the input's (no block yet) or the last block's neurons'."""
        return not self.blocks or self.blocks[-1].neuron is not None

    def finish(self, rescale: bool, model: Optional[nn.Module] = None,
               empty: str = "convert: the model has no synapse + neuron layer to put on Loihi") -> Converted:
        """The ``nn.Sequential`` of the blocks, each made layer rescaled (``rescale``); refused with ``empty`` if
        none spikes. ``conversion_notes`` holds the notes (then the neuron notes of ``model``'s front-ends)."""
        if not any(b.neuron is not None for b in self.blocks):
            raise UnsupportedLayerError(empty)
        if rescale:
            for b, where in self._made:
                rescale_block(b, where, self.notes)
        net = Converted(*self.blocks)
        net.float_layers = list(self.sources)
        if model is not None:
            self.notes.extend(neuron_notes(model))
        net.conversion_notes = self.notes
        return net


def cuba(neu: nn.Module, where: str, approximate: bool, notes: List[str]) -> CubaLIFNode:
    """The neuron as a CubaLIFNode (with its input scale), so options like ``approximate`` apply. What the
    front-end's rule approximates it warns about; each such warning is also a conversion note."""
    named = f"{where} ({type(neu).__name__})"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            node, scale = cast(Tuple[CubaLIFNode, float],
                               to_cuba(neu, with_input_scale=True, where=named, approximate=approximate))
    except UnsupportedLayerError as e:
        raise UnsupportedLayerError(f"{where}: {e}") from None
    for w in caught:  # a rule's approximation names the layer; anything else passes through as it came
        if str(w.message).startswith(named):
            notes.append(f"{w.message} (not exact)")
        warnings.warn(w.message, w.category, stacklevel=3)
    if node is neu:
        node = copy.deepcopy(neu)
    node.input_scale = scale
    return node


def current_bias(neu: nn.Module, node: nn.Module, syn: nn.Module, path: str, where: str, host: bool,
                  approximate: bool, notes: List[str]) -> None:
    """A framework neuron whose decaying synaptic current takes the synapse's bias (snnTorch's ``Synaptic``; with
    direct input, the whole host current): the current settles at ``bias / current_decay`` after ~1/current_decay
    steps, where Loihi adds a bias to ``v`` at full size from the first step. Refused, or under ``approximate``
    the bias (the host current) is divided by the current decay, so that it equals the settled current, noted."""
    rule = neuron_rule(neu)
    cd = node.i_decay / quant.P_SCALE
    bias = getattr(syn, "bias", None)
    if rule is None or not rule.bias_in_current or cd >= 1.0 or not (host or (bias is not None and
                                                                              bool((bias != 0).any()))):
        return
    what = "the host-side current of the direct input" if host else f"the bias of {path}"
    if not approximate:
        raise UnsupportedLayerError(
            f"{where}: {what} enters {type(neu).__name__}'s decaying synaptic current (current decay {cd:g}: it "
            f"settles at {1 / cd:.3g}x after ~{1 / cd:.0f} steps), while Loihi adds a bias to the voltage at full "
            "size from the first step; no NetX layer computes the ramp. Exact alternatives: no bias (or a neuron "
            "without a current decay, alpha = 0) and retrain; or convert with approximate=True (the bias as its "
            "settled value on the voltage; sj2lava.verify measures the difference).")
    if host:
        node.input_scale /= cd
    else:
        with torch.no_grad():
            syn.bias.div_(cd)
    notes.append(f"{where}: {what} moved from the decaying current to the voltage as its settled value "
                 f"(x{1 / cd:.4g}); equal once the current has settled, different in the first steps (not exact)")


def block(syn: nn.Module, neu: nn.Module, where: str, recurrent: Optional[nn.Linear] = None) -> BlockContainer:
    """``BlockContainer(syn, neu, 'm', recurrent=recurrent)``, its errors prefixed with the module path ``where``."""
    try:
        return BlockContainer(syn, neu, "m", recurrent=recurrent)
    except UnsupportedLayerError as e:
        raise UnsupportedLayerError(f"{where}: {e}") from None
