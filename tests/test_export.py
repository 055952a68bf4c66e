"""export -> .net -> Lava (real lava-nc, Loihi2SimCfg fixed_pt) equals the BlockContainers, spike for spike."""
import os

import h5py
import numpy as np
import pytest
import torch
from conftest import lava_forward, mismatches, spikes
from torch import nn

import sj2lava
from sj2lava import BlockContainer as B
from sj2lava import CubaLIFNode as C
from sj2lava import ExportError, NetFileError, SumPool2d, export, load, run_lava


def _scale(net, factors):
    with torch.no_grad():
        for blk, f in zip(net, factors):
            if hasattr(blk.synapse, "weight") and f:
                blk.synapse.weight.mul_(f)
    return net


def zoo():
    """(name, net, input shape, T): every net has layers that spike (checked by the test)."""
    torch.manual_seed(0)
    nets = []
    nets.append(("dense_only", _scale(nn.Sequential(
        B(nn.Linear(40, 30, bias=False), C(1.0, 0.0, 0.7), "m"),
        B(nn.Linear(30, 10, bias=False), C(1.0, 0.25, 0.5), "m")), [5, 6]), (40,), 24))
    nets.append(("seed_mnist", _scale(nn.Sequential(
        B(nn.Conv2d(1, 16, 3, padding=1, bias=False), C(1.0, 0.0, 1.0), "m"),
        B(nn.Conv2d(16, 16, 2, stride=2, bias=False), C(1.0, 0.0, 1.0), "m"),
        B(nn.Conv2d(16, 16, 3, padding=1, bias=False), C(1.0, 0.0, 1.0), "m"),
        B(nn.Conv2d(16, 16, 2, stride=2, bias=False), C(1.0, 0.0, 1.0), "m"),
        B(nn.Flatten(), None, "m"),
        B(nn.Linear(784, 128, bias=False), C(1.0, 0.0, 1.0), "m"),
        B(nn.Linear(128, 10, bias=False), C(1.0, 0.0, 1.0), "m")), [6, 5, 5, 5, 0, 5, 5]), (1, 28, 28), 16))
    nets.append(("conv_geometry", _scale(nn.Sequential(
        B(nn.Conv2d(2, 6, (3, 2), stride=(2, 1), padding=(1, 0), bias=False), C(1.0, 0.0, 0.5), "m"),
        B(nn.Conv2d(6, 6, 3, dilation=2, padding=2, groups=3, bias=False), C(1.0, 0.1, 0.5), "m"),
        B(nn.Conv2d(6, 4, (1, 3), stride=(1, 2), bias=False), C(1.0, 0.0, 0.4), "m")), [5, 6, 6]), (2, 9, 8), 20))
    nets.append(("conv_sumpool_odd", _scale(nn.Sequential(
        B(nn.Conv2d(1, 4, 3, padding=1, bias=False), C(1.0, 0.0, 0.6), "m"),
        B(SumPool2d(2), C(1.0, 0.0, 0.9), "m"),  # 7x7 -> 3x3: the incomplete window is dropped
        B(SumPool2d((3, 1), stride=(1, 1)), C(1.0, 0.0, 1.5), "m"),
        B(nn.Flatten(), None, "m"),
        B(nn.Linear(4 * 1 * 3, 5, bias=False), C(1.0, 0.0, 0.5), "m")), [5, 0, 0, 0, 6]), (1, 7, 7), 24))
    nets.append(("biases", _scale(nn.Sequential(
        B(nn.Conv2d(1, 4, 3, padding=1), C(1.0, 0.25, 0.6), "m"),
        B(nn.Flatten(), None, "m"),
        B(nn.Linear(4 * 6 * 6, 8), C(0.5, 0.1, 0.8), "m")), [4, 0, 5]), (1, 6, 6), 20))
    nets.append(("lif_and_if_spikingjelly", None, (20,), 24))
    nets.append(("thresholds_07_and_64", _scale(nn.Sequential(
        B(nn.Linear(30, 20, bias=False), C(1.0, 0.0, 0.7), "m"),
        B(nn.Linear(20, 6, bias=False), C(1.0, 0.0, 64 + 1 / 64), "m")), [5, 60]), (30,), 64))
    nets.append(("per_layer_decays", _scale(nn.Sequential(
        B(nn.Conv2d(2, 4, 3, bias=False), C(0.03, 0.25, 0.5), "m"),
        B(nn.Conv2d(4, 4, 3, bias=False), C(0.25, 0.0, 0.7), "m"),
        B(nn.Flatten(), None, "m"),
        B(nn.Linear(4 * 4 * 4, 6, bias=False), C(0.0, 0.03, 0.5), "m")), [4, 4, 0, 3]), (2, 8, 8), 24))
    with torch.no_grad():
        biases = nets[4][1]
        biases[0].synapse.bias.copy_(torch.tensor([0.2, -0.1, 0.05, 0.3]))
        biases[2].synapse.bias.uniform_(-0.2, 0.3)
    return nets


