"""The one plug-in interface: a Frontend registers every rule a framework teaches the core, once."""
import itertools

import pytest
import torch
from torch import nn

from sj2lava import BlockContainer, convert
from sj2lava.convert import Frontend, register_frontend, registered_frontends
from sj2lava.neuron import CubaLIFNode

_names = (f"toy-{i}" for i in itertools.count())  # registrations last for the process: never reuse a name


class _ToyDropout(nn.Module):
    def forward(self, x):
        return x


class _ToyBlock(nn.Module):
    """A framework's own whole layer (synapse + neuron), as lava-dl's and SpikingJelly's blocks are."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.fc, self.th = nn.Linear(n_in, n_out, bias=False), 1.0

    def forward(self, x):
        return x


def _read_toy_block(m: _ToyBlock, path: str, notes):
    notes.append(f"{path}: a toy block")
    return BlockContainer(m.fc, CubaLIFNode(1.0, 0.0, m.th), "m")


def test_the_shipped_front_ends_register_through_it():
    assert {"lava-dl", "snnTorch", "SpikingJelly"} <= set(registered_frontends())


def test_a_toy_framework_plugs_in_with_one_frontend_and_converts():
    torch.manual_seed(0)
    toy = _ToyBlock(6, 5)
    register_frontend(Frontend(next(_names), blocks=[(lambda m: isinstance(m, _ToyBlock), _read_toy_block)],
                               dropouts=[lambda m: isinstance(m, _ToyDropout)]))
    model = nn.Sequential(toy, _ToyDropout(), nn.Linear(5, 3), CubaLIFNode(1.0, 0.0, 1.0))
    net = convert(model, rescale=False)
    assert [b.kind for b in net] == ["dense", "dense"]
    assert torch.equal(net[0].synapse.weight, toy.fc.weight)  # the reader's block, as it made it
    assert "0: a toy block" in net.conversion_notes
    assert any(n.startswith("1: _ToyDropout left out") for n in net.conversion_notes)


def test_without_its_frontend_a_framework_module_is_refused_by_name():
    class _Unknown(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(Exception, match="_Unknown"):
        convert(nn.Sequential(nn.Linear(4, 3), CubaLIFNode(1.0, 0.0, 1.0), _Unknown()))


def test_a_front_end_registers_once():
    name = next(_names)
    register_frontend(Frontend(name))
    with pytest.raises(ValueError, match=name):
        register_frontend(Frontend(name))
