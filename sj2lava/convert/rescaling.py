"""Rescaling: one positive factor per layer on its weights, bias and threshold, so that its weights fill
Loihi's 8-bit grid while its threshold, bias and wrapping registers keep within their bits. Zero-reset
CUBA spikes do not change under a common scale (``u`` and ``v`` scale with it)."""
from __future__ import annotations

from typing import Any, Dict, List, cast

import torch
from torch import nn

from .. import quant
from ..block import BlockContainer
from ..pool import SumPool2d
from ..synapses import rule_for

__all__ = ["rescale", "rescale_block", "effective_weight"]

_W_MAX = quant.W_MANT_MAX / quant.W_SCALE  # the largest 8-bit weight, 254/64
_TH_MAX = quant.V_TH_MANT_MAX / quant.W_SCALE
_B_MAX = quant.BIAS_MANT_MAX / quant.W_SCALE


def _on_grid(x: torch.Tensor, step: float) -> bool:
    return bool(torch.all(torch.round(x / step) * step == x))


def rescale_block(b: BlockContainer, where: str, notes: List[str]) -> None:
    """Scale the block's weights, bias and threshold by one factor ``a > 0`` (``input_scale *= a``,
    ``v_threshold *= a``) so that its largest weight is 254/64; a zero-reset CUBA neuron's spikes do not change,
    as ``u`` and ``v`` scale with it. ``a`` also keeps the threshold within 17 bits, the bias within 13 and the
    registers that wrap (the synaptic sum and the worst-case ``u``, :func:`sj2lava.quant.state_bounds`) within 24
    bits; ``v`` saturates and bounds nothing. A layer already on Loihi's grid (weights in 2/64, bias and threshold
    in 1/64: a graph ``to_nir`` wrote) is kept."""
    neu = b.neuron
    assert neu is not None, f"{where}: rescale_block takes a spiking layer"
    rule = rule_for(b.synapse, where)
    with torch.no_grad():
        w = effective_weight(b)
        top = float(w.abs().max()) if w.numel() else 0.0
        if top == 0.0:
            return
        bias = rule.bias(b.synapse, b.input_scale)
        rows = float(w.reshape(w.shape[0], -1).abs().sum(1).max())
        b_max = 0.0 if bias is None else float(bias.abs().max())
    th = float(neu.v_threshold)
    if _on_grid(w, quant.WEIGHT_STEP) and (bias is None or _on_grid(bias, 1 / quant.W_SCALE)) and \
            th * quant.W_SCALE == int(th * quant.W_SCALE):
        return
    limits = _limits(top, th, b_max, rows, neu.i_decay)
    bound = min(limits, key=lambda k: limits[k])
    a = limits[bound]

    def excess(a: float) -> float:  # the worst bound of a wrapping register of the quantized layer, over 2^23 - 1
        q = quant.weight_mant(w * a).abs().reshape(w.shape[0], -1).sum(1).max()
        bounds = quant.state_bounds(float(q) * quant.W_SCALE, neu.i_decay)
        return max(v for v, _ in bounds) / quant.STATE_MAX

    for _ in range(8):  # rounding to the grid can push a bound just past 2^23: step back until it holds
        over = excess(a)
        if over <= 1.0:
            break
        a *= (1 - 1e-3) / over
    if abs(a - 1.0) < 2e-3:  # already fitted (the step-back above leaves a factor this close to 1 on a refit)
        return
    b.input_scale *= a
    neu.v_threshold = th * a
    notes.append(f"{where}: weights, bias and threshold scaled by {a:.6g} (largest |weight| {top:.4g} -> "
                 f"{top * a:.4g}, threshold {th:.4g} -> {th * a:.4g}; the factor is bounded by {bound}); zero-reset "
                 "CUBA spikes do not change with a common scale")


def _limits(top: float, th: float, b_max: float, rows: float, i_decay: int) -> Dict[str, float]:
    """The largest factor each bound allows: the weight grid (largest |weight| ``top``), the 17-bit threshold, the
    13-bit bias and the 24-bit registers that wrap (largest row sum of |weights| ``rows``)."""
    limits = {"the weight grid": _W_MAX / top}
    if th > 0:
        limits["the 17-bit threshold"] = _TH_MAX / th
    if b_max > 0:
        limits["the 13-bit bias"] = _B_MAX / b_max
    for bound, what in quant.state_bounds(rows * quant.S_SCALE, i_decay):
        if bound > 0:
            limits[f"{what} (24 bits)"] = quant.STATE_MAX / bound
    return limits


def rescale(model: nn.Module) -> List[str]:
    """Refit every spiking layer of ``model`` (a net of BlockContainers: converted, fine-tuned or hand-built) to
    Loihi's registers with :func:`rescale_block`: one positive factor per layer on weights, bias and threshold
    that fills the 8-bit weight grid while the threshold, bias, synaptic sum and current stay within their bits.
    Zero-reset CUBA spikes do not change with a common scale (exactly in float; on Loihi's grid up to rounding).
    Layers already on the grid are kept. Use it after :func:`sj2lava.finetune` when ``export`` refuses a layer.

    Returns the notes, one per layer changed (also added to ``model.conversion_notes``)."""
    notes: List[str] = []
    for i, b in enumerate(model if isinstance(model, (nn.Sequential, list, tuple)) else [model]):
        if isinstance(b, BlockContainer) and b.neuron is not None:
            rescale_block(b, f"block {i}", notes)
    if notes and isinstance(model, nn.Module):
        cast(Any, model).conversion_notes = list(getattr(model, "conversion_notes", [])) + notes
    return notes


def effective_weight(b: BlockContainer) -> torch.Tensor:
    """The block's float weights times its input scale, per output row (a pool: its one tap weight; a recurrent
    layer: its input and recurrent weights side by side)."""
    syn = b.synapse
    if isinstance(syn, SumPool2d):
        return torch.full((1, syn.kernel_size[0] * syn.kernel_size[1]), syn.weight * b.input_scale)
    w = syn.weight.detach()
    if b.recurrent is not None:
        w = torch.cat([w, b.recurrent.weight.detach()], 1)
    return w * b.input_scale
