"""sj2lava.metrics: NeuroBench's workload counts on the exact emulation, against hand counts."""
import sys

import numpy as np
import pytest
import torch
from conftest import spikes
from torch import nn

import sj2lava
from sj2lava.metrics import metrics, run_metrics
from sj2lava.netx.spec import Conv, Cuba, Dense, NetSpec


def _neuron(th=1):
    return Cuba(np.asarray(4096), np.asarray(0), np.asarray(th))


def test_synaptic_operations_equal_a_hand_count_on_a_small_dense_net():
    """3 inputs -> 2 neurons, weights [[2, 0, 4], [0, 0, 6]]: a spike on input 0 drives 1 non-zero synapse, on
    input 1 none, on input 2 two. Inputs [1,1,0] then [0,1,1]: 1 + 0 + 0 + 2 = 3 operations; connection sparsity
    3/6; the layer's spikes counted by hand from the emulation; footprint 6 x 8 weight bits and 2 x 48 state bits."""
    spec = NetSpec((3,), [Dense((3,), (2,), np.array([[2, 0, 4], [0, 0, 6]]), _neuron())])
    x = torch.tensor([[[1.0, 1.0, 0.0]], [[0.0, 1.0, 1.0]]])
    m = run_metrics(spec, x)
    layer = m.layers[0]
    assert layer.synops_per_sample == 3.0 and layer.connection_sparsity == 0.5
    out = sj2lava.emulate(spec, x)
    assert layer.spikes_per_sample == float(out.sum()) and layer.activation_sparsity == 1 - float(out.sum()) / 4
    assert (layer.weight_bits, layer.state_bits) == (48, 96) and m.footprint_bits == 144


def test_conv_operations_count_each_spike_once_per_output_it_reaches():
    """A 1x3x3 input, a 3x3 kernel with padding 1 whose centre weight is 0: a spike at the centre reaches all 9
    outputs, 8 of them through non-zero taps; one in a corner reaches 4 outputs, 3 of them through non-zero taps."""
    w = np.full((1, 1, 3, 3), 2)
    w[0, 0, 1, 1] = 0
    spec = NetSpec((1, 3, 3), [Conv((1, 3, 3), (1, 3, 3), w, (1, 1), (1, 1), (1, 1), 1, _neuron(1000))])
    centre, corner = torch.zeros(1, 1, 1, 3, 3), torch.zeros(1, 1, 1, 3, 3)
    centre[..., 1, 1] = 1
    corner[..., 0, 0] = 1
    assert run_metrics(spec, centre).layers[0].synops_per_sample == 8.0
    assert run_metrics(spec, corner).layers[0].synops_per_sample == 3.0


def test_evaluate_and_verify_report_the_metrics(tmp_path):
    from sj2lava.netx import hdf5
    from sj2lava.netx.random_nets import random_spec

    spec = random_spec(3)
    path = hdf5.write(spec, tmp_path / "r.net")
    x = spikes((12, 5, *spec.input_shape), 0.4, seed=2)
    ev = sj2lava.evaluate(path, (torch.rand(5, *spec.input_shape), torch.zeros(5, dtype=torch.long)), steps=12,
                          batch_size=2, progress=False)
    assert ev.metrics is not None and ev.metrics.samples == 5 and "synops/sample" in str(ev)
    whole = run_metrics(spec, x)
    halves = metrics(spec, x[:, :2], sj2lava.emulate(spec, x[:, :2], record=("layer_spikes",))["layer_spikes"]) + \
        metrics(spec, x[:, 2:], sj2lava.emulate(spec, x[:, 2:], record=("layer_spikes",))["layer_spikes"])
    assert np.allclose([m.synops_per_sample for m in whole.layers], [m.synops_per_sample for m in halves.layers])
    torch.manual_seed(0)
    blocks = torch.nn.Sequential(sj2lava.BlockContainer(torch.nn.Linear(10, 6, bias=False),
                                                        sj2lava.CubaLIFNode(1.0, 0.2, 0.5), "m"))
    with torch.no_grad():
        blocks[0].synapse.weight.mul_(6)
    p = sj2lava.export(blocks, tmp_path / "b.net", (10,))
    xb = spikes((12, 3, 10), 0.4, seed=3)
    report = sj2lava.verify(blocks, p, xb, lava_samples=1)
    assert report.metrics.layers[0].synops_per_sample == run_metrics(sj2lava.load(p), xb).layers[0].synops_per_sample
    assert "synops/sample" in str(report) and report.metrics.synops_per_sample > 0


