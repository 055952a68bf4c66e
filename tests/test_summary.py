"""sj2lava.summary: the per-layer table of what Loihi will run, for models and files."""
import torch
from conftest import plain_sj_net
from torch import nn

import sj2lava


def test_summary_of_a_float_model_a_container_net_and_a_file(sj, tmp_path):
    text = sj2lava.summary(plain_sj_net(sj), (1, 12, 12))
    assert "conv" in text and "total" in text and "weights 9 bits" in text
    assert "BatchNorm2d folded" in text and "the notes say where the source model differs" in text
    blocks = nn.Sequential(sj2lava.BlockContainer(nn.Linear(4, 3), sj2lava.CubaLIFNode(1.0, 0.5, 0.5), "m"))
    with torch.no_grad():
        blocks[0].synapse.weight.zero_()  # export refuses an all-zero layer: summary lists it instead
    text = sj2lava.summary(blocks)
    assert "not exact: export: block 0" in text and "export would refuse" in text
    path = sj2lava.export(sj2lava.convert(plain_sj_net(sj)), tmp_path / "p.net", (1, 12, 12))
    assert sj2lava.summary(path).splitlines()[0] == sj2lava.load(path).table().splitlines()[0]
