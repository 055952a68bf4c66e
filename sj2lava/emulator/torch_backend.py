"""The emulator's torch backend: the integer step of :mod:`sj2lava.emulator` on torch tensors, CPU or GPU.

Synaptic sums run as float convolutions / matmuls on integer-valued kernels, float32 where every sum is
provably below 2^24 and float64 below 2^53, so each is exact when accumulated exactly; they are rounded
(not truncated) to integers, with TF32 off, before they touch the int32 state (:func:`run`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .. import quant
from ..errors import GradedOverflowError
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
    # per-neuron tensors of the layer's one neuron model (its others None)
    lif: Optional[Dict[str, Any]] = None
    sdnn: Optional[Dict[str, Any]] = None
    rf: Optional[Dict[str, Any]] = None
    weight_imag: Optional[torch.Tensor] = None
    delays: Optional[List[Tuple[int, torch.Tensor]]] = None  # (delay k, the weights of the synapses with it)


def prepare(layers: List[CompiledLayer], device) -> List[_TorchLayer]:
    out = []
    for l in layers:
        if l.kind == "flatten":
            out.append(_TorchLayer(l))
            continue
        # graded messages: float64 sums, exact while every |sum| < 2^31 (checked each step)
        dt = torch.float64 if l.graded_in else _kernel_dtype(l.bound)
        as_t = lambda a, dtype=torch.int64: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        delays = None
        if l.delay is not None:
            assert l.weight is not None  # delays are per synapse of a dense layer
            delays = [(int(k), as_t(np.where(l.delay == k, l.weight, 0), dt)) for k in np.unique(l.delay)]
        lif = sdnn = rf = None
        if l.lif is not None:
            lif = dict(keep_u=as_t(l.lif.keep_u, torch.int32), keep_v=as_t(l.lif.keep_v, torch.int32),
                       vth=as_t(l.lif.vth, torch.int32),
                       bias=None if l.lif.bias is None else as_t(l.lif.bias, torch.int32))
        elif l.rf is not None:
            rf = dict(sin=as_t(l.rf.sin), cos=as_t(l.rf.cos))
        else:
            assert l.sdnn is not None
            sdnn = dict(vth=l.sdnn.vth, bias=None if l.sdnn.bias is None else as_t(l.sdnn.bias, torch.int32))
        out.append(_TorchLayer(
            l, delays=delays, weight=None if l.weight is None else as_t(l.weight, dt),
            rec_weight=None if l.rec_weight is None else as_t(l.rec_weight, dt), lif=lif, sdnn=sdnn, rf=rf,
            weight_imag=None if l.weight_imag is None else as_t(l.weight_imag, dt)))
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


def _check_graded(tl: _TorchLayer, m: torch.Tensor, index: int) -> None:
    top = int(m.abs().max()) if m.numel() else 0  # m is int64 here: |INT32_MIN| is exact
    if top * tl.layer.bound >= 1 << 31:
        raise GradedOverflowError(
            f"emulate: synaptic layer {index} receives graded messages up to {top}; with its weights (row sum "
            f"{tl.layer.bound:g}) a sum may reach 2^31, where Lava's int32 arithmetic wraps in an order sj2lava "
            "does not reproduce. Scale the messages or weights down")


def _synapse(tl: _TorchLayer, s: torch.Tensor) -> torch.Tensor:
    """This step's synaptic sums for input ``s`` [B, *in] (bool spikes, or int graded messages) -> int32 [B, *out].

    The sums run as float convolutions / matmuls on integer-valued kernels (float32 below 2^24, else
    float64, so every partial sum is exact when accumulated exactly) inside :func:`_exact_float_sums`."""
    l, w = tl.layer, tl.weight
    assert w is not None
    if l.kind == "conv":
        assert l.conv is not None
        a = _int_sums(F.conv2d(s.to(w.dtype), w, None, **l.conv), torch.int32)
        if l.may_wrap or l.graded_in:  # Lava Conv: signed 24-bit wrap of the sum
            a = quant.conv_wrap(a)
        return a
    return _dense(s, w, l.shift)


def _dense(s: torch.Tensor, weight: torch.Tensor, shift: int) -> torch.Tensor:
    """Lava Dense: the sum ``W s`` then its weight exponent's shift -> int32 [B, out]."""
    a = _int_sums(s.reshape(s.shape[0], -1).to(weight.dtype) @ weight.T, torch.int64)
    return _exp_shift(a, shift).to(torch.int32)


def _exp_shift(a: torch.Tensor, shift: int) -> torch.Tensor:
    # Lava Dense: a << weight_exp, or an arithmetic (flooring) right shift for a negative exponent
    return a >> shift if shift > 0 else (a << -shift if shift < 0 else a)


