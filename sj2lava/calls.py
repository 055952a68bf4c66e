"""The layers a model's forward calls, recorded on one run of an example input.

``convert`` reads a forward with ``torch.fx`` first; this is for the forwards the tutorials write that fx cannot
read as a chain: a time loop inside ``forward`` (snnTorch's ``init_leaky()`` and ``for step in range(T)`` over
the same layers: the calls repeat with a period of one step) and a static prefix replicated over time
(SpikingJelly's ``static_conv(x).unsqueeze(0).repeat(T, 1, 1, 1, 1)``). Forward hooks on the model's leaf layers
record, for one run, each call's first input and first output; between two calls the data must be the same
(possibly with time and batch merged, as in ``SeqToANNContainer``) or explained by one of:

- a flatten of the features (``x.view(B, -1)``, ``torch.flatten``): an ``nn.Flatten`` layer;
- a max-pool (``F.max_pool2d(x, k)`` with k = 2 or 3, stride k or 2): an ``nn.MaxPool2d`` layer;
- a repeat over time of a static tensor: the layers before it are the static prefix (the host part, direct input).

Anything else between two layers is refused naming both (as far as the example input shows: after a layer that
sends only zeros on it, a scale or a mask cannot be seen, which a note says). Per time step the chain is one period
of the calls; if the first layer of each step reads the same input (a static image), the net's first layer runs on
the host (direct input). What the forward does after its last layer (``torch.stack``, ``.mean(0)``) is its
readout, left to the host and noted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UnsupportedLayerError

__all__ = ["Recorded", "record_forward", "reset_all"]

_Leaf = Tuple[str, nn.Module]


@dataclass
class Recorded:
    """One time step's chain of layers (functional steps made modules), and what the forward does with time."""

    leaves: List[_Leaf]
    static: bool = False
    """The chain's input is the same at every step (a static image): its first layer runs on the host."""
    steps: Optional[int] = None
    """The time steps the forward makes itself (its loop count, or its repeat), if it makes them."""
    notes: List[str] = field(default_factory=list)


def _first(a) -> Optional[torch.Tensor]:
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, (tuple, list)) and a and isinstance(a[0], torch.Tensor):
        return a[0]
    return None


_Call = Tuple[str, nn.Module, torch.Tensor, torch.Tensor]


