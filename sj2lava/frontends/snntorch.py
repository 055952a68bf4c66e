"""snnTorch: ``Leaky`` and ``Synaptic`` neurons (``reset_mechanism='zero'``; ``'subtract'`` approximated on
request), ``RLeaky`` (a recurrent BlockContainer, NetX ``dense_rec``; ``RSynaptic`` is refused: its reset is late
whatever ``reset_delay`` says), and the NIR graph snnTorch exports for a model (:func:`snntorch_to_nir`).

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

from ..convert import Frontend, register_frontend
from ..errors import UnsupportedLayerError
from ..neuron import CubaLIFNode, NeuronRule, from_package, unsupported_neuron

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
    if name == "RSynaptic":
        if not approximate:
            raise UnsupportedLayerError(
                f"{where}: snnTorch 1.0.0's RSynaptic has no exact Loihi form: with reset_delay=True it zeroes mem one "
                "step after a spike, that step's input included, and with reset_delay=False its immediate reset is "
                "computed but not kept (the same late reset). Use RLeaky, or Synaptic with the recurrence as an "
                "explicit layer, and retrain; or convert with approximate=True (Loihi's immediate zero reset).")
        warnings.warn(f"{where}: RSynaptic's late reset approximated by Loihi's immediate reset to zero; check the "
                      "effect with sj2lava.verify", stacklevel=4)
    elif name in ("Synaptic", "RLeaky") and getattr(neuron, "reset_delay", True):
        raise UnsupportedLayerError(
            f"{where}: snnTorch {name}(reset_delay=True) (the default) resets one step late, which Loihi's "
            f"CUBA neuron does not do. Use {name}(..., reset_delay=False) and retrain."
        )
    if float(getattr(neuron, "graded_spikes_factor", 1.0)) != 1.0:
        raise UnsupportedLayerError(f"{where}: graded spikes (graded_spikes_factor != 1) are not supported; "
                                    "Loihi's CUBA neuron sends binary spikes here.")
    if getattr(neuron, "inhibition", False) or getattr(neuron, "state_quant", False):
        raise UnsupportedLayerError(f"{where}: {name} with inhibition or state_quant is not supported.")
    beta, learn_b = _scalar(neuron.beta, "beta", where)
    alpha, learn_a = _scalar(neuron.alpha, "alpha", where) if name in ("Synaptic", "RSynaptic") else (0.0, False)
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
    if not (from_package(neuron, "snntorch") and type(neuron).__name__ in ("Leaky", "Synaptic", "RLeaky",
                                                                            "RSynaptic")):
        raise unsupported_neuron(neuron, where)
    return _from_snntorch(neuron, where, approximate), 1.0


def _is_recurrent(m: nn.Module) -> bool:
    return from_package(m, "snntorch") and type(m).__name__ in ("RLeaky", "RSynaptic")


def _recurrent_synapse(neuron: nn.Module, synapse: nn.Module, where: str) -> nn.Linear:
    """``RLeaky``'s recurrent synapse ``R`` (``mem`` gets ``input + R(spk[t-1])``) as an ``nn.Linear(n, n,
    bias=False)``: all-to-all linear as is, one-to-one (``V``) as ``diag(V)``. Its bias is a constant input,
    folded into ``synapse``'s bias (RLeaky has no synaptic current: exact)."""
    name = type(neuron).__name__
    n = getattr(synapse, "out_features", None)
    if n is None:
        raise UnsupportedLayerError(f"{where}: snnTorch {name} after a {type(synapse).__name__}; NetX's recurrent "
                                    "layer (dense_rec) follows a dense synapse (nn.Linear)")
    rec = neuron.recurrent
    out = nn.Linear(n, n, bias=False)
    with torch.no_grad():
        if getattr(neuron, "all_to_all", True):
            if not isinstance(rec, nn.Linear) or (rec.in_features, rec.out_features) != (n, n):
                raise UnsupportedLayerError(f"{where}: snnTorch {name} with a {type(rec).__name__} recurrent "
                                            f"synapse; NetX's dense_rec needs an all-to-all Linear({n}, {n})")
            out.weight.copy_(rec.weight)
            bias = rec.bias
        else:  # one-to-one: V * spk
            v = torch.as_tensor(neuron.V).detach().float().reshape(-1)
            out.weight.copy_(torch.diag(v.expand(n)))
            bias = None
        if bias is not None and bool((bias != 0).any()):
            if synapse.bias is None:
                synapse.bias = nn.Parameter(bias.detach().clone())
            else:
                synapse.bias.add_(bias)
    return out




def _note(names: List[str]) -> Optional[str]:
    return (f"{', '.join(names)}: snnTorch computes in float with no synaptic delay; Loihi in fixed point "
            "(decays rounded to 1/4096, threshold floored to 1/64) one step later per layer")


register_frontend(Frontend(
    "snnTorch",
    neurons=[NeuronRule("snnTorch", _recognises, _to_cuba, _note, single_step=True, bias_in_current=True)],
    recurrences=[(_is_recurrent, _recurrent_synapse)],
))


def snntorch_to_nir(model: nn.Module, sample: torch.Tensor):
    """snnTorch's own NIR export (its module mapping, through nirtorch), without the final
    ``infer_types()`` that snnTorch 1.0.0's ``export_to_nir`` calls and nir 1.0.8 rejects for every
    net ("type mismatch ... 1.input: []"). The graph is the one ``export_to_nir`` builds."""
    import nirtorch
    import snntorch as snn
    from snntorch import export_nir

    return nirtorch.extract_nir_graph(model, export_nir._extract_snntorch_module, sample, model_name="snntorch",
                                      ignore_submodules_of=[snn.RLeaky, snn.RSynaptic])
