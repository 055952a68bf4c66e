"""Quantization-aware training of BlockContainers on CPU: a 3-layer conv net learns a synthetic task."""
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sj2lava
from sj2lava import BlockContainer, CubaLIFNode


def make_task(n_per_class=64, classes=4, steps=12, seed=0):
    """Rate-coded 8x8 images of four bar orientations/positions with noise: [T, N, 1, 8, 8] spikes."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.zeros(classes, 8, 8)
    protos[0, :, 1:3] = 1
    protos[1, 1:3, :] = 1
    protos[2, :, 5:7] = 1
    protos[3, 5:7, :] = 1
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    rate = (0.35 * protos[labels] + 0.15).clamp(0, 1).unsqueeze(1)  # [N, 1, 8, 8]
    x = (torch.rand(steps, len(labels), 1, 8, 8, generator=g) < rate).float()
    return x, labels


def build_net(sj):
    surrogate = sj.surrogate.ATan()
    return nn.Sequential(
        BlockContainer(nn.Conv2d(1, 8, 3, padding=1, bias=False), sj.neuron.IFNode(surrogate_function=surrogate), "m"),
        BlockContainer(nn.Conv2d(8, 16, 2, stride=2, bias=False), sj.neuron.IFNode(surrogate_function=surrogate), "m"),
        BlockContainer(nn.Flatten(), None, "m"),
        BlockContainer(nn.Linear(16 * 4 * 4, 4, bias=False), CubaLIFNode(1.0, 0.1, 1.0, requires_grad=True), "m"),
    )


def test_conv_net_of_blocks_learns(sj):
    torch.manual_seed(0)
    x, y = make_task(seed=0)
    x_test, y_test = make_task(n_per_class=32, seed=1)
    net = build_net(sj)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(4)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    losses = []
    for _ in range(12):
        perm = torch.randperm(len(y))
        for i in range(0, len(y), 32):
            idx = perm[i:i + 32]
            sj2lava.reset_net(net)
            rate = net(x[:, idx]).mean(0)
            loss = F.cross_entropy(rate * 10, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    with torch.no_grad():
        sj2lava.reset_net(net)
        acc = (net(x_test).sum(0).argmax(1) == y_test).float().mean().item()
    first, last = sum(losses[:8]) / 8, sum(losses[-8:]) / 8
    print(f"loss {first:.3f} -> {last:.3f}, test accuracy {acc:.2%}")
    assert last < 0.6 * first
    assert acc >= 0.8  # chance is 25%
    assert net[3].neuron.voltage_decay.grad.abs().item() > 0  # the learnable decay gets a gradient


def test_finetune_and_evaluate_run_without_tqdm(monkeypatch, tmp_path):
    """tqdm is an optional extra: with it absent, the default progress=True must still work (silently)."""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` now raises ImportError
    with pytest.raises(ImportError):
        import tqdm  # noqa: F401
    torch.manual_seed(0)
    net = nn.Sequential(BlockContainer(nn.Flatten(), None, "m"),
                        BlockContainer(nn.Linear(16, 3, bias=False), CubaLIFNode(1.0, 0.1, 0.5), "m"))
    with torch.no_grad():
        net[1].synapse.weight.mul_(4)
    x, y = torch.rand(10, 1, 4, 4), torch.arange(10) % 3
    losses = sj2lava.finetune(net, (x, y), epochs=1, steps=6, batch_size=4)
    assert len(losses) == 1 and losses[0] > 0
    path = sj2lava.export(net, tmp_path / "t.net", (1, 4, 4))
    result = sj2lava.evaluate(path, (x, y), steps=6)
    assert result.samples == 10
