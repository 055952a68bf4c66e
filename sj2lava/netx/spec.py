"""Typed description of a NetX network: what a ``.net`` file holds, layer by layer.

All numbers are Loihi's integers: weights are mantissas (64 = 1.0), decays in 1/4096,
thresholds in 1/64, biases are ``bias_mant`` (exponent 6, so 64 = 1.0 added to ``v`` per step).
Shapes are in PyTorch order: ``(C, H, W)`` for images, ``(features,)`` for vectors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

Shape = Tuple[int, ...]


@dataclass(frozen=True)
class Cuba:
    """CUBA-LIF parameters (scalars, or arrays with one value per neuron) of the LIF step in
    :mod:`sj2lava.quant`: ``iDecay``, ``vDecay`` in 1/4096, ``vThMant`` in 1/64."""

    i_decay: np.ndarray
    v_decay: np.ndarray
    v_th_mant: np.ndarray

    kind = "cuba"
    graded = False

    def describe(self) -> str:
        return f"iD={_fmt(self.i_decay)} vD={_fmt(self.v_decay)} th={_fmt(self.v_th_mant)}"


Neuron = Cuba  # its name before: the CUBA type was once the only neuron type of a file


def _fmt(a: np.ndarray) -> str:
    a = np.asarray(a)
    return str(int(a)) if a.size == 1 else f"{int(a.min())}..{int(a.max())}"


@dataclass(frozen=True)
class SigmaDelta:
    """NetX's ``SDNN`` neurons (Lava's ``lava.proc.sdn``), graded messages in units of ``2^-spike_exp``
    (NetX: ``spike_exp = 6``, so a message of 64 is 1.0); state in units of ``2^-(spike_exp + 6)``.

    ``role`` is what NetX builds from the layer:

    - ``'delta'`` (an ``input`` layer): ``act = a_in << (spike_exp + 6)``;
    - ``'sigma_delta'`` (a conv / dense layer): ``sigma += a_in``, ``act = relu(sigma + bias << (spike_exp + 6))``;
    - ``'sigma'`` (field ``sigma_output``): ``sigma += a_in``, and the message is ``sigma`` itself.

    then for delta and sigma_delta (``vth = vThMant << (spike_exp + 6)``)::

        delta = act - act_prev + residue;  s = delta if |delta| >= vth else 0
        residue = delta - s;  act_prev = act;  message = s >> 6

    all in int32 arithmetic (wrapping), as Lava's fixed-point models compute it.
    """

    v_th_mant: int
    role: str = "sigma_delta"
    activation: Optional[str] = "relu"
    """The file's ``activation`` (NetX always applies ReLU in ``sigma_delta`` layers)."""

    kind = "sdnn"
    graded = True

    message_bits = 16  # NetX's for SDNN neurons

    def describe(self) -> str:
        return {"delta": f"Delta th={self.v_th_mant}", "sigma": "Sigma",
                "sigma_delta": f"SigmaDelta relu th={self.v_th_mant}"}[self.role] + f" mb={self.message_bits}"


@dataclass(frozen=True)
class Resonator:
    """NetX's resonate-and-fire neurons on a complex dense layer (``weight/real``, ``weight/imag``): type
    ``RF_PHASE`` (any type holding ``PHASE``) is Lava's ``RF``, any other ``RF...`` type Lava's ``RF_IZ``.

    NetX turns ``sinDecay``, ``cosDecay`` (1/4096) into a period and a decay in float and Lava back into
    integers (:func:`sj2lava.netx.weights.rf_decays`); ``vth = int(vThMant * 64)``. Per step, with the real and
    imaginary synaptic inputs ``a_re``, ``a_im`` and ``sv(x) = sign(x) (|x| >> 12)``::

        re' = sv(cos re) - sv(sin im) + (a_re << 6);  im' = sv(sin re) + sv(cos im) + (a_im << 6)
        clipped to +-(2^23 - 1);  RF:    s = re' >= vth and im' >= 0 and im < 0
                                  RF_IZ: s = im' >= vth; then re' = 0 and im' = vth - 1 where s
    """

    sin_decay: np.ndarray
    cos_decay: np.ndarray
    v_th_mant: int
    type_name: str = "RF_PHASE"

    kind = "rf"
    graded = False

    @property
    def izhikevich(self) -> bool:
        return "PHASE" not in self.type_name

    def describe(self) -> str:
        return (f"{'RF_IZ' if self.izhikevich else 'RF'} sin={_fmt(self.sin_decay)} cos={_fmt(self.cos_decay)} "
                f"th={self.v_th_mant}")


