"""snnTorch: ``Leaky`` and ``Synaptic`` neurons (``reset_mechanism='zero'``; ``'subtract'`` approximated on
request), and the NIR graph snnTorch exports for a model (:func:`snntorch_to_nir`).

``Leaky(beta)`` -> CUBA (1, 1 - beta); ``Synaptic(alpha, beta, reset_delay=False)`` -> (1 - alpha, 1 - beta).
A learnable beta/alpha becomes a learnable decay; the spike function is kept as the surrogate and the reset
is detached, as in snnTorch. Both fire on ``mem > threshold``, as Loihi. Other snnTorch neurons are
recognised and refused by name. Nothing here imports snnTorch until :func:`snntorch_to_nir` is called.
"""
from __future__ import annotations

import warnings
from typing import List, Optional, Tuple

import torch
from torch import nn

from ..errors import UnsupportedLayerError
from ..neuron import CubaLIFNode, NeuronRule, from_package, register_neuron, unsupported_neuron

__all__ = ["snntorch_to_nir"]


def _scalar(value, name: str, where: str) -> Tuple[float, bool]:
    """(value, learnable) of an snnTorch parameter that must be one number per layer."""
    t = torch.as_tensor(value)
    if t.numel() != 1:
        raise UnsupportedLayerError(
            f"{where}: {name} has {t.numel()} values (one per neuron); NetX takes one decay per layer. "
            f"Use a single {name} and retrain."
        )
    return float(t.detach().reshape(())), bool(getattr(value, "requires_grad", False))


def _from_snntorch(neuron: nn.Module, where: str, approximate: bool) -> CubaLIFNode:
    name = type(neuron).__name__
    reset = getattr(neuron, "reset_mechanism", "subtract")
    if reset == "subtract":
        if not approximate:
            raise UnsupportedLayerError(
                f"{where}: snnTorch {name}(reset_mechanism='subtract') (the default) has no Loihi equivalent; "
                "CUBA resets v to 0. Use reset_mechanism='zero' and retrain, or convert with "
                "approximate=True (then sj2lava.finetune to recover accuracy)."
            )
        warnings.warn(f"{where}: {name} subtract reset approximated by Loihi's reset to zero; "
                      "check the effect with sj2lava.verify", stacklevel=4)
    elif reset != "zero":
        raise UnsupportedLayerError(f"{where}: {name}(reset_mechanism={reset!r}) is not supported; "
                                    "use reset_mechanism='zero'.")
    if name == "Synaptic" and getattr(neuron, "reset_delay", True):
        raise UnsupportedLayerError(
            f"{where}: snnTorch Synaptic(reset_delay=True) (the default) resets one step late, which Loihi's "
            "CUBA neuron does not do. Use Synaptic(..., reset_delay=False) and retrain."
        )
    if float(getattr(neuron, "graded_spikes_factor", 1.0)) != 1.0:
        raise UnsupportedLayerError(f"{where}: graded spikes (graded_spikes_factor != 1) are not supported; "
                                    "Loihi's CUBA neuron sends binary spikes here.")
    if getattr(neuron, "inhibition", False) or getattr(neuron, "state_quant", False):
        raise UnsupportedLayerError(f"{where}: {name} with inhibition or state_quant is not supported.")
    beta, learn_b = _scalar(neuron.beta, "beta", where)
    alpha, learn_a = _scalar(neuron.alpha, "alpha", where) if name == "Synaptic" else (0.0, False)
    threshold, _ = _scalar(neuron.threshold, "threshold", where)
    node = CubaLIFNode(
        1.0 - min(max(alpha, 0.0), 1.0), 1.0 - min(max(beta, 0.0), 1.0), threshold,
        requires_grad=learn_a or learn_b, surrogate_function=getattr(neuron, "spike_grad", None),
        detach_reset=True,  # snnTorch detaches its reset signal
    )
    return node


def _recognises(m: nn.Module) -> bool:
    return type(m).__module__.startswith("snntorch._neurons")


def _to_cuba(neuron: nn.Module, where: str, approximate: bool) -> Tuple[CubaLIFNode, float]:
    if not (from_package(neuron, "snntorch") and type(neuron).__name__ in ("Leaky", "Synaptic")):
        raise unsupported_neuron(neuron, where)
    return _from_snntorch(neuron, where, approximate), 1.0


def _note(names: List[str]) -> Optional[str]:
    return (f"{', '.join(names)}: snnTorch computes in float with no synaptic delay; Loihi in fixed point "
            "(decays rounded to 1/4096, threshold floored to 1/64) one step later per layer")


register_neuron(NeuronRule("snnTorch", _recognises, _to_cuba, _note, single_step=True))


def snntorch_to_nir(model: nn.Module, sample: torch.Tensor):
    """snnTorch's own NIR export (its module mapping, through nirtorch), without the final
    ``infer_types()`` that snnTorch 1.0.0's ``export_to_nir`` calls and nir 1.0.8 rejects for every
    net ("type mismatch ... 1.input: []"). The graph is the one ``export_to_nir`` builds."""
    import nirtorch
    import snntorch as snn
    from snntorch import export_nir

    return nirtorch.extract_nir_graph(model, export_nir._extract_snntorch_module, sample, model_name="snntorch",
                                      ignore_submodules_of=[snn.RLeaky, snn.RSynaptic])
