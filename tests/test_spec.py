"""sj2lava.netx.spec: the typed layers of a .net file, their shapes, counts and table."""
import numpy as np
import torch
import torch.nn.functional as F

from sj2lava.netx.spec import Conv, Cuba, Dense, Flatten, NetSpec, conv_out_shape, neurons_of


def _neuron(n=1):
    return Cuba(np.full(n, 4096), np.full(n, 128), np.full(n, 64))


def test_conv_out_shape_is_torchs_floor_rule():
    for h, w, k, s, p, d in [(7, 7, (3, 3), (2, 2), (1, 1), (1, 1)), (9, 8, (3, 2), (2, 1), (1, 0), (1, 1)),
                             (10, 10, (3, 3), (1, 3), (2, 0), (2, 1)), (5, 5, (5, 5), (1, 1), (0, 0), (1, 1))]:
        y = F.conv2d(torch.zeros(1, 2, h, w), torch.zeros(4, 2, *k), stride=s, padding=p, dilation=d)
        assert conv_out_shape((2, h, w), 4, k, s, p, d) == tuple(y.shape[1:])


def test_counts_and_table():
    conv = Conv((2, 6, 6), (4, 3, 3), np.arange(4 * 1 * 3 * 3).reshape(4, 1, 3, 3) * 2 - 36, (2, 2), (1, 1),
                (1, 1), 2, _neuron(), np.array([-64, 0, 64, 128]))
    flat = Flatten((4, 3, 3), (36,))
    dense = Dense((36,), (5,), np.ones((5, 36), int) * 2, Cuba(np.arange(5) * 100, np.zeros(5), np.full(5, 70)),
                  None, np.ones((5, 5), int))
    spec = NetSpec((2, 6, 6), [conv, flat, dense])
    assert spec.output_shape == (5,) and spec.synaptic_layers == 2
    assert [neurons_of(l) for l in spec.layers] == [36, 0, 5] and spec.neurons == 41
    assert conv.synapses == 36 * 9 and spec.synapses == 36 * 9 + 5 * 36 + 5 * 5
    table = spec.table()
    for text in ("conv", "3x3", "2x2", "1x1", "-64..128", "-36..34", "flatten", "dense_rec", "iD=0..400",
                 "th=70", "total", "41"):
        assert text in table, text
    assert len(table.splitlines()) == 2 + 1 + 3 + 1  # head, rule, input, 3 layers, total
