"""Conversion: a trained spiking net (SpikingJelly, snnTorch, lava-dl or plain torch) -> BlockContainers.

The model's layers are taken in the order its ``forward`` calls them (traced with ``torch.fx``; a forward
that is not a chain of layers, e.g. a residual ``+ x``, is refused by name; nested ``nn.Sequential``,
SpikingJelly's ``SeqToANNContainer`` / ``MultiStepContainer`` and ``layer.*`` wrappers are chains), or in
``order=``, and grouped into Loihi layers::

    Conv2d | Linear  [BatchNorm] [Dropout]  neuron      -> conv / dense block (BN folded)
    AvgPool2d | SumPool2d  [Dropout]  neuron            -> sum-pool block (tap weight 1/k^2 for AvgPool)
    neuron  AvgPool2d  [Flatten]  Conv2d | Linear ...   -> the pool composed into that layer's weights
    MaxPool2d over spikes                               -> an OR layer (exact, one step later)
    Flatten                                             -> flatten block
    Dropout, Identity                                   -> dropped (evaluation semantics)
    BlockContainer, or a front-end's block              -> kept / rebuilt with its learned state

Every step is exact in float arithmetic or announced: the returned ``nn.Sequential`` carries
``conversion_notes`` (also shown by :func:`sj2lava.verify`), each saying what changed and how much.
Weights are then quantized to 8 bits as Loihi requires; ``verify`` measures the effect.

The package, one job per module:

- :mod:`.frontend`: :class:`Frontend`, the one interface through which a framework plugs in.
- :mod:`.walk`: the model's leaves in forward order.
- :mod:`.grouping`: :class:`Layers`, the layers as they are built (shared with :func:`sj2lava.from_nir`).
- :mod:`.model`: :func:`convert`, the walk that groups leaves into layers.
- :mod:`.batchnorm`, :mod:`.pooling`: BatchNorm folding and pool composition.
- :mod:`.rescaling`: one factor per layer that fills the 8-bit weight grid.
"""
from __future__ import annotations

from .frontend import (
    Frontend,
    register_block_reader,
    register_dropout,
    register_frontend,
    register_recurrence,
    registered_frontends,
)
from .grouping import Layers, block
from .model import convert
from .pooling import compose_pool
from .rescaling import effective_weight, rescale, rescale_block
from .walk import leaves_of

__all__ = ["convert", "rescale", "rescale_block", "effective_weight", "block", "leaves_of", "compose_pool", "Layers",
           "Frontend", "register_frontend", "registered_frontends", "register_block_reader", "register_dropout",
           "register_recurrence"]
