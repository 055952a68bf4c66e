"""The emulator against real Lava (Loihi2SimCfg fixed_pt): spikes, voltages and currents, every layer."""
import warnings

import numpy as np
import pytest
import torch
from conftest import lava_dl_file, lava_forward, lif_if_net, mismatches, scale_weights, spikes, zoo
from torch import nn

import sj2lava
from sj2lava import emulate, evaluate, export, run_lava
from sj2lava.emulator import ckernel
from sj2lava.netx import hdf5
from sj2lava.netx.random_nets import random_spec
from sj2lava.netx.weights import lava_dense_weights, netx_weight_bits

BACKENDS = ["torch", pytest.param("events", marks=pytest.mark.skipif(not ckernel.available(), reason="no C compiler"))]


@pytest.mark.parametrize("name", [z[0] for z in zoo()])
def test_zoo_spikes_voltages_currents_equal_lava(name, sj, tmp_path):
    _, net, in_shape, steps = next(z for z in zoo() if z[0] == name)
    net = net if net is not None else lif_if_net(sj)
    batch = 1 if name == "seed_mnist" else 2  # Lava's monitors make the big net slow
    x = spikes((steps, batch, *in_shape), 0.3, seed=11)
    path = export(net, tmp_path / f"{name}.net", in_shape)
    want = ("spikes", "voltage", "current")
    emu, lava = emulate(path, x, record=want), run_lava(path, x, record=want)
    for key in ("layer_spikes", "voltage", "current"):
        for k, (a, b) in enumerate(zip(emu[key], lava[key])):
            assert a.shape == b.shape and mismatches(a.long(), b.long()) == 0, (name, key, k)
    assert all(s.sum() > 0 for s in emu["layer_spikes"])
    assert any(v.abs().sum() > 0 for v in emu["voltage"])
    with torch.no_grad():  # and the emulator equals the containers the file came from
        assert torch.equal(emu["spikes"], net(x))


@pytest.mark.parametrize("seed", range(12))
# NetX divides 127 by a layer's max weight; when that is 0 numpy warns (and NetX, like the emulator, goes on)
@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")
def test_random_nets_equal_lava_every_layer(seed, tmp_path):
    """A seeded subset of `make verify-emulator` (200 nets there)."""
    spec = random_spec(seed)
    path = hdf5.write(spec, tmp_path / "r.net")
    rng = np.random.default_rng(10_000 + seed)
    steps = int(rng.integers(8, 21))
    x = torch.from_numpy((rng.random((steps, 2, *spec.input_shape)) < rng.uniform(0.1, 0.7)).astype(np.float32))
    lava = run_lava(path, x, all_layers=True)
    emu = emulate(path, x, record=("layer_spikes",))["layer_spikes"]
    assert [mismatches(a, b) for a, b in zip(emu, lava)] == [0] * len(lava)


def test_random_nets_cover_the_corners():
    """The generator really makes the hard cases the issue lists."""
    specs = [random_spec(s) for s in range(60)]
    layers = [l for s in specs for l in s.layers]
    kinds = {l.kind for l in layers}
    assert kinds == {"conv", "dense", "flatten"}
    assert any(getattr(l, "weight_rec", None) is not None for l in layers)
    dense = [l for l in layers if l.kind == "dense"]
    assert any(l.weight.max() <= 0 and l.weight.min() == -256 for l in dense)  # NetX's lossy case
    assert any((l.weight == 254).sum() > 3 for l in dense)  # saturation
    assert any(l.bias is not None for l in layers if l.kind != "flatten")
    decays = {int(l.neuron.i_decay) for l in layers if l.kind != "flatten"}
    assert 0 in decays and 4096 in decays


def test_lava_dl_files_emulate_like_lava_dl(tmp_path, slayer):
    torch.manual_seed(7)
    B, C = sj2lava.BlockContainer, sj2lava.CubaLIFNode
    net = scale_weights(nn.Sequential(B(nn.Linear(30, 20, bias=False), C(1.0, 0.1, 0.6), "m"),
                               B(nn.Linear(20, 8, bias=False), C(0.5, 0.2, 0.5), "m")),
                 [6, 6])
    blocks = nn.Sequential(*[b.to_lava_block() for b in net])
    x = spikes((20, 3, 30), 0.4, seed=8)
    ref = lava_forward(blocks, x)
    lava_dl_file(blocks, tmp_path / "l.net")
    assert ref.sum() > 0 and mismatches(emulate(tmp_path / "l.net", x), ref) == 0


