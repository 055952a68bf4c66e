"""NIR graphs (snnTorch's exporter, hand-written with `nir`) to .net files, and .net files back to NIR."""
import re

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from conftest import mismatches, spikes, zoo
from snntorch import utils as snn_utils
from torch import nn

import sj2lava
from sj2lava import UnsupportedLayerError, emulate, export, from_nir, run_lava, to_nir
from sj2lava.frontends.nir import simulate_nir
from sj2lava.netx import hdf5


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
    plain = from_nir(tmp_path / "snn.nir", dt=1e-4, rescale=False)  # snnTorch exports with dt = 1e-4
    direct = sj2lava.convert(net, rescale=False)
    for a, b in zip(plain, direct):  # the NIR path lands on the same Loihi numbers as convert()
        if a.neuron is not None:
            assert (a.neuron.i_decay, a.neuron.v_decay, a.neuron.v_threshold_mant) == \
                   (b.neuron.i_decay, b.neuron.v_decay, b.neuron.v_threshold_mant)
    x = spikes((20, 3, 20), 0.4, seed=1)
    blocks = from_nir(tmp_path / "snn.nir", dt=1e-4)  # rescaled to fill the weight grid, by default
    assert len(blocks.conversion_notes) == 2 and all("scaled by" in n for n in blocks.conversion_notes)
    for net_ in (plain, blocks):
        path = export(net_, tmp_path / "snn.net", net_.input_shape)
        with torch.no_grad():
            y = net_(x)
        assert y.sum() > 0 and mismatches(run_lava(path, x), y) == 0


