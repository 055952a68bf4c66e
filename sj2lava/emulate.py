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

with ``rs0(x, 12) = sign(x) (|x| >> 12)`` (:func:`sj2lava.quant.rs0`), ``a_in`` the sum of the
layer's synapses (``dense_rec`` adds ``W_rec`` times the layer's own spikes of the previous step).

Backends: ``'events'`` (:mod:`sj2lava.emulate_events`, a C kernel on the CPU: int8 dot products,
pattern tables or spike-driven fan-out, per layer) and
``'torch'`` (torch ops, CPU or GPU; its synaptic sums use float32 (or float64) matrix/conv kernels only
where every sum is provably below 2^24 (2^53), so they are exact, and become integers before they touch
the state). Both read the same backend-neutral :class:`_Layer` list made by :func:`_compile`.
"""
from __future__ import annotations

import contextlib
import hashlib
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from . import quant
from .errors import NetFileError
from .lava_run import check_binary, prepare_input
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
    """Per-neuron integer parameters (numpy, broadcastable to the layer's ``out_shape``)."""
    keep_u: np.ndarray  # 4096 - iDecay
    keep_v: np.ndarray
    bias: Optional[np.ndarray]  # bias_mant << 6
    vth: np.ndarray  # vThMant << 6
    u_decays: bool
    u_leaks_fully: bool  # iDecay == 4096: u is this step's input
    v_decays: bool
    u_may_wrap: bool


@dataclass
class _Layer:
    """One layer of the net in the emulator's terms, backend-neutral (numpy integers)."""
    kind: str  # 'conv', 'dense' or 'flatten'
    in_shape: Tuple[int, ...]
    out_shape: Tuple[int, ...]
    weight: Optional[np.ndarray] = None  # conv: [Co, Ci/g, kh, kw]; dense: Lava's weights [out, in]
    shift: int = 0  # dense: arithmetic right shift after the sum (Lava's weight exponent)
    rec_weight: Optional[np.ndarray] = None
    conv: Optional[dict] = None
    lif: Optional[_Lif] = None
    may_wrap: bool = True  # conv: can a sum leave Lava's 24-bit a_buf?
    bound: float = 0.0  # the largest |sum| of one step's synaptic input (before the shift)


def _per_neuron(a: np.ndarray, shape: Tuple[int, ...], what: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)  # int64: decay products need 36 bits
    if a.size == 1:
        return a.reshape(())
    if a.size == int(np.prod(shape)):
        return a.reshape(shape)
    if len(shape) == 3 and a.size == shape[0]:
        return a.reshape(-1, 1, 1)
    raise NetFileError(f"emulate: {what} has {a.size} values for a layer of shape {shape}")


def _lif(layer, max_input: float) -> _Lif:
    n, shape = layer.neuron, layer.out_shape
    i_decay = _per_neuron(n.i_decay, shape, "iDecay")
    v_decay = _per_neuron(n.v_decay, shape, "vDecay")
    min_di = int(i_decay.min())
    u_bound = max_input * 64 * (quant.P_SCALE / min_di if min_di else float("inf"))
    return _Lif(
        keep_u=quant.P_SCALE - i_decay, keep_v=quant.P_SCALE - v_decay,
        bias=None if layer.bias is None else _per_neuron(layer.bias, shape, "bias") << quant.BIAS_EXP,
        vth=_per_neuron(n.v_th_mant, shape, "vThMant") << 6,
        u_decays=bool((i_decay != 0).any()), u_leaks_fully=bool((i_decay == quant.P_SCALE).all()),
        v_decays=bool((v_decay != 0).any()), u_may_wrap=u_bound >= _HALF,
    )


def _row_bound(w: np.ndarray) -> float:
    return float(np.abs(w).reshape(w.shape[0], -1).sum(1).max()) if w.size else 0.0


def _compile(spec: NetSpec) -> List[_Layer]:
    out = []
    for layer in spec.layers:
        if isinstance(layer, Flatten):
            out.append(_Layer("flatten", tuple(layer.in_shape), tuple(layer.out_shape)))
            continue
        if isinstance(layer, Conv):
            w = np.asarray(layer.weight, dtype=np.int64)
            bound = _row_bound(w)
            out.append(_Layer("conv", tuple(layer.in_shape), tuple(layer.out_shape), weight=w,
                              conv=dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                                        groups=layer.groups),
                              lif=_lif(layer, bound), may_wrap=bound >= _HALF, bound=bound))
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
        bound = _row_bound(kernel)
        out.append(_Layer("dense", tuple(layer.in_shape), tuple(layer.out_shape), weight=w_in, shift=-exp,
                          rec_weight=w_rec, lif=_lif(layer, bound / 2**-exp), bound=bound))
    return out


