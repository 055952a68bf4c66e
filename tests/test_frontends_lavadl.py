"""sj2lava.frontends.lavadl: lava-dl blocks in (conversion, export of lava-dl's own files) and out
(to_lava, to_lava_block, SpikingJelly's lava_exchange names), each against lava-dl itself."""
import pytest
import torch
from conftest import lava_dl_file, lava_forward, mismatches, plain_sj_net, scale_weights, spikes
from torch import nn

import sj2lava
from sj2lava import BlockContainer as B
from sj2lava import CubaLIFNode as C
from sj2lava import NetFileError, SumPool2d, UnsupportedLayerError, convert, export, load, run_lava, to_lava


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_lava_dl_exported_file_loads_inspects_and_runs(kind, tmp_path, slayer):
    torch.manual_seed(7)
    if kind == "dense":
        net = scale_weights(nn.Sequential(B(nn.Linear(30, 20, bias=False), C(1.0, 0.1, 0.6), "m"),
                                   B(nn.Linear(20, 8, bias=False), C(0.5, 0.2, 0.5), "m")), [6, 6])
        in_shape, file_input = (30,), None
    else:
        net = scale_weights(nn.Sequential(B(nn.Conv2d(1, 4, 3, padding=1, bias=False), C(1.0, 0.0, 0.6), "m"),
                                   B(nn.Flatten(), None, "m"),
                                   B(nn.Linear(4 * 6 * 6, 5, bias=False), C(1.0, 0.1, 0.5), "m")), [5, 0, 5])
        in_shape = file_input = (1, 6, 6)
    blocks = nn.Sequential(*[b.to_lava_block() for b in net])
    x = spikes((20, 2, *in_shape), 0.4, seed=8)
    ref = lava_forward(blocks, x)  # also sets the shapes lava-dl's export needs
    path = tmp_path / "lavadl.net"
    lava_dl_file(blocks, path, file_input)
    spec = load(path)
    assert spec.input_shape == in_shape and "total" in spec.table()
    assert ref.sum() > 0 and mismatches(run_lava(path, x), ref) == 0
    # and sj2lava exports the same lava-dl blocks to an equivalent file
    mine = export(blocks, tmp_path / "mine.net", in_shape)
    assert mismatches(run_lava(mine, x), ref) == 0


def test_lava_dl_pool_file_is_refused_with_the_fix(tmp_path, slayer):
    blk = B(SumPool2d(2), C(1.0, 0.0, 0.5), "m").to_lava_block()
    lava_forward(blk, spikes((4, 1, 2, 4, 4)))
    lava_dl_file([blk], tmp_path / "pool.net", (2, 4, 4))
    with pytest.raises(NetFileError, match="cannot load 'pool'.*depthwise"):
        load(tmp_path / "pool.net")


def test_to_lava_returns_lava_dl_blocks(sj):
    net = plain_sj_net(sj)
    for m in net.modules():  # bias-free, so lava-dl's output-side delay agrees exactly
        if isinstance(m, nn.BatchNorm2d):
            m.bias.data.zero_()
            m.running_mean.data.zero_()
    lava = to_lava(net)
    assert [type(b).__name__ for b in lava] == ["Conv", "Pool", "Flatten", "Dense"]
    x = spikes((12, 2, 1, 12, 12), 0.4, seed=4)
    blocks = convert(net)
    with torch.no_grad():
        assert mismatches(lava_forward(lava, x), blocks(x)) == 0


def test_spikingjelly_names_build_lava_dl_synapses(slayer):
    conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)
    syn = sj2lava.conv2d_to_lava_synapse_conv(conv)
    assert isinstance(syn, slayer.synapse.Conv) and torch.equal(syn.weight.data[..., 0], conv.weight.data)
    fc = nn.Linear(6, 3, bias=False)
    dense = sj2lava.linear_to_lava_synapse_dense(fc)
    assert isinstance(dense, slayer.synapse.Dense) and torch.equal(dense.weight.data[:, :, 0, 0, 0], fc.weight.data)
    with pytest.warns(UserWarning, match="sum-pool"):
        assert isinstance(sj2lava.avgpool2d_to_lava_synapse_pool(nn.AvgPool2d(2)), slayer.synapse.Pool)
    with pytest.raises(UnsupportedLayerError, match="has a bias"):
        sj2lava.linear_to_lava_synapse_dense(nn.Linear(6, 3))