def _lif_if_net(sj):
    torch.manual_seed(5)
    return _scale(nn.Sequential(
        B(nn.Linear(20, 16, bias=False), sj.neuron.LIFNode(tau=2.0, decay_input=True), "m"),
        B(nn.Linear(16, 12, bias=False), sj.neuron.IFNode(v_threshold=0.7), "m"),
        B(nn.Linear(12, 4, bias=False), sj.neuron.LIFNode(tau=3.0, decay_input=False), "m")), [8, 5, 5])


@pytest.mark.parametrize("name", [z[0] for z in zoo()])
def test_zoo_lava_equals_containers_every_layer(name, sj, tmp_path):
    _, net, in_shape, steps = next(z for z in zoo() if z[0] == name)
    if net is None:
        net = _lif_if_net(sj)
    batch = 2 if name == "seed_mnist" else 3  # several random inputs; the big net costs ~2 s a sample
    x = spikes((steps, batch, *in_shape), 0.3, seed=11)
    with torch.no_grad():
        outs, h = [], x
        for blk in net:
            h = blk(h)
            outs.append(h)
    report = []
    for k, blk in enumerate(net):
        if blk.kind == "flatten":
            continue
        assert outs[k].sum() > 0, f"{name}: layer {k} is silent; the test would prove nothing"
        path = export(net[:k + 1], tmp_path / f"{name}_{k}.net", in_shape)
        y = run_lava(path, x)
        assert y.shape == outs[k].shape
        report.append(f"layer {k}: {int(outs[k].sum())} spikes, {mismatches(y, outs[k])} mismatches")
        assert mismatches(y, outs[k]) == 0, report
    print(name, "; ".join(report))


def test_run_lava_layouts_steps_and_fresh_networks_agree(tmp_path):
    _, net, in_shape, steps = zoo()[4]
    x = spikes((steps, 3, *in_shape), 0.3, seed=3)
    path = export(net, tmp_path / "b.net", in_shape)
    y = run_lava(path, x)
    # NXT in, NXT out
    assert torch.equal(sj2lava.NXT_to_TNX(run_lava(path, sj2lava.TNX_to_NXT(x), layout="NXT")), y)
    # samples run one at a time in fresh networks give the same spikes: the state reset is complete
    for i in range(3):
        assert torch.equal(run_lava(path, x[:, i:i + 1]), y[:, i:i + 1])
    # more steps than input: the input is zero afterwards
    longer = run_lava(path, x[:, :1], num_steps=steps + 5)
    with torch.no_grad():
        sj2lava.reset_net(net)
        ref = net(torch.cat([x[:, :1], torch.zeros(5, 1, *in_shape)]))
    assert torch.equal(longer, ref)


