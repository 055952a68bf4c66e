"""Workload metrics in NeuroBench's vocabulary, counted on the exact (emulated) integer run of a ``.net``.

Per synaptic layer ``l`` with ``N`` samples of ``T`` steps:

- spikes per sample: ``sum(s_l != 0) / N`` (non-zero messages for sigma-delta layers);
- activation sparsity: ``1 - sum(s_l != 0) / (N T neurons_l)``;
- synaptic operations per sample (NeuroBench's effective accumulates): the products with a non-zero input and a
  non-zero weight, ``sum_t sum_i [x_i(t) != 0] nnz(column i of W_l)`` for a dense layer, the same through the
  kernel's non-zero taps for a convolution (each spike counted once per output it reaches), plus the layer's own
  spikes through ``W_rec`` (``dense_rec``) and the imaginary weights of a complex layer, divided by ``N``;
- connection sparsity: the fraction of zero weights;
- footprint: weights as Loihi stores them (8-bit mantissas; 16 for SDNN layers' graded synapses as written) plus
  6 bits per axonal delay, and neuron state (24-bit ``u`` and ``v``; ``sigma``, ``act`` and residue for SDNN;
  real and imaginary parts for RF), in bits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .netx.spec import Conv, Dense, Flatten, InputNeurons, NetSpec, neurons_of

__all__ = ["Counts", "LayerMetrics", "Metrics", "count", "metrics", "metrics_of", "run_metrics"]

_STATE_BITS = {"cuba": 2 * 24, "sdnn": 3 * 24, "rf": 2 * 24}  # u and v; sigma, act, residue; real and imag


@dataclass
class LayerMetrics:
    """One synaptic layer's counts (see the module docstring)."""

    index: int  # the layer's position in the file (as verify names layers)
    kind: str
    neurons: int
    spikes_per_sample: float
    activation_sparsity: float
    synops_per_sample: float
    connection_sparsity: float
    weight_bits: int
    state_bits: int


@dataclass
class Metrics:
    """Per-layer :class:`LayerMetrics` and the totals over the net."""

    layers: List[LayerMetrics]
    samples: int
    steps: int

    def __add__(self, other: Metrics) -> Metrics:
        """The counts of two runs of the same net (e.g. two batches) as one: per-sample means weighted by samples."""
        n = self.samples + other.samples
        mean = lambda a, b: (a * self.samples + b * other.samples) / n  # noqa: E731
        layers = [LayerMetrics(a.index, a.kind, a.neurons, mean(a.spikes_per_sample, b.spikes_per_sample),
                               mean(a.activation_sparsity, b.activation_sparsity),
                               mean(a.synops_per_sample, b.synops_per_sample), a.connection_sparsity, a.weight_bits,
                               a.state_bits) for a, b in zip(self.layers, other.layers)]
        return Metrics(layers, n, self.steps)

    @property
    def spikes_per_sample(self) -> float:
        return sum(layer.spikes_per_sample for layer in self.layers)

    @property
    def synops_per_sample(self) -> float:
        return sum(layer.synops_per_sample for layer in self.layers)

    @property
    def activation_sparsity(self) -> float:
        total = sum(layer.neurons for layer in self.layers) * self.steps
        return 1.0 - self.spikes_per_sample / total if total else 1.0

    @property
    def footprint_bits(self) -> int:
        return sum(layer.weight_bits + layer.state_bits for layer in self.layers)

    def __str__(self) -> str:
        head = ("layer", "neurons", "spikes/sample", "act. sparsity", "synops/sample", "conn. sparsity",
                "weights (bits)", "state (bits)")
        rows = [(f"{m.index}:{m.kind}", f"{m.neurons:,}", f"{m.spikes_per_sample:,.1f}",
                 f"{m.activation_sparsity:.4f}", f"{m.synops_per_sample:,.0f}", f"{m.connection_sparsity:.4f}",
                 f"{m.weight_bits:,}", f"{m.state_bits:,}") for m in self.layers]
        rows.append(("total", f"{sum(m.neurons for m in self.layers):,}", f"{self.spikes_per_sample:,.1f}",
                     f"{self.activation_sparsity:.4f}", f"{self.synops_per_sample:,.0f}", "",
                     f"{sum(m.weight_bits for m in self.layers):,}", f"{sum(m.state_bits for m in self.layers):,}"))
        widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head))]
        line = lambda r: "  ".join(v.rjust(w) if c else v.ljust(w) for c, (v, w) in enumerate(zip(r, widths)))  # noqa
        return "\n".join([f"metrics over {self.samples} samples x {self.steps} steps (exact emulation; footprint "
                          f"{self.footprint_bits / 8 / 1024:,.1f} KiB)", line(head)] + [line(r) for r in rows])


def _weight_bits(layer, n_weights: int) -> int:
    per = 16 if layer.neuron.kind == "sdnn" else 8
    bits = n_weights * per
    if isinstance(layer, Dense) and layer.delay is not None:
        bits += layer.delay.size * 6
    return bits


