"""Pools in convert: OR layers over spikes, averages over currents, composition into the synapse after."""
import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import mismatches, spikes
from torch import nn

import sj2lava
from sj2lava import UnsupportedLayerError, convert, export, run_lava, verify


def test_a_max_pool_over_spikes_is_an_or_layer_equal_to_it_in_containers_emulate_and_lava(sj, tmp_path):
    """MaxPool2d after a neuron (SpikingJelly's CupyNet puts it inside SeqToANNContainer before the next conv):
    a sum-pool into memoryless neurons with threshold 1/2, equal to MaxPool2d of the model's own spikes one step
    later, spike for spike, in the containers, the emulator and Lava; verify's float stage lines up with it."""
    torch.manual_seed(1)
    L, m = sj.layer, "m"
    net = nn.Sequential(L.Conv2d(1, 4, 3, padding=1, bias=False, step_mode=m), sj.neuron.IFNode(step_mode=m),
                        L.SeqToANNContainer(nn.MaxPool2d(2, 2), nn.Conv2d(4, 6, 3, padding=1, bias=False)),
                        sj.neuron.IFNode(step_mode=m), L.MaxPool2d(3, 2, step_mode=m), L.Flatten(step_mode=m),
                        L.Linear(6 * 3 * 3, 5, bias=False, step_mode=m), sj.neuron.IFNode(step_mode=m))
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.mul_(5)
    x = spikes((12, 3, 1, 16, 16), 0.4, seed=2)
    blocks = convert(net, example_input=x)
    assert [b.kind for b in blocks] == ["conv", "pool", "conv", "pool", "flatten", "dense"]
    assert blocks.float_layers == ["1", "2.0", "3", "4", "7"]
    assert sum("over spikes as an OR layer" in n for n in blocks.conversion_notes) == 2
    outs = sj2lava.block.run_blocks(blocks, x)
    for k in (1, 3):  # the OR layer on the spikes of the layer before, one step later
        want = F.max_pool2d(outs[k - 1].flatten(0, 1), *((2, 2) if k == 1 else (3, 2))).reshape(outs[k].shape)
        assert outs[k - 1].sum() > 0 and mismatches(outs[k][1:], want[:-1]) == 0 and not outs[k][0].any()
    path = export(blocks, tmp_path / "or.net")
    emu = sj2lava.emulate(path, x, record=("spikes", "layer_spikes"))["layer_spikes"]
    lava = run_lava(path, x[:, :1], all_layers=True)
    assert all(mismatches(e, o) == 0 and mismatches(v, o[:, :1]) == 0 for e, v, o in zip(emu, lava, outs))
    report = verify(net, path, x, lava_samples=1, containers=blocks)
    assert report.exact and report.stage("float").mismatches[1] is not None
    with pytest.raises(UnsupportedLayerError, match="padding, dilation, ceil_mode"):
        convert(nn.Sequential(nn.Conv2d(1, 2, 3), sj.neuron.IFNode(), nn.MaxPool2d(2, padding=1)))


def test_a_max_pool_over_currents_is_an_average_pool_under_approximate(sj, tmp_path):
    """snnTorch's DVS CSNN writes Conv2d, MaxPool2d, neuron: a max of currents. Refused (above); under
    approximate=True the window's average, composed into the conv, noted, and the file runs in Lava."""
    net = nn.Sequential(nn.Conv2d(2, 4, 5), nn.MaxPool2d(2), sj.neuron.IFNode(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3),
                        sj.neuron.IFNode())
    x = spikes((10, 2, 2, 16, 16), 0.4, seed=3)
    blocks = convert(net, example_input=x, approximate=True)
    assert [b.kind for b in blocks] == ["conv", "flatten", "dense"]
    assert any("replaced by AvgPool2d(2, 2)" in n and "not exact" in n for n in blocks.conversion_notes)
    assert any("composed into one conv" in n for n in blocks.conversion_notes)
    with torch.no_grad():
        y = blocks(x)
    assert mismatches(run_lava(export(blocks, tmp_path / "a.net"), x[:, :1]), y[:, :1]) == 0


@pytest.mark.parametrize("padding", [0, 1])
def test_avgpool_composed_into_next_conv_and_linear(sj, padding, tmp_path):
    """neuron -> AvgPool2d -> Conv2d (or Flatten -> Linear): the pool folds into the weights."""
    torch.manual_seed(2)
    N = sj.neuron
    head = [nn.Conv2d(1, 4, 3, padding=1, bias=False), N.IFNode(), nn.AvgPool2d(2)]
    conv_net = nn.Sequential(*head, nn.Conv2d(4, 4, 3, padding=padding, bias=False), N.IFNode())
    lin_net = nn.Sequential(*copy.deepcopy(head), nn.Flatten(), nn.Linear(4 * 4 * 4, 5), N.IFNode())
    x = spikes((10, 2, 1, 8, 8), 0.5, seed=2)
    for net in (conv_net, lin_net):
        blocks = convert(net, example_input=x)
        composed = next(b for b in blocks if b.kind in ("conv", "dense") and b is not blocks[0]).synapse
        original = net[3] if isinstance(net[3], nn.Conv2d) else net[4]
        h = torch.rand(3, 4, 8, 8)
        ref = original(F.avg_pool2d(h, 2).flatten(1) if isinstance(original, nn.Linear) else F.avg_pool2d(h, 2))
        got = composed(h.flatten(1) if isinstance(composed, nn.Linear) else h)
        assert torch.allclose(got, ref, atol=1e-6)
        assert any("composed into" in n for n in blocks.conversion_notes)
    with torch.no_grad():
        for m in blocks.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(4)
        y = blocks(x)
    path = export(blocks, tmp_path / "composed.net", (1, 8, 8))
    assert y.sum() > 0 and mismatches(run_lava(path, x), y) == 0


def test_avgpool_tap_rounding_is_announced(sj):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), sj.neuron.IFNode(), nn.AvgPool2d(3), sj.neuron.IFNode())
    with pytest.warns(UserWarning, match=r"1/9 = 0.11111 rounds to 0.12500 .*\+12.5%"):
        blocks = convert(net)
    assert blocks[1].synapse.weight == pytest.approx(1 / 9)


def test_padded_conv_composition_refuses_non_divisible_sizes(sj):
    N = sj.neuron
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), N.IFNode(), nn.AvgPool2d(2), nn.Conv2d(2, 2, 3, padding=1),
                        N.IFNode())
    with pytest.raises(UnsupportedLayerError, match="7x7 map pooled by"):
        convert(net, example_input=torch.zeros(2, 1, 1, 7, 7))
