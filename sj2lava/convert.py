"""Whole-model conversion: a trained SpikingJelly (or plain torch) spiking net -> BlockContainers.

The model's layers are taken in the order its ``forward`` calls them (traced with ``torch.fx``; a forward
that is not a chain of layers, e.g. a residual ``+ x``, is refused by name; nested ``nn.Sequential``,
SpikingJelly's ``SeqToANNContainer`` / ``MultiStepContainer`` and ``layer.*`` wrappers are chains), or in
``order=``, and grouped into Loihi layers::

    Conv2d | Linear  [BatchNorm] [Dropout]  neuron      -> conv / dense block (BN folded)
    AvgPool2d | SumPool2d  [Dropout]  neuron            -> sum-pool block (tap weight 1/k^2 for AvgPool)
    neuron  AvgPool2d  [Flatten]  Conv2d | Linear ...   -> the pool composed into that layer's weights
    Flatten                                             -> flatten block
    Dropout, Identity                                   -> dropped (evaluation semantics)
    BlockContainer (sj2lava or SpikingJelly lava_exchange) -> kept / rebuilt with its learned state
    lava-dl slayer.block.cuba Dense | Conv | Pool | Flatten -> the BlockContainer with its weights and neuron

Every step is exact in float arithmetic or announced: the returned ``nn.Sequential`` carries
``conversion_notes`` (also shown by :func:`sj2lava.verify`), each saying what changed and how much.
Weights are then quantized to 8 bits as Loihi requires; ``verify`` measures the effect.
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from . import quant
from .block import HOST_MODULES, BlockContainer, InputBlock, run_blocks
from .calls import record_forward
from .errors import UnsupportedLayerError
from .neuron import CubaLIFNode, is_neuron, neuron_notes, neuron_rule, to_cuba
from .pool import SumPool2d, pair
from .synapses import find_rule, rule_for

__all__ = ["convert", "rescale", "block", "register_block_reader", "register_dropout", "register_recurrence"]

_Leaf = Tuple[str, nn.Module]


def convert(model: nn.Module, *, example_input: Optional[torch.Tensor] = None,
            order: Optional[Sequence[str]] = None, approximate: bool = False,
            direct_input: bool = False, rescale: bool = True) -> nn.Sequential:
    """Turn a trained spiking net into an equivalent ``nn.Sequential`` of :class:`BlockContainer`.

    Args:
        model: the trained net (not modified; converted layers are copies).
        example_input: one input ``[T, N, *shape]`` (or ``[N, *shape]``); needed only to compose an
            ``AvgPool2d`` into a following ``Linear`` or padded ``Conv2d`` (it tells the image size).
        order: names of ``model``'s submodules in the order its ``forward`` uses them, for models whose
            layers are members rather than a Sequential (e.g. snnTorch's ``fc1, lif1, fc2, lif2``).
        approximate: accept neurons with no exact Loihi form (snnTorch's subtract reset) by the
            nearest CUBA neuron, with a warning and a conversion note.
        direct_input: the model's first layer takes the analog input (the same image every step, SpikingJelly's
            usual classifier): its synapse (BatchNorm folded) runs on the host and its neurons become the file's
            input neurons, driven by that current as their bias (:class:`~sj2lava.block.InputBlock`; its
            ``input_bias(x)`` feeds ``emulate`` / ``run_lava``). The bias is rounded to 1/64 and clipped to 13 bits.
        rescale: scale each layer made from float modules (not BlockContainers or front-end blocks, whose grid is
            already Loihi's) by one positive factor on its weights, bias and threshold so that its largest weight
            fills the 8-bit grid (:func:`rescale_block`; zero-reset CUBA spikes do not change). Noted per layer.

    Returns:
        ``nn.Sequential`` of BlockContainers in multi-step mode with Lava's timing
        (``delay_shift=True``), with a ``conversion_notes`` list of everything that is not exact.

    Raises:
        UnsupportedLayerError: naming the module path (e.g. ``features.3``) and what to do instead.
    """
    if order is not None:
        try:
            leaves = [leaf for name in order for leaf in leaves_of(model.get_submodule(name), name)]
        except AttributeError as e:
            raise UnsupportedLayerError(f"convert: order names a submodule the model does not have ({e})") from None
    else:
        leaves = list(leaves_of(model, ""))
    notes: List[str] = []
    static = 0  # the steps a model that takes one static input makes itself
    if order is None:
        try:
            traced = _forward_order(model, leaves, notes)
        except UnsupportedLayerError as e:
            if example_input is None:  # a loop over time or a static prefix can be read from one run
                raise UnsupportedLayerError(f"{e} With example_input=x, convert reads a time loop or a static prefix "
                                            "in the forward from one run of it.") from None
            traced = None
        if traced is not None:
            leaves = traced
        elif example_input is not None:  # fx could not read the forward: one run of it says what it calls
            rec = record_forward(model, leaves, example_input)
            leaves, direct_input, static = rec.leaves, direct_input or rec.static, rec.steps if rec.static else 0
            notes.extend(rec.notes)
        else:
            note = (f"convert: the forward of {type(model).__name__} could not be traced; its layers were read in "
                    "registration order. Check that its forward is that chain, pass example_input=x (one run of "
                    "the forward then says what it calls), or pass order=[...]")
            notes.append(note)
            warnings.warn(note, stacklevel=2)
    if example_input is not None and not direct_input and _static_example(leaves, example_input):
        direct_input = True
        notes.append("convert: example_input is analog with no time axis and the model's neurons take one step a "
                     "call: it is stepped over the same input (a static image), so its first layer runs on the host "
                     "(direct input); give [T, N, ...] spikes as example_input for a model stepped over a sequence")
    made: List[Tuple[BlockContainer, str]] = []  # the layers built from float modules
    notes.extend(f"{path}: {type(m).__name__} left out (the identity in evaluation)" for path, m in leaves
                 if _is_dropout(m) or isinstance(m, nn.Identity))
    blocks: List[BlockContainer] = []
    sources: List[str] = []  # per spiking block, the module of the model whose output it equals (verify reads it)
    pending_pool: Optional[_Leaf] = None  # an AvgPool2d after a neuron, to fold into the next synapse
    host_prefix: List[_Leaf] = []  # direct input: what comes before the first synapse also runs on the host
    i = 0
    while i < len(leaves):
        path, m = leaves[i]
        if _is_dropout(m) or isinstance(m, nn.Identity):
            i += 1
            continue
        if direct_input and not blocks and isinstance(m, HOST_MODULES) and not isinstance(m, (nn.Conv2d, nn.Linear)):
            host_prefix.append((path, m))
            i += 1
            continue
        if isinstance(m, BlockContainer):
            _no_pending(pending_pool, path)
            blocks.append(m)
            sources += [path] if m.neuron is not None else []
            i += 1
            continue
        read = _block_reader(m)
        if read is not None:
            _no_pending(pending_pool, path)
            blocks.append(read(m, path, notes))
            sources += [path] if blocks[-1].neuron is not None else []
            i += 1
            continue
        if isinstance(m, nn.MaxPool2d) and not (direct_input and not blocks) and pending_pool is None and (
                not blocks or blocks[-1].neuron is not None):  # over spikes (the input's or a neuron's): an OR
            blocks.append(_max_pool_or(m, path, notes))
            sources.append(path)
            i += 1
            continue
        if isinstance(m, nn.Flatten):
            blocks.append(BlockContainer(copy.deepcopy(m), None, "m"))
            i += 1
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)) and type(m) not in (nn.Conv1d, nn.Conv3d):
            syn = copy.deepcopy(m)
            if pending_pool is not None:
                syn = _compose_pool(pending_pool, syn, path, blocks, example_input, notes)
                pending_pool = None
            i += 1
            if i < len(leaves) and isinstance(leaves[i][1], (nn.BatchNorm1d, nn.BatchNorm2d)):
                syn = _fold_bn(syn, leaves[i][1], leaves[i][0])
                notes.append(f"{leaves[i][0]}: {type(leaves[i][1]).__name__} folded into {path} "
                             "(exact in float; becomes the neuron bias, added to v on the 1/64 grid)")
                i += 1
            j = _skip_dropout(leaves, i)
            host = direct_input and not blocks
            if host:  # everything up to the first neuron runs on the host, in float: exact, max-pools included
                taken = []
                while j < len(leaves) and isinstance(leaves[j][1], HOST_MODULES) and not is_neuron(leaves[j][1]):
                    taken.append(leaves[j])
                    j = _skip_dropout(leaves, j + 1)
                if taken or host_prefix:
                    syn = nn.Sequential(*[copy.deepcopy(t) for _, t in host_prefix], syn,
                                        *[copy.deepcopy(t) for _, t in taken]).eval()
                    notes.append(f"{', '.join(p for p, _ in host_prefix + taken)}: run on the host with {path} "
                                 "(direct input), exactly")
                    i = j if taken else i
            elif j < len(leaves) and isinstance(leaves[j][1], nn.MaxPool2d):  # a max over currents
                leaves = leaves[:j] + [_max_over_currents(leaves[j], path, approximate, notes)] + leaves[j + 1:]
            if isinstance(syn, nn.Conv2d) and j < len(leaves) and (
                    isinstance(leaves[j][1], nn.AvgPool2d) or _is_sumpool(leaves[j][1])):
                syn = _conv_then_pool(syn, leaves[j], path, notes)
                i = j + 1
            i, neu = _neuron_after(leaves, i, path, type(m).__name__)
            where = leaves[i - 1][0]
            node = _cuba(neu, where, approximate, notes)
            _current_bias(neu, node, syn, path, where, host, approximate, notes)
            sources.append(where)
            if host:
                try:
                    blocks.append(InputBlock(syn, node))
                except UnsupportedLayerError as e:
                    raise UnsupportedLayerError(f"{where}: {e}") from None
                notes.append(f"{path}: the first layer's {type(m).__name__} runs on the host (direct input): its "
                             f"output is the input neurons' bias ({where}), rounded to 1/64 and clipped to 13 bits")
                continue
            rec = _recurrence(neu, syn, where)
            blocks.append(block(syn, node, where, recurrent=rec))
            made.append((blocks[-1], where))
            continue
        if isinstance(m, nn.AvgPool2d) or _is_sumpool(m):
            j = _skip_dropout(leaves, i + 1)
            if j < len(leaves) and is_neuron(leaves[j][1]):
                pool = _pool_block_synapse(m, path, notes)
                blocks.append(block(pool, _cuba(leaves[j][1], leaves[j][0], approximate, notes), leaves[j][0]))
                made.append((blocks[-1], leaves[j][0]))
                sources.append(leaves[j][0])
                i = j + 1
                continue
            k = _skip_dropout(leaves, j)
            if k < len(leaves) and isinstance(leaves[k][1], nn.Flatten):
                k = _skip_dropout(leaves, k + 1)
            nxt = leaves[k][1] if k < len(leaves) else None
            if isinstance(m, nn.AvgPool2d) and isinstance(nxt, (nn.Conv2d, nn.Linear)) and blocks \
                    and blocks[-1].neuron is not None:
                pending_pool = (path, m)
                i += 1
                continue
            raise UnsupportedLayerError(
                f"{path}: {type(m).__name__} must either feed a neuron (a sum-pool layer) or sit between a "
                "neuron and a Conv2d/Linear (composed into its weights). Restructure the model so it does."
            )
        if is_neuron(m):
            raise UnsupportedLayerError(
                f"{path}: {type(m).__name__} has no synapse before it (Loihi neurons are fed by a conv, dense "
                "or pool synapse). Remove it or put a Conv2d/Linear/AvgPool2d before it."
            )
        raise UnsupportedLayerError(f"{path}: {_unsupported(m)}")
    if pending_pool is not None:
        raise UnsupportedLayerError(f"{pending_pool[0]}: AvgPool2d at the end of the model feeds no layer; "
                                    "remove it or add a neuron after it.")
    if not any(b.neuron is not None for b in blocks):
        raise UnsupportedLayerError("convert: the model has no synapse + neuron layer to put on Loihi")
    if rescale:
        for b, where in made:
            rescale_block(b, where, notes)
    net = nn.Sequential(*blocks)
    net.float_layers = sources
    net.static_input = static  # the model takes one input and makes its time steps itself (verify runs it so)
    if example_input is not None:  # export and summary then need no input_shape
        net.input_shape = _example_shape(blocks, example_input)
        if isinstance(blocks[0], InputBlock) and net.input_shape is not None:
            blocks[0].input_shape = net.input_shape  # input_bias then tells [N, *] from [T, N, *]
    notes.extend(neuron_notes(model))
    net.conversion_notes = notes
    for n in notes:
        if "rounds" in n:
            warnings.warn(n, stacklevel=2)
    return net


def _static_example(leaves: List[_Leaf], x: torch.Tensor) -> bool:
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


def _example_shape(blocks: List[BlockContainer], x: torch.Tensor) -> Optional[Tuple[int, ...]]:
    """The per-sample input shape of ``x`` (``[T, N, *shape]`` or ``[N, *shape]``) as the first layer reads it:
    ``(C, H, W)`` for a conv or pool, ``(features,)`` for a dense layer, either for a leading flatten (whichever
    the dense layer after it takes)."""
    first = blocks[0]
    syn = first.encoder if isinstance(first, InputBlock) else first.synapse
    if isinstance(first, BlockContainer) and first.kind == "flatten":
        nxt = next((b for b in blocks[1:] if b.neuron is not None), None)
        n = getattr(getattr(nxt, "synapse", None), "in_features", None)
        for k in (3, 1, 2):
            if x.dim() > k and n is not None and int(torch.tensor(x.shape[-k:]).prod()) == n:
                return tuple(int(v) for v in x.shape[-k:])
        return None
    if isinstance(syn, nn.Linear):
        return (int(x.shape[-1]),)
    return tuple(int(v) for v in x.shape[-3:]) if x.dim() >= 3 else None


# --------------------------------------------------------------------------- rescaling
_W_MAX = quant.W_MANT_MAX / quant.W_SCALE  # the largest 8-bit weight, 254/64
_TH_MAX = quant.V_TH_MANT_MAX / quant.W_SCALE
_B_MAX = quant.BIAS_MANT_MAX / quant.W_SCALE


def _on_grid(x: torch.Tensor, step: float) -> bool:
    return bool(torch.all(torch.round(x / step) * step == x))


def rescale_block(b: BlockContainer, where: str, notes: List[str]) -> None:
    """Scale the block's weights, bias and threshold by one factor ``a > 0`` (``input_scale *= a``,
    ``v_threshold *= a``) so that its largest weight is 254/64; a zero-reset CUBA neuron's spikes do not change,
    as ``u`` and ``v`` scale with it. ``a`` also keeps the threshold within 17 bits, the bias within 13 and the
    registers that wrap (the synaptic sum and the worst-case ``u``, :func:`sj2lava.quant.state_bounds`) within 24
    bits; ``v`` saturates and bounds nothing. A layer already on Loihi's grid (weights in 2/64, bias and threshold
    in 1/64: a graph ``to_nir`` wrote) is kept."""
    rule = rule_for(b.synapse, where)
    with torch.no_grad():
        w = effective_weight(b)
        top = float(w.abs().max()) if w.numel() else 0.0
        if top == 0.0:
            return
        bias = rule.bias(b.synapse, b.input_scale)
        rows = float(w.reshape(w.shape[0], -1).abs().sum(1).max())
        b_max = 0.0 if bias is None else float(bias.abs().max())
    th = float(b.neuron.v_threshold)
    if _on_grid(w, quant.WEIGHT_STEP) and (bias is None or _on_grid(bias, 1 / quant.W_SCALE)) and \
            th * quant.W_SCALE == int(th * quant.W_SCALE):
        return
    limits = {"the weight grid": _W_MAX / top}
    if th > 0:
        limits["the 17-bit threshold"] = _TH_MAX / th
    if b_max > 0:
        limits["the 13-bit bias"] = _B_MAX / b_max
    s = quant.S_SCALE
    for bound, what in quant.state_bounds(rows * s, b.neuron.i_decay):
        if bound > 0:
            limits[f"{what} (24 bits)"] = quant.STATE_MAX / bound
    bound = min(limits, key=limits.get)
    a = limits[bound]

    def excess(a: float) -> float:  # the worst bound of a wrapping register of the quantized layer, over 2^23 - 1
        q = quant.weight_mant(w * a).abs().reshape(w.shape[0], -1).sum(1).max()
        bounds = quant.state_bounds(float(q) * quant.W_SCALE, b.neuron.i_decay)
        return max(v for v, _ in bounds) / quant.STATE_MAX

    for _ in range(8):  # rounding to the grid can push a bound just past 2^23: step back until it holds
        over = excess(a)
        if over <= 1.0:
            break
        a *= (1 - 1e-3) / over
    if abs(a - 1.0) < 2e-3:  # already fitted (the step-back above leaves a factor this close to 1 on a refit)
        return
    b.input_scale *= a
    b.neuron.v_threshold = th * a
    notes.append(f"{where}: weights, bias and threshold scaled by {a:.6g} (largest |weight| {top:.4g} -> "
                 f"{top * a:.4g}, threshold {th:.4g} -> {th * a:.4g}; the factor is bounded by {bound}); zero-reset "
                 "CUBA spikes do not change with a common scale")


def rescale(model: nn.Module) -> List[str]:
    """Refit every spiking layer of ``model`` (a net of BlockContainers: converted, fine-tuned or hand-built) to
    Loihi's registers with :func:`rescale_block`: one positive factor per layer on weights, bias and threshold
    that fills the 8-bit weight grid while the threshold, bias, synaptic sum and current stay within their bits.
    Zero-reset CUBA spikes do not change with a common scale (exactly in float; on Loihi's grid up to rounding).
    Layers already on the grid are kept. Use it after :func:`sj2lava.finetune` when ``export`` refuses a layer.

    Returns the notes, one per layer changed (also added to ``model.conversion_notes``)."""
    notes: List[str] = []
    for i, b in enumerate(model if isinstance(model, (nn.Sequential, list, tuple)) else [model]):
        if isinstance(b, BlockContainer) and b.neuron is not None:
            rescale_block(b, f"block {i}", notes)
    if notes and isinstance(model, nn.Module):
        model.conversion_notes = list(getattr(model, "conversion_notes", [])) + notes
    return notes


def effective_weight(b: BlockContainer) -> torch.Tensor:
    """The block's float weights times its input scale, per output row (a pool: its one tap weight; a recurrent
    layer: its input and recurrent weights side by side)."""
    syn = b.synapse
    if isinstance(syn, SumPool2d):
        return torch.full((1, syn.kernel_size[0] * syn.kernel_size[1]), syn.weight * b.input_scale)
    w = syn.weight.detach()
    if b.recurrent is not None:
        w = torch.cat([w, b.recurrent.weight.detach()], 1)
    return w * b.input_scale



# --------------------------------------------------------------------------- walking
def leaves_of(m: nn.Module, prefix: str) -> Iterator[_Leaf]:
    """``(path, module)`` of every layer of ``m`` in registration order: blocks, modules a front-end reads as a
    block, and modules without children; containers (``nn.Sequential``, ``SeqToANNContainer`` ...) are opened."""
    if isinstance(m, BlockContainer) or _block_reader(m) is not None or not list(m.children()) or _is_leaf_type(m):
        yield prefix or type(m).__name__, m
        return
    for name, child in m.named_children():
        yield from leaves_of(child, f"{prefix}.{name}" if prefix else name)


def _is_leaf_type(m: nn.Module) -> bool:
    # modules with children that are still one layer (a neuron holding its surrogate, a conv with
    # weight-norm hooks...)
    return is_neuron(m) or isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool2d))


def _forward_order(model: nn.Module, leaves: List[_Leaf], notes: List[str]) -> Optional[List[_Leaf]]:
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
    called: List[_Leaf] = []
    prev = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if prev is None and not node.users:
                continue
            if prev is not None and node.users:
                raise UnsupportedLayerError(f"convert: the forward of {type(model).__name__} takes several inputs "
                                            f"({node.name}); NetX nets have one")
            prev = node if node.users else prev
            continue
        if node.op == "output":
            out = node.args[0]
            if out is not prev:
                raise UnsupportedLayerError(f"convert: the forward of {type(model).__name__} returns {out!s:.80}, not "
                                            "the output of its last layer; NetX nets end in their last layer")
            continue
        if node.op != "call_module" or list(node.args) != [prev] or node.kwargs:
            what = f"{node.op} {getattr(node.target, '__name__', node.target)}"
            raise UnsupportedLayerError(
                f"convert: the forward of {type(model).__name__} is not a chain of layers: at {node.name!r} it "
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
    seen = [id(m) for _, m in called]
    twice = sorted({path for path, m in called if seen.count(id(m)) > 1})
    if twice:
        raise UnsupportedLayerError(f"convert: the forward calls {', '.join(twice)} more than once; a NetX layer "
                                    "runs once per step (pass order=[...] if the forward loops over time)")
    unused = [path for path, m in leaves if id(m) not in seen]
    if unused:
        notes.append(f"convert: {', '.join(unused)} never called by the forward: left out")
    if [p for p, _ in called] != [p for p, _ in leaves if p not in unused]:
        notes.append("convert: layers taken in the order the forward calls them: " + ", ".join(p for p, _ in called))
    return called


# --------------------------------------------------------------------------- front-end hooks
_BlockReader = Tuple[Callable[[nn.Module], bool], Callable[[nn.Module, str, List[str]], BlockContainer]]
_BLOCK_READERS: List[_BlockReader] = []
_DROPOUTS: List[Callable[[nn.Module], bool]] = [lambda m: isinstance(m, (nn.Dropout, nn.Dropout2d))]


def register_block_reader(recognises: Callable[[nn.Module], bool],
                          read: Callable[[nn.Module, str, List[str]], BlockContainer]) -> None:
    """Let ``convert`` take a front-end's whole block (synapse + neuron, e.g. SpikingJelly's
    ``lava_exchange.BlockContainer``) as one layer: ``read(module, path, notes) -> BlockContainer``."""
    _BLOCK_READERS.append((recognises, read))


def register_dropout(recognises: Callable[[nn.Module], bool]) -> None:
    """A module type ``convert`` drops (dropout: the identity in evaluation)."""
    _DROPOUTS.append(recognises)


_Recurrence = Tuple[Callable[[nn.Module], bool], Callable[[nn.Module, nn.Module, str], Optional[nn.Linear]]]
_RECURRENCES: List[_Recurrence] = []


def register_recurrence(recognises: Callable[[nn.Module], bool],
                        read: Callable[[nn.Module, nn.Module, str], Optional[nn.Linear]]) -> None:
    """A neuron type that carries its own recurrent synapse (snnTorch's ``RLeaky``): ``read(neuron, synapse,
    where)`` returns it as an ``nn.Linear(n, n, bias=False)`` (folding a bias it has into ``synapse``'s, or
    refusing it by name), for a recurrent BlockContainer."""
    _RECURRENCES.append((recognises, read))


def _recurrence(neu: nn.Module, syn: nn.Module, where: str) -> Optional[nn.Linear]:
    read = next((read for recognises, read in _RECURRENCES if recognises(neu)), None)
    return None if read is None else read(neu, syn, where)


def _block_reader(m: nn.Module):
    return next((read for recognises, read in _BLOCK_READERS if recognises(m)), None)


def _is_dropout(m: nn.Module) -> bool:
    return any(recognises(m) for recognises in _DROPOUTS)


def _is_sumpool(m: nn.Module) -> bool:
    # sj2lava's, or a front-end's pool whose rule turns it into one (never nn.AvgPool2d: that is an average)
    if isinstance(m, SumPool2d):
        return True
    rule = find_rule(m)
    return rule is not None and rule.kind == "pool" and not isinstance(m, nn.AvgPool2d)


def _skip_dropout(leaves: Sequence[_Leaf], j: int) -> int:
    while j < len(leaves) and (_is_dropout(leaves[j][1]) or isinstance(leaves[j][1], nn.Identity)):
        j += 1
    return j


def _no_pending(pending: Optional[_Leaf], path: str) -> None:
    if pending is not None:
        raise UnsupportedLayerError(f"{pending[0]}: AvgPool2d before the block {path} cannot be composed into "
                                    "it; put it before a plain Conv2d/Linear or after a neuron as a pool layer.")


def _neuron_after(leaves: Sequence[_Leaf], i: int, path: str, what: str) -> Tuple[int, nn.Module]:
    i = _skip_dropout(leaves, i)
    if i < len(leaves) and isinstance(leaves[i][1], (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool2d)):
        raise UnsupportedLayerError(f"{leaves[i][0]}: {_unsupported(leaves[i][1])}")
    if i >= len(leaves) or not is_neuron(leaves[i][1]):
        found = f"{leaves[i][0]} ({type(leaves[i][1]).__name__})" if i < len(leaves) else "the end of the model"
        raise UnsupportedLayerError(
            f"{path}: {what} is followed by {found}, not by a spiking neuron; every Loihi layer ends in CUBA "
            "neurons. Add a neuron (e.g. SpikingJelly neuron.IFNode()) after it and retrain."
        )
    return i + 1, leaves[i][1]


def _cuba(neu: nn.Module, where: str, approximate: bool, notes: List[str]) -> nn.Module:
    """The neuron as a CubaLIFNode (with its input scale), so options like ``approximate`` apply. What the
    front-end's rule approximates it warns about; each such warning is also a conversion note."""
    named = f"{where} ({type(neu).__name__})"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            node, scale = to_cuba(neu, with_input_scale=True, where=named, approximate=approximate)
    except UnsupportedLayerError as e:
        raise UnsupportedLayerError(f"{where}: {e}") from None
    for w in caught:  # a rule's approximation names the layer; anything else passes through as it came
        if str(w.message).startswith(named):
            notes.append(f"{w.message} (not exact)")
        warnings.warn(w.message, w.category, stacklevel=3)
    if node is neu:
        node = copy.deepcopy(neu)
    node.input_scale = scale
    return node


