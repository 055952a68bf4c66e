"""BlockContainer: one Loihi layer (quantized synapse + CUBA-LIF neuron) that trains in PyTorch.

For input spikes ``x`` the block computes, with Lava's one-step synaptic delay (``delay_shift``)::

    z[t] = W_q * x[t-1]      (z[0] = 0)          W_q = quantize_weight(W * input_scale)
    s[t] = CUBA-LIF(z, bias_q)[t]                see sj2lava.neuron

which is what the block's layer of a NetX ``.net`` file computes on Loihi or in Lava's
fixed-point simulation, spike for spike, bias included. With a recurrent synapse ``R`` (NetX's
``dense_rec``) the layer also hears its own spikes of the step before::

    z[t] = W_q x[t-1] + R_q s[t-1]                       R_q = quantize_weight(R * input_scale)

``delay_shift=False`` drops the delay of the input (``z[t] = W_q x[t]``, SpikingJelly's timing). Axonal delays
``d`` (one per output neuron, Lava's ``DelayDense``) delay each neuron's input further: ``z_o[t] -> z_o[t - d_o]``.

The bias of a ``Conv2d``/``Linear`` synapse becomes NetX's neuron bias: it is added to ``v`` every
step on the 1/64 grid. That equals a synaptic bias exactly when ``current_decay == 1`` (IF and
LIF neurons converted from SpikingJelly); with a slower current decay it is the neuron's bias.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, List, Optional, Tuple, cast

import torch
from torch import nn

from . import quant
from .errors import UnsupportedLayerError
from .neuron import CubaLIFNode, check_step_mode, to_cuba
from .pool import SumPool2d
from .synapses import rule_for, scaled

__all__ = ["BlockContainer", "InputBlock", "run_blocks"]


class BlockContainer(nn.Module):
    """A synapse and its CUBA-LIF neuron, quantization-aware, equal to lava-dl's ``slayer.block.cuba``.

    Args:
        synapse: ``nn.Conv2d`` / SpikingJelly ``layer.Conv2d`` (any stride, padding, dilation,
            groups, with or without bias), ``nn.Linear`` / ``layer.Linear``, :class:`sj2lava.SumPool2d`,
            ``nn.AvgPool2d`` (becomes a sum-pool, with a warning) or ``nn.Flatten`` (with ``neu=None``).
        neu: any neuron :func:`sj2lava.to_cuba` accepts; a ``LIFNode(decay_input=True)`` has its
            ``1/tau`` folded into the synapse weights (and bias).
        step_mode: ``'s'`` (input ``[N, *]`` per call) or ``'m'`` (input ``[T, N, *]``).
        delay_shift: model Lava's one-step synaptic delay (default; needed for the ``.net`` to
            equal the container).
        recurrent: an ``nn.Linear(n, n, bias=False)`` from the layer's ``n`` outputs back to them, for a dense
            ``synapse`` (exported as NetX ``dense_rec``; equal to lava-dl's ``slayer.block.cuba.Recurrent``).
        delay: axonal delays of a dense layer, one integer in 0..62 per output neuron (steps; exported as NetX's
            ``delay``). Delaying a neuron's input by ``d`` delays its spikes by ``d`` (with no bias: a bias acts
            from the first step), so this equals lava-dl's ``delay=True`` blocks, whose delay is on the output.

    Raises:
        UnsupportedLayerError: at construction, for any synapse or neuron with no exact Loihi form.
    """

    def __init__(self, synapse: nn.Module, neu: Optional[nn.Module], step_mode: str = "s",
                 delay_shift: bool = True, recurrent: Optional[nn.Linear] = None,
                 delay: Optional[torch.Tensor] = None):
        super().__init__()
        where = f"BlockContainer({type(synapse).__name__})"
        rule = rule_for(synapse, where)
        if rule.normalize is not None:
            synapse = rule.normalize(synapse, where)
        rule.check(synapse, where)
        self.kind = rule.kind
        self.synapse = synapse
        self.input_scale = 1.0
        self.neuron: Optional[CubaLIFNode] = None
        if rule.kind == "flatten":
            if neu is not None:
                raise UnsupportedLayerError(f"{where}: a Flatten block has no neuron in NetX; pass neu=None.")
        else:
            self.neuron, self.input_scale = _block_neuron(neu, rule.kind, where)
        _check_recurrent(recurrent, synapse, rule.kind, where)
        self.recurrent = recurrent
        if delay is None:
            self.axon_delay: Optional[torch.Tensor] = None
        else:
            self.register_buffer("axon_delay", _axon_delays(delay, synapse, rule.kind, recurrent, where))
        self.delay_shift = bool(delay_shift)
        self.step_mode = step_mode
        self.input_shape: Optional[tuple] = None
        self.reset()

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        self._step_mode = check_step_mode(value)
        if self.neuron is not None:
            self.neuron.step_mode = value

    def reset(self) -> None:
        """Forget the neuron state and the synaptic delay line."""
        self._z_prev: Optional[torch.Tensor] = None
        self._s_prev: Optional[torch.Tensor] = None  # a recurrent layer's spikes of the step before
        self._z_hist: List[torch.Tensor] = []  # the last inputs, for axonal delays in single-step mode
        if self.neuron is not None:
            self.neuron.reset()

    def synaptic_input(self, x: torch.Tensor) -> torch.Tensor:
        """``W_q x`` per step, no delay, no bias (``[N, *]`` or ``[T, N, *]`` by step mode)."""
        rule = rule_for(self.synapse, "BlockContainer")
        if self.step_mode == "s":
            return rule.forward(self.synapse, x, self.input_scale)
        z = rule.forward(self.synapse, x.flatten(0, 1), self.input_scale)
        return z.reshape(x.shape[0], x.shape[1], *z.shape[1:])

    def bias(self) -> Optional[torch.Tensor]:
        """Float bias added to ``v`` per step (before 1/64 quantization), shaped to broadcast."""
        rule = rule_for(self.synapse, "BlockContainer")
        b = rule.bias(self.synapse, self.input_scale)
        if b is None or self.kind != "conv":
            return b
        return b.view(-1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # per-sample input shape, so export() needs no input_shape for a model that has run
        self.input_shape = tuple(x.shape[2:] if self.step_mode == "m" else x.shape[1:])
        z = self.synaptic_input(x)
        if self.neuron is None:
            return z
        if self.delay_shift:
            z = self._delay(z)
        if self.axon_delay is not None:
            z = self._axon_delay(z, self.axon_delay)
        if self.recurrent is None:
            return self.neuron(z, bias=self.bias())
        return self._recurrent_steps(z)

    def _axon_delay(self, z: torch.Tensor, delay: torch.Tensor) -> torch.Tensor:
        """``z_o[t - d_o]`` per output neuron ``o`` (zero before the first step)."""
        d = delay.to(z.device)
        top = int(d.max())
        if self.step_mode == "s":
            self._z_hist = (self._z_hist + [z])[-(top + 1):]
            past = torch.stack([torch.zeros_like(z)] * (top + 1 - len(self._z_hist)) + self._z_hist)  # [D+1, N, n]
            return past.gather(0, (top - d).view(1, 1, -1).expand(1, *z.shape))[0]
        steps = z.shape[0]
        padded = torch.cat((torch.zeros((top, *z.shape[1:]), dtype=z.dtype, device=z.device), z), 0)
        idx = (torch.arange(steps, device=z.device).view(-1, 1) + top - d.view(1, -1))  # [T, n]
        return padded.gather(0, idx.view(steps, 1, -1).expand(steps, z.shape[1], -1))

    def recurrent_input(self, s: torch.Tensor) -> torch.Tensor:
        """``R_q s``: the recurrent synapse's sum for spikes ``s`` ``[N, n]`` (float units, as ``synaptic_input``)."""
        assert self.recurrent is not None, "recurrent_input: the block has no recurrent synapse"
        return torch.nn.functional.linear(s, quant.quantize_weight(scaled(self.recurrent.weight, self.input_scale)))

    def _recurrent_steps(self, z: torch.Tensor) -> torch.Tensor:
        """The neuron step by step, each step's input ``z[t] + R_q s[t-1]`` (its state kept across calls)."""
        neu = self.neuron
        assert neu is not None  # a recurrent block is a dense layer, with neurons
        bias, saved = self.bias(), neu.step_mode
        steps = [z] if self.step_mode == "s" else list(z.unbind(0))
        out = []
        neu.step_mode = "s"
        try:
            for z_t in steps:
                if self._s_prev is not None:
                    z_t = z_t + self.recurrent_input(self._s_prev)
                s = neu(z_t, bias=bias)
                self._s_prev = s
                out.append(s)
        finally:
            neu.step_mode = saved
        return out[0] if self.step_mode == "s" else torch.stack(out)

    def _delay(self, z: torch.Tensor) -> torch.Tensor:
        prev = self._z_prev
        if self.step_mode == "s":
            self._z_prev = z
            return torch.zeros_like(z) if prev is None else prev
        self._z_prev = z[-1]
        head = torch.zeros_like(z[:1]) if prev is None else prev.unsqueeze(0)
        return torch.cat((head, z[:-1]), 0)

    def to_lava_block(self, delay_shift: Optional[bool] = None) -> nn.Module:
        """The lava-dl ``slayer.block.cuba`` block (``Conv``, ``Dense``, ``Pool`` or ``Flatten``) with the
        same quantized weights, learned decays, floored threshold, bias and ``delay_shift`` (or the one given).

        lava-dl's blocks apply the delay to the block output rather than to the synaptic input; the
        two agree exactly without a bias, and with a bias differ on the first step (Lava follows the
        container). Needs lava-dl; the lava-dl front-end provides the maker (:func:`register_lava_block`).
        """
        if _LAVA_BLOCK is None:
            raise RuntimeError("to_lava_block: no lava-dl block maker is registered; import sj2lava (its lava-dl "
                               "front-end registers one)")
        return _LAVA_BLOCK(self.synapse, self.neuron, self.delay_shift if delay_shift is None else delay_shift,
                           self.input_scale, where=f"BlockContainer({type(self.synapse).__name__})")

    def extra_repr(self) -> str:
        extra = f", input_scale={self.input_scale:g}" if self.input_scale != 1.0 else ""
        extra += ", recurrent" if self.recurrent is not None else ""
        if self.axon_delay is not None:
            extra += f", delay={int(self.axon_delay.min())}..{int(self.axon_delay.max())}"
        return f"delay_shift={self.delay_shift}, step_mode={self.step_mode!r}{extra}"


