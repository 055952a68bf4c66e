import pytest
import torch

from sj2lava import NXT_to_TNX, TNX_to_NXT


@pytest.mark.parametrize("shape", [(5, 3), (5, 3, 7), (4, 2, 3, 6, 5)])
def test_round_trip_and_axes(shape):
    x = torch.arange(torch.tensor(shape).prod().item()).reshape(shape)
    y = TNX_to_NXT(x)
    assert y.shape == (*shape[1:], shape[0])
    # element [t, n, ...] moves to [n, ..., t]
    idx = tuple(s - 1 for s in shape)
    assert y[idx[1:] + (idx[0],)] == x[idx]
    assert torch.equal(NXT_to_TNX(y), x)
    assert torch.equal(TNX_to_NXT(NXT_to_TNX(x)), x)


@pytest.mark.parametrize("fn", [TNX_to_NXT, NXT_to_TNX])
def test_rank_below_two_is_refused(fn):
    with pytest.raises(ValueError, match="rank >= 2"):
        fn(torch.zeros(4))


def test_matches_spikingjelly_layout(sj):
    x = torch.randn(6, 2, 3, 4)
    assert torch.equal(TNX_to_NXT(x), sj.lava_exchange.TNX_to_NXT(x))
    assert torch.equal(NXT_to_TNX(TNX_to_NXT(x)), sj.lava_exchange.NXT_to_TNX(sj.lava_exchange.TNX_to_NXT(x)))
