"""Quantization-aware fine-tuning of converted BlockContainers, with Loihi's timing.

After an approximate conversion (snnTorch's subtract reset, a float-trained SpikingJelly net's
``v >= th``), a few epochs in the containers recover accuracy; the exported ``.net`` then equals the
containers spike for spike by construction.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._deps import progress as _progress
from .block import BlockContainer
from .evaluate import _batches, rate_encoder

__all__ = ["finetune"]


def finetune(model: nn.Sequential, data, epochs: int, *, steps: Optional[int] = None,
             encoder: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, lr: float = 1e-3,
             loss_fn: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
             batch_size: int = 32, progress: bool = True) -> List[float]:
    """Train ``model`` (BlockContainers, e.g. from :func:`sj2lava.convert`) for ``epochs``.

    Args:
        data: ``(X, Y)`` tensors, a ``Dataset`` of ``(x, y)`` or an iterable of batches. ``X`` is either
            spikes ``[T, N, *shape]`` (give no ``steps``; a Dataset or loader then yields ``[N, T, *shape]``
            batches) or intensities ``[N, *shape]`` in [0, 1] that ``encoder`` (default: rate coding over
            ``steps``) turns into spikes.
        loss_fn: ``(output spikes [T, N, C], labels) -> loss``; default cross-entropy on spike counts.

    Returns:
        The mean loss of each epoch.
    """
    if not (isinstance(model, nn.Sequential) and all(isinstance(b, BlockContainer) for b in model)):
        raise TypeError("finetune: model must be an nn.Sequential of BlockContainers (see sj2lava.convert)")
    if encoder is None and steps is not None:
        encoder = rate_encoder(steps, seed=0)
    if encoder is None and isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]):
        data = (data[0].transpose(0, 1), data[1])  # batch along N; time goes first again below
    loss_fn = loss_fn or (lambda out, y: F.cross_entropy(out.sum(0), y))
    for b in model:
        b.step_mode = "m"
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for epoch in range(epochs):
        total, n = 0.0, 0
        bar = _progress(list(_batches(data, batch_size)), desc=f"finetune {epoch + 1}/{epochs}", unit="batch",
                        disable=not progress)
        for x, y in bar:
            spikes = encoder(x) if encoder is not None else x.float().transpose(0, 1)
            for b in model:
                b.reset()
            loss = loss_fn(model(spikes), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
            n += len(y)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        losses.append(total / max(n, 1))
    for b in model:
        b.reset()
    model.eval()
    return losses
