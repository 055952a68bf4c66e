"""The walk of a model: its layers as ``(path, module)`` leaves, in the order its forward calls them.

Containers (``nn.Sequential``, SpikingJelly's ``SeqToANNContainer`` ...) are opened; blocks, modules a
front-end reads as a block and modules without children are leaves. The forward's order comes from
``torch.fx`` (:func:`forward_order`), from one recorded run of it (:func:`sj2lava.calls.record_forward`), or
from the user's ``order=``.
"""
from __future__ import annotations

import warnings
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..block import BlockContainer
from ..calls import record_forward
from ..errors import UnsupportedLayerError
from ..neuron import is_neuron, neuron_rule
from ..pool import SumPool2d
from ..synapses import find_rule
from .frontend import block_reader, is_dropout

Leaf = Tuple[str, nn.Module]

__all__ = ["Leaf", "leaves_of", "ordered_leaves", "forward_order", "static_example", "skip_dropout", "is_sumpool",
           "is_skipped", "unsupported"]


def leaves_of(m: nn.Module, prefix: str) -> Iterator[Leaf]:
    """``(path, module)`` of every layer of ``m`` in registration order: blocks, modules a front-end reads as a
    block, and modules without children; containers (``nn.Sequential``, ``SeqToANNContainer`` ...) are opened."""
    if isinstance(m, BlockContainer) or block_reader(m) is not None or not list(m.children()) or _is_leaf_type(m):
        yield prefix or type(m).__name__, m
        return
    for name, child in m.named_children():
        yield from leaves_of(child, f"{prefix}.{name}" if prefix else name)


def _is_leaf_type(m: nn.Module) -> bool:
    # modules with children that are still one layer (a neuron holding its surrogate, a conv with
    # weight-norm hooks...)
    return is_neuron(m) or isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool2d))


class Ordered:
    """The leaves in the forward's order, and what reading that order found: ``static`` (the model takes one
    input and makes ``steps`` time steps itself) and ``notes``."""

    def __init__(self, leaves: List[Leaf], static: bool = False, steps: int = 0) -> None:
        self.leaves, self.static, self.steps = leaves, static, steps
        self.notes: List[str] = []


def ordered_leaves(model: nn.Module, order: Optional[Sequence[str]], example_input: Optional[torch.Tensor]) -> Ordered:
    """``model``'s leaves in the order its forward uses them: ``order`` as given; else fx's trace; else (a forward
    fx cannot read: a loop over time, a static prefix) one run of it on ``example_input``; else registration order,
    with a warning and a note."""
    if order is not None:
        try:
            return Ordered([leaf for name in order for leaf in leaves_of(model.get_submodule(name), name)])
        except AttributeError as e:
            raise UnsupportedLayerError(f"convert: order names a submodule the model does not have ({e})") from None
    leaves = list(leaves_of(model, ""))
    notes: List[str] = []
    try:
        traced = forward_order(model, leaves, notes)
    except UnsupportedLayerError as e:
        if example_input is None:  # a loop over time or a static prefix can be read from one run
            raise UnsupportedLayerError(f"{e} With example_input=x, convert reads a time loop or a static prefix "
                                        "in the forward from one run of it.") from None
        traced = None
    if traced is not None:
        out = Ordered(traced)
    elif example_input is not None:  # fx could not read the forward: one run of it says what it calls
        rec = record_forward(model, leaves, example_input)
        out = Ordered(rec.leaves, rec.static, (rec.steps or 0) if rec.static else 0)
        notes.extend(rec.notes)
    else:
        note = (f"convert: the forward of {type(model).__name__} could not be traced; its layers were read in "
                "registration order. Check that its forward is that chain, pass example_input=x (one run of "
                "the forward then says what it calls), or pass order=[...]")
        notes.append(note)
        warnings.warn(note, stacklevel=3)
        out = Ordered(leaves)
    out.notes = notes
    return out


def forward_order(model: nn.Module, leaves: List[Leaf], notes: List[str]) -> Optional[List[Leaf]]:
    """The layers in the order ``model.forward`` calls them, traced with ``torch.fx`` (layers are leaves; an
    ``nn.Sequential`` subclass with a forward of its own, such as SpikingJelly's ``SeqToANNContainer``, is one
    leaf that applies its children in order). Refused by name: anything in the forward that is not a chain of
    these calls (a residual ``+ x``, a branch, a reshape, a layer called twice). Layers the forward never calls
    are left out, with a note. None for a forward fx cannot trace (control flow on the data, a neuron that
    compares its state with None, ...)."""
    import torch.fx as fx

    if len(leaves) <= 1 or not list(model.children()):
        return leaves
    by_id = {id(m): (path, m) for path, m in leaves}

    class _Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return id(m) in by_id or (isinstance(m, nn.Sequential) and type(m).forward is not nn.Sequential.forward)

    try:
        graph = _Tracer().trace(model)
    except Exception:  # noqa: BLE001  (anything fx cannot follow: data-dependent control flow, ...)
        return None
    called = _chain_of_calls(model, graph, by_id, leaves)
    _check_called_once(called)
    seen = {id(m) for _, m in called}
    unused = [path for path, m in leaves if id(m) not in seen]
    if unused:
        notes.append(f"convert: {', '.join(unused)} never called by the forward: left out")
    if [p for p, _ in called] != [p for p, _ in leaves if p not in unused]:
        notes.append("convert: layers taken in the order the forward calls them: " + ", ".join(p for p, _ in called))
    return called


