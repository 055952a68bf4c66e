"""Accuracy of a ``.net`` file on a labelled data set, in the emulator (fast) or in Lava (slow, the reference).

A sample is classified by its most-spiking output neuron (spikes summed over time; ties go to the
lowest index, as ``argmax`` does).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union, cast

import numpy as np
import torch

from ._deps import progress as _progress
from .block import InputBlock
from .emulator import emulate, memory_limit
from .metrics import Counts, Metrics, metrics_of
from .netx.hdf5 import load
from .netx.lava import run_lava
from .netx.spec import NetSpec
from .train import batches, rate_encoder

__all__ = ["Evaluation", "evaluate", "rate_encoder"]  # rate_encoder: its home is sj2lava.train


@dataclass
class Evaluation:
    """Accuracy and per-class counts (``per_class[c] = (correct, total)``), and the run's workload metrics."""

    accuracy: float
    samples: int
    per_class: Dict[int, Tuple[int, int]] = field(default_factory=dict)
    backend: str = "emulator"
    metrics: Optional[Metrics] = None
    """Spikes, activation sparsity, synaptic operations, connection sparsity and footprint of the exact run
    (:mod:`sj2lava.metrics`; the emulator backend)."""

    def __str__(self) -> str:
        lines = [f"{self.backend}: accuracy {self.accuracy:.2%} on {self.samples} samples",
                 "class  correct  total  accuracy"]
        for c, (ok, n) in sorted(self.per_class.items()):
            lines.append(f"{c:>5}  {ok:>7}  {n:>5}  {ok / max(n, 1):>8.2%}")
        if self.metrics is not None:
            lines.append(str(self.metrics))
        return "\n".join(lines)


def evaluate(path: Union[str, Path], data, *, steps: int, encoder: Optional[Callable] = None,
             backend: str = "emulator", batch_size: int = 256, progress: bool = True,
             device: str = "cpu", spec: Optional[NetSpec] = None, window: str = "aligned",
             host: Optional[InputBlock] = None, timeout: Optional[float] = None) -> Evaluation:
    """Classify a labelled data set with the ``.net`` at ``path``.

    Args:
        data: ``(X, Y)`` tensors, a map-style ``Dataset`` of ``(x, y)`` or an iterable of batches. ``X`` as the
            source model takes it: images ``[N, *shape]`` (encoded by ``encoder``, or the input neurons' bias with
            ``host``), or spike sequences ``[steps, N, *shape]`` (used as they are).
        steps: time steps per sample.
        encoder: ``[N, *shape] -> [steps, N, *shape]`` binary spikes; default :func:`rate_encoder`.
        host: for a net converted with direct input (its first block an :class:`~sj2lava.block.InputBlock`, whose
            synapse runs on the host): that block, ``blocks[0]``. Each image ``x`` then drives the file's input
            neurons as their bias, ``host.input_bias(x)``, for ``steps`` steps, as in ``verify``.
        backend: ``'emulator'`` (batched, bit-exact) or ``'lava'`` (Lava's CPU simulation, slow).
        spec: the file's :class:`~sj2lava.netx.spec.NetSpec` when the caller has already loaded ``path``.
        window: ``'aligned'`` (default): each sample runs ``steps + L`` steps (``L`` the output's latency in Lava)
            and the output is read in the ``steps`` that answer the input, as the float model is; the metrics
            count each layer in its own such window. ``'all'``: only ``steps`` steps, read whole.
        timeout: Lava backend: seconds a sample may take (see :func:`~sj2lava.run_lava`); a dead Lava worker
            always stops the evaluation with :class:`~sj2lava.LavaRunError`.

    The metrics are counted inside the emulator (per-neuron counts times each layer's fan-out), so memory stays
    bounded by one batch whatever the number of samples. Under ``torchrun`` (an initialised ``torch.distributed``
    group) rank ``r`` of ``W`` runs every ``W``-th batch and the tallies are all-gathered: every rank returns what
    one process returns.
    """
    if backend not in ("emulator", "lava"):
        raise ValueError(f"evaluate: backend must be 'emulator' or 'lava', got {backend!r}")
    spec = load(path) if spec is None else spec
    batch_size = _fitting_batch(spec, steps, batch_size)
    data, encode = _data_and_encoder(data, spec, steps, encoder, sequences=host is None and encoder is None)
    total = len(data[1]) if isinstance(data, (tuple, list)) and len(data) == 2 else (
        len(data) if hasattr(data, "__len__") else None)
    rank, world = _rank_and_world()
    shard = f", rank {rank} of {world}" if world > 1 else ""
    bar = _progress(total=None if total is None else -(-total // world), desc=f"evaluate ({backend}{shard})",
                    unit="sample", disable=not progress or rank != 0)
    tally = _Tally()
    try:
        # Lava runs a sample in seconds: small batches keep its progress bar moving
        for b, (x, y) in enumerate(batches(data, batch_size if backend == "emulator" else min(batch_size, 4))):
            feed: Dict[str, Any]
            if host is not None:  # the host part's current is the input neurons' bias; no spikes come in
                feed = dict(input_bias=host.input_bias(x), num_steps=steps)
            else:  # every rank encodes every batch, so that a seeded encoder gives each sample what one process does
                feed = dict(x=encode(x))
                if feed["x"].shape[0] != steps:
                    raise ValueError(f"evaluate: the encoder gave {feed['x'].shape[0]} steps, expected {steps}")
            _check_labels(y, int(np.prod(spec.output_shape)))
            if b % world != rank:  # under torchrun each rank runs every world-th batch
                continue
            if backend == "emulator":
                # per-neuron counts, summed inside the emulator: no layer's spikes are kept
                rec = cast(dict, emulate(spec, **feed, device=device, record=("spikes", "counts"), window=window))
                out = rec["spikes"]
                tally.counts = rec["counts"] if tally.counts is None else tally.counts + rec["counts"]
            else:
                out = cast(torch.Tensor, run_lava(path, **feed, spec=spec, window=window, timeout=timeout))
            tally.add(out.sum(0).reshape(out.shape[1], -1).argmax(1), y)
            bar.update(len(y))
    finally:
        bar.close()
    if world > 1:
        tally = _Tally.gathered(tally)
    if tally.n == 0:
        raise ValueError("evaluate: the data set is empty")
    return Evaluation(tally.n_ok / tally.n, tally.n, {c: (v[0], v[1]) for c, v in sorted(tally.per_class.items())},
                      backend, None if tally.counts is None else metrics_of(spec, tally.counts))


def _fitting_batch(spec: NetSpec, steps: int, batch_size: int) -> int:
    """``batch_size``, lowered so that a batch's encoded input and run fit in :func:`~sj2lava.emulator.memory_limit`
    (``$SJ2LAVA_MAX_BYTES``); refused before any work when one sample does not fit. (A seeded rate code draws per
    batch, so a lowered batch size gives other spikes than the one asked for would.)"""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"evaluate: steps and batch_size must be >= 1, got {steps} and {batch_size}")
    # per sample over the run's steps: the encoding of the input (the rate code's random draws, its comparison and
    # float spikes, and their bytes for the kernel: 12 bytes a value) and the output spikes; and the neurons' state
    per_sample = (steps + spec.latency) * (int(np.prod(spec.input_shape)) * 12 + int(np.prod(spec.output_shape)) * 4) \
        + spec.neurons * 24
    fits = memory_limit() // per_sample
    if fits < 1:
        raise ValueError(f"evaluate: one sample of {steps} steps needs about {per_sample / 2**30:,.1f} GiB, more than "
                         f"{memory_limit() / 2**30:,.1f} GiB ($SJ2LAVA_MAX_BYTES); use fewer steps")
    return min(batch_size, int(fits))


