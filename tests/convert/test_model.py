"""convert / to_lava / verify on real SpikingJelly 0.0.0.0.14 models, checked in real Lava."""

import pytest
import torch
from conftest import mismatches, plain_sj_net, spikes
from torch import nn

import sj2lava
from sj2lava import BlockContainer, UnsupportedLayerError, convert, export, run_lava, verify


def test_plain_spikingjelly_net_converts_exports_and_runs_identically(sj, tmp_path):
    net = plain_sj_net(sj)
    x = spikes((20, 4, 1, 12, 12), 0.4, seed=1)
    plain = convert(net, rescale=False)
    assert plain[1].synapse.weight == 0.25 and plain[3].input_scale == 0.5  # LIFNode's 1/tau folded in
    blocks = convert(net)  # float layers rescaled to fill the weight grid (the pool, on the grid, is kept)
    kinds = [b.kind for b in blocks]
    assert kinds == ["conv", "pool", "flatten", "dense"]
    assert blocks[0].synapse.bias is not None  # the BN became a bias
    assert blocks[1].synapse.weight == 0.25 and blocks[1].input_scale == 1.0 and blocks[3].input_scale > 0.5
    assert [n.split(":")[0] for n in blocks.conversion_notes if "scaled by" in n] == ["1", "7"]  # the neurons
    assert isinstance(blocks[0].neuron.surrogate_function, sj.surrogate.ATan)
    assert any("BatchNorm2d folded" in n for n in blocks.conversion_notes)
    path = export(blocks, tmp_path / "plain.net", (1, 12, 12))
    with torch.no_grad():
        y = blocks(x)
    assert y.sum() > 0 and mismatches(run_lava(path, x), y) == 0
    report = verify(net, path, x, labels=torch.arange(4), lava_samples=2, containers=blocks)
    assert report.exact
    flt = report.stage("float")
    assert not flt.exact and flt.mismatches[0] > 0  # the float-vs-Loihi difference is shown, not hidden
    text = str(report)
    assert "delay-aligned" in text and "v >= threshold" in text and "0 mismatches" in text
    assert net[0][1].running_mean.abs().sum() > 0 and isinstance(net[0][1], nn.BatchNorm2d)  # input untouched


def test_the_readme_five_steps_run_as_written_for_a_conv_first_model(sj, tmp_path, monkeypatch):
    """README's path: convert(model, example_input=x), export(blocks, "net.net") with no input shape,
    summary, inspect, run_lava / emulate, verify(model, "net.net", x, labels=y)."""
    from sj2lava.cli import main

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(5)
    L, m = sj.layer, "m"
    model = nn.Sequential(L.Conv2d(1, 4, 3, padding=1, bias=False, step_mode=m), sj.neuron.IFNode(step_mode=m),
                          L.AvgPool2d(2, step_mode=m), L.Flatten(step_mode=m),
                          L.Linear(4 * 4 * 4, 3, bias=False, step_mode=m), sj.neuron.IFNode(step_mode=m))
    with torch.no_grad():
        model[0].weight.mul_(4)
        model[4].weight.mul_(6)
    x = spikes((12, 3, 1, 8, 8), 0.5, seed=6)
    y = torch.tensor([0, 1, 2])
    blocks = sj2lava.convert(model, example_input=x)  # 1
    assert blocks.input_shape == (1, 8, 8)
    sj2lava.export(blocks, "net.net")  # 2
    assert "conv" in sj2lava.summary(blocks) and main(["inspect", "net.net"]) == 0  # 3
    with torch.no_grad():
        out = blocks(x)
    assert out.sum() > 0 and mismatches(sj2lava.run_lava("net.net", x), out) == 0  # 4
    assert mismatches(sj2lava.emulate("net.net", x), out) == 0
    report = sj2lava.verify(model, "net.net", x, labels=y)  # 5
    assert report.exact and "accuracy" in str(report)
    for shape in [(8, 3, 1, 8, 8), (3, 1, 8, 8)]:  # [T, N, *shape] or one static [N, *shape] batch
        assert sj2lava.convert(model, example_input=torch.zeros(shape)).input_shape == (1, 8, 8)
    dense = nn.Sequential(nn.Flatten(), nn.Linear(64, 3), sj.neuron.IFNode())
    assert sj2lava.convert(dense, example_input=torch.zeros(5, 2, 1, 8, 8)).input_shape == (1, 8, 8)


