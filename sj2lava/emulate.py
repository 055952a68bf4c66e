"""A batched, bit-exact emulator of NetX ``.net`` files: what Lava's ``Loihi2SimCfg(select_tag='fixed_pt')``
computes, for a whole batch at once, on CPU or GPU.

Per time step ``t`` (from 1) and per layer, exactly in Lava's order and integer arithmetic::

    a_out(t)   = a_buf(t-1)                               one step of synaptic delay (a_buf(0) = 0)
    a_buf(t)   = dense: (W_lava s_in(t)) >> sb            NetX's weight-bit optimisation (W << sb, clip,
                                                          truncate) and Lava Dense's exponent shift (floor)
                 conv:  wrap24(conv(s_in(t), W))          Lava Conv: integer weights, 24-bit signed wrap
    u = wrap24'(rs0(u (4096 - iDecay), 12) + (a_in << 6))   u kept in (-2^23, 2^23] as Lava wraps it
    v = clip(rs0(v (4096 - vDecay), 12) + u + (bias << 6), +-(2^23 - 1))
    s = v > (vThMant << 6);  v[s] = 0

with ``rs0(x, 12) = sign(x) (|x| >> 12)``, ``a_in`` the sum of the layer's synapses (``dense_rec``
adds ``W_rec`` times the layer's own spikes of the previous step). The state path is int64; synaptic
sums use float32 (or float64) matrix/conv kernels only where every sum is provably below 2^24 (2^53),
so they are exact, and are converted to integers before they touch the state.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from . import quant
from .errors import NetFileError
from .lava_run import prepare_input
from .layout import TNX_to_NXT
from .netfile import load
from .spec import Conv, Dense, Flatten, NetSpec

__all__ = ["emulate", "netx_weight_bits", "lava_dense_weights"]

_HALF = 1 << (quant.STATE_BITS - 1)
_FULL = 1 << quant.STATE_BITS


# --------------------------------------------------------------------------- Lava's weight pipeline
def netx_weight_bits(w: np.ndarray) -> Tuple[np.ndarray, int, int]:
    """NetX's ``optimize_weight_bits`` (``lava/lib/dl/netx/utils.py``): ``(w << sb, num_weight_bits, -sb)``."""
    w = np.asarray(w, dtype=np.int64)
    hi, lo = int(w.max()), int(w.min())
    if (hi > 254 and lo < 0) or (lo < -256 and hi > 0):
        w = np.clip(w, -256, 254)
        hi, lo = int(w.max()), int(w.min())
    if hi < 0:
        signed, scale = 0, -256 / lo
    elif lo >= 0:
        if hi == 0:
            raise ValueError("an all-zero dense weight matrix: NetX fails on it (OverflowError)")
        signed, scale = 0, 255 / hi
    else:
        # max == 0 with negatives is "mixed" to NetX; numpy then makes 127/0 infinite
        signed, scale = 1, min(127 / hi if hi else np.inf, -128 / lo)
    sb = int(np.floor(np.log2(scale))) + signed
    n = 8
    while n > 0 and np.any(w % (1 << n)):  # trailing zero bits shared by every weight
        n -= 1
    n -= signed
    return np.left_shift(w, sb), 8 - sb - n, -sb


def lava_dense_weights(w: np.ndarray, num_weight_bits: int) -> np.ndarray:
    """Lava ``PyDenseModelBitAcc``'s weights: sign mode from the weights, 8-bit clip, then truncation."""
    w = np.asarray(w, dtype=np.int64).copy()
    inhibitory = w.max() <= 0 and w.min() < 0
    mixed = int(w.min() < 0 and w.max() > 0)
    if inhibitory:
        w = -w
    w = np.clip(w, -(1 << 8) * mixed, (1 << 8) - 1)
    drop = 8 - num_weight_bits + mixed
    w = (w >> drop) << drop
    return -w if inhibitory else w