NeuronType = Union[Cuba, SigmaDelta, Resonator]


@dataclass(frozen=True)
class Conv:
    """2-D convolution synapse + CUBA neurons: ``a_in[co] = sum w[co, ci, a, b] s[ci, y*sH + a*dH - pH, ...]``.

    ``weight`` is ``(C_out, C_in / groups, kH, kW)``; ``stride``, ``padding``, ``dilation`` are ``(H, W)``.
    """

    in_shape: Shape
    out_shape: Shape
    weight: np.ndarray
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    dilation: Tuple[int, int]
    groups: int
    neuron: NeuronType
    bias: Optional[np.ndarray] = None
    kind: str = field(default="conv", init=False)

    @property
    def synapses(self) -> int:
        return int(np.prod(self.out_shape)) * int(np.prod(self.weight.shape[1:]))


@dataclass(frozen=True)
class Dense:
    """Fully connected synapse + CUBA neurons: ``a_in[o] = sum_i w[o, i] s[i]`` (``weight`` is ``(out, in)``),
    plus ``weight_rec @ s_prev`` for ``dense_rec`` layers.

    ``delay`` (optional, ``(out, in)`` integers in 0..62, Lava's ``DelayDense``): a spike through synapse
    ``(o, i)`` at step ``t`` reaches neuron ``o`` at step ``t + 1 + delay[o, i]`` (0: the plain one-step
    synaptic delay). ``weight_imag`` (with :class:`Resonator` neurons only): the imaginary part of a complex
    layer, whose real part is ``weight`` (NetX's ``ComplexDense``: two synapses, each with its own weight
    exponent)."""

    in_shape: Shape
    out_shape: Shape
    weight: np.ndarray
    neuron: NeuronType
    bias: Optional[np.ndarray] = None
    weight_rec: Optional[np.ndarray] = None
    delay: Optional[np.ndarray] = None
    weight_imag: Optional[np.ndarray] = None
    kind: str = field(default="dense", init=False)

    @property
    def synapses(self) -> int:
        n = int(self.weight.size) * (1 if self.weight_imag is None else 2)
        return n + (int(self.weight_rec.size) if self.weight_rec is not None else 0)


@dataclass(frozen=True)
class Flatten:
    """``(C, H, W) -> (C*H*W,)`` in C, H, W order (no neurons, no delay)."""

    in_shape: Shape
    out_shape: Shape
    kind: str = field(default="flatten", init=False)
    synapses: int = field(default=0, init=False)


@dataclass(frozen=True)
class InputNeurons:
    """An ``input`` layer with a neuron (NetX's ``Input`` block): neurons with no synapse, driven at the same
    step as the caller gives their input. CUBA neurons: through their bias (``bias_mant``, one image per
    sample: ``emulate(..., input_bias=)``) and/or their ``a_in`` (integer values added to ``u`` as ``a_in << 6``);
    they spike into the next layer. SDNN (:class:`SigmaDelta` role ``'delta'``): ``a_in`` are graded values,
    sent on as delta messages.

    ``transform`` is the file's ``(weight, bias)`` pair that NetX stores on the block but never applies: a
    user applies it to the data before passing it as ``input_bias`` (lava-dl's own tests do).
    """

    in_shape: Shape
    out_shape: Shape
    neuron: NeuronType
    transform: Optional[Tuple[int, int]] = None
    kind: str = field(default="input", init=False)
    synapses: int = field(default=0, init=False)
    bias: Optional[np.ndarray] = field(default=None, init=False)


Layer = Union[InputNeurons, Conv, Dense, Flatten]


def conv_out_shape(in_shape: Shape, c_out: int, kernel, stride, padding, dilation) -> Shape:
    """``(C_out, H_out, W_out)`` of a convolution (PyTorch's and NetX's floor rule):
    ``H_out = (H + 2 pH - dH (kH - 1) - 1) // sH + 1``."""
    return (int(c_out),) + tuple(
        (int(in_shape[1 + d]) + 2 * int(padding[d]) - int(dilation[d]) * (int(kernel[d]) - 1) - 1) // int(stride[d]) + 1
        for d in range(2)
    )


def neurons_of(layer: Layer) -> int:
    return 0 if isinstance(layer, Flatten) else int(np.prod(layer.out_shape))


