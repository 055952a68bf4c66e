"""Prove (or measure) that nothing changed: the same input through every stage, layer by layer.

Stages: the original float/SpikingJelly model (if given), the BlockContainers, lava-dl's blocks, the
``.net`` in sj2lava's bit-exact emulator and in Lava's fixed-point simulation. Exact stages are compared
spike for spike with the containers; the float model is compared after shifting each layer by its Lava
delay (one step per synaptic layer), which is the honest float-vs-Loihi difference.
"""
from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Union, cast

import torch
from torch import nn

from ._deps import progress as _progress
from .block import BlockContainer, InputBlock, run_blocks
from .calls import reset_all
from .convert import convert, leaves_of
from .emulator import emulate
from .errors import UnsupportedLayerError
from .layout import NXT_to_TNX, TNX_to_NXT
from .metrics import Metrics, metrics
from .netx.hdf5 import load
from .netx.inputs import WINDOWS, pad_steps
from .netx.lava import run_lava
from .neuron import is_neuron, neuron_rule

__all__ = ["Report", "Stage", "verify", "accuracy"]


@dataclass
class Stage:
    """One way of running the net: spikes per layer, mismatches against the containers, accuracy."""

    name: str
    samples: int
    spikes: List[int]
    mismatches: List[Optional[int]]
    accuracy: Optional[float] = None
    exact: bool = True  # False: compared after delay alignment (the float model)
    output: Optional[torch.Tensor] = field(default=None, repr=False)  # last layer's spikes [T, n, *]


