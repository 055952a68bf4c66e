"""Accuracy of a ``.net`` file on a labelled data set, in the emulator (fast) or in Lava (slow, the reference).

A sample is classified by its most-spiking output neuron (spikes summed over time; ties go to the
lowest index, as ``argmax`` does).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple, Union

import torch

from ._deps import progress as _progress
from .emulator import emulate
from .netx.hdf5 import load
from .netx.lava import run_lava

__all__ = ["Evaluation", "evaluate", "rate_encoder"]


def rate_encoder(steps: int, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Bernoulli rate coding: intensities ``[N, *]`` in [0, 1] -> spikes ``[steps, N, *]`` (seeded)."""
    gen = torch.Generator().manual_seed(seed)

    def encode(x: torch.Tensor) -> torch.Tensor:
        return (torch.rand((steps, *x.shape), generator=gen) < x.float()).float()

    return encode


@dataclass
class Evaluation:
    """Accuracy and per-class counts (``per_class[c] = (correct, total)``)."""

    accuracy: float
    samples: int
    per_class: Dict[int, Tuple[int, int]] = field(default_factory=dict)
    backend: str = "emulator"

    def __str__(self) -> str:
        lines = [f"{self.backend}: accuracy {self.accuracy:.2%} on {self.samples} samples",
                 "class  correct  total  accuracy"]
        for c, (ok, n) in sorted(self.per_class.items()):
            lines.append(f"{c:>5}  {ok:>7}  {n:>5}  {ok / max(n, 1):>8.2%}")
        return "\n".join(lines)


def _batches(data, batch_size: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(d) for d in data):
        x, y = data
        for i in range(0, len(y), batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):  # a map-style Dataset of (x, y)
        for i in range(0, len(data), batch_size):
            items = [data[j] for j in range(i, min(i + batch_size, len(data)))]
            yield torch.stack([torch.as_tensor(a) for a, _ in items]), torch.as_tensor([int(b) for _, b in items])
    else:  # a DataLoader or any iterable of (x, y) batches
        for x, y in data:
            yield torch.as_tensor(x), torch.as_tensor(y)


def evaluate(path: Union[str, Path], data, *, steps: int, encoder: Optional[Callable] = None,
             backend: str = "emulator", batch_size: int = 256, progress: bool = True,
             device: str = "cpu") -> Evaluation:
    """Classify a labelled data set with the ``.net`` at ``path``.

    Args:
        data: ``(X, Y)`` tensors, a map-style ``Dataset`` of ``(x, y)`` or an iterable of batches.
        steps: time steps per sample.
        encoder: ``[N, *shape] -> [steps, N, *shape]`` binary spikes; default :func:`rate_encoder`.
        backend: ``'emulator'`` (batched, bit-exact) or ``'lava'`` (Lava's CPU simulation, slow).
    """
    if backend not in ("emulator", "lava"):
        raise ValueError(f"evaluate: backend must be 'emulator' or 'lava', got {backend!r}")
    spec = load(path)
    encode = encoder or rate_encoder(steps)
    total = len(data[1]) if isinstance(data, (tuple, list)) and len(data) == 2 else (
        len(data) if hasattr(data, "__len__") else None)
    bar = _progress(total=total, desc=f"evaluate ({backend})", unit="sample", disable=not progress)
    per_class: Dict[int, list] = {}
    n_ok = n = 0
    try:
        for x, y in _batches(data, batch_size):
            spikes = encode(x)
            if spikes.shape[0] != steps:
                raise ValueError(f"evaluate: the encoder gave {spikes.shape[0]} steps, expected {steps}")
            out = emulate(spec, spikes, device=device) if backend == "emulator" else run_lava(path, spikes)
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
    return Evaluation(n_ok / n, n, {c: (v[0], v[1]) for c, v in per_class.items()}, backend)