@dataclass
class NetSpec:
    """A whole NetX network: the input shape and the layers after the ``input`` layer."""

    input_shape: Shape
    layers: List[Layer]
    source: Optional[Path] = None
    notes: List[str] = field(default_factory=list)
    """What the file holds that NetX does not read (so neither Lava nor sj2lava acts on it)."""
    input_message_bits: int = 0
    """NetX's ``input_message_bits``: 0, the input is binary spikes; > 0, graded integer messages (a net
    built from a file's later layers, like NetX's ``skip_layers``)."""

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].out_shape if self.layers else self.input_shape

    @property
    def graded_input(self) -> bool:
        """Does the net take graded values (SDNN input neurons or ``input_message_bits``) rather than spikes?"""
        first = self.layers[0] if self.layers else None
        return self.input_message_bits > 0 or (isinstance(first, InputNeurons) and first.neuron.graded)

    @property
    def synaptic_layers(self) -> int:
        """Layers with a synapse, each adding one step of delay in Lava."""
        return sum(1 for l in self.layers if not isinstance(l, Flatten))

    @property
    def latencies(self) -> List[int]:
        """Per layer with neurons (flatten layers left out, as in recordings): the steps Lava's timing puts it behind
        the input, one per synaptic layer up to and including it (input neurons, which have no synapse: 0). The
        last is the output's latency L: a run of ``T`` input steps shows the output of those steps in ``L .. L + T``
        (axonal delays come on top, per neuron)."""
        out, d = [], 0
        for l in self.layers:
            if isinstance(l, Flatten):
                continue
            d += 0 if isinstance(l, InputNeurons) else 1
            out.append(d)
        return out

    @property
    def latency(self) -> int:
        """The output's latency ``L`` (the last of :attr:`latencies`; 0 for a net with no layers)."""
        lat = self.latencies
        return lat[-1] if lat else 0

    @property
    def neurons(self) -> int:
        return sum(neurons_of(l) for l in self.layers)

    @property
    def synapses(self) -> int:
        return sum(l.synapses for l in self.layers)

    def table(self) -> str:
        """A readable table of the layers and totals (what ``sj2lava inspect`` prints)."""
        head = ("#", "type", "shape", "kernel", "stride", "pad", "grp", "neuron", "bias", "weights",
                "neurons", "synapses")
        rows = [("in", "input", _shape(self.input_shape), "", "", "", "", "", "", "", "", "")]
        if self.input_message_bits:
            rows[0] = rows[0][:7] + (f"graded in, mb={self.input_message_bits}",) + rows[0][8:]
        for i, l in enumerate(self.layers):
            if isinstance(l, Flatten):
                rows.append((str(i), "flatten", _shape(l.out_shape), "", "", "", "", "", "", "", "", ""))
                continue
            kern = stride = pad = grp = ""
            if isinstance(l, Conv):
                kern = "x".join(map(str, l.weight.shape[2:]))
                stride, pad, grp = "x".join(map(str, l.stride)), "x".join(map(str, l.padding)), str(l.groups)
            if isinstance(l, InputNeurons):
                note = "" if l.transform is None else f"transform w={l.transform[0]} b={l.transform[1]}"
                rows.append((str(i), "input+neuron", _shape(l.out_shape), "", "", "", "", l.neuron.describe(), "",
                             note, f"{neurons_of(l):,}", "0"))
                continue
            bias = "" if l.bias is None else f"{int(np.min(l.bias))}..{int(np.max(l.bias))}"
            wr = f"{int(l.weight.min())}..{int(l.weight.max())}"
            kind = "dense_rec" if isinstance(l, Dense) and l.weight_rec is not None else l.kind
            if isinstance(l, Dense) and l.weight_imag is not None:
                kind = "dense complex"
                wr += f" / {int(l.weight_imag.min())}..{int(l.weight_imag.max())}"
            if isinstance(l, Dense) and l.delay is not None:
                kind += f" delay {int(l.delay.min())}..{int(l.delay.max())}"
            rows.append((str(i), kind, _shape(l.out_shape), kern, stride, pad, grp, l.neuron.describe(),
                         bias, wr, f"{neurons_of(l):,}", f"{l.synapses:,}"))
        rows.append(("", "total", "", "", "", "", "", "", "", "", f"{self.neurons:,}", f"{self.synapses:,}"))
        widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head))]
        line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
        return "\n".join([line(head), line(tuple("-" * w for w in widths))] + [line(r) for r in rows]
                         + [f"note: {n}" for n in self.notes])


def _shape(s: Shape) -> str:
    return "x".join(map(str, s))
