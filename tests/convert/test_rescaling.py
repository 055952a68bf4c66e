"""Rescaling: one factor per layer fills the 8-bit grid within Lava's registers, spikes unchanged."""

import numpy as np
import pytest
import torch
from conftest import mismatches, spikes
from torch import nn

import sj2lava
from sj2lava import BlockContainer, export, run_lava


def test_a_slow_cuba_layer_keeps_the_weight_grid_as_lavas_registers_allow(tmp_path):
    """Rescaling bounds only the registers Lava wraps (the synaptic sum and u); v saturates. A slow CubaLIF
    (tau_syn 5 dt, tau_mem 20 dt) with small float weights fills the grid (>= 100 of the 127 levels), where the old
    worst case of v kept about 10; the file runs in Lava equal to the emulator and the containers."""
    import nir

    from sj2lava import from_nir, quant
    from sj2lava.convert import effective_weight

    rng = torch.Generator().manual_seed(8)
    w = (torch.rand(6, 16, generator=rng) - 0.3) * 0.02
    n = 6
    full = lambda v: np.full(n, v)  # noqa: E731
    nodes = {"in": nir.Input(input_type={"input": np.array([16])}), "fc": nir.Linear(weight=w.double().numpy()),
             "lif": nir.CubaLIF(tau_syn=full(5e-3), tau_mem=full(2e-2), r=full(1.0), v_leak=full(0.0),
                                v_threshold=full(2e-5), w_in=full(1.0)),
             "out": nir.Output(output_type={"output": np.array([n])})}
    g = nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")], type_check=False)
    net = from_nir(g, dt=1e-3)
    levels = int(quant.weight_mant(effective_weight(net[0])).abs().max()) // 2
    assert levels >= 100, net.conversion_notes
    path = export(net, tmp_path / "slow.net")
    x = spikes((40, 2, 16), 0.5, seed=9)
    with torch.no_grad():
        y = net(x)
    assert y.sum() > 0 and mismatches(run_lava(path, x), y) == 0 and mismatches(sj2lava.emulate(path, x), y) == 0


def test_rescale_refits_a_fine_tuned_layer_so_that_it_exports_strictly(tmp_path):
    """A layer whose training grew its weights past what Lava's current register holds (u could wrap) is refused
    by export; sj2lava.rescale scales it back within 24 bits (noted) and it exports and runs in Lava."""
    torch.manual_seed(3)
    blocks = nn.Sequential(BlockContainer(nn.Linear(200, 8, bias=False), sj2lava.CubaLIFNode(0.125, 0.05, 1.0), "m"))
    with torch.no_grad():
        blocks[0].synapse.weight.uniform_(-3.0, 3.0)  # as fine-tuning left it
    with pytest.raises(sj2lava.ExportError, match="the current u can reach .* wraps it around.*sj2lava.rescale"):
        export(blocks, tmp_path / "a.net", (200,))
    notes = sj2lava.rescale(blocks)
    assert len(notes) == 1 and "the current u (24 bits)" in notes[0] and blocks.conversion_notes == notes
    path = export(blocks, tmp_path / "a.net", (200,))
    x = spikes((16, 2, 200), 0.3, seed=4)
    with torch.no_grad():
        y = blocks(x)
    assert y.sum() > 0 and mismatches(run_lava(path, x), y) == 0
    assert sj2lava.rescale(blocks) == []  # on the grid now: kept