def test_direct_input_runs_everything_before_the_first_neuron_on_the_host(sj, tmp_path):
    """With direct (analog) input, the conv, BatchNorm and max-pool before the first neuron all run on the host in
    float (a max-pool there is exact): one InputBlock whose encoder holds them, exported as input neurons driven by
    its output; the containers, emulator and Lava agree, and the export needs no input shape."""
    torch.manual_seed(4)
    L, m = sj.layer, "m"
    net = nn.Sequential(L.Conv2d(1, 4, 3, padding=1, step_mode=m), L.BatchNorm2d(4, step_mode=m),
                        L.MaxPool2d(2, 2, step_mode=m), sj.neuron.IFNode(step_mode=m), L.Flatten(step_mode=m),
                        L.Linear(4 * 4 * 4, 3, step_mode=m), sj.neuron.IFNode(step_mode=m)).eval()
    with torch.no_grad():
        net[5].weight.mul_(4)
    x = torch.rand(3, 1, 8, 8).unsqueeze(0).repeat(10, 1, 1, 1, 1)  # a static image, T times
    blocks = convert(net, example_input=x, direct_input=True)
    enc = blocks[0].encoder
    assert isinstance(blocks[0], sj2lava.InputBlock) and [type(e) for e in enc] == [nn.Conv2d, nn.MaxPool2d]
    assert any("BatchNorm2d folded into 0" in n for n in blocks.conversion_notes)
    assert any("run on the host with 0" in n for n in blocks.conversion_notes) and blocks.input_shape == (1, 8, 8)
    path = export(blocks, tmp_path / "host.net")
    assert sj2lava.load(path).layers[0].in_shape == (4, 4, 4)
    report = verify(net, path, x, lava_samples=1, containers=blocks)
    assert report.exact and sum(report.stage("containers").spikes) > 0


def test_blockcontainers_pass_through(tmp_path):
    blocks = nn.Sequential(BlockContainer(nn.Linear(3, 2), sj2lava.CubaLIFNode(1, 0), "m"))
    assert convert(blocks)[0] is blocks[0]


REFUSALS = [
    ("maxpool_over_currents", lambda N: nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), N.IFNode()),
     ["features.1:", "MaxPool2d(2, 2) over the currents of features.0", "no exact Loihi form", "OR layer",
      "approximate=True", "finetune"]),
    ("maxpool1d", lambda N: nn.Sequential(nn.Linear(4, 4), N.IFNode(), nn.MaxPool1d(2)),
     ["features.2:", "MaxPool1d", "OR layer", "SumPool2d"]),
    ("soft_reset", lambda N: nn.Sequential(nn.Linear(4, 3), N.IFNode(v_reset=None)),
     ["features.1:", "IFNode", "soft reset", "v_reset=0.0", "retrain"]),
    ("no_neuron", lambda N: nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2), N.IFNode()),
     ["0:", "not by a spiking neuron", "Add a neuron"]),
    ("relu", lambda N: nn.Sequential(nn.Linear(4, 3), N.IFNode(), nn.ReLU()), ["2:", "ReLU"]),
    ("lonely_neuron", lambda N: nn.Sequential(N.IFNode()), ["0:", "no synapse before it"]),
    ("bn_alone", lambda N: nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 3), N.IFNode()),
     ["0:", "must follow a Conv2d/Linear"]),
    ("avgpool_8", lambda N: nn.Sequential(nn.Conv2d(1, 2, 3), N.IFNode(), nn.AvgPool2d(8), N.IFNode()),
     ["2:", "rounds to 0"]),
    ("pool_into_linear_without_size", lambda N: nn.Sequential(
        nn.Conv2d(1, 2, 3), N.IFNode(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 2), N.IFNode()),
     ["2:", "example_input"]),
    ("plif", lambda N: nn.Sequential(nn.Linear(4, 3), N.ParametricLIFNode()), ["features.1:", "ParametricLIFNode"]),
    ("conv1d", lambda N: nn.Sequential(nn.Conv1d(1, 2, 3), N.IFNode()), ["0:", "Conv1d", "nn.Conv2d"]),
]


@pytest.mark.parametrize("name", [r[0] for r in REFUSALS])
def test_unsupported_models_are_refused_with_path_and_fix(sj, name):
    build, words = next((b, w) for n, b, w in REFUSALS if n == name)
    nested = nn.Sequential()
    nested.add_module("features", build(sj.neuron))
    with pytest.raises(UnsupportedLayerError) as e:
        convert(nested)
    msg = str(e.value)
    for w in words:
        assert w in msg, (w, msg)
    assert msg.startswith("features.")


def _direct_input_net(sj):
    """SpikingJelly's usual classifier shape: the analog image into conv + BN + IF at every step."""
    torch.manual_seed(0)
    L, N = sj.layer, sj.neuron
    net = nn.Sequential(L.Conv2d(1, 6, 3, padding=1, bias=False), L.BatchNorm2d(6), N.IFNode(),
                        L.AvgPool2d(2), N.IFNode(), L.Flatten(), L.Linear(6 * 4 * 4, 5), N.IFNode())
    sj.functional.set_step_mode(net, "m")
    with torch.no_grad():
        bn = net[1]
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.uniform_(1, 2)
        bn.bias.uniform_(-0.2, 0.3)
        net[6].weight.mul_(4)
    return net


