"""The emulator's CPU backend: compiled layers in the C kernel's terms (:mod:`.ckernel`), and back.

The kernel keeps each layer's state channels-last (``[H, W, C]`` flattened), so :func:`prepare` orders
every per-neuron array and dense column that way and picks each layer's sum path; :func:`run` restores
the ``(C, H, W)`` order of whatever it records.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..errors import GradedOverflowError
from . import ckernel as ev
from .compiled import CompiledLayer

__all__ = ["channels_last", "to_stored", "prepare", "run", "unsupported"]


def channels_last(shape: Tuple[int, ...]) -> np.ndarray:
    """For a (C, H, W) layer stored as [H, W, C]: the (C, H, W) flat index of each stored position."""
    if len(shape) != 3:
        return np.arange(int(np.prod(shape)))
    return np.arange(int(np.prod(shape))).reshape(shape).transpose(1, 2, 0).ravel()


def to_stored(x: np.ndarray, shape: Tuple[int, ...], dtype) -> np.ndarray:
    """``x`` ``[T, B, *shape]`` (any layout of the same size) as a C-contiguous ``[T, B, n]`` of ``dtype`` in the
    stored (channels-last) order: one strided copy (a transpose, not a gather)."""
    x = x.reshape(x.shape[0], x.shape[1], *shape)
    if len(shape) == 3:
        x = x.transpose(0, 1, 3, 4, 2)
    return np.ascontiguousarray(x, dtype=dtype).reshape(x.shape[0], x.shape[1], -1)


_INDEX_MAX = (1 << 31) - 1  # the kernel indexes with int32


def _check(l: CompiledLayer, k: int, stored: int) -> None:
    """The kernel trusts its tables: every layer handed to it is checked here first, whatever made it (the
    reader refuses such files; this guards the kernel against any other caller). ``ValueError`` otherwise."""
    def bad(msg: str) -> ValueError:
        return ValueError(f"event kernel: layer {k} ({l.kind}): {msg}")

    n_out = int(np.prod(l.out_shape))
    if stored < 1 or n_out < 1 or stored > _INDEX_MAX or n_out > _INDEX_MAX:
        raise bad(f"sizes {stored} -> {n_out} outside [1, 2^31)")
    if l.kind == "conv":
        _check_conv(l, bad)
    elif l.weight is None or l.weight.shape != (n_out, stored):
        raise bad(f"weight {None if l.weight is None else l.weight.shape} does not take {stored} inputs to {n_out} "
                  "outputs")


def _check_conv(l: CompiledLayer, bad: Callable[[str], ValueError]) -> None:
    w, c = l.weight, l.conv
    if w is None or c is None:
        raise bad("a conv without weights or geometry")
    if w.ndim != 4 or min(w.shape) < 1 or len(l.in_shape) != 3 or len(l.out_shape) != 3:
        raise bad(f"weight {w.shape} or shapes {l.in_shape} -> {l.out_shape} are not a convolution's")
    if min(c["stride"]) < 1 or min(c["dilation"]) < 1 or min(c["padding"]) < 0 or c["groups"] < 1:
        raise bad(f"stride {c['stride']}, dilation {c['dilation']}, padding {c['padding']}, groups "
                  f"{c['groups']}: strides, dilations and groups must be >= 1, paddings >= 0")
    co, cig, kh, kw = w.shape
    if l.in_shape[0] != cig * c["groups"] or co % c["groups"] or co != l.out_shape[0]:
        raise bad(f"channels {l.in_shape[0]} -> {l.out_shape[0]} do not fit weight {w.shape} with groups "
                  f"{c['groups']}")
    for d, k_d in enumerate((kh, kw)):
        span = c["dilation"][d] * (k_d - 1) + 1
        want = (l.in_shape[1 + d] + 2 * c["padding"][d] - span) // c["stride"][d] + 1
        if want != l.out_shape[1 + d] or want < 1:
            raise bad(f"output size {l.out_shape[1 + d]} along axis {d} does not follow from the geometry ({want})")
    if (l.in_shape[1] + 2 * c["padding"][0]) * (l.in_shape[2] + 2 * c["padding"][1]) * l.in_shape[0] > _INDEX_MAX:
        raise bad("the padded input exceeds 2^31 values")


def _neuron(l: CompiledLayer, flat) -> dict:
    """The layer's neurons as :class:`~.ckernel.KernelLayer` takes them (per-neuron arrays in stored order)."""
    if l.sdnn is not None:
        p = l.sdnn
        return dict(kind="sdnn", role=p.role, vth=p.vth, shift=p.in_shift,
                    bias=None if p.bias is None else flat(p.bias))
    if l.rf is not None:
        return dict(kind="rf", sin=flat(l.rf.sin), cos=flat(l.rf.cos), vth=l.rf.vth, izhikevich=l.rf.izhikevich)
    lif = l.lif
    assert lif is not None  # a layer's neurons are CUBA, SDNN or RF
    return dict(kind="lif", keep_u=flat(lif.keep_u), keep_v=flat(lif.keep_v), vth=flat(lif.vth),
                bias=None if lif.bias is None else flat(lif.bias),
                u_mode=2 if lif.u_leaks_fully else int(lif.u_decays), v_decays=lif.v_decays,
                u_may_wrap=lif.u_may_wrap)