def run_blocks(blocks, x: torch.Tensor) -> List[torch.Tensor]:
    """Each block's spikes for input ``x`` ``[T, N, *]``, without gradients: the blocks run in multi-step
    mode from zero state, and their step modes and states are restored (reset) afterwards.

    Returns the outputs of the blocks that have a neuron (flatten blocks are passed through)."""
    outs, h = [], x
    with torch.no_grad():
        for b in blocks:
            saved = b.step_mode
            b.reset()
            b.step_mode = "m"
            try:
                h = b(h)
            finally:
                b.step_mode = saved
                b.reset()
            if b.neuron is not None:
                outs.append(h)
    return outs


def _block_neuron(neu: Optional[nn.Module], kind: str, where: str) -> Tuple[CubaLIFNode, float]:
    """The block's neuron as a CubaLIFNode and its input scale, or a refusal naming the block."""
    if neu is None:
        raise UnsupportedLayerError(f"{where}: a {kind} synapse needs a neuron; pass e.g. spikingjelly's "
                                    "neuron.IFNode() or sj2lava.CubaLIFNode(...).")
    if not isinstance(neu, nn.Module):
        raise UnsupportedLayerError(f"{where}: neu={neu!r} is not a neuron module. Pass a SpikingJelly IFNode/"
                                    "LIFNode, an sj2lava.CubaLIFNode or a lava-dl cuba.Neuron.")
    return cast(Tuple[CubaLIFNode, float],
                to_cuba(neu, with_input_scale=True, where=f"{where}.neuron ({type(neu).__name__})"))