def _data_and_encoder(data, spec: NetSpec, steps: int, encoder: Optional[Callable], sequences: bool):
    """``(data, encoder)``: ``(X, Y)`` tensors checked to hold one label per sample; spike sequences
    ``[T, N, *shape]`` (when ``sequences``) batched along ``N`` and taken as they are."""
    encode = encoder or rate_encoder(steps)
    tensors = isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(d) for d in data)
    if tensors and sequences and data[0].dim() == len(spec.input_shape) + 2:  # spike sequences [T, N, *shape]
        data, encode = (data[0].transpose(0, 1), data[1]), (lambda b: b.transpose(0, 1))
    if tensors and len(data[0]) != len(data[1]):
        raise ValueError(f"evaluate: {len(data[0])} inputs but {len(data[1])} labels; give one label per sample")
    return data, encode


def _check_labels(y: torch.Tensor, classes: int) -> None:
    """Labels are class indices of the file's output neurons: integers in ``[0, classes)``."""
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"evaluate: labels must be integer class indices, got {y.dtype}; convert them with .long()")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= classes):
        raise ValueError(f"evaluate: labels {int(y.min())}..{int(y.max())} fall outside the file's {classes} output "
                         f"neurons (classes 0..{classes - 1})")


def _rank_and_world() -> Tuple[int, int]:
    """``(rank, world size)`` of an initialised ``torch.distributed`` group (torchrun), else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass
class _Tally:
    """What the batches add up to: per class ``[correct, total]``, and the emulator's counts."""

    per_class: Dict[int, List[int]] = field(default_factory=dict)
    n_ok: int = 0
    n: int = 0
    counts: Optional[Counts] = None

    def add(self, pred: torch.Tensor, y: torch.Tensor) -> None:
        for c, ok in zip(y.tolist(), (pred == y).tolist()):
            entry = self.per_class.setdefault(int(c), [0, 0])
            entry[0] += int(ok)
            entry[1] += 1
            self.n_ok += int(ok)
            self.n += 1

    @staticmethod
    def gathered(mine: _Tally) -> _Tally:
        """Every rank's tally added up (exact integers, in rank order), on every rank."""
        import torch.distributed as dist

        parts: List[Optional[_Tally]] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, mine)
        out = _Tally()
        for t in parts:
            assert t is not None
            for c, (ok, total) in t.per_class.items():
                entry = out.per_class.setdefault(c, [0, 0])
                entry[0] += ok
                entry[1] += total
            out.n_ok, out.n = out.n_ok + t.n_ok, out.n + t.n
            if t.counts is not None:
                out.counts = t.counts if out.counts is None else out.counts + t.counts
        return out