def _current_bias(neu: nn.Module, node: nn.Module, syn: nn.Module, path: str, where: str, host: bool,
                  approximate: bool, notes: List[str]) -> None:
    """A framework neuron whose decaying synaptic current takes the synapse's bias (snnTorch's ``Synaptic``; with
    direct input, the whole host current): the current settles at ``bias / current_decay`` after ~1/current_decay
    steps, where Loihi adds a bias to ``v`` at full size from the first step. Refused, or under ``approximate``
    the bias (the host current) is divided by the current decay, so that it equals the settled current, noted."""
    rule = neuron_rule(neu)
    cd = node.i_decay / quant.P_SCALE
    bias = getattr(syn, "bias", None)
    if rule is None or not rule.bias_in_current or cd >= 1.0 or not (host or (bias is not None and
                                                                              bool((bias != 0).any()))):
        return
    what = "the host-side current of the direct input" if host else f"the bias of {path}"
    if not approximate:
        raise UnsupportedLayerError(
            f"{where}: {what} enters {type(neu).__name__}'s decaying synaptic current (current decay {cd:g}: it "
            f"settles at {1 / cd:.3g}x after ~{1 / cd:.0f} steps), while Loihi adds a bias to the voltage at full "
            "size from the first step; no NetX layer computes the ramp. Exact alternatives: no bias (or a neuron "
            "without a current decay, alpha = 0) and retrain; or convert with approximate=True (the bias as its "
            "settled value on the voltage; sj2lava.verify measures the difference).")
    if host:
        node.input_scale /= cd
    else:
        with torch.no_grad():
            syn.bias.div_(cd)
    notes.append(f"{where}: {what} moved from the decaying current to the voltage as its settled value "
                 f"(x{1 / cd:.4g}); equal once the current has settled, different in the first steps (not exact)")


