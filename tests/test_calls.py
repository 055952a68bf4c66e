"""sj2lava.calls: the forwards the tutorials write, read from one run: a time loop inside forward (snnTorch) and a
static prefix repeated over time (SpikingJelly's CupyNet), with functional max-pools and flattens between layers."""
import pytest
import snntorch as snn
import torch
import torch.nn.functional as F
from conftest import mismatches
from torch import nn

import sj2lava
from sj2lava import UnsupportedLayerError, convert, export, run_lava, verify


class LoopMLP(nn.Module):
    """snnTorch's tutorial MLP, class form: init_leaky, then a loop over the same static input."""

    def __init__(self, steps=12):
        super().__init__()
        self.steps = steps
        self.fc1, self.lif1 = nn.Linear(64, 40), snn.Leaky(beta=0.5, reset_mechanism="zero")
        self.fc2, self.lif2 = nn.Linear(40, 10), snn.Leaky(beta=0.5, reset_mechanism="zero")

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk2_rec = []
        for _ in range(self.steps):
            spk1, mem1 = self.lif1(self.fc1(x.view(x.shape[0], -1)), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk2_rec.append(spk2)
        return torch.stack(spk2_rec)


def test_a_time_loop_over_a_static_input_converts_with_no_other_argument(tmp_path):
    torch.manual_seed(0)
    net = LoopMLP()
    with torch.no_grad():
        net.fc1.weight.mul_(6)
        net.fc2.weight.mul_(6)
    x = torch.rand(5, 64)
    with pytest.raises(UnsupportedLayerError, match="example_input=x"):
        convert(net)  # fx cannot read the loop; the message says what would
    blocks = convert(net, example_input=x)
    assert [b.kind for b in blocks] == ["input", "dense"] and blocks.static_input
    assert any("loops 12 times" in n and "direct input" in n for n in blocks.conversion_notes)
    assert any("readout, left to the host" in n for n in blocks.conversion_notes)
    path = export(blocks, tmp_path / "mlp.net")
    xs = x.unsqueeze(0).repeat(12, 1, 1)
    with torch.no_grad():
        y = blocks(xs)
    lava = run_lava(path, input_bias=blocks[0].input_bias(xs[:, :2]), num_steps=12)  # input neurons: a bias image
    assert y.sum() > 0 and mismatches(lava, y[:, :2]) == 0
    labels = torch.tensor([0, 1, 2, 3, 4])
    report = verify(net, path, x, labels=labels, lava_samples=1, containers=blocks)  # the data as the model takes it
    assert report.exact and report.stage("float").spikes[1] > 0  # the model ran once per sample, as written
    ev = sj2lava.evaluate(path, (x, labels), steps=12, host=blocks[0], progress=False)  # images, as the model
    assert ev.accuracy == report.stage("emulator").accuracy and ev.samples == 5
    ev = sj2lava.evaluate(path, (x[:1], labels[:1]), steps=12, host=blocks[0], backend="lava", progress=False)
    assert ev.accuracy == report.stage("lava").accuracy
    assert report.steps == 12 and blocks.static_input == 12
    losses = sj2lava.finetune(blocks, (x, torch.tensor([0, 1, 2, 3, 4])), epochs=2, steps=12, progress=False)
    assert len(losses) == 2 and sj2lava.export(blocks, tmp_path / "tuned.net")  # images in, strict export out


class FunctionalCNN(nn.Module):
    """snnTorch's convolutional tutorial, class form: F.max_pool2d over currents and .view in forward."""

    def __init__(self):
        super().__init__()
        self.conv1, self.lif1 = nn.Conv2d(2, 4, 3), snn.Leaky(beta=0.5, reset_mechanism="zero")
        self.fc1, self.lif2 = nn.Linear(4 * 3 * 3, 5), snn.Leaky(beta=0.5, reset_mechanism="zero")

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk1, mem1 = self.lif1(F.max_pool2d(self.conv1(x), 2), mem1)
        spk2, mem2 = self.lif2(self.fc1(spk1.view(x.shape[0], -1)), mem2)
        return spk2, mem2


def test_functional_max_pools_and_views_are_layers_converted_or_refused_by_name():
    x = (torch.rand(3, 2, 8, 8) < 0.5).float()
    with pytest.raises(UnsupportedLayerError, match=r"max_pool2d before lif1: MaxPool2d\(2, 2\) over the currents"):
        convert(FunctionalCNN(), example_input=x)
    blocks = convert(FunctionalCNN(), example_input=x, approximate=True)
    assert [b.kind for b in blocks] == ["conv", "flatten", "dense"]
    assert any("replaced by AvgPool2d" in n for n in blocks.conversion_notes)

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1 = nn.Linear(8, 8), snn.Leaky(beta=0.5, reset_mechanism="zero")
            self.fc2, self.lif2 = nn.Linear(8, 2), snn.Leaky(beta=0.5, reset_mechanism="zero")

        def forward(self, x):
            spk, _ = self.lif1(self.fc1(x))
            return self.lif2(self.fc2(spk * 2))[0]  # arithmetic between layers

    odd = Odd()
    with torch.no_grad():
        odd.fc1.weight.fill_(0.5)  # lif1 spikes, so the * 2 shows
    with pytest.raises(UnsupportedLayerError, match="between lif1 and fc2 .*not a layer.*order="):
        convert(odd, example_input=torch.ones(2, 8))
    with torch.no_grad():
        odd.fc1.weight.fill_(-0.5)  # silent: the * 2 cannot be seen, and the note says so
    assert any("sent only zeros" in n for n in convert(odd, example_input=torch.ones(2, 8)).conversion_notes)


def test_spikingjellys_cupynet_with_its_static_prefix_converts_as_written(sj, tmp_path):
    """static_conv (Conv + BN) on the image, unsqueeze(0).repeat(T, ...), multi-step IF nodes and
    SeqToANNContainer(MaxPool2d, Conv2d, BN), .mean(0): the static prefix runs on the host (input neurons), both
    max-pools become OR layers, and no argument but example_input is needed."""
    torch.manual_seed(1)
    T, C = 4, 4
    IF = lambda: sj.neuron.IFNode(step_mode="m")  # noqa: E731
    S = sj.layer.SeqToANNContainer

    class CupyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.static_conv = nn.Sequential(nn.Conv2d(1, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
            self.conv = nn.Sequential(IF(), S(nn.MaxPool2d(2, 2), nn.Conv2d(C, C, 3, padding=1, bias=False),
                                              nn.BatchNorm2d(C)), IF(), S(nn.MaxPool2d(2, 2), nn.Flatten()))
            self.fc = nn.Sequential(S(nn.Linear(C * 4 * 4, 16, bias=False)), IF(), S(nn.Linear(16, 10, bias=False)),
                                    IF())

        def forward(self, x):
            return self.fc(self.conv(self.static_conv(x).unsqueeze(0).repeat(T, 1, 1, 1, 1))).mean(0)

    net = CupyNet().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(4)
    x = torch.rand(3, 1, 16, 16)
    blocks = convert(net, example_input=x)
    assert [b.kind for b in blocks] == ["input", "pool", "conv", "pool", "flatten", "dense", "dense"]
    assert blocks.static_input and any("repeats the output of static_conv.1 over 4 steps" in n
                                       for n in blocks.conversion_notes)
    path = export(blocks, tmp_path / "cupy.net")
    report = verify(net, path, x, lava_samples=1, containers=blocks)
    assert report.exact and sum(report.stage("containers").spikes) > 0
    assert all(m is not None for m in report.stage("float").mismatches)  # every layer lined up with the model
    assert sj2lava.load(path).latencies[-1] == 5  # > T: the aligned window is what makes its output readable


def test_snntorchs_convolutional_tutorial_stepped_over_a_static_image_converts_as_written(tmp_path):
    """snnTorch's conv tutorial, Sequential form (Conv2d, MaxPool2d, Leaky, ... with init_hidden), stepped over the
    same image: example_input without a time axis says so; the first conv and its max-pool run on the host
    (exact), the second max-pool is over currents (approximate=True averages it), and the file runs in Lava."""
    torch.manual_seed(2)
    leaky = lambda: snn.Leaky(beta=0.5, init_hidden=True, reset_mechanism="zero")  # noqa: E731
    net = nn.Sequential(nn.Conv2d(1, 4, 5), nn.MaxPool2d(2), leaky(), nn.Conv2d(4, 8, 5), nn.MaxPool2d(2), leaky(),
                        nn.Flatten(), nn.Linear(8 * 4 * 4, 10), leaky())
    x = torch.rand(3, 1, 28, 28)
    with pytest.raises(UnsupportedLayerError, match="over the currents of 3"):
        convert(net, example_input=x)
    blocks = convert(net, example_input=x, approximate=True)
    assert [b.kind for b in blocks] == ["input", "conv", "flatten", "dense"]
    assert [type(e) for e in blocks[0].encoder] == [nn.Conv2d, nn.MaxPool2d]
    assert any("analog with no time axis" in n for n in blocks.conversion_notes) and blocks.input_shape == (1, 28, 28)
    path = export(blocks, tmp_path / "conv.net")
    xs = x.unsqueeze(0).expand(8, *x.shape)
    with torch.no_grad():
        y = blocks(xs)
    lava = run_lava(path, input_bias=blocks[0].input_bias(xs[:, :1]), num_steps=8)
    assert mismatches(lava, y[:, :1]) == 0
    with pytest.raises(ValueError, match=r"expand\(T, \*x.shape\)"):  # stepped from outside: images say no T
        verify(net, path, x, containers=blocks, lava_samples=0)
    report = verify(net, path, xs, containers=blocks, lava_samples=0)  # the sequence it is stepped over
    assert report.exact and report.steps == 8
    assert convert(net, example_input=xs, approximate=True)[0].kind == "input"  # the same image every step
    spikes = (torch.rand(8, 3, 1, 28, 28) < 0.3).float()
    assert convert(net, example_input=spikes, approximate=True)[0].kind == "conv"  # a spike sequence: on Loihi


def test_a_view_before_the_first_layer_runs_on_the_host_with_it(tmp_path):
    """snnTorch's MLP flattens the image with .view(B, -1) before fc1: with direct input the flatten joins fc1 on the
    host, and input_bias tells one image from a sequence of them by the recorded input shape."""
    torch.manual_seed(3)
    net = LoopMLP(steps=6)
    with torch.no_grad():
        net.fc1.weight.mul_(6)
        net.fc2.weight.mul_(6)
    x = torch.rand(4, 1, 8, 8)
    blocks = convert(net, example_input=x)
    assert [b.kind for b in blocks] == ["input", "dense"] and blocks.input_shape == (1, 8, 8)
    assert [type(e) for e in blocks[0].encoder] == [nn.Flatten, nn.Linear]
    assert any("flatten before fc1: run on the host with fc1" in n for n in blocks.conversion_notes)
    xs = x.unsqueeze(0).expand(6, *x.shape)
    assert torch.equal(blocks[0].input_bias(x), blocks[0].input_bias(xs))
    path = export(blocks, tmp_path / "v.net")
    report = verify(net, path, x, lava_samples=1, containers=blocks)
    assert report.exact and sum(report.stage("emulator").spikes) > 0