def handwritten_graph():
    """Input, Conv2d + IF, SumPool2d + LIF, Flatten, Affine + CubaLIF, Output: the NIR fuzzer's first base graph."""
    import sys
    from pathlib import Path

    tools = str(Path(__file__).resolve().parents[1] / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import fuzz_nir

    return fuzz_nir.base_graphs()[0]


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
    args = ["convert", str(tmp_path / "hand.nir"), "-o", str(tmp_path / "s.net"), "--dt", "1e-3", "--reset", "subtract"]
    assert main(args) == 2 and "approximate=True" in capsys.readouterr().err
    assert main(args + ["--approximate"]) == 0
    assert "note: NIR node 'if' (IF): subtract reset approximated" in capsys.readouterr().out


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
    with pytest.raises(UnsupportedLayerError, match="'if' \\(Threshold\\): a Threshold node"):
        from_nir(nir.NIRGraph(nodes=odd, edges=g.edges, type_check=False), dt=1e-3)


def test_to_nir_refuses_what_it_cannot_write(netx_files):
    """SDNN neurons and per-synapse delays have no NIR form here: refused by name, never dropped."""
    import dataclasses

    with pytest.raises(sj2lava.UnsupportedLayerError, match="layer 0 holds input neurons"):
        sj2lava.to_nir(netx_files / "gts" / "pilotnet_sdnn" / "network.net", dt=1.0)
    spec = sj2lava.load(netx_files / "gts" / "pilotnet_sdnn" / "network.net", skip_layers=1)
    with pytest.raises(sj2lava.UnsupportedLayerError, match="layer 0 has sigma-delta"):
        sj2lava.to_nir(spec, dt=1.0)
    spec = sj2lava.load(netx_files / "gts" / "ntidigits" / "ntidigits.net", num_layers=5)
    layers = list(spec.layers)
    k = next(i for i, l in enumerate(layers) if getattr(l, "delay", None) is not None)
    d = layers[k].delay.copy()
    d[0, 0] = (d[0, 1] + 1) % 60  # one synapse of a row delayed otherwise
    layers[k] = dataclasses.replace(layers[k], delay=d)
    with pytest.raises(sj2lava.UnsupportedLayerError, match=f"layer {k} has per-synapse axonal delays"):
        sj2lava.to_nir(dataclasses.replace(spec, layers=layers), dt=1.0)


def test_lava_dl_ntidigits_with_its_delays_goes_to_nir_and_back_identically(netx_files, tmp_path):
    """lava-dl's NTIDIGITS (its first five layers, as lava-dl runs it; axonal delays 0..62 per neuron on its dense
    layers): .net -> to_nir (Delay nodes) -> from_nir -> .net gives the same weights, delays, decays and
    thresholds, and the same spikes."""
    spec = sj2lava.load(netx_files / "gts" / "ntidigits" / "ntidigits.net", num_layers=5)  # as lava-dl runs it
    path = hdf5.write(spec, tmp_path / "first5.net")
    graph = to_nir(spec, dt=1e-3)
    assert sum(type(n).__name__ == "Delay" for n in graph.nodes.values()) == \
        sum(getattr(l, "delay", None) is not None for l in spec.layers)
    nir.write(tmp_path / "n.nir", graph)
    back = from_nir(tmp_path / "n.nir", dt=1e-3)
    assert not [n for n in back.conversion_notes if "scaled by" in n]  # on Loihi's grid already: kept
    path2 = export(back, tmp_path / "n.net", back.input_shape)  # strict: v saturates, only u is bounded
    synaptic = lambda s: [l for l in s.layers if l.kind != "flatten"]  # noqa: E731  (a leading flatten is layout)
    assert len(synaptic(spec)) == len(synaptic(sj2lava.load(path2))) == 3
    for a, b in zip(synaptic(spec), synaptic(sj2lava.load(path2))):
        assert a.kind == b.kind
        if a.kind != "flatten":
            assert np.array_equal(a.weight, b.weight) and int(a.neuron.v_th_mant) == int(b.neuron.v_th_mant)
            assert (int(a.neuron.i_decay), int(a.neuron.v_decay)) == (int(b.neuron.i_decay), int(b.neuron.v_decay))
            assert (a.delay is None) == (b.delay is None) and (a.delay is None or np.array_equal(a.delay, b.delay))
    x = spikes((80, 2, *spec.input_shape), 0.05, seed=15)
    a = emulate(path, x)
    assert a.sum() > 0 and mismatches(emulate(path2, x), a) == 0


def test_recurrent_and_delayed_nets_go_to_nir_and_back(tmp_path):
    """A recurrent layer (a NIR loop) and a layer with delays (a NIR Delay node) survive .net -> NIR -> .net."""
    torch.manual_seed(6)
    rec = sj2lava.BlockContainer(nn.Linear(10, 6, bias=False), sj2lava.CubaLIFNode(0.5, 0.2, 0.5), "m",
                                 recurrent=nn.Linear(6, 6, bias=False))
    dly = sj2lava.BlockContainer(nn.Linear(6, 4, bias=False), sj2lava.CubaLIFNode(1.0, 0.1, 0.5), "m",
                                 delay=torch.tensor([0, 3, 7, 62]))
    net = nn.Sequential(rec, dly)
    with torch.no_grad():
        rec.synapse.weight.mul_(6)
        rec.recurrent.weight.mul_(3)
        dly.synapse.weight.mul_(6)
    path = export(net, tmp_path / "a.net", (10,))
    graph = to_nir(path, dt=1e-3)
    back = from_nir(graph, dt=1e-3)
    assert back[0].recurrent is not None and back[1].axon_delay.tolist() == [0, 3, 7, 62]
    path2 = export(back, tmp_path / "b.net", (10,))
    for a, b in zip(sj2lava.load(path).layers, sj2lava.load(path2).layers):
        assert np.array_equal(a.weight, b.weight)
        assert (a.weight_rec is None) == (b.weight_rec is None)
        assert a.weight_rec is None or np.array_equal(a.weight_rec, b.weight_rec)
        assert (a.delay is None) == (b.delay is None) and (a.delay is None or np.array_equal(a.delay, b.delay))
    x = spikes((90, 2, 10), 0.4, seed=16)
    with torch.no_grad():
        y = net(x)
    assert y.sum() > 0 and mismatches(emulate(path2, x), y) == 0 and mismatches(run_lava(path2, x), y) == 0
    ideal = simulate_nir(graph, x, 1e-3)  # the graph's equations: the loop and the delays included
    assert [int(o.sum()) > 0 for o in ideal] == [True, True]


def _graph(*nodes, input_shape=(4,)):
    """A chain Input -> nodes -> Output, named n0, n1, ..."""
    named = {"in": nir.Input(input_type={"input": np.array(input_shape)})}
    named.update({f"n{k}": n for k, n in enumerate(nodes)})
    named["out"] = nir.Output(output_type={"output": np.array([1])})
    order = list(named)
    return nir.NIRGraph(nodes=named, edges=list(zip(order[:-1], order[1:])), type_check=False)


def _every_node():
    """One instance of every node type the nir package defines, placed after a dense synapse on 4 inputs."""
    ones = lambda *s: np.ones(s)  # noqa: E731
    return {
        "Affine": nir.Affine(weight=ones(4, 4), bias=np.zeros(4)),
        "Linear": nir.Linear(weight=ones(4, 4)),
        "Conv1d": nir.Conv1d(input_shape=4, weight=ones(1, 1, 2), stride=1, padding=0, dilation=1, groups=1,
                             bias=np.zeros(1)),
        "Conv2d": nir.Conv2d(input_shape=(2, 2), weight=ones(1, 1, 1, 1), stride=1, padding=0, dilation=1, groups=1,
                             bias=np.zeros(1)),
        "SumPool2d": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "AvgPool2d": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "Flatten": nir.Flatten(input_type={"input": np.array([4])}, start_dim=0, end_dim=-1),
        "IF": nir.IF(r=ones(4), v_threshold=ones(4)),
        "LIF": nir.LIF(tau=ones(4) * 2e-3, r=ones(4), v_leak=np.zeros(4), v_threshold=ones(4)),
        "CubaLIF": nir.CubaLIF(tau_syn=ones(4) * 2e-3, tau_mem=ones(4) * 2e-3, r=ones(4), v_leak=np.zeros(4),
                               v_threshold=ones(4), w_in=ones(4)),
        "I": nir.I(r=ones(4)),
        "LI": nir.LI(tau=ones(4) * 2e-3, r=ones(4), v_leak=np.zeros(4)),
        "CubaLI": nir.CubaLI(tau_syn=ones(4) * 2e-3, tau_mem=ones(4) * 2e-3, r=ones(4), v_leak=np.zeros(4),
                             w_in=ones(4)),
        "Delay": nir.Delay(delay=ones(4)),
        "Scale": nir.Scale(scale=ones(4)),
        "Threshold": nir.Threshold(threshold=ones(4)),
        "Input": nir.Input(input_type={"input": np.array([4])}),
        "Output": nir.Output(output_type={"output": np.array([4])}),
        "NIRGraph": _graph(nir.Linear(weight=ones(1, 4)), nir.IF(r=ones(1), v_threshold=ones(1))),
    }


def test_every_nir_node_type_maps_or_is_refused_by_name():
    """No silent drops: every node type of the nir package, after a dense synapse + IF layer, either converts
    (the node then shows in the result) or raises an error that names the node and its type."""
    every = _every_node()
    defined = {name for name in dir(nir) if isinstance(getattr(nir, name), type) and
               issubclass(getattr(nir, name), nir.NIRNode) and name != "NIRNode"}
    assert defined <= set(every), f"node types this test does not build: {sorted(defined - set(every))}"
    first = (nir.Linear(weight=np.eye(4) * 2), nir.IF(r=np.ones(4) * 1e3, v_threshold=np.ones(4)))
    mapped = set()
    for kind, node in every.items():
        tail = {"Affine": (nir.IF(r=np.ones(4) * 1e3, v_threshold=np.ones(4)),),
                "Linear": (nir.IF(r=np.ones(4) * 1e3, v_threshold=np.ones(4)),)}.get(kind, ())
        try:
            net = from_nir(_graph(*first, node, *tail), dt=1e-3)
        except UnsupportedLayerError as e:
            assert f"'n2' ({kind})" in str(e) or (kind in ("IF", "LIF", "CubaLIF", "Output") and "n2" in str(e)), \
                (kind, str(e))
            continue
        mapped.add(kind)
        assert len([b for b in net if b.neuron is not None]) == 1 + bool(tail), kind
    assert mapped == {"Affine", "Linear", "Flatten", "Output"}, mapped


def _pool_graph(between_flatten: bool, pool="SumPool2d"):
    rng = np.random.default_rng(3)
    pooled = getattr(nir, pool)(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    nodes = [nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 1.2, (4, 2, 3, 3)), stride=1, padding=1,
                        dilation=1, groups=1, bias=np.zeros(4)),
             nir.IF(r=np.full((4, 8, 8), 1.0), v_threshold=np.full((4, 8, 8), 1.0)), pooled]
    if between_flatten:
        nodes += [nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
                  nir.Affine(weight=rng.normal(0, 0.8, (5, 64)), bias=np.zeros(5))]
    else:
        nodes += [nir.Conv2d(input_shape=(4, 4), weight=rng.normal(0, 0.8, (3, 4, 3, 3)), stride=1, padding=1,
                             dilation=1, groups=1, bias=np.zeros(3)), nir.Flatten(
            input_type={"input": np.array([3, 4, 4])}, start_dim=0, end_dim=-1),
                  nir.Affine(weight=rng.normal(0, 0.8, (5, 48)), bias=np.zeros(5))]
    nodes.append(nir.IF(r=np.ones(5), v_threshold=np.ones(5)))
    if not between_flatten:
        nodes.insert(4, nir.IF(r=np.full((3, 4, 4), 1.0), v_threshold=np.full((3, 4, 4), 1.0)))
    return _graph(*nodes, input_shape=(2, 8, 8))