def block(syn: nn.Module, neu: nn.Module, where: str, recurrent: Optional[nn.Linear] = None) -> BlockContainer:
    """``BlockContainer(syn, neu, 'm', recurrent=recurrent)``, its errors prefixed with the module path ``where``."""
    try:
        return BlockContainer(syn, neu, "m", recurrent=recurrent)
    except UnsupportedLayerError as e:
        raise UnsupportedLayerError(f"{where}: {e}") from None


def _unsupported(m: nn.Module) -> str:
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


# --------------------------------------------------------------------------- steps
def _fold_bn(syn: nn.Module, bn: nn.Module, where: str) -> nn.Module:
    """``bn(W x + b)`` in evaluation mode == ``W' x + b'``: ``W' = W g/s``, ``b' = (b - mean) g/s + beta``,
    ``s = sqrt(var + eps)``."""
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedLayerError(f"{where}: BatchNorm without running statistics (track_running_stats="
                                    "False) cannot be folded; train with track_running_stats=True.")
    if bn.num_features != (syn.out_channels if isinstance(syn, nn.Conv2d) else syn.out_features):
        raise UnsupportedLayerError(f"{where}: BatchNorm over {bn.num_features} features does not match the "
                                    "synapse before it")
    with torch.no_grad():
        scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
        b = syn.bias if syn.bias is not None else torch.zeros_like(bn.running_mean)
        new_b = (b - bn.running_mean) * scale + shift
        syn.weight.mul_(scale.view(-1, *([1] * (syn.weight.dim() - 1))))
        syn.bias = nn.Parameter(new_b.clone())
    return syn