def _check_recurrent(recurrent: Optional[nn.Module], synapse: nn.Module, kind: str, where: str) -> None:
    if recurrent is None:
        return
    n = getattr(synapse, "out_features", None)
    if kind != "dense" or not isinstance(recurrent, nn.Linear) or recurrent.bias is not None or \
            (recurrent.in_features, recurrent.out_features) != (n, n):
        raise UnsupportedLayerError(
            f"{where}: recurrent must be an nn.Linear({n}, {n}, bias=False) after a dense synapse (NetX's "
            "dense_rec); a recurrent conv or a recurrent bias has no NetX layer")


def _axon_delays(delay: torch.Tensor, synapse: nn.Module, kind: str, recurrent: Optional[nn.Module],
                 where: str) -> torch.Tensor:
    """Per output neuron, whole steps in ``0..quant.MAX_DELAY`` (int64), on a dense synapse without recurrence."""
    d = torch.as_tensor(delay).detach()
    n = getattr(synapse, "out_features", None)
    if kind != "dense" or recurrent is not None or d.dim() != 1 or d.numel() != n or \
            d.is_floating_point() and not bool((d == d.round()).all()):
        raise UnsupportedLayerError(f"{where}: delay must be {n} integers (one per output neuron) on a dense "
                                    "synapse without recurrence (NetX reads delays on dense layers only)")
    if int(d.min()) < 0 or int(d.max()) > quant.MAX_DELAY:
        raise UnsupportedLayerError(f"{where}: delays {int(d.min())}..{int(d.max())} outside "
                                    f"0..{quant.MAX_DELAY}, the range Lava's DelayDense holds")
    return d.to(torch.int64)


