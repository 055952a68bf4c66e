"""Seeded random NetX networks, for checking the emulator against Lava (``make verify-emulator``).

Nets are built directly as :class:`NetSpec` (not from PyTorch), so they reach corners a trained
model rarely does: saturated and odd weights, sparse and all-negative rows, all-non-positive layers
with -256 (where NetX loses precision), large biases, zero and full decays, recurrent dense layers.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from .. import quant
from .spec import Conv, Cuba, Dense, Flatten, InputNeurons, Layer, NetSpec, Resonator, SigmaDelta, conv_out_shape


def _weights(rng: np.random.Generator, shape: Tuple[int, ...], dense: bool) -> np.ndarray:
    style = rng.choice(["small", "medium", "saturating", "sparse", "negative_rows", "odd", "non_positive"])
    if style == "small":
        w = rng.integers(-12, 13, shape) * 2
    elif style == "medium":
        w = rng.integers(-64, 64, shape) * 2
    elif style == "saturating":
        w = rng.choice([-256, -254, 254, 252, 0, 30], size=shape)
    elif style == "sparse":
        w = rng.integers(-128, 128, shape) * 2 * (rng.random(shape) < 0.15)
    elif style == "negative_rows":
        w = rng.integers(-60, 80, shape) * 2
        rows = rng.random(shape[0]) < 0.5
        w[rows] = -np.abs(w[rows])
    elif style == "odd":
        w = rng.integers(-256, 255, shape)
    else:  # all <= 0, with -256: NetX's weight-bit optimisation loses precision here
        w = -rng.integers(0, 129, shape) * 2
        w.reshape(-1)[rng.integers(w.size)] = -256
    if dense and not np.any(w):
        w.reshape(-1)[0] = 2  # NetX cannot load an all-zero dense layer
    return w.astype(np.int64)


def _neuron(rng: np.random.Generator, weight: np.ndarray) -> Cuba:
    """Decays from the corners (0, 4096) and between; a threshold near the layer's typical drive so
    that most layers spike (a silent layer proves little)."""
    def decay():
        return int(rng.choice([0, 4096, rng.integers(1, 4096), rng.integers(1, 400)]))

    drive = float(np.clip(weight, 0, None).reshape(weight.shape[0], -1).sum(1).mean()) * 0.4
    th = int(max(1, rng.uniform(0.05, 0.8) * drive)) if rng.random() < 0.9 else int(rng.integers(0, 3000))
    return Cuba(np.asarray(decay()), np.asarray(decay()), np.asarray(min(th, quant.V_TH_MANT_MAX)))


def _bias(rng: np.random.Generator, n: int, weight: np.ndarray) -> Optional[np.ndarray]:
    if weight.max() <= 0:  # inhibitory-only layers spike only through a positive bias
        return rng.integers(5, 200, n).astype(np.int64)
    if rng.random() < 0.6:
        return None
    return rng.integers(-60, 60, n).astype(np.int64) * int(rng.choice([1, 1, 8]))


def _delays(rng: np.random.Generator, shape: Tuple[int, int]) -> np.ndarray:
    top = int(rng.choice([3, 10, 62]))
    form = rng.choice(["synapse", "output", "input", "one"])
    size = {"synapse": shape, "output": (shape[0], 1), "input": (1, shape[1]), "one": (1, 1)}[form]
    d = rng.integers(0, top + 1, size)
    d.flat[0] = top  # the largest delay of the layer really occurs
    return np.broadcast_to(d, shape).astype(np.int64).copy()


def random_spec(seed: int, max_layers: int = 4, wide: float = 0.0, delays: float = 0.0,
                inputs: float = 0.0, sdnn: float = 0.0, rf: float = 0.0) -> NetSpec:
    """A random valid NetX network (input shape, 1..max_layers synaptic layers) from ``seed``.

    ``wide``: the chance that a convolution has 16 or 32 output channels and no groups (the shape
    the emulator's event kernel sums by table); ``delays``: the chance that a (non-recurrent) dense layer
    has axonal delays (one per synapse, per output, per input or one for all, 0..62 with both ends
    likely); ``inputs``: the chance that the net starts with input neurons (NetX's ``Input`` block, driven
    by a bias image and/or ``a_in``); ``sdnn``: the chance that the net gets sigma-delta neurons (most layers
    ReLU SigmaDelta, some CUBA between them, a Sigma output or a Delta input layer on some nets; graded messages);
    ``rf``: the chance that each plain dense layer of a non-SDNN net becomes complex with resonate-and-fire
    neurons (RF or RF_IZ). 0 keeps the nets of earlier versions seed for seed.
    """
    rng = np.random.default_rng(seed)
    if rng.random() < 0.6:
        shape: Tuple[int, ...] = (int(rng.integers(1, 4)), int(rng.integers(4, 11)), int(rng.integers(4, 11)))
    else:
        shape = (int(rng.integers(5, 41)),)
    input_shape = shape
    layers: List[Layer] = []
    n_syn = int(rng.integers(1, max_layers + 1))
    while sum(not isinstance(l, Flatten) for l in layers) < n_syn:
        if len(shape) == 3:
            choice = rng.choice(["conv", "conv", "pool", "flatten"])
            if choice == "flatten":
                layers.append(Flatten(shape, (int(np.prod(shape)),)))
                shape = layers[-1].out_shape
                continue
            conv = _random_conv(rng, shape, choice, wide)
            if conv is not None:
                layers.append(conv)
                shape = conv.out_shape
        else:
            dense = _random_dense(rng, shape, delays)
            layers.append(dense)
            shape = dense.out_shape
    if inputs and rng.random() < inputs:  # drawn last, so the layers after it are those of inputs=0
        drive = np.full((1, 1), int(rng.integers(50, 400)))  # a typical bias image value, for the threshold
        layers.insert(0, InputNeurons(input_shape, input_shape, _neuron(rng, drive)))
    if sdnn:  # its own generator, so that the nets above stay those of sdnn=0
        r = np.random.default_rng(seed + 7_000_000)
        if r.random() < sdnn:
            layers = _to_sdnn(r, input_shape, layers)
    if rf and not any(not isinstance(l, Flatten) and l.neuron.graded for l in layers):
        r = np.random.default_rng(seed + 9_000_000)
        layers = [_to_rf(r, l) if isinstance(l, Dense) and l.weight_rec is None and l.delay is None
                  and r.random() < rf else l for l in layers]
    return NetSpec(input_shape, layers)


def _random_conv(rng: np.random.Generator, shape: Tuple[int, ...], choice: str, wide: float) -> Optional[Conv]:
    """A random conv (or, for ``choice == 'pool'``, a depthwise sum-pool) on a ``(C, H, W)`` input; None where its
    geometry leaves no output (the draws are made all the same, so the next layer's stay as they were)."""
    c, h, w = shape
    if choice == "pool":
        k = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        k = (min(k[0], h), min(k[1], w))
        stride, pad, dil, groups, c_out = k, (0, 0), (1, 1), c, c
        weight = np.full((c, 1, *k), int(rng.choice([64, 64, 32, 128, 254])), dtype=np.int64)
    else:
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pad = (int(rng.integers(0, 2)), int(rng.integers(0, 2)))
        dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        groups = int(rng.choice([g for g in (1, 2, 3) if c % g == 0]))
        c_out = groups * int(rng.integers(1, 4))
        if wide and rng.random() < wide:
            groups, c_out = 1, int(rng.choice([16, 32]))
        weight = _weights(rng, (c_out, c // groups, *k), dense=False)
    out = conv_out_shape(shape, c_out, k, stride, pad, dil)[1:]
    if min(out) < 1:
        return None
    return Conv(shape, (c_out, *out), weight, stride, pad, dil, groups, _neuron(rng, weight),
                _bias(rng, c_out, weight))


def _random_dense(rng: np.random.Generator, shape: Tuple[int, ...], delays: float) -> Dense:
    """A random dense layer on ``(features,)``: recurrent on 15% of draws, else with axonal delays at ``delays``."""
    n_out = int(rng.integers(2, 25))
    weight = _weights(rng, (n_out, shape[0]), dense=True)
    rec = None
    if rng.random() < 0.15:
        rec = rng.integers(-40, 40, (n_out, n_out)).astype(np.int64) * 2
    delay = _delays(rng, (n_out, shape[0])) if rec is None and delays and rng.random() < delays else None
    return Dense(shape, (n_out,), weight, _neuron(rng, weight), _bias(rng, n_out, weight), rec, delay)


def _to_rf(rng: np.random.Generator, l: Dense) -> Dense:
    """A complex dense layer with RF or RF_IZ neurons: decays from a period of 3..40 steps and a decay of
    0..0.2 (some per neuron), a threshold near the drive of the real part."""
    n = l.out_shape[0]
    shape = n if rng.random() < 0.5 else 1
    period, alpha = rng.uniform(3, 40, shape), rng.uniform(0, 0.2, shape)
    sin = np.round(4096 * (1 - alpha) * np.sin(2 * np.pi / period)).astype(np.int64)
    cos = np.round(4096 * (1 - alpha) * np.cos(2 * np.pi / period)).astype(np.int64)
    w_re, w_im = (rng.integers(-100, 128, l.weight.shape).astype(np.int64) * 2 for _ in range(2))
    drive = float(np.clip(w_re, 0, None).sum(1).mean())
    th = int(max(1, rng.uniform(0.2, 2.0) * drive))
    neuron = Resonator(sin.reshape(()) if shape == 1 else sin, cos.reshape(()) if shape == 1 else cos, th,
                       str(rng.choice(["RF_PHASE", "RF_IZHIKEVICH"])))
    return Dense(l.in_shape, l.out_shape, w_re, neuron, weight_imag=w_im)


def _to_sdnn(rng: np.random.Generator, input_shape: Tuple[int, ...], layers: list) -> list:
    """Most synaptic layers become ReLU SigmaDelta with small weights (graded sums grow layer by layer, and
    Lava's int32 must hold them), thresholds 0..40 message units and biases; recurrent ones stay CUBA (NetX
    SDNN has none); the last may become a Sigma output; a Delta input layer on some nets."""
    out = []
    for i, l in enumerate(layers):
        if isinstance(l, (Flatten, InputNeurons)) or getattr(l, "weight_rec", None) is not None or rng.random() < 0.2:
            out.append(l)
            continue
        pool = isinstance(l, Conv) and l.groups == l.in_shape[0] and l.weight.shape[1] == 1 and (
            len(np.unique(l.weight)) == 1)
        w = l.weight if pool else rng.integers(-8, 9, l.weight.shape).astype(np.int64) * 2
        if isinstance(l, Dense) and not np.any(w):
            w.reshape(-1)[0] = 2
        last = i == len(layers) - 1
        role = "sigma" if last and rng.random() < 0.3 else "sigma_delta"
        neuron = SigmaDelta(int(rng.choice([0, 0, int(rng.integers(1, 8)), int(rng.integers(8, 41))])), role)
        bias = None if role == "sigma" or rng.random() < 0.4 else rng.integers(-60, 61, l.out_shape[0]).astype(np.int64)
        if isinstance(l, Conv):
            out.append(Conv(l.in_shape, l.out_shape, w, l.stride, l.padding, l.dilation, l.groups, neuron, bias))
        else:
            out.append(Dense(l.in_shape, l.out_shape, w, neuron, bias, None, l.delay))
    if rng.random() < 0.8:  # graded input, as SDNN nets mostly take it (CUBA input neurons give way)
        out = out[1:] if isinstance(out[0], InputNeurons) else out
        out.insert(0, InputNeurons(input_shape, input_shape, SigmaDelta(int(rng.choice([0, 0, 2, 10])), "delta")))
    return out
