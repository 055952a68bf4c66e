"""Prove the front-ends against their frameworks on seeded random nets (``make verify-frontends``).

    python tools/verify_frontends.py [--frontend all|spikingjelly|snntorch|lavadl|nir] [--nets 200]
                                     [--first-seed 0] [--lava 2] [--off-grid]

Each net is built in its framework with the framework's own classes: SpikingJelly IF/LIF nodes with ``layer.*``,
``SeqToANNContainer``, BatchNorm, AvgPool, lava_exchange SumPool and Dropout, in both step modes; snnTorch
Leaky/Synaptic/RLeaky (zero reset) in a Sequential with ``init_hidden``; lava-dl ``slayer.block.cuba``
Conv/Pool/Flatten/Dense/Recurrent with axonal delays; NIR graphs of Conv2d, SumPool2d, AvgPool2d, Affine, Linear,
Scale, Delay, Flatten, IF, LIF and CubaLIF with recurrent loops (flat, or as snnTorch's subgraph) and 2-4 pools
in most conv graphs.
It goes through the front-end (``convert(model, example_input=x)`` / ``from_nir``), ``export`` and ``emulate``,
and is compared spike for spike in every layer:

- the framework's own forward of the layer (for NIR, the float64 forward Euler of the graph's equations in
  :func:`nir_reference`, written apart from ``simulate_nir``), fed the converted net's spikes of the layer before
  delayed by Lava's one step per synaptic layer (lava-dl blocks delay themselves), against the BlockContainers;
- ``emulate`` of the exported file against the BlockContainers, and, for the first ``--lava`` nets of each
  front-end, Lava against both.

On the grid (the default) every number is one that float and Loihi's fixed point compute alike, so the translation
must be exact and any mismatch is a bug (exit 1): whole weights and biases (a pool layer's tap: 1, 1/4 or lava-dl's
1/2 steps), thresholds odd multiples of 1/64, decays that are short binary fractions (0, 1/4, 1/2, 3/4, 1) over at
most as many steps as keep every state on Loihi's 1/4096 grid (Loihi truncates each decay product there, float
does not; lava-dl is fixed point itself and takes any decay), and no layer whose synaptic sum or current could
pass Lava's 24 bits (export refuses those). Every layer of every net spikes (a seed draws again until it does).
SpikingJelly fires on ``v >= threshold`` and Loihi on ``v > threshold``: its nets get thresholds 2^-16 above the
grid value, which Loihi floors to it, so that a tie cannot occur. ``--off-grid`` draws float weights, biases,
decays and thresholds instead and prints the agreement per layer (it never fails: there the rounding to Loihi's
grid is the difference).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

FRONTENDS = ("spikingjelly", "snntorch", "lavadl", "nir")
_EXACT_BITS = 12  # Loihi's state is kept in 1/4096 units


# --------------------------------------------------------------------------- the random layer plan
@dataclass
class Neu:
    """A layer's neuron: ``cd`` and ``vd`` the fractions of current and voltage lost per step (Loihi's decays /
    4096), ``th`` the threshold, ``kind`` ``if`` / ``lif`` / ``cuba``."""
    kind: str
    cd: float
    vd: float
    th: float


@dataclass
class Layer:
    """One Loihi layer as Loihi sees it: ``kind`` conv / pool / dense; ``w`` its weights (input scale included;
    a pool's one tap weight), ``bias`` per output channel or feature (added to v every step); ``pre_pool`` a 2x2 pool
    (``'sum'``/``'avg'``) on its input composed into it; ``flatten`` before it; ``delay`` axonal steps per output;
    ``rec`` recurrent weights; ``in_shape`` what it reads."""
    kind: str
    neu: Neu
    in_shape: Tuple[int, ...]
    w: np.ndarray
    bias: Optional[np.ndarray] = None
    stride: int = 1
    padding: int = 0
    pool: str = "sum"
    pre_pool: Optional[str] = None
    flatten: bool = False
    delay: Optional[np.ndarray] = None
    rec: Optional[np.ndarray] = None
    choice: dict = field(default_factory=dict)  # the framework's way of writing it, drawn per layer


@dataclass
class Plan:
    input_shape: Tuple[int, ...]
    layers: List[Layer]
    steps: int
    grid: bool


def _values(rng, shape, grid: bool, step: float = 1.0, lo: int = -2, hi: int = 4) -> np.ndarray:
    """``m * step`` for integers m in [lo, hi) on the grid; off it, floats of about the same spread."""
    if grid:
        return rng.integers(lo, hi, shape).astype(np.float64) * step
    return rng.normal((lo + hi) / 2, (hi - lo) / 3, shape) * step


def _bits(values) -> int:
    """Fraction bits of the least precise of ``values`` (binary fractions)."""
    a = np.abs(np.asarray(values, dtype=np.float64)).reshape(-1)
    for b in range(40):
        if np.all(np.floor(a * 2 ** b) == a * 2 ** b):
            return b
    return 40


def _neuron(rng, frontend: str, grid: bool, w: np.ndarray) -> Neu:
    """A neuron whose threshold is a fair share of the largest drive its weights ``w`` (one row per output; a
    pool's tap) can give, so that layers deep in the net still spike."""
    drive = float(np.maximum(w.reshape(len(w), -1), 0).sum(1).mean()) * (4 if w.size == 1 else 1)
    top = max(2, int(64 * drive * rng.uniform(0.1, 0.4)) // 2)
    th = (2 * int(rng.integers(top // 2, top)) + 1) / 64  # odd multiples of 1/64
    kinds = {"spikingjelly": ["if", "lif"], "snntorch": ["lif", "cuba"], "lavadl": ["cuba"],
             "nir": ["if", "lif", "cuba"]}[frontend]
    kind = str(rng.choice(kinds))
    if not grid:
        th = float(th * rng.uniform(0.9, 1.1))
        cd = float(rng.uniform(0.05, 0.95)) if kind == "cuba" else 1.0
        vd = 0.0 if kind == "if" else (1 / float(rng.uniform(1.2, 6)) if frontend == "spikingjelly"
                                       else float(rng.uniform(0.05, 0.95)))
        return Neu(kind, cd, vd, th)
    if frontend == "lavadl":  # fixed point itself: any decay on the 1/4096 grid is exact, down to the current decay
        # that keeps the worst-case u within Lava's 24 bits (where it would wrap, export refuses the layer)
        rows = np.abs(w.reshape(len(w), -1)).sum(1).max() * (4 if w.size == 1 else 1) * 4096
        least = min(4096, int(np.ceil(rows * 4096 / (2 ** 23 - 1))) + 1)
        return Neu(kind, int(rng.integers(least, 4097)) / 4096, int(rng.integers(0, 4097)) / 4096, th)
    if kind == "if":
        return Neu(kind, 1.0, 0.0, th)
    if frontend == "spikingjelly":  # LIFNode(tau): vd = 1 / tau
        return Neu(kind, 1.0, float(rng.choice([0.5, 0.25])), th)
    decays = (0.0, 0.25, 0.5, 0.5, 0.75, 1.0) if frontend == "snntorch" else (0.25, 0.5, 0.5, 1.0)  # NIR: dt/tau exact
    vd = float(rng.choice(decays))
    cd = 1.0 if kind == "lif" else float(rng.choice(decays))
    return Neu(kind, cd, vd, th)


def random_plan(seed: int, frontend: str, grid: bool = True) -> Plan:
    """A seeded random chain of Loihi layers that ``frontend`` can write: conv nets (conv layers, sum/avg pool
    layers, max-pools over spikes (OR layers), 2x2 pools composed into the next conv or dense, up to 4 pools for
    NIR, flatten, dense) or dense nets (axonal delays and recurrence where the framework has them), with biases
    where its layers carry them."""
    rng = np.random.default_rng([seed, FRONTENDS.index(frontend), int(grid)])
    for _ in range(100):
        plan = _draw(rng, frontend, grid)
        if plan is not None:
            return plan
    raise RuntimeError(f"no plan for seed {seed}")


def _draw(rng, frontend: str, grid: bool) -> Optional[Plan]:
    layers: List[Layer] = []
    composable = frontend != "lavadl"  # lava-dl has no pool-into-synapse form
    pool_kinds = {"spikingjelly": ["sum", "avg", "max"], "snntorch": ["avg", "max"], "lavadl": ["sum"],
                  "nir": ["sum", "avg"]}
    pre_kinds = {"spikingjelly": ["avg"], "snntorch": ["avg"], "nir": ["sum", "avg"]}.get(frontend, [])
    if rng.random() < (0.85 if frontend == "nir" else 0.7):
        shape: Tuple[int, ...] = (int(rng.integers(1, 4)), *[int(rng.choice([8, 12, 16, 20]))] * 2)
        pools = int(rng.integers(2, 5)) if frontend == "nir" else int(rng.integers(0, 4))
        for _ in range(int(rng.integers(1, 4))):
            pre = None
            if layers and pools and composable and shape[1] % 2 == 0 and shape[1] >= 4 and rng.random() < 0.5:
                pre, pools = str(rng.choice(pre_kinds)), pools - 1
            h = shape[1] // 2 if pre else shape[1]
            k = int(rng.choice([1, 3, 3, 5])) if h >= 5 else 1
            same = rng.random() < 0.6  # "same" padding keeps even sizes, where pools fit
            pad = 0 if pre else (k // 2 if same else int(rng.integers(0, k // 2 + 1)))
            stride = 1 if same else (int(rng.choice([1, 1, 2])) if h >= 6 else 1)
            cout = int(rng.integers(2, 6))
            hout = (h + 2 * pad - k) // stride + 1
            w = _values(rng, (cout, shape[0], k, k), grid)
            layers.append(Layer("conv", _neuron(rng, frontend, grid, w), shape, w, _bias(rng, cout, frontend, grid),
                                stride, pad, pre_pool=pre))
            shape = (cout, hout, hout)
            while pools and shape[1] >= 2 and shape[1] % 2 == 0 and rng.random() < 0.6:
                kind = str(rng.choice(pool_kinds[frontend]))
                tap = 1.0 if kind == "sum" else 0.25
                if frontend == "lavadl":
                    tap = float(rng.choice([0.5, 1.0, 1.5]))
                neu = _neuron(rng, frontend, grid, np.array([tap]))
                if kind == "max":  # a MaxPool2d over spikes: sj2lava's OR layer (memoryless, threshold 1/2)
                    tap, neu = 1.0, Neu("or", 1.0, 1.0, 0.5)
                layers.append(Layer("pool", neu, shape, np.array([tap]), pool=kind))
                pools -= 1
                shape = (shape[0], shape[1] // 2, shape[2] // 2)
        pre = None
        if pools and composable and shape[1] % 2 == 0:
            pre = str(rng.choice(pre_kinds))
        n_in = int(np.prod(shape)) // (4 if pre else 1)
        flatten = True
        if n_in > 600:  # its synaptic sum could pass Lava's 24 bits, which export refuses: draw again
            return None
    else:
        shape, pre, flatten = (int(rng.integers(8, 40)),), None, False
        n_in = shape[0]
    for j in range(int(rng.integers(1, 3))):
        n_out = int(rng.integers(3, 16))
        w = _values(rng, (n_out, n_in), grid)
        lay = Layer("dense", _neuron(rng, frontend, grid, w), shape, w, _bias(rng, n_out, frontend, grid),
                    pre_pool=pre if j == 0 else None, flatten=flatten and j == 0)
        if frontend in ("lavadl", "nir") and rng.random() < 0.3:
            lay.delay = rng.integers(0, 4, n_out)
        elif frontend in ("snntorch", "nir", "lavadl") and rng.random() < 0.3:
            lay.rec = _values(rng, (n_out, n_out), grid)
            if frontend == "snntorch":  # RLeaky: no synaptic current
                lay.neu = Neu("lif", 1.0, lay.neu.vd, lay.neu.th)
                if rng.random() < 0.4:  # one-to-one (V)
                    lay.rec = np.diag(_values(rng, (n_out,), grid))
                    lay.choice["one_to_one"] = True
        layers.append(lay)
        shape, n_in = (n_out,), n_out
    for l in layers:  # the framework's own way of writing each layer
        l.choice.setdefault("r", rng.random())
        if frontend == "snntorch" and l.neu.cd < 1:  # a bias in a decaying current has no exact Loihi form
            l.bias = None
        if frontend == "nir" and l.delay is not None and l.neu.kind == "if":  # IF has no v_leak, and an Affine's
            l.bias = None  # bias passes through the Delay, starting late
    for l in layers:  # the synaptic sum and the current stay within Lava's 24 bits, where export accepts them
        rows = np.abs(l.w.reshape(len(l.w), -1)).sum(1).max() * (4 if l.pre_pool or l.kind == "pool" else 1)
        rows += 0 if l.rec is None else np.abs(l.rec).sum(1).max()
        if rows * 4096 / (l.neu.cd or 1.0) > 2 ** 23 - 1:
            return None
    plan = Plan(layers[0].in_shape, layers, int(rng.integers(8, 17)), grid)
    if grid and frontend != "lavadl":
        plan.steps = min(plan.steps, _exact_steps(plan))
    return plan if plan.steps >= 4 else None


def _bias(rng, n: int, frontend: str, grid: bool) -> Optional[np.ndarray]:
    if frontend == "lavadl" or rng.random() < 0.4:
        return None
    return _values(rng, (n,), grid, 1.0, -2, 3)


def _exact_steps(plan: Plan) -> int:
    """Steps within which every u and v stays on Loihi's 1/4096 grid, so that its truncating decays equal float:
    a decay with b fraction bits adds b bits a step to state that starts with the weights' and bias' bits."""
    t = plan.steps
    for l in plan.layers:
        base = _bits(np.concatenate([l.w.reshape(-1),
                                     np.zeros(1) if l.bias is None else l.bias,
                                     np.zeros(1) if l.rec is None else l.rec.reshape(-1)]))
        b = max(_bits(l.neu.cd), _bits(l.neu.vd))
        if b:
            t = min(t, (_EXACT_BITS - base) // b)
    return t


def in_hw(l: Layer) -> Tuple[int, ...]:
    """The map a layer's synapse reads after its composed pool."""
    if l.pre_pool and len(l.in_shape) == 3:
        return (l.in_shape[0], l.in_shape[1] // 2, l.in_shape[2] // 2)
    return l.in_shape


# --------------------------------------------------------------------------- comparison helpers
def shift(x: torch.Tensor) -> torch.Tensor:
    """``x`` delayed by one step along time (Lava's synaptic delay)."""
    return torch.cat([torch.zeros_like(x[:1]), x[:-1]])


def mismatches(a: torch.Tensor, b: torch.Tensor) -> int:
    a, b = a.reshape(a.shape[0], a.shape[1], -1), b.reshape(b.shape[0], b.shape[1], -1)
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return int((a.float() != b.float()).sum())


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.array(a), dtype=torch.float32)


def _set(param: torch.Tensor, value) -> None:
    with torch.no_grad():
        param.copy_(torch.as_tensor(np.asarray(value), dtype=param.dtype).reshape(param.shape))


# --------------------------------------------------------------------------- SpikingJelly
def build_spikingjelly(plan: Plan, rng) -> Tuple[nn.Module, List[Callable], dict]:
    """An ``nn.Sequential`` of SpikingJelly modules (step mode drawn per net) and per layer its forward."""
    from spikingjelly.activation_based import functional, lava_exchange, layer, neuron

    mode = "m" if rng.random() < 0.6 else "s"
    segments: List[List[nn.Module]] = []
    for l in plan.layers:
        mods: List[nn.Module] = []
        tau_in = 1.0
        if l.neu.kind == "lif" and l.kind != "pool" and l.choice["r"] < 0.5:
            tau_in = 1 / l.neu.vd  # decay_input=True: SpikingJelly scales the input by 1/tau
        if l.pre_pool:
            mods.append(layer.AvgPool2d(2, 2, step_mode=mode) if l.choice["r"] < 0.7 else
                        _wrap(nn.AvgPool2d(2), mode, layer))
        if l.flatten:
            mods.append(layer.Flatten(step_mode=mode) if mode == "m" or l.choice["r"] < 0.5 else nn.Flatten())
        if l.kind == "pool" and l.pool == "max":  # over spikes: no neuron of its own
            mods.append(layer.MaxPool2d(2, 2, step_mode=mode) if l.choice["r"] < 0.5 else
                        _wrap(nn.MaxPool2d(2), mode, layer))
            segments.append(mods)
            continue
        if l.kind == "pool":
            mods.append(_wrap(lava_exchange.SumPool2d(2, stride=2), mode, layer) if l.pool == "sum" else
                        layer.AvgPool2d(2, 2, step_mode=mode))
        else:
            wf = l.w * tau_in * (4.0 if l.pre_pool == "avg" else 1.0)
            bf = None if l.bias is None else l.bias * tau_in
            bn = l.choice["r"] > 0.6 or (bf is not None and l.kind == "conv" and l.choice["r"] > 0.3)
            sc = 0.5 if l.choice["r"] > 0.8 else 2.0 if l.choice["r"] > 0.7 else 1.0  # BN's gamma / sqrt(var)
            if l.kind == "conv":
                syn = nn.Conv2d(l.w.shape[1], l.w.shape[0], l.w.shape[2], stride=l.stride, padding=l.padding,
                                bias=bf is not None and not bn)
                norm = nn.BatchNorm2d(l.w.shape[0], eps=0.0)
            else:
                syn = nn.Linear(l.w.shape[1], l.w.shape[0], bias=bf is not None and not bn)
                norm = nn.BatchNorm1d(l.w.shape[0], eps=0.0)
            _set(syn.weight, wf / sc if bn else wf)
            if bn:  # y = (W x - mean) * sc + beta: beta chosen so that the whole is W' x + b
                mean = rng.integers(-2, 3, l.w.shape[0]) * 0.5
                _set(norm.weight, np.full(l.w.shape[0], sc))
                _set(norm.running_var, np.ones(l.w.shape[0]))
                _set(norm.running_mean, mean)
                _set(norm.bias, (0 if bf is None else bf) + mean * sc)
                mods.extend([_wrap(syn, mode, layer), _wrap(norm, mode, layer)] if l.choice["r"] < 0.8 else
                            [layer.SeqToANNContainer(syn, norm) if mode == "m" else nn.Sequential(syn, norm)])
            else:
                if bf is not None:
                    _set(syn.bias, bf)
                mods.append(_wrap(syn, mode, layer))
        if l.choice["r"] > 0.85:
            mods.append(layer.Dropout(0.3, step_mode=mode))
        th = l.neu.th + 2.0 ** -16  # SpikingJelly's >= on a threshold above the grid: never a tie
        if l.neu.kind == "if":
            mods.append(neuron.IFNode(v_threshold=th, v_reset=0.0, step_mode=mode))
        else:
            mods.append(neuron.LIFNode(tau=1 / l.neu.vd, decay_input=tau_in != 1.0, v_threshold=th, v_reset=0.0,
                                       step_mode=mode))
        segments.append(mods)
    model = nn.Sequential(*[m for s in segments for m in s]).eval()

    def run(mods: List[nn.Module]) -> Callable:
        seg = nn.Sequential(*mods).eval()

        def f(x: torch.Tensor) -> torch.Tensor:
            functional.reset_net(seg)
            with torch.no_grad():
                y = seg(x) if mode == "m" else torch.stack([seg(xt) for xt in x])
            functional.reset_net(seg)
            return y
        return f

    return model, [run(s) for s in segments], {"rescale": False, "mode": mode}


def _wrap(m: nn.Module, mode: str, layer) -> nn.Module:
    """A plain torch module as SpikingJelly's ``layer.*`` in its step mode (multi-step: SeqToANNContainer)."""
    if mode == "s":
        return m
    return layer.SeqToANNContainer(m)


# --------------------------------------------------------------------------- snnTorch
def build_snntorch(plan: Plan, rng) -> Tuple[nn.Module, List[Callable], dict]:
    """An ``nn.Sequential`` of torch layers and snnTorch neurons with ``init_hidden`` (stepped over time)."""
    import snntorch as snn
    from snntorch import utils

    segments: List[List[nn.Module]] = []
    for l in plan.layers:
        mods: List[nn.Module] = []
        if l.pre_pool:
            mods.append(nn.AvgPool2d(2))
        if l.flatten:
            mods.append(nn.Flatten())
        if l.kind == "pool" and l.pool == "max":  # over spikes: no neuron of its own
            segments.append([nn.MaxPool2d(2)])
            continue
        if l.kind == "pool":
            mods.append(nn.AvgPool2d(2))
        else:
            wf = l.w * (4.0 if l.pre_pool == "avg" else 1.0)
            syn = (nn.Conv2d(l.w.shape[1], l.w.shape[0], l.w.shape[2], stride=l.stride, padding=l.padding,
                             bias=l.bias is not None) if l.kind == "conv" else
                   nn.Linear(l.w.shape[1], l.w.shape[0], bias=l.bias is not None))
            _set(syn.weight, wf)
            if l.bias is not None:
                _set(syn.bias, l.bias)
            mods.append(syn)
        beta, alpha, th = 1 - l.neu.vd, 1 - l.neu.cd, l.neu.th
        if l.rec is not None:
            n = l.rec.shape[0]
            one = bool(l.choice.get("one_to_one"))
            neu = snn.RLeaky(beta=beta, threshold=th, reset_mechanism="zero", reset_delay=False, init_hidden=True,
                             all_to_all=not one, linear_features=n if not one else None,
                             V=_t(np.diag(l.rec)) if one else 1.0)
            if not one:
                _set(neu.recurrent.weight, l.rec)
                _set(neu.recurrent.bias, np.zeros(n))
        elif l.neu.kind == "cuba":
            neu = snn.Synaptic(alpha=alpha, beta=beta, threshold=th, reset_mechanism="zero", reset_delay=False,
                               init_hidden=True)
        else:
            neu = snn.Leaky(beta=beta, threshold=th, reset_mechanism="zero", init_hidden=True)
        mods.append(neu)
        segments.append(mods)
    model = nn.Sequential(*[m for s in segments for m in s])

    def run(mods: List[nn.Module]) -> Callable:
        seg = nn.Sequential(*mods)

        def f(x: torch.Tensor) -> torch.Tensor:
            utils.reset(seg)
            with torch.no_grad():
                return torch.stack([seg(xt) for xt in x])
        return f

    return model, [run(s) for s in segments], {}


# --------------------------------------------------------------------------- lava-dl
def build_lavadl(plan: Plan, rng) -> Tuple[nn.Module, List[Callable], dict]:
    """An ``nn.Sequential`` of lava-dl ``slayer.block.cuba`` blocks (their own fixed point and output delay)."""
    from lava.lib.dl import slayer

    from sj2lava import NXT_to_TNX, TNX_to_NXT

    segments: List[List[nn.Module]] = []
    x0 = torch.zeros(1, *plan.input_shape, 2)
    for l in plan.layers:
        p = dict(threshold=l.neu.th, current_decay=l.neu.cd, voltage_decay=l.neu.vd)
        mods: List[nn.Module] = []
        if l.flatten:
            mods.append(slayer.block.cuba.Flatten())
        if l.kind == "conv":
            blk = slayer.block.cuba.Conv(p, l.w.shape[1], l.w.shape[0], l.w.shape[2], stride=l.stride,
                                         padding=l.padding)
            _set(blk.synapse.weight, l.w[..., None])
        elif l.kind == "pool":
            blk = slayer.block.cuba.Pool(p, 2, weight_scale=float(l.w[0]))
        elif l.rec is not None:
            blk = slayer.block.cuba.Recurrent(p, l.w.shape[1], l.w.shape[0])
            _set(blk.input_synapse.weight, l.w[..., None, None, None])
            _set(blk.recurrent_synapse.weight, l.rec[..., None, None, None])
        else:
            blk = slayer.block.cuba.Dense(p, l.w.shape[1], l.w.shape[0], delay=l.delay is not None)
            _set(blk.synapse.weight, l.w[..., None, None, None])
        mods.append(blk)
        with torch.no_grad():  # lava-dl learns its shapes (and draws its delays) on the first forward
            for m in mods:
                x0 = m(x0)
        if l.delay is not None:
            _set(blk.delay.delay, l.delay.astype(np.float64))
        segments.append(mods)
    model = nn.Sequential(*[m for s in segments for m in s])

    def run(mods: List[nn.Module]) -> Callable:
        seg = nn.Sequential(*mods)

        def f(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return NXT_to_TNX(seg(TNX_to_NXT(x).contiguous()))
        return f

    return model, [run(s) for s in segments], {"self_delayed": True}


# --------------------------------------------------------------------------- NIR
@dataclass
class _NirLayer:
    """The nodes of one Loihi layer of a NIR graph, in order, and the recurrent weights on its neuron."""
    names: List[str]
    nodes: List[object]
    rec: Optional[np.ndarray] = None


def build_nir(plan: Plan, rng):
    """A NIR graph (``nir.NIRGraph``) and, per layer, its float64 reference; ``dt`` is 1 or 2^-10."""
    import nir

    dt = 1.0 if rng.random() < 0.5 else 2.0 ** -10
    nodes = {"input": nir.Input(input_type={"input": np.array(plan.input_shape)})}
    chain, loops, layers = ["input"], [], []
    for i, l in enumerate(plan.layers):
        r = l.choice["r"]
        names: List[str] = []

        def add(name: str, node, names=names) -> None:
            nodes[name] = node
            names.append(name)
        if l.pre_pool:
            kind = nir.SumPool2d if l.pre_pool == "sum" else nir.AvgPool2d
            add(f"{i}_prepool", kind(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])))
        if l.flatten and (l.pre_pool is None or r < 0.6):
            add(f"{i}_flat", nir.Flatten(input_type={"input": np.array(in_hw(l))}, start_dim=0, end_dim=-1))
        s = 1.0 if l.kind == "pool" else float(rng.choice([0.5, 1.0, 2.0]))  # the neuron's input scale
        f = float(rng.choice([0.5, 2.0])) if l.kind != "pool" and r > 0.75 else 1.0  # a Scale node after it
        # the graph's weights: scaled back to the grid by the Scale node, the neuron and an average pool before
        wn = l.w / (s * f) * (4.0 if l.pre_pool == "avg" else 1.0)
        via_leak = l.bias is not None and (l.neu.kind == "cuba" and l.neu.cd < 1 or l.delay is not None or
                                           (l.neu.kind != "if" and r < 0.4))
        bias = None if l.bias is None or via_leak else l.bias / (s * f)
        if l.kind == "conv":
            add(f"{i}", nir.Conv2d(input_shape=tuple(in_hw(l)[1:]), weight=wn, stride=l.stride, padding=l.padding,
                                   dilation=1, groups=1, bias=np.zeros(l.w.shape[0]) if bias is None else bias))
        elif l.kind == "pool":
            kind = nir.SumPool2d if l.pool == "sum" else nir.AvgPool2d
            add(f"{i}", kind(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])))
        else:
            add(f"{i}", nir.Affine(weight=wn, bias=bias) if bias is not None else nir.Linear(weight=wn))
        if f != 1.0:
            n_out = l.w.shape[0]
            per = np.full(n_out, f) if r > 0.9 else np.array(f)
            add(f"{i}_scale", nir.Scale(scale=per))
        if l.delay is not None:
            add(f"{i}_delay", nir.Delay(delay=l.delay.astype(np.float64) * dt))
        out_shape = _out_shape(l)
        full = partial(np.full, out_shape, dtype=np.float64)
        leak = np.zeros(out_shape)
        if via_leak:
            per = l.bias.reshape(-1, *([1] * (len(out_shape) - 1)))
            leak = np.broadcast_to(per / l.neu.vd, out_shape).astype(np.float64)
        th = full(l.neu.th)
        if l.neu.kind == "if":
            neu = nir.IF(r=full(s / dt), v_threshold=th, v_reset=full(0.0))
        elif l.neu.kind == "lif":
            neu = nir.LIF(tau=full(dt / l.neu.vd), r=full(s / l.neu.vd), v_leak=leak, v_threshold=th,
                          v_reset=full(0.0))
        else:
            neu = nir.CubaLIF(tau_syn=full(dt / l.neu.cd), tau_mem=full(dt / l.neu.vd), r=full(s / l.neu.vd),
                              v_leak=leak, v_threshold=th, v_reset=full(0.0), w_in=full(1 / l.neu.cd))
        rec = None if l.rec is None else l.rec / s
        if rec is not None and r > 0.5:  # snnTorch's form: a subgraph Input -> neuron <-> Linear -> Output
            n = rec.shape[0]
            sub = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n])}), "lif": neu,
                                      "w_rec": nir.Linear(weight=rec),
                                      "output": nir.Output(output_type={"output": np.array([n])})},
                               edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                               type_check=False)
            add(f"{i}_rnn", sub)
        else:
            add(f"{i}_neuron", neu)
            if rec is not None:
                nodes[f"{i}_rec"] = nir.Linear(weight=rec)
                loops.append((f"{i}_neuron", f"{i}_rec"))
        chain.extend(names)
        layers.append(_NirLayer(names, [nodes[n] for n in names], rec))
    nodes["output"] = nir.Output(output_type={"output": np.array(_out_shape(plan.layers[-1]))})
    chain.append("output")
    edges = list(zip(chain[:-1], chain[1:])) + [e for n, r in loops for e in ((n, r), (r, n))]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)
    return graph, [_nir_run(nl, dt) for nl in layers], {"dt": dt}