# --------------------------------------------------------------------------- torch backend
def _kernel_dtype(bound: float) -> torch.dtype:
    # float32 holds integers exactly below 2^24, float64 below 2^53; every |sum| <= bound
    return torch.float32 if bound < (1 << 24) else torch.float64


@dataclass
class _TorchLayer:
    layer: _Layer
    weight: Optional[torch.Tensor] = None  # float kernel/matrix holding exact integers
    rec_weight: Optional[torch.Tensor] = None
    lif: Optional[Dict[str, torch.Tensor]] = None


def _to_torch(layers: List[_Layer], device) -> List[_TorchLayer]:
    out = []
    for l in layers:
        if l.kind == "flatten":
            out.append(_TorchLayer(l))
            continue
        dt = _kernel_dtype(l.bound)
        as_t = lambda a, dtype=torch.int64: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        out.append(_TorchLayer(
            l, weight=as_t(l.weight, dt), rec_weight=None if l.rec_weight is None else as_t(l.rec_weight, dt),
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
            a = ((a + _HALF) % _FULL) - _HALF
        return a
    a = _int_sums(s.reshape(s.shape[0], -1).to(tl.weight.dtype) @ tl.weight.T, torch.int64)
    return _exp_shift(a, l.shift).to(torch.int32)


def _exp_shift(a: torch.Tensor, shift: int) -> torch.Tensor:
    # Lava Dense: a << weight_exp, or an arithmetic (flooring) right shift for a negative exponent
    return a >> shift if shift > 0 else (a << -shift if shift < 0 else a)


def _decay(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Lava's ``int32(sign(x * keep) * (|x * keep| >> 12))``, the product in int64."""
    return quant.rs0(x.to(torch.int64) * keep).to(torch.int32)


def _neuron_step(tl: _TorchLayer, a: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
    """One LIF step on int32 state, as PyLifModelBitAcc computes it (int32 registers, int64 products)."""
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
    v = quant.clip_state(v)
    s = v > p["vth"]
    return s, u, v.masked_fill_(s, 0)


def _run_torch(layers: List[_TorchLayer], x: torch.Tensor, record: Sequence[str]) -> Dict[str, List]:
    """Time-major, as Lava steps: every layer advances one step before the next step starts."""
    steps, batch = x.shape[0], x.shape[1]
    dev = x.device
    syn = [tl for tl in layers if tl.layer.kind != "flatten"]
    zeros = lambda tl, dt: torch.zeros((batch, *tl.layer.out_shape), dtype=dt, device=dev)  # noqa: E731
    state = [dict(a=zeros(tl, torch.int32), u=zeros(tl, torch.int32), v=zeros(tl, torch.int32),
                  s=zeros(tl, torch.bool)) for tl in syn]
    every_layer = any(k in record for k in ("layer_spikes", "voltage", "current"))
    keys = ["spikes"] + [k for k in ("voltage", "current") if k in record]
    rec = {k: [torch.empty((steps, batch, *tl.layer.out_shape),
                           dtype=torch.bool if k == "spikes" else torch.int32, device=dev)
               if (every_layer or j == len(syn) - 1) else None
               for j, tl in enumerate(syn)] for k in keys}
    with _exact_float_sums():
        for t in range(steps):
            _torch_step(layers, state, rec, x[t], t, batch)
    return {key: [None if r is None else r.cpu() for r in value] for key, value in rec.items()}


def _torch_step(layers: List[_TorchLayer], state: List[dict], rec: dict, s_in: torch.Tensor, t: int,
                batch: int) -> None:
    """Step ``t`` of every layer, each feeding the next at the same step, as Lava does."""
    k = 0
    for tl in layers:
        if tl.layer.kind == "flatten":
            s_in = s_in.reshape(batch, -1)
            continue
        st = state[k]
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


# --------------------------------------------------------------------------- events backend (C kernel)
def _channels_last(shape: Tuple[int, ...]) -> np.ndarray:
    """For a (C, H, W) layer stored as [H, W, C]: the (C, H, W) flat index of each stored position."""
    if len(shape) != 3:
        return np.arange(int(np.prod(shape)))
    return np.arange(int(np.prod(shape))).reshape(shape).transpose(1, 2, 0).ravel()


def _event_layers(layers: List[_Layer], input_shape: Tuple[int, ...], use_dot: bool = True) -> Optional[list]:
    # -> [(kernel layer, stored order of its output, its out_shape)]
    """The layers as event-kernel layers, or None when an int32 register of the kernel could overflow:
    a sum of 2^31 or more, or a dense layer whose shifted sum may reach 2^24 (64 times that, the
    current it adds, must stay an int32); only the torch backend's int64 holds those exactly."""
    from . import emulate_events as ev

    use_dot = ev.has_dot() and use_dot
    out = []
    stored = _channels_last(input_shape)  # the flat (C, H, W) index of each stored input position
    for l in layers:
        if l.kind == "flatten":  # a view: the stored order is unchanged
            continue
        order = _channels_last(l.out_shape)
        flat = lambda a: np.broadcast_to(a, l.out_shape).ravel()[order]  # noqa: E731
        lif = l.lif
        params = dict(keep_u=flat(lif.keep_u), keep_v=flat(lif.keep_v), vth=flat(lif.vth),
                      bias=None if lif.bias is None else flat(lif.bias),
                      u_mode=2 if lif.u_leaks_fully else int(lif.u_decays), v_decays=lif.v_decays,
                      u_may_wrap=lif.u_may_wrap)
        if l.bound >= 2**31 or (l.kind == "dense" and l.bound / 2**l.shift >= 2**24):
            return None
        if l.kind == "conv":
            co, cig, kh, kw = l.weight.shape
            c = l.conv
            geometry = (c["stride"], c["padding"], c["dilation"])
            dot = ev.dot_table(tuple(l.in_shape), tuple(l.out_shape[1:]), l.weight, *geometry) \
                if c["groups"] == 1 and use_dot else None
            table = ev.nibble_table(tuple(l.in_shape), tuple(l.out_shape[1:]), l.weight, *geometry) \
                if c["groups"] == 1 and dot is None else None
            fan = w = None
            if dot is None and table is None:
                fan = ev.fan_table(tuple(l.in_shape[1:]), tuple(l.out_shape[1:]), (kh, kw), *geometry, co)
                w = l.weight.transpose(2, 3, 1, 0).reshape(kh * kw, cig, co)
            layer = ev.Layer(len(stored), co, 0, l.may_wrap, params, fan=fan, w=w, groups=c["groups"],
                             table=table, dot=dot)
        else:  # dense: one position; its input columns follow the stored order of what feeds it
            w = l.weight[:, stored]
            dot = ev.dot_table((len(stored), 1, 1), (1, 1), w[:, :, None, None], (1, 1), (0, 0), (1, 1)) \
                if use_dot and l.rec_weight is None else None
            scatter = {} if dot is not None else dict(  # the fan-out path: one position, every input
                fan=(np.array([0, 1]), np.zeros(1), np.zeros(1)), w=w.T[None],
                w_rec=None if l.rec_weight is None else l.rec_weight.T)
            layer = ev.Layer(len(stored), w.shape[0], l.shift, False, params, dot=dot, **scatter)
        out.append((layer, order, l.out_shape))
        stored = order
    return out


def _run_events(prepared: list, s: np.ndarray, record: Sequence[str]) -> Dict[str, List]:
    """``s``: uint8 spikes ``[T, B, n_in]`` in the first layer's stored (channels-last) order."""
    from . import emulate_events as ev

    steps, batch = s.shape[0], s.shape[1]
    every = any(k in record for k in ("layer_spikes", "voltage", "current"))
    state = "voltage" in record or "current" in record
    layers = [p[0] for p in prepared]
    last = len(layers) - 1
    out = ev.run(layers, s, [every or j == last for j in range(len(layers))],
                 [state and (every or j == last) for j in range(len(layers))], torch.get_num_threads())

    def logical(a: Optional[np.ndarray], j: int) -> Optional[torch.Tensor]:
        if a is None:  # [T, B, stored] -> [T, B, *out_shape]
            return None
        _, stored, shape = prepared[j]
        if not np.array_equal(stored, np.arange(stored.size)):
            back = np.empty_like(a)
            back[:, :, stored] = a
            a = back
        return torch.from_numpy(a.reshape(steps, batch, *shape))

    rec = {"spikes": [None if o[0] is None else logical(o[0], j).bool() for j, o in enumerate(out)],
           "current": [logical(o[1], j) for j, o in enumerate(out)],
           "voltage": [logical(o[2], j) for j, o in enumerate(out)]}
    return {k: v for k, v in rec.items() if k == "spikes" or k in record}


_CACHE: "OrderedDict[tuple, object]" = OrderedDict()  # (spec fingerprint, what) -> prepared layers
_CACHE_SIZE = 16


def _fingerprint(spec: NetSpec) -> bytes:
    """A digest of the spec's shapes and arrays: a spec changed in place gets a new one."""
    return hashlib.blake2b(pickle.dumps((spec.input_shape, spec.layers), protocol=5), digest_size=16).digest()


def _prepared(fingerprint: bytes, what, make):
    """``make()``, computed once per network content and kept for the next calls."""
    key = (fingerprint, what)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = _CACHE[key] = make()
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def _spike_bytes(x: torch.Tensor) -> np.ndarray:
    """``x`` ``[T, N, *input_shape]`` as uint8 ``[T, N, n_in]`` in the stored (channels-last) order of
    the input, after checking that every value is 0 or 1 (one C pass for float32)."""
    from . import emulate_events as ev

    steps, batch = x.shape[0], x.shape[1]
    if x.dtype == torch.float32 and x.device.type == "cpu":
        s, bad = ev.spike_bytes(x.detach().numpy())
        if bad >= 0:
            check_binary(x.reshape(-1)[bad:bad + 1], "emulate")
    else:
        check_binary(x, "emulate")
        s = x.to(torch.uint8).cpu().numpy()
    s = s.reshape(steps, batch, -1)
    first = _channels_last(tuple(x.shape[2:]))
    return s if np.array_equal(first, np.arange(first.size)) else s[:, :, first]


def emulate(path_or_spec: Union[str, Path, NetSpec], x: torch.Tensor, *, layout: str = "TNX",
            batch_size: Optional[int] = None, device: Union[str, torch.device] = "cpu",
            record: Sequence[str] = ("spikes",), backend: str = "auto") -> Union[torch.Tensor, Dict[str, object]]:
    """Run a NetX ``.net`` file (or a :class:`NetSpec`) exactly as Lava's fixed-point simulation would.

    Args:
        path_or_spec: a ``.net`` path (anything :func:`sj2lava.load` accepts) or a loaded spec.
        x: binary input spikes ``[T, N, *input_shape]`` (``'TNX'``) or ``[N, *input_shape, T]`` (``'NXT'``).
        batch_size: samples per chunk (default: all at once for ``'torch'``, 256 for ``'events'``).
        device: ``'cpu'`` or ``'cuda'``.
        record: ``('spikes',)`` returns the output spikes; adding ``'layer_spikes'``, ``'voltage'``
            and/or ``'current'`` returns a dict with ``'spikes'`` (output) and per synaptic layer lists
            ``'layer_spikes'``, ``'voltage'``, ``'current'`` (``v`` after reset and ``u``, int32 state
            units: 4096 = 1.0).
        backend: ``'events'`` (CPU, a C kernel built on first use: the fast one),
            ``'torch'`` (dense torch ops, CPU or GPU) or ``'auto'``: events on the CPU when a C compiler
            is at hand and the net's sums fit its int32 registers, else torch. Both compute the same
            integers.

    Every sample starts from zero state, as ``run_lava`` resets between samples. Bad input (wrong
    shape, non-binary spikes, NaN) raises ``ValueError`` before any work.
    """
    spec = path_or_spec if isinstance(path_or_spec, NetSpec) else load(path_or_spec)
    unknown = set(record) - {"spikes", "layer_spikes", "voltage", "current"}
    if unknown:
        raise ValueError("emulate: record may hold 'spikes', 'layer_spikes', 'voltage', 'current'; got "
                         f"{sorted(unknown)}")
    dev = torch.device(device)
    backend = _pick_backend(backend, dev)
    x = prepare_input(spec, x, layout, "emulate", check_values=False)
    n = x.shape[1]
    fingerprint = _fingerprint(spec)
    layers = _prepared(fingerprint, "compiled", lambda: _compile(spec))
    prepared = None
    if backend != "torch":
        from . import emulate_events as ev

        prepared = _prepared(fingerprint, ("events", ev.DOT),
                             lambda: _event_layers(layers, tuple(spec.input_shape), use_dot=ev.DOT))
    if backend == "events" and prepared is None:
        raise ValueError("emulate: a dense layer of this net may sum to 2^24 or more in one step, which "
                         "only backend='torch' computes exactly")
    if prepared is not None:
        s = _spike_bytes(x)  # checks the values before any work
        run = lambda i, j: _run_events(prepared, s[:, i:j], record)  # noqa: E731
        size = 256 if batch_size is None else max(1, int(batch_size))
    else:
        check_binary(x, "emulate")
        prepared_t = _to_torch(layers, dev)
        run = lambda i, j: _run_torch(prepared_t, x[:, i:j].to(dev), record)  # noqa: E731
        size = n if batch_size is None else max(1, int(batch_size))
    parts: Dict[str, List[List[torch.Tensor]]] = {}
    for i in range(0, n, size):
        for key, tensors in run(i, i + size).items():
            parts.setdefault(key, []).append(tensors)
    merged = {k: [None if v[0][j] is None else torch.cat([p[j] for p in v], 1) for j in range(len(v[0]))]
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


def _pick_backend(backend: str, device: torch.device) -> str:
    from . import emulate_events

    if backend not in ("auto", "events", "torch"):
        raise ValueError(f"emulate: backend must be 'auto', 'events' or 'torch', got {backend!r}")
    if backend == "auto":  # 'auto' still falls back to torch for a net the kernel cannot hold exactly
        return "auto" if device.type == "cpu" and emulate_events.available() else "torch"
    if backend == "events":
        if device.type != "cpu":
            raise ValueError(f"emulate: the 'events' backend runs on the CPU; use backend='torch' for {device}")
        if not emulate_events.available():
            raise RuntimeError(f"emulate: the 'events' backend could not build its C kernel "
                               f"({emulate_events.unavailable_reason()}); use backend='torch'")
    return backend