@pytest.mark.parametrize("between_flatten, pool", [(False, "SumPool2d"), (True, "SumPool2d"), (False, "AvgPool2d")])
def test_a_pool_before_a_synapse_is_composed_into_it(between_flatten, pool, tmp_path):
    """sinabs' shape: IF -> SumPool2d -> Conv2d (or -> Flatten -> Affine) with no neuron after the pool. The pool
    is composed into the synapse after it (noted), and the .net runs in Lava equal to the containers and
    emulate."""
    graph = _pool_graph(between_flatten, pool)
    net = from_nir(graph, dt=1.0)
    assert any(f"NIR node 'n2': {pool}(2, 2) composed into NIR node" in n for n in net.conversion_notes)
    assert [b.kind for b in net if b.neuron is not None] == (["conv", "dense"] if between_flatten else
                                                            ["conv", "conv", "dense"])
    path = export(net, tmp_path / "p.net", net.input_shape)
    x = spikes((16, 2, 2, 8, 8), 0.5, seed=4)
    with torch.no_grad():
        y = net(x)
    assert y.sum() > 0 and mismatches(run_lava(path, x), y) == 0 and mismatches(emulate(path, x), y) == 0


def test_two_synapses_without_a_neuron_are_refused_by_name():
    g = _graph(nir.Linear(weight=np.ones((4, 4))), nir.Affine(weight=np.ones((2, 4)), bias=np.zeros(2)),
               nir.IF(r=np.ones(2), v_threshold=np.ones(2)))
    with pytest.raises(UnsupportedLayerError, match="'n1' \\(Affine\\) follows NIR node 'n0' \\(Linear\\) with no "
                                                    "neuron"):
        from_nir(g, dt=1.0)
    with pytest.raises(UnsupportedLayerError, match="'n0' feeds the Output with no neuron after it"):
        from_nir(_graph(nir.Linear(weight=np.ones((4, 4)))), dt=1.0)


def test_small_weights_are_rescaled_to_fill_the_grid_and_fire(tmp_path):
    """A LIF with weight 0.04 and threshold 0.1 at dt = 1e-4: without rescaling the quantized net fires at other
    steps than the float equations; rescaled (the default, noted) it fires as they do, and the .net equals Lava,
    emulate and the containers."""
    dt, tau, steps = 1e-4, 1e-3, 60
    g = _graph(nir.Linear(weight=np.full((1, 1), 0.04)),
               nir.LIF(tau=np.array([tau]), r=np.array([tau / dt]), v_leak=np.zeros(1), v_threshold=np.array([0.1])),
               input_shape=(1,))
    x = torch.ones(steps, 1, 1)
    # the float reference (forward Euler, float64): v = (1 - dt/tau) v + (dt/tau) r w x, zero reset, one step later
    v, ref = 0.0, []
    for t in range(steps):
        v = (1 - dt / tau) * v + (dt / tau) * (tau / dt) * 0.04 * (1.0 if t >= 1 else 0.0)
        ref.append(v > 0.1)
        v = 0.0 if ref[-1] else v
    assert sum(ref) > 10
    plain = from_nir(g, dt=dt, rescale=False)
    with torch.no_grad():  # 0.04 and 0.1 quantize to 0.03125 and 0.09375: the neuron fires at other steps
        assert plain(x)[:, 0, 0].bool().tolist() != ref
    net = from_nir(g, dt=dt)
    assert any("scaled by" in n and "the weight grid" in n for n in net.conversion_notes)
    with torch.no_grad():
        y = net(x)
    assert y[:, 0, 0].bool().tolist() == ref
    path = export(net, tmp_path / "s.net", net.input_shape)
    assert mismatches(run_lava(path, x), y) == 0 and mismatches(emulate(path, x), y) == 0