def test_input_shape_is_remembered_and_needed(tmp_path):
    net = nn.Sequential(B(nn.Conv2d(1, 2, 3), C(1.0, 0.0), "m"))
    with pytest.raises(ExportError, match="input_shape"):
        export(net, tmp_path / "a.net")
    net(torch.zeros(2, 1, 1, 5, 6))
    assert load(export(net, tmp_path / "a.net")).input_shape == (1, 5, 6)
    assert not (tmp_path / "a.net.tmp").exists()


def test_file_schema_is_netx_compatible(tmp_path):
    _, net, in_shape, _ = zoo()[3]
    path = export(net, tmp_path / "p.net", in_shape)
    with h5py.File(path, "r") as f:
        types = [f[f"layer/{i}/type"][0].decode() for i in range(len(f["layer"]))]
        assert types == ["input", "conv", "conv", "conv", "flatten", "dense"]
        pool = f["layer/2"]
        assert int(pool["groups"][()]) == 4 and pool["weight"].shape == (4, 1, 2, 2)
        assert set(np.unique(pool["weight"][()])) == {64}
        assert tuple(f["layer/0/shape"][()]) == (1, 7, 7)
        assert f["layer/1/weight"].dtype.kind == "i"


# ----------------------------------------------------------------- lava-dl's own files
def _lava_dl_file(blocks, path, input_shape=None):
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        offset = 0
        if input_shape is not None:
            g = layer.create_group("0")
            g.create_dataset("type", (1,), "S10", [b"input"])
            g.create_dataset("shape", data=np.array(input_shape))
            offset = 1
        for i, b in enumerate(blocks):
            b.export_hdf5(layer.create_group(f"{i + offset}"))


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_lava_dl_exported_file_loads_inspects_and_runs(kind, tmp_path, slayer):
    torch.manual_seed(7)
    if kind == "dense":
        net = _scale(nn.Sequential(B(nn.Linear(30, 20, bias=False), C(1.0, 0.1, 0.6), "m"),
                                   B(nn.Linear(20, 8, bias=False), C(0.5, 0.2, 0.5), "m")), [6, 6])
        in_shape, file_input = (30,), None
    else:
        net = _scale(nn.Sequential(B(nn.Conv2d(1, 4, 3, padding=1, bias=False), C(1.0, 0.0, 0.6), "m"),
                                   B(nn.Flatten(), None, "m"),
                                   B(nn.Linear(4 * 6 * 6, 5, bias=False), C(1.0, 0.1, 0.5), "m")), [5, 0, 5])
        in_shape = file_input = (1, 6, 6)
    blocks = nn.Sequential(*[b.to_lava_block() for b in net])
    x = spikes((20, 2, *in_shape), 0.4, seed=8)
    ref = lava_forward(blocks, x)  # also sets the shapes lava-dl's export needs
    path = tmp_path / "lavadl.net"
    _lava_dl_file(blocks, path, file_input)
    spec = load(path)
    assert spec.input_shape == in_shape and "total" in spec.table()
    assert ref.sum() > 0 and mismatches(run_lava(path, x), ref) == 0
    # and sj2lava exports the same lava-dl blocks to an equivalent file
    mine = export(blocks, tmp_path / "mine.net", in_shape)
    assert mismatches(run_lava(mine, x), ref) == 0


def test_lava_dl_pool_file_is_refused_with_the_fix(tmp_path, slayer):
    blk = B(SumPool2d(2), C(1.0, 0.0, 0.5), "m").to_lava_block()
    lava_forward(blk, spikes((4, 1, 2, 4, 4)))
    _lava_dl_file([blk], tmp_path / "pool.net", (2, 4, 4))
    with pytest.raises(NetFileError, match="cannot load 'pool'.*depthwise"):
        load(tmp_path / "pool.net")


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
def _good(tmp_path):
    net = _scale(nn.Sequential(B(nn.Conv2d(1, 2, 3, bias=False), C(1.0, 0.0), "m"), B(nn.Flatten(), None, "m"),
                               B(nn.Linear(18, 3), C(1.0, 0.0), "m")), [3, 0, 3])
    return export(net, tmp_path / "good.net", (1, 5, 5))


