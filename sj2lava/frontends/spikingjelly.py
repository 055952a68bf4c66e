"""SpikingJelly (0.0.0.0.14 and 2.x ``activation_based``): its neurons, its ``lava_exchange`` blocks and pools.

Registers with the core:

- a neuron rule: ``IFNode(v_reset=0)`` -> (1, 0); ``LIFNode(v_reset=0)`` -> (1, 1/tau), with an input
  scale 1/tau when ``decay_input=True``; ``lava_exchange.CubaLIFNode`` with its learned decays. Surrogate
  and ``detach_reset`` are kept. Other SpikingJelly neurons are recognised and refused by name.
- a synapse rule for ``lava_exchange.SumPool2d`` (a :class:`sj2lava.SumPool2d`).
- a block reader for ``lava_exchange.BlockContainer`` (rebuilt with Lava's synaptic delay), and
  SpikingJelly's ``Dropout`` as a module ``convert`` drops.

Nothing here imports SpikingJelly: its objects are recognised by their module path.
"""
from __future__ import annotations

import copy
import sys
from typing import List, Optional, Tuple

import torch
from torch import nn

from ..block import BlockContainer
from ..convert import Frontend, block, register_frontend
from ..errors import UnsupportedLayerError
from ..neuron import CubaLIFNode, NeuronRule, from_package, unsupported_neuron
from ..pool import SumPool2d, pair
from ..synapses import POOL, SynapseRule

__all__: List[str] = []


def _sj_neuron_module():
    # Only reached for objects whose class lives in spikingjelly, so it is already imported.
    return sys.modules.get("spikingjelly.activation_based.neuron")


def _check_hard_reset(neuron: nn.Module, where: str) -> None:
    v_reset = getattr(neuron, "v_reset", 0.0)
    if v_reset is None:
        raise UnsupportedLayerError(
            f"{where}: v_reset=None (soft reset, v -= threshold) has no Loihi CUBA equivalent; "
            "CUBA resets v to 0. Use v_reset=0.0 and retrain (or fine-tune) the model."
        )
    if float(v_reset) != 0.0:
        raise UnsupportedLayerError(
            f"{where}: v_reset={v_reset} is not supported; Loihi's CUBA neuron resets v to 0. "
            "Use v_reset=0.0 and retrain."
        )


def _sj_common(neuron: nn.Module) -> dict:
    return dict(
        surrogate_function=getattr(neuron, "surrogate_function", None),
        detach_reset=bool(getattr(neuron, "detach_reset", False)),
        step_mode=getattr(neuron, "step_mode", "s"),
    )


def _is_sj(neuron: nn.Module, names: Tuple[str, ...]) -> bool:
    sjn = _sj_neuron_module()
    if sjn is None:
        return False
    classes = tuple(getattr(sjn, n) for n in names if hasattr(sjn, n))
    # Only the exact classes: subclasses (ParametricLIF, QIF, ...) have other dynamics.
    return type(neuron) in classes



def _from_sj_cuba(neuron: nn.Module, where: str) -> CubaLIFNode:
    _check_hard_reset(neuron, where)
    if getattr(neuron, "norm", None) is not None:
        raise UnsupportedLayerError(
            f"{where}: lava_exchange.CubaLIFNode with a norm (BatchNorm2d) is not supported; fold "
            "the batch norm into the synapse (sj2lava.convert does this) and use norm=None."
        )
    node = CubaLIFNode(
        1.0, 1.0, float(neuron.v_threshold), requires_grad=bool(neuron.requires_grad),
        **_sj_common(neuron),
    )
    with torch.no_grad():  # copy the stored (possibly learned) 4096-unit parameters bit for bit
        node.current_decay.copy_(neuron.current_decay.detach().reshape(1).float())
        node.voltage_decay.copy_(neuron.voltage_decay.detach().reshape(1).float())
    return node




def _recognises(m: nn.Module) -> bool:
    return type(m).__module__.startswith("spikingjelly.activation_based.neuron") or (
        from_package(m, "spikingjelly") and type(m).__name__ == "CubaLIFNode")


def _to_cuba(neuron: nn.Module, where: str, approximate: bool) -> Tuple[CubaLIFNode, float]:
    if type(neuron).__name__ == "CubaLIFNode":
        return _from_sj_cuba(neuron, where), 1.0
    if not _is_sj(neuron, ("IFNode", "LIFNode")):
        raise unsupported_neuron(neuron, where)
    _check_hard_reset(neuron, where)
    if isinstance(neuron, _sj_neuron_module().LIFNode):
        tau = float(neuron.tau)
        node = CubaLIFNode(1.0, 1.0 / tau, float(neuron.v_threshold), **_sj_common(neuron))
        return node, (1.0 / tau if neuron.decay_input else 1.0)
    return CubaLIFNode(1.0, 0.0, float(neuron.v_threshold), **_sj_common(neuron)), 1.0


def _note(names: List[str]) -> Optional[str]:
    names = [n for n in names if n != "CubaLIFNode"]  # lava_exchange's neuron is Loihi's already
    if not names:
        return None
    return (f"{', '.join(names)}: SpikingJelly fires on v >= threshold in float, Loihi on v > threshold "
            "in fixed point (threshold floored to 1/64, state on the 1/4096 grid); close, not identical")




# --------------------------------------------------------------------------- lava_exchange.SumPool2d
def _sj_sumpool_as_sumpool(m: nn.Module, where: str) -> SumPool2d:
    if None in tuple(m.stride):
        raise UnsupportedLayerError(
            f"{where}: lava_exchange.SumPool2d without a stride holds stride (None, None), which its own "
            "forward cannot run with; give stride=kernel_size (or another stride) explicitly."
        )
    if pair(m.padding) != (0, 0) or pair(m.dilation) != (1, 1):
        raise UnsupportedLayerError(
            f"{where}: lava_exchange.SumPool2d(padding={m.padding}, dilation={m.dilation}) is not "
            "supported; use padding=0 and dilation=1."
        )
    return SumPool2d(m.kernel_size, m.stride)


_SUMPOOL = SynapseRule(kind="pool", forward=POOL.forward, to_netx=POOL.to_netx, normalize=_sj_sumpool_as_sumpool)


# --------------------------------------------------------------------------- lava_exchange.BlockContainer
def _is_sj_block(m: nn.Module) -> bool:
    return from_package(m, "spikingjelly") and type(m).__name__ == "BlockContainer"


def _from_sj_block(m: nn.Module, path: str, notes: List[str]) -> BlockContainer:
    syn = copy.deepcopy(m.synapse)
    notes.append(f"{path}: SpikingJelly lava_exchange BlockContainer rebuilt with Lava's one-step synaptic delay "
                 "(the peer trains without it, so its outputs lag by one step per layer in Lava)")
    if m.neuron is None:
        return BlockContainer(syn, None, "m")
    return block(syn, m.neuron, path)


def _is_dropout(m: nn.Module) -> bool:
    return from_package(m, "spikingjelly") and type(m).__name__ in ("Dropout", "Dropout2d")


register_frontend(Frontend(
    "SpikingJelly",
    neurons=[NeuronRule("SpikingJelly", _recognises, _to_cuba, _note, bias_in_current=True)],
    synapses=[(("spikingjelly.activation_based.lava_exchange.SumPool2d",), _SUMPOOL)],
    blocks=[(_is_sj_block, _from_sj_block)],
    dropouts=[_is_dropout],
))
