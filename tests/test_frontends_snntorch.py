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
            self.fc1 = nn.Linear(20, 16)
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