def _edit(path, fn):
    with h5py.File(path, "a") as f:
        fn(f)
    return path


def _rewrite(path, data: bytes):
    path.write_bytes(data)
    return path


MALFORMED = {
    "truncated": (lambda p: _rewrite(p, p.read_bytes()[:700]), "not a readable HDF5"),
    "not_hdf5": (lambda p: _rewrite(p, b"hello"), "not a readable HDF5"),
    "missing_layer0": (lambda p: _edit(p, lambda f: f["layer"].pop("0") and None), "missing layer/0"),
    "non_contiguous": (lambda p: _edit(p, lambda f: f["layer"].move("3", "7")), "missing layer/3"),
    "string_for_number": (lambda p: _edit(p, lambda f: (f["layer/1"].pop("stride"),
                                                        f["layer/1"].create_dataset("stride", data="abc"))),
                          "'stride' should be numeric"),
    "wrong_weight_shape": (lambda p: _edit(p, lambda f: (f["layer/3"].pop("weight"),
                                                         f["layer/3"].create_dataset("weight", data=np.ones((3, 17))))),
                           "takes 17 inputs"),
    "non_integer_weight": (lambda p: _edit(p, lambda f: (
        f["layer/1"].pop("weight"), f["layer/1"].create_dataset("weight", data=np.full((2, 1, 3, 3), 0.5)))),
                           "must hold integers"),
    "unknown_type": (lambda p: _edit(p, lambda f: (f["layer/2"].pop("type"),
                                                   f["layer/2"].create_dataset("type", (1,), "S10", [b"warp"]))),
                     "unknown layer type 'warp'"),
    "no_layer_group": (lambda p: _edit(p, lambda f: f.pop("layer") and None), "no 'layer' group"),
    "missing_neuron": (lambda p: _edit(p, lambda f: f["layer/3"].pop("neuron") and None), "missing group 'neuron'"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_files_give_net_file_error_and_exit_2(case, tmp_path, capsys):
    damage, match = MALFORMED[case]
    path = damage(_good(tmp_path))
    with pytest.raises(NetFileError, match=match) as e:
        load(path)
    assert str(path) in str(e.value)
    from sj2lava.cli import main

    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and match.split("'")[0][:8] in err


# ----------------------------------------------------------------- CLI
def test_cli_inspect_and_run(tmp_path, capsys):
    from sj2lava.cli import main

    path = _good(tmp_path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    for word in ("conv", "flatten", "dense", "total", "iD=4096", "kernel", "synapses"):
        assert word in out
    x = spikes((10, 2, 1, 5, 5), 0.5, seed=1)
    np.save(tmp_path / "x.npy", x.numpy())
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert np.array_equal(y, run_lava(path, x).numpy())
    np.save(tmp_path / "bad.npy", np.full((10, 2, 1, 5, 5), 0.5, dtype=np.float32))
    assert main(["run", str(path), "--input", str(tmp_path / "bad.npy")]) == 2
    assert "binary spikes" in capsys.readouterr().err
    assert main(["run", str(path), "--input", str(tmp_path / "missing.npy")]) == 2
    assert main(["inspect", str(tmp_path / "nope.net")]) == 2
    with pytest.raises(SystemExit) as e:
        main(["run", str(path)])
    assert e.value.code == 2


def test_run_lava_after_the_process_fixed_its_multiprocessing_context(tmp_path):
    """tqdm or a DataLoader fix the start method before Lava's import calls set_start_method('fork')."""
    import subprocess
    import sys

    path = _good(tmp_path)
    code = (
        "import multiprocessing as mp, torch, sj2lava\n"
        "mp.RLock()  # what tqdm does: fixes the default context\n"
        f"y = sj2lava.run_lava({str(path)!r}, (torch.rand(6, 1, 1, 5, 5) < 0.5).float())\n"
        "print(tuple(y.shape))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("(6, 1, 3)")


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
