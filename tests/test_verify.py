"""sj2lava.verify: the same input through every stage, compared layer by layer with the containers."""
import pytest
import torch
from conftest import plain_sj_net, scale_weights, spikes
from torch import nn

import sj2lava
from sj2lava import BlockContainer as B
from sj2lava import CubaLIFNode as C
from sj2lava.verify import accuracy


def _net():
    torch.manual_seed(3)
    return scale_weights(nn.Sequential(B(nn.Conv2d(1, 4, 3, padding=1), C(1.0, 0.1, 0.5), "m"),
                                       B(nn.Flatten(), None, "m"),
                                       B(nn.Linear(4 * 5 * 5, 3), C(0.5, 0.2, 0.5), "m")), [4, 0, 4])


def test_exact_stages_agree_and_the_report_says_so(tmp_path):
    net = _net()
    x = spikes((12, 3, 1, 5, 5), 0.4, seed=2)
    path = sj2lava.export(net, tmp_path / "v.net", (1, 5, 5))
    report = sj2lava.verify(net, path, x, labels=torch.tensor([0, 1, 2]), lava_samples=2)
    assert [s.name for s in report.stages] == ["containers", "lava-dl", "emulator", "lava"]
    assert report.layers == ["0:conv", "2:dense"] and report.neurons == [100, 3]
    assert report.exact and all(m == 0 for s in report.stages[1:] for m in s.mismatches)
    assert report.stage("lava").samples == 2 and any("first 2 of 3" in n for n in report.notes)
    assert sum(report.stage("containers").spikes) > 0
    text = str(report)
    assert "exact stages agree with the containers: yes, 0 mismatches" in text and "accuracy" in text


def test_a_file_that_differs_from_the_model_is_caught(tmp_path):
    net = _net()
    x = spikes((12, 3, 1, 5, 5), 0.4, seed=2)
    path = sj2lava.export(net, tmp_path / "v.net", (1, 5, 5))
    with torch.no_grad():  # the model moves on after export: one grid step on every dense weight
        net[2].synapse.weight.add_(2 / 64)
    report = sj2lava.verify(net, path, x, lava_samples=1)
    assert not report.exact
    assert report.stage("emulator").mismatches[0] == 0 and report.stage("emulator").mismatches[1] > 0
    assert "NO" in str(report)


def test_float_model_is_compared_delay_aligned_with_notes(sj, tmp_path):
    net = plain_sj_net(sj)
    x = spikes((10, 2, 1, 12, 12), 0.4, seed=5)
    blocks = sj2lava.convert(net, example_input=x)
    path = sj2lava.export(blocks, tmp_path / "f.net", (1, 12, 12))
    report = sj2lava.verify(net, path, x, lava_samples=1, containers=blocks)
    flt = report.stage("float")
    assert report.stages[0] is flt and not flt.exact and len(flt.mismatches) == 3
    assert report.exact  # the float stage is not an exact one
    assert any("folded" in n for n in report.notes) and any("v >= threshold" in n for n in report.notes)


def test_accuracy_counts_the_most_spiking_output():
    out = torch.zeros(4, 3, 2)
    out[:, 0, 1] = 1
    out[:2, 1, 0] = 1
    out[:1, 2, 1] = 1
    assert accuracy(out, torch.tensor([1, 0, 0])) == pytest.approx(2 / 3)


def test_a_short_run_is_read_in_the_aligned_window_and_a_zero_accuracy_is_explained(sj, tmp_path):
    """Five layers and T = 4 (SpikingJelly's CupyNet tutorial): Lava's latency of 5 steps leaves the output of the
    4 steps empty, so window='all' reads nothing (accuracy 0, and verify says why); the default aligned window runs
    T + 5 steps and reads the output where it answers, equal to the float model's own 4 steps."""
    torch.manual_seed(2)
    IF = sj.neuron.IFNode
    net = nn.Sequential(nn.Linear(20, 20), IF(), nn.Linear(20, 20), IF(), nn.Linear(20, 20), IF(),
                        nn.Linear(20, 20), IF(), nn.Linear(20, 3), IF())
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                m.weight.mul_(3)
                m.bias.fill_(0.2)
    for m in net:
        if hasattr(m, "step_mode"):
            m.step_mode = "m"
    x = spikes((4, 6, 20), 0.6, seed=3)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    blocks = sj2lava.convert(net, example_input=x)
    path = sj2lava.export(blocks, tmp_path / "deep.net")
    short = sj2lava.verify(net, path, x, labels=labels, lava_samples=1, containers=blocks, window="all")
    assert not short.stage("emulator").output.any() and short.exact
    assert any("no output step was read" in n and "window='aligned'" in n for n in short.notes)
    assert any("sent no spike in the read window" in n for n in short.notes)
    report = sj2lava.verify(net, path, x, labels=labels, lava_samples=1, containers=blocks)
    assert report.exact and any("read window" in n for n in report.notes)
    assert report.stage("emulator").output.shape[0] == 4 and report.stage("emulator").output.sum() > 0
    assert report.stage("emulator").accuracy == report.stage("containers").accuracy
