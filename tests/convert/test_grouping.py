"""Layers: the grouping convert and from_nir share (sources, rescaling of made layers, the empty net refused)."""
import pytest
import torch
from torch import nn

from sj2lava import BlockContainer, UnsupportedLayerError
from sj2lava.convert import Layers
from sj2lava.neuron import CubaLIFNode


def _dense(w: float) -> BlockContainer:
    fc = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        fc.weight.fill_(w)
    return BlockContainer(fc, CubaLIFNode(1.0, 0.0, 1.0), "m")


def test_only_layers_made_from_float_modules_are_rescaled_and_each_spiking_one_has_a_source():
    layers = Layers()
    kept, made = _dense(0.013), _dense(0.013)  # off the 2/64 grid: rescaling would change a made layer
    layers.add(kept, "given")
    layers.flatten()
    layers.add_made(made, "fc2")
    net = layers.finish(rescale=True)
    assert net.float_layers == ["given", "fc2"]  # the flatten has no spikes of its own
    assert kept.input_scale == 1.0 and made.input_scale > 100  # 0.013 -> the grid's largest weight, 254/64
    assert len(net.conversion_notes) == 1 and net.conversion_notes[0].startswith("fc2: weights, bias and threshold")


def test_a_net_without_a_spiking_layer_is_refused_with_the_callers_message():
    layers = Layers()
    layers.flatten()
    with pytest.raises(UnsupportedLayerError, match="from_nir: nothing"):
        layers.finish(rescale=True, empty="from_nir: nothing to put on Loihi")
