"""Train a plain SpikingJelly conv net (its own IF/LIF neurons, BatchNorm, average pooling, dropout) a
little on scikit-learn's digits, then convert it with sj2lava, export it and verify it in Lava.

    python examples/convert_spikingjelly.py [--epochs 3] [--lava-samples 10]
"""
import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

import sj2lava
from sj2lava.demo import digits
from sj2lava.train import rate_code


def spikingjelly_net() -> nn.Sequential:
    net = nn.Sequential(
        layer.Conv2d(1, 16, 3, padding=1, bias=False), layer.BatchNorm2d(16),
        neuron.IFNode(surrogate_function=surrogate.ATan()),
        layer.AvgPool2d(2), neuron.IFNode(surrogate_function=surrogate.ATan()),
        layer.Flatten(), layer.Dropout(0.2),
        layer.Linear(16 * 8 * 8, 10, bias=False), neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()),
    )
    functional.set_step_mode(net, "m")
    return net


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--train-samples", type=int, default=None)
    ap.add_argument("--test-samples", type=int, default=100)
    ap.add_argument("--lava-samples", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("spikingjelly.net"))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    (x_tr, y_tr), (x_te, y_te) = digits()
    x_tr, y_tr = x_tr[:args.train_samples], y_tr[:args.train_samples]
    x_te, y_te = x_te[:args.test_samples], y_te[:args.test_samples]
    net = spikingjelly_net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    for epoch in range(args.epochs):  # plain SpikingJelly training, nothing sj2lava-specific
        net.train()
        for i in range(0, len(y_tr), 32):
            functional.reset_net(net)
            out = net(rate_code(x_tr[i:i + 32], args.steps, gen))
            loss = F.cross_entropy(out.sum(0), y_tr[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}")
    net.eval()
    functional.reset_net(net)
    x = rate_code(x_te, args.steps, torch.Generator().manual_seed(2))
    blocks = sj2lava.convert(net, example_input=x)
    path = sj2lava.export(blocks, args.out, (1, 16, 16))
    report = sj2lava.verify(net, path, x, labels=y_te, lava_samples=args.lava_samples, containers=blocks)
    print(report)
    return 0 if report.exact else 1


if __name__ == "__main__":
    sys.exit(main())
