"""Accuracy of a ``.net`` file on a labelled data set, in the emulator (fast) or in Lava (slow, the reference).

A sample is classified by its most-spiking output neuron (spikes summed over time; ties go to the
lowest index, as ``argmax`` does).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union, cast

import torch

from ._deps import progress as _progress
from .block import InputBlock
from .emulator import emulate
from .metrics import Metrics, metrics
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
             host: Optional[InputBlock] = None) -> Evaluation:
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
    """
    if backend not in ("emulator", "lava"):
        raise ValueError(f"evaluate: backend must be 'emulator' or 'lava', got {backend!r}")
    spec = load(path) if spec is None else spec
    encode = encoder or rate_encoder(steps)
    if isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]) and host is None and \
            encoder is None and data[0].dim() == len(spec.input_shape) + 2:  # spike sequences [T, N, *shape]
        data, encode = (data[0].transpose(0, 1), data[1]), (lambda b: b.transpose(0, 1))
    total = len(data[1]) if isinstance(data, (tuple, list)) and len(data) == 2 else (
        len(data) if hasattr(data, "__len__") else None)
    bar = _progress(total=total, desc=f"evaluate ({backend})", unit="sample", disable=not progress)
    per_class: Dict[int, list] = {}
    n_ok = n = 0
    counts: Optional[Metrics] = None
    try:
        # Lava runs a sample in seconds: small batches keep its progress bar moving
        for x, y in batches(data, batch_size if backend == "emulator" else min(batch_size, 4)):
            feed: Dict[str, Any]
            if host is not None:  # the host part's current is the input neurons' bias; no spikes come in
                feed = dict(input_bias=host.input_bias(x), num_steps=steps)
                spikes = torch.zeros(steps, len(y), *spec.input_shape)
            else:
                spikes = encode(x)
                feed = dict(x=spikes)
            if spikes.shape[0] != steps:
                raise ValueError(f"evaluate: the encoder gave {spikes.shape[0]} steps, expected {steps}")
            if backend == "emulator":
                rec = cast(dict, emulate(spec, **feed, device=device, record=("spikes", "layer_spikes"),
                                         window=window))
                out = rec["spikes"]
                batch = metrics(spec, spikes, rec["layer_spikes"])
                counts = batch if counts is None else counts + batch
            else:
                out = cast(torch.Tensor, run_lava(path, **feed, spec=spec, window=window))
            pred = out.sum(0).reshape(out.shape[1], -1).argmax(1)
            for c, ok in zip(y.tolist(), (pred == y).tolist()):
                entry = per_class.setdefault(int(c), [0, 0])
                entry[0] += int(ok)
                entry[1] += 1
                n_ok += int(ok)
                n += 1
            bar.update(len(y))
    finally:
        bar.close()
    if n == 0:
        raise ValueError("evaluate: the data set is empty")
    return Evaluation(n_ok / n, n, {c: (v[0], v[1]) for c, v in per_class.items()}, backend, counts)
