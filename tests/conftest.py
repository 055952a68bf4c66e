"""Shared fixtures and helpers for the sj2lava suite.

Exactness tests compare against the real lava-dl / Lava installed by `make test`, never mocks.
"""
from __future__ import annotations

import os
import warnings

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from sj2lava import BlockContainer as B
from sj2lava import CubaLIFNode as C
from sj2lava import NXT_to_TNX, SumPool2d, TNX_to_NXT, export

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def spikes(shape, p: float = 0.3, seed: int = 0) -> torch.Tensor:
    """Binary Bernoulli(p) spikes of ``shape`` (float32), reproducible from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < p).float()


def lava_forward(block: torch.nn.Module, x_tnx: torch.Tensor) -> torch.Tensor:
    """Run a lava-dl block (or Sequential of blocks) on TNX input, return TNX output."""
    with torch.no_grad():
        return NXT_to_TNX(block(TNX_to_NXT(x_tnx).contiguous()))


def mismatches(a: torch.Tensor, b: torch.Tensor) -> int:
    assert a.shape == b.shape, (a.shape, b.shape)
    return int((a != b).sum())


@pytest.fixture(scope="session")
def slayer():
    """lava-dl's slayer (must be installed: the suite proves exactness against it)."""
    from lava.lib.dl import slayer as s

    return s


@pytest.fixture(scope="session")
def sj():
    """SpikingJelly 0.0.0.0.14's activation_based package (the peer and input framework)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spikingjelly.activation_based import functional, lava_exchange, layer, neuron, surrogate

    class _SJ:
        pass

    ns = _SJ()
    ns.functional, ns.lava_exchange, ns.layer, ns.neuron, ns.surrogate = (
        functional, lava_exchange, layer, neuron, surrogate)
    return ns


def scale_weights(net, factors):
    with torch.no_grad():
        for blk, f in zip(net, factors):
            if hasattr(blk.synapse, "weight") and f:
                blk.synapse.weight.mul_(f)
    return net


def zoo():
    """The model zoo: (name, net, input shape, T) for nets of BlockContainers covering every layer kind,
    geometry, bias and decay; every net has layers that spike (checked by the tests). ``net`` is None for
    the SpikingJelly one (:func:`lif_if_net`, which needs the ``sj`` fixture)."""
    torch.manual_seed(0)
    nets = []
    nets.append(("dense_only", scale_weights(nn.Sequential(
        B(nn.Linear(40, 30, bias=False), C(1.0, 0.0, 0.7), "m"),
        B(nn.Linear(30, 10, bias=False), C(1.0, 0.25, 0.5), "m")), [5, 6]), (40,), 24))
    nets.append(("seed_mnist", scale_weights(nn.Sequential(
        B(nn.Conv2d(1, 16, 3, padding=1, bias=False), C(1.0, 0.0, 1.0), "m"),
        B(nn.Conv2d(16, 16, 2, stride=2, bias=False), C(1.0, 0.0, 1.0), "m"),
        B(nn.Conv2d(16, 16, 3, padding=1, bias=False), C(1.0, 0.0, 1.0), "m"),
        B(nn.Conv2d(16, 16, 2, stride=2, bias=False), C(1.0, 0.0, 1.0), "m"),
        B(nn.Flatten(), None, "m"),
        B(nn.Linear(784, 128, bias=False), C(1.0, 0.0, 1.0), "m"),
        B(nn.Linear(128, 10, bias=False), C(1.0, 0.0, 1.0), "m")), [6, 5, 5, 5, 0, 5, 5]), (1, 28, 28), 16))
    nets.append(("conv_geometry", scale_weights(nn.Sequential(
        B(nn.Conv2d(2, 6, (3, 2), stride=(2, 1), padding=(1, 0), bias=False), C(1.0, 0.0, 0.5), "m"),
        B(nn.Conv2d(6, 6, 3, dilation=2, padding=2, groups=3, bias=False), C(1.0, 0.1, 0.5), "m"),
        B(nn.Conv2d(6, 4, (1, 3), stride=(1, 2), bias=False), C(1.0, 0.0, 0.4), "m")), [5, 6, 6]), (2, 9, 8), 20))
    nets.append(("conv_sumpool_odd", scale_weights(nn.Sequential(
        B(nn.Conv2d(1, 4, 3, padding=1, bias=False), C(1.0, 0.0, 0.6), "m"),
        B(SumPool2d(2), C(1.0, 0.0, 0.9), "m"),  # 7x7 -> 3x3: the incomplete window is dropped
        B(SumPool2d((3, 1), stride=(1, 1)), C(1.0, 0.0, 1.5), "m"),
        B(nn.Flatten(), None, "m"),
        B(nn.Linear(4 * 1 * 3, 5, bias=False), C(1.0, 0.0, 0.5), "m")), [5, 0, 0, 0, 6]), (1, 7, 7), 24))
    nets.append(("biases", scale_weights(nn.Sequential(
        B(nn.Conv2d(1, 4, 3, padding=1), C(1.0, 0.25, 0.6), "m"),
        B(nn.Flatten(), None, "m"),
        B(nn.Linear(4 * 6 * 6, 8), C(0.5, 0.1, 0.8), "m")), [4, 0, 5]), (1, 6, 6), 20))
    nets.append(("lif_and_if_spikingjelly", None, (20,), 24))
    nets.append(("thresholds_07_and_64", scale_weights(nn.Sequential(
        B(nn.Linear(30, 20, bias=False), C(1.0, 0.0, 0.7), "m"),
        B(nn.Linear(20, 6, bias=False), C(1.0, 0.0, 64 + 1 / 64), "m")), [5, 60]), (30,), 64))
    nets.append(("per_layer_decays", scale_weights(nn.Sequential(
        B(nn.Conv2d(2, 4, 3, bias=False), C(0.03, 0.25, 0.5), "m"),
        B(nn.Conv2d(4, 4, 3, bias=False), C(0.25, 0.0, 0.7), "m"),
        B(nn.Flatten(), None, "m"),
        B(nn.Linear(4 * 4 * 4, 6, bias=False), C(0.0, 0.03, 0.5), "m")), [4, 4, 0, 3]), (2, 8, 8), 24))
    with torch.no_grad():
        biases = nets[4][1]
        biases[0].synapse.bias.copy_(torch.tensor([0.2, -0.1, 0.05, 0.3]))
        biases[2].synapse.bias.uniform_(-0.2, 0.3)
    return nets


def lif_if_net(sj):
    torch.manual_seed(5)
    return scale_weights(nn.Sequential(
        B(nn.Linear(20, 16, bias=False), sj.neuron.LIFNode(tau=2.0, decay_input=True), "m"),
        B(nn.Linear(16, 12, bias=False), sj.neuron.IFNode(v_threshold=0.7), "m"),
        B(nn.Linear(12, 4, bias=False), sj.neuron.LIFNode(tau=3.0, decay_input=False), "m")), [8, 5, 5])


def lava_dl_file(blocks, path, input_shape=None):
    """A .net written by lava-dl's own ``export_hdf5`` of each block (plus an input layer, if a shape is given)."""
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