def test_a_wrong_dt_that_zeroes_every_weight_is_named():
    g = _graph(nir.Linear(weight=np.full((2, 4), 0.5)), nir.IF(r=np.ones(2), v_threshold=np.ones(2)))
    with pytest.raises(UnsupportedLayerError, match="NIR node 'n1': every weight .* rounds to 0.*dt = 1"):
        from_nir(g, dt=1e-6)
    assert len(from_nir(g, dt=1.0)) == 1


def test_subtract_reset_needs_approximate_and_is_noted():
    g = _graph(nir.Linear(weight=np.full((2, 4), 0.5)), nir.IF(r=np.ones(2), v_threshold=np.ones(2)))
    with pytest.raises(UnsupportedLayerError, match="reset='subtract' has no exact Loihi form.*approximate=True"):
        from_nir(g, dt=1.0, reset="subtract")
    net = from_nir(g, dt=1.0, reset="subtract", approximate=True)
    assert any("subtract reset approximated" in n for n in net.conversion_notes)
    with pytest.raises(ValueError, match="reset must be"):
        from_nir(g, dt=1.0, reset="none")


def test_a_bias_into_a_decaying_current_is_refused_with_the_exact_alternatives():
    cuba = dict(tau_mem=np.full(2, 4e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2), w_in=np.ones(2))
    g = _graph(nir.Affine(weight=np.ones((2, 4)), bias=np.full(2, 0.3)), nir.CubaLIF(tau_syn=np.full(2, 2e-3), **cuba))
    with pytest.raises(UnsupportedLayerError, match="'n1' \\(CubaLIF\\): a synaptic bias .*tau_syn = dt.*v_leak = r"):
        from_nir(g, dt=1e-3)
    g = _graph(nir.Affine(weight=np.ones((2, 4)), bias=np.full(2, 0.3)), nir.CubaLIF(tau_syn=np.full(2, 1e-3), **cuba))
    assert from_nir(g, dt=1e-3)[0].synapse.bias is not None  # tau_syn = dt: the bias is exact on the voltage


def test_a_braille_style_bias_into_a_slow_current_deploys_under_approximate(tmp_path):
    """The NIR paper's Braille graph shape: Affine with a bias into a CubaLIF whose tau_syn is several dt. Refused
    without approximate (above); with it, the bias goes on the voltage at its settled size, noted, the file runs in
    Lava equal to the emulator and the containers, and verify's float stage (the graph's own equations, the bias
    ramping up in the current) reports the difference, per layer."""
    rng = np.random.default_rng(21)
    n = 8
    cuba = nir.CubaLIF(tau_syn=np.full(n, 4e-3), tau_mem=np.full(n, 8e-3), r=np.full(n, 8.0), v_leak=np.zeros(n),
                       v_threshold=np.full(n, 1.0), w_in=np.full(n, 4.0))
    out = nir.IF(r=np.full(3, 1000.0), v_threshold=np.full(3, 1.0))
    g = _graph(nir.Affine(weight=rng.normal(0.1, 0.8, (n, 12)), bias=rng.uniform(0.05, 0.3, n)), cuba,
               nir.Linear(weight=rng.normal(0.4, 1.0, (3, n))), out, input_shape=(12,))
    with pytest.raises(UnsupportedLayerError, match="synaptic bias.*approximate=True"):
        from_nir(g, dt=1e-3)
    net = from_nir(g, dt=1e-3, approximate=True)
    assert any("settled size (x4)" in n and "not exact" in n for n in net.conversion_notes)
    path = export(net, tmp_path / "braille.net")
    x = spikes((40, 3, 12), 0.3, seed=22)
    with torch.no_grad():
        y = net(x)
    assert y.sum() > 0 and mismatches(run_lava(path, x), y) == 0 and mismatches(emulate(path, x), y) == 0
    report = sj2lava.verify(net, path, x, lava_samples=1)
    assert report.exact and any("settled size" in n for n in report.notes)
    differ = _aligned_differ(simulate_nir(g, x, 1e-3), net, x)
    assert report.stage("float").mismatches == differ and differ[0] > 0  # the first steps' ramp, measured


def test_an_empty_or_foreign_node_is_named_with_the_exporters_likely_bug():
    lif = nir.LIF(tau=np.full(2, 2.0), r=np.full(2, 2.0), v_leak=np.zeros(2), v_threshold=np.ones(2))
    g = _graph(None, nir.Linear(weight=np.ones((2, 4))), lif)  # norse leaves nn.Flatten as None
    with pytest.raises(UnsupportedLayerError, match=r"NIR node 'n0' is empty \(None\).*norse.*nir.Flatten"):
        from_nir(g, dt=1.0)

    class MyFlatten:  # an exporter's own class where a NIR node should be
        pass

    g = _graph(MyFlatten(), nir.Linear(weight=np.ones((2, 4))), lif)
    with pytest.raises(UnsupportedLayerError, match="NIR node 'n0': a .*MyFlatten object, which is not a node type"):
        from_nir(g, dt=1.0)


