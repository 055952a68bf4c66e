"""Whole-model conversion: the walk over a model's leaves that groups them into Loihi layers (:func:`convert`)."""
from __future__ import annotations

import copy
import dataclasses
import warnings
from typing import List, Optional, Sequence, Tuple, Union, cast

import torch
from torch import nn

from ..block import HOST_MODULES, BlockContainer, InputBlock
from ..errors import UnsupportedLayerError
from ..neuron import is_neuron
from .batchnorm import fold_bn
from .frontend import block_reader, recurrence
from .grouping import Layers, cuba, current_bias
from .pooling import compose_avgpool, conv_then_pool, max_over_currents, max_pool_or, pool_block_synapse
from .walk import Leaf, is_skipped, is_sumpool, ordered_leaves, skip_dropout, static_example, unsupported

__all__ = ["convert"]

_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool2d)


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
    ordered = ordered_leaves(model, order, example_input)
    layers = Layers()
    layers.notes.extend(ordered.notes)
    direct_input = direct_input or ordered.static
    if example_input is not None and not direct_input and static_example(ordered.leaves, example_input):
        direct_input = True
        layers.notes.append("convert: example_input is analog with no time axis and the model's neurons take one "
                            "step a call: it is stepped over the same input (a static image), so its first layer "
                            "runs on the host (direct input); give [T, N, ...] spikes as example_input for a model "
                            "stepped over a sequence")
    layers.notes.extend(f"{path}: {type(m).__name__} left out (the identity in evaluation)"
                        for path, m in ordered.leaves if is_skipped(m))
    _Walk(ordered.leaves, _Options(example_input, approximate, direct_input), layers).run()
    net = layers.finish(rescale, model)
    net.static_input = ordered.steps  # the model takes one input and makes its time steps itself (verify runs it so)
    if example_input is not None:  # export and summary then need no input_shape
        net.input_shape = _example_shape(layers.blocks, example_input)
        if isinstance(layers.blocks[0], InputBlock) and net.input_shape is not None:
            layers.blocks[0].input_shape = net.input_shape  # input_bias then tells [N, *] from [T, N, *]
    for n in layers.notes:
        if "rounds" in n:
            warnings.warn(n, stacklevel=2)
    return net


@dataclasses.dataclass(frozen=True)
class _Options:
    example_input: Optional[torch.Tensor]
    approximate: bool
    direct_input: bool