def test_weight_pipeline_reproduces_netx_precision_loss():
    w = np.array([[-256, -2, 0], [-4, -6, -8]])
    scaled, bits, exp = netx_weight_bits(w)
    lava_w = lava_dense_weights(scaled, bits) >> -exp if exp < 0 else lava_dense_weights(scaled, bits)
    assert lava_w[0, 0] == -255  # Lava clips the inhibitory -256 to -255: why export refuses such layers
    with pytest.raises(ValueError, match="all-zero"):
        netx_weight_bits(np.zeros((2, 2)))


def test_batching_layouts_devices_and_spec_input(tmp_path):
    _, net, in_shape, steps = zoo()[3]
    x = spikes((steps, 5, *in_shape), 0.3, seed=2)
    path = export(net, tmp_path / "p.net", in_shape)
    full = emulate(path, x)
    assert torch.equal(emulate(path, x, batch_size=2), full)
    assert torch.equal(emulate(sj2lava.load(path), x), full)
    assert torch.equal(sj2lava.NXT_to_TNX(emulate(path, sj2lava.TNX_to_NXT(x), layout="NXT")), full)
    for i in range(5):  # every sample starts from zero state
        assert torch.equal(emulate(path, x[:, i:i + 1]), full[:, i:i + 1])


@pytest.mark.parametrize("bad,match", [
    (lambda x: x[:, :, :, :5], "each sample has shape"),
    (lambda x: x * 0.5, "binary spikes"),
    (lambda x: x.masked_fill(x > 0, float("nan")), "NaN"),
    (lambda x: x.masked_fill(x > 0, -1.0), "binary spikes"),
    (lambda x: x * 2, "binary spikes"),
    (lambda x: x.double() * 0.5, "binary spikes"),
    (lambda x: x[0, 0, 0], "must be \\[T, N"),
])
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_bad_input_is_refused_before_work(bad, match, backend, tmp_path):
    _, net, in_shape, steps = zoo()[3]
    path = export(net, tmp_path / "p.net", in_shape)
    with pytest.raises(ValueError, match=match):
        emulate(path, bad(spikes((steps, 2, *in_shape), 0.3)), backend=backend)
    with pytest.raises(ValueError, match="record"):
        emulate(path, spikes((steps, 2, *in_shape)), record=("spikes", "weights"))


def test_unsupported_layer_is_a_net_file_error(tmp_path, slayer):
    blk = sj2lava.BlockContainer(sj2lava.SumPool2d(2), sj2lava.CubaLIFNode(1.0, 0.0, 0.5), "m").to_lava_block()
    lava_forward(blk, spikes((4, 1, 2, 4, 4)))
    lava_dl_file([blk], tmp_path / "pool.net", (2, 4, 4))
    with pytest.raises(sj2lava.NetFileError, match="pool"):
        emulate(tmp_path / "pool.net", spikes((4, 1, 2, 4, 4)))


def test_evaluate_emulator_and_lava_agree(tmp_path):
    torch.manual_seed(0)
    _, net, in_shape, steps = zoo()[0]
    path = export(net, tmp_path / "d.net", in_shape)
    x = torch.rand(12, *in_shape)
    y = torch.randint(0, 10, (12,))
    emu = evaluate(path, (x, y), steps=steps, progress=False)
    lava = evaluate(path, (x, y), steps=steps, backend="lava", progress=False)
    assert emu.samples == 12 and emu.accuracy == lava.accuracy and emu.per_class == lava.per_class
    assert sum(n for _, n in emu.per_class.values()) == 12 and "accuracy" in str(emu)
    dataset = [(x[i], int(y[i])) for i in range(12)]
    assert evaluate(path, dataset, steps=steps, progress=False, batch_size=5).per_class == emu.per_class
    seq = (torch.rand(steps, 12, *in_shape) < 0.3).float()  # spike sequences [T, N, ...], as a sequence model takes
    by_seq = evaluate(path, (seq, y), steps=steps, progress=False, batch_size=5)
    by_encoder = evaluate(path, (torch.arange(12), y), steps=steps, progress=False, encoder=lambda i: seq[:, i])
    assert by_seq.per_class == by_encoder.per_class and str(by_seq.metrics) == str(by_encoder.metrics)