def test_lava_dl_neuron_converts_and_other_lava_dl_neurons_are_refused_by_name(slayer):
    n = slayer.neuron.cuba.Neuron(threshold=0.75, current_decay=0.25, voltage_decay=0.125)
    node = sj2lava.to_cuba(n)
    assert (node.i_decay, node.v_decay, node.v_threshold_mant) == (1024, 512, 48)
    assert sj2lava.to_lava_neuron(node).threshold == 0.75
    other = slayer.neuron.sigma_delta.Neuron(threshold=0.1, activation=torch.nn.functional.relu)
    assert sj2lava.neuron.is_neuron(other)
    with pytest.raises(UnsupportedLayerError, match="sigma_delta.*is not a neuron sj2lava can map"):
        sj2lava.to_cuba(other)


def _slayer_net(slayer, bias: bool):
    """lava-dl blocks as a lava-dl user writes them: Conv, Pool, Flatten, Dense (cuba), random weights."""
    torch.manual_seed(3)
    p = dict(threshold=0.5, current_decay=0.25, voltage_decay=0.03)
    net = nn.Sequential(slayer.block.cuba.Conv(p, 2, 6, 3, padding=1, weight_scale=3),
                        slayer.block.cuba.Pool(p, 2, weight_scale=1),
                        slayer.block.cuba.Flatten(),
                        slayer.block.cuba.Dense(dict(p, voltage_decay=0.25), 6 * 4 * 4, 5, weight_scale=4))
    if bias:  # a bias the way sj2lava's own to_lava_block writes one (the neuron's norm)
        net = nn.Sequential(*[B(nn.Linear(12, 7), C(0.5, 0.1, 0.4), "m").to_lava_block()])
        with torch.no_grad():
            net[0].synapse.weight.mul_(8)
    return net


@pytest.mark.parametrize("bias", [False, True])
def test_lava_dl_models_convert_and_run_in_lava_equal_to_them(bias, slayer, tmp_path):
    """convert(nn.Sequential of slayer.block.cuba blocks): BlockContainers equal to the lava-dl model spike for
    spike, and the .net runs in Lava equal to both."""
    net = _slayer_net(slayer, bias)
    shape = (12,) if bias else (2, 8, 8)
    x = spikes((16, 2, *shape), 0.4, seed=5)
    ref = lava_forward(net, x)
    blocks = convert(net)
    assert [b.kind for b in blocks] == (["dense"] if bias else ["conv", "pool", "flatten", "dense"])
    with torch.no_grad():
        y = blocks(x)
    assert y.sum() > 0
    if not bias:  # lava-dl delays a block's output, sj2lava its input: equal without a bias
        assert mismatches(y, ref) == 0
    else:
        assert any("bias" in n for n in blocks.conversion_notes)
    path = export(blocks, tmp_path / "s.net", shape)
    assert mismatches(run_lava(path, x), y) == 0


def test_other_lava_dl_blocks_are_refused_by_name(slayer):
    p = dict(threshold=0.5, current_decay=0.25, voltage_decay=0.03)
    sd = dict(threshold=0.1, activation=torch.relu)
    conv = slayer.block.cuba.Conv(p, 1, 2, 3, delay=True)
    lava_forward(conv, spikes((3, 1, 1, 5, 5)))  # lava-dl draws its delays on the first forward
    for blk, name in [(conv, "axonal delays on a conv block"),
                      (slayer.block.cuba.Dense(p, 4, 3, delay=True), "not initialised yet"),
                      (slayer.block.cuba.Affine(p, 4, 3), "cuba.Affine"),
                      (slayer.block.sigma_delta.Dense(sd, 4, 3), "sigma_delta.Dense")]:
        with pytest.raises(UnsupportedLayerError, match=f"^0 \\(lava-dl .*{name}"):
            convert(nn.Sequential(blk))