# --------------------------------------------------------------------------- compiled layers
@dataclass
class _Lif:
    keep_u: torch.Tensor  # 4096 - iDecay
    keep_v: torch.Tensor
    bias: Optional[torch.Tensor]  # bias_mant << 6, broadcast to one sample
    vth: torch.Tensor  # vThMant << 6
    u_decays: bool
    u_leaks_fully: bool  # iDecay == 4096: u is this step's input
    v_decays: bool
    u_may_wrap: bool


@dataclass
class _Layer:
    kind: str
    out_shape: Tuple[int, ...]
    weight: Optional[torch.Tensor] = None  # float kernel/matrix holding exact integers
    shift: int = 0  # dense: arithmetic right shift after the sum (Lava's weight exponent)
    rec_weight: Optional[torch.Tensor] = None
    conv: Optional[dict] = None
    lif: Optional[_Lif] = None
    may_wrap: bool = True  # conv: can a sum leave Lava's 24-bit a_buf?


def _kernel_dtype(w: np.ndarray) -> torch.dtype:
    # every |sum| <= sum|w| over a row; float32 holds integers exactly below 2^24
    bound = np.abs(w).reshape(w.shape[0], -1).sum(1).max() if w.size else 0
    return torch.float32 if bound < (1 << 24) else torch.float64


def _per_neuron(a: np.ndarray, shape: Tuple[int, ...], what: str, device) -> torch.Tensor:
    a = np.asarray(a, dtype=np.int64)  # int64: decay products need 36 bits
    if a.size == 1:
        return torch.tensor(int(a.reshape(-1)[0]), dtype=torch.int64, device=device)
    if a.size == int(np.prod(shape)):
        return torch.as_tensor(a.reshape(shape), device=device)
    if len(shape) == 3 and a.size == shape[0]:
        return torch.as_tensor(a.reshape(-1, 1, 1), device=device)
    raise NetFileError(f"emulate: {what} has {a.size} values for a layer of shape {shape}")


def _lif(layer, max_input: float, device) -> _Lif:
    n, shape = layer.neuron, layer.out_shape
    i_decay = _per_neuron(n.i_decay, shape, "iDecay", device)
    v_decay = _per_neuron(n.v_decay, shape, "vDecay", device)
    bias = None if layer.bias is None else _per_neuron(layer.bias, shape, "bias", device) << quant.BIAS_EXP
    min_di = int(i_decay.min())
    u_bound = max_input * 64 * (quant.P_SCALE / min_di if min_di else float("inf"))
    return _Lif(
        keep_u=quant.P_SCALE - i_decay, keep_v=quant.P_SCALE - v_decay,
        bias=None if bias is None else bias.to(torch.int32),
        vth=(_per_neuron(n.v_th_mant, shape, "vThMant", device) << 6).to(torch.int32),
        u_decays=bool((i_decay != 0).any()), u_leaks_fully=bool((i_decay == quant.P_SCALE).all()),
        v_decays=bool((v_decay != 0).any()), u_may_wrap=u_bound >= _HALF,
    )


def _compile(spec: NetSpec, device) -> List[_Layer]:
    out = []
    for layer in spec.layers:
        if isinstance(layer, Flatten):
            out.append(_Layer("flatten", layer.out_shape))
            continue
        if isinstance(layer, Conv):
            w = layer.weight
            bound = float(np.abs(w).reshape(w.shape[0], -1).sum(1).max())
            out.append(_Layer("conv", layer.out_shape,
                              weight=torch.as_tensor(w, dtype=_kernel_dtype(w), device=device),
                              conv=dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                                        groups=layer.groups),
                              lif=_lif(layer, bound, device), may_wrap=bound >= _HALF))
            continue
        assert isinstance(layer, Dense)
        w = layer.weight
        joint = w if layer.weight_rec is None else np.hstack([w, layer.weight_rec])
        try:
            scaled, bits, exp = netx_weight_bits(joint)
        except ValueError as e:
            raise NetFileError(f"emulate: dense layer {len(out)}: {e}") from None
        w_in = lava_dense_weights(scaled[:, :w.shape[1]], bits)
        w_rec = None if layer.weight_rec is None else lava_dense_weights(scaled[:, w.shape[1]:], bits)
        kernel = w_in if w_rec is None else np.hstack([w_in, w_rec])
        dt = _kernel_dtype(kernel)
        max_in = float(np.abs(kernel).sum(1).max()) / (1 << -exp)
        out.append(_Layer("dense", layer.out_shape, weight=torch.as_tensor(w_in, dtype=dt, device=device),
                          shift=-exp,
                          rec_weight=None if w_rec is None else torch.as_tensor(w_rec, dtype=dt, device=device),
                          lif=_lif(layer, max_in, device)))
    return out