def _max_pool_or(m: nn.MaxPool2d, path: str, notes: List[str]) -> BlockContainer:
    """``MaxPool2d`` over 0/1 spikes is an OR over each window: a sum-pool (tap 1) into memoryless neurons
    (current and voltage decay 1, so ``v`` is this step's window sum; threshold 1/2, below one input spike; zero
    reset) fires exactly where the max is 1, one step later (one more Loihi layer). Trainable like any layer."""
    k = pair(m.kernel_size)
    s = pair(m.stride) if m.stride is not None else k
    if pair(m.padding) != (0, 0) or pair(m.dilation) != (1, 1) or m.ceil_mode or m.return_indices:
        raise UnsupportedLayerError(f"{path}: MaxPool2d with padding, dilation, ceil_mode or return_indices has no "
                                    "sum-pool form; use MaxPool2d(kernel_size, stride) alone")
    notes.append(f"{path}: MaxPool2d{k} over spikes as an OR layer (a sum-pool into memoryless neurons, threshold "
                 "1/2): exact, one step later (one more Loihi layer)")
    return BlockContainer(SumPool2d(k, s, weight=1.0), CubaLIFNode(1.0, 1.0, 0.5), "m")


def _max_over_currents(pool: _Leaf, path: str, approximate: bool, notes: List[str]) -> _Leaf:
    """A ``MaxPool2d`` between a synapse and its neuron: a max of currents, which no weighted sum computes.
    Refused naming the choices; under ``approximate`` the average pool of the same window (noted)."""
    ppath, m = pool
    k = pair(m.kernel_size)
    if not approximate:
        raise UnsupportedLayerError(
            f"{ppath}: MaxPool2d{k} over the currents of {path} (before its neuron) has no exact Loihi form: a max of "
            "currents is not a weighted sum. Choices: put the max-pool after the neuron (over spikes it is exact, an "
            "OR layer), retrain with AvgPool2d / sj2lava.SumPool2d, or convert with approximate=True (the average of "
            "the window instead of its max, noted; sj2lava.finetune then recovers the accuracy).")
    if pair(m.padding) != (0, 0) or pair(m.dilation) != (1, 1) or m.ceil_mode:
        raise UnsupportedLayerError(f"{ppath}: MaxPool2d with padding, dilation or ceil_mode has no average-pool "
                                    "stand-in; use MaxPool2d(kernel_size, stride) alone")
    notes.append(f"{ppath}: MaxPool2d{k} over the currents of {path} replaced by AvgPool2d{k} (not exact: the window's "
                 "mean instead of its max; sj2lava.finetune recovers the accuracy, verify measures it)")
    return ppath, nn.AvgPool2d(k, m.stride if m.stride is not None else k)