def test_a_direct_input_net_deploys_its_first_layer_as_biased_input_neurons(sj, tmp_path):
    """The analog image feeds the first conv + BN + IF every step: convert(direct_input=True) runs that conv on
    the host and makes its IF neurons the file's input neurons, driven by the conv's output as their bias (as
    lava-dl's PilotNet-LIF is driven). Containers, emulate (both backends) and Lava agree."""
    net = _direct_input_net(sj)
    steps, x = 12, torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    x_seq = x.unsqueeze(0).repeat(steps, 1, 1, 1, 1)
    export(convert(net), tmp_path / "no.net", (1, 8, 8))
    with pytest.raises(ValueError, match="direct_input=True"):  # without it: the analog input is not spikes
        sj2lava.emulate(tmp_path / "no.net", x_seq)
    with pytest.raises(ValueError, match="event counts up to 3 in a time bin.*3x finer"):
        sj2lava.emulate(tmp_path / "no.net", torch.randint(0, 4, (steps, 2, 1, 8, 8)).float())
    blocks = convert(net, direct_input=True)
    assert isinstance(blocks[0], sj2lava.InputBlock) and any("direct input" in n for n in blocks.conversion_notes)
    with torch.no_grad():
        y = blocks(x_seq)
    assert y.sum() > 0
    path = export(blocks, tmp_path / "d.net", (1, 8, 8))
    spec = sj2lava.load(path)
    assert spec.layers[0].kind == "input" and spec.input_shape == (6, 8, 8)
    bias = blocks[0].input_bias(x_seq)
    assert bias.shape == (3, 6, 8, 8) and bias.abs().max() > 64
    for backend in ("torch", "events"):
        assert mismatches(sj2lava.emulate(path, input_bias=bias, num_steps=steps, backend=backend), y) == 0
    assert mismatches(run_lava(path, input_bias=bias, num_steps=steps), y) == 0
    with pytest.raises(ValueError, match="differs between steps"):
        blocks(torch.rand(steps, 3, 1, 8, 8))
    report = verify(net, path, x_seq, containers=blocks, lava_samples=1)  # float vs containers vs file
    assert report.exact and report.stage("float").mismatches[0] is not None, str(report)


# --------------------------------------------------------------------------- no silent drops
def _torch_modules():
    """A broad set of torch.nn module types, each as a layer placed after Linear + IF."""
    return {
        nn.ReLU: lambda: nn.ReLU(), nn.Sigmoid: lambda: nn.Sigmoid(), nn.Tanh: lambda: nn.Tanh(),
        nn.GELU: lambda: nn.GELU(), nn.LeakyReLU: lambda: nn.LeakyReLU(), nn.Softmax: lambda: nn.Softmax(-1),
        nn.ELU: lambda: nn.ELU(), nn.Hardtanh: lambda: nn.Hardtanh(), nn.BatchNorm1d: lambda: nn.BatchNorm1d(8),
        nn.LayerNorm: lambda: nn.LayerNorm(8), nn.GroupNorm: lambda: nn.GroupNorm(2, 8),
        nn.Dropout: lambda: nn.Dropout(0.1), nn.Identity: lambda: nn.Identity(), nn.Linear: lambda: nn.Linear(8, 8),
        nn.Conv1d: lambda: nn.Conv1d(1, 1, 3), nn.Conv2d: lambda: nn.Conv2d(1, 1, 3),
        nn.Conv3d: lambda: nn.Conv3d(1, 1, 3),
        nn.MaxPool1d: lambda: nn.MaxPool1d(2), nn.MaxPool2d: lambda: nn.MaxPool2d(2),
        nn.AvgPool1d: lambda: nn.AvgPool1d(2), nn.AdaptiveAvgPool2d: lambda: nn.AdaptiveAvgPool2d(1),
        nn.Embedding: lambda: nn.Embedding(10, 8), nn.LSTM: lambda: nn.LSTM(8, 8), nn.GRU: lambda: nn.GRU(8, 8),
        nn.RNN: lambda: nn.RNN(8, 8), nn.MultiheadAttention: lambda: nn.MultiheadAttention(8, 2),
        nn.TransformerEncoderLayer: lambda: nn.TransformerEncoderLayer(8, 2, 16),
        nn.Flatten: lambda: nn.Flatten(), nn.Unflatten: lambda: nn.Unflatten(1, (2, 4)),
        nn.Upsample: lambda: nn.Upsample(scale_factor=2), nn.PixelShuffle: lambda: nn.PixelShuffle(2),
        nn.ConvTranspose2d: lambda: nn.ConvTranspose2d(1, 1, 3), nn.Bilinear: lambda: nn.Bilinear(8, 8, 8),
    }