def test_cli_run_backends_and_eval(tmp_path, capsys):
    from sj2lava.cli import main

    _, net, in_shape, steps = zoo()[3]
    path = export(net, tmp_path / "p.net", in_shape)
    x = spikes((steps, 2, *in_shape), 0.3, seed=1)
    np.save(tmp_path / "x.npy", x.numpy())
    for backend in ("emulator", "lava"):
        assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--backend", backend,
                     "--out", str(tmp_path / f"{backend}.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "emulator.npy"), np.load(tmp_path / "lava.npy"))
    np.savez(tmp_path / "d.npz", x=torch.rand(6, *in_shape).numpy(), y=np.arange(6) % 5)
    assert main(["eval", str(path), "--data", str(tmp_path / "d.npz"), "--steps", str(steps)]) == 0
    assert "accuracy" in capsys.readouterr().out
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    assert main(["eval", str(path), "--data", str(tmp_path / "bad.npz"), "--steps", "4"]) == 2
    assert "needs arrays 'x' and 'y'" in capsys.readouterr().err


def test_verify_emulator_tool_runs():
    """`make verify-emulator` (tools/verify_emulator.py) on its first two seeds: it runs and finds no mismatch."""
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "verify_emulator.py"
    r = subprocess.run([sys.executable, str(tool), "--nets", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "2 random nets" in r.stdout and "0 nets with mismatches" in r.stdout


@pytest.mark.parametrize("seed, interval, offset", [(0, 3, 0), (1, 4, 2), (2, 5, 1), (4, 7, 10)])
@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")
def test_periodic_reset_equals_lava(seed, interval, offset, tmp_path):
    """NetX's reset_interval / reset_offset (LIFReset): every layer's spikes, currents and voltages equal
    Lava's, on both backends, with T not a multiple of the interval and two samples (run_lava pads each
    sample so that both start at the phase of a fresh network)."""
    spec = random_spec(seed)
    path = hdf5.write(spec, tmp_path / "r.net")
    rng = np.random.default_rng(seed)
    steps = interval * 3 + 1
    x = torch.from_numpy((rng.random((steps, 2, *spec.input_shape)) < 0.5).astype(np.float32))
    want = ("spikes", "voltage", "current")
    lava = run_lava(path, x, record=want, reset_interval=interval, reset_offset=offset)
    plain = emulate(path, x, record=want)
    differs = False
    for backend in ("events", "torch"):
        emu = emulate(path, x, record=want, backend=backend, reset_interval=interval, reset_offset=offset)
        for key in ("layer_spikes", "voltage", "current"):
            for k, (a, b) in enumerate(zip(emu[key], lava[key])):
                assert mismatches(a.long(), b.long()) == 0, (backend, key, k)
        differs |= any(not torch.equal(a, b) for a, b in zip(emu["voltage"], plain["voltage"]))
    assert differs  # the resets did something


def test_reset_arguments_are_checked():
    spec = random_spec(0)
    x = torch.zeros(4, 1, *spec.input_shape)
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="reset_interval"):
            emulate(spec, x, reset_interval=bad)
    with pytest.raises(ValueError, match="reset_offset"):
        emulate(spec, x, reset_interval=3, reset_offset=-1)


# ----------------------------------------------------------------- lava-dl's shipped files and ground truths
def _image(path) -> torch.Tensor:
    """An input-bias image stored in Lava's (W, H, C) order, as (C, H, W) integers."""
    return torch.from_numpy(np.load(path).astype(np.int64).transpose(2, 1, 0).copy())


def test_tinynet_equals_its_ground_truth(netx_files):
    """lava-dl's tinynet test, more strictly: the input image as the input neurons' bias, a reset every 17
    steps, output spikes at steps 2..16 equal gt[..., 1:] (every spike of all 36 neurons)."""
    bias = _image(netx_files / "gts" / "tinynet" / "input_bias.npy")
    gt = np.load(netx_files / "gts" / "tinynet" / "output.npy")[0][:, 0, 0, 1:].T  # [15, 36]
    out = emulate(netx_files / "tiny.net", input_bias=bias, num_steps=20, reset_interval=17)
    assert out.shape == (20, 1, 36, 1, 1) and gt.sum() == 92
    assert mismatches(out[2:17, 0].reshape(15, 36), torch.from_numpy(gt).float()) == 0
    no_reset = emulate(netx_files / "tiny.net", input_bias=bias, num_steps=20)
    assert mismatches(no_reset[2:17, 0].reshape(15, 36), torch.from_numpy(gt).float()) == 46


def test_pilotnet_lif_equals_the_loihi2_hardware_ground_truth(netx_files):
    """PilotNet-LIF as lava-dl's hardware test drives it (image as the input bias, reset every 16 steps, read at
    step 15): u equals the Loihi 2 chip's in all 9 layers it recorded; v wherever the neuron did not spike at
    the read step (the chip keeps v there, Lava and sj2lava reset it to 0), except the integrating output
    layer fc-3, where Lava's CPU model itself differs from the chip (the emulator follows Lava)."""
    folder = netx_files / "gts" / "pilotnet_lif"
    out = emulate(folder / "network.net", input_bias=_image(folder / "image.npy"), num_steps=15,
                  reset_interval=16, record=("spikes", "voltage", "current"))
    names = ["input"] + [f"conv-{i}" for i in range(5)] + [f"fc-{i}" for i in range(4)]
    compared = 0
    for k, name in enumerate(names):
        if not (folder / f"{name}-u.npy").is_file():
            continue
        to_lava = lambda a: a.numpy().transpose(*reversed(range(a.dim())))  # noqa: E731  (C, H, W) -> (W, H, C)
        u, v, s = (to_lava(out[key][k][14, 0]) for key in ("current", "voltage", "layer_spikes"))
        gu, gv = (np.load(folder / f"{name}-{key}.npy")[..., 14] for key in ("u", "v"))
        assert np.array_equal(u.reshape(gu.shape), gu), name
        if name != "fc-3":
            quiet = s.reshape(gv.shape) == 0
            assert np.array_equal(v.reshape(gv.shape)[quiet], gv[quiet]), name
            assert (~quiet).sum() == (v.reshape(gv.shape) != gv).sum(), name  # the spiking ones, exactly
        compared += gu.size
    assert compared == 76032 + 26460 + 8064 + 5632 + 2560 + 100 + 50 + 10 + 1


def test_input_neurons_equal_lava_with_bias_images_and_a_in(netx_files):
    """tiny.net with two different bias images and integer a_in values on its input neurons, reset every 17
    steps: every layer's spikes, currents and voltages equal Lava's (input neurons driven as NetX offers)."""
    bias = _image(netx_files / "gts" / "tinynet" / "input_bias.npy")
    images = torch.stack([bias, torch.flip(bias, [2])])
    a_in = (torch.rand(20, 2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) < 0.3).int() * 3
    want = ("spikes", "voltage", "current")
    lava = run_lava(netx_files / "tiny.net", a_in, input_bias=images, reset_interval=17, record=want)
    emu = emulate(netx_files / "tiny.net", a_in, input_bias=images, reset_interval=17, record=want)
    for key in ("layer_spikes", "voltage", "current"):
        for k, (a, b) in enumerate(zip(emu[key], lava[key])):
            assert mismatches(a.long(), b.long()) == 0, (key, k)
    assert all(s.sum() > 0 for s in emu["layer_spikes"])


def test_input_neuron_arguments_are_checked(netx_files, tmp_path):
    tiny = netx_files / "tiny.net"
    good = torch.zeros(3, 16, 16, dtype=torch.int64)
    for bad, match in [(good + 5000, "input_bias must lie in"), (good + 0.5, "input_bias must hold integers"),
                       (torch.zeros(2, 3, 16, 15), "input_bias must be")]:
        with pytest.raises(ValueError, match=match):
            emulate(tiny, input_bias=bad, num_steps=4)
    with pytest.raises(ValueError, match="num_steps"):
        emulate(tiny, input_bias=good)
    with pytest.raises(ValueError, match="a_in"):
        emulate(tiny, torch.full((4, 1, 3, 16, 16), float("nan")), input_bias=good)
    spec = random_spec(0)
    with pytest.raises(ValueError, match="has none"):
        emulate(spec, torch.zeros(4, 1, *spec.input_shape), input_bias=torch.zeros(spec.input_shape))


def test_input_neurons_run_on_both_backends_alike(netx_files):
    """The C kernel's input neurons (a_in at the same step, a bias image per sample) against the torch backend:
    tinynet with bias images, a_in and resets (every layer's spikes, u, v), PilotNet-LIF's 10 layers' spikes."""
    bias = _image(netx_files / "gts" / "tinynet" / "input_bias.npy")
    images = torch.stack([bias, torch.flip(bias, [2])])
    a_in = (torch.rand(20, 2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) < 0.3).int() * 3
    want = ("spikes", "voltage", "current")
    for kw in (dict(input_bias=images, num_steps=20, reset_interval=17), dict(x=a_in, input_bias=images)):
        a, b = (emulate(netx_files / "tiny.net", backend=k, record=want, **kw) for k in ("torch", "events"))
        for key in ("layer_spikes", "voltage", "current"):
            assert all(torch.equal(x.long(), y.long()) for x, y in zip(a[key], b[key])), key
    folder = netx_files / "gts" / "pilotnet_lif"
    image = _image(folder / "image.npy")
    kw = dict(input_bias=torch.stack([image, image // 2]), num_steps=16, reset_interval=16, record=("layer_spikes",))
    a, b = (emulate(folder / "network.net", backend=k, **kw)["layer_spikes"] for k in ("torch", "events"))
    assert [mismatches(x, y) for x, y in zip(a, b)] == [0] * 10 and sum(int(x.sum()) for x in a) > 40_000


def test_pilotnet_lif_equals_lava_in_every_layer(netx_files):
    """lava-dl's PilotNet-LIF (158,509 neurons, 14.5 M synapses) driven by its image and by half of it, 16-step
    resets: every spike, u and v of all 10 layers at every step of both samples equals Lava's."""
    folder = netx_files / "gts" / "pilotnet_lif"
    image = _image(folder / "image.npy")
    kw = dict(input_bias=torch.stack([image, image // 2]), num_steps=15, reset_interval=16,
              record=("spikes", "voltage", "current"))
    lava = run_lava(folder / "network.net", **kw)
    emu = emulate(folder / "network.net", **kw)
    for key in ("layer_spikes", "voltage", "current"):
        assert len(lava[key]) == len(emu[key]) == 10
        assert [mismatches(a.long(), b.long()) for a, b in zip(emu[key], lava[key])] == [0] * 10, key
    assert sum(int(s[:, 0].sum()) for s in emu["layer_spikes"]) > 40_000
    assert sum(int(s[:, 1].sum()) for s in emu["layer_spikes"]) > 10_000


def _with_delays(seed):
    return any(getattr(l, "delay", None) is not None for l in random_spec(seed, delays=1.0).layers)


DELAY_SEEDS = [s for s in range(100, 200) if _with_delays(s)][:8]


@pytest.mark.parametrize("seed", DELAY_SEEDS)
@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")
def test_axonal_delays_equal_lava(seed, tmp_path):
    """Dense layers with axonal delays (per synapse, per output, per input or one; up to 62, Lava's DelayDense):
    every layer's spikes, currents and voltages equal Lava's over 70 steps, two samples."""
    spec = random_spec(seed, delays=1.0)
    path = hdf5.write(spec, tmp_path / "d.net")
    assert all(np.array_equal(a.delay, b.delay) for a, b in zip(spec.layers, hdf5.load(path).layers)
               if getattr(a, "delay", None) is not None)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy((rng.random((70, 2, *spec.input_shape)) < 0.4).astype(np.float32))
    want = ("spikes", "voltage", "current")
    lava = run_lava(path, x, record=want)
    emu = emulate(path, x, record=want)
    for key in ("layer_spikes", "voltage", "current"):
        for k, (a, b) in enumerate(zip(emu[key], lava[key])):
            assert mismatches(a.long(), b.long()) == 0, (key, k)
    assert sum(int(s.sum()) for s in emu["layer_spikes"]) > 0


def test_ntidigits_equals_its_ground_truth_at_every_step(netx_files):
    """lava-dl's NTIDIGITS (dense layers with axonal delays 0..62, run as NetX runs it with num_layers=5): the
    output over all 3000 steps equals the shipped ground truth one step later (lava-dl's own test compares one
    column), 22,572 spikes, 0 mismatches."""
    folder = netx_files / "gts" / "ntidigits"
    inp, gt = np.load(folder / "input.npy"), np.load(folder / "output.npy")
    x = torch.from_numpy(inp.T.reshape(3000, 1, 1, 1, 64).astype(np.float32))
    out = emulate(folder / "ntidigits.net", x, num_layers=5)[:, 0].numpy().T  # [242, 3000]
    assert gt.sum() == 22_572 and out.sum() == gt[:, 1:].sum() + out[:, -1].sum()
    assert np.abs(out[:, :-1] - gt[:, 1:]).sum() == 0


def test_axonal_delays_run_on_both_backends_alike(netx_files):
    """The C kernel's DelayDense (a ring of per-delay sums, each shifted apart) against the torch backend:
    NTIDIGITS over 600 steps and random delay nets, every layer's spikes, u and v."""
    folder = netx_files / "gts" / "ntidigits"
    x = torch.from_numpy(np.load(folder / "input.npy")[:, :600].T.reshape(600, 1, 1, 1, 64).astype(np.float32))
    want = ("spikes", "voltage", "current")
    runs = [(folder / "ntidigits.net", x, {"num_layers": 5})]
    for seed in DELAY_SEEDS[:4]:
        spec = random_spec(seed, delays=1.0)
        rng = np.random.default_rng(seed)
        runs.append((spec, torch.from_numpy((rng.random((70, 3, *spec.input_shape)) < 0.4).astype(np.float32)), {}))
    for net, xs, kw in runs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, b = (emulate(net, xs, backend=k, record=want, **kw) for k in ("torch", "events"))
        for key in ("layer_spikes", "voltage", "current"):
            assert all(torch.equal(p.long(), q.long()) for p, q in zip(a[key], b[key])), key
        assert sum(int(s.sum()) for s in a["layer_spikes"]) > 0


def test_ntidigits_equals_lava(netx_files):
    folder = netx_files / "gts" / "ntidigits"
    x = torch.from_numpy(np.load(folder / "input.npy")[:, :400].T.reshape(400, 1, 1, 1, 64).astype(np.float32))
    want = ("spikes", "voltage", "current")
    lava = run_lava(folder / "ntidigits.net", x, num_layers=5, record=want)
    emu = emulate(folder / "ntidigits.net", x, num_layers=5, record=want)
    for key in ("layer_spikes", "voltage", "current"):
        for k, (a, b) in enumerate(zip(emu[key], lava[key])):
            assert mismatches(a.long(), b.long()) == 0, (key, k)


# ----------------------------------------------------------------- sigma-delta (SDNN) nets, graded messages
def _whc_steps(path, steps=None) -> torch.Tensor:
    """A (W, H, C, T) array of Lava's as integers [T, 1, C, H, W], repeated to ``steps`` as a RingBuffer does."""
    a = torch.from_numpy(np.load(path).astype(np.int32).transpose(3, 2, 1, 0).copy()).unsqueeze(1)
    return a if steps is None else a.repeat(-(-steps // a.shape[0]), 1, 1, 1, 1)[:steps]


@pytest.mark.parametrize("backend", BACKENDS)
def test_pilotnet_sdnn_equals_its_ground_truth(netx_files, backend):
    """lava-dl's PilotNet-SDNN (Delta input, 8 ReLU SigmaDelta layers, a Sigma output; 16-bit graded messages)
    driven as lava-dl drives it: its 9 output values equal the shipped ground truth (also the Loihi 2 chip's)."""
    folder = netx_files / "gts" / "pilotnet_sdnn"
    out = emulate(folder / "network.net", _whc_steps(folder / "input.npy", 9), backend=backend)
    gt = np.load(folder / "output.npy")[0]
    assert out.dtype == torch.int32 and out.shape == (9, 1, 1)
    assert np.array_equal(out[:, 0, 0].numpy(), gt) and np.abs(gt).max() > 400_000


@pytest.mark.parametrize("backend", BACKENDS)
def test_pilotnet_sdnn_sigma_equals_the_loihi2_hardware_ground_truth(netx_files, backend):
    """As lava-dl's Loihi 2 test runs it (skip_layers=1: the Delta input's messages act0 feed the first conv):
    the sigma state of all 4 conv layers of the square network equals the chip's at every one of 20 steps,
    and layers 1-2 of the full network equal their shipped sigma at every step."""
    folder = netx_files / "gts" / "pilotnet_sdnn"
    act0 = _whc_steps(folder / "act0.npy")
    square = emulate(folder / "square_network.net", act0[..., :33, :33], skip_layers=1, record=("sigma",),
                     backend=backend)
    full = emulate(folder / "network.net", act0, skip_layers=1, record=("sigma",), backend=backend)
    for out, names in ((square, ["sigma1_square", "sigma2_square", "sigma3_square", "sigma4_square"]),
                       (full, ["sigma1", "sigma2"])):
        for k, name in enumerate(names):
            gt = np.load(folder / f"{name}.npy").transpose(3, 2, 1, 0)  # [T, C, H, W]
            assert np.array_equal(out["sigma"][k][:, 0].numpy(), gt), name
    assert square["sigma"][3].abs().max() > 100_000


def test_pilotnet_sdnn_equals_lava_in_every_layer(netx_files):
    """Two samples (the image and half of it), 12 steps: every message of all 9 layers equals Lava's; the square
    network from its first conv on (graded input): every message and sigma equal Lava's."""
    folder = netx_files / "gts" / "pilotnet_sdnn"
    x = _whc_steps(folder / "input.npy", 12)
    x = torch.cat([x, torch.div(x, 2, rounding_mode="floor")], 1)
    lava = run_lava(folder / "network.net", x, all_layers=True)
    emu = emulate(folder / "network.net", x, record=("layer_spikes",))["layer_spikes"]
    assert [int((a.long() - b.long()).abs().sum()) for a, b in zip(emu, lava)] == [0] * 9
    assert all(a.dtype == torch.int32 for a in lava + emu) and all(int(a.abs().sum()) > 0 for a in emu)
    act0 = _whc_steps(folder / "act0.npy")[:8, :, :, :33, :33]
    want = ("spikes", "sigma")
    lava = run_lava(folder / "square_network.net", act0, skip_layers=1, record=want)
    emu = emulate(folder / "square_network.net", act0, skip_layers=1, record=want)
    for key in ("layer_spikes", "sigma"):
        assert [int((a.long() - b.long()).abs().sum()) for a, b in zip(emu[key], lava[key])] == [0] * 4, key


def test_graded_input_is_checked(netx_files):
    folder = netx_files / "gts" / "pilotnet_sdnn"
    x = _whc_steps(folder / "input.npy", 2)
    for bad, match in [(x + 0.5, "integers"), (x * 0 + (1 << 19), r"shifted by 12 bits"),
                       (x.float() * float("nan"), "NaN")]:
        with pytest.raises(ValueError, match=match):
            emulate(folder / "network.net", bad)
    with pytest.raises(ValueError, match="graded input"):
        emulate(folder / "network.net", x, input_bias=torch.zeros(3, 33, 100))
    with pytest.raises(ValueError, match="16-bit graded messages"):
        emulate(folder / "square_network.net", torch.full((2, 1, 3, 33, 33), 1 << 15), skip_layers=1)
    with pytest.warns(UserWarning, match="ignores the reset for Sigma-Delta"):
        emulate(folder / "network.net", x, reset_interval=4)


@pytest.mark.parametrize("backend", ["events", "torch"])
def test_graded_sums_past_int32_are_refused_by_both_backends(backend):
    """Lava's numpy int32 arithmetic wraps graded sums in an order the emulator does not copy: refused by name,
    whichever sample and step reaches it."""
    from sj2lava.netx.spec import Dense, NetSpec, SigmaDelta

    if backend == "events" and not ckernel.available():
        pytest.skip("no C compiler for the event kernel")
    spec = NetSpec((4,), [Dense((4,), (2,), np.full((2, 4), 127), SigmaDelta(0))], input_message_bits=24)
    ok = emulate(spec, torch.full((3, 2, 4), 1000), backend=backend)
    assert ok[:, 0].tolist() == [[0, 0]] + [[4 * 127 * 1000 >> 6] * 2] * 2
    x = torch.full((2, 5, 4), 1000)
    x[1, 3] = (1 << 23) - 1  # one sample, one step
    with pytest.raises(OverflowError, match="synaptic layer 0 receives graded messages up to 8388607"):
        emulate(spec, x, backend=backend)


SDNN_SEEDS = [4, 15, 25, 35, 62, 90]  # Delta inputs, SigmaDelta conv / dense (delays), Sigma outputs, CUBA between


def test_sdnn_seeds_cover_the_kinds():
    specs = [random_spec(s, delays=0.5, inputs=0.25, sdnn=0.3) for s in SDNN_SEEDS]
    roles = {l.neuron.role for sp in specs for l in sp.layers if l.kind != "flatten" and l.neuron.graded}
    assert roles == {"delta", "sigma_delta", "sigma"}
    assert any(l.kind == "conv" and l.neuron.graded for sp in specs for l in sp.layers)
    assert any(getattr(l, "delay", None) is not None and l.neuron.graded for sp in specs for l in sp.layers)
    assert any(l.kind != "flatten" and not l.neuron.graded for sp in specs for l in sp.layers[1:])


@pytest.mark.parametrize("seed", SDNN_SEEDS)
@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")
def test_random_sdnn_nets_equal_lava(seed, tmp_path):
    """Random nets with sigma-delta layers and graded input: every layer's messages (and spikes of CUBA layers
    between them), sigma and CUBA states equal Lava's, two samples."""
    spec = random_spec(seed, delays=0.5, inputs=0.25, sdnn=0.3)
    path = hdf5.write(spec, tmp_path / "s.net")
    rng = np.random.default_rng(seed)
    longest = max([int(l.delay.max()) for l in spec.layers if getattr(l, "delay", None) is not None], default=0)
    shape = (16 + longest, 2, *spec.input_shape)
    x = torch.from_numpy(rng.integers(-20, 41, shape) * (rng.random(shape) < 0.5))
    want = ("spikes", "voltage", "current", "sigma")
    lava, emu = run_lava(path, x, record=want), emulate(path, x, record=want)
    for key in ("layer_spikes", "voltage", "current", "sigma"):
        for k, (a, b) in enumerate(zip(emu[key], lava[key])):
            assert (a is None) == (b is None), (key, k)
            assert a is None or torch.equal(a.long(), b.long()), (key, k)
    assert sum(int((s != 0).sum()) for s in emu["layer_spikes"]) > 100


RF_SEEDS = [2, 5, 23, 47]  # complex dense layers with RF and RF_IZ neurons, beside CUBA, delays, input neurons


def test_rf_seeds_cover_both_resonators():
    specs = [random_spec(s, delays=0.5, inputs=0.25, sdnn=0.3, rf=0.3) for s in RF_SEEDS]
    kinds = {l.neuron.izhikevich for sp in specs for l in sp.layers if l.kind != "flatten" and l.neuron.kind == "rf"}
    assert kinds == {True, False}


@pytest.mark.parametrize("seed", RF_SEEDS)
@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")
def test_random_rf_nets_equal_lava(seed, tmp_path):
    """Resonate-and-fire layers (NetX's ComplexDense: real and imaginary synapses with their own exponents, Lava's
    fixed-point RF / RF_IZ with NetX's float round trip of the decays): every layer's spikes equal Lava's."""
    spec = random_spec(seed, delays=0.5, inputs=0.25, sdnn=0.3, rf=0.3)
    path = hdf5.write(spec, tmp_path / "r.net")
    rng = np.random.default_rng(seed)
    longest = max([int(l.delay.max()) for l in spec.layers if getattr(l, "delay", None) is not None], default=0)
    x = torch.from_numpy((rng.random((30 + longest, 2, *spec.input_shape)) < 0.4).astype(np.float32))
    kw = {"input_bias": torch.full((2, *spec.input_shape), 200)} if spec.layers[0].kind == "input" else {}
    lava = run_lava(path, x, all_layers=True, **kw)
    emu = emulate(path, x, record=("layer_spikes",), **kw)["layer_spikes"]
    assert [mismatches(a, b) for a, b in zip(emu, lava)] == [0] * len(lava)
    rf = [k for k, l in enumerate(l for l in spec.layers if l.kind != "flatten") if l.neuron.kind == "rf"]
    assert sum(int(emu[k].sum()) for k in rf) > 0


def test_the_aligned_window_reads_each_layer_where_it_answers_the_input(tmp_path):
    """window='aligned': T + L steps run (L = one step per synaptic layer), each layer's T answering steps returned
    (layer k from its latency k + 1): equal to the slices of a run padded by hand, in the emulator and in Lava. A
    run of T <= L steps shows no output of its input and warns."""
    spec = random_spec(5)
    path = hdf5.write(spec, tmp_path / "w.net")
    lat = sj2lava.load(path).latencies
    assert lat == list(range(1, len(lat) + 1))
    x = (torch.rand(6, 2, *spec.input_shape) < 0.5).float()
    full = sj2lava.emulate(path, torch.cat([x, torch.zeros(lat[-1], *x.shape[1:])]), record=("spikes", "layer_spikes"))
    got = sj2lava.emulate(path, x, window="aligned", record=("spikes", "layer_spikes"))
    assert all(torch.equal(g, f[d:d + 6]) for g, f, d in zip(got["layer_spikes"], full["layer_spikes"], lat))
    assert torch.equal(got["spikes"], full["spikes"][lat[-1]:]) and got["spikes"].shape[0] == 6
    assert torch.equal(sj2lava.run_lava(path, x[:, :1], window="aligned"), got["spikes"][:, :1])
    nxt = sj2lava.emulate(path, sj2lava.TNX_to_NXT(x), layout="NXT", window="aligned")
    assert torch.equal(nxt, sj2lava.TNX_to_NXT(got["spikes"]))
    with pytest.warns(UserWarning, match="reads no output of it; use window='aligned'"):
        sj2lava.emulate(path, x[:lat[-1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sj2lava.emulate(path, x[:lat[-1]], window="aligned")
    with pytest.raises(ValueError, match="window must be one of"):
        sj2lava.emulate(path, x, window="last")
