"""sj2lava.sdnn: ReLU ANNs as sigma-delta .net files, against the float ANN, the emulator and Lava."""
import numpy as np
import pytest
import torch
from torch import nn

import sj2lava
from sj2lava import UnsupportedLayerError, to_sdnn


def _ann():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, stride=2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(12 * 3 * 3, 20), nn.ReLU(), nn.Dropout(0.2), nn.Linear(20, 3)).eval()


def test_a_relu_ann_becomes_an_sdnn_that_settles_on_its_output_in_lava(tmp_path):
    """Conv/Linear + ReLU layers as SigmaDelta layers with per-layer scales, the last Linear as the Sigma output
    (its bias on the host): the emulator's decoded output settles within 1% of the float ANN's, and Lava equals
    the emulator in every message of every layer."""
    ann, x = _ann(), torch.rand(4, 2, 16, 16, generator=torch.Generator().manual_seed(1))
    sd = to_sdnn(ann, x)
    kinds = [(l.kind, getattr(getattr(l, "neuron", None), "role", None)) for l in sd.spec.layers]
    assert kinds == [("input", "delta"), ("conv", "sigma_delta"), ("conv", "sigma_delta"), ("flatten", None),
                     ("dense", "sigma_delta"), ("dense", "sigma")]
    path = sd.export(tmp_path / "ann.net")
    assert sj2lava.load(path).layers[1].neuron.kind == "sdnn"
    report = sd.verify(ann, x, steps=10, path=path, lava_samples=2)
    assert report.lava_mismatches == 0
    assert report.error[-1] < 0.01 * report.scale and report.error[-1] <= report.error[0], str(report)
    assert all(m > 0 for m in report.messages) and "messages sent per layer" in str(report)
    assert any("added on the host" in n for n in sd.notes)
    # a threshold trades accuracy for messages
    coarse = to_sdnn(ann, x, threshold=0.05).verify(ann, x, steps=10)
    assert sum(coarse.messages) < sum(report.messages) and coarse.error[-1] > report.error[-1]


def test_sums_keep_within_lavas_registers():
    """Per-layer scales stop short of the weight grid where the example data's sums would pass Lava's 24-bit conv
    sum or the int32 graded-message check, and say so."""
    ann, x = _ann(), torch.rand(4, 2, 16, 16, generator=torch.Generator().manual_seed(1))
    sd = to_sdnn(ann, x, input_scale=255)
    assert any("not" in n and "8-bit grid" in n for n in sd.notes)
    report = sd.verify(ann, x, steps=10)  # no GradedOverflowError, and still close
    assert report.error[-1] < 0.01 * report.scale


def test_what_has_no_sdnn_form_is_refused_by_name():
    x = torch.rand(2, 4)
    for net, match in [(nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2)), "1 \\(Sigmoid\\)"),
                       (nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)), "0 is not followed by a ReLU"),
                       (nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.ReLU()), "a ReLU after the last"),
                       (nn.Sequential(nn.ReLU()), "no Conv2d/Linear")]:
        with pytest.raises(UnsupportedLayerError, match=match):
            to_sdnn(net, x)
    sd = to_sdnn(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), x)
    with pytest.raises(ValueError, match="smaller input_scale"):
        sd.encode(torch.full((1, 4), 1e5), 3)
    assert np.isfinite(sd.output_scale)


def test_a_lava_dl_sigma_delta_model_converts_equal_to_it(slayer, tmp_path):
    """slayer.block.sigma_delta Input/Conv/Flatten/Dense/Output: to_sdnn writes it the way lava-dl's own export_hdf5
    does, and Lava's output equals lava-dl's, delay-aligned (one step per synapse), at every step."""
    torch.manual_seed(0)
    p = dict(threshold=0.1, tau_grad=0.5, scale_grad=1, requires_grad=False, shared_param=True, activation=torch.relu)
    net = nn.Sequential(slayer.block.sigma_delta.Input(p),
                        slayer.block.sigma_delta.Conv(p, 2, 6, 3, stride=2, weight_scale=2),
                        slayer.block.sigma_delta.Flatten(),
                        slayer.block.sigma_delta.Dense(p, 6 * 7 * 7, 10, weight_scale=2),
                        slayer.block.sigma_delta.Output(p, 10, 3, weight_scale=2))
    x = torch.randint(0, 4, (2, 2, 16, 16), generator=torch.Generator().manual_seed(2)).float()
    sd = to_sdnn(net, x)
    assert [l.kind for l in sd.spec.layers] == ["input", "conv", "flatten", "dense", "dense"]
    path = sd.export(tmp_path / "s.net")
    report = sd.verify(net, x, steps=12, path=path, lava_samples=2)
    assert report.error == [0.0] * 12 and report.lava_mismatches == 0, str(report)
    assert report.scale > 0.1
    with pytest.raises(UnsupportedLayerError, match="pass the whole sigma-delta model to sj2lava.to_sdnn"):
        sj2lava.convert(net)