def test_a_cuba_lif_with_w_in_1_and_a_slow_current_is_noted_with_the_norse_convention():
    cuba = lambda w_in: nir.CubaLIF(tau_syn=np.full(2, 4.0), tau_mem=np.full(2, 2.0), r=np.full(2, 2.0),  # noqa
                                    v_leak=np.zeros(2), v_threshold=np.ones(2), w_in=np.full(2, w_in))
    net = from_nir(_graph(nir.Linear(weight=np.ones((2, 4))), cuba(1.0)), dt=1.0)
    assert any("w_in = 1 with tau_syn = 4 dt" in n and "w_in = tau_syn / dt" in n for n in net.conversion_notes)
    net = from_nir(_graph(nir.Linear(weight=np.ones((2, 4))), cuba(4.0)), dt=1.0)
    assert not any("w_in" in n for n in net.conversion_notes)


def _rnn_graph(bias: bool, nested: bool, kind="CubaLIF"):
    """Input -> Affine -> CubaLIF <-> Affine/Linear (the loop) -> Linear -> IF -> Output, flat or with the loop as
    a subgraph node (snnTorch's RLeaky/RSynaptic form)."""
    rng = np.random.default_rng(5)
    n = 6
    cuba = nir.CubaLIF(tau_syn=np.full(n, 1e-3 if bias else 2e-3), tau_mem=np.full(n, 4e-3), r=np.full(n, 4.0),
                       v_leak=np.zeros(n), v_threshold=np.full(n, 1.0), w_in=np.full(n, 1.0)) if kind == "CubaLIF" \
        else nir.LIF(tau=np.full(n, 4e-3), r=np.full(n, 4.0), v_leak=np.zeros(n), v_threshold=np.full(n, 1.0))
    loop = nir.Affine(weight=rng.normal(0, 0.6, (n, n)), bias=np.full(n, 0.05)) if bias else \
        nir.Linear(weight=rng.normal(0, 0.6, (n, n)))
    nodes = {"in": nir.Input(input_type={"input": np.array([10])}),
             "fc": nir.Affine(weight=rng.normal(0, 1.0, (n, 10)), bias=np.zeros(n))}
    edges = [("in", "fc")]
    if nested:
        nodes["rnn"] = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n])}), "lif": cuba,
                                           "w_rec": loop, "output": nir.Output(output_type={"output": np.array([n])})},
                                    edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                                    type_check=False)
        edges += [("fc", "rnn.input"), ("rnn.output", "fc2")]
    else:
        nodes.update(lif=cuba, w_rec=loop)
        edges += [("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "fc2")]
    nodes.update(fc2=nir.Linear(weight=rng.normal(0, 1.0, (3, n))),
                 out_if=nir.IF(r=np.full(3, 1e3), v_threshold=np.ones(3)),
                 out=nir.Output(output_type={"output": np.array([3])}))
    edges += [("fc2", "out_if"), ("out_if", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.mark.parametrize("bias, nested", [(False, False), (True, False), (False, True)])
def test_a_recurrent_nir_layer_becomes_dense_rec_equal_to_lava(bias, nested, tmp_path):
    """A CubaLIF with a recurrent Affine/Linear (flat, or a subgraph as snnTorch writes it; with a bias, tau_syn =
    dt) -> a recurrent BlockContainer -> NetX dense_rec: Lava, emulate and the containers agree, and the loop
    matters (the same net without it spikes differently)."""
    net = from_nir(_rnn_graph(bias, nested), dt=1e-3)
    assert net[0].recurrent is not None and net[1].recurrent is None
    path = export(net, tmp_path / "r.net", net.input_shape)
    assert sj2lava.load(path).layers[0].weight_rec is not None
    x = spikes((40, 2, 10), 0.4, seed=9)
    with torch.no_grad():
        y = net(x)
        first = net[0](x)
        net[0].reset()
        saved, net[0].recurrent = net[0].recurrent, None
        without = net[0](x)
        net[0].recurrent = saved
        net[0].reset()
    assert y.sum() > 0 and mismatches(first, without) > 0
    assert mismatches(run_lava(path, x), y) == 0 and mismatches(emulate(path, x), y) == 0


def test_other_loops_and_subgraphs_are_refused_by_name():
    g = _rnn_graph(False, True)
    sub = g.nodes["rnn"]
    odd = dict(sub.nodes, extra=nir.Linear(weight=np.eye(6)))
    g.nodes["rnn"] = nir.NIRGraph(nodes=odd, edges=sub.edges + [("lif", "extra")], type_check=False)
    with pytest.raises(UnsupportedLayerError, match="'rnn' \\(NIRGraph\\): a subgraph other than a recurrent layer"):
        from_nir(g, dt=1e-3)
    with pytest.raises(UnsupportedLayerError, match="recurrent bias into a CubaLIF with tau_syn != dt"):
        g = _rnn_graph(True, False)
        g.nodes["lif"] = _rnn_graph(False, False).nodes["lif"]
        from_nir(g, dt=1e-3)


# --------------------------------------------------------------------------- float references of the equations
def _spec_reference(spec, x: torch.Tensor) -> list:
    """The .net's own integers (weights / 64, decays / 4096, thresholds / 64, biases / 64) in float64 CUBA, with
    Lava's one-step synaptic delay per layer but without Loihi's truncations: the NIR equations with the quantized
    parameters put in."""
    import torch.nn.functional as F

    from sj2lava.netx.spec import Flatten as FlatL

    outs, h_seq = [], x.double()
    for layer in spec.layers:
        if isinstance(layer, FlatL):
            h_seq = h_seq.reshape(h_seq.shape[0], h_seq.shape[1], -1)
            continue
        n = layer.neuron
        w = torch.as_tensor(layer.weight, dtype=torch.float64) / 64
        di, dv = float(n.i_decay) / 4096, float(n.v_decay) / 4096
        th = float(n.v_th_mant) / 64
        b = 0 if layer.bias is None else torch.as_tensor(np.asarray(layer.bias), dtype=torch.float64) / 64
        u = v = s = None
        out = []
        for t in range(h_seq.shape[0]):
            xin = torch.zeros_like(h_seq[0]) if t == 0 else h_seq[t - 1]  # one step of synaptic delay
            if layer.kind == "conv":
                a = F.conv2d(xin, w, stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                             groups=layer.groups)
                bb = b if np.isscalar(b) or not torch.is_tensor(b) else b.reshape(-1, 1, 1)
            else:
                a = xin.reshape(xin.shape[0], -1) @ w.T
                if layer.weight_rec is not None and s is not None:
                    a = a + s @ (torch.as_tensor(layer.weight_rec, dtype=torch.float64) / 64).T
                bb = b
            u = a if u is None else (1 - di) * u + a
            v = (0 if v is None else (1 - dv) * v) + u + bb
            s = (v > th).double()
            v = v * (1 - s)
            out.append(s)
        h_seq = torch.stack(out)
        outs.append(h_seq)
    return outs


def _sinabs_graph():
    """conv + IF + SumPool2d + Affine + IF at dt = 1, the shape sinabs exports (its IF: r = 1, v_th 1)."""
    rng = np.random.default_rng(11)
    return _graph(nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 0.5, (4, 2, 3, 3)), stride=1, padding=1,
                             dilation=1, groups=1, bias=np.zeros(4)),
                  nir.IF(r=np.ones((4, 8, 8)), v_threshold=np.ones((4, 8, 8))),
                  nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
                  nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
                  nir.Affine(weight=rng.normal(0, 0.3, (5, 64)), bias=np.full(5, 0.02)),
                  nir.IF(r=np.ones(5), v_threshold=np.ones(5)), input_shape=(2, 8, 8))


def _pooled_cnn(pools=("SumPool2d", "SumPool2d"), size=16):
    """conv, IF, pool, conv, IF, pool, Flatten, Affine, IF (sinabs' N-MNIST CNN shape, dt = 1) with weights on
    Loihi's grid (whole and half numbers) and thresholds in odd 1/64 steps: every pool is composed into the synapse
    after it, and the translation must equal the graph's equations exactly."""
    rng = np.random.default_rng(31)
    pool = lambda kind: getattr(nir, kind)(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),  # noqa: E731
                                           padding=np.array([0, 0]))
    th = lambda shape, v: np.full(shape, v + 1 / 64)  # noqa: E731
    h2, h4 = size // 2, size // 4
    return _graph(nir.Conv2d(input_shape=(size, size), weight=rng.integers(-2, 5, (4, 2, 3, 3)) / 2, stride=1,
                             padding=1, dilation=1, groups=1, bias=np.zeros(4)),
                  nir.IF(r=np.ones((4, size, size)), v_threshold=th((4, size, size), 1.5)), pool(pools[0]),
                  nir.Conv2d(input_shape=(h2, h2), weight=rng.integers(-2, 5, (6, 4, 3, 3)) / 2, stride=1, padding=1,
                             dilation=1, groups=1, bias=np.zeros(6)),
                  nir.IF(r=np.ones((6, h2, h2)), v_threshold=th((6, h2, h2), 2.0)), pool(pools[1]),
                  nir.Flatten(input_type={"input": np.array([6, h4, h4])}, start_dim=0, end_dim=-1),
                  nir.Affine(weight=rng.integers(-3, 5, (10, 6 * h4 * h4)) / 2, bias=np.zeros(10)),
                  nir.IF(r=np.ones(10), v_threshold=th(10, 3.0)), input_shape=(2, size, size))


@pytest.mark.parametrize("pools,size", [(("SumPool2d", "SumPool2d"), 16), (("AvgPool2d", "SumPool2d"), 12),
                                        (("SumPool2d", "AvgPool2d"), 8)])
def test_a_cnn_with_two_pools_equals_its_equations_spike_for_spike(pools, size, tmp_path):
    """The graphs that were wrong before (a pool composed into a Conv2d passed on the pooled shape, so the second
    pool, composed into the Affine, laid its columns out wrongly): on the grid, every layer equals the graph's own
    float64 equations (delayed by Lava's step per layer), and Lava equals the containers."""
    g = _pooled_cnn(pools, size)
    net = from_nir(g, dt=1.0)
    assert [b.kind for b in net] == ["conv", "conv", "flatten", "dense"]
    assert sum("composed into" in n for n in net.conversion_notes) == 2
    x = spikes((14, 2, 2, size, size), 0.4, seed=32)
    ours, ref = _outs(net, x), simulate_nir(g, x, 1.0)
    for k, (c, f) in enumerate(zip(ours, ref)):
        assert c.sum() > 0 and mismatches(c[k + 1:], f[:-(k + 1)].float()) == 0, k
        assert not c[:k + 1].any()
    path = export(net, tmp_path / "cnn.net")
    assert mismatches(run_lava(path, x, all_layers=True)[-1], ours[-1]) == 0


def _two_lif_graph(dt):
    rng = np.random.default_rng(12)
    tau1, tau2 = 5 * dt, 8 * dt  # time constants in steps of dt, so each dt gives the same decays
    lif = lambda n, tau, r, leak, th: nir.LIF(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.full(n, leak),  # noqa
                                              v_threshold=np.full(n, th))
    return _graph(nir.Linear(weight=rng.normal(0.1, 0.4, (8, 12))), lif(8, tau1, 2.0, 0.05, 0.4),
                  nir.Linear(weight=rng.normal(0.1, 0.5, (3, 8))), lif(3, tau2, 3.0, 0.02, 0.3), input_shape=(12,))


@pytest.mark.parametrize("case", ["sinabs", "lif_dt_1e-3", "lif_dt_1e-4", "lif_dt_1", "rnn", "rnn_bias"])
def test_nir_graphs_equal_their_equations_up_to_quantization(case, tmp_path):
    """Against the NIR equations in float64: with the .net's quantized parameters put in (the float CUBA form,
    delay included), every layer's spikes are identical to Lava's and emulate's; with the graph's own
    parameters, no layer is silent where the equations fire. Lava, emulate and the containers agree."""
    if case == "sinabs":
        graph, dt, shape = _sinabs_graph(), 1.0, (2, 8, 8)
    elif case.startswith("lif"):
        dt = float(case.split("_")[-1])
        graph, shape = _two_lif_graph(dt), (12,)
    else:
        graph, dt, shape = _rnn_graph(case == "rnn_bias", False), 1e-3, (10,)
    net = from_nir(graph, dt=dt)
    path = export(net, tmp_path / "g.net", net.input_shape)
    x = spikes((40, 3, *shape), 0.3, seed=13)
    with torch.no_grad():
        cont = [h for h in _outs(net, x)]
    lava = run_lava(path, x, all_layers=True)
    emu = emulate(path, x, record=("layer_spikes",))["layer_spikes"]
    assert [mismatches(a, b) for a, b in zip(lava, cont)] == [0] * len(cont)
    assert [mismatches(a, b) for a, b in zip(emu, cont)] == [0] * len(cont)
    quantized = _spec_reference(sj2lava.load(path), x)
    assert [mismatches(q.float().reshape(c.shape), c) for q, c in zip(quantized, cont)] == [0] * len(cont)
    ideal = simulate_nir(graph, x, dt)
    for k, (f, c) in enumerate(zip(ideal, cont)):
        assert not (f.sum() > 0 and c.sum() == 0), (case, k, "silent where the equations fire")
    assert cont[-1].sum() > 0


def _outs(net, x):
    from sj2lava.block import run_blocks

    return run_blocks(net, x)


def _aligned_differ(ideal, net, x):
    """Per layer, the spikes where the graph's equations and the containers differ in verify's read window: the
    containers run T + L steps, layer k read from step k + 1 (Lava's delay)."""
    outs = _outs(net, torch.cat([x, torch.zeros(len(ideal), *x.shape[1:])]))
    return [int((f.float() != c[k + 1:k + 1 + x.shape[0]]).sum()) for k, (f, c) in enumerate(zip(ideal, outs))]


def test_a_subtract_reset_graph_runs_as_zero_reset_and_verify_measures_it(tmp_path):
    g = _two_lif_graph(1e-3)
    net = from_nir(g, dt=1e-3, reset="subtract", approximate=True)
    path = export(net, tmp_path / "s.net", net.input_shape)
    x = spikes((40, 3, 12), 0.4, seed=14)
    with torch.no_grad():
        y = net(x)
    assert mismatches(run_lava(path, x), y) == 0 and mismatches(emulate(path, x), y) == 0
    report = sj2lava.verify(net, path, x, lava_samples=1)  # its float stage: the graph's own equations
    assert report.exact and any("subtract reset approximated" in n for n in report.notes)
    ideal = simulate_nir(g, x, 1e-3, reset="subtract")
    differ = _aligned_differ(ideal, net, x)
    assert report.stage("float").mismatches == differ and sum(differ) > 0  # the approximation, measured
    assert sum(int(o.sum()) for o in simulate_nir(g, x, 1e-3)) != sum(int(o.sum()) for o in ideal)


def test_simulate_nir_subtract_reset_equals_snntorch_itself():
    """snnTorch's default (subtract) reset takes the threshold off one step late, after that step's decay: the
    graph snnTorch exports, run by simulate_nir(reset='subtract'), fires exactly where snnTorch's own forward does
    (weights and thresholds chosen so that float32 and float64 compute the same numbers)."""
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(12, 8), snn.Leaky(beta=0.5, init_hidden=True), nn.Linear(8, 4),
                        snn.Synaptic(alpha=0.5, beta=0.75, init_hidden=True, threshold=1.5))
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.weight.copy_(torch.randint(-3, 6, m.weight.shape) / 8)
            m.bias.copy_(torch.randint(-1, 2, m.bias.shape) / 8)
    graph = sj2lava.frontends.snntorch.snntorch_to_nir(net, torch.zeros(1, 12))
    x = spikes((30, 3, 12), 0.5, seed=9)
    snn_utils.reset(net)
    want, h1 = [], []
    with torch.no_grad():
        for xt in x:
            h1.append(net[1](net[0](xt)))
            want.append(net[3](net[2](h1[-1])))
    ref = simulate_nir(graph, x, 1e-4, reset="subtract")
    assert torch.equal(ref[0].float(), torch.stack(h1)) and torch.equal(ref[1].float(), torch.stack(want))
    assert ref[1].sum() > 0 and not torch.equal(simulate_nir(graph, x, 1e-4, reset="zero")[0], ref[0])


