"""Quantization-aware fine-tuning of converted BlockContainers, with Loihi's timing.

After an approximate conversion (snnTorch's subtract reset, a float-trained SpikingJelly net's
``v >= th``), a few epochs in the containers recover accuracy; the exported ``.net`` then equals the
containers spike for spike by construction.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ._deps import progress as _progress
from .block import BlockContainer, InputBlock
from .netx.inputs import pad_steps

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


def _count_batches(data, batch_size: int) -> int:
    """How many batches an epoch of ``data`` has (an iterable of unknown length: 1, so the rate stays flat)."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(d) for d in data):
        return math.ceil(len(data[1]) / batch_size)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):  # as batches() reads them
        return math.ceil(len(data) / batch_size)
    return len(data) if hasattr(data, "__len__") else 0  # a DataLoader: its batches


def _param_groups(model: nn.Sequential) -> List[dict]:
    """One Adam group per block, its rate 2e-3 of the block's largest weight (at most 2e-3)."""
    groups = []
    for b in model:
        params = [p for p in b.parameters() if p.requires_grad]
        weights = [p for name, p in b.named_parameters() if name.endswith("weight") and p.dim() > 1]
        scale = max((float(w.detach().abs().max()) for w in weights), default=1.0)
        if params:
            groups.append({"params": params, "lr": 2e-3 * min(1.0, max(scale, 1e-3))})
    return groups


def _is_sequence(model: nn.Sequential, data) -> bool:
    """``data`` is ``(X [T, N, *shape], Y)``: one axis more than a batch of samples of the model's input shape."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0])):
        return False
    shape = getattr(model, "input_shape", None)  # convert records it
    if shape is None and isinstance(model[0], BlockContainer):
        syn = model[0].synapse
        shape = (0,) if isinstance(syn, nn.Linear) else (0, 0, 0) if isinstance(syn, nn.Conv2d) else None
    return shape is not None and data[0].dim() == len(shape) + 2


def finetune(model: nn.Sequential, data, epochs: int, *, steps: Optional[int] = None,
             encoder: Optional[Callable[[torch.Tensor], torch.Tensor]] = None, lr: Optional[float] = None,
             loss_fn: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
             batch_size: int = 32, progress: bool = True,
             shuffle: Union[torch.Generator, bool] = True) -> List[float]:
    """Train ``model`` (BlockContainers, e.g. from :func:`sj2lava.convert`) for ``epochs``.

    Args:
        data: ``(X, Y)`` tensors, a ``Dataset`` of ``(x, y)`` or an iterable of batches. ``X`` is either
            spikes ``[T, N, *shape]`` (``steps`` is then ``T`` or not given; a Dataset or loader yields
            ``[N, T, *shape]`` batches) or intensities ``[N, *shape]`` in [0, 1] that ``encoder`` (default: rate
            coding over ``steps``) turns into spikes.
        lr: Adam's learning rate for every parameter; default: 2e-3 times each block's largest weight, at most
            2e-3 (Adam moves a weight by about ``lr`` a step whatever its size, and a float net converted with
            weights of 0.05 would lose in a few steps what it learned at 1e-3). A tenth of the rate the source
            model was trained with is a good start when you know it.
        loss_fn: ``(output spikes [T, N, C], labels) -> loss``; default cross-entropy on spike counts (snnTorch's
            ``functional`` losses take the same arguments).
        shuffle: reorder ``(X, Y)`` tensors at the start of every epoch: ``True`` (default) with a generator seeded
            0, or a generator of yours (it may be the encoder's too: the draws then interleave reproducibly);
            ``False`` keeps the order.

    The learning rate follows a half cosine from ``lr`` down to a tenth of it over the run's batches, so the last
    epoch settles rather than jumps (the fixed-point forward makes the loss rough).

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
    encoder, data = _encoder(model, data, steps, encoder, direct)
    lat = sum(1 for b in model if isinstance(b, BlockContainer) and b.neuron is not None and b.delay_shift)
    loss_fn = loss_fn or (lambda out, y: F.cross_entropy(out.sum(0), y))
    for b in model:
        b.step_mode = "m"
    opt = torch.optim.Adam(_param_groups(model) if lr is None else model.parameters(), lr=lr or 2e-3)
    total_batches = epochs * _count_batches(data, batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.1 + 0.45 * (1 + math.cos(math.pi * min(k, total_batches) / max(total_batches, 1))))
    gen = torch.Generator().manual_seed(0) if shuffle is True else shuffle
    losses = []
    model.train()
    for epoch in range(epochs):
        epoch_data = data
        if gen is not False and isinstance(data, (tuple, list)) and len(data) == 2:
            order = torch.randperm(len(data[1]), generator=gen)
            epoch_data = (data[0][order], data[1][order])
        bar = _progress(list(batches(epoch_data, batch_size)), desc=f"finetune {epoch + 1}/{epochs}", unit="batch",
                        disable=not progress)
        total, n = 0.0, 0
        for x, y in bar:
            spikes = encoder(x) if encoder is not None else x.float().transpose(0, 1)
            spikes = pad_steps(spikes, lat, "TNX", hold=direct) if lat else spikes  # input neurons keep their image
            loss = _step(model, spikes, y, lat, loss_fn, opt)
            sched.step()
            total, n = total + loss * len(y), n + len(y)
            bar.set_postfix(loss=f"{loss:.3f}")
        losses.append(total / max(n, 1))
    for b in model:
        b.reset()
    model.eval()
    return losses


def _encoder(model: nn.Sequential, data, steps: Optional[int], encoder: Optional[Callable], direct: bool):
    """What turns a batch of ``data`` into the net's input ``[T, N, *]`` (None: it already is, ``[N, T, *]``
    batched), and the data batched along ``N``."""
    if encoder is None and steps is not None and _is_sequence(model, data):  # spikes [T, N, ...], as the source took
        if data[0].shape[0] != steps:
            raise ValueError(f"finetune: the data is a sequence of {data[0].shape[0]} steps and steps={steps}; give "
                             "the number of steps the data has, or no steps")
        steps = None
    if encoder is None and steps is not None:
        encoder = (lambda x: x.float().unsqueeze(0).expand(steps, *x.shape)) if direct else rate_encoder(steps, seed=0)
    if encoder is None and isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]):
        data = (data[0].transpose(0, 1), data[1])  # batch along N; time goes first again in finetune
    return encoder, data


def _step(model: nn.Sequential, spikes: torch.Tensor, y: torch.Tensor, lat: int, loss_fn: Callable,
          opt: torch.optim.Optimizer) -> float:
    """One optimiser step on one batch; the loss reads the output's last ``T`` of ``T + lat`` steps."""
    for b in model:
        b.reset()
    loss = loss_fn(model(spikes)[lat:], y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()
