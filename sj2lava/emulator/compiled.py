"""The emulator's backend-neutral form of a net: per layer, the integers Lava computes with.

:func:`compile_net` turns a :class:`~sj2lava.netx.spec.NetSpec` into :class:`CompiledLayer` s: convolution
kernels as stored, dense weights after NetX's and Lava's weight rules (:mod:`sj2lava.netx.weights`) with
the exponent shift, and per-neuron LIF integers (``4096 - decay``, ``bias_mant << 6``, ``vThMant << 6``)
with the bounds that decide which wraps can happen. Both backends (:mod:`.torch_backend`,
:mod:`.events_backend`) read this list; :func:`prepared` caches what they build from it per net content.
"""
from __future__ import annotations

import hashlib
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .. import quant
from ..errors import NetFileError
from ..netx.spec import Conv, Cuba, Dense, Flatten, InputNeurons, NetSpec, Resonator
from ..netx.weights import lava_dense_weights, netx_weight_bits, rf_decays, rf_threshold

__all__ = ["LifParams", "CompiledLayer", "compile_net", "fingerprint", "prepared"]

_HALF = 1 << (quant.STATE_BITS - 1)


@dataclass
class LifParams:
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
class SdnnParams:
    """A :class:`~sj2lava.netx.spec.SigmaDelta` layer's integers, as NetX hands them to Lava."""
    role: str  # 'delta', 'sigma_delta' or 'sigma'
    vth: int  # vThMant << (spike_exp + 6)
    bias: Optional[np.ndarray]  # bias << (spike_exp + 6)
    in_shift: int  # Delta: a_in << (spike_exp + 6)


@dataclass
class RfParams:
    """A :class:`~sj2lava.netx.spec.Resonator` layer's integers, as Lava's fixed-point RF models hold them."""
    sin: np.ndarray  # per neuron, 1/4096, after NetX's float round trip
    cos: np.ndarray
    vth: int  # int(vThMant * 64)
    izhikevich: bool


@dataclass
class CompiledLayer:
    """One layer of the net in the emulator's terms, backend-neutral (numpy integers)."""
    kind: str  # 'input' (input neurons), 'conv', 'dense' or 'flatten'
    in_shape: Tuple[int, ...]
    out_shape: Tuple[int, ...]
    weight: Optional[np.ndarray] = None  # conv: [Co, Ci/g, kh, kw]; dense: Lava's weights [out, in]
    shift: int = 0  # dense: arithmetic right shift after the sum (Lava's weight exponent)
    rec_weight: Optional[np.ndarray] = None
    conv: Optional[dict] = None
    lif: Optional[LifParams] = None
    may_wrap: bool = True  # conv: can a sum leave Lava's 24-bit a_buf?
    delay: Optional[np.ndarray] = None  # dense: per-synapse axonal delays [out, in] (Lava's DelayDense)
    bound: float = 0.0  # the largest |sum| of one step's synaptic input (before the shift) for 0/1 input
    graded_in: bool = False  # the synapse receives graded messages (the layer before is SDNN): sum w * m
    sdnn: Optional[SdnnParams] = None  # SDNN neurons instead of ``lif``
    rf: Optional[RfParams] = None  # resonate-and-fire neurons instead of ``lif``
    weight_imag: Optional[np.ndarray] = None  # complex dense: Lava's imaginary weights, with their own shift
    shift_imag: int = 0


def _per_neuron(a: np.ndarray, shape: Tuple[int, ...], what: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)  # int64: decay products need 36 bits
    if a.size == 1:
        return a.reshape(())
    if a.size == int(np.prod(shape)):
        return a.reshape(shape)
    if len(shape) == 3 and a.size == shape[0]:
        return a.reshape(-1, 1, 1)
    raise NetFileError(f"emulate: {what} has {a.size} values for a layer of shape {shape}")


def _lif(layer, max_input: float) -> LifParams:
    n, shape = layer.neuron, layer.out_shape
    i_decay = _per_neuron(n.i_decay, shape, "iDecay")
    v_decay = _per_neuron(n.v_decay, shape, "vDecay")
    min_di = int(i_decay.min())
    u_bound = max_input * 64 * (quant.P_SCALE / min_di if min_di else float("inf"))
    return LifParams(
        keep_u=quant.P_SCALE - i_decay, keep_v=quant.P_SCALE - v_decay,
        bias=None if layer.bias is None else _per_neuron(layer.bias, shape, "bias") << quant.BIAS_EXP,
        vth=quant.threshold_state(_per_neuron(n.v_th_mant, shape, "vThMant")),
        u_decays=bool((i_decay != 0).any()), u_leaks_fully=bool((i_decay == quant.P_SCALE).all()),
        v_decays=bool((v_decay != 0).any()), u_may_wrap=u_bound >= _HALF,
    )


def _row_bound(w: np.ndarray) -> float:
    return float(np.abs(w).reshape(w.shape[0], -1).sum(1).max()) if w.size else 0.0