def test_a_scale_node_is_folded_into_the_synapse_before_it(tmp_path):
    """Linear -> Scale (per neuron) -> LIF equals Linear(scale * W) -> LIF: the same .net, and the graph's own
    equations see the Scale too."""
    rng = np.random.default_rng(17)
    w, a = rng.normal(0, 1, (5, 8)), rng.uniform(0.5, 2.0, 5)
    lif = nir.LIF(tau=np.full(5, 4e-3), r=np.full(5, 4.0), v_leak=np.zeros(5), v_threshold=np.full(5, 1.0))
    scaled = from_nir(_graph(nir.Linear(weight=w), nir.Scale(scale=a), lif, input_shape=(8,)), dt=1e-3)
    plain = from_nir(_graph(nir.Linear(weight=w * a[:, None]), lif, input_shape=(8,)), dt=1e-3)
    assert any("folded into the weights" in n for n in scaled.conversion_notes)
    p1, p2 = export(scaled, tmp_path / "a.net", (8,)), export(plain, tmp_path / "b.net", (8,))
    assert np.array_equal(sj2lava.load(p1).layers[0].weight, sj2lava.load(p2).layers[0].weight)
    x = spikes((30, 2, 8), 0.5, seed=18)
    ref = simulate_nir(_graph(nir.Linear(weight=w), nir.Scale(scale=a), lif, input_shape=(8,)), x, 1e-3)[0]
    assert torch.equal(ref, simulate_nir(_graph(nir.Linear(weight=w * a[:, None]), lif, input_shape=(8,)), x, 1e-3)[0])
    assert ref.sum() > 0