def unsupported(layers: List[CompiledLayer]) -> str:
    """Why the kernel cannot run this net exactly, or '' when it can: a recurrent synapse with delays or into
    neurons other than CUBA, a complex synapse with delays or recurrence, or a layer whose sum of 0/1 input may
    reach 2^31 (its int32 accumulator; graded sums are checked at every step instead). Only the torch backend's
    int64 sums hold those."""
    for k, l in enumerate(l for l in layers if l.kind != "flatten"):
        what = f"layer {k} ({l.kind})"
        if l.kind == "input" and k:
            return f"{what}: input neurons after the first layer"
        if l.rec_weight is not None and (l.lif is None or l.delay is not None):
            return f"{what}: a recurrent synapse with axonal delays or into non-CUBA neurons"
        if l.weight_imag is not None and (l.delay is not None or l.rec_weight is not None):
            return f"{what}: a complex synapse with axonal delays or recurrence"
        if l.kind != "input" and l.bound >= 2**31:
            return f"{what}: a sum may reach 2^31"
    return ""


def prepare(layers: List[CompiledLayer], input_shape: Tuple[int, ...], use_dot: bool = True) -> Union[list, str]:
    # -> [(kernel layer, stored order of its output, its out_shape)]
    """The layers as event-kernel layers, or the reason (:func:`unsupported`) the kernel cannot run them
    exactly. ``ValueError`` for a layer whose geometry does not hold together (:func:`_check`)."""
    reason = unsupported(layers)
    if reason:
        return reason
    use_dot = ev.has_dot() and use_dot
    out = []
    stored = channels_last(input_shape)  # the flat (C, H, W) index of each stored input position
    for l in layers:
        if l.kind == "flatten":  # a view: the stored order is unchanged
            continue
        order = channels_last(l.out_shape)
        n = int(np.prod(l.out_shape))

        def flat(a, shape=l.out_shape, order=order):
            return np.broadcast_to(a, shape).ravel()[order]

        neuron = _neuron(l, flat)
        if l.kind == "input":  # no synapse: its a_in and a bias image per sample come with the run
            if n < 1 or n > _INDEX_MAX or (l.lif is not None and l.lif.bias is not None):
                raise ValueError(f"event kernel: input layer of {n} neurons with a bias of its own")
            out.append((ev.KernelLayer(n, n, n, 0, False, neuron, input_neurons=True), order, l.out_shape))
            stored = order
            continue
        _check(l, len(out), len(stored))
        out.append((_kernel_layer(l, neuron, len(stored), n, stored, use_dot), order, l.out_shape))
        stored = order
    return out


# Costs of the two paths per step, in nanoseconds, measured on an AVX-512 server core (PilotNet's layers): a VPDPBUSD
# with its loads (x2 for graded input, two planes), and per input event one 16-lane row added at one fan-out target
# (graded: a multiply-add), plus the event's own overhead. Only the crossing between the paths depends on them.
DOT_NS, ROW_NS, GRADED_ROW_NS, EVENT_NS = 0.55, 3.0, 4.5, 4.0
FAN_BESIDE_DOT_BYTES = 1 << 26  # a spiking layer keeps fan-out weights (int32) beside its dot path up to this size
DOT_MIN: Optional[int] = None  # tests: force every layer that has both paths to one (0: dot, a huge count: fan-out)


