"""The emulator's torch backend: the integer step of :mod:`sj2lava.emulator` on torch tensors, CPU or GPU.

Synaptic sums run as float convolutions / matmuls on integer-valued kernels, float32 where every sum is
provably below 2^24 and float64 below 2^53, so each is exact when accumulated exactly; they are rounded
(not truncated) to integers, with TF32 off, before they touch the int32 state (:func:`run`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .. import quant
from .compiled import CompiledLayer

__all__ = ["prepare", "run"]


def _kernel_dtype(bound: float) -> torch.dtype:
    # float32 holds integers exactly below 2^24, float64 below 2^53; every |sum| <= bound
    return torch.float32 if bound < (1 << 24) else torch.float64


@dataclass
class _TorchLayer:
    layer: CompiledLayer
    weight: Optional[torch.Tensor] = None  # float kernel/matrix holding exact integers
    rec_weight: Optional[torch.Tensor] = None
    lif: Optional[Dict[str, torch.Tensor]] = None
    delays: Optional[List[Tuple[int, torch.Tensor]]] = None  # (delay k, the weights of the synapses with it)


def prepare(layers: List[CompiledLayer], device) -> List[_TorchLayer]:
    out = []
    for l in layers:
        if l.kind == "flatten":
            out.append(_TorchLayer(l))
            continue
        dt = _kernel_dtype(l.bound)
        as_t = lambda a, dtype=torch.int64: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        delays = None
        if l.delay is not None:
            delays = [(int(k), as_t(np.where(l.delay == k, l.weight, 0), dt)) for k in np.unique(l.delay)]
        out.append(_TorchLayer(
            l, delays=delays, weight=None if l.weight is None else as_t(l.weight, dt),
            rec_weight=None if l.rec_weight is None else as_t(l.rec_weight, dt),
            lif=dict(keep_u=as_t(l.lif.keep_u), keep_v=as_t(l.lif.keep_v), vth=as_t(l.lif.vth, torch.int32),
                     bias=None if l.lif.bias is None else as_t(l.lif.bias, torch.int32))))
    return out


def _int_sums(a: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # Round, never truncate: the exact sum is an integer, and a float kernel that does not accumulate
    # exactly (cuDNN's FFT/Winograd algorithms) may return k - eps, which truncation makes k - 1.
    return torch.round(a).to(dtype)


@contextlib.contextmanager
def _exact_float_sums():
    """TF32 off for the duration (cuDNN convolutions allow it by default on Ampere and Hopper, and it
    rounds operands to 10 mantissa bits); restored afterwards. No effect on the CPU."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    keep = matmul.allow_tf32
    matmul.allow_tf32 = False
    try:
        with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, benchmark_limit=cudnn.benchmark_limit,
                         deterministic=cudnn.deterministic, allow_tf32=False):
            yield
    finally:
        matmul.allow_tf32 = keep


def _synapse(tl: _TorchLayer, s: torch.Tensor) -> torch.Tensor:
    """This step's synaptic sums for input spikes ``s`` [B, *in] (bool or float) -> int32 [B, *out].

    The sums run as float convolutions / matmuls on integer-valued kernels (float32 below 2^24, else
    float64, so every partial sum is exact when accumulated exactly) inside :func:`_exact_float_sums`."""
    l = tl.layer
    if l.kind == "conv":
        a = _int_sums(F.conv2d(s.to(tl.weight.dtype), tl.weight, None, **l.conv), torch.int32)
        if l.may_wrap:  # Lava Conv: signed 24-bit wrap of the sum
            a = quant.conv_wrap(a)
        return a
    a = _int_sums(s.reshape(s.shape[0], -1).to(tl.weight.dtype) @ tl.weight.T, torch.int64)
    return _exp_shift(a, l.shift).to(torch.int32)


def _exp_shift(a: torch.Tensor, shift: int) -> torch.Tensor:
    # Lava Dense: a << weight_exp, or an arithmetic (flooring) right shift for a negative exponent
    return a >> shift if shift > 0 else (a << -shift if shift < 0 else a)


