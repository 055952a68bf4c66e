"""BatchNorm folded into the synapse before it: exact in float."""
import copy

import torch
from torch import nn


def test_batchnorm_folding_is_exact_in_float():
    torch.manual_seed(1)
    conv, bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.3, 2)
        bn.weight.normal_()
        bn.bias.normal_()
    bn.eval()
    from sj2lava.convert.batchnorm import fold_bn as _fold_bn

    folded = _fold_bn(copy.deepcopy(conv), bn, "bn")
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(folded(x), bn(conv(x)), atol=1e-5)