@pytest.fixture(scope="module")
def neurobench(tmp_path_factory):
    """NeuroBench 2.3.0's metrics, pip-installed without its dependencies (its metrics need only torch and
    snnTorch; the rest serves its data sets) into a folder of this test run; skipped where pip cannot get it."""
    import subprocess

    site = tmp_path_factory.mktemp("neurobench")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                        "--target", str(site), "neurobench==2.3.0"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.skip(f"neurobench could not be installed here: {r.stderr.strip()[-300:]}")
    sys.path.insert(0, str(site))
    try:
        from neurobench.benchmarks import Benchmark
        from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
        from neurobench.models import SNNTorchModel
    finally:
        sys.path.remove(str(site))
    return Benchmark, SNNTorchModel, ActivationSparsity, SynapticOperations


def test_activation_sparsity_and_synaptic_operations_equal_neurobenchs(neurobench, tmp_path):
    """On an snnTorch MLP with weights on Loihi's grid (one input's weights all zero), NeuroBench's activation
    sparsity and effective accumulates of the snnTorch model equal sj2lava's counts of the exact emulation, read
    over the window Lava's delays shift each layer to (layer l's steps l+1 .. l+T)."""
    import snntorch as snn
    from torch.utils.data import DataLoader, TensorDataset

    Benchmark, SNNTorchModel, ActivationSparsity, SynapticOperations = neurobench
    torch.manual_seed(0)
    leaky = lambda th, **kw: snn.Leaky(beta=0.5, reset_mechanism="zero", init_hidden=True, threshold=th, **kw)  # noqa
    net = nn.Sequential(nn.Linear(20, 12, bias=False), leaky(1 + 1 / 64), nn.Linear(12, 5, bias=False),
                        leaky(0.5 + 1 / 64, output=True))
    with torch.no_grad():
        for m in (net[0], net[2]):
            m.weight.copy_(torch.randint(-2, 5, m.weight.shape) / 2)
        net[0].weight[:, 3] = 0  # an input that reaches no neuron: no operations
    steps, n = 10, 6
    x = (torch.rand(n, steps, 20) < 0.4).float()  # NeuroBench's [N, T, *]
    bench = Benchmark(SNNTorchModel(net), DataLoader(TensorDataset(x, torch.zeros(n, dtype=torch.long)),
                                                     batch_size=n), [], [], [[], [ActivationSparsity,
                                                                                  SynapticOperations]])
    theirs = bench.run(verbose=False)
    path = sj2lava.export(sj2lava.convert(net), tmp_path / "mlp.net", (20,))
    xt = x.transpose(0, 1)
    rec = sj2lava.emulate(path, torch.cat([xt, torch.zeros(2, n, 20)]), record=("layer_spikes",))["layer_spikes"]
    ours = metrics(sj2lava.load(path), xt, [s[l + 1:l + 1 + steps] for l, s in enumerate(rec)])
    assert theirs["SynapticOperations"]["Effective_MACs"] == 0  # binary inputs: accumulates only
    assert ours.synops_per_sample == pytest.approx(theirs["SynapticOperations"]["Effective_ACs"], rel=1e-12)
    assert ours.activation_sparsity == pytest.approx(theirs["ActivationSparsity"], rel=1e-12)
    assert 0 < ours.synops_per_sample < theirs["SynapticOperations"]["Dense"]
