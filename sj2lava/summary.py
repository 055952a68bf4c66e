"""``sj2lava.summary``: what a model (or a ``.net`` file) will be on Loihi, layer by layer, before export."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
from torch import nn

from .netx.spec import NetSpec

__all__ = ["summary"]


def summary(model_or_netfile: Union[nn.Module, NetSpec, str, Path], input_shape: Optional[Sequence[int]] = None,
            *, example_input: Optional[torch.Tensor] = None) -> str:
    """A per-layer table of what Loihi will run: type, shape, kernel / stride / padding / groups, neuron (decays in
    1/4096, threshold ``vThMant`` in 1/64), bias and weight ranges (integer mantissas, weights in 2/64 steps) and
    their bits, neurons and synapses, then what is not exact: the conversion's notes (a float model is converted
    first, with :func:`sj2lava.convert`) and everything ``export`` would refuse (listed, not raised).

    Args:
        model_or_netfile: BlockContainers, a float / SpikingJelly / snnTorch / lava-dl model, a ``NetSpec`` or a
            ``.net`` path.
        input_shape: per-sample input shape, where the model has not run yet.
        example_input: for :func:`sj2lava.convert` of a float model (a pool composed into a Linear needs it).
    """
    from .block import BlockContainer, InputBlock
    from .convert import convert
    from .export import to_spec
    from .netx.hdf5 import load

    notes: List[str] = []
    if isinstance(model_or_netfile, (str, Path)):
        spec = load(model_or_netfile)
    elif isinstance(model_or_netfile, NetSpec):
        spec = model_or_netfile
    else:
        model = model_or_netfile
        blocks = list(model) if isinstance(model, nn.Sequential) else [model]
        if not all(isinstance(b, (BlockContainer, InputBlock)) or _is_export_block(b) for b in blocks):
            model = convert(model, example_input=example_input)
        notes += list(getattr(model, "conversion_notes", []))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spec = to_spec(model, input_shape, strict=False)
        notes += [f"not exact: {w.message}" for w in caught]
    bits = [f"layer {i}: weights {_bits(w)} bits" + ("" if b is None else f", bias {_bits(b)} bits")
            for i, (w, b) in enumerate((getattr(l, "weight", None), getattr(l, "bias", None)) for l in spec.layers)
            if w is not None]
    exact = ("the .net computes what these layers compute, spike for spike" +
             (" (the notes say where the source model differs)" if notes else "")) if not any(
        n.startswith("not exact") for n in notes) else "export would refuse some layers (the 'not exact' notes)"
    return "\n".join([spec.table(), *bits, *(f"note: {n}" for n in notes), exact])


def _is_export_block(m: nn.Module) -> bool:
    from .export import exporter_for

    return exporter_for(m) is not None


def _bits(a) -> int:
    """Signed bits that hold every value of integer array ``a``."""
    import numpy as np

    top = int(np.max(np.abs(np.asarray(a)))) if np.size(a) else 0
    return top.bit_length() + 1