def _dot_min(dot: dict, positions: int, fan_entries: int, n_in_pos: int, cog: int, graded: bool) -> int:
    """The input events per step from which the dot path is cheaper than the fan-out path (see the costs above):
    the dot path costs the same at every step, the fan-out path per event."""
    if DOT_MIN is not None:
        return DOT_MIN
    per_step = positions * int(dot["w8"].shape[0]) * int(dot["n_grp"]) * DOT_NS * (2 if graded else 1)  # [n_cb, ...]
    per_event = fan_entries / max(1, n_in_pos) * -(-cog // 16) * (GRADED_ROW_NS if graded else ROW_NS) + EVENT_NS
    return int(np.ceil(per_step / per_event))


def _kernel_layer(l: CompiledLayer, neuron: dict, n_in: int, n: int, stored: np.ndarray,
                  use_dot: bool) -> ev.KernelLayer:
    """A conv or dense layer as a kernel layer: its paths (depthwise, dot, table, fan-out; see :mod:`.ckernel`) and
    arrays."""
    # the dot path takes spikes into CUBA neurons and graded messages into any but resonate-and-fire neurons; the
    # depthwise and table paths spikes into CUBA neurons; the rest goes by fan-out
    spikes_lif = l.lif is not None and not l.graded_in
    fast = use_dot and (spikes_lif or (l.graded_in and l.weight_imag is None))
    graded: Dict[str, Any] = dict(graded_in=l.graded_in, graded_bound=l.bound)
    weight, c = l.weight, l.conv
    assert weight is not None  # _check refuses a layer without
    if l.kind == "conv":
        assert c is not None
        co, cig, kh, kw = weight.shape
        geometry = (c["stride"], c["padding"], c["dilation"])
        plain = c["groups"] == 1
        # a depthwise convolution (sum pooling) selects a weight per tap and channel: no dense products at all
        depthwise = ev.depthwise_table(tuple(l.in_shape), tuple(l.out_shape[1:]), weight, *geometry) \
            if spikes_lif and c["groups"] in (1, co) else None
        if depthwise is not None:
            return ev.KernelLayer(n_in, n, co, 0, l.may_wrap, neuron, w=weight, groups=c["groups"], dot=depthwise,
                                  **graded)
        dot = ev.dot_table(tuple(l.in_shape), tuple(l.out_shape[1:]), weight, *geometry) if plain and fast else None
        table = ev.nibble_table(tuple(l.in_shape), tuple(l.out_shape[1:]), weight, *geometry) \
            if plain and spikes_lif and dot is None else None
        fan = w = None
        if table is None and (dot is None or l.graded_in or weight.size * 4 <= FAN_BESIDE_DOT_BYTES):
            fan = ev.fan_table(tuple(l.in_shape[1:]), tuple(l.out_shape[1:]), (kh, kw), *geometry, co)
            w = weight.transpose(2, 3, 1, 0).reshape(kh * kw, cig, co)
        dot_min = 0 if dot is None or fan is None else _dot_min(
            dot, n // co, fan[1].size, fan[0].size - 1, co // c["groups"], l.graded_in)
        # Lava Conv wraps its 24-bit sum; graded sums are not bounded by the weights alone
        return ev.KernelLayer(n_in, n, co, 0, l.may_wrap or l.graded_in, neuron, fan=fan, w=w, groups=c["groups"],
                              table=table, dot=dot, dot_min=dot_min, **graded)
    # dense: one position; its input columns follow the stored order of what feeds it
    w = weight[:, stored]
    dot = ev.dot_table((n_in, 1, 1), (1, 1), w[:, :, None, None], (1, 1), (0, 0), (1, 1)) \
        if fast and l.rec_weight is None and l.delay is None else None
    scatter: Dict[str, Any] = {}
    if dot is None or l.graded_in or w.size * 4 <= FAN_BESIDE_DOT_BYTES:  # the fan-out path: one position
        scatter = dict(fan=(np.array([0, 1]), np.zeros(1), np.zeros(1)), w=w.T[None],
                       w_rec=None if l.rec_weight is None else l.rec_weight.T,
                       delay=None if l.delay is None else l.delay[:, stored].T,
                       w_imag=None if l.weight_imag is None else l.weight_imag[:, stored].T[None],
                       shift_imag=l.shift_imag)
    dot_min = 0 if dot is None or not scatter else _dot_min(dot, 1, 1, 1, w.shape[0], l.graded_in)
    return ev.KernelLayer(n_in, n, w.shape[0], l.shift, False, neuron, dot=dot, dot_min=dot_min, **scatter, **graded)


def run(prepared: list, s: np.ndarray, record: Sequence[str],
        resets: Optional[Sequence[Tuple[int, int]]] = None, input_bias: Optional[np.ndarray] = None,
        in_order: Optional[np.ndarray] = None, windows: Optional[Sequence[Tuple[int, int]]] = None) -> Dict[str, List]:
    """``s``: uint8 spikes ``[T, B, n_in]`` (int32 messages for a net whose first synapse takes graded input),
    in the first layer's stored (channels-last) order or read through ``in_order`` (stored value ``i`` is
    ``s[..., in_order[i]]``), or for a net that starts with input neurons their int32
    ``a_in`` ``[T, B, *shape]`` and ``input_bias`` (``bias_mant``, ``[B, *shape]``); ``resets`` per layer
    ``(interval, phase)`` (see :func:`sj2lava.netx.inputs.reset_phases`). Returns what the torch backend's
    ``run`` returns, the same integers. ``windows`` (record 'counts'): per layer the steps ``(lo, hi)`` over which
    its non-zero outputs are counted per neuron (``fired``) and at the last of them (``last``), float64 in the
    layer's logical order; its spikes are then returned only where asked (the output's always)."""
    sample_bias = None
    if prepared[0][0].input_neurons:  # s of width 0: no a_in (all zero); the kernel reads a_in in stored order
        in_order = prepared[0][1]
        s = s.reshape(s.shape[0], s.shape[1], -1)
        if input_bias is not None:  # bias_mant is 13-bit: << 6 fits int32; one image for all samples stays one
            shared = input_bias.shape[0] > 1 and input_bias.strides[0] == 0
            one = input_bias[:1] if shared else input_bias
            sample_bias = to_stored(one.astype(np.int32)[None] << 6, prepared[0][2], np.int32)[0]
            if shared:
                sample_bias = np.broadcast_to(sample_bias, (input_bias.shape[0], sample_bias.shape[1]))
    steps, batch = s.shape[0], s.shape[1]
    every = any(k in record for k in ("layer_spikes", "voltage", "current", "sigma"))
    state = "voltage" in record or "current" in record
    layers = [p[0] for p in prepared]
    last = len(layers) - 1
    chosen = [every or j == last for j in range(len(layers))]
    try:
        if in_order is not None and np.array_equal(in_order, np.arange(in_order.size)):
            in_order = None
        out = ev.run(layers, s, chosen, [state and c for c in chosen], torch.get_num_threads(), resets, sample_bias,
                     ["sigma" in record and c for c in chosen], in_order, counts=windows)
    except GradedOverflowError as e:
        layer = layers[e.layer]
        raise GradedOverflowError(
            f"emulate: synaptic layer {e.layer} receives graded messages up to {e.top}; with its weights (row sum "
            f"{layer.struct.graded_bound:g}) a sum may reach 2^31, where Lava's int32 arithmetic wraps in an order "
            "sj2lava does not reproduce. Scale the messages or weights down") from None

    counts = {} if windows is None else _logical_counts(out, prepared)

    def logical(a: Optional[np.ndarray], j: int) -> Optional[torch.Tensor]:
        if a is None:  # [T, B, stored] -> [T, B, *out_shape]
            return None
        _, stored, shape = prepared[j]
        if not np.array_equal(stored, np.arange(stored.size)):
            back = np.empty_like(a)
            back[:, :, stored] = a
            a = back
        return torch.from_numpy(a.reshape(steps, batch, *shape))

    rec = {key: [logical(o[key], j) for j, o in enumerate(out)] for key in ("spikes", "current", "voltage", "sigma")}
    rec["spikes"] = [a if a is None or a.dtype == torch.int32 else a.bool() for a in rec["spikes"]]  # SDNN: messages
    return dict({k: v for k, v in rec.items() if k == "spikes" or k in record}, **counts)


def _logical_counts(out: List[Dict[str, Optional[np.ndarray]]], prepared: list) -> Dict[str, List[torch.Tensor]]:
    """The kernel's per-neuron counts (``fired``, ``last``; stored order) in each layer's logical order, float64."""
    result: Dict[str, List[torch.Tensor]] = {"fired": [], "last": []}
    for j, o in enumerate(out):
        _, stored, _ = prepared[j]
        for key in ("fired", "last"):
            c = o[key]
            assert c is not None  # counted by the kernel when windows are given
            logical = np.empty(c.shape, np.float64)
            logical[stored] = c
            result[key].append(torch.from_numpy(logical))
    return result
