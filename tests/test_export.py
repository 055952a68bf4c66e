"""export -> .net -> Lava (real lava-nc, Loihi2SimCfg fixed_pt) equals the BlockContainers, spike for spike."""
import os

import numpy as np
import pytest
import torch
from conftest import lif_if_net, mismatches, spikes, zoo
from torch import nn

from sj2lava import BlockContainer as B
from sj2lava import CubaLIFNode as C
from sj2lava import ExportError, SumPool2d, export, load, run_lava


@pytest.mark.parametrize("name", [z[0] for z in zoo()])
def test_zoo_lava_equals_containers_every_layer(name, sj, tmp_path):
    _, net, in_shape, steps = next(z for z in zoo() if z[0] == name)
    if net is None:
        net = lif_if_net(sj)
    batch = 2 if name == "seed_mnist" else 3  # several random inputs; the big net costs ~2 s a sample
    x = spikes((steps, batch, *in_shape), 0.3, seed=11)
    with torch.no_grad():
        outs, h = [], x
        for blk in net:
            h = blk(h)
            outs.append(h)
    path = export(net, tmp_path / f"{name}.net", in_shape)
    lava = run_lava(path, x, all_layers=True)  # every synaptic layer's spikes, one compile for the whole net
    kept = [k for k, blk in enumerate(net) if blk.kind != "flatten"]
    assert len(lava) == len(kept)
    report = []
    for k, y in zip(kept, lava):
        assert outs[k].sum() > 0, f"{name}: layer {k} is silent; the test would prove nothing"
        assert y.shape == outs[k].shape
        report.append(f"layer {k}: {int(outs[k].sum())} spikes, {mismatches(y, outs[k])} mismatches")
        assert mismatches(y, outs[k]) == 0, report
    print(name, "; ".join(report))


def test_input_shape_is_remembered_and_needed(tmp_path):
    net = nn.Sequential(B(nn.Conv2d(1, 2, 3), C(1.0, 0.0), "m"))
    with pytest.raises(ExportError, match="input_shape"):
        export(net, tmp_path / "a.net")
    net(torch.zeros(2, 1, 1, 5, 6))
    assert load(export(net, tmp_path / "a.net")).input_shape == (1, 5, 6)
    assert not (tmp_path / "a.net.tmp").exists()


# ----------------------------------------------------------------- lava-dl's own files


# ----------------------------------------------------------------- refusals
def _dense(weight_fill=None, th=1.0, bias=None, n_in=4, n_out=3):
    fc = nn.Linear(n_in, n_out, bias=bias is not None)
    with torch.no_grad():
        if weight_fill is not None:
            fc.weight.copy_(torch.as_tensor(weight_fill, dtype=torch.float32).expand_as(fc.weight))
        if bias is not None:
            fc.bias.fill_(bias)
    return nn.Sequential(B(fc, C(1.0, 0.0, th), "m"))


REFUSALS = {
    "all_zero": (lambda: _dense(0.001), "every weight is zero"),
    "non_positive_with_-256": (lambda: _dense(-4.0), "-256"),
    "threshold": (lambda: _dense(1.0, th=3000.0), "17-bit vThMant"),
    "bias": (lambda: _dense(1.0, bias=80.0), "13-bit bias_mant"),
    "state_overflow": (lambda: nn.Sequential(B(nn.Linear(600, 2, bias=False), C(0.001, 0.0, 1.0), "m")),
                       "24-bit register"),
    "delay_shift_false": (lambda: nn.Sequential(B(nn.Linear(4, 3), C(1.0, 0.0), "m", delay_shift=False)),
                          "delay_shift=False"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_leave_no_file_and_keep_existing_ones(case, tmp_path):
    build, match = REFUSALS[case]
    net = build()
    if case == "state_overflow":
        with torch.no_grad():
            net[0].synapse.weight.fill_(3.9)
    target = tmp_path / "net.net"
    with pytest.raises(ExportError, match=match) as e:
        export(net, target, (net[0].synapse.in_features,))
    assert "block 0" in str(e.value)
    assert os.listdir(tmp_path) == []  # nothing half-written
    target.write_bytes(b"precious")
    with pytest.raises(ExportError):
        export(net, target, (net[0].synapse.in_features,))
    assert target.read_bytes() == b"precious" and os.listdir(tmp_path) == ["net.net"]
    with pytest.warns(UserWarning, match=match):
        export(net, target, (net[0].synapse.in_features,), strict=False)
    assert target.read_bytes() != b"precious"


def test_unsupported_blocks_are_refused(sj, tmp_path):
    with pytest.raises(ExportError, match="ReLU.*BlockContainer"):
        export(nn.Sequential(nn.ReLU()), tmp_path / "x.net", (3,))
    peer = sj.lava_exchange.BlockContainer(nn.Linear(3, 2, bias=False), sj.neuron.IFNode())
    with pytest.raises(ExportError, match="sj2lava.convert"):
        export([peer], tmp_path / "x.net", (3,))
    with pytest.raises(ExportError, match="Flatten"):
        export(nn.Sequential(B(nn.Conv2d(1, 2, 3), C(1, 0), "m"), B(nn.Linear(18, 2), C(1, 0), "m")),
               tmp_path / "x.net", (1, 5, 5))
    assert not os.listdir(tmp_path)


# ----------------------------------------------------------------- malformed files


# ----------------------------------------------------------------- CLI


class _OnDevice(torch.Tensor):
    """Stands in for a CUDA tensor on a CPU-only machine: like one, it refuses ``.numpy()`` until moved
    to the host with ``.cpu()`` (the machine under test may have no GPU; `make gpu-check` uses a real one)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.numpy:
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first.")
        out = super().__torch_function__(func, types, args, kwargs or {})
        return out.as_subclass(torch.Tensor) if func is torch.Tensor.cpu else out


def test_export_of_a_model_whose_parameters_live_on_a_device(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(
        B(nn.Conv2d(1, 4, 3, padding=1), C(0.5, 0.1, 0.5), "m"),
        B(SumPool2d(2), C(1.0, 0.0, 0.5), "m"),
        B(nn.Flatten(), None, "m"),
        B(nn.Linear(4 * 3 * 3, 5), C(0.25, 0.2, 0.7, requires_grad=True), "m"))
    host = export(net, tmp_path / "host.net", (1, 6, 6))
    with torch.no_grad():
        for m in net.modules():
            for name, p in list(m.named_parameters(recurse=False)):
                setattr(m, name, nn.Parameter(p.detach().clone().as_subclass(_OnDevice), p.requires_grad))
    assert isinstance(net[0].synapse.weight, _OnDevice)
    with pytest.raises(TypeError, match="cpu"):
        net[0].synapse.weight.detach().numpy()
    dev = export(net, tmp_path / "dev.net", (1, 6, 6))
    assert load(dev).table() == load(host).table()
    for a, b in zip(load(dev).layers, load(host).layers):
        for field in ("weight", "bias"):
            x, y = getattr(a, field, None), getattr(b, field, None)
            assert (x is None and y is None) or np.array_equal(x, y)