def test_a_from_nir_net_exports_without_repeating_its_input_shape(tmp_path):
    net = from_nir(_sinabs_graph(), dt=1.0)
    assert sj2lava.load(export(net, tmp_path / "s.net")).input_shape == (2, 8, 8)


def _mutated(change):
    g = handwritten_graph()
    change(g)
    return g


def _deep(depth: int):
    g = handwritten_graph()
    inner = nir.NIRGraph(nodes={"i": nir.Input(input_type={"input": np.array([6])}),
                                "o": nir.Output(output_type={"output": np.array([6])})},
                         edges=[("i", "o")], type_check=False)
    for _ in range(depth):
        inner = nir.NIRGraph(nodes={"sub": inner}, edges=[], type_check=False)
    g.nodes["deep"] = inner
    return g


HOSTILE = [
    ("stride 0", lambda g: setattr(g.nodes["conv"], "stride", 0), "'conv' (Conv2d): field 'stride'"),
    ("padding 12,000", lambda g: setattr(g.nodes["conv"], "padding", 12_000), "'conv' (Conv2d): field 'padding'"),
    ("dilation 10^6", lambda g: setattr(g.nodes["conv"], "dilation", 10**6), "'conv' (Conv2d): field 'dilation'"),
    ("kernel 1000", lambda g: setattr(g.nodes["conv"], "weight", np.ones((4, 2, 1000, 1))),
     "'conv' (Conv2d): field 'weight'"),
    ("complex weights", lambda g: setattr(g.nodes["fc"], "weight", g.nodes["fc"].weight * (1 + 1j)),
     "'fc' (Affine): field 'weight' holds complex"),
    ("tau_syn 0", lambda g: setattr(g.nodes["cuba"], "tau_syn", np.zeros(6)), "'cuba' (CubaLIF): field 'tau_syn'"),
    ("tau inf", lambda g: setattr(g.nodes["lif"], "tau", np.full((4, 4, 4), np.inf)),
     "'lif' (LIF): field 'tau' holds NaN or infinity"),
    ("NaN threshold", lambda g: setattr(g.nodes["if"], "v_threshold", np.full((4, 8, 8), np.nan)),
     "'if' (IF): field 'v_threshold' holds NaN"),
    ("pool kernel 0", lambda g: setattr(g.nodes["pool"], "kernel_size", np.array([0, 2])),
     "'pool' (SumPool2d): field 'kernel_size'"),
    ("huge input", lambda g: g.nodes["in"].input_type.update(input=np.array([10**6, 10**4, 10**4])),
     "'in' (Input): field 'input_type'"),
    ("edge from nowhere", lambda g: g.edges.append(("ghost", "out")), "node 'ghost' does not exist"),
]


