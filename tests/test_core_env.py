"""The core where lava-dl cannot go: SpikingJelly (0.0.0.0.14 here, 2.x in the core environment) to an exact .net
with torch, numpy and h5py alone. `make core-test` runs the `core` tests in a Python >= 3.11 environment with
SpikingJelly 2.x, numpy 2 and no Lava, and leaves what it wrote in $SJ2LAVA_HANDOFF; the Lava test here then
runs that file in Lava (the 3.10 environment) and compares with the emulation made there."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import sj2lava
from sj2lava.emulator import ckernel


def _sj_net():
    from spikingjelly.activation_based import functional, layer, neuron

    torch.manual_seed(0)
    net = nn.Sequential(layer.Conv2d(1, 4, 3, padding=1, bias=False), neuron.IFNode(), layer.AvgPool2d(2),
                        neuron.IFNode(), layer.Flatten(), layer.Linear(4 * 4 * 4, 3), neuron.LIFNode(tau=2.0))
    functional.set_step_mode(net, "m")
    with torch.no_grad():
        net[0].weight.mul_(6)
        net[5].weight.mul_(12)
    return net


def write_handoff(folder: Path):
    """Convert, train a step, export and emulate a SpikingJelly net; leave net.net, x.npy and y.npy (the
    containers' output, which emulate equals) in ``folder``; return the file's path and the trained blocks."""
    folder.mkdir(parents=True, exist_ok=True)
    net = _sj_net()
    blocks = sj2lava.convert(net)
    g = torch.Generator().manual_seed(1)
    images, labels = torch.rand(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)
    sj2lava.finetune(blocks, (images, labels), epochs=1, steps=12, progress=False)
    path = sj2lava.export(blocks, folder / "net.net", (1, 8, 8))
    x = (torch.rand(12, 4, 1, 8, 8, generator=g) < 0.5).float()
    with torch.no_grad():
        sj2lava.reset_net(blocks)
        y = blocks(x)
    np.save(folder / "x.npy", x.numpy())
    np.save(folder / "y.npy", y.numpy())
    return path, blocks


@pytest.mark.core
def test_spikingjelly_to_an_exact_file_with_the_core_alone(tmp_path):
    """convert, finetune, export, emulate (both backends) and verify's non-Lava stages, in whatever environment
    runs the suite: the containers and the emulator agree on every spike."""
    handoff = Path(os.environ.get("SJ2LAVA_HANDOFF", tmp_path / "handoff"))
    path, blocks = write_handoff(handoff)
    x, y = torch.from_numpy(np.load(handoff / "x.npy")), torch.from_numpy(np.load(handoff / "y.npy"))
    assert y.sum() > 0
    for backend in ["torch"] + (["events"] if ckernel.available() else []):
        assert torch.equal(sj2lava.emulate(path, x, backend=backend), y), backend
    report = sj2lava.verify(_sj_net(), path, x, lava_samples=0, containers=blocks)  # the trained blocks: the file's
    names = [s.name for s in report.stages]
    assert report.exact and names[:3] in (["float", "containers", "emulator"], ["float", "containers", "lava-dl"]), \
        str(report)
    assert all(m == 0 for m in report.stage("emulator").mismatches) and sum(report.stage("emulator").spikes) > 0
    assert report.metrics.synops_per_sample > 0


def test_a_file_written_in_the_core_environment_runs_in_lava(tmp_path):
    """The file the core environment left in $SJ2LAVA_HANDOFF (or, outside CI, one written here the same way) runs
    in Lava equal to the output recorded where it was written."""
    folder = Path(os.environ["SJ2LAVA_HANDOFF"]) if "SJ2LAVA_HANDOFF" in os.environ else tmp_path / "here"
    if not (folder / "net.net").exists():
        write_handoff(folder)
    x, y = torch.from_numpy(np.load(folder / "x.npy")), torch.from_numpy(np.load(folder / "y.npy"))
    local = tmp_path / "net.net"
    shutil.copy(folder / "net.net", local)
    assert y.sum() > 0 and torch.equal(sj2lava.run_lava(local, x), y)
