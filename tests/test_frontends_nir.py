"""NIR graphs (snnTorch's exporter, hand-written with `nir`) to .net files, and .net files back to NIR."""
import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from conftest import mismatches, spikes, zoo
from torch import nn

import sj2lava
from sj2lava import UnsupportedLayerError, emulate, export, from_nir, run_lava, to_nir


def test_snntorch_export_to_nir_converts_and_runs_in_lava(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 12), snn.Leaky(beta=0.5, init_hidden=True, reset_mechanism="zero"),
                        nn.Linear(12, 5, bias=False),
                        snn.Synaptic(alpha=0.8, beta=0.75, init_hidden=True, reset_mechanism="zero",
                                     reset_delay=False, output=True))
    with torch.no_grad():
        net[0].weight.mul_(6)
        net[0].bias.fill_(0.1)
        net[2].weight.mul_(8)
    graph = sj2lava.frontends.snntorch.snntorch_to_nir(net, torch.zeros(1, 20))
    nir.write(tmp_path / "snn.nir", graph, compression=None)  # snnTorch writes scalars; gzip refuses those
    blocks = from_nir(tmp_path / "snn.nir", dt=1e-4)  # snnTorch exports with dt = 1e-4
    direct = sj2lava.convert(net)
    for a, b in zip(blocks, direct):  # the NIR path lands on the same Loihi numbers as convert()
        if a.neuron is not None:
            assert (a.neuron.i_decay, a.neuron.v_decay, a.neuron.v_threshold_mant) == \
                   (b.neuron.i_decay, b.neuron.v_decay, b.neuron.v_threshold_mant)
    path = export(blocks, tmp_path / "snn.net", blocks.input_shape)
    x = spikes((20, 3, 20), 0.4, seed=1)
    with torch.no_grad():
        y = blocks(x)
    assert y.sum() > 0 and mismatches(run_lava(path, x), y) == 0


def handwritten_graph():
    rng = np.random.default_rng(0)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([2, 8, 8])}),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 1.5, (4, 2, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.zeros(4)),
        "if": nir.IF(r=np.full((4, 8, 8), 1000.0), v_threshold=np.full((4, 8, 8), 1.0)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "lif": nir.LIF(tau=np.full((4, 4, 4), 4e-3), r=np.full((4, 4, 4), 4.0), v_leak=np.zeros((4, 4, 4)),
                       v_threshold=np.full((4, 4, 4), 0.8)),
        "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(0, 1.5, (6, 64)), bias=np.zeros(6)),
        "cuba": nir.CubaLIF(tau_syn=np.full(6, 2e-3), tau_mem=np.full(6, 5e-3), r=np.full(6, 5.0),
                            v_leak=np.full(6, 0.1), v_threshold=np.full(6, 0.5), w_in=np.full(6, 2.0)),
        "out": nir.Output(output_type={"output": np.array([6])}),
    }
    order = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), type_check=False)


def test_handwritten_nir_graph_via_cli_runs_in_lava(tmp_path, capsys):
    from sj2lava.cli import main

    nir.write(tmp_path / "hand.nir", handwritten_graph())
    assert main(["convert", str(tmp_path / "hand.nir"), "-o", str(tmp_path / "hand.net"), "--dt", "1e-3"]) == 0
    assert "hand.net" in capsys.readouterr().out
    blocks = from_nir(tmp_path / "hand.nir", dt=1e-3)
    assert [b.kind for b in blocks] == ["conv", "pool", "flatten", "dense"]
    cuba = blocks[3].neuron
    assert (cuba.i_decay, cuba.v_decay) == (2048, round(4096 * 0.2))
    x = spikes((24, 2, 2, 8, 8), 0.4, seed=2)
    with torch.no_grad():
        y = blocks(x)
    assert y.sum() > 0 and mismatches(run_lava(tmp_path / "hand.net", x), y) == 0
    with pytest.raises(SystemExit) as e:  # --dt is required: NIR nodes carry no time step
        main(["convert", str(tmp_path / "hand.nir"), "-o", str(tmp_path / "x.net")])
    assert e.value.code == 2
    assert main(["convert", str(tmp_path / "hand.nir"), "-o", str(tmp_path / "x.net"), "--dt", "1"]) == 2
    assert "decay" in capsys.readouterr().err  # dt = 1 s makes dt/tau > 1