def _pool_block_synapse(m: nn.Module, path: str, notes: List[str]) -> SumPool2d:
    if _is_sumpool(m):
        if isinstance(m, SumPool2d):
            return copy.deepcopy(m)
        return rule_for(m, path).normalize(m, path)
    if pair(m.padding) != (0, 0) or m.ceil_mode or m.divisor_override is not None:
        raise UnsupportedLayerError(f"{path}: AvgPool2d(padding={m.padding}, ceil_mode={m.ceil_mode}) is not "
                                    "supported; use padding=0 and ceil_mode=False.")
    k = pair(m.kernel_size)
    s = pair(m.stride) if m.stride is not None else k
    tap = 1.0 / (k[0] * k[1])
    q = float(quant.quantize_weight(torch.tensor(tap)))
    if q == 0.0:
        raise UnsupportedLayerError(
            f"{path}: AvgPool2d{k} averages with 1/{k[0] * k[1]}, which rounds to 0 on Loihi's 8-bit weight grid "
            "(steps of 2/64). Use a smaller kernel, or sj2lava.SumPool2d and retrain."
        )
    if q != tap:
        notes.append(f"{path}: AvgPool2d{k} tap weight 1/{k[0] * k[1]} = {tap:.5f} rounds to {q:.5f} on the 8-bit "
                     f"grid ({(q - tap) / tap:+.1%}); exact only for 2x2 and 4x4 windows")
    else:
        notes.append(f"{path}: AvgPool2d{k} becomes a sum-pool with tap weight {q:g} (exact)")
    return SumPool2d(k, s, weight=tap)


