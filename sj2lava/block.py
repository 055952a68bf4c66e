"""BlockContainer: one Loihi layer (quantized synapse + CUBA-LIF neuron) that trains in PyTorch.

For input spikes ``x`` the block computes, with Lava's one-step synaptic delay (``delay_shift``)::

    z[t] = W_q * x[t-1]      (z[0] = 0)          W_q = quantize_weight(W * input_scale)
    s[t] = CUBA-LIF(z, bias_q)[t]                see sj2lava.neuron

which is what the block's layer of a NetX ``.net`` file computes on Loihi or in Lava's
fixed-point simulation, spike for spike, bias included. ``delay_shift=False`` drops the delay
(``z[t] = W_q x[t]``, SpikingJelly's timing).

The bias of a ``Conv2d``/``Linear`` synapse becomes NetX's neuron bias: it is added to ``v`` every
step on the 1/64 grid. That equals a synaptic bias exactly when ``current_decay == 1`` (IF and
LIF neurons converted from SpikingJelly); with a slower current decay it is the neuron's bias.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from .errors import UnsupportedLayerError
from .neuron import CubaLIFNode, check_step_mode, to_cuba
from .translate import rule_for

__all__ = ["BlockContainer", "run_blocks"]


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

    Raises:
        UnsupportedLayerError: at construction, for any synapse or neuron with no exact Loihi form.
    """

    def __init__(self, synapse: nn.Module, neu: Optional[nn.Module], step_mode: str = "s",
                 delay_shift: bool = True):
        super().__init__()
        where = f"BlockContainer({type(synapse).__name__})"
        rule = rule_for(synapse, where)
        if rule.normalize is not None:
            synapse = rule.normalize(synapse, where)
        rule.check(synapse, where)
        self.kind = rule.kind
        self.synapse = synapse
        self.input_scale = 1.0
        if rule.kind == "flatten":
            if neu is not None:
                raise UnsupportedLayerError(
                    f"{where}: a Flatten block has no neuron in NetX; pass neu=None."
                )
            self.neuron: Optional[CubaLIFNode] = None
        else:
            if neu is None:
                raise UnsupportedLayerError(
                    f"{where}: a {rule.kind} synapse needs a neuron; pass e.g. "
                    "spikingjelly's neuron.IFNode() or sj2lava.CubaLIFNode(...)."
                )
            if not isinstance(neu, nn.Module):
                raise UnsupportedLayerError(
                    f"{where}: neu={neu!r} is not a neuron module. Pass a SpikingJelly IFNode/"
                    "LIFNode, an sj2lava.CubaLIFNode or a lava-dl cuba.Neuron."
                )
            node, self.input_scale = to_cuba(neu, with_input_scale=True,
                                             where=f"{where}.neuron ({type(neu).__name__})")
            self.neuron = node
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
        return self.neuron(z, bias=self.bias())

    def _delay(self, z: torch.Tensor) -> torch.Tensor:
        prev = self._z_prev
        if self.step_mode == "s":
            self._z_prev = z
            return torch.zeros_like(z) if prev is None else prev
        self._z_prev = z[-1]
        head = torch.zeros_like(z[:1]) if prev is None else prev.unsqueeze(0)
        return torch.cat((head, z[:-1]), 0)

    def to_lava_block(self) -> nn.Module:
        """The lava-dl ``slayer.block.cuba`` block (``Conv``, ``Dense``, ``Pool`` or ``Flatten``) with the
        same quantized weights, learned decays, floored threshold, bias and ``delay_shift``.

        lava-dl's blocks apply the delay to the block output rather than to the synaptic input; the
        two agree exactly without a bias, and with a bias differ on the first step (Lava follows the
        container). Needs lava-dl.
        """
        from .frontends.lavadl import lava_block

        return lava_block(self.synapse, self.neuron, self.delay_shift, self.input_scale,
                          where=f"BlockContainer({type(self.synapse).__name__})")

    def extra_repr(self) -> str:
        extra = f", input_scale={self.input_scale:g}" if self.input_scale != 1.0 else ""
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