def _decay(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Lava's ``int32(sign(x * keep) * (|x * keep| >> 12))`` on the int32 state (no 36-bit product)."""
    return quant.decay_int32(x, keep)


def _neuron_step(tl: _TorchLayer, a: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                 extra_bias: Optional[torch.Tensor] = None):
    """One LIF step on int32 state, as PyLifModelBitAcc computes it (int32 registers, int64 products).
    ``extra_bias`` (state units, per sample) is the input neurons' ``bias_mant << 6`` given at run time."""
    lif, p = tl.layer.lif, tl.lif
    assert lif is not None and p is not None
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


def _sdnn_step(tl: _TorchLayer, a: torch.Tensor, st: dict) -> torch.Tensor:
    """One step of Lava's fixed-point SDNN models (``PyDeltaModelFixed``, ``PySigmaDeltaModelFixed``,
    ``PySigmaModelFixed``) on int32 state; int32 tensors wrap as Lava's int32 numpy arrays do."""
    sd, p = tl.layer.sdnn, tl.sdnn
    assert sd is not None and p is not None
    role = sd.role
    if role == "delta":
        act = a << sd.in_shift
    else:
        st["sigma"] = st["sigma"] + a
        if role == "sigma":
            return st["sigma"].clone()
        act = st["sigma"] if p["bias"] is None else st["sigma"] + p["bias"]
        act = torch.clamp_min(act, 0)
    delta = act - st["act"] + st["residue"]
    s = quant.sd_fire(delta, p["vth"])
    st["residue"] = delta - s
    st["act"] = act
    return s >> quant.BIAS_EXP  # Lava's state_exp: the message drops 6 of the state's fraction bits


_RF_LIMIT = (1 << 23) - 1  # Lava's RF: real and imaginary parts clipped to 24 signed bits


def _rf_step(tl: _TorchLayer, a_re: torch.Tensor, a_im: torch.Tensor, st: dict) -> torch.Tensor:
    """One step of Lava's ``PyRFModelFixed`` / ``PyRF_IZModelFixed`` (int64 products, int32 state)."""
    rf, p = tl.layer.rf, tl.rf
    assert rf is not None and p is not None
    re, im = st["real"].to(torch.int64), st["imag"].to(torch.int64)
    sv = quant.rs0  # Lava's scale_volt: sign(x) * (|x| >> decay_bits), decay_bits = 12
    new_re = sv(p["cos"] * re) - sv(p["sin"] * im) + (a_re << 6).to(torch.int64)  # a << 6 wraps in int32
    new_im = sv(p["sin"] * re) + sv(p["cos"] * im) + (a_im << 6).to(torch.int64)
    new_re = new_re.clamp_(-_RF_LIMIT, _RF_LIMIT)
    new_im = new_im.clamp_(-_RF_LIMIT, _RF_LIMIT)
    if rf.izhikevich:
        s = new_im >= rf.vth
        new_re = new_re.masked_fill(s, 0)
        new_im = new_im.masked_fill(s, rf.vth - 1)
    else:
        s = (new_re >= rf.vth) & (new_im >= 0) & (im < 0)
    st["real"], st["imag"] = new_re.to(torch.int32), new_im.to(torch.int32)
    return s


def run(layers: List[_TorchLayer], x: torch.Tensor, record: Sequence[str],
        resets: Optional[Sequence[Tuple[int, int]]] = None,
        input_bias: Optional[torch.Tensor] = None, counting: bool = False) -> Dict[str, List]:
    """Time-major, as Lava steps: every layer advances one step before the next step starts. ``resets``
    per synaptic layer ``(interval, phase)``: its ``u`` and ``v`` are zeroed before step ``t`` when
    ``(t + 1) % interval == phase`` (NetX's LIFReset; Lava's steps count from 1). A net that starts with
    input neurons takes ``x`` as their ``a_in`` (integers, no synaptic delay) and ``input_bias``
    ``[B, *shape]`` as their ``bias_mant``. Graded ``x`` (int) feeds SDNN input neurons or a graded synapse.

    Returns per record key a list over synaptic layers: ``spikes`` (bool, or int32 messages of SDNN
    layers), ``voltage`` / ``current`` (CUBA layers; None for SDNN ones), ``sigma`` (SDNN sigma state;
    None elsewhere); a layer not recorded is None. ``counting``: every layer's spikes are recorded (to be counted)."""
    extra = None if input_bias is None else (input_bias.to(device=x.device, dtype=torch.int32) << quant.BIAS_EXP)
    steps, batch = x.shape[0], x.shape[1]
    dev = x.device
    syn = [tl for tl in layers if tl.layer.kind != "flatten"]
    zeros = lambda tl, dt: torch.zeros((batch, *tl.layer.out_shape), dtype=dt, device=dev)  # noqa: E731
    state = []
    for tl in syn:
        st = dict(a=zeros(tl, torch.int32))
        names = ("sigma", "act", "residue") if tl.sdnn is not None else (
            ("real", "imag", "ai") if tl.rf is not None else ("u", "v"))
        st.update({k: zeros(tl, torch.int32) for k in names})
        st["s"] = zeros(tl, torch.bool if tl.sdnn is None else torch.int32)
        if tl.delays is not None:  # Lava DelayDense's a_buff: column j reaches the neurons j steps from now
            st["ring"] = torch.zeros((batch, max(k for k, _ in tl.delays) + 1, *tl.layer.out_shape),
                                     dtype=torch.int32, device=dev)
        state.append(st)
    every_layer = counting or any(k in record for k in ("layer_spikes", "voltage", "current", "sigma"))
    keys = ["spikes"] + [k for k in ("voltage", "current", "sigma") if k in record]

    def has(tl: _TorchLayer, key: str) -> bool:
        if key in ("voltage", "current"):
            return tl.lif is not None
        return key == "spikes" or (tl.layer.sdnn is not None and tl.layer.sdnn.role != "delta")

    rec = {k: [torch.empty((steps, batch, *tl.layer.out_shape),
                           dtype=torch.bool if k == "spikes" and tl.sdnn is None else torch.int32, device=dev)
               if (every_layer or j == len(syn) - 1) and has(tl, k) else None
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


def _arriving(tl: _TorchLayer, st: dict, s_in: torch.Tensor, batch: int, input_bias: Optional[torch.Tensor]):
    """``(a_in, imaginary a_in, bias)`` reaching the layer's neurons this step: for input neurons the run's input
    and bias at once; through a synapse, the sums of the step before (Lava's one-step delay), a DelayDense's from
    its ring of pending sums; ``st`` takes this step's sums."""
    if tl.layer.kind == "input":  # input neurons: a_in arrives at the same step, plus the run's bias
        return s_in.reshape(batch, *tl.layer.out_shape).to(torch.int32), None, input_bias
    if tl.delays is not None:  # DelayDense: send column 0, shift, then add each delay's sums (shifted apart)
        ring = st["ring"]
        a_now = ring[:, 0].clone()
        ring = torch.cat((ring[:, 1:], torch.zeros_like(ring[:, :1])), 1)
        x_in = s_in.reshape(batch, -1).to(tl.delays[0][1].dtype)
        for d, w_d in tl.delays:
            ring[:, d] += _exp_shift(_int_sums(x_in @ w_d.T, torch.int64), tl.layer.shift).to(torch.int32)
        st["ring"] = ring
        return a_now, None, None
    a_now = st["a"]
    if tl.rec_weight is not None:  # its own spikes of step t-1, through W_rec
        r = _int_sums(st["s"].reshape(batch, -1).to(tl.rec_weight.dtype) @ tl.rec_weight.T, torch.int64)
        a_now = a_now + _exp_shift(r, tl.layer.shift).to(torch.int32)
    st["a"] = _synapse(tl, s_in)
    ai_now = None
    if tl.rf is not None:  # the imaginary synapse, one step of delay like the real one
        assert tl.weight_imag is not None  # RF neurons sit behind complex weights
        ai_now, st["ai"] = st["ai"], _dense(s_in, tl.weight_imag, tl.layer.shift_imag)
    return a_now, ai_now, None


def _torch_step(layers: List[_TorchLayer], state: List[dict], rec: dict, s_in: torch.Tensor, t: int,
                batch: int, input_bias: Optional[torch.Tensor] = None) -> None:
    """Step ``t`` of every layer, each feeding the next at the same step, as Lava does."""
    k = 0
    for tl in layers:
        if tl.layer.kind == "flatten":
            s_in = s_in.reshape(batch, -1)
            continue
        st = state[k]
        if tl.layer.graded_in and tl.layer.kind != "input":
            s_in = s_in.to(torch.int64)
            _check_graded(tl, s_in, k)
        a_now, ai_now, bias = _arriving(tl, st, s_in, batch, input_bias)
        if tl.rf is not None:
            s = _rf_step(tl, a_now, ai_now, st)
        elif tl.sdnn is not None:
            s = _sdnn_step(tl, a_now, st)
        else:
            s, st["u"], st["v"] = _neuron_step(tl, a_now, st["u"], st["v"], bias)
        st["s"] = s
        for key, arrays in rec.items():
            if arrays[k] is not None:
                arrays[k][t] = s if key == "spikes" else st[{"voltage": "v", "current": "u", "sigma": "sigma"}[key]]
        s_in = s
        k += 1