@dataclass
class Report:
    """What :func:`verify` measured. ``str(report)`` is a readable table; ``report.exact`` is True when
    every exact stage agrees with the containers on every spike of every layer."""

    layers: List[str]
    neurons: List[int]
    steps: int
    stages: List[Stage]
    notes: List[str] = field(default_factory=list)
    metrics: Optional[Metrics] = None
    """The emulated run's spikes, sparsities, synaptic operations and footprint (:mod:`sj2lava.metrics`)."""

    @property
    def exact(self) -> bool:
        return all(m == 0 for s in self.stages if s.exact for m in s.mismatches if m is not None)

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def __str__(self) -> str:
        head = ["layer", "neurons"] + [f"{s.name} (n={s.samples})" for s in self.stages]
        rows = []
        for i, (name, n) in enumerate(zip(self.layers, self.neurons)):
            row = [name, f"{n:,}"]
            for s in self.stages:
                rate = s.spikes[i] / max(1, n * s.samples * self.steps)
                mism = "" if s.mismatches[i] is None else (
                    f", {s.mismatches[i]:,} {'differ' if s.exact else 'differ (delay-aligned)'}")
                row.append(f"{s.spikes[i]:,} spikes, rate {rate:.3f}{mism}")
            rows.append(row)
        acc = ["accuracy", ""] + ["" if s.accuracy is None else f"{s.accuracy:.2%}" for s in self.stages]
        if any(s.accuracy is not None for s in self.stages):
            rows.append(acc)
        widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head))]
        fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()
        lines = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows]
        lines.append(f"exact stages agree with the containers: {'yes, 0 mismatches' if self.exact else 'NO'}")
        if self.metrics is not None:
            lines.append(str(self.metrics))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def accuracy(out: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of samples whose most-spiking output neuron (spikes summed over time, ``[T, N, C]``) is the label."""
    return int((out.sum(0).reshape(out.shape[1], -1).argmax(1) == labels).sum()) / max(1, len(labels))


def verify(model: nn.Module, path: Union[str, Path], x: torch.Tensor, *, labels: Optional[torch.Tensor] = None,
           layout: str = "TNX", lava_samples: Optional[int] = None,
           containers: Optional[nn.Sequential] = None, progress: bool = False, window: str = "aligned") -> Report:
    """Run ``x`` through every stage and report per layer spike counts, rates, mismatches and accuracies.

    Args:
        model: the original float/SpikingJelly model, or the BlockContainers themselves (those ``from_nir``
            returns carry their graph's float64 equations, :func:`sj2lava.frontends.nir.simulate_nir`, as the
            ``float`` stage).
        path: the exported ``.net`` file.
        x: input spikes ``[T, N, *shape]`` (``layout='TNX'``) or ``[N, *shape, T]``; for a model that takes one
            static input and makes its time steps itself (``containers.static_input``: a loop or a repeat in its
            forward), that input ``[N, *shape]`` as the model takes it.
        labels: ``[N]`` class labels, to report accuracies.
        lava_samples: run only the first samples in Lava (it is slow: ~1 s per 16 steps); default all; 0 skips
            Lava. Without Lava installed, the lava-dl and Lava stages are skipped with a note.
        containers: the converted BlockContainers, if already made (else ``convert(model)``).
        progress: a progress bar over the stages on stderr (Lava's stage takes about 1 s per 16 steps).
        window: ``'aligned'`` (default): the exact stages run ``T + L`` steps (``L`` the output's latency in Lava,
            one step per synaptic layer) and every layer is read in the ``T`` steps that answer the input, where the
            float model computes: counts, mismatches and accuracies all in that window. ``'all'``: the ``T`` steps
            of ``x`` only (the output's first ``L`` steps are then empty, and the float model is compared shifted).
    """
    if window not in WINDOWS:
        raise ValueError(f"verify: window must be one of {WINDOWS}, got {window!r}")
    is_blocks = isinstance(model, nn.Sequential) and all(isinstance(b, (BlockContainer, InputBlock)) for b in model)
    if containers is None:
        containers = cast(nn.Sequential, model) if is_blocks else \
            convert(model, example_input=x if layout == "TNX" else NXT_to_TNX(x))
    spec = load(path)  # read once: the emulator and the metrics both take it
    run = _Run.of(containers, _model_input(containers, x, layout), spec, window, labels)
    notes = run.notes
    bar = _progress(total=5, desc="verify", unit="stage", disable=not progress)
    stage = lambda name: (bar.update(1), bar.set_postfix(done=name))  # noqa: E731
    cont = run.read(run_blocks(containers, run.x_run))
    stage("containers")
    stages = [run.stage("containers", cont, None)]
    lava_here = importlib.util.find_spec("lava") is not None  # the core runs where lava-dl cannot be installed
    if lava_here:
        stages += _lava_dl_stage(containers, run, cont)
    else:
        notes.append("lava-dl and Lava stages skipped: Lava is not installed here (pip install 'sj2lava[lava]' on "
                     "Python 3.10); the emulator gives Lava's results")
    emu = run.read(cast(dict, emulate(spec, record=("spikes", "layer_spikes"), **run.feed()))["layer_spikes"])
    counts = metrics(spec, torch.zeros(run.steps, run.n, *spec.input_shape) if run.direct else run.x, emu)
    stage("lava-dl")
    stages.append(run.stage("emulator", emu, cont))
    stage("emulator")
    if lava_here:
        stages += _lava_stage(path, run, cont, lava_samples)
    stage("lava")
    reference = getattr(model, "float_reference", None)  # a from_nir net: the graph's own equations
    if not is_blocks or reference is not None:
        flt = reference(run.x) if reference is not None else _run_float(
            model, run.x, getattr(containers, "float_layers", None), getattr(containers, "static_input", False))
        stages.insert(0, _float_stage(flt, cont, run))
    stage("float")
    bar.close()
    notes.extend(_readout_notes(spec, run.steps, window, cont[-1], labels))
    layers = [f"{i}:{b.kind}" for i, b in enumerate(containers) if b.neuron is not None]
    return Report(layers, [int(o[0, 0].numel()) for o in cont], run.steps, stages, notes, counts)


def _model_input(containers: nn.Sequential, x: torch.Tensor, layout: str) -> torch.Tensor:
    """``x`` as ``[T, N, *shape]``: a static model's images repeated over the steps it makes itself; a model stepped
    over its input from outside must be given that sequence (images alone say no ``T``)."""
    static, shape = getattr(containers, "static_input", 0), getattr(containers, "input_shape", None)
    if static and shape is not None and x.dim() == len(shape) + 1:  # the model's own input: one image a sample
        return x.unsqueeze(0).expand(static, *x.shape)
    if isinstance(containers[0], InputBlock) and shape is not None and x.dim() == len(shape) + 1:
        raise ValueError(f"verify: x {tuple(x.shape)} is a batch of images, and the model is stepped over its input "
                         "from outside: give the sequence it is stepped over, x.unsqueeze(0).expand(T, *x.shape)")
    return NXT_to_TNX(x) if layout != "TNX" else x


@dataclass
class _Run:
    """One verification run: the input (``x``, and ``x_run`` padded to ``T + L`` steps), each layer's read window
    (its latency ``lat``) and what every stage shares (labels, notes, the input neurons' feed)."""

    containers: nn.Sequential
    x: torch.Tensor
    x_run: torch.Tensor
    lat: List[int]
    window: str
    labels: Optional[torch.Tensor]
    notes: List[str]

    @classmethod
    def of(cls, containers: nn.Sequential, x: torch.Tensor, spec, window: str,
           labels: Optional[torch.Tensor]) -> _Run:
        lat = spec.latencies if window == "aligned" else [0] * len(spec.latencies)
        x_run = x  # T + L steps: the input neurons keep their image; spikes stop
        if lat and lat[-1]:
            direct = isinstance(containers[0], InputBlock)
            x_run = pad_steps(x, lat[-1], "TNX", hold=direct)
        return cls(containers, x, x_run, lat, window, labels, list(getattr(containers, "conversion_notes", [])))

    steps = property(lambda self: self.x.shape[0])
    n = property(lambda self: self.x.shape[1])
    direct = property(lambda self: isinstance(self.containers[0], InputBlock))

    def read(self, outs: List[torch.Tensor]) -> List[torch.Tensor]:
        """Each layer's answer to ``x``: its ``T`` steps from its latency on."""
        return [o[d:d + self.steps] for o, d in zip(outs, self.lat)]

    def feed(self, m: Optional[int] = None) -> dict:
        """``emulate`` / ``run_lava``'s input for the first ``m`` samples: spikes, or for input neurons driven by
        the first layer's current, that current as their bias."""
        if self.direct:
            return dict(input_bias=self.containers[0].input_bias(self.x[:, :m]), num_steps=self.x_run.shape[0])
        return dict(x=self.x_run[:, :m])

    def stage(self, name: str, outs: List[torch.Tensor], cont: Optional[List[torch.Tensor]],
              m: Optional[int] = None) -> Stage:
        """An exact stage: its spikes, its mismatches against the containers (on its first ``m`` samples)."""
        mism: List[Optional[int]] = [None] * len(outs) if cont is None else \
            [int((a != b[:, :m]).sum()) for a, b in zip(outs, cont)]
        acc = accuracy(outs[-1], self.labels[:m]) if self.labels is not None else None
        return Stage(name, self.n if m is None else m, [int(o.sum()) for o in outs], mism, acc, output=outs[-1])


def _lava_dl_stage(containers: nn.Sequential, run: _Run, cont: List[torch.Tensor]) -> List[Stage]:
    """lava-dl's blocks on the same input, where they can compute the net (plain blocks, no input neurons)."""
    if not all(isinstance(b, BlockContainer) and b.recurrent is None for b in containers):
        run.notes.append("lava-dl stage skipped: recurrent layers and input neurons are checked against lava-dl by "
                         "the test suite, not block by block here")
        return []
    try:
        return [run.stage("lava-dl", run.read(_run_lava_dl(containers, run.x_run)), cont)]
    except UnsupportedLayerError as e:  # a layer lava-dl's blocks cannot compute (a strided sum-pool)
        run.notes.append(f"lava-dl stage skipped: {e}")
        return []


def _lava_stage(path: Union[str, Path], run: _Run, cont: List[torch.Tensor],
                lava_samples: Optional[int]) -> List[Stage]:
    """The file in Lava on the first ``lava_samples`` samples (Lava is slow)."""
    m = run.n if lava_samples is None else max(0, min(run.n, int(lava_samples)))
    if m == 0:
        run.notes.append("Lava stage skipped (lava_samples=0)")
        return []
    lava = run.read(cast(List[torch.Tensor], run_lava(path, all_layers=True, **run.feed(m))))
    if len(lava) != len(cont):
        raise ValueError(f"verify: {path} has {len(lava)} synaptic layers but the model has {len(cont)}")
    if m < run.n:
        run.notes.append(f"Lava ran the first {m} of {run.n} samples; containers on those: "
                         + (f"accuracy {accuracy(cont[-1][:, :m], run.labels[:m]):.2%}" if run.labels is not None
                            else f"{sum(int(o[:, :m].sum()) for o in cont):,} spikes"))
    return [run.stage("lava", lava, cont, m)]


def _float_stage(flt: List[torch.Tensor], cont: List[torch.Tensor], run: _Run) -> Stage:
    """The float model, layer by layer against the containers: in the aligned window as is, in ``'all'`` shifted
    by each layer's Lava delay (layer ``k`` by ``k + 1``; input neurons by 0)."""
    if len(flt) == len(cont):
        mism: List[Optional[int]] = []
        for k, (f, c) in enumerate(zip(flt, cont)):
            d = 0 if run.window == "aligned" else k + 1 - run.direct
            mism.append(int((f[:run.steps - d].reshape(c[d:].shape) != c[d:]).sum()) if d < run.steps else 0)
    else:
        mism = [None] * len(cont)
        run.notes.append(f"the float model has {len(flt)} spiking layers and the containers {len(cont)}; "
                         "per-layer comparison skipped")
        flt = flt + [torch.zeros(1)] * (len(cont) - len(flt))
    last = flt[len(cont) - 1] if len(flt) >= len(cont) else flt[-1]
    return Stage("float", run.n, [int(o.sum()) for o in flt[:len(cont)]], mism,
                 accuracy(last, run.labels) if run.labels is not None else None, exact=False, output=flt[-1])


def _readout_notes(spec, steps: int, window: str, out: torch.Tensor, labels: Optional[torch.Tensor]) -> List[str]:
    """Where the output was read, and why an accuracy is 0 when it is for want of output spikes."""
    lat = spec.latency
    if window == "aligned":
        notes = [f"read window: each layer's {steps} steps that answer the input (the output's from step {lat}, of "
                 f"{steps + lat} run: Lava's latency of {lat} steps)"]
    else:
        notes = [] if steps > lat else [
            f"the output layer answers {lat} steps after the input (one step per synaptic layer) and the run has "
            f"{steps}: no output step was read, so the accuracies count a silent output (argmax picks class 0); use "
            "window='aligned'"]
    if labels is not None and not out.any():
        notes.append("the output layer sent no spike in the read window: its accuracy counts a silent output (argmax "
                     "picks class 0), not the net's answers")
    return notes


def _run_lava_dl(blocks: nn.Sequential, x: torch.Tensor) -> List[torch.Tensor]:
    """lava-dl's blocks with Lava's timing: the one-step delay on each synapse's input (lava-dl's own
    ``delay_shift`` delays the block output, which differs on the first step when there is a bias)."""
    outs, h = [], TNX_to_NXT(x).contiguous()
    with torch.no_grad():
        for b in blocks:
            lb = b.to_lava_block(delay_shift=False)
            if b.neuron is not None and b.delay_shift:
                h = torch.cat((torch.zeros_like(h[..., :1]), h[..., :-1]), -1)
            h = lb(h)
            if b.neuron is not None:
                outs.append(NXT_to_TNX(h))
    return outs


def _multi_step(m: nn.Module) -> None:
    """Every module with a SpikingJelly-style ``step_mode`` set to multi-step, where it allows."""
    for mod in m.modules():
        if hasattr(mod, "step_mode") and mod.step_mode in ("s", "m"):
            try:
                cast(Any, mod).step_mode = "m"
            except (AttributeError, ValueError):
                pass


def _captured_modules(m: nn.Module, paths: Optional[List[str]]) -> List[nn.Module]:
    """The modules at ``paths``, or every neuron where a path names a layer the forward made of a function
    (F.max_pool2d) or none are given."""
    neurons = [leaf for _, leaf in leaves_of(m, "") if is_neuron(leaf)]
    try:
        return [m.get_submodule(p) for p in paths] if paths else neurons
    except AttributeError:
        return neurons


def _run_float(model: nn.Module, x: torch.Tensor, paths: Optional[List[str]] = None,
               static: bool = False) -> List[torch.Tensor]:
    """The original model on a copy, the output of each module that a spiking layer stands for captured (``paths``,
    which ``convert`` records as ``float_layers``: its neurons, and the max-pools it made OR layers; by default
    every neuron): in multi-step mode, or one time step per call when a neuron's front-end says its neurons are
    single-step modules (snnTorch). ``static``: the model takes one input (``x[0]``) and makes its time steps
    itself (a loop in its forward, or a repeat), as ``convert`` found it."""
    stepwise = any(rule.single_step for rule in map(neuron_rule, model.modules()) if rule is not None)
    # single-step neurons (snnTorch's) keep graph tensors as hidden state, which deepcopy refuses: run the model itself,
    # with its state reset before and after and its training flag restored.
    m = model if stepwise else copy.deepcopy(model)
    was_training = m.training
    m.eval()
    _multi_step(m)
    captured: List[torch.Tensor] = []

    def keep(_m, _i, out):
        captured.append((out[0] if isinstance(out, tuple) else out).detach())

    neurons = _captured_modules(m, paths)
    hooks = [n.register_forward_hook(keep) for n in neurons]
    reset_all(m)
    try:
        with torch.no_grad():
            if static:
                m(x[0])
            elif stepwise:
                for t in range(x.shape[0]):
                    m(x[t])
            else:
                m(x)
    finally:
        for h in hooks:
            h.remove()
        if stepwise:
            reset_all(m)
            m.train(was_training)
    if (stepwise or static) and neurons and len(captured) > len(neurons):  # one call per step: stack them
        per = len(neurons)
        return [torch.stack(captured[k::per]) for k in range(per)]
    steps, n = x.shape[:2]  # a module inside a SeqToANNContainer sees (and returns) [T * N, *]
    return [c.reshape(steps, n, *c.shape[1:]) if tuple(c.shape[:2]) != (steps, n) and c.shape[0] == steps * n else c
            for c in captured]
