"""sj2lava.frontends.spikingjelly: SpikingJelly's neurons, lava_exchange blocks and pools, registered with the
core without importing SpikingJelly."""
import subprocess
import sys

import pytest
import torch
from conftest import mismatches, spikes
from torch import nn

import sj2lava
from sj2lava import UnsupportedLayerError, convert, export, run_lava
from sj2lava.neuron import is_neuron


def test_lava_exchange_model_keeps_learned_state_and_runs_in_lava(sj, tmp_path):
    torch.manual_seed(3)
    LE = sj.lava_exchange
    atan = sj.surrogate.ATan()
    n1 = LE.CubaLIFNode(0.5, 0.5, v_threshold=0.5, requires_grad=True, surrogate_function=atan, detach_reset=True)
    n2 = LE.CubaLIFNode(0.3, 0.1, v_threshold=0.7, requires_grad=True)
    with torch.no_grad():  # as if training had moved them
        n1.current_decay.fill_(3000.4)
        n1.voltage_decay.fill_(120.6)
        n2.voltage_decay.fill_(999.5)
    peer = nn.Sequential(LE.BlockContainer(nn.Conv2d(1, 4, 3, bias=False), n1, step_mode="m"),
                         LE.BlockContainer(nn.Flatten(), None, step_mode="m"),
                         LE.BlockContainer(nn.Linear(4 * 6 * 6, 6, bias=False), n2, step_mode="m"))
    with torch.no_grad():
        peer[0].synapse.weight.mul_(4)
        peer[2].synapse.weight.mul_(6)
    blocks = convert(peer)
    assert (blocks[0].neuron.i_decay, blocks[0].neuron.v_decay, blocks[2].neuron.v_decay) == (3000, 121, 1000)
    assert blocks[0].neuron.surrogate_function is atan and blocks[0].neuron.detach_reset
    assert blocks[0].neuron.requires_grad
    x = spikes((16, 2, 1, 8, 8), 0.5, seed=3)
    with torch.no_grad():
        y = blocks(x)
    path = export(blocks, tmp_path / "peer.net", (1, 8, 8))
    assert y.sum() > 0 and mismatches(run_lava(path, x), y) == 0


def test_neurons_map_with_their_rules(sj):
    node, scale = sj2lava.to_cuba(sj.neuron.LIFNode(tau=4.0, decay_input=True), with_input_scale=True)
    assert (node.i_decay, node.v_decay, scale) == (4096, 1024, 0.25)
    assert sj2lava.to_cuba(sj.neuron.IFNode(v_threshold=0.5)).v_decay == 0
    with pytest.raises(UnsupportedLayerError, match="decay_input"):
        sj2lava.to_cuba(sj.neuron.LIFNode(tau=2.0))  # its input scale must go into a synapse
    with pytest.raises(UnsupportedLayerError, match="soft reset"):
        sj2lava.to_cuba(sj.neuron.IFNode(v_reset=None))
    plif = sj.neuron.ParametricLIFNode()
    assert is_neuron(plif)  # recognised as a SpikingJelly neuron, and refused by name
    with pytest.raises(UnsupportedLayerError, match="ParametricLIFNode is not a neuron sj2lava can map"):
        sj2lava.to_cuba(plif)


def test_lava_exchange_sumpool_and_dropout_are_read_by_convert(sj):
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), sj.neuron.IFNode(), sj.layer.Dropout(0.3),
                        sj.lava_exchange.SumPool2d(2, stride=2), sj.neuron.IFNode())
    blocks = convert(net)
    assert [b.kind for b in blocks] == ["conv", "pool"]
    assert isinstance(blocks[1].synapse, sj2lava.SumPool2d) and blocks[1].synapse.stride == (2, 2)
    with pytest.raises(UnsupportedLayerError, match="stride=kernel_size"):
        convert(nn.Sequential(nn.Conv2d(1, 2, 3), sj.neuron.IFNode(), sj.lava_exchange.SumPool2d(2),
                              sj.neuron.IFNode()))


def test_front_ends_import_no_framework():
    code = ("import sys, sj2lava\n"
            "bad = [m for m in ('spikingjelly', 'snntorch', 'lava', 'nir', 'nirtorch') if m in sys.modules]\n"
            "assert not bad, bad\n"
            "from sj2lava.neuron import _NEURON_RULES\n"
            "assert [r.name for r in _NEURON_RULES] == ['lava-dl', 'snnTorch', 'SpikingJelly'], _NEURON_RULES")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
