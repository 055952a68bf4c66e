"""The one way a framework plugs in: a :class:`Frontend` names everything it teaches the core.

A front-end (one file in :mod:`sj2lava.frontends`) builds one ``Frontend`` and calls
:func:`register_frontend` at import time; nothing else in the core names a framework. Each field is
a rule the core consults when it meets a module it does not know::

    neurons       NeuronRule            framework neuron -> CubaLIFNode           (sj2lava.neuron)
    synapses      (names, SynapseRule)  framework synapse/pool by qualified name  (sj2lava.synapses)
    blocks        (recognises, read)    whole block -> BlockContainer             (convert)
    dropouts      recognises            dropped in evaluation                     (convert)
    recurrences   (recognises, read)    neuron carrying its own recurrent Linear  (convert)
    exporters     BlockExporter         framework block -> NetX layer             (sj2lava.export)
    sdnn_readers  (recognises, read)    sigma-delta model -> SdnnNet              (sj2lava.to_sdnn)
    lava_block    maker                 BlockContainer -> lava-dl block           (BlockContainer.to_lava_block)

Recognisers match objects by their module path, so a front-end never imports its framework to register.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .. import block as _block
from .. import export as _export
from .. import neuron as _neuron
from .. import sdnn as _sdnn
from .. import synapses as _synapses
from ..block import BlockContainer

__all__ = ["Frontend", "register_frontend", "registered_frontends", "register_block_reader", "register_dropout",
           "register_recurrence", "block_reader", "is_dropout", "recurrence"]

Recognises = Callable[[nn.Module], bool]
BlockReader = Tuple[Recognises, Callable[[nn.Module, str, List[str]], BlockContainer]]
Recurrence = Tuple[Recognises, Callable[[nn.Module, nn.Module, str], Optional[nn.Linear]]]
SdnnReader = Tuple[Recognises, Callable[[nn.Module, torch.Tensor], _sdnn.SdnnNet]]


@dataclasses.dataclass(frozen=True)
class Frontend:
    """What one framework teaches the core (module docstring); every field but ``name`` is optional.

    Attributes:
        name: the framework as users know it (``"snnTorch"``), used in notes and :func:`registered_frontends`.
        neurons: its neuron rules (:class:`sj2lava.neuron.NeuronRule`).
        synapses: ``(qualified class names, SynapseRule)`` pairs for its synapse and pool modules.
        blocks: ``(recognises, read(module, path, notes) -> BlockContainer)``: whole blocks ``convert`` takes.
        dropouts: recognisers of its dropout modules (the identity in evaluation).
        recurrences: ``(recognises, read(neuron, synapse, where) -> nn.Linear | None)``: neurons that carry their
            own recurrent synapse.
        exporters: :class:`sj2lava.export.BlockExporter` for its blocks that export as they are.
        sdnn_readers: ``(recognises, read(model, example_input) -> SdnnNet)``: sigma-delta models it defines.
        lava_block: the maker behind ``BlockContainer.to_lava_block`` (only lava-dl's front-end sets it).
    """

    name: str
    neurons: Sequence[_neuron.NeuronRule] = ()
    synapses: Sequence[Tuple[Tuple[str, ...], _synapses.SynapseRule]] = ()
    blocks: Sequence[BlockReader] = ()
    dropouts: Sequence[Recognises] = ()
    recurrences: Sequence[Recurrence] = ()
    exporters: Sequence[_export.BlockExporter] = ()
    sdnn_readers: Sequence[SdnnReader] = ()
    lava_block: Optional[Callable[..., nn.Module]] = None


_FRONTENDS: Dict[str, Frontend] = {}


def register_frontend(frontend: Frontend) -> Frontend:
    """Hand every rule of ``frontend`` to the registry that consults it; a second registration of the same
    name is refused (a front-end registers once, at import)."""
    if frontend.name in _FRONTENDS:
        raise ValueError(f"register_frontend: a front-end named {frontend.name!r} is already registered")
    _FRONTENDS[frontend.name] = frontend
    for rule in frontend.neurons:
        _neuron.register_neuron(rule)
    for names, syn in frontend.synapses:
        _synapses.register(names=tuple(names))(syn)
    for recognises, read in frontend.blocks:
        register_block_reader(recognises, read)
    for recognises in frontend.dropouts:
        register_dropout(recognises)
    for recognises, read_rec in frontend.recurrences:
        register_recurrence(recognises, read_rec)
    for exporter in frontend.exporters:
        _export.register_block_exporter(exporter)
    for recognises, read_sdnn in frontend.sdnn_readers:
        _sdnn.register_sdnn_reader(recognises, read_sdnn)
    if frontend.lava_block is not None:
        _block.register_lava_block(frontend.lava_block)
    return frontend


def registered_frontends() -> Tuple[str, ...]:
    """The names of the registered front-ends, in registration order."""
    return tuple(_FRONTENDS)


# The registries convert itself consults (neurons, synapses, exporters and SDNN readers live with their users).
_BLOCK_READERS: List[BlockReader] = []
_DROPOUTS: List[Recognises] = [lambda m: isinstance(m, (nn.Dropout, nn.Dropout2d))]
_RECURRENCES: List[Recurrence] = []


def register_block_reader(recognises: Recognises, read: Callable[[nn.Module, str, List[str]], BlockContainer]) -> None:
    """Let ``convert`` take a front-end's whole block (synapse + neuron, e.g. SpikingJelly's
    ``lava_exchange.BlockContainer``) as one layer: ``read(module, path, notes) -> BlockContainer``."""
    _BLOCK_READERS.append((recognises, read))


def register_dropout(recognises: Recognises) -> None:
    """A module type ``convert`` drops (dropout: the identity in evaluation)."""
    _DROPOUTS.append(recognises)


def register_recurrence(recognises: Recognises,
                        read: Callable[[nn.Module, nn.Module, str], Optional[nn.Linear]]) -> None:
    """A neuron type that carries its own recurrent synapse (snnTorch's ``RLeaky``): ``read(neuron, synapse,
    where)`` returns it as an ``nn.Linear(n, n, bias=False)`` (folding a bias it has into ``synapse``'s, or
    refusing it by name), for a recurrent BlockContainer."""
    _RECURRENCES.append((recognises, read))


def block_reader(m: nn.Module) -> Optional[Callable[[nn.Module, str, List[str]], BlockContainer]]:
    """The registered reader that takes ``m`` as a whole block, or None."""
    return next((read for recognises, read in _BLOCK_READERS if recognises(m)), None)


def is_dropout(m: nn.Module) -> bool:
    """``m`` is a dropout (of torch or a registered front-end)."""
    return any(recognises(m) for recognises in _DROPOUTS)


def recurrence(neu: nn.Module, syn: nn.Module, where: str) -> Optional[nn.Linear]:
    """The recurrent synapse the neuron ``neu`` carries (a registered front-end's reading), or None."""
    read = next((read for recognises, read in _RECURRENCES if recognises(neu)), None)
    return None if read is None else read(neu, syn, where)
