"""sj2lava.synapses: the synapse registry (lookup by type and MRO, by name for optional packages), each
rule's quantized forward and the NetX layer it writes."""
import numpy as np
import pytest
import torch
from torch import nn

from sj2lava import SumPool2d, UnsupportedLayerError, quant
from sj2lava.synapses import DENSE, POOL, SynapseRule, find_rule, register, rule_for


def test_lookup_by_type_mro_and_name():
    class MyLinear(nn.Linear):
        pass

    assert rule_for(nn.Linear(2, 3), "x") is DENSE
    assert rule_for(MyLinear(2, 3), "x") is DENSE  # subclasses use their parent's rule
    assert rule_for(nn.AvgPool2d(2), "x").kind == "pool" and rule_for(SumPool2d(2), "x") is POOL
    assert find_rule(nn.ReLU()) is None
    for module, hint in [(nn.MaxPool2d(2), "max is not a weighted sum"), (nn.Conv1d(1, 1, 3), "2-D"),
                         (nn.AdaptiveAvgPool2d(1), "fixed kernel"), (nn.ReLU(), "torch.nn.modules.activation.ReLU")]:
        with pytest.raises(UnsupportedLayerError, match=hint):
            rule_for(module, "layer 7")


def test_a_new_layer_is_one_register_call():
    class Doubler(nn.Module):
        pass

    rule = register(Doubler)(SynapseRule(kind="dense", forward=lambda m, x, s: 2 * x, to_netx=DENSE.to_netx))
    try:
        assert rule_for(Doubler(), "x") is rule
    finally:
        from sj2lava import synapses

        del synapses._RULES[Doubler]
        synapses._RESOLVED.clear()


def test_forward_quantizes_and_to_netx_writes_the_same_integers():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=True)
    rule = rule_for(conv, "c")
    x = (torch.rand(4, 2, 7, 7) < 0.5).float()
    z = rule.forward(conv, x, 0.5)
    w_q = quant.quantize_weight(conv.weight * 0.5)
    assert torch.equal(z, torch.nn.functional.conv2d(x, w_q, None, 2, 1))
    assert torch.equal(rule.bias(conv, 0.5), conv.bias * 0.5)
    layer = rule.to_netx(conv, 0.5, (2, 7, 7), None, None, "c")
    assert layer.out_shape == (3, 4, 4) and np.array_equal(layer.weight, (w_q * 64).round().long().numpy())
    pool = rule_for(SumPool2d(2, weight=0.25), "p").to_netx(SumPool2d(2, weight=0.25), 1.0, (3, 4, 4), None, None, "p")
    assert pool.groups == 3 and set(np.unique(pool.weight)) == {16}
    with pytest.raises(Exception, match="needs a \\(C, H, W\\) input"):
        rule.to_netx(conv, 1.0, (98,), None, None, "c")
