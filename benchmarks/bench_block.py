"""Training throughput of the seed MNIST conv net: sj2lava vs SpikingJelly lava_exchange vs lava-dl.

Net (1x28x28): conv 3x3 16ch p1 | conv 2x2 s2 | conv 3x3 p1 | conv 2x2 s2 | dense 784->128 | dense 128->10,
IF neurons, 8-bit weights. Measures forward + backward sample-steps per second (batch * T per second)
of the three implementations in one run on the same machine, and prints the ratios.

    python benchmarks/bench_block.py [--T 16] [--batch 32] [--iters 5] [--device cpu]
"""
from __future__ import annotations

import argparse
import time
import warnings

import torch
from torch import nn


def seed_synapses():
    torch.manual_seed(0)
    return [
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.Conv2d(16, 16, 2, stride=2, bias=False),
        nn.Conv2d(16, 16, 3, padding=1, bias=False),
        nn.Conv2d(16, 16, 2, stride=2, bias=False),
        nn.Flatten(),
        nn.Linear(784, 128, bias=False),
        nn.Linear(128, 10, bias=False),
    ]


def sj2lava_net():
    from sj2lava import BlockContainer, CubaLIFNode

    return nn.Sequential(*[
        BlockContainer(s, None if isinstance(s, nn.Flatten) else CubaLIFNode(1.0, 0.0, 1.0), "m")
        for s in seed_synapses()
    ])


def spikingjelly_net():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spikingjelly.activation_based import lava_exchange, neuron
    return nn.Sequential(*[
        lava_exchange.BlockContainer(s, None if isinstance(s, nn.Flatten) else neuron.IFNode(), step_mode="m")
        for s in seed_synapses()
    ])


def lava_dl_net():
    from sj2lava import BlockContainer, CubaLIFNode

    return nn.Sequential(*[
        BlockContainer(s, None if isinstance(s, nn.Flatten) else CubaLIFNode(1.0, 0.0, 1.0), "m").to_lava_block()
        for s in seed_synapses()
    ])


def reset(net):
    for m in net.modules():
        if hasattr(m, "reset"):
            m.reset()


def throughput(net, x, iters, warmup=1):
    """Forward+backward sample-steps per second on input ``x``."""
    steps, batch = (x.shape[0], x.shape[1]) if x.dim() == 5 and x.shape[2] == 1 else (x.shape[-1], x.shape[0])
    for i in range(warmup + iters):
        if i == warmup:
            if x.is_cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
        reset(net)
        out = net(x)
        out.sum().backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return batch * steps * iters / (time.perf_counter() - start)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(args.T, args.batch, 1, 28, 28, generator=g) < 0.2).float().to(dev)
    x_nxt = x.permute(1, 2, 3, 4, 0).contiguous()

    results = {}
    results["sj2lava BlockContainer"] = throughput(sj2lava_net().to(dev), x, args.iters)
    results["SpikingJelly lava_exchange"] = throughput(spikingjelly_net().to(dev), x, args.iters)
    results["lava-dl slayer blocks"] = throughput(lava_dl_net().to(dev), x_nxt, args.iters)

    print(f"seed MNIST conv net, T={args.T}, batch={args.batch}, device={dev}, "
          f"threads={torch.get_num_threads()}, forward+backward")
    ours = results["sj2lava BlockContainer"]
    for name, v in results.items():
        print(f"  {name:28s} {v:12,.0f} sample-steps/s   sj2lava / this = {ours / v:5.2f}x")
    return results


if __name__ == "__main__":
    main()
