"""SpikingJelly 0.0.0.0.14's lava_exchange (the peer) against lava-dl, and sj2lava against lava-dl.

One test per numeric gap of the peer, each observed by running it: the peer disagrees with lava-dl, sj2lava
does not. Mismatch counts are asserted in both directions so neither side can pass vacuously.

1. The peer clamps 8-bit weights to [-256, 255]/64; lava-dl (and Loihi) to [-256, 254]/64.
2. The peer compares against the float threshold; lava-dl floors it to the 1/64 grid (``vThMant``).
3. The peer's export drops learned decays; lava-dl (and sj2lava) keep the learned 1/4096 values.
4. The peer's lava-dl conversion loses the surrogate and ``detach_reset``; sj2lava keeps both.
5. The peer runs without lava-dl's one-step synaptic delay (``delay_shift``), so its outputs lag in Lava.
"""
import copy

import torch
from conftest import lava_forward, mismatches, spikes
from torch import nn

from sj2lava import BlockContainer, quant

T, N = 32, 4


def peer_block(sj, synapse, neu):
    return sj.lava_exchange.BlockContainer(copy.deepcopy(synapse), neu, step_mode="m")


def test_item1_weight_clamp_255_vs_254(sj):
    torch.manual_seed(0)
    fc = nn.Linear(64, 16, bias=False)
    with torch.no_grad():
        fc.weight.uniform_(-1, 1).mul_(6)  # many weights at the +4.0 edge of the 8-bit range
    x = spikes((T, N, 64), 0.3, seed=1)
    peer = peer_block(sj, fc, sj.neuron.IFNode(v_threshold=8.0))
    ref = lava_forward(peer.to_lava_block(), x)  # lava-dl clamps at 254/64
    peer_out = peer(x)
    ours = BlockContainer(fc, sj.neuron.IFNode(v_threshold=8.0), "m", delay_shift=False)
    assert (quant.quantize_weight(fc.weight) * 64).max() == 254
    assert mismatches(peer_out, ref) > 0
    assert mismatches(ours(x), ref) == 0 and ref.sum() > 0


def test_item2_threshold_floored_to_1_64(sj):
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 8, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.mul_(3)
    x = spikes((T, N, 2, 10, 10), 0.3, seed=2)
    lif = lambda: sj.neuron.LIFNode(tau=3.0, decay_input=False, v_threshold=0.7)
    peer = peer_block(sj, conv, lif())
    ref = lava_forward(peer.to_lava_block(), x)  # lava-dl uses 44/64 = 0.6875
    ours = BlockContainer(conv, lif(), "m", delay_shift=False)
    assert mismatches(peer(x), ref) > 0
    assert mismatches(ours(x), ref) == 0 and ref.sum() > 0


def test_item3_learned_decays_are_exported(sj):
    torch.manual_seed(2)
    fc = nn.Linear(40, 10, bias=False)
    with torch.no_grad():
        fc.weight.mul_(4)
    node = sj.lava_exchange.CubaLIFNode(0.5, 0.5, v_threshold=0.5, requires_grad=True)
    with torch.no_grad():  # as if training had moved them
        node.current_decay.fill_(900.0)
        node.voltage_decay.fill_(200.0)
    peer = peer_block(sj, fc, node)
    x = spikes((T, N, 40), 0.4, seed=3)
    peer_lava = lava_forward(peer.to_lava_block(), x)  # built from the constructor's 0.5 / 0.5
    ours = BlockContainer(fc, node, "m", delay_shift=False)
    assert (ours.neuron.i_decay, ours.neuron.v_decay) == (900, 200)
    ours_lava = lava_forward(ours.to_lava_block(), x)
    assert mismatches(peer(x), peer_lava) > 0  # the peer's export forgets what it learned
    assert mismatches(ours(x), ours_lava) == 0 and ours_lava.sum() > 0


def test_item4_surrogate_and_detach_reset_are_kept(sj):
    torch.manual_seed(3)
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
    atan = sj.surrogate.ATan(alpha=2.0)
    peer = peer_block(sj, conv, sj.neuron.IFNode(surrogate_function=atan, detach_reset=True))
    ours = BlockContainer(conv, sj.neuron.IFNode(surrogate_function=atan, detach_reset=True), "m")
    assert isinstance(peer.neuron.surrogate_function, sj.surrogate.Sigmoid)  # replaced silently
    assert peer.neuron.detach_reset is False
    assert ours.neuron.surrogate_function is atan and ours.neuron.detach_reset is True
    # and the surrogate is really used: gradients differ from the same block with a sigmoid
    x = spikes((T, 2, 1, 8, 8), 0.5, seed=4)
    grads = []
    for sg in (atan, sj.surrogate.Sigmoid()):
        c = copy.deepcopy(conv)
        BlockContainer(c, sj.neuron.IFNode(surrogate_function=sg, detach_reset=True), "m")(x).sum().backward()
        grads.append(c.weight.grad)
    assert not torch.allclose(grads[0], grads[1])
    assert mismatches(ours(x), lava_forward(ours.to_lava_block(), x)) == 0


def test_item5_timing_matches_lava_dl_delay_shift(sj, slayer):
    """The peer builds lava-dl blocks with delay_shift=False, so its training output is not what a
    Lava network (one step of delay per synaptic layer) computes; sj2lava defaults to Lava timing."""
    torch.manual_seed(4)
    fc1, fc2 = nn.Linear(30, 20, bias=False), nn.Linear(20, 5, bias=False)
    with torch.no_grad():
        fc1.weight.mul_(5)
        fc2.weight.mul_(5)
    x = spikes((T, N, 30), 0.4, seed=5)
    ours = nn.Sequential(BlockContainer(fc1, sj.neuron.IFNode(), "m"),
                         BlockContainer(fc2, sj.neuron.IFNode(), "m"))
    peer = nn.Sequential(peer_block(sj, fc1, sj.neuron.IFNode()), peer_block(sj, fc2, sj.neuron.IFNode()))
    lava_timed = nn.Sequential(*[b.to_lava_block() for b in ours])
    assert all(b.delay_shift for b in lava_timed)
    ref = lava_forward(lava_timed, x)
    assert mismatches(ours(x), ref) == 0 and ref.sum() > 0
    assert mismatches(peer(x), ref) > 0