def _out_shape(l: Layer) -> Tuple[int, ...]:
    c, *hw = in_hw(l)
    if l.kind == "dense":
        return (l.w.shape[0],)
    if l.kind == "pool":
        return (c, hw[0] // 2, hw[1] // 2)
    k = l.w.shape[2]
    h = (hw[0] + 2 * l.padding - k) // l.stride + 1
    return (l.w.shape[0], h, h)


def _nir_run(layer: _NirLayer, dt: float) -> Callable:
    return lambda x: nir_reference(layer, x, dt)


def nir_reference(layer: _NirLayer, x: torch.Tensor, dt: float) -> torch.Tensor:
    """One Loihi layer of a NIR graph by the NIR equations in float64, forward Euler with step ``dt``, zero reset
    (``v > v_threshold`` spikes and sets v to 0), no synaptic delay; ``x`` ``[T, N, *]``, spikes out ``[T, N, *]``.

        Conv2d/Affine/Linear: W x + b          SumPool2d: window sums     AvgPool2d: window means
        Scale: s * x                           Delay: x(t - d)            Flatten: C, H, W order
        IF:      v += r dt I
        LIF:     v += dt/tau (v_leak - v + r I)
        CubaLIF: I += dt/tau_syn (w_in x - I);  v += dt/tau_mem (v_leak - v + r I)

    A recurrent loop adds ``W_rec s[t-1]`` to the neuron's input."""
    import torch.nn.functional as F

    f64 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    out, hist, v, cur, s_prev = [], [], None, None, None
    for t in range(x.shape[0]):
        h = x[t].double()
        for node in layer.nodes:
            kind = type(node).__name__
            if kind == "NIRGraph":  # the recurrent subgraph: its neuron
                node, kind = node.nodes["lif"], type(node.nodes["lif"]).__name__
            if kind in ("SumPool2d", "AvgPool2d"):
                h = F.avg_pool2d(h, 2, 2) * (4.0 if kind == "SumPool2d" else 1.0)
            elif kind == "Flatten":
                h = h.reshape(h.shape[0], -1)
            elif kind == "Conv2d":
                h = F.conv2d(h, f64(node.weight), f64(node.bias), stride=int(np.asarray(node.stride).reshape(-1)[0]),
                             padding=int(np.asarray(node.padding).reshape(-1)[0]))
            elif kind in ("Affine", "Linear"):
                h = h.reshape(h.shape[0], -1) @ f64(node.weight).T
                if kind == "Affine":
                    h = h + f64(node.bias)
            elif kind == "Scale":
                a = f64(node.scale).reshape(-1)
                h = h * (a.reshape(-1, *([1] * (h.dim() - 2))) if a.numel() > 1 else a[0])
            elif kind == "Delay":
                hist.append(h)
                d = np.rint(np.asarray(node.delay) / dt).astype(int)
                h = torch.stack([hist[-1 - k][:, j] if k < len(hist) else torch.zeros_like(h[:, j])
                                 for j, k in enumerate(d)], 1)
            else:
                if v is None:
                    v, cur, s_prev = torch.zeros_like(h), torch.zeros_like(h), torch.zeros_like(h)
                if layer.rec is not None:
                    h = h + s_prev @ f64(layer.rec).T
                if kind == "IF":
                    v = v + f64(node.r) * dt * h
                elif kind == "LIF":
                    v = v + dt / f64(node.tau) * (f64(node.v_leak) - v + f64(node.r) * h)
                else:
                    cur = cur + dt / f64(node.tau_syn) * (f64(node.w_in) * h - cur)
                    v = v + dt / f64(node.tau_mem) * (f64(node.v_leak) - v + f64(node.r) * cur)
                s = (v > f64(node.v_threshold)).double()
                v = v * (1 - s)
                s_prev = s
                h = s
        out.append(h)
    return torch.stack(out)


# --------------------------------------------------------------------------- one net
BUILDERS = {"spikingjelly": build_spikingjelly, "snntorch": build_snntorch, "lavadl": build_lavadl,
            "nir": build_nir}


@dataclass
class Result:
    frontend: str
    seed: int
    layers: str
    steps: int
    spikes: List[int]
    framework: List[int]  # mismatches (on the grid) per layer; off the grid: agreement in ppm
    emulate: List[int]
    lava: Optional[List[int]]

    @property
    def bad(self) -> bool:
        return sum(self.framework) + sum(self.emulate) + sum(self.lava or []) > 0


def check(frontend: str, seed: int, folder: Path, lava: bool = False, grid: bool = True,
          tamper: Optional[Callable[[nn.Sequential], None]] = None) -> Result:
    """Build the seeded net in ``frontend``, convert, export, emulate (and run Lava); compare every layer.
    ``tamper`` changes the converted blocks before the comparisons (the suite checks that they see it)."""
    import sj2lava
    from sj2lava.block import run_blocks

    for attempt in range(8):  # the first draw of this seed in which every layer spikes (a silent layer proves little)
        plan = random_plan(seed + 1_000_003 * attempt, frontend, grid)
        rng = np.random.default_rng([seed, 7, FRONTENDS.index(frontend), attempt])
        torch.manual_seed(seed)
        model, refs, opts = BUILDERS[frontend](plan, rng)
        x = torch.from_numpy((rng.random((plan.steps, 2, *plan.input_shape)) < rng.uniform(0.3, 0.8))
                             .astype(np.float32))
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if frontend == "nir":
                blocks = sj2lava.from_nir(model, dt=opts["dt"])
            else:
                blocks = sj2lava.convert(model, example_input=x, rescale=opts.get("rescale", True))
        if tamper is not None:
            tamper(blocks)
        ours = run_blocks(list(blocks), x)
        if all(bool(o.any()) for o in ours):
            break
    if len(ours) != len(plan.layers):
        raise AssertionError(f"{frontend} seed {seed}: {len(plan.layers)} layers became {len(ours)}")
    ins = [x] + ours[:-1]
    fw = []
    for k, (ref, inp) in enumerate(zip(refs, ins)):
        y = ref(inp if opts.get("self_delayed") else shift(inp))
        m = mismatches(y, ours[k])
        fw.append(m if grid else int(1e6 * (1 - m / max(1, y.numel()))))
    path = sj2lava.export(blocks, folder / f"{frontend}{seed}.net")
    warnings.filterwarnings("ignore", message=".*reads no output of it")  # every step is compared, deep nets too
    emu = sj2lava.emulate(path, x, record=("spikes", "layer_spikes"))["layer_spikes"]
    emu = [e for e in emu if e is not None]
    if len(emu) != len(ours):
        raise AssertionError(f"{frontend} seed {seed}: the file has {len(emu)} spiking layers, the blocks {len(ours)}")
    em = [mismatches(a, b) for a, b in zip(emu, ours)]
    lv = None
    if lava:
        got = sj2lava.run_lava(path, x, all_layers=True)
        got = [g for g in got if g is not None]
        lv = [mismatches(a, b) for a, b in zip(got, ours)]
    desc = "+".join((f"{l.pre_pool}pool>" if l.pre_pool else "") + ("flat>" if l.flatten else "") +
                    (f"{l.pool}pool" if l.kind == "pool" else l.kind) + ("(rec)" if l.rec is not None else "") +
                    ("(delay)" if l.delay is not None else "") + f"[{l.neu.kind}]" for l in plan.layers)
    return Result(frontend, seed, desc, plan.steps, [int(o.sum()) for o in ours], fw, em, lv)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frontend", default="all", choices=("all",) + FRONTENDS)
    ap.add_argument("--nets", type=int, default=200, help="random nets per front-end")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--lava", type=int, default=2, help="how many of each front-end's nets also run in Lava")
    ap.add_argument("--off-grid", action="store_true", help="float parameters: print the agreement per layer")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    frontends = FRONTENDS if args.frontend == "all" else (args.frontend,)
    grid = not args.off_grid
    t0, bad, total = time.time(), 0, 0
    with tempfile.TemporaryDirectory() as d:
        for fe in frontends:
            t1, fe_bad, spikes = time.time(), 0, 0
            for seed in range(args.first_seed, args.first_seed + args.nets):
                r = check(fe, seed, Path(d), lava=seed - args.first_seed < args.lava, grid=grid)
                total += 1
                spikes += sum(r.spikes)
                fe_bad += r.bad if grid else 0
                what = "mismatches: framework" if grid else "framework agreement (ppm)"
                print(f"{fe:<12s} net {seed:4d} T={r.steps:2d} {r.layers:<60s} spikes {r.spikes} {what} "
                      f"{r.framework} emulate {r.emulate}" + (f" lava {r.lava}" if r.lava is not None else ""),
                      flush=True)
            bad += fe_bad
            print(f"{fe}: {args.nets} nets, {spikes:,} spikes compared, {fe_bad} nets with mismatches, "
                  f"{time.time() - t1:.0f} s", flush=True)
    print(f"{total} random nets over {len(frontends)} front-end(s), {bad} with mismatches, {time.time() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
