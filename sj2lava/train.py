"""Quantization-aware fine-tuning of converted BlockContainers, with Loihi's timing.

After an approximate conversion (snnTorch's subtract reset, a float-trained SpikingJelly net's
``v >= th``), a few epochs in the containers recover accuracy; the exported ``.net`` then equals the
containers spike for spike by construction.
"""
from __future__ import annotations

from typing import Callable, Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ._deps import progress as _progress
from .block import BlockContainer, InputBlock

__all__ = ["finetune", "rate_code", "rate_encoder", "batches"]


def rate_code(x: torch.Tensor, steps: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Bernoulli rate coding: intensities ``[N, *]`` in [0, 1] -> spikes ``[steps, N, *]`` (float 0/1),
    a spike with probability equal to the intensity at every step."""
    return (torch.rand((steps, *x.shape), generator=generator) < x.float()).float()


def rate_encoder(steps: int, seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """:func:`rate_code` over ``steps`` as a one-argument encoder with its own seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return lambda x: rate_code(x, steps, gen)


def batches(data, batch_size: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y)`` batches of ``data``: ``(X, Y)`` tensors (split along the first axis), a map-style
    ``Dataset`` of ``(x, y)``, or any iterable of batches (a ``DataLoader``), passed through."""
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


def finetune(model: nn.Sequential, data, epochs: int, *, steps: Optional[int] = None,
             encoder: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, lr: float = 1e-3,
             loss_fn: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
             batch_size: int = 32, progress: bool = True,
             shuffle: Optional[torch.Generator] = None) -> List[float]:
    """Train ``model`` (BlockContainers, e.g. from :func:`sj2lava.convert`) for ``epochs``.

    Args:
        data: ``(X, Y)`` tensors, a ``Dataset`` of ``(x, y)`` or an iterable of batches. ``X`` is either
            spikes ``[T, N, *shape]`` (give no ``steps``; a Dataset or loader then yields ``[N, T, *shape]``
            batches) or intensities ``[N, *shape]`` in [0, 1] that ``encoder`` (default: rate coding over
            ``steps``) turns into spikes.
        loss_fn: ``(output spikes [T, N, C], labels) -> loss``; default cross-entropy on spike counts.
        shuffle: a generator that reorders ``(X, Y)`` tensors at the start of every epoch (and may be
            the encoder's too: the draws then interleave reproducibly).

    The net runs ``T + L`` steps (``L``: one step of Lava's delay per synaptic layer; the input is zero after
    step ``T``, a net with input neurons keeps its image) and the loss reads the output's last ``T``, where it
    answers the input (the ``'aligned'`` window of :func:`sj2lava.evaluate`). A net whose first block is an
    :class:`~sj2lava.block.InputBlock` (direct input) takes images ``[N, *shape]``, repeated over ``steps``.

    Returns:
        The mean loss of each epoch.
    """
    direct = isinstance(model, nn.Sequential) and len(model) > 0 and isinstance(model[0], InputBlock)
    if not (isinstance(model, nn.Sequential) and all(isinstance(b, BlockContainer) for b in model[int(direct):])):
        raise TypeError("finetune: model must be an nn.Sequential of BlockContainers, an InputBlock first if any "
                        "(see sj2lava.convert)")
    if encoder is None and steps is not None:
        encoder = (lambda x: x.float().unsqueeze(0).expand(steps, *x.shape)) if direct else rate_encoder(steps, seed=0)
    lat = sum(1 for b in model if isinstance(b, BlockContainer) and b.neuron is not None and b.delay_shift)
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
        epoch_data = data
        if shuffle is not None and isinstance(data, (tuple, list)) and len(data) == 2:
            order = torch.randperm(len(data[1]), generator=shuffle)
            epoch_data = (data[0][order], data[1][order])
        bar = _progress(list(batches(epoch_data, batch_size)), desc=f"finetune {epoch + 1}/{epochs}", unit="batch",
                        disable=not progress)
        for x, y in bar:
            spikes = encoder(x) if encoder is not None else x.float().transpose(0, 1)
            extra = spikes[-1:] if direct else torch.zeros_like(spikes[:1])
            spikes = torch.cat([spikes, extra.expand(lat, *spikes.shape[1:])]) if lat else spikes
            for b in model:
                b.reset()
            loss = loss_fn(model(spikes)[lat:], y)
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