@pytest.mark.parametrize("change,words", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_graph_fields_are_refused_naming_node_and_field(change, words):
    with pytest.raises(sj2lava.NirFileError, match=re.escape(words)):
        from_nir(_mutated(change), dt=1e-3)


def test_subgraphs_nested_too_deep_are_refused():
    with pytest.raises(sj2lava.NirFileError, match="nested deeper than"):
        from_nir(_deep(12), dt=1e-3)


def test_hostile_nir_files_are_refused_by_name_and_the_cli_exits_2(tmp_path, capsys):
    """Soft links in the HDF5 file are refused unresolved; empty, truncated and non-HDF5 files by name."""
    import h5py

    from sj2lava.cli import main

    good = tmp_path / "good.nir"
    nir.write(good, handwritten_graph())
    linked = tmp_path / "linked.nir"
    linked.write_bytes(good.read_bytes())
    with h5py.File(linked, "a") as f:
        f["elsewhere"] = h5py.SoftLink("/etc/passwd")
    (tmp_path / "empty.nir").write_bytes(b"")
    (tmp_path / "text.nir").write_text("not a graph")
    (tmp_path / "cut.nir").write_bytes(good.read_bytes()[:300])
    for name, words in (("linked", "soft HDF5 link"), ("empty", "not a readable HDF5 file"),
                        ("text", "not a readable HDF5 file"), ("cut", "not a readable HDF5 file")):
        with pytest.raises(sj2lava.NirFileError, match=words):
            from_nir(tmp_path / f"{name}.nir", dt=1e-3)
        assert main(["convert", str(tmp_path / f"{name}.nir"), "-o", str(tmp_path / "o.net"), "--dt", "1e-3"]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