def _sdnn(layer, spike_exp: int) -> SdnnParams:
    n, shift = layer.neuron, spike_exp + quant.BIAS_EXP
    vth = int(n.v_th_mant) << shift
    bias = None if layer.bias is None else _per_neuron(layer.bias, layer.out_shape, "bias") << shift
    if vth >= 1 << 31 or (bias is not None and int(np.abs(bias).max()) >= 1 << 31):
        raise NetFileError(f"emulate: spike_exp={spike_exp} scales this net's SDNN thresholds or biases past int32")
    return SdnnParams(n.role, vth, bias, shift)


def compile_net(spec: NetSpec, spike_exp: int = 6) -> List[CompiledLayer]:
    """The spec's layers in the emulator's terms; ``spike_exp`` is NetX's (the SDNN message scale)."""
    out = []
    graded = spec.input_message_bits > 0
    for layer in spec.layers:
        if isinstance(layer, Flatten):
            out.append(CompiledLayer("flatten", tuple(layer.in_shape), tuple(layer.out_shape)))
            continue
        out.append(_compile(layer, spike_exp, graded))
        graded = layer.neuron.graded
    return out


def _compile(layer, spike_exp: int, graded: bool) -> CompiledLayer:
    c = _compile_synapse(layer)
    c.graded_in = graded
    if isinstance(layer.neuron, Resonator):
        n = layer.neuron
        sin, cos = rf_decays(n.sin_decay, n.cos_decay)
        c.lif, c.rf = None, RfParams(_per_neuron(sin, layer.out_shape, "sinDecay"),
                                     _per_neuron(cos, layer.out_shape, "cosDecay"), rf_threshold(n.v_th_mant),
                                     n.izhikevich)
        scaled, bits, c.shift_imag = _netx_bits(layer.weight_imag, layer)  # its own synapse, its own exponent
        c.weight_imag = lava_dense_weights(scaled, bits)
        c.bound = max(c.bound, _row_bound(c.weight_imag))
    elif layer.neuron.graded:
        c.lif, c.sdnn = None, _sdnn(layer, spike_exp)
    elif graded:  # graded sums are not bounded by the weights alone: assume u may wrap
        assert c.lif is not None  # a CUBA layer here: SDNN and RF layers took the branches above
        c.lif.u_may_wrap = True
    return c


def _compile_synapse(layer) -> CompiledLayer:
    if isinstance(layer, InputNeurons):  # no synapse; its a_in comes from the caller, so u may wrap
        return CompiledLayer("input", tuple(layer.in_shape), tuple(layer.out_shape),
                             lif=_lif(layer, float("inf")) if isinstance(layer.neuron, Cuba) else None)
    if isinstance(layer, Conv):
        w = np.asarray(layer.weight, dtype=np.int64)
        bound = _row_bound(w)
        return CompiledLayer("conv", tuple(layer.in_shape), tuple(layer.out_shape), weight=w,
                             conv=dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                                       groups=layer.groups),
                             lif=_lif(layer, bound) if isinstance(layer.neuron, Cuba) else None,
                             may_wrap=bound >= _HALF,
                             bound=bound)
    assert isinstance(layer, Dense)
    w = layer.weight
    joint = w if layer.weight_rec is None else np.hstack([w, layer.weight_rec])
    scaled, bits, shift = _netx_bits(joint, layer)
    # NetX shares one exponent; each Lava synapse (input, recurrent) picks its own sign mode
    w_in = lava_dense_weights(scaled[:, :w.shape[1]], bits)
    w_rec = None if layer.weight_rec is None else lava_dense_weights(scaled[:, w.shape[1]:], bits)
    bound = _row_bound(w_in if w_rec is None else np.hstack([w_in, w_rec]))
    cuba = isinstance(layer.neuron, Cuba)
    return CompiledLayer("dense", tuple(layer.in_shape), tuple(layer.out_shape), weight=w_in, shift=shift,
                         rec_weight=w_rec, lif=_lif(layer, bound / 2**shift) if cuba else None,
                         bound=bound, delay=layer.delay)


def _netx_bits(w: np.ndarray, layer) -> Tuple[np.ndarray, int, int]:
    """NetX's scaled weights, weight bits and the right shift Lava applies after the sum."""
    try:
        scaled, bits, exp = netx_weight_bits(w)
    except ValueError as e:
        raise NetFileError(f"emulate: dense layer {layer.out_shape}: {e}") from None
    return scaled, bits, -exp


_CACHE: OrderedDict[tuple, object] = OrderedDict()  # (spec fingerprint, what) -> prepared layers
_CACHE_SIZE = 16


def fingerprint(spec: NetSpec) -> bytes:
    """A digest of the spec's shapes and arrays: a spec changed in place gets a new one."""
    what = (spec.input_shape, spec.input_message_bits, spec.layers)
    return hashlib.blake2b(pickle.dumps(what, protocol=5), digest_size=16).digest()


def prepared(fingerprint: bytes, what, make):
    """``make()``, computed once per network content and kept for the next calls."""
    key = (fingerprint, what)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = _CACHE[key] = make()
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value
