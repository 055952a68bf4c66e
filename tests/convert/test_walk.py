"""The walk: a model's layers in the order its forward calls them, or refused by name."""

import pytest
import torch
from torch import nn

from sj2lava import UnsupportedLayerError, convert


class _TwoLayers(nn.Module):
    def __init__(self, sj, n_in: int = 8):
        super().__init__()
        self.fc, self.n = nn.Linear(n_in, 8), sj.neuron.IFNode(step_mode="m")
        self.fc2, self.n2 = nn.Linear(8, 3), sj.neuron.IFNode(step_mode="m")


class _Residual(_TwoLayers):
    def forward(self, x):
        return self.n2(self.fc2(self.n(self.fc(x)) + x))


class _Members(nn.Module):
    """Registered out of order, with a layer the forward never calls."""

    def __init__(self, sj, twice=False):
        super().__init__()
        self.fc2, self.n2 = nn.Linear(8, 3), sj.neuron.IFNode(step_mode="m")
        self.fc, self.n = nn.Linear(4, 8), sj.neuron.IFNode(step_mode="m")
        self.spare = nn.Linear(3, 3)
        self.twice = twice

    def forward(self, x):
        h = self.n(self.fc(x))
        if self.twice:
            h = self.n(self.fc(h[..., :4]))
        return self.n2(self.fc2(h))


def test_a_forward_that_is_not_a_chain_is_refused_by_name(sj):
    """A residual '+ x' was converted as two blocks before: the forward is traced, and its add refused."""
    with pytest.raises(UnsupportedLayerError, match="not a chain of layers: at 'add' it does call_function add"):
        convert(_Residual(sj))
    with pytest.raises(UnsupportedLayerError, match="at 'getitem'"):  # slicing is no layer either
        convert(_Members(sj, twice=True))


def test_layers_follow_the_forward_and_unused_ones_are_noted(sj):
    net = _Members(sj)
    blocks = convert(net)
    assert [b.synapse.in_features for b in blocks] == [4, 8]
    assert "convert: spare never called by the forward: left out" in blocks.conversion_notes
    assert any("in the order the forward calls them: fc, n, fc2, n2" in n for n in blocks.conversion_notes)
    x = (torch.rand(6, 2, 4) > 0.5).float()
    with torch.no_grad():
        sj.functional.reset_net(net)
        assert blocks(x).shape == (6, 2, 3)


class _Branchy(_TwoLayers):
    def forward(self, x):
        h = self.n(self.fc(x))
        if x.sum() > 0:  # data-dependent: fx cannot follow it
            h = h * 2
        return self.n2(self.fc2(h))


def test_an_untraceable_forward_is_read_in_registration_order_with_a_warning(sj):
    with pytest.warns(UserWarning, match="could not be traced"):
        blocks = convert(_Branchy(sj, n_in=4))
    assert any("could not be traced" in n for n in blocks.conversion_notes)