def _chain_of_calls(model: nn.Module, graph, by_id: dict, leaves: List[Leaf]) -> List[Leaf]:
    """The leaves the traced ``graph`` calls, each on the output of the one before; anything else refused."""
    called: List[Leaf] = []
    prev = None
    name = type(model).__name__
    for node in graph.nodes:
        if node.op == "placeholder":
            if prev is not None and node.users:
                raise UnsupportedLayerError(f"convert: the forward of {name} takes several inputs ({node.name}); "
                                            "NetX nets have one")
            prev = node if node.users else prev
            continue
        if node.op == "output":
            if node.args[0] is not prev:
                raise UnsupportedLayerError(f"convert: the forward of {name} returns {node.args[0]!s:.80}, not the "
                                            "output of its last layer; NetX nets end in their last layer")
            continue
        if node.op != "call_module" or list(node.args) != [prev] or node.kwargs:
            what = f"{node.op} {getattr(node.target, '__name__', node.target)}"
            raise UnsupportedLayerError(
                f"convert: the forward of {name} is not a chain of layers: at {node.name!r} it "
                f"does {what} on {', '.join(str(a) for a in node.args)[:120]}. A residual connection, branch, "
                "reshape or arithmetic in the forward has no NetX form; express it with layers (nn.Flatten, "
                "a sum-pool, ...), restructure the model into a chain, or pass order=[...] (with direct_input=True "
                "if its first layer takes the same input every step).")
        m = model.get_submodule(node.target)
        if id(m) in by_id:
            called.append(by_id[id(m)])
        else:  # a Sequential subclass: its leaves, in order
            called.extend(leaf for leaf in leaves if leaf[0] == node.target or leaf[0].startswith(node.target + "."))
        prev = node
    return called


def _check_called_once(called: List[Leaf]) -> None:
    seen = [id(m) for _, m in called]
    twice = sorted({path for path, m in called if seen.count(id(m)) > 1})
    if twice:
        raise UnsupportedLayerError(f"convert: the forward calls {', '.join(twice)} more than once; a NetX layer "
                                    "runs once per step (pass order=[...] if the forward loops over time)")


def static_example(leaves: List[Leaf], x: torch.Tensor) -> bool:
    """A model of single-step neurons (snnTorch's) given one analog input with no time axis (``[N, C, H, W]`` into
    a first Conv2d, ``[N, F]`` into a first Linear): it is stepped over that same input, a static image. (0/1 input
    is one step of spikes, which Loihi takes as spikes.)"""
    k = next((k for k, (_, m) in enumerate(leaves) if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    single = any(getattr(neuron_rule(m), "single_step", False) for _, m in leaves if is_neuron(m))
    if k is None or not single or bool(((x == 0) | (x == 1)).all()):
        return False
    if isinstance(leaves[k][1], nn.Linear) and any(isinstance(m, nn.Flatten) for _, m in leaves[:k]):
        return x.dim() in (2, 3, 4) or (x.dim() == 5 and bool((x == x[:1]).all()))  # an image, or one repeated
    per_sample = 4 if isinstance(leaves[k][1], nn.Conv2d) else 2
    # [N, *image], or the same analog image every step [T, N, *image] (Loihi takes no analog input sequence)
    return x.dim() == per_sample or (x.dim() == per_sample + 1 and bool((x == x[:1]).all()))


def is_skipped(m: nn.Module) -> bool:
    """Dropout and Identity: the identity in evaluation, left out."""
    return is_dropout(m) or isinstance(m, nn.Identity)


def skip_dropout(leaves: Sequence[Leaf], j: int) -> int:
    """The index of the first leaf at or after ``j`` that is not left out (:func:`is_skipped`)."""
    while j < len(leaves) and is_skipped(leaves[j][1]):
        j += 1
    return j


def is_sumpool(m: nn.Module) -> bool:
    """sj2lava's SumPool2d, or a front-end's pool whose rule turns it into one (never nn.AvgPool2d: an average)."""
    if isinstance(m, SumPool2d):
        return True
    rule = find_rule(m)
    return rule is not None and rule.kind == "pool" and not isinstance(m, nn.AvgPool2d)


def unsupported(m: nn.Module) -> str:
    """Why module ``m`` cannot be put on Loihi where it stands, and what to do instead."""
    name = type(m).__name__
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        return (f"{name} here has no Loihi form: a MaxPool2d over spikes (the input's, or after a neuron) is an exact "
                "OR layer, and over a synapse's current (between it and its neuron) an average pool under "
                "approximate=True; elsewhere, and as MaxPool1d/3d, a max is not a weighted sum. Move it, or use "
                "sj2lava.SumPool2d or a strided Conv2d and retrain.")
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return f"{name} must follow a Conv2d/Linear directly to be folded into it."
    if isinstance(m, (nn.Conv1d, nn.Conv3d)):
        return f"{name} is not supported; NetX convolutions are 2-D. Use nn.Conv2d."
    return (f"{type(m).__module__}.{name} cannot be put on Loihi. Supported: Conv2d, Linear, BatchNorm after "
            "them, AvgPool2d, sj2lava.SumPool2d, MaxPool2d over spikes, Flatten, Dropout, and IF/LIF/CUBA neurons "
            "with v_reset=0.")