@dataclass
class Counts:
    """What the metrics need from a run, summed over its samples and steps, per synaptic layer ``k``: how often each
    input element was non-zero (``inputs[k]``, flat in the layer's input order; None for input neurons), how often
    each neuron fired or sent a message (``fired[k]``) and how often it did at the last step (``last[k]``, which its
    own recurrent synapse never reads). float64 holding exact integers, so counts of batches add up exactly.

    Synaptic operations are linear in these counts: ``sum_i inputs[k][i] * fan_out(i)``, with ``fan_out(i)`` the
    non-zero weights input ``i`` reaches (once per output, through every non-zero tap of a convolution)."""

    samples: int
    steps: int
    inputs: List[Optional[torch.Tensor]]
    fired: List[torch.Tensor]
    last: List[torch.Tensor]

    def __add__(self, other: Counts) -> Counts:
        """The counts of two runs of the same net with the same steps (e.g. two batches) as one."""
        if other.steps != self.steps or len(other.fired) != len(self.fired):
            raise ValueError("Counts: only runs of the same net over the same steps add up")
        add = lambda a, b: None if a is None or b is None else a + b  # noqa: E731
        return Counts(self.samples + other.samples, self.steps, [add(a, b) for a, b in zip(self.inputs, other.inputs)],
                      [a + b for a, b in zip(self.fired, other.fired)], [a + b for a, b in zip(self.last, other.last)])


def count(spec: NetSpec, x: torch.Tensor, layer_spikes: List[torch.Tensor]) -> Counts:
    """The :class:`Counts` of a run of ``spec`` on ``x`` ``[T, N, *input_shape]`` whose synaptic layers' outputs are
    ``layer_spikes`` (``emulate(..., record=('layer_spikes',))``, TNX). Holds no copy of the spikes."""
    steps, n = x.shape[0], x.shape[1]
    nonzero = lambda a: (a != 0).sum((0, 1)).reshape(-1).double()  # noqa: E731
    inputs: List[Optional[torch.Tensor]] = []
    fired: List[torch.Tensor] = []
    last: List[torch.Tensor] = []
    previous: Optional[torch.Tensor] = None
    for layer in (layer for layer in spec.layers if not isinstance(layer, Flatten)):
        s = layer_spikes[len(fired)]
        if isinstance(layer, InputNeurons):
            inputs.append(None)
        else:  # a flatten between layers keeps the order of the elements
            inputs.append(nonzero(x.reshape(steps, n, -1)) if previous is None else previous)
        fired.append(nonzero(s))
        last.append((s[-1] != 0).sum(0).reshape(-1).double())
        previous = fired[-1]
    return Counts(n, steps, inputs, fired, last)


def _fan_out(layer, w: np.ndarray) -> torch.Tensor:
    """Per input element (flat), the non-zero weights of ``w`` it reaches: a dense column's non-zeros; for a
    convolution, through every non-zero tap to every output that reads it (the adjoint of the conv on ones)."""
    mask = torch.as_tensor(np.asarray(w) != 0, dtype=torch.float64)
    if not isinstance(layer, Conv):
        return mask.sum(0)
    (h, w_in), (ho, wo) = layer.in_shape[1:], layer.out_shape[1:]
    reach = [(o - 1) * s - 2 * p + d * (k - 1) + 1 for o, s, p, d, k in
             zip((ho, wo), layer.stride, layer.padding, layer.dilation, mask.shape[2:])]
    ones = torch.ones(1, mask.shape[0], ho, wo, dtype=torch.float64)
    fan = F.conv_transpose2d(ones, mask, stride=layer.stride, padding=layer.padding,
                             output_padding=(h - reach[0], w_in - reach[1]), groups=layer.groups,
                             dilation=layer.dilation)
    return fan.reshape(-1)


def metrics_of(spec: NetSpec, c: Counts) -> Metrics:
    """The metrics of the module docstring from a run's :class:`Counts`."""
    out: List[LayerMetrics] = []
    k = 0  # the synaptic layer's position among the counts; rows are labelled by the file's layer index
    for i, layer in enumerate(spec.layers):
        if isinstance(layer, Flatten):
            continue
        neurons = neurons_of(layer)
        spikes = float(c.fired[k].sum())
        synops, zero, total_w, w_bits = 0.0, 0.0, 0, 0
        src = c.inputs[k]
        if not isinstance(layer, InputNeurons) and src is not None:
            rec = getattr(layer, "weight_rec", None)
            sources = [(layer.weight, src)] + [(w, s) for w, s in ((getattr(layer, "weight_imag", None), src),
                                                                   (rec, c.fired[k] - c.last[k])) if w is not None]
            for w, active in sources:  # a recurrent synapse reads the layer's own spikes of the step before
                synops += float(active @ _fan_out(layer, w))
                zero += float((np.asarray(w) == 0).sum())
                total_w += int(np.asarray(w).size)
            w_bits = _weight_bits(layer, total_w)
        state = neurons * _STATE_BITS.get(layer.neuron.kind, 48)
        n, steps = c.samples, c.steps
        out.append(LayerMetrics(i, layer.kind, neurons, spikes / n, 1.0 - spikes / (n * steps * neurons),
                                synops / n, zero / total_w if total_w else 0.0, w_bits, state))
        k += 1
    return Metrics(out, c.samples, c.steps)


def metrics(spec: NetSpec, x: torch.Tensor, layer_spikes: List[torch.Tensor]) -> Metrics:
    """The counts of the module docstring for a run of ``spec`` on input ``x`` ``[T, N, *input_shape]`` whose
    synaptic layers' outputs are ``layer_spikes`` (``emulate(..., record=('layer_spikes',))``, TNX)."""
    return metrics_of(spec, count(spec, x, layer_spikes))


def run_metrics(spec: NetSpec, x: torch.Tensor, **emulate_options) -> Metrics:
    """Emulate ``spec`` on ``x`` (every layer recorded) and count: :func:`metrics` of that run."""
    from .emulator import emulate

    rec = emulate(spec, x, record=("layer_spikes",), **emulate_options)
    assert isinstance(rec, dict)  # a record beyond the output spikes gives a dict
    layer_spikes = rec["layer_spikes"]
    assert isinstance(layer_spikes, list)
    return metrics(spec, x, layer_spikes)