# --------------------------------------------------------------------------- the step
def _rs0(x: torch.Tensor) -> torch.Tensor:
    """``sign(x) (|x| >> 12)`` for int64: an arithmetic shift rounds down, so add 4095 to negatives."""
    return (x + ((x >> 63) & (quant.P_SCALE - 1))) >> quant.DECAY_BITS


def _synapse(layer: _Layer, s: torch.Tensor) -> torch.Tensor:
    """This step's synaptic sums for input spikes ``s`` [B, *in] (bool or float) -> int32 [B, *out]."""
    if layer.kind == "conv":
        a = F.conv2d(s.to(layer.weight.dtype), layer.weight, None, **layer.conv).to(torch.int32)
        if layer.may_wrap:  # Lava Conv: signed 24-bit wrap of the sum
            a = ((a + _HALF) % _FULL) - _HALF
        return a
    a = (s.reshape(s.shape[0], -1).to(layer.weight.dtype) @ layer.weight.T).to(torch.int64)
    return _exp_shift(a, layer.shift).to(torch.int32)


def _exp_shift(a: torch.Tensor, shift: int) -> torch.Tensor:
    # Lava Dense: a << weight_exp, or an arithmetic (flooring) right shift for a negative exponent
    return a >> shift if shift > 0 else (a << -shift if shift < 0 else a)