def _calls(model: nn.Module, leaves: List[_Leaf], x: torch.Tensor) -> Tuple[List[_Call], object]:
    """``model(x)`` once in evaluation mode, every call of a leaf recorded as ``(path, module, input, output)``;
    the model's state is reset and its training flag restored after."""
    calls: List[_Call] = []
    by_id = {id(m): (p, m) for p, m in leaves}

    def hook(m, inputs, output):
        inp, out = _first(inputs), _first(output)
        if inp is not None and out is not None:
            calls.append((*by_id[id(m)], inp.detach().clone(), out.detach().clone()))

    handles = [m.register_forward_hook(hook) for _, m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            result = model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        reset_all(model)
    return calls, result


def _read_between(rec: Recorded, before: _Call, path: str, inp: torch.Tensor, model_name: str) -> None:
    """What the forward does between the call ``before`` and the next (at ``path``, taking ``inp``)."""
    step = _between(before[3], inp, before[0], path, model_name)
    if step == "repeat":  # a static prefix: the layers before run once, on the host
        rec.static, rec.steps = True, inp.shape[0]
        rec.notes.append(f"convert: the forward repeats the output of {before[0]} over {inp.shape[0]} "
                         "steps: the layers before it run on the host (direct input)")
    elif step is not None:
        rec.leaves.append(step)


def record_forward(model: nn.Module, leaves: List[_Leaf], x: torch.Tensor) -> Recorded:
    """Run ``model(x)`` once with hooks on ``leaves`` and read its chain (see the module docstring)."""
    calls, result = _calls(model, leaves, x)
    if not calls:
        raise UnsupportedLayerError(f"convert: the forward of {type(model).__name__} calls none of its layers")
    period = _period([id(c[1]) for c in calls])
    steps = len(calls) // period
    one = calls[:period]
    rec = Recorded([], steps=steps if steps > 1 else None)
    rec.static = steps > 1 and all(torch.equal(calls[k * period][2], one[0][2]) for k in range(steps))
    head = _between(x, one[0][2], "the input", one[0][0], type(model).__name__)
    if head == "repeat":  # the model repeats its input itself and nothing runs before: spikes in, as usual
        rec.steps = one[0][2].shape[0]
    elif head is not None:
        rec.leaves.append(head)
    silent = [one[k - 1][0] for k in range(1, len(one)) if not one[k - 1][3].any()]
    if silent:  # zeros pass through a scale or a mask unchanged: nothing after these could be checked
        rec.notes.append(f"convert: on the example input {', '.join(silent)} sent only zeros, so what the forward "
                         "does right after them could not be checked; give an example_input that makes them spike")
    for k, (path, m, inp, _) in enumerate(one):
        if k:
            _read_between(rec, one[k - 1], path, inp, type(model).__name__)
        rec.leaves.append((path, m))
    if steps > 1:
        rec.notes.append(f"convert: the forward loops {steps} times over the same layers; one step of it is the "
                         "chain" + (" (its input is the same every step: the first layer runs on the host, direct "
                                    "input)" if rec.static else ""))
    last = _first(result)
    if last is None or last.shape != one[-1][3].shape or not torch.equal(last, one[-1][3]):
        rec.notes.append(f"convert: what the forward does after {one[-1][0]} (e.g. torch.stack, .mean(0)) is its "
                         "readout, left to the host")
    return rec


def reset_all(model: nn.Module) -> None:
    """Reset the state of every module of ``model`` that keeps some (``reset()``; snnTorch's ``reset_mem()``)."""
    for m in model.modules():
        for reset in ("reset", "reset_mem"):
            if callable(getattr(m, reset, None)):
                getattr(m, reset)()


def _period(ids: List[int]) -> int:
    for p in range(1, len(ids) + 1):
        if len(ids) % p == 0 and ids == ids[:p] * (len(ids) // p):
            return p
    return len(ids)


def _between(a: torch.Tensor, b: torch.Tensor, a_name: str, b_name: str, model: str):
    """What turns ``a`` (the output before) into ``b`` (the next layer's input): None (the same data), a leaf
    (Flatten, MaxPool2d), ``'repeat'``, or a refusal naming both."""
    if a.shape == b.shape and torch.equal(a, b):
        return None
    if a.numel() == b.numel() and torch.equal(a.reshape(-1), b.reshape(-1)):
        if a.shape[1:] == b.shape[2:] or a.shape[2:] == b.shape[1:]:
            return None  # time and batch merged or split (SeqToANNContainer): the same layer input
        if b.dim() <= a.dim():
            return (f"flatten before {b_name}", nn.Flatten())
    if b.dim() == a.dim() + 1 and b.shape[1:] == a.shape and all(torch.equal(b[t], a) for t in range(b.shape[0])):
        return "repeat"
    if a.dim() >= 3 and b.dim() >= 3:
        img = a.reshape(-1, *a.shape[-3:])
        for k, s in ((2, 2), (3, 3), (3, 2)):
            if img.shape[-1] >= k and img.shape[-2] >= k:
                pooled = F.max_pool2d(img, k, s)
                if pooled.numel() == b.numel() and torch.equal(pooled.reshape(-1), b.reshape(-1)):
                    return (f"max_pool2d before {b_name}", nn.MaxPool2d(k, s))
    raise UnsupportedLayerError(
        f"convert: the forward of {model} does something between {a_name} and {b_name} (shape "
        f"{tuple(a.shape)} -> {tuple(b.shape)}) that is not a layer sj2lava reads (a flatten, a max-pool or a "
        "repeat over time). Make it a layer (nn.Flatten, nn.MaxPool2d, ...), or pass order=[...] naming the "
        "layers of one step in order (and direct_input=True if the first layer takes the same input every step)")
