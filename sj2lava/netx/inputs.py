"""Input checks shared by everything that runs a net: the emulator and the Lava runner.

Both take spikes ``[T, N, *input_shape]`` (``'TNX'``) or ``[N, *input_shape, T]`` (``'NXT'``) and refuse
bad input (wrong shape, NaN, non-binary values) with a ``ValueError`` before any work.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch

from .. import quant
from ..layout import NXT_to_TNX
from .spec import Flatten, InputNeurons, NetSpec

__all__ = ["RunInput", "run_input", "prepare_input", "check_binary", "reset_phases", "input_neuron_data",
           "graded_input_data", "WINDOWS", "pad_steps", "read_window", "warn_unread", "run_steps"]

WINDOWS = ("all", "aligned")
"""Readout windows of a run: ``'all'`` returns every step run; ``'aligned'`` runs ``T + L`` steps (``L`` the
output's latency, :attr:`NetSpec.latencies`; the input is zero after step ``T``, input neurons keep their bias)
and returns, per layer, the ``T`` steps that answer the ``T`` input steps (layer ``k`` from its latency on): the
window the float model computes in, where a classifier's output is read."""


@dataclass
class RunInput:
    """What one run of a file takes, checked once: ``emulate`` and ``run_lava`` share it.

    Attributes:
        x: ``[T, N, *]`` (TNX): binary spikes; a graded net's int32 values (an SDNN input layer's ``a_in``); or
            the CUBA input neurons' ``a_in`` (integers, all zero when none was given).
        bias: the input neurons' ``bias_mant`` per sample ``[N, *input_shape]`` (int32), or None.
        neurons_in: the file's first layer is CUBA input neurons (NetX's ``Input`` block), driven by ``bias``.
        graded: the net takes graded input (its input layer is SDNN, or SDNN messages come in after skipped
            layers).
    """

    x: torch.Tensor
    bias: Optional[torch.Tensor]
    neurons_in: bool
    graded: bool


def run_input(spec: NetSpec, x: Optional[torch.Tensor], input_bias: Optional[torch.Tensor],
              num_steps: Optional[int], layout: str, what: str, spike_exp: int = 6,
              check_values: bool = True) -> RunInput:
    """The input of a run of ``spec`` by kind (spikes, graded values, or input neurons' bias and ``a_in``), every
    check done (shapes, values, units); errors name ``what`` and the fix. ``check_values=False`` leaves the 0/1
    check of spikes to the caller (the emulator does it while packing them)."""
    # NaN and infinity in graded values or input neurons' a_in and bias are refused by their own integer checks,
    # and in spikes by the 0/1 check (here, or the caller's: one pass over x, not two)
    spikes_in = not spec.graded_input and not (spec.layers and isinstance(spec.layers[0], InputNeurons))
    for name, a in (("x", x), ("input_bias", input_bias)):
        if a is not None:
            _check_real_finite_nonempty(torch.as_tensor(a), name, what, finite=spikes_in and check_values)
    if spec.graded_input:
        if input_bias is not None:
            raise ValueError(f"{what}: input_bias is the bias of CUBA input neurons; this net takes graded input x")
        return RunInput(graded_input_data(spec, x, layout, what, spike_exp), None, False, True)
    if spec.layers and isinstance(spec.layers[0], InputNeurons):
        x, bias = input_neuron_data(spec, x, input_bias, num_steps, layout, what)
        return RunInput(x, bias, True, False)
    if input_bias is not None:
        raise ValueError(f"{what}: input_bias drives input neurons, and this net's input layer has none; give its "
                         "input as spikes x")
    if x is None:
        raise ValueError(f"{what}: give the input spikes x [T, N, *input_shape]")
    return RunInput(prepare_input(spec, x, layout, what, check_values=check_values), None, False, False)


def _check_real_finite_nonempty(a: torch.Tensor, name: str, what: str, finite: bool = True) -> None:
    """Refuse, before any work, an input no run can take: complex values (their imaginary part would be
    dropped), NaN or infinity, or no values at all (0 steps or 0 samples)."""
    if a.is_complex():
        raise ValueError(f"{what}: {name} holds complex values ({a.dtype}); give real spikes or integers")
    if a.numel() == 0:
        raise ValueError(f"{what}: {name} of shape {tuple(a.shape)} holds no values (0 steps or 0 samples)")
    if finite and a.is_floating_point() and not bool(torch.isfinite(a).all()):
        raise ValueError(f"{what}: {name} holds NaN or infinite values; give finite spikes (0/1) or integers")


def prepare_input(spec: NetSpec, x: torch.Tensor, layout: str, what: str, check_values: bool = True) -> torch.Tensor:
    """Check ``x`` against the network and return it as ``[T, N, *input_shape]`` float spikes.
    With ``check_values=False`` the caller checks the values itself (with :func:`check_binary` or as
    fast) before any work."""
    if layout not in ("TNX", "NXT"):
        raise ValueError(f"{what}: layout must be 'TNX' or 'NXT', got {layout!r}")
    x = torch.as_tensor(x)
    if x.dim() < 3:
        raise ValueError(f"{what}: input must be [T, N, *shape] (TNX) or [N, *shape, T] (NXT); got "
                         f"shape {tuple(x.shape)}. Add a batch dimension for a single sample.")
    x = x if layout == "TNX" else NXT_to_TNX(x)
    sample = tuple(x.shape[2:])
    want = tuple(spec.input_shape)
    if sample != want and not (len(want) == 1 and int(np.prod(sample)) == want[0]):
        raise ValueError(f"{what}: each sample has shape {sample} but the network takes {want}")
    if check_values:
        check_binary(x, what)
    return x.reshape(x.shape[0], x.shape[1], *want).float()


def check_binary(x: torch.Tensor, what: str) -> None:
    """Raise ``ValueError`` unless every value of ``x`` is 0 or 1 (the network has no message bits)."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what}: input holds NaN or infinite values; give finite spikes (0/1)")
    if not bool(((x == 0) | (x == 1)).all()):
        counts = bool(((x >= 0) & (x == torch.round(x))).all()) if x.is_floating_point() else bool((x >= 0).all())
        if counts:  # binned events: several in one bin
            k = int(x.max())
            raise ValueError(
                f"{what}: input holds event counts up to {k} in a time bin; this net's input takes binary spikes "
                f"(NetX 0.6.0 cannot run graded input messages). Bin the events {k}x finer (more, shorter steps: at "
                "most one event per neuron and bin), or clip the counts to 1 (x.clamp(max=1)), which drops events.")
        raise ValueError(f"{what}: input must be binary spikes (0/1); the network has no message bits for graded "
                         "input. Encode it first (e.g. rate coding), or, for analog input fed to the first layer "
                         "every step, deploy that layer with sj2lava.convert(..., direct_input=True).")


def reset_phases(spec: NetSpec, reset_interval: Optional[int], reset_offset: int = 0
                 ) -> Optional[List[Tuple[int, int]]]:
    """Per synaptic layer ``(interval, phase)`` of NetX's periodic reset (``hdf5.Network(reset_interval=,
    reset_offset=)``): layer ``i`` resets at Lava steps ``k`` with ``k % interval == phase``, ``phase =
    (reset_offset + 1 + i) % interval`` (NetX counts hardware time from 1 and shifts each layer by one)."""
    if reset_interval is None:
        return None
    for name, value, low in (("reset_interval", reset_interval, 1), ("reset_offset", reset_offset, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    interval = int(reset_interval)
    layers = [l for l in spec.layers if not isinstance(l, Flatten)]
    if any(l.neuron.kind != "cuba" for l in layers):
        warnings.warn("reset_interval: NetX resets CUBA neurons only (it ignores the reset for Sigma-Delta and "
                      "resonate-and-fire neurons), and so does sj2lava", stacklevel=3)
    # the phase still counts every layer, as NetX's does
    return [(interval, (int(reset_offset) + 1 + i) % interval) if l.neuron.kind == "cuba" else (0, 0)
            for i, l in enumerate(layers)]


A_IN_MAX = 1 << 16
"""Largest |a_in| an input neuron takes here: ``a_in << 6`` then stays far inside the 24-bit current."""


def input_neuron_data(spec: NetSpec, x: Optional[torch.Tensor], input_bias: Optional[torch.Tensor],
                      num_steps: Optional[int], layout: str, what: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """For a net whose input layer has neurons: ``(a_in [T, N, *shape] int32, bias_mant [N, *shape] int32)``
    from the caller's ``x`` (optional a_in values), ``input_bias`` (``[N, *shape]`` or ``[*shape]``) and
    ``num_steps``; every value checked (integers in range, no NaN) before any work."""
    shape = tuple(spec.input_shape)
    bias = None if input_bias is None else _bias_values(input_bias, shape, what)
    if x is None:
        if num_steps is None:
            raise ValueError(f"{what}: give num_steps (or x) for a net driven by its input neurons' bias")
        n = 1 if bias is None else bias.shape[0]
        x = torch.zeros(1, 1, *shape, dtype=torch.int32).expand(int(num_steps), n, *shape)  # no copies: all zero
    else:
        x = _a_in_values(x, shape, num_steps, layout, what)
    if bias is None:
        bias = torch.zeros(x.shape[1], *shape, dtype=torch.int32)
    if bias.shape[0] == 1 and x.shape[1] > 1:
        bias = bias.expand(x.shape[1], *shape)
    if bias.shape[0] != x.shape[1]:
        raise ValueError(f"{what}: input_bias has {bias.shape[0]} samples but x has {x.shape[1]}")
    return x.to(torch.int32), _int32(bias)


def _distinct(a: torch.Tensor) -> torch.Tensor:
    """``a`` without its broadcast dimensions (stride 0, as ``expand`` makes): the same values, each once."""
    return a[tuple(slice(0, 1) if st == 0 else slice(None) for st in a.stride())]


def _int32(a: torch.Tensor) -> torch.Tensor:
    """``a`` as int32, contiguous, except that an expanded tensor (one image for every sample) stays an expansion
    of its distinct values instead of being copied out (PilotNet's 10 M bias values at batch 256)."""
    if 0 not in a.stride():
        return a.to(torch.int32).contiguous()
    return _distinct(a).to(torch.int32).contiguous().expand(a.shape)


def _bias_values(input_bias: torch.Tensor, shape: Tuple[int, ...], what: str) -> torch.Tensor:
    """``input_bias`` as ``[N, *shape]`` integers in the 13-bit bias range (``[*shape]`` is one sample)."""
    bias = torch.as_tensor(input_bias)
    if tuple(bias.shape) == shape:
        bias = bias.unsqueeze(0)
    if bias.dim() != len(shape) + 1 or tuple(bias.shape[1:]) != shape:
        raise ValueError(f"{what}: input_bias must be [N, *{shape}] or {shape}; got {tuple(bias.shape)}")
    _check_ints(bias, quant.BIAS_MANT_MIN, quant.BIAS_MANT_MAX, "input_bias", what)
    return bias


def _a_in_values(x: torch.Tensor, shape: Tuple[int, ...], num_steps: Optional[int], layout: str,
                 what: str) -> torch.Tensor:
    """The input neurons' ``a_in`` as ``[T, N, *shape]`` integers within Lava's range."""
    x = torch.as_tensor(x)
    x = x if layout == "TNX" else NXT_to_TNX(x)
    if x.dim() < 3 or int(np.prod(x.shape[2:])) != int(np.prod(shape)):
        raise ValueError(f"{what}: x must be [T, N, *{shape}] (the input neurons' a_in); got {tuple(x.shape)}")
    x = x.reshape(x.shape[0], x.shape[1], *shape)
    _check_ints(x, -A_IN_MAX, A_IN_MAX, "x (the input neurons' a_in)", what)
    if num_steps is not None and int(num_steps) != x.shape[0]:
        raise ValueError(f"{what}: num_steps={num_steps} but x has {x.shape[0]} steps")
    return x


def _check_ints(a: torch.Tensor, lo: int, hi: int, name: str, what: str) -> None:
    a = _distinct(a)  # an expanded tensor's values once, not once per sample
    if not (a.dtype.is_floating_point or a.dtype.is_complex or a.dtype == torch.bool):  # integers: the range only
        if a.numel() and (int(a.min()) < lo or int(a.max()) > hi):
            raise ValueError(f"{what}: {name} must lie in [{lo}, {hi}]; found {int(a.min())}..{int(a.max())}")
        return
    f = a.double()
    if not bool(torch.isfinite(f).all()):
        raise ValueError(f"{what}: {name} contains NaN or inf")
    if not bool((f == torch.round(f)).all()):
        raise ValueError(f"{what}: {name} must hold integers")
    if f.numel() and (float(f.min()) < lo or float(f.max()) > hi):
        raise ValueError(f"{what}: {name} must lie in [{lo}, {hi}]; found {float(f.min()):g}..{float(f.max()):g}")


def graded_input_data(spec: NetSpec, x: Optional[torch.Tensor], layout: str, what: str, spike_exp: int = 6
                      ) -> torch.Tensor:
    """Graded input ``x`` ``[T, N, *input_shape]`` as int32, every value checked before any work: for an SDNN
    input layer (Lava's Delta: ``a_in << (spike_exp + 6)`` into int32) integers below ``2^(25 - spike_exp)``
    in magnitude; for a net whose first synapse takes graded messages (``input_message_bits = b``) signed
    ``b``-bit integers."""
    if x is None:
        raise ValueError(f"{what}: give the graded input x [T, N, *{tuple(spec.input_shape)}]")
    x = torch.as_tensor(x)
    if layout not in ("TNX", "NXT"):
        raise ValueError(f"{what}: layout must be 'TNX' or 'NXT', got {layout!r}")
    x = x if layout == "TNX" else NXT_to_TNX(x)
    shape = tuple(spec.input_shape)
    if x.dim() < 3 or int(np.prod(x.shape[2:])) != int(np.prod(shape)):
        raise ValueError(f"{what}: x must be [T, N, *{shape}] (graded values); got {tuple(x.shape)}")
    first = spec.layers[0]
    if isinstance(first, InputNeurons) and first.neuron.graded:
        hi = (1 << (31 - int(spike_exp) - quant.BIAS_EXP)) - 1
        name = f"x (the SDNN input neurons' a_in, shifted by {int(spike_exp) + quant.BIAS_EXP} bits into int32)"
        _check_ints(x, -hi, hi, name, what)
    else:
        bits = spec.input_message_bits
        _check_ints(x, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, f"x ({bits}-bit graded messages)", what)
    return x.reshape(x.shape[0], x.shape[1], *shape).to(torch.int32)


def pad_steps(x: torch.Tensor, extra: int, layout: str, hold: bool = False) -> torch.Tensor:
    """``x`` with ``extra`` steps after its last (time is dim 0 in ``'TNX'``, the last dim in ``'NXT'``): zeros (spikes
    stop), or with ``hold`` the last step repeated (the analog image that input neurons keep)."""
    x = torch.as_tensor(x)
    dim = 0 if layout == "TNX" else x.dim() - 1
    if hold:
        last = x.narrow(dim, x.shape[dim] - 1, 1)
        return torch.cat([x, last.expand(*[extra if d == dim else -1 for d in range(x.dim())])], dim)
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, torch.zeros(shape, dtype=x.dtype, device=x.device)], dim)