def _decay(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Lava's ``int32(sign(x * keep) * (|x * keep| >> 12))``, the product in int64."""
    return _rs0(x.to(torch.int64) * keep).to(torch.int32)


def _neuron_step(lif: _Lif, a: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
    """One LIF step on int32 state, as PyLifModelBitAcc computes it (int32 registers, int64 products)."""
    x = a << 6
    if lif.u_leaks_fully:
        u = x
    elif lif.u_decays:
        u = _decay(u, lif.keep_u).add_(x)
    else:
        u = u + x
    if lif.u_may_wrap:
        wrapped = torch.where(u > _HALF, u - _FULL, u)
        u = torch.where(wrapped <= -_HALF, u + _FULL, wrapped)
    v = _decay(v, lif.keep_v).add_(u) if lif.v_decays else v + u
    if lif.bias is not None:
        v.add_(lif.bias)
    v.clamp_(-(_HALF - 1), _HALF - 1)
    s = v > lif.vth
    return s, u, v.masked_fill_(s, 0)


def _run(layers: List[_Layer], x: torch.Tensor, record: Sequence[str]) -> Dict[str, List[torch.Tensor]]:
    """Time-major, as Lava steps: every layer advances one step before the next step starts."""
    steps, batch = x.shape[0], x.shape[1]
    dev = x.device
    syn = [l for l in layers if l.kind != "flatten"]
    zeros = lambda l, dt: torch.zeros((batch, *l.out_shape), dtype=dt, device=dev)  # noqa: E731
    state = [dict(a=zeros(l, torch.int32), u=zeros(l, torch.int32), v=zeros(l, torch.int32),
                  s=zeros(l, torch.bool)) for l in syn]
    every_layer = any(k in record for k in ("layer_spikes", "voltage", "current"))
    keys = ["spikes"] + [k for k in ("voltage", "current") if k in record]
    rec = {k: [torch.empty((steps, batch, *l.out_shape), dtype=torch.bool if k == "spikes" else torch.int32,
                           device=dev) if (every_layer or j == len(syn) - 1) else None
               for j, l in enumerate(syn)] for k in keys}
    for t in range(steps):
        s_in = x[t]
        k = 0
        for layer in layers:
            if layer.kind == "flatten":
                s_in = s_in.reshape(batch, -1)
                continue
            st = state[k]
            a_now = st["a"]
            if layer.rec_weight is not None:  # its own spikes of step t-1, through W_rec
                r = (st["s"].reshape(batch, -1).to(layer.rec_weight.dtype) @ layer.rec_weight.T).to(torch.int64)
                a_now = a_now + _exp_shift(r, layer.shift).to(torch.int32)
            st["a"] = _synapse(layer, s_in)
            s, st["u"], st["v"] = _neuron_step(layer.lif, a_now, st["u"], st["v"])
            st["s"] = s
            if rec["spikes"][k] is not None:
                rec["spikes"][k][t] = s
                if "voltage" in rec:
                    rec["voltage"][k][t] = st["v"]
                if "current" in rec:
                    rec["current"][k][t] = st["u"]
            s_in = s
            k += 1
    return rec


def emulate(path_or_spec: Union[str, Path, NetSpec], x: torch.Tensor, *, layout: str = "TNX",
            batch_size: Optional[int] = None, device: Union[str, torch.device] = "cpu",
            record: Sequence[str] = ("spikes",)) -> Union[torch.Tensor, Dict[str, object]]:
    """Run a NetX ``.net`` file (or a :class:`NetSpec`) exactly as Lava's fixed-point simulation would.

    Args:
        path_or_spec: a ``.net`` path (anything :func:`sj2lava.load` accepts) or a loaded spec.
        x: binary input spikes ``[T, N, *input_shape]`` (``'TNX'``) or ``[N, *input_shape, T]`` (``'NXT'``).
        batch_size: samples per chunk (default: all at once).
        device: ``'cpu'`` or ``'cuda'``.
        record: ``('spikes',)`` returns the output spikes; adding ``'layer_spikes'``, ``'voltage'``
            and/or ``'current'`` returns a dict with ``'spikes'`` (output) and per synaptic layer lists
            ``'layer_spikes'``, ``'voltage'``, ``'current'`` (``v`` after reset and ``u``, int32 state
            units: 4096 = 1.0).

    Every sample starts from zero state, as ``run_lava`` resets between samples. Bad input (wrong
    shape, non-binary spikes, NaN) raises ``ValueError`` before any work.
    """
    spec = path_or_spec if isinstance(path_or_spec, NetSpec) else load(path_or_spec)
    unknown = set(record) - {"spikes", "layer_spikes", "voltage", "current"}
    if unknown:
        raise ValueError("emulate: record may hold 'spikes', 'layer_spikes', 'voltage', 'current'; got "
                         f"{sorted(unknown)}")
    x = prepare_input(spec, x, layout, "emulate")
    dev = torch.device(device)
    layers = _compile(spec, dev)
    n = x.shape[1]
    size = n if batch_size is None else max(1, int(batch_size))
    parts: Dict[str, List[List[torch.Tensor]]] = {}
    for i in range(0, n, size):
        rec = _run(layers, x[:, i:i + size].to(dev), record)
        for key, tensors in rec.items():
            parts.setdefault(key, []).append(tensors)
    merged = {k: [None if v[0][j] is None else torch.cat([p[j] for p in v], 1).cpu() for j in range(len(v[0]))]
              for k, v in parts.items()}
    out_spikes = merged["spikes"][-1].float().reshape(x.shape[0], n, *spec.output_shape)
    out_spikes = out_spikes if layout == "TNX" else TNX_to_NXT(out_spikes)
    if tuple(record) == ("spikes",):
        return out_spikes
    result: Dict[str, object] = {"spikes": out_spikes, "layer_spikes": [s.float() for s in merged["spikes"]]}
    for key in ("voltage", "current"):
        if key in merged:
            result[key] = merged[key]
    return result