@pytest.mark.parametrize("name", ["biases", "conv_geometry", "per_layer_decays", "thresholds_07_and_64"])
def test_net_to_nir_and_back_is_identical(name, tmp_path):
    _, net, in_shape, steps = next(z for z in zoo() if z[0] == name)
    path = export(net, tmp_path / "a.net", in_shape)
    nir.write(tmp_path / "a.nir", to_nir(path, dt=1e-3))
    back = from_nir(tmp_path / "a.nir", dt=1e-3)
    path2 = export(back, tmp_path / "b.net", back.input_shape)
    for l1, l2 in zip(sj2lava.load(path).layers, sj2lava.load(path2).layers):
        if l1.kind != "flatten":
            assert np.array_equal(l1.weight, l2.weight) and int(l1.neuron.i_decay) == int(l2.neuron.i_decay)
            assert int(l1.neuron.v_decay) == int(l2.neuron.v_decay)
            assert int(l1.neuron.v_th_mant) == int(l2.neuron.v_th_mant)
            assert (l1.bias is None and l2.bias is None) or \
                np.array_equal(np.broadcast_to(l1.bias, l2.bias.shape), l2.bias)
    x = spikes((steps, 3, *in_shape), 0.3, seed=6)
    a = emulate(path, x)
    assert a.sum() > 0 and mismatches(emulate(path2, x), a) == 0
    graph = to_nir(net, dt=1e-3, input_shape=in_shape)  # from the containers too
    assert isinstance(graph, nir.NIRGraph)


def test_nir_refusals():
    g = handwritten_graph()
    with pytest.raises(ValueError, match="dt"):
        from_nir(g, dt=None)
    branch = nir.NIRGraph(nodes=g.nodes, edges=g.edges + [("conv", "lif")], type_check=False)
    with pytest.raises(UnsupportedLayerError, match="feeds several nodes"):
        from_nir(branch, dt=1e-3)
    odd = dict(g.nodes)
    odd["if"] = nir.IF(r=np.full((4, 8, 8), 1000.0), v_threshold=np.full((4, 8, 8), 1.0),
                       v_reset=np.full((4, 8, 8), -0.5))
    with pytest.raises(UnsupportedLayerError, match="v_reset"):
        from_nir(nir.NIRGraph(nodes=odd, edges=g.edges, type_check=False), dt=1e-3)
    odd["if"] = nir.LIF(tau=np.linspace(1e-3, 2e-3, 256).reshape(4, 8, 8), r=np.ones((4, 8, 8)),
                        v_leak=np.zeros((4, 8, 8)), v_threshold=np.ones((4, 8, 8)))
    with pytest.raises(UnsupportedLayerError, match="differs between neurons"):
        from_nir(nir.NIRGraph(nodes=odd, edges=g.edges, type_check=False), dt=1e-3)
    odd["if"] = nir.Threshold(threshold=np.ones((4, 8, 8)))
    with pytest.raises(UnsupportedLayerError, match="Threshold is not supported"):
        from_nir(nir.NIRGraph(nodes=odd, edges=g.edges, type_check=False), dt=1e-3)


def test_to_nir_refuses_what_it_cannot_write(netx_files):
    """SDNN neurons and axonal delays have no NIR form here: refused by name, never dropped."""
    import sj2lava

    with pytest.raises(sj2lava.UnsupportedLayerError, match="layer 0 holds input neurons"):
        sj2lava.to_nir(netx_files / "gts" / "pilotnet_sdnn" / "network.net", dt=1.0)
    spec = sj2lava.load(netx_files / "gts" / "pilotnet_sdnn" / "network.net", skip_layers=1)
    with pytest.raises(sj2lava.UnsupportedLayerError, match="layer 0 has sigma-delta"):
        sj2lava.to_nir(spec, dt=1.0)
    spec = sj2lava.load(netx_files / "gts" / "ntidigits" / "ntidigits.net", num_layers=5)
    with pytest.raises(sj2lava.UnsupportedLayerError, match="axonal delays"):
        sj2lava.to_nir(spec, dt=1.0)