def plain_sj_net(sj):
    """Conv2d+BN+IFNode, AvgPool2d+IFNode, Flatten, Dropout, Linear+LIFNode(decay_input=True)."""
    torch.manual_seed(0)
    L, N = sj.layer, sj.neuron
    net = nn.Sequential(
        L.SeqToANNContainer(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)),
        N.IFNode(surrogate_function=sj.surrogate.ATan()),
        L.AvgPool2d(2), N.IFNode(),
        L.Flatten(), L.Dropout(0.3),
        L.Linear(8 * 6 * 6, 10), N.LIFNode(tau=2.0),
    )
    sj.functional.set_step_mode(net, "m")
    bn = net[0][1]
    with torch.no_grad():
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.uniform_(2, 4)
        bn.bias.uniform_(0, 0.3)
        net[6].weight.mul_(6)
    return net.eval()


def small_net_file(tmp_path):
    """A small exported conv + flatten + dense net, written to ``tmp_path/good.net`` (for file and CLI tests)."""
    net = scale_weights(nn.Sequential(B(nn.Conv2d(1, 2, 3, bias=False), C(1.0, 0.0), "m"), B(nn.Flatten(), None, "m"),
                               B(nn.Linear(18, 3), C(1.0, 0.0), "m")), [3, 0, 3])
    return export(net, tmp_path / "good.net", (1, 5, 5))


@pytest.fixture(scope="session")
def netx_files():
    """The folder of NetX files and ground truths that ship inside the installed lava-dl wheel
    (site-packages ``tests/lava/lib/dl/netx``: tiny.net, mnist.net, gts/...)."""
    from pathlib import Path

    from sj2lava.netx.lava import _import_lava_runtime

    _import_lava_runtime()  # Lava's import sets the multiprocessing start method, which an earlier test may have set
    import lava.lib.dl.netx as ldl_netx

    folder = Path(ldl_netx.__file__).resolve().parents[4] / "tests" / "lava" / "lib" / "dl" / "netx"
    assert (folder / "tiny.net").is_file(), folder
    return folder


# `make test-fast` deselects the tests marked `slow`: those that start a Lava process or a subprocess. A test is
# slow when its own source (or a helper it names from SLOW_HELPERS) calls one of these; a miss only makes the fast
# tier slower, never skips a test in `make test`.
SLOW_CALLS = ("run_lava", "verify(", "backend=\"lava\"", "backend='lava'", "subprocess", "lava_samples",
              "Network(", "verify_frontends", "verify_emulator", "fuzz_netx", "main([")
SLOW_MODULES = {"test_examples", "test_demo", "test_ddp", "test_readme", "test_contributing", "test_core_env",
                "test_gpu_check", "test_verify_frontends"}


def _is_slow(item) -> bool:
    import inspect

    if item.module.__name__ in SLOW_MODULES:
        return True
    try:
        source = inspect.getsource(item.function)
    except (OSError, TypeError):
        return True
    return any(call in source for call in SLOW_CALLS)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if isinstance(item, pytest.Function) and _is_slow(item):
            item.add_marker(pytest.mark.slow)