def _compose_pool(pool: _Leaf, syn: nn.Module, path: str, blocks: List[BlockContainer],
                  example_input: Optional[torch.Tensor], notes: List[str]) -> nn.Module:
    """``syn(avgpool_k(x))`` as one synapse on ``x`` (see :func:`compose_pool`)."""
    ppath, p = pool
    k = pair(p.kernel_size)
    s = pair(p.stride) if p.stride is not None else k
    if p.ceil_mode:
        raise UnsupportedLayerError(f"{ppath}: AvgPool2d with ceil_mode cannot be composed into {path}; use "
                                    "ceil_mode=False.")
    needs_hw = isinstance(syn, nn.Linear) or pair(getattr(syn, "padding", 0)) != (0, 0)
    hw = _pool_input_hw(blocks, example_input, ppath, path) if needs_hw else None
    return compose_pool(k, s, pair(p.padding), 1.0 / (k[0] * k[1]), syn, ppath, path, hw, notes,
                        what=f"AvgPool2d{k}")


def compose_pool(k: Tuple[int, int], s: Tuple[int, int], padding: Tuple[int, int], tap: float, syn: nn.Module,
                 ppath: str, path: str, hw: Optional[Tuple[int, int]], notes: List[str], what: str) -> nn.Module:
    """``syn(pool(x))`` as one synapse on ``x``, for a pool of window ``k`` with every tap weighing ``tap`` (1 for a
    sum-pool, ``1/k^2`` for an average): kernel ``k K``, stride ``k S``, padding ``k P``, weights
    ``tap W[y // k, x // k]`` (a Linear sees the pre-pool image ``hw``, rows beyond ``k h`` weighted 0).
    Exact in float; needs stride == kernel and no pool padding."""
    if s != k or padding != (0, 0):
        raise UnsupportedLayerError(f"{ppath}: only a pool with stride == kernel_size and no padding can be "
                                    f"composed into {path}; change the pool or put a neuron after it.")
    with torch.no_grad():
        if isinstance(syn, nn.Conv2d):
            if pair(syn.dilation) != (1, 1) or isinstance(syn.padding, str):
                raise UnsupportedLayerError(f"{ppath}: a pool cannot be composed into the dilated or "
                                            f"string-padded Conv2d {path}.")
            pad = pair(syn.padding)
            if pad != (0, 0):
                h, w = hw
                if h % k[0] or w % k[1]:
                    raise UnsupportedLayerError(
                        f"{ppath}: a {h}x{w} map pooled by {k} drops rows/columns that the padding of {path} "
                        "would see as zeros; the composition is not exact. Use sizes divisible by the pool.")
            w0 = syn.weight
            kern = (w0.shape[2] * k[0], w0.shape[3] * k[1])
            stride = (syn.stride[0] * k[0], syn.stride[1] * k[1])
            new = nn.Conv2d(syn.in_channels, syn.out_channels, kern, stride=stride,
                            padding=(pad[0] * k[0], pad[1] * k[1]), groups=syn.groups, bias=syn.bias is not None)
            new.weight.copy_(w0.repeat_interleave(k[0], 2).repeat_interleave(k[1], 3) * tap)
        else:
            h, w = hw
            hp, wp = h // k[0], w // k[1]
            c = syn.in_features // (hp * wp) if hp * wp else 0
            if c * hp * wp != syn.in_features:
                raise UnsupportedLayerError(f"{path}: Linear({syn.in_features}) does not fit the pooled {hp}x{wp} map")
            w4 = syn.weight.reshape(syn.out_features, c, hp, wp) * tap
            full = torch.zeros(syn.out_features, c, h, w)
            full[:, :, :hp * k[0], :wp * k[1]] = w4.repeat_interleave(k[0], 2).repeat_interleave(k[1], 3)
            new = nn.Linear(c * h * w, syn.out_features, bias=syn.bias is not None)
            new.weight.copy_(full.reshape(syn.out_features, -1))
        if syn.bias is not None:
            new.bias.copy_(syn.bias)
    notes.append(f"{ppath}: {what} composed into {path} (exact in float: weights x {tap:g}, kernel and "
                 f"stride x{k[0]}); the composed weights are quantized to 8 bits together")
    return new


