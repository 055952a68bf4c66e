"""sj2lava.netx: the .net schema (atomic writer, validating reader), its weight rules, and running a file in Lava."""

import h5py
import numpy as np
import pytest
import torch
from conftest import small_net_file, spikes, zoo

import sj2lava
from sj2lava import NetFileError, export, load, netx, run_lava
from sj2lava.netx import hdf5


def test_write_then_load_round_trips_every_zoo_net(sj, tmp_path):
    for name, net, in_shape, _ in zoo():
        if net is None:
            continue
        spec = sj2lava.to_spec(net, in_shape)
        path = netx.write(spec, tmp_path / f"{name}.net")
        back = netx.load(path)
        assert back.input_shape == spec.input_shape and len(back.layers) == len(spec.layers), name
        for a, b in zip(spec.layers, back.layers):
            assert a.kind == b.kind and a.in_shape == b.in_shape and a.out_shape == b.out_shape, name
            for field in ("weight", "bias"):
                x, y = getattr(a, field, None), getattr(b, field, None)
                assert (x is None and y is None) or np.array_equal(x, y), (name, field)
        assert back.table() == spec.table()


def test_the_package_names_its_parts_and_loads_lava_only_on_use():
    assert netx.load is netx.hdf5.load and netx.write is netx.hdf5.write
    assert netx.run_lava is sj2lava.run_lava
    with pytest.raises(AttributeError):
        netx.no_such_thing  # noqa: B018


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
    "missing_neuron": (lambda p: _edit(p, lambda f: f["layer/1"].pop("neuron") and None), "missing group 'neuron'"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_files_give_net_file_error_and_exit_2(case, tmp_path, capsys):
    damage, match = MALFORMED[case]
    path = damage(small_net_file(tmp_path))
    with pytest.raises(NetFileError, match=match) as e:
        load(path)
    assert str(path) in str(e.value)
    from sj2lava.cli import main

    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and match.split("'")[0][:8] in err


def test_run_lava_after_the_process_fixed_its_multiprocessing_context(tmp_path):
    """tqdm or a DataLoader fix the start method before Lava's import calls set_start_method('fork')."""
    import subprocess
    import sys

    path = small_net_file(tmp_path)
    code = (
        "import multiprocessing as mp, torch, sj2lava\n"
        "mp.RLock()  # what tqdm does: fixes the default context\n"
        f"y = sj2lava.run_lava({str(path)!r}, (torch.rand(6, 1, 1, 5, 5) < 0.5).float())\n"
        "print(tuple(y.shape))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("(6, 1, 3)")


# ----------------------------------------------------------------- every field honoured, noted or refused
def _with_field(tmp_path, layer, name, data):
    path = small_net_file(tmp_path)
    with h5py.File(path, "r+") as f:
        f[f"layer/{layer}"].create_dataset(name, data=data)
    return path


@pytest.mark.parametrize("layer, name, data, match", [
    (1, "delay", 1, "axonal delays, which NetX applies to dense layers only"),
    (1, "neuron/messageBits", 3, "reads as an HDF5 group"),
    (3, "neuron/messageBits", 0, "reads as an HDF5 group"),
    (3, "neuron/gradedSpike", True, "graded spikes"),
    (1, "frobnicate", 1, "'frobnicate' is not one sj2lava understands for a conv layer"),
    (3, "neuron/tau", 2.0, "'neuron/tau' is not one sj2lava understands"),
    (1, "inChannels", 3, "'inChannels' says 3, but"),
    (3, "outFeatures", 4, "'outFeatures' says 4, but"),
])
def test_a_field_sj2lava_does_not_honour_is_refused_by_name(tmp_path, capsys, layer, name, data, match):
    from sj2lava.cli import main

    if name in ("inChannels", "outFeatures", "neuron/gradedSpike"):  # sj2lava writes these: overwrite them
        path = small_net_file(tmp_path)
        with h5py.File(path, "r+") as f:
            del f[f"layer/{layer}/{name}"]
            f[f"layer/{layer}"].create_dataset(name, data=data)
    else:
        path = _with_field(tmp_path, layer, name, data)
    with pytest.raises(NetFileError, match=match) as e:
        load(path)
    assert f"layer/{layer}" in str(e.value) and str(path) in str(e.value)
    assert main(["inspect", str(path)]) == 2
    assert match.split("'")[0] in capsys.readouterr().err


def test_fields_netx_does_not_read_are_accepted_with_a_note(tmp_path):
    path = small_net_file(tmp_path)
    with h5py.File(path, "r+") as f:
        for i in (1, 3):
            f[f"layer/{i}"].create_dataset("neuron/scaleRho", data=1.0)
            f[f"layer/{i}"].create_dataset("neuron/wgtExp", data=2)
    spec = load(path)
    assert len(spec.notes) == 2 and all("not read by NetX" in n and "layer 1, 3" in n for n in spec.notes)
    assert "note: layer 1, 3: field 'neuron/wgtExp'" in spec.table()
    assert load(small_net_file(tmp_path)).notes == []  # sj2lava's own files carry nothing NetX ignores


def test_delays_in_every_form_netx_accepts_and_its_clip_at_62(tmp_path):
    path = small_net_file(tmp_path)
    for data, want in [(5, np.full((3, 18), 5)), (np.arange(3), np.repeat(np.arange(3)[:, None], 18, 1)),
                       (np.arange(18), np.repeat(np.arange(18)[None], 3, 0)), (np.arange(54).reshape(3, 18), None)]:
        with h5py.File(path, "r+") as f:
            if "delay" in f["layer/3"]:
                del f["layer/3/delay"]
            f["layer/3"].create_dataset("delay", data=data)
        if want is None:  # up to 53: the ones above 62 do not occur, so nothing is clipped
            want = np.arange(54).reshape(3, 18)
        assert np.array_equal(load(path).layers[-1].delay, want)
    with h5py.File(path, "r+") as f:
        del f["layer/3/delay"]
        f["layer/3"].create_dataset("delay", data=np.array([10, 63, 70]))
    with pytest.warns(UserWarning, match="clips them to 62"):
        spec = load(path)
    assert spec.layers[-1].delay.max() == 62 and any("clips them to 62" in n for n in spec.notes)
    x = spikes((70, 1, 1, 5, 5), 0.6, seed=7)
    with pytest.warns(UserWarning):
        assert torch.equal(sj2lava.emulate(path, x), run_lava(path, x))  # NetX clips them the same way
    with h5py.File(path, "r+") as f:
        del f["layer/3/delay"]
        f["layer/3"].create_dataset("delay", data=np.array([1, -1, 0]))
    with pytest.raises(NetFileError, match="negative delays"):
        load(path)



def test_a_flat_dense_weight_is_reshaped_as_netx_does(tmp_path):
    path = small_net_file(tmp_path)
    x = spikes((10, 2, 1, 5, 5), 0.5, seed=4)
    ref, ref_out = load(path), sj2lava.emulate(path, x)
    with h5py.File(path, "r+") as f:
        w = f["layer/3/weight"][()]
        del f["layer/3/weight"]
        f["layer/3"].create_dataset("weight", data=w.reshape(-1))
    flat = load(path)
    assert np.array_equal(flat.layers[-1].weight, w) and flat.table() == ref.table()
    assert torch.equal(sj2lava.emulate(path, x), ref_out)
    assert torch.equal(run_lava(path, x), ref_out)


def test_input_neurons_are_read_written_and_read_again_identically(netx_files, tmp_path):
    spec = load(netx_files / "tiny.net")
    first = spec.layers[0]
    assert isinstance(first, netx.spec.InputNeurons) and first.transform == (36, 34)
    assert any("transform (weight 36, bias 34)" in n and "not applied" in n for n in spec.notes)
    back = load(netx.write(spec, tmp_path / "tiny.net"))
    again = back.layers[0]
    assert back.input_shape == spec.input_shape and again.transform == first.transform
    assert again.out_shape == first.out_shape
    for f in ("i_decay", "v_decay", "v_th_mant"):
        assert np.array_equal(getattr(again.neuron, f), getattr(first.neuron, f))
    for a, b in zip(spec.layers[1:], back.layers[1:]):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    bias = torch.randint(0, 60, (2, 3, 16, 16))
    assert torch.equal(sj2lava.emulate(spec, input_bias=bias, num_steps=12),
                       sj2lava.emulate(back, input_bias=bias, num_steps=12))
    with pytest.raises(sj2lava.UnsupportedLayerError, match="input neurons"):
        sj2lava.to_nir(spec, dt=1.0)


def test_run_lava_takes_a_run_configuration(tmp_path):
    from lava.magma.core.run_configs import Loihi2SimCfg

    path = small_net_file(tmp_path)
    x = spikes((8, 1, 1, 5, 5), 0.6, seed=3)
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    assert torch.equal(run_lava(path, x, run_cfg=cfg), run_lava(path, x))
    with pytest.raises(AttributeError, match="select"):  # the configuration is really handed to Lava
        run_lava(path, x, run_cfg=object())


def test_run_lava_records_and_resets_as_lavas_own_ring_buffers_monitors_and_var_set(netx_files, tmp_path, monkeypatch):
    """run_lava records and resets a run with Lava processes of its own that write into files (Lava's RingBuffer,
    Monitor and Var.set move one value per channel message). Lava's own way, ours, and ours with every Var set by
    a probe record the same, to the bit, on every layer's output, u, v and sigma: tiny.net (input neurons with a
    bias image per sample and a_in, two samples, periodic resets) and a random SDNN net (graded messages, Delta
    input, Sigma output, CUBA between)."""
    from sj2lava.netx import lava as lava_module
    from sj2lava.netx.random_nets import random_spec

    bias = torch.from_numpy(np.load(netx_files / "gts" / "tinynet" / "input_bias.npy").astype(np.int64)
                            .transpose(2, 1, 0).copy())
    a_in = (torch.rand(6, 2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) < 0.3).int() * 3
    sdnn = hdf5.write(random_spec(25, delays=0.5, inputs=0.25, sdnn=0.3), tmp_path / "s.net")
    rng = np.random.default_rng(25)
    graded = torch.from_numpy(rng.integers(-20, 41, (8, 2, *load(sdnn).input_shape)))
    runs = [(netx_files / "tiny.net", a_in, dict(input_bias=torch.stack([bias, bias.flip(2)]), reset_interval=4)),
            (sdnn, graded, {})]
    want = ("spikes", "voltage", "current", "sigma")
    for path, x, kw in runs:
        ours = run_lava(path, x, record=want, **kw)  # the small Vars set from the host between the samples
        for how, value in (("HOST_SET_MAX", 0), ("HOST_IO", True)):  # every Var set by a probe; all Lava's own way
            with monkeypatch.context() as m:
                m.setattr(lava_module, how, value)
                theirs = run_lava(path, x, record=want, **kw)
            assert ours.keys() == theirs.keys()
            for key in ours:
                for k, (a, b) in enumerate(zip(ours[key], theirs[key]) if isinstance(ours[key], list) else
                                           [(ours[key], theirs[key])]):
                    same = (a is None) == (b is None) and (a is None or (a.dtype == b.dtype and torch.equal(a, b)))
                    assert same, (path.name, how, key, k)
        assert sum(int((s != 0).sum()) for s in ours["layer_spikes"]) > 50, path.name
        assert any(v is not None and bool((v != 0).any()) for v in ours.get("sigma", [])) or path == runs[0][0]


def test_a_dense_layer_without_neuron_gets_netx_default_integrator(tmp_path):
    path = small_net_file(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["layer/3/neuron"]
    spec = load(path)
    n = spec.layers[-1].neuron
    assert (int(n.i_decay), int(n.v_decay), int(n.v_th_mant)) == (0, 4096, 1 << 17)
    assert any("default integrator" in note for note in spec.notes)
    x = spikes((12, 2, 1, 5, 5), 0.6, seed=5)
    want = ("spikes", "voltage", "current")
    lava, emu = run_lava(path, x, record=want), sj2lava.emulate(path, x, record=want)
    for key in ("layer_spikes", "voltage", "current"):
        for a, b in zip(emu[key], lava[key]):
            assert torch.equal(a.long(), b.long()), key
    assert emu["layer_spikes"][-1].sum() == 0 and emu["voltage"][-1].abs().sum() > 0  # it integrates, never fires


def _sdnn_copy(netx_files, tmp_path, fn):
    import shutil

    path = tmp_path / "sdnn.net"
    shutil.copy(netx_files / "gts" / "pilotnet_sdnn" / "square_network.net", path)
    return _edit(path, fn)


def _replace(f, name, data):
    del f[name]
    f.create_dataset(name, data=data)


@pytest.mark.parametrize("edit, where, match", [
    (lambda f: f["layer/1/neuron"].create_dataset("sigma_output", data=False), "layer/1",
     "'neuron/sigma_output' is false"),
    (lambda f: _replace(f, "layer/2/neuron/activation", b"tanh"), "layer/2", "always apply ReLU"),
    (lambda f: _replace(f, "layer/3/neuron/vThMant", np.arange(1024)), "layer/3", "one threshold per layer"),
    (lambda f: _replace(f, "layer/1/neuron/type", b"RF"), "layer/1", "resonate-and-fire"),
    (lambda f: _replace(f, "layer/4/neuron/type", b"ALIF"), "layer/4", "'ALIF' is not one NetX builds"),
    (lambda f: _replace(f, "layer/4/bias", np.full(64, 1 << 19)), "layer/4", "for SDNN neurons"),
    (lambda f: (f["layer/4/neuron"].create_dataset("sigma_output", data=True)), "layer/4",
     "Sigma output layer: NetX passes it to Lava's Sigma"),
])
def test_sdnn_fields_netx_cannot_build_as_written_are_refused(netx_files, tmp_path, edit, where, match):
    path = _sdnn_copy(netx_files, tmp_path, edit)
    with pytest.raises(NetFileError, match=match) as e:
        load(path)
    assert where in str(e.value) and str(path) in str(e.value)


def test_sdnn_fields_netx_does_not_read_are_noted(netx_files):
    spec = load(netx_files / "gts" / "pilotnet_sdnn" / "network.net")
    roles = [l.neuron.role for l in spec.layers if l.kind != "flatten"]
    assert roles == ["delta"] + ["sigma_delta"] * 7 + ["sigma"]
    notes = "\n".join(spec.notes)
    assert "layer 0, 9: field 'neuron/activation'" in notes and "layer 9: field 'neuron/vThMant'" in notes
    table = spec.table()
    assert "Delta th=0 mb=16" in table and "SigmaDelta relu th=13 mb=16" in table and "Sigma mb=16" in table


@pytest.mark.parametrize("name, options", [
    ("tiny.net", {}), ("mnist.net", {}), ("gts/ntidigits/ntidigits.net", {"num_layers": 5}),
    ("gts/pilotnet_lif/network.net", {}), ("gts/pilotnet_sdnn/network.net", {}),
    ("gts/pilotnet_sdnn/square_network.net", {}),
])
def test_lava_dl_files_round_trip_identically(netx_files, tmp_path, name, options):
    """load -> write -> load gives the same spec (every shape, array, neuron and delay) for each of lava-dl's files."""
    from sj2lava.emulator.compiled import fingerprint

    spec = load(netx_files / name, **options)
    back = load(netx.write(spec, tmp_path / "back.net"))
    assert fingerprint(back) == fingerprint(spec)
    assert back.table().split("note:")[0].strip() == spec.table().split("note:")[0].strip()
    if name.startswith("gts/pilotnet_sdnn"):
        with pytest.raises(ValueError, match="graded messages at its input"):
            netx.write(load(netx_files / name, skip_layers=1), tmp_path / "skipped.net")


def _rf_file(path, neuron_type=b"RF_PHASE", sin=1500, extra=None):
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g.create_dataset("type", (1,), "S10", [b"input"])
        g.create_dataset("shape", data=np.array([8]))
        g = f.create_group("layer/1")
        g.create_dataset("type", (1,), "S10", [b"dense"])
        g.create_dataset("shape", data=np.array([3]))
        g.create_dataset("weight/real", data=np.arange(24).reshape(3, 8) * 2)
        g.create_dataset("weight/imag", data=-np.arange(24).reshape(3, 8))
        g.create_dataset("neuron/type", (1,), "S16", [neuron_type])
        for k, v in dict(sinDecay=sin, cosDecay=3000, vThMant=100).items():
            g.create_dataset(f"neuron/{k}", data=v)
        for name, data in (extra or {}).items():
            g.create_dataset(name, data=data)
    return path


def test_rf_layers_are_read_with_lava_s_decays_and_written_back(tmp_path):
    spec = load(_rf_file(tmp_path / "rf.net", sin=np.array([-4095, 1500, 2000])))
    layer = spec.layers[0]
    assert layer.weight_imag.shape == layer.weight.shape == (3, 8) and not layer.neuron.izhikevich
    assert "dense complex" in spec.table() and "RF sin=-4095..2000 cos=3000 th=100" in spec.table()
    assert any("float round trip of the RF decays gives Lava sinDecay changed in 1 neurons by up to 1" in n
               for n in spec.notes)
    back = load(netx.write(spec, tmp_path / "back.net"))
    assert np.array_equal(back.layers[0].weight_imag, layer.weight_imag) and back.table() == spec.table()
    assert load(_rf_file(tmp_path / "iz.net", b"RF_IZHIKEVICH")).layers[0].neuron.izhikevich


@pytest.mark.parametrize("neuron_type, extra, match", [
    (b"RF_PHASE", {"bias": np.ones(3)}, "a bias, which NetX does not give a complex"),
    (b"RF_PHASE", {"delay": np.ones(3)}, "axonal delays, which NetX does not give a complex"),
    (b"CUBA", {}, "fails to connect them to CUBA neurons"),
    (b"RF_PHASE", {"weight/extra": np.ones(3)}, "must hold 'real' and 'imag'"),
])
def test_complex_layers_netx_cannot_run_as_written_are_refused(tmp_path, neuron_type, extra, match):
    path = _rf_file(tmp_path / "rf.net", neuron_type, extra=extra)
    if neuron_type == b"CUBA":
        with h5py.File(path, "r+") as f:
            for k, v in dict(iDecay=0, vDecay=0).items():
                f["layer/1/neuron"].create_dataset(k, data=v)
            for k in ("sinDecay", "cosDecay"):
                del f[f"layer/1/neuron/{k}"]
    with pytest.raises(NetFileError, match=match) as e:
        load(path)
    assert "layer/1" in str(e.value)


def test_rf_neurons_without_complex_weights_are_refused(tmp_path):
    path = small_net_file(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["layer/1/neuron/type"]
        f["layer/1/neuron"].create_dataset("type", (1,), "S16", [b"RF_PHASE"])
    with pytest.raises(NetFileError, match="layer/1.*only on dense layers with weight/real and weight/imag"):
        load(path)