def _decay(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Lava's ``int32(sign(x * keep) * (|x * keep| >> 12))``, the product in int64."""
    return quant.rs0(x.to(torch.int64) * keep).to(torch.int32)


def _neuron_step(tl: _TorchLayer, a: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                 extra_bias: Optional[torch.Tensor] = None):
    """One LIF step on int32 state, as PyLifModelBitAcc computes it (int32 registers, int64 products).
    ``extra_bias`` (state units, per sample) is the input neurons' ``bias_mant << 6`` given at run time."""
    lif, p = tl.layer.lif, tl.lif
    x = a << 6
    if lif.u_leaks_fully:
        u = x
    elif lif.u_decays:
        u = _decay(u, p["keep_u"]).add_(x)
    else:
        u = u + x
    if lif.u_may_wrap:
        u = quant.lava_wrap(u).to(torch.int32)
    v = _decay(v, p["keep_v"]).add_(u) if lif.v_decays else v + u
    if p["bias"] is not None:
        v.add_(p["bias"])
    if extra_bias is not None:
        v.add_(extra_bias)
    v = quant.clip_state(v)
    s = v > p["vth"]
    return s, u, v.masked_fill_(s, 0)


def run(layers: List[_TorchLayer], x: torch.Tensor, record: Sequence[str],
        resets: Optional[Sequence[Tuple[int, int]]] = None,
        input_bias: Optional[torch.Tensor] = None) -> Dict[str, List]:
    """Time-major, as Lava steps: every layer advances one step before the next step starts. ``resets``
    per synaptic layer ``(interval, phase)``: its ``u`` and ``v`` are zeroed before step ``t`` when
    ``(t + 1) % interval == phase`` (NetX's LIFReset; Lava's steps count from 1). A net that starts with
    input neurons takes ``x`` as their ``a_in`` (integers, no synaptic delay) and ``input_bias``
    ``[B, *shape]`` as their ``bias_mant``."""
    extra = None if input_bias is None else (input_bias.to(device=x.device, dtype=torch.int32) << quant.BIAS_EXP)
    steps, batch = x.shape[0], x.shape[1]
    dev = x.device
    syn = [tl for tl in layers if tl.layer.kind != "flatten"]
    zeros = lambda tl, dt: torch.zeros((batch, *tl.layer.out_shape), dtype=dt, device=dev)  # noqa: E731
    state = [dict(a=zeros(tl, torch.int32), u=zeros(tl, torch.int32), v=zeros(tl, torch.int32),
                  s=zeros(tl, torch.bool)) for tl in syn]
    for st, tl in zip(state, syn):
        if tl.delays is not None:  # Lava DelayDense's a_buff: column j reaches the neurons j steps from now
            st["ring"] = torch.zeros((batch, max(k for k, _ in tl.delays) + 1, *tl.layer.out_shape),
                                     dtype=torch.int32, device=dev)
    every_layer = any(k in record for k in ("layer_spikes", "voltage", "current"))
    keys = ["spikes"] + [k for k in ("voltage", "current") if k in record]
    rec = {k: [torch.empty((steps, batch, *tl.layer.out_shape),
                           dtype=torch.bool if k == "spikes" else torch.int32, device=dev)
               if (every_layer or j == len(syn) - 1) else None
               for j, tl in enumerate(syn)] for k in keys}
    with _exact_float_sums():
        for t in range(steps):
            if resets is not None:
                for st, (interval, phase) in zip(state, resets):
                    if interval and (t + 1) % interval == phase:
                        st["u"].zero_()
                        st["v"].zero_()
            _torch_step(layers, state, rec, x[t], t, batch, extra)
    return {key: [None if r is None else r.cpu() for r in value] for key, value in rec.items()}


def _torch_step(layers: List[_TorchLayer], state: List[dict], rec: dict, s_in: torch.Tensor, t: int,
                batch: int, input_bias: Optional[torch.Tensor] = None) -> None:
    """Step ``t`` of every layer, each feeding the next at the same step, as Lava does."""
    k = 0
    for tl in layers:
        if tl.layer.kind == "flatten":
            s_in = s_in.reshape(batch, -1)
            continue
        st = state[k]
        if tl.layer.kind == "input":  # input neurons: a_in arrives at the same step, plus the run's bias
            a = s_in.reshape(batch, *tl.layer.out_shape).to(torch.int32)
            s, st["u"], st["v"] = _neuron_step(tl, a, st["u"], st["v"], input_bias)
        elif tl.delays is not None:  # DelayDense: send column 0, shift, then add each delay's sums (shifted apart)
            ring = st["ring"]
            a_now = ring[:, 0].clone()
            ring = torch.cat((ring[:, 1:], torch.zeros_like(ring[:, :1])), 1)
            x_in = s_in.reshape(batch, -1).to(tl.weight.dtype)
            for d, w_d in tl.delays:
                ring[:, d] += _exp_shift(_int_sums(x_in @ w_d.T, torch.int64), tl.layer.shift).to(torch.int32)
            st["ring"] = ring
            s, st["u"], st["v"] = _neuron_step(tl, a_now, st["u"], st["v"])
        else:
            a_now = st["a"]
            if tl.rec_weight is not None:  # its own spikes of step t-1, through W_rec
                r = _int_sums(st["s"].reshape(batch, -1).to(tl.rec_weight.dtype) @ tl.rec_weight.T, torch.int64)
                a_now = a_now + _exp_shift(r, tl.layer.shift).to(torch.int32)
            st["a"] = _synapse(tl, s_in)
            s, st["u"], st["v"] = _neuron_step(tl, a_now, st["u"], st["v"])
        st["s"] = s
        if rec["spikes"][k] is not None:
            rec["spikes"][k][t] = s
            if "voltage" in rec:
                rec["voltage"][k][t] = st["v"]
            if "current" in rec:
                rec["current"][k][t] = st["u"]
        s_in = s
        k += 1