def read_window(result, spec: NetSpec, steps: int, layout: str):
    """Cut a run of ``steps + L`` steps (a tensor of output spikes, a list of per-layer tensors, or a dict of
    both, as ``emulate`` and ``run_lava`` return) to each layer's ``steps`` aligned steps (:data:`WINDOWS`)."""
    lat = spec.latencies

    def cut(a, d):
        if a is None:
            return None
        return a[d:d + steps] if layout == "TNX" else a[..., d:d + steps]

    if isinstance(result, dict):
        return {k: ([cut(a, d) for a, d in zip(v, lat)] if isinstance(v, list) else cut(v, lat[-1]))
                for k, v in result.items()}
    if isinstance(result, list):
        return [cut(a, d) for a, d in zip(result, lat)]
    return cut(result, lat[-1])


def warn_unread(spec: NetSpec, steps: int, what: str) -> None:
    """Warn when a run of ``steps`` cannot show any output of its input: the output answers from step ``L``.
    (No steps at all is refused by the input checks that follow, without a warning first.)"""
    lat = spec.latency
    if 0 < steps <= lat:
        warnings.warn(f"{what}: {steps} steps, but the output layer answers {lat} steps after the input (one step "
                      "per synaptic layer in Lava), so this run reads no output of it; use window='aligned' (T + "
                      f"{lat} steps, the last T read) or more steps", stacklevel=3)


def run_steps(x: Optional[torch.Tensor], num_steps: Optional[int], layout: str) -> int:
    """The steps a run takes: ``num_steps`` where given, else the input's time length."""
    if num_steps is not None:
        return int(num_steps)
    if x is None:
        return 0
    return int(torch.as_tensor(x).shape[0 if layout == "TNX" else -1])