class _Walk:
    """One pass over the leaves: each step takes the leaf at ``i`` (and those it groups with) into ``layers``."""

    def __init__(self, leaves: List[Leaf], opts: _Options, layers: Layers) -> None:
        self.leaves, self.opts, self.layers = list(leaves), opts, layers
        self.i = 0
        self.pending_pool: Optional[Leaf] = None  # an AvgPool2d after a neuron, to fold into the next synapse
        self.host_prefix: List[Leaf] = []  # direct input: what comes before the first synapse also runs on the host

    def run(self) -> None:
        steps = (self._skipped, self._host_prefix, self._block, self._max_pool_or, self._flatten, self._synapse,
                 self._pool)
        while self.i < len(self.leaves):
            path, m = self.leaves[self.i]
            if not any(step(path, m) for step in steps):
                self._refuse(path, m)
        if self.pending_pool is not None:
            raise UnsupportedLayerError(f"{self.pending_pool[0]}: AvgPool2d at the end of the model feeds no layer; "
                                        "remove it or add a neuron after it.")

    @property
    def _on_host(self) -> bool:  # direct input, and no layer yet: this one runs on the host
        return self.opts.direct_input and not self.layers.blocks

    def _skipped(self, path: str, m: nn.Module) -> bool:
        if is_skipped(m):
            self.i += 1
            return True
        return False

    def _host_prefix(self, path: str, m: nn.Module) -> bool:
        if self._on_host and isinstance(m, HOST_MODULES) and not isinstance(m, (nn.Conv2d, nn.Linear)):
            self.host_prefix.append((path, m))
            self.i += 1
            return True
        return False

    def _block(self, path: str, m: nn.Module) -> bool:
        """A BlockContainer, kept; or a front-end's block, read as one."""
        read = None if isinstance(m, BlockContainer) else block_reader(m)
        if not isinstance(m, BlockContainer) and read is None:
            return False
        if self.pending_pool is not None:
            raise UnsupportedLayerError(f"{self.pending_pool[0]}: AvgPool2d before the block {path} cannot be "
                                        "composed into it; put it before a plain Conv2d/Linear or after a neuron "
                                        "as a pool layer.")
        self.layers.add(cast(BlockContainer, m) if read is None else read(m, path, self.layers.notes), path)
        self.i += 1
        return True

    def _max_pool_or(self, path: str, m: nn.Module) -> bool:
        # over spikes (the input's or a neuron's) a max-pool is an OR layer
        if not isinstance(m, nn.MaxPool2d) or self._on_host or self.pending_pool is not None or \
                not self.layers.after_spikes():
            return False
        self.layers.add(max_pool_or(m, path, self.layers.notes), path)
        self.i += 1
        return True

    def _flatten(self, path: str, m: nn.Module) -> bool:
        if not isinstance(m, nn.Flatten):
            return False
        self.layers.add(BlockContainer(copy.deepcopy(m), None, "m"))
        self.i += 1
        return True

    def _synapse(self, path: str, m: nn.Module) -> bool:
        """``Conv2d | Linear  [BatchNorm] [Dropout] [pool]  neuron``: one layer (on the host under direct input)."""
        if not isinstance(m, (nn.Conv2d, nn.Linear)) or type(m) in (nn.Conv1d, nn.Conv3d):
            return False
        host = self._on_host
        syn = self._synapse_in(path, m)
        if host:
            syn = self._host_tail(path, syn)
        else:
            self._max_over_currents(path)
        syn = self._conv_then_pool(path, syn)
        neu = self._neuron_after(path, type(m).__name__)
        where = self.leaves[self.i - 1][0]
        node = cuba(neu, where, self.opts.approximate, self.layers.notes)
        current_bias(neu, node, syn, path, where, host, self.opts.approximate, self.layers.notes)
        if not host:
            self.layers.spiking(syn, node, where, recurrent=recurrence(neu, syn, where))
            return True
        try:
            self.layers.add(InputBlock(syn, node), where)
        except UnsupportedLayerError as e:
            raise UnsupportedLayerError(f"{where}: {e}") from None
        self.layers.notes.append(f"{path}: the first layer's {type(m).__name__} runs on the host (direct input): its "
                                 f"output is the input neurons' bias ({where}), rounded to 1/64 and clipped to 13 bits")
        return True

    def _synapse_in(self, path: str, m: nn.Module) -> nn.Module:
        """A copy of the synapse at ``i``, a pending pool composed in front and a BatchNorm after it folded in."""
        syn = copy.deepcopy(m)
        if self.pending_pool is not None:
            syn = compose_avgpool(self.pending_pool, syn, path, self.layers.blocks, self.opts.example_input,
                                  self.layers.notes)
            self.pending_pool = None
        self.i += 1
        if self.i < len(self.leaves) and isinstance(self.leaves[self.i][1], (nn.BatchNorm1d, nn.BatchNorm2d)):
            bpath, bn = self.leaves[self.i]
            syn = fold_bn(syn, bn, bpath)
            self.layers.notes.append(f"{bpath}: {type(bn).__name__} folded into {path} (exact in float; becomes the "
                                     "neuron bias, added to v on the 1/64 grid)")
            self.i += 1
        return syn

    def _host_tail(self, path: str, syn: nn.Module) -> nn.Module:
        """Direct input: everything up to the first neuron runs on the host with the synapse, in float (exact,
        max-pools included)."""
        j = skip_dropout(self.leaves, self.i)
        taken = []
        while j < len(self.leaves) and isinstance(self.leaves[j][1], HOST_MODULES) and not is_neuron(self.leaves[j][1]):
            taken.append(self.leaves[j])
            j = skip_dropout(self.leaves, j + 1)
        if not (taken or self.host_prefix):
            return syn
        syn = nn.Sequential(*[copy.deepcopy(t) for _, t in self.host_prefix], syn,
                            *[copy.deepcopy(t) for _, t in taken]).eval()
        self.layers.notes.append(f"{', '.join(p for p, _ in self.host_prefix + taken)}: run on the host with {path} "
                                 "(direct input), exactly")
        self.i = j if taken else self.i
        return syn

    def _max_over_currents(self, path: str) -> None:
        """A max-pool between the synapse and its neuron: approximated by an average pool, or refused."""
        j = skip_dropout(self.leaves, self.i)
        if j < len(self.leaves) and isinstance(self.leaves[j][1], nn.MaxPool2d):
            self.leaves[j] = max_over_currents(self.leaves[j], path, self.opts.approximate, self.layers.notes)

    def _conv_then_pool(self, path: str, syn: nn.Module) -> nn.Module:
        """An average / sum pool between a conv and its neuron, composed into the conv."""
        j = skip_dropout(self.leaves, self.i)
        if isinstance(syn, nn.Conv2d) and j < len(self.leaves) and (
                isinstance(self.leaves[j][1], nn.AvgPool2d) or is_sumpool(self.leaves[j][1])):
            syn = conv_then_pool(syn, self.leaves[j], path, self.layers.notes)
            self.i = j + 1
        return syn

    def _neuron_after(self, path: str, what: str) -> nn.Module:
        """The neuron that ends the layer (dropouts skipped), taken; anything else refused by name."""
        i = skip_dropout(self.leaves, self.i)
        if i < len(self.leaves) and isinstance(self.leaves[i][1], _MAX_POOLS):
            raise UnsupportedLayerError(f"{self.leaves[i][0]}: {unsupported(self.leaves[i][1])}")
        if i >= len(self.leaves) or not is_neuron(self.leaves[i][1]):
            found = f"{self.leaves[i][0]} ({type(self.leaves[i][1]).__name__})" if i < len(self.leaves) else \
                "the end of the model"
            raise UnsupportedLayerError(
                f"{path}: {what} is followed by {found}, not by a spiking neuron; every Loihi layer ends in CUBA "
                "neurons. Add a neuron (e.g. SpikingJelly neuron.IFNode()) after it and retrain.")
        self.i = i + 1
        return self.leaves[i][1]

    def _pool(self, path: str, m: nn.Module) -> bool:
        """``AvgPool2d | SumPool2d [Dropout] neuron``: a pool layer; ``neuron AvgPool2d [Flatten] Conv2d | Linear``:
        the pool waits to be composed into that synapse."""
        if not (isinstance(m, nn.AvgPool2d) or is_sumpool(m)):
            return False
        j = skip_dropout(self.leaves, self.i + 1)
        if j < len(self.leaves) and is_neuron(self.leaves[j][1]):
            where, neu = self.leaves[j]
            pool = pool_block_synapse(m, path, self.layers.notes)
            self.layers.spiking(pool, cuba(neu, where, self.opts.approximate, self.layers.notes), where)
            self.i = j + 1
            return True
        k = skip_dropout(self.leaves, j)
        if k < len(self.leaves) and isinstance(self.leaves[k][1], nn.Flatten):
            k = skip_dropout(self.leaves, k + 1)
        nxt = self.leaves[k][1] if k < len(self.leaves) else None
        if isinstance(m, nn.AvgPool2d) and isinstance(nxt, (nn.Conv2d, nn.Linear)) and self.layers.blocks \
                and self.layers.blocks[-1].neuron is not None:
            self.pending_pool = (path, m)
            self.i += 1
            return True
        raise UnsupportedLayerError(
            f"{path}: {type(m).__name__} must either feed a neuron (a sum-pool layer) or sit between a "
            "neuron and a Conv2d/Linear (composed into its weights). Restructure the model so it does.")

    def _refuse(self, path: str, m: nn.Module) -> None:
        if is_neuron(m):
            raise UnsupportedLayerError(
                f"{path}: {type(m).__name__} has no synapse before it (Loihi neurons are fed by a conv, dense "
                "or pool synapse). Remove it or put a Conv2d/Linear/AvgPool2d before it.")
        raise UnsupportedLayerError(f"{path}: {unsupported(m)}")


def _example_shape(blocks: Sequence[Union[BlockContainer, InputBlock]], x: torch.Tensor) -> Optional[Tuple[int, ...]]:
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