_LAVA_BLOCK: Optional[Callable[..., nn.Module]] = None


def register_lava_block(maker: Callable[..., nn.Module]) -> None:
    """Set the maker behind :meth:`BlockContainer.to_lava_block`: ``(synapse, neuron, delay_shift, input_scale,
    where=...) -> lava-dl block``. The lava-dl front-end registers it, so this module never imports lava-dl."""
    global _LAVA_BLOCK
    _LAVA_BLOCK = maker


class InputBlock(nn.Module):
    """A first layer fed the analog input every step, deployed as input neurons driven by their bias (NetX's
    ``Input`` block with a bias image per sample, as lava-dl's PilotNet-LIF runs).

    The ``encoder`` (a ``Conv2d`` / ``Linear``, any float weights, BatchNorm folded in) runs on the host, once per
    sample: its output is a constant current, which Loihi adds to the neurons' voltage every step::

        b = bias_mant(input_scale * encoder(x)) / 64     per neuron and sample, 1/64 grid, 13 bits (|b| < 64)
        u[t] = 0;  v[t] = rs0(v[t-1] * (4096 - vDecay)) + b;  s[t] = v[t] > vTh;  v = 0 where s

    from the first step (input neurons have no synapse, so no synaptic delay). ``x`` must be the same at every
    step (a static image repeated T times); the file's input layer has the encoder's output shape, and
    :meth:`input_bias` gives ``emulate`` / ``run_lava`` their ``input_bias``.

    Args:
        encoder: the host-side synapse (``nn.Conv2d`` or ``nn.Linear``, with its bias), or an ``nn.Sequential`` of
            everything before the first neuron (Conv2d, Linear, BatchNorm, max-, average- and sum-pools, Flatten;
            at least one Conv2d or Linear): all of it runs on the host in float, so a max-pool there is exact.
        neu: any neuron :func:`sj2lava.to_cuba` accepts.
        step_mode: ``'m'`` (input ``[T, N, *]``) or ``'s'`` (``[N, *]`` per call).
    """

    kind = "input"

    def __init__(self, encoder: nn.Module, neu: nn.Module, step_mode: str = "m"):
        super().__init__()
        where = f"InputBlock({type(encoder).__name__})"
        parts = list(encoder) if isinstance(encoder, nn.Sequential) else [encoder]
        if not any(isinstance(p, (nn.Conv2d, nn.Linear)) for p in parts) or not all(
                isinstance(p, HOST_MODULES) for p in parts):
            raise UnsupportedLayerError(f"{where}: the host-side encoder must be an nn.Conv2d or nn.Linear, or an "
                                        "nn.Sequential of Conv2d, Linear, BatchNorm, max-, average- or sum-pools and "
                                        "Flatten with at least one Conv2d or Linear (everything before the first "
                                        "neuron)")
        self.encoder = _plain(encoder) if len(parts) == 1 and not isinstance(encoder, nn.Sequential) else \
            nn.Sequential(*[_plain(p) for p in parts]).eval()
        self.neuron, self.input_scale = _block_neuron(neu, "host", where)
        self.step_mode = step_mode
        self.input_shape: Optional[tuple] = None

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, value: str) -> None:  # the block's and its neuron's, set together
        self._step_mode = check_step_mode(value)
        self.neuron.step_mode = value

    def reset(self) -> None:
        self.neuron.reset()

    def current(self, x: torch.Tensor) -> torch.Tensor:
        """The quantized constant current ``b`` (float, 1/64 grid, 13 bits) for one step's input ``x`` ``[N, *]``."""
        z = self.encoder(x) * self.input_scale
        return quant.quantize_bias(z).clamp(quant.BIAS_MANT_MIN / quant.W_SCALE, quant.BIAS_MANT_MAX / quant.W_SCALE)

    def input_bias(self, x: torch.Tensor) -> torch.Tensor:
        """The neurons' ``bias_mant`` (int32, ``[N, *out]``) for analog input ``x`` ``[N, *in]`` or ``[T, N, *in]``
        (its first step): what ``emulate(path, input_bias=...)`` and ``run_lava`` take."""
        first = self.encoder[0] if isinstance(self.encoder, nn.Sequential) else self.encoder
        if self.input_shape is not None:  # set by convert, or by a forward
            per_sample = len(self.input_shape) + 1
        else:  # [N, F] or [N, C, H, W]; a leading flatten takes either
            per_sample = 2 if isinstance(first, (nn.Linear, nn.BatchNorm1d)) else 4
        with torch.no_grad():
            return quant.bias_mant(self.current(x[0] if x.dim() > per_sample else x)).to(torch.int32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.step_mode == "s":
            self.input_shape = tuple(x.shape[1:])
            b = self.current(x)
            return self.neuron(torch.zeros_like(b), bias=b)
        self.input_shape = tuple(x.shape[2:])
        if not torch.equal(x, x[:1].expand_as(x)):
            raise ValueError("InputBlock: the input differs between steps; a constant current (the input "
                             "neurons' bias) needs the same analog input at every step")
        b = self.current(x[0])
        return self.neuron(torch.zeros((x.shape[0], *b.shape), dtype=b.dtype, device=b.device), bias=b)

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}" + (f", input_scale={self.input_scale:g}" if self.input_scale != 1.0
                                                  else "")


HOST_MODULES = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, SumPool2d,
                 nn.Flatten)
"""What an InputBlock's encoder may hold: it runs on the host in float, so any of these is exact there."""


def _plain(m: nn.Module) -> nn.Module:
    """A subclass of a host module (SpikingJelly's multi-step ``layer.Conv2d``, ``layer.MaxPool2d``, ...) as the
    plain torch module with the same parameters, which takes one step ``[N, *]``."""
    if type(m) in HOST_MODULES:
        return m
    for base in (nn.MaxPool2d, nn.AvgPool2d, nn.Flatten):
        if isinstance(m, base):  # their settings are their constructor's arguments
            same = copy.copy(m)
            same.__class__ = base
            return same
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        bn_type: Any = nn.BatchNorm1d if isinstance(m, nn.BatchNorm1d) else nn.BatchNorm2d
        bn = bn_type(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
        bn.load_state_dict(m.state_dict())
        return bn.eval()
    if isinstance(m, nn.Linear):
        new: nn.Module = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    else:
        new = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                        bias=m.bias is not None, padding_mode=m.padding_mode)
    new.load_state_dict(m.state_dict())
    return new
