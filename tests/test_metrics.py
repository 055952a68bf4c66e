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


def _metrics_by_recount(spec, x, layer_spikes):
    """The metrics as first written: every recorded spike through a float64 conv / matmul of the weights' masks
    (slow, memory-hungry, obviously right): the reference the count-based metrics must equal."""
    import torch.nn.functional as F

    from sj2lava.metrics import _STATE_BITS, LayerMetrics, Metrics, _weight_bits
    from sj2lava.netx.spec import Flatten, InputNeurons, neurons_of

    steps, n = x.shape[0], x.shape[1]
    out, h, k = [], x.reshape(steps, n, *spec.input_shape), 0
    for i, layer in enumerate(spec.layers):
        if isinstance(layer, Flatten):
            h = h.reshape(steps, n, -1)
            continue
        s = layer_spikes[k]
        fired, neurons = s != 0, neurons_of(layer)
        count = float(fired.sum())
        synops, zero, total_w, w_bits = 0.0, 0.0, 0, 0
        if not isinstance(layer, InputNeurons):
            active = (h != 0).reshape(steps * n, *h.shape[2:]).double()
            weights = [layer.weight] + [w for w in (getattr(layer, "weight_imag", None),
                                                    getattr(layer, "weight_rec", None)) if w is not None]
            for j, w in enumerate(weights):
                mask = torch.as_tensor(np.asarray(w) != 0, dtype=torch.float64)
                src = active
                if j and getattr(layer, "weight_rec", None) is w:
                    src = torch.cat([torch.zeros_like(fired[:1]), fired[:-1]]).reshape(steps * n, -1).double()
                if isinstance(layer, Conv):
                    synops += float(F.conv2d(src, mask, stride=layer.stride, padding=layer.padding,
                                             dilation=layer.dilation, groups=layer.groups).sum())
                else:
                    synops += float((src.reshape(src.shape[0], -1) @ mask.T).sum())
                zero += float((mask == 0).sum())
                total_w += mask.numel()
            w_bits = _weight_bits(layer, total_w)
        state = neurons * _STATE_BITS.get(layer.neuron.kind, 48)
        out.append(LayerMetrics(i, layer.kind, neurons, count / n, 1.0 - count / (n * steps * neurons),
                                synops / n, zero / total_w if total_w else 0.0, w_bits, state))
        h, k = s, k + 1
    return Metrics(out, n, steps)


def _random_run_input(spec, seed: int, steps: int = 7, batch: int = 5):
    """``(x, input_bias)`` for a run of a random net: spikes, graded messages (half zero) for a graded input, or
    for CUBA input neurons their a_in and a bias image per sample."""
    from sj2lava.netx.spec import InputNeurons

    rng, shape = np.random.default_rng(seed), (steps, batch, *spec.input_shape)
    if spec.graded_input:
        x = torch.from_numpy(rng.integers(-20, 41, shape) * (rng.random(shape) < 0.5))
    elif isinstance(spec.layers[0], InputNeurons):
        x = torch.from_numpy(rng.integers(-3, 4, shape) * (rng.random(shape) < 0.3))
    else:
        x = torch.from_numpy(rng.random(shape) < 0.4).float()
    cuba_in = isinstance(spec.layers[0], InputNeurons) and not spec.graded_input
    return x, torch.from_numpy(rng.integers(0, 300, shape[1:])) if cuba_in else None


@pytest.mark.parametrize("seed", range(24))
def test_count_based_metrics_equal_a_recount_of_every_spike_on_random_nets(seed):
    """Strided, padded, dilated and grouped convs, recurrent, delayed and complex (RF) dense layers, SDNN messages
    and input neurons: the metrics from per-layer counts equal the recount exactly, and counts of two batches add up
    to those of one run."""
    from sj2lava.emulator import emulate
    from sj2lava.metrics import count, metrics_of
    from sj2lava.netx.random_nets import random_spec

    spec = random_spec(seed, wide=0.3, delays=0.3, inputs=0.2, sdnn=0.2, rf=0.3)
    a_in, bias = _random_run_input(spec, seed)
    rec = emulate(spec, a_in, input_bias=bias, record=("layer_spikes",))
    assert metrics(spec, a_in, rec["layer_spikes"]) == _metrics_by_recount(spec, a_in, rec["layer_spikes"])
    halves = [count(spec, a_in[:, sl], [s[:, sl] for s in rec["layer_spikes"]]) for sl in (slice(0, 2), slice(2, 5))]
    assert metrics_of(spec, halves[0] + halves[1]) == metrics(spec, a_in, rec["layer_spikes"])


@pytest.mark.parametrize("backend", ["events", "torch"])
@pytest.mark.parametrize("window", ["all", "aligned"])
def test_emulate_counts_inside_the_run_equal_the_counts_of_its_recorded_spikes(backend, window):
    """record=('counts',) keeps no layer's spikes, yet gives the counts of the layers' spikes in their windows."""
    from sj2lava.emulator import emulate
    from sj2lava.metrics import count
    from sj2lava.netx.random_nets import random_spec

    for seed in range(16):  # convs (grouped, strided), recurrent, delayed and RF dense layers, SDNN, input neurons
        spec = random_spec(seed, wide=0.3, delays=0.3, inputs=0.2, sdnn=0.2, rf=0.3)
        x, bias = _random_run_input(spec, seed, steps=6)
        got = emulate(spec, x, input_bias=bias, record=("spikes", "counts"), backend=backend, window=window,
                      batch_size=2)
        want = emulate(spec, x, input_bias=bias, record=("layer_spikes",), backend=backend, window=window)
        assert "layer_spikes" not in got  # counts alone hold no layer's spikes
        assert torch.equal(got["spikes"], want["spikes"])
        ref = count(spec, x, want["layer_spikes"])
        c = got["counts"]
        assert (c.samples, c.steps) == (ref.samples, ref.steps) and len(c.fired) == len(ref.fired)
        for a, b in zip(c.inputs + c.fired + c.last, ref.inputs + ref.fired + ref.last):
            assert (a is None and b is None) or torch.equal(a, b), seed


def test_evaluate_metrics_over_batches_equal_those_of_one_recorded_run(tmp_path):
    """evaluate counts inside the emulator batch by batch; the result equals the metrics of every layer's recorded
    spikes of one run over the same encoded input (the aligned window, as evaluate reads it)."""
    from sj2lava.netx import hdf5
    from sj2lava.netx.random_nets import random_spec
    from sj2lava.train import rate_encoder

    spec = random_spec(5, wide=0.3)
    path = hdf5.write(spec, tmp_path / "r.net")
    images = torch.rand(7, *spec.input_shape, generator=torch.Generator().manual_seed(4))
    ev = sj2lava.evaluate(path, (images, torch.zeros(7, dtype=torch.long)), steps=9, batch_size=3, progress=False)
    encode = rate_encoder(9)  # evaluate's default encoder, seeded: the same spikes, batch after batch
    x = torch.cat([encode(images[i:i + 3]) for i in range(0, 7, 3)], 1)
    rec = sj2lava.emulate(spec, x, record=("layer_spikes",), window="aligned")
    assert ev.metrics == metrics(spec, x, rec["layer_spikes"])
