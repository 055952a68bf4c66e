"""Shared fixtures and helpers for the sj2lava suite.

Exactness tests compare against the real lava-dl / Lava installed by `make test`, never mocks.
"""
from __future__ import annotations

import os
import warnings

import pytest
import torch

from sj2lava import NXT_to_TNX, TNX_to_NXT

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