def _accounted_for(blocks, m) -> bool:
    """Converted without an error: the module is a block's synapse type, or named in a note."""
    name = type(m).__name__
    return any(name in n for n in blocks.conversion_notes) or any(
        type(getattr(b, "synapse", None)) is type(m) for b in blocks)


@pytest.mark.filterwarnings("ignore:convert. the forward of Sequential could not be traced")
def test_every_torch_module_type_maps_or_is_refused_by_name(sj):
    """No silent drops: each torch.nn layer type after a Linear + IF layer either converts (and is a block or named
    in a note) or is refused with an error naming its module path."""
    converted = set()
    for cls, make in _torch_modules().items():
        m = make()
        net = nn.Sequential(nn.Linear(8, 8), sj.neuron.IFNode(step_mode="m"), m,
                            nn.Linear(8, 4), sj.neuron.IFNode(step_mode="m"))
        try:
            blocks = convert(net)
        except UnsupportedLayerError as e:
            assert str(e).startswith("2") or "'2'" in str(e) or cls.__name__ in str(e), (cls.__name__, str(e))
            continue
        assert _accounted_for(blocks, m), (cls.__name__, blocks.conversion_notes)
        converted.add(cls)
    assert converted == {nn.Dropout, nn.Identity, nn.Flatten, nn.MaxPool2d}, converted  # MaxPool2d: an OR layer


def test_every_spikingjelly_and_snntorch_neuron_maps_or_is_refused_by_name(sj):
    import inspect

    import snntorch as snn

    sj_neurons = [c for _, c in inspect.getmembers(sj.neuron, inspect.isclass)
                  if issubclass(c, nn.Module) and c.__module__ == sj.neuron.__name__ and "Base" not in c.__name__]
    made = {}
    for cls in sj_neurons:
        if cls.__name__ == "LIAFNode":  # SpikingJelly 0.0.0.0.14 cannot build one (AttributeError in its __init__)
            continue
        try:
            made[cls.__name__] = cls(step_mode="m")
        except TypeError:
            made[cls.__name__] = None  # needs arguments this walk cannot guess: listed below
    snn_args = dict(Leaky=dict(beta=0.5), Synaptic=dict(alpha=0.5, beta=0.5), Lapicque=dict(beta=0.5),
                    Alpha=dict(alpha=0.6, beta=0.5), RLeaky=dict(beta=0.5, linear_features=8),
                    RSynaptic=dict(alpha=0.5, beta=0.5, linear_features=8), SLSTM=dict(input_size=8, hidden_size=8),
                    SConv2dLSTM=dict(in_channels=1, out_channels=1, kernel_size=3))
    for name, kw in snn_args.items():
        made[f"snntorch.{name}"] = getattr(snn, name)(init_hidden=True, reset_mechanism="zero", **kw)
    assert [k for k, v in made.items() if v is None] == [], "construct these in the walk"
    converted = set()
    for name, neu in made.items():
        net = nn.Sequential(nn.Linear(8, 8), neu)
        try:
            blocks = convert(net)
        except UnsupportedLayerError as e:
            assert str(e).startswith("1") and type(neu).__name__ in str(e), (name, str(e))
            continue
        assert blocks[0].neuron is not None
        converted.add(name)
    assert {"IFNode", "LIFNode", "snntorch.Leaky"} <= converted
    assert not converted & {"IzhikevichNode", "EIFNode", "QIFNode", "snntorch.Alpha", "snntorch.SLSTM"}


def test_every_lava_dl_block_type_maps_or_is_refused_by_name(slayer):
    """Every block class of lava-dl's slayer.block families: the cuba Dense/Conv/Pool/Flatten/Recurrent ones convert
    (their own tests prove them equal); every other is refused with an error naming it."""
    import inspect

    refused = 0
    for family in ("cuba", "sigma_delta", "alif", "rf", "rf_iz", "adrf", "adrf_iz"):
        mod = getattr(slayer.block, family)
        for name, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ != mod.__name__ or name.startswith("Abstract"):
                continue
            if family == "cuba" and name in ("Dense", "Conv", "Pool", "Flatten", "Recurrent"):
                continue
            blk = cls.__new__(cls)
            nn.Module.__init__(blk)
            with pytest.raises(UnsupportedLayerError, match=f"^0 \\(lava-dl {family}.{name}\\)"):
                convert(nn.Sequential(blk))
            refused += 1
    assert refused > 50
