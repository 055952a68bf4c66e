"""snnTorch 1.0 models to Loihi: convert, export, Lava, verify, finetune; and every refusal."""

import pytest
import snntorch as snn
import torch
import torch.nn.functional as F
from conftest import mismatches, spikes
from snntorch import utils as snn_utils
from torch import nn

import sj2lava
from sj2lava import UnsupportedLayerError, convert, export, finetune, run_lava, verify
from sj2lava.demo import digits
from sj2lava.train import rate_code


def tutorial_net():
    """The snnTorch tutorial conv net, pooling done by sum-pools, for 16x16 digits."""
    torch.manual_seed(0)
    leaky = lambda **kw: snn.Leaky(beta=0.5, init_hidden=True, reset_mechanism="zero", **kw)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(1, 12, 5), sj2lava.SumPool2d(2), leaky(),
        nn.Conv2d(12, 32, 3), sj2lava.SumPool2d(2), leaky(),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10), leaky(output=True),
    )


def snntorch_train(net, x, y, epochs):
    """Plain snnTorch training: one time step per call."""
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(epochs):
        for i in range(0, len(y), 32):
            snn_utils.reset(net)
            xb = x[:, i:i + 32]
            spk = torch.stack([net(xb[t])[0] for t in range(xb.shape[0])])
            loss = F.cross_entropy(spk.sum(0), y[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def test_tutorial_net_converts_runs_in_lava_and_finetunes(tmp_path):
    (x_tr, y_tr), (x_te, y_te) = digits()
    steps = 12
    x_tr, y_tr = rate_code(x_tr[:320], steps, torch.Generator().manual_seed(0)), y_tr[:320]
    x_te, y_te = rate_code(x_te[:40], steps, torch.Generator().manual_seed(1)), y_te[:40]
    net = snntorch_train(tutorial_net(), x_tr, y_tr, epochs=2)
    blocks = convert(net)
    assert [b.kind for b in blocks] == ["conv", "conv", "flatten", "dense"]
    assert blocks[0].neuron.v_decay == 2048 and blocks[0].neuron.i_decay == 4096
    assert any("composed into one conv" in n for n in blocks.conversion_notes)
    path = export(blocks, tmp_path / "snn.net", (1, 16, 16))
    report = verify(net, path, x_te, labels=y_te, lava_samples=2, containers=blocks)
    assert report.exact, str(report)
    flt = report.stage("float")
    assert flt.accuracy is not None and all(m is not None for m in flt.mismatches)
    print(report)
    losses = finetune(blocks, (x_tr, y_tr), epochs=1, progress=False)
    assert len(losses) == 1 and losses[0] > 0
    path2 = export(blocks, tmp_path / "tuned.net", (1, 16, 16))
    with torch.no_grad():
        sj2lava.reset_net(blocks)
        y = blocks(x_te[:, :3])
    assert y.sum() > 0 and mismatches(run_lava(path2, x_te[:, :3]), y) == 0
    after = verify(blocks, path2, x_te, labels=y_te, lava_samples=1)
    print(f"float {flt.accuracy:.2%}, Loihi before finetune {report.stage('containers').accuracy:.2%}, "
          f"after {after.stage('containers').accuracy:.2%}")


def test_synaptic_maps_and_explicit_members_with_order(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(20, 16, bias=False)  # a bias into Synaptic's current: see the test below
            self.lif1 = snn.Synaptic(alpha=0.75, beta=0.5, reset_mechanism="zero", reset_delay=False)
            self.fc2 = nn.Linear(16, 4)
            self.lif2 = snn.Leaky(beta=0.9, reset_mechanism="zero", learn_beta=True)

    net = Net()
    blocks = convert(net, order=["fc1", "lif1", "fc2", "lif2"])
    n1, n2 = blocks[0].neuron, blocks[1].neuron
    assert (n1.i_decay, n1.v_decay) == (1024, 2048) and n2.v_decay == round(0.1 * 4096)
    assert n2.requires_grad and n1.detach_reset
    with torch.no_grad():
        for b in blocks:
            b.synapse.weight.mul_(8)
    x = spikes((16, 2, 20), 0.5, seed=3)
    path = export(blocks, tmp_path / "syn.net", (20,))
    with torch.no_grad():
        y = blocks(x)
    assert y.sum() > 0 and mismatches(run_lava(path, x), y) == 0


def test_a_bias_into_synaptics_decaying_current_is_refused_or_moved_under_approximate(tmp_path):
    """snnTorch's Synaptic adds the Linear's bias to its current, which decays: the bias reaches 1/(1 - alpha) of
    itself as the current settles, where Loihi adds a bias to v at once. Refused naming both ways out; under
    approximate=True the bias goes to v at its settled value (bias / current_decay), noted, and runs in Lava."""
    net = nn.Sequential(nn.Linear(10, 6), snn.Synaptic(alpha=0.75, beta=0.5, reset_mechanism="zero",
                                                       reset_delay=False, init_hidden=True))
    with torch.no_grad():
        net[0].weight.mul_(8)
        net[0].bias.fill_(0.5)
    with pytest.raises(UnsupportedLayerError, match=r"(?s)^1: the bias of 0 enters Synaptic's decaying synaptic "
                                                    r"current.*no bias.*approximate=True"):
        convert(net)
    blocks = convert(net, approximate=True, rescale=False)
    assert torch.allclose(blocks[0].synapse.bias, torch.full((6,), 2.0))  # 0.5 / (1 - 0.75)
    assert any("settled value" in n and "not exact" in n for n in blocks.conversion_notes)
    x = spikes((12, 2, 10), 0.5, seed=4)
    with torch.no_grad():
        y = blocks(x)
    assert y.sum() > 0 and mismatches(run_lava(export(blocks, tmp_path / "b.net", (10,)), x), y) == 0
    # with no current decay (alpha = 0) the bias is exact and passes
    exact = nn.Sequential(nn.Linear(10, 6), snn.Synaptic(alpha=0.0, beta=0.5, reset_mechanism="zero",
                                                         reset_delay=False, init_hidden=True))
    assert convert(exact)[0].synapse.bias is not None


REFUSALS = [
    ("subtract", lambda: snn.Leaky(beta=0.5), ["reset_mechanism='subtract'", "approximate=True", "retrain"]),
    ("synaptic_delay", lambda: snn.Synaptic(alpha=0.5, beta=0.5, reset_mechanism="zero"),
     ["reset_delay=True", "reset_delay=False"]),
    ("graded", lambda: snn.Leaky(beta=0.5, reset_mechanism="zero", graded_spikes_factor=2.0), ["graded spikes"]),
    ("per_neuron_beta", lambda: snn.Leaky(beta=torch.rand(4), reset_mechanism="zero"), ["one decay per layer"]),
]


@pytest.mark.parametrize("name", [r[0] for r in REFUSALS])
def test_refusals_name_the_layer_and_the_fix(name):
    build, words = next((b, w) for n, b, w in REFUSALS if n == name)
    net = nn.Sequential(nn.Linear(6, 4), build())
    with pytest.raises(UnsupportedLayerError) as e:
        convert(net)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    assert str(e.value).startswith("1:")


def test_maxpool_in_snntorch_net_is_refused():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), snn.Leaky(beta=0.5, reset_mechanism="zero"))
    with pytest.raises(UnsupportedLayerError, match="MaxPool2d.*SumPool2d"):
        convert(net)


def test_approximate_converts_subtract_reset_with_a_warning_and_a_note(tmp_path):
    net = nn.Sequential(nn.Linear(10, 4), snn.Leaky(beta=0.5))
    with pytest.warns(UserWarning, match="subtract reset approximated"):
        blocks = convert(net, approximate=True)
    assert any("approximated" in n and "not exact" in n for n in blocks.conversion_notes)
    with torch.no_grad():
        blocks[0].synapse.weight.mul_(6)
    path = export(blocks, tmp_path / "a.net", (10,))
    x = spikes((16, 2, 10), 0.5, seed=4)
    report = verify(net, path, x, lava_samples=1, containers=blocks)
    assert report.exact and "approximated" in str(report)


def _recurrent_net(kind: str, all_to_all: bool = True, rec_bias: bool = False):
    """Linear -> RLeaky/RSynaptic (zero reset, reset_delay=False) -> Linear -> Leaky, with weights on Loihi's 2/64
    grid and decays on its 1/4096 grid (beta = 1: no leak), so float and fixed point compute the same numbers."""
    torch.manual_seed(2)
    # init_hidden=False: snnTorch 1.0.0's RSynaptic(reset_delay=False) fails with init_hidden=True (it divides
    # its spk argument, None there); the test passes the states itself (_snn_steps)
    kw = dict(init_hidden=False, reset_mechanism="zero", reset_delay=False)
    if kind == "RLeaky":
        size = dict(linear_features=8) if all_to_all else dict(V=0.5)
        rnn = snn.RLeaky(beta=1.0, all_to_all=all_to_all, **size, **kw)
    else:
        rnn = snn.RSynaptic(alpha=0.0, beta=1.0, linear_features=8, all_to_all=all_to_all, V=0.5, **kw)
    net = nn.Sequential(nn.Linear(12, 8, bias=False), rnn, nn.Linear(8, 4, bias=False),
                        snn.Leaky(beta=1.0, reset_mechanism="zero"))
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.weight.copy_(torch.round(m.weight * 192) / 32)
        if all_to_all:
            rnn.recurrent.weight.copy_(torch.round(rnn.recurrent.weight * 96) / 32)
            rnn.recurrent.bias.copy_(torch.full((8,), 3 / 64) if rec_bias else torch.zeros(8))
    return net


def _snn_steps(net, x):
    """snnTorch's own forward, one step per call with explicit states (RLeaky / RSynaptic, then Leaky)."""
    fc, rnn, fc2, out = net
    spk = torch.zeros(x.shape[1], 8)
    syn, mem, mem2, ys = torch.zeros_like(spk), torch.zeros_like(spk), torch.zeros(x.shape[1], 4), []
    with torch.no_grad():
        for t in range(x.shape[0]):
            if isinstance(rnn, snn.RSynaptic):
                spk, syn, mem = rnn(fc(x[t]), spk, syn, mem)
            else:
                spk, mem = rnn(fc(x[t]), spk, mem)
            y, mem2 = out(fc2(spk), mem2)
            ys.append(y)
    return torch.stack(ys)


@pytest.mark.parametrize("kind, all_to_all", [("RLeaky", True), ("RLeaky", False)])
def test_recurrent_snntorch_neurons_convert_to_dense_rec(kind, all_to_all, tmp_path):
    """RLeaky (all-to-all, or one-to-one V) -> a recurrent BlockContainer -> NetX dense_rec: equal to the snnTorch
    model one step later per layer (Loihi's synaptic delay), and to Lava."""
    net = _recurrent_net(kind, all_to_all)
    x = spikes((30, 2, 12), 0.5, seed=3)
    ref = _snn_steps(net, x)
    blocks = convert(net)
    assert blocks[0].recurrent is not None
    with torch.no_grad():
        y = blocks(x)
    assert y.sum() > 0 and mismatches(y[2:], ref[:-2]) == 0
    path = export(blocks, tmp_path / "r.net", (12,))
    assert mismatches(run_lava(path, x), y) == 0


def test_recurrent_snntorch_refusals(tmp_path):
    net = _recurrent_net("RLeaky", rec_bias=True)
    assert convert(net)[0].synapse.bias is not None  # RLeaky: a recurrent bias is a constant input, exact
    with pytest.raises(UnsupportedLayerError, match="RSynaptic has no exact Loihi form"):
        convert(_recurrent_net("RSynaptic"))
    with pytest.warns(UserWarning, match="RSynaptic's late reset approximated"):
        approx = convert(_recurrent_net("RSynaptic"), approximate=True)
    assert approx[0].recurrent is not None
    assert any("RSynaptic's late reset approximated" in n for n in approx.conversion_notes)
    x = spikes((30, 2, 12), 0.5, seed=4)
    with torch.no_grad():
        y = approx(x)
    assert y.sum() > 0 and mismatches(run_lava(export(approx, tmp_path / "rs.net", (12,)), x), y) == 0
    late = nn.Sequential(nn.Linear(4, 8), snn.RLeaky(beta=0.5, linear_features=8, init_hidden=True,
                                                     reset_mechanism="zero"))  # reset_delay=True: late
    with pytest.raises(UnsupportedLayerError, match="RLeaky\\(reset_delay=True\\)"):
        convert(late)