def test_lava_dl_recurrent_blocks_convert_to_recurrent_containers_equal_to_them(slayer, tmp_path):
    """slayer.block.cuba.Recurrent: s[t] = f(W x[t] + R s[t-1]), output delayed a step. The recurrent
    BlockContainer equals it spike for spike, trains (gradients reach W and R), and its dense_rec .net equals it
    in Lava."""
    torch.manual_seed(4)
    p = dict(threshold=0.6, current_decay=0.3, voltage_decay=0.1)
    net = nn.Sequential(slayer.block.cuba.Recurrent(p, 12, 8, weight_scale=4),
                        slayer.block.cuba.Dense(p, 8, 4, weight_scale=4))
    x = spikes((30, 2, 12), 0.4, seed=6)
    ref = lava_forward(net, x)
    blocks = convert(net)
    assert blocks[0].recurrent is not None
    with torch.no_grad():
        y = blocks(x)
    assert y.sum() > 0 and mismatches(y, ref) == 0
    path = export(blocks, tmp_path / "r.net", (12,))
    assert load(path).layers[0].weight_rec is not None and mismatches(run_lava(path, x), y) == 0
    blocks[0].reset()
    blocks[1].reset()
    blocks(x).sum().backward()
    assert blocks[0].synapse.weight.grad.abs().sum() > 0 and blocks[0].recurrent.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("learned", [False, True])
def test_lava_dl_models_with_axonal_delays_convert_and_run_in_lava_equal_to_them(learned, slayer, tmp_path):
    """Dense blocks with delay=True: fixed integer delays, or learned (fractional) ones that lava-dl floors in its
    forward and its export. The containers (each neuron's input delayed by its delay) equal the lava-dl model spike
    for spike (lava-dl delays the output: the same, with no bias), and the .net (NetX delay, Lava's DelayDense)
    equals them in Lava and emulate."""
    torch.manual_seed(8)
    p = dict(threshold=0.5, current_decay=0.25, voltage_decay=0.05)
    net = nn.Sequential(slayer.block.cuba.Dense(p, 16, 10, weight_scale=4, delay=True),
                        slayer.block.cuba.Dense(p, 10, 4, weight_scale=4, delay=True))
    x = spikes((50, 2, 16), 0.3, seed=2)
    lava_forward(net, x)  # draws the delays
    with torch.no_grad():
        for blk, top in ((net[0], 9), (net[1], 62)):
            d = torch.randint(0, top + 1, blk.delay.delay.shape).float()
            blk.delay.delay.copy_(d + (torch.rand(d.shape) * 0.9 if learned else 0))
    ref = lava_forward(net, x)
    blocks = convert(net)
    assert int(blocks[1].axon_delay.max()) <= 62 and blocks[0].axon_delay is not None
    assert any("floored" in n for n in blocks.conversion_notes) == learned
    with torch.no_grad():
        y = blocks(x)
    assert ref.sum() > 0 and mismatches(y, ref) == 0
    path = export(blocks, tmp_path / "d.net", (16,))
    assert load(path).layers[0].delay is not None
    assert mismatches(run_lava(path, x), y) == 0 and mismatches(sj2lava.emulate(path, x), y) == 0
    # single-step mode runs the same delays
    blocks[0].reset()
    blocks[0].step_mode = "s"
    with torch.no_grad():
        h = torch.stack([blocks[0](x[t]) for t in range(x.shape[0])])
    blocks[0].step_mode = "m"
    blocks[0].reset()
    with torch.no_grad():
        assert torch.equal(h, blocks[0](x))
