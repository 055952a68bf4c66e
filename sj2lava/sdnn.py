"""ReLU networks (ANNs) as sigma-delta (SDNN) ``.net`` files, the way lava-dl deploys PilotNet.

A sigma-delta layer sends the change of its activation when it passes a threshold; the next layer's
``sigma`` sums those messages back into (nearly) the activation. For a static input the net settles, one
layer per step, on the ANN's output up to quantization and the thresholds. NetX's fixed-point units
(``spike_exp = 6``): an activation unit is one integer of ``a_in`` at the input, biases and thresholds
(``bias``, ``vThMant``) are whole activation units, messages are in 1/64 of one, ``sigma`` in 1/4096, and
weights on the 8-bit grid ``w_mant / 64`` (:func:`sj2lava.quant.quantize_weight`), exactly as a CUBA layer's.

ReLU is positively homogeneous, so each layer may be scaled by its own ``c > 0``: layer ``l`` computes
``S_l`` times the ANN's activation, with ``S_0`` the input scale (``a_in = round(S_0 x)``) and
``S_l = S_{l-1} c_l``; its weights are ``c_l W_l`` on the grid and its bias ``round(S_l b_l)``. ``c_l`` fills
the weight grid unless the layer's sums would then pass ``2^31`` (Lava's int32 arithmetic) on the example data.
The last synapse (no ReLU after it) becomes NetX's Sigma output; its bias, which a Sigma layer cannot hold,
is added on the host::

    y = sigma_L / (4096 S_L) + b_L
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union, cast

import numpy as np
import torch
from torch import nn

from . import quant
from .errors import UnsupportedLayerError
from .netx.spec import Conv, Dense, Flatten, InputNeurons, Layer, NetSpec, SigmaDelta, conv_out_shape
from .netx.weights import lava_dense_weights, netx_weight_bits
from .pool import pair

__all__ = ["SdnnNet", "SdnnReport", "to_sdnn", "register_sdnn_reader"]

_HEADROOM = float(1 << 30)  # largest message x largest row of weights: half of int32's range
_CONV_HEADROOM = float(1 << 22)  # largest conv sum on the example data: half of Lava Conv's 24-bit range


@dataclass
class SdnnNet:
    """A ReLU network as a NetX SDNN: the :class:`~sj2lava.netx.spec.NetSpec` and how to feed and read it.

    ``a_in = round(input_scale * x)`` (:meth:`encode`), ``y = sigma / output_scale + output_bias``
    (:meth:`decode`); ``scales`` are the per-layer ``S_l`` and ``notes`` say what was chosen and why.
    """

    spec: NetSpec
    input_scale: float
    output_scale: float
    output_bias: Optional[np.ndarray]
    scales: List[float]
    notes: List[str] = field(default_factory=list)
    reference: Optional[Callable[[nn.Module, torch.Tensor, int], torch.Tensor]] = None
    """``(model, x, steps) -> [steps, N, *out]``: what the source model outputs at each step, aligned with Lava's
    steps (default: the ANN's ``model(x)`` at every step)."""

    def encode(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """Static input ``x`` ``[N, *shape]`` as the Delta input layer's integers ``[steps, N, *shape]``."""
        a = torch.round(x.detach().double() * self.input_scale)
        top = (1 << (31 - 12)) - 1  # a_in << 12 must stay an int32
        if float(a.abs().max()) > top:
            raise ValueError(f"SdnnNet.encode: x * {self.input_scale:g} reaches {float(a.abs().max()):g}, beyond "
                             f"the Delta layer's {top}; convert with a smaller input_scale")
        return a.to(torch.int32).unsqueeze(0).expand(steps, *a.shape).contiguous()

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """The Sigma output (``emulate``/``run_lava`` output, ``[T, N, *]`` int32) as the ANN's output, float."""
        y = out.double() / self.output_scale
        if self.output_bias is not None:
            y = y + torch.as_tensor(self.output_bias, dtype=torch.float64).reshape(-1, *([1] * (y.dim() - 3)))
        return y

    def export(self, path: Union[str, Path]) -> Path:
        """Write the ``.net`` file (atomically)."""
        from .netx.hdf5 import write

        return write(self.spec, path)

    def verify(self, model: nn.Module, x: torch.Tensor, steps: int, path: Optional[Union[str, Path]] = None,
               lava_samples: int = 1) -> SdnnReport:
        """The float ANN against the SDNN on static input ``x`` ``[N, *shape]`` over ``steps`` steps: the
        emulator's decoded output at every step, its error against ``model(x)``, the messages sent, and (with the
        exported ``path``) Lava on the first ``lava_samples`` samples against the emulator, message for message."""
        from .emulator import emulate
        from .netx.lava import run_lava

        with torch.no_grad():  # the source model's output at each step (an ANN's is the same at every step)
            if self.reference is not None:
                ref = self.reference(model, x, steps)
            else:
                ref = model(x).double()
                ref = ref.unsqueeze(0).expand(steps, *ref.shape)
        a_in = self.encode(x, steps)
        rec = cast(dict, emulate(self.spec, a_in, record=("layer_spikes",)))
        y = self.decode(rec["spikes"])
        err = (y - ref.double()).abs().reshape(steps, -1).max(1).values
        messages = [int((s != 0).sum()) for s in rec["layer_spikes"][:-1]]
        lava = None
        if path is not None and lava_samples > 0:
            m = min(lava_samples, x.shape[0])
            out = cast(List[torch.Tensor], run_lava(path, a_in[:, :m], all_layers=True))
            lava = sum(int((a.long() != b[:, :m].long()).sum()) for a, b in zip(out, rec["layer_spikes"]))
        return SdnnReport([float(e) for e in err], float(ref.abs().max()), messages, lava,
                          None if lava is None else min(lava_samples, x.shape[0]), list(self.notes))


@dataclass
class SdnnReport:
    """What :meth:`SdnnNet.verify` measured: per step the largest ``|y - ANN(x)|``, the ANN's largest ``|output|``,
    the non-zero messages each layer sent, and Lava's mismatches against the emulator (None: not run)."""

    error: List[float]
    scale: float
    messages: List[int]
    lava_mismatches: Optional[int]
    lava_samples: Optional[int]
    notes: List[str]

    def __str__(self) -> str:
        lines = [f"float ANN vs SDNN (emulator), largest |error| per step (ANN outputs up to {self.scale:.4g}):",
                 "  " + " ".join(f"{e:.3g}" for e in self.error),
                 f"  last step: {self.error[-1]:.4g} ({self.error[-1] / max(self.scale, 1e-30):.2%} of the largest "
                 "output)",
                 f"  messages sent per layer: {', '.join(f'{m:,}' for m in self.messages)}"]
        if self.lava_mismatches is not None:
            lines.append(f"  Lava vs emulator ({self.lava_samples} samples, every layer): {self.lava_mismatches} "
                         "mismatches")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _layers(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """The model's modules as a chain: (Conv2d | Linear) [ReLU], Flatten; anything else refused by name."""
    out: List[Tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        if list(m.children()):
            if not isinstance(m, nn.Sequential):
                raise UnsupportedLayerError(f"to_sdnn: {name or type(m).__name__} ({type(m).__name__}) is not an "
                                            "nn.Sequential; pass the ANN as an nn.Sequential of Conv2d/Linear, ReLU "
                                            "and Flatten")
            continue
        if isinstance(m, (nn.Dropout, nn.Identity)):
            continue
        if not isinstance(m, (nn.Conv2d, nn.Linear, nn.ReLU, nn.Flatten)):
            raise UnsupportedLayerError(f"to_sdnn: {name} ({type(m).__name__}) has no sigma-delta form; NetX's SDNN "
                                        "layers are Conv2d/Linear + ReLU (fold BatchNorm into the weights first)")
        out.append((name, m))
    return out


_READERS: List[Tuple[Callable[[nn.Module], bool], Callable[[nn.Module, torch.Tensor], SdnnNet]]] = []


def register_sdnn_reader(recognises: Callable[[nn.Module], bool],
                         read: Callable[[nn.Module, torch.Tensor], SdnnNet]) -> None:
    """A front-end's sigma-delta model type (lava-dl's ``slayer.block.sigma_delta``) that :func:`to_sdnn` takes
    as it is: ``read(model, example_input) -> SdnnNet``."""
    _READERS.append((recognises, read))


def to_sdnn(model: nn.Module, example_input: torch.Tensor, *, threshold: float = 0.0,
            input_scale: float = 64.0) -> SdnnNet:
    """A ReLU ANN (``nn.Sequential`` of ``Conv2d`` / ``Linear`` each followed by ``ReLU``, ``Flatten`` between, the
    last synapse without ReLU) as a NetX SDNN with per-layer scales (module docstring).

    Args:
        model: the float ANN (evaluation mode; not modified), or a lava-dl ``slayer.block.sigma_delta`` model
            (written with lava-dl's own ``export_hdf5``: its thresholds and quantization are kept).
        example_input: ``[N, *shape]`` samples of the input; they size the per-layer headroom.
        threshold: each layer's delta threshold in the ANN's own activation units (0: every change is sent, the
            most exact and the most messages); rounded to whole units of each layer's scale.
        input_scale: ``S_0``: the input is sent as ``round(input_scale * x)`` integers.

    Returns:
        :class:`SdnnNet` (``.spec``, ``.export(path)``, ``.encode(x, steps)``, ``.decode(out)``, ``.notes``).
    """
    read = next((read for recognises, read in _READERS if recognises(model)), None)
    if read is not None:  # a model that is already a sigma-delta net (its own thresholds and quantization)
        return read(model, example_input)
    chain = _layers(model)
    synapses = [i for i, (_, m) in enumerate(chain) if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not synapses:
        raise UnsupportedLayerError("to_sdnn: the model has no Conv2d/Linear layer")
    for i in synapses[:-1]:
        if i + 1 >= len(chain) or not isinstance(chain[i + 1][1], nn.ReLU):
            raise UnsupportedLayerError(f"to_sdnn: {chain[i][0]} is not followed by a ReLU; an SDNN hidden layer is "
                                        "Conv2d/Linear + ReLU")
    last = synapses[-1]
    if any(isinstance(m, nn.ReLU) for _, m in chain[last + 1:]):
        raise UnsupportedLayerError(f"to_sdnn: a ReLU after the last synapse {chain[last][0]}; NetX's Sigma output "
                                    "sends the sum itself (drop the ReLU, or add a final Linear)")
    caps: dict = {}  # chain index -> the largest scale that layer may take (from a later layer's headroom)
    for _ in range(8):
        built = _build(chain, last, example_input, threshold, input_scale, caps)
        if built["fix"] is None:
            break
        k, factor = built["fix"]  # the layer before an overfull dense layer sends too large messages
        if k < 0:
            input_scale /= factor
        else:
            caps[k] = built["c"][k] / factor
    else:
        raise UnsupportedLayerError("to_sdnn: no per-layer scales keep Lava's int32 dense sums on the example data; "
                                    "lower input_scale")
    notes = built["notes"]
    notes.insert(0, f"to_sdnn: per-layer activation scales {', '.join(f'{s:.4g}' for s in built['scales'])} (input "
                    f"first); thresholds {threshold:g} in the ANN's units")
    return SdnnNet(NetSpec(tuple(example_input.shape[1:]), built["layers"]), float(input_scale),
                   built["scales"][-1] * quant.S_SCALE, built["output_bias"], built["scales"], notes)


def _build(chain, last: int, example_input: torch.Tensor, threshold: float, input_scale: float, caps: dict) -> dict:
    """One pass of :func:`to_sdnn`: the layers with per-layer scales capped by ``caps``, and ``fix``: None, or
    ``(chain index of the synapse before an overfull dense layer, or -1 for the input; factor to divide by)``."""
    notes: List[str] = []
    shape = tuple(int(v) for v in example_input.shape[1:])
    th_in = int(round(threshold * input_scale))
    layers: List[Layer] = [InputNeurons(shape, shape, SigmaDelta(th_in, role="delta", activation=None))]
    scale, scales, chosen = float(input_scale), [float(input_scale)], {}
    h = example_input.detach().double()
    output_bias, previous = None, -1
    for k, (name, m) in enumerate(chain):
        if isinstance(m, nn.ReLU):
            h = torch.relu(h)
            continue
        if isinstance(m, nn.Flatten):
            layers.append(Flatten(tuple(shape), (int(np.prod(shape)),)))
            shape = layers[-1].out_shape
            h = h.reshape(h.shape[0], -1)
            continue
        message = scale * max(float(h.abs().max()), 1e-12) * quant.W_SCALE  # the largest message into this layer
        c = chosen[k] = _layer_scale(m, name, h, scale, message, caps.get(k, float("inf")), notes)
        w_mant = quant.weight_mant(torch.as_tensor(m.weight.detach().double() * c, dtype=torch.float32)).numpy()
        w_mant = w_mant.astype(np.int64)
        if not w_mant.any():
            raise UnsupportedLayerError(f"to_sdnn: {name}: every weight rounds to 0 (the sums' headroom leaves a "
                                        f"scale of {c:.3g}); lower input_scale")
        if isinstance(m, nn.Linear):
            # Lava's Dense sums with NetX's bit-optimised weights (w << sb, shifted back after the sum), whatever
            # the scale: only smaller messages, from the layer before, keep those sums in int32
            over = message * float(np.abs(lava_dense_weights(*netx_weight_bits(w_mant)[:2])).sum(1).max()) / _HEADROOM
            if over > 1:
                return dict(fix=(previous, over * 1.01), c=chosen)
        scale *= c
        bias_int = None
        if m.bias is not None and bool((m.bias != 0).any()):
            if k == last:
                output_bias = m.bias.detach().double().numpy()
                notes.append(f"to_sdnn: {name}: the output layer's bias is added on the host (NetX's Sigma output "
                             "holds none): y = sigma / output_scale + bias")
            else:
                bias_int = np.rint(m.bias.detach().double().numpy() * scale).astype(np.int64)
        neuron = SigmaDelta(0, role="sigma", activation=None) if k == last else \
            SigmaDelta(int(round(threshold * scale)), role="sigma_delta", activation="relu")
        layers.append(_sdnn_layer(m, name, shape, w_mant, neuron, bias_int))
        shape = layers[-1].out_shape
        scales.append(scale)
        h = _apply(m, h)
        previous = k
    return dict(fix=None, c=chosen, layers=layers, scales=scales, output_bias=output_bias, notes=notes)


def _layer_scale(m: nn.Module, name: str, h: torch.Tensor, scale: float, message: float, cap: float,
                 notes: List[str]) -> float:
    """The factor on the layer's weights: the 8-bit grid's, unless the int32 sums (or a conv's 24-bit sums) on the
    example data ``h`` need a smaller one, or ``cap`` (from a later layer's headroom) is smaller."""
    w = m.weight.detach().double()
    top_w = float(w.abs().max())
    if top_w == 0:
        raise UnsupportedLayerError(f"to_sdnn: {name} has all-zero weights")
    grid = (quant.W_MANT_MAX / quant.W_SCALE) / top_w
    # the largest message into this layer (64 per unit) times its largest row of weight mantissas (64 c per
    # unit) must stay below 2^31, where Lava's int32 sums would wrap (the emulator refuses such a step)
    rows = float(w.reshape(w.shape[0], -1).abs().sum(1).max()) * quant.W_SCALE
    room = _HEADROOM / (message * rows)
    if isinstance(m, nn.Conv2d):  # Lava's Conv wraps its sum at 24 bits: the sums themselves stay below 2^22
        sums = float(_apply(m, h, bias=False).abs().max()) * scale * quant.W_SCALE * quant.W_SCALE
        room = min(room, _CONV_HEADROOM / max(sums, 1e-12))
    c = min(grid, room, cap)
    if c < grid:
        notes.append(f"to_sdnn: {name}: weights scaled by {c:.4g}, not {grid:.4g} (the 8-bit grid), so that its "
                     "graded sums (or the next layer's) on the example data keep their headroom (Lava's sums are "
                     "int32, its Conv's 24-bit)")
    return c


def _sdnn_layer(m: nn.Module, name: str, shape: Tuple[int, ...], w_mant: np.ndarray, neuron: SigmaDelta,
                bias_int: Optional[np.ndarray]) -> Layer:
    if isinstance(m, nn.Conv2d):
        if isinstance(m.padding, str) or m.padding_mode != "zeros":
            raise UnsupportedLayerError(f"to_sdnn: {name}: string padding or a padding mode; use integer zero "
                                        "padding")
        out = conv_out_shape(shape, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation)
        return Conv(tuple(shape), out, w_mant, pair(m.stride), pair(m.padding), pair(m.dilation), int(m.groups),
                    neuron, bias_int)
    if len(shape) != 1:
        raise UnsupportedLayerError(f"to_sdnn: {name} (Linear) after a {shape} map; put nn.Flatten before it")
    return Dense(tuple(shape), (m.out_features,), w_mant, neuron, bias_int)


def _apply(m: nn.Module, h: torch.Tensor, bias: bool = True) -> torch.Tensor:
    """The float layer (weights, and bias unless ``bias=False``) on ``h`` in float64."""
    w = m.weight.detach().double()
    b = None if m.bias is None or not bias else m.bias.detach().double()
    if isinstance(m, nn.Linear):
        return torch.nn.functional.linear(h, w, b)
    return torch.nn.functional.conv2d(h, w, b, m.stride, m.padding, m.dilation, m.groups)