def _conv_then_pool(conv: nn.Conv2d, pool: _Leaf, path: str, notes: List[str]) -> nn.Conv2d:
    """``pool(conv(x))`` as one conv: the kernel convolved with the pool window (size ``K + k - 1``),
    stride = the pool's, padding = the conv's. Needs a stride-1, undilated conv."""
    ppath, p = pool
    if _is_sumpool(p) and not isinstance(p, SumPool2d):
        p = rule_for(p, ppath).normalize(p, ppath)
    k = pair(p.kernel_size)
    s = pair(p.stride) if p.stride is not None else k
    if isinstance(p, nn.AvgPool2d):
        if pair(p.padding) != (0, 0) or p.ceil_mode:
            raise UnsupportedLayerError(f"{ppath}: AvgPool2d with padding or ceil_mode cannot be composed into {path}")
        tap = 1.0 / (k[0] * k[1])
    else:
        tap = float(p.weight)
    if pair(conv.stride) != (1, 1) or pair(conv.dilation) != (1, 1) or isinstance(conv.padding, str):
        raise UnsupportedLayerError(
            f"{ppath}: a pool right after the strided or dilated Conv2d {path} has no single-layer Loihi form; "
            "put a neuron between them, or replace the pool by the conv's stride and retrain.")
    with torch.no_grad():
        o, i, kh, kw = conv.weight.shape
        window = torch.full((1, 1, *k), tap)
        w = torch.nn.functional.conv2d(conv.weight.reshape(o * i, 1, kh, kw), window, padding=(k[0] - 1, k[1] - 1))
        new = nn.Conv2d(conv.in_channels, conv.out_channels, (kh + k[0] - 1, kw + k[1] - 1), stride=s,
                        padding=conv.padding, groups=conv.groups, bias=conv.bias is not None)
        new.weight.copy_(w.reshape(o, i, *w.shape[2:]))
        if conv.bias is not None:
            new.bias.copy_(conv.bias * tap * k[0] * k[1])
    notes.append(f"{ppath}: {type(p).__name__}{k} after {path} composed into one conv (kernel "
                 f"{tuple(new.kernel_size)}, stride {s}); exact in float, the composed weights are then quantized")
    return new


def _pool_input_hw(blocks: List[BlockContainer], example_input: Optional[torch.Tensor], ppath: str,
                   path: str) -> Tuple[int, int]:
    if example_input is None:
        raise UnsupportedLayerError(f"{ppath}: composing AvgPool2d into {path} needs the image size; pass "
                                    "example_input=(a [T, N, C, H, W] batch) to convert().")
    x = example_input if example_input.dim() >= 5 else example_input.unsqueeze(0)
    # the pool sits before any flatten that follows the last neuron, so neuron blocks alone give its input
    outs = run_blocks([b for b in blocks if b.neuron is not None], x[:1, :1].float())
    h = outs[-1] if outs else x[:1, :1]
    if h.dim() != 5:
        raise UnsupportedLayerError(f"{ppath}: AvgPool2d needs a (C, H, W) map, but gets {tuple(h.shape[2:])}")
    return int(h.shape[-2]), int(h.shape[-1])
