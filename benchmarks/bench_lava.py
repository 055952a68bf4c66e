"""Export time and Lava (CPU simulation of Loihi) throughput for the seed MNIST conv net.

Lava's CPU simulation is the slow, trusted baseline that sj2lava's emulator must beat.

    python benchmarks/bench_lava.py [--samples 3] [--T 16]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_block import sj2lava_net  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--T", type=int, default=16)
    args = ap.parse_args(argv)
    import sj2lava

    net = sj2lava_net()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.mul_(5)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(args.T, args.samples, 1, 28, 28, generator=g) < 0.2).float()
    with torch.no_grad():
        y = net(x)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "seed.net"
        times = []
        for _ in range(5):
            t = time.perf_counter()
            sj2lava.export(net, path)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        y_lava = sj2lava.run_lava(path, x[:, :1], num_steps=2)  # compile + 2 steps
        startup = time.perf_counter() - t
        t = time.perf_counter()
        y_lava = sj2lava.run_lava(path, x)
        run = time.perf_counter() - t
    steps = args.T * args.samples
    print(f"seed MNIST conv net ({sum(p.numel() for p in net.parameters()):,} weights), T={args.T}")
    print(f"  export: median {statistics.median(times) * 1e3:.1f} ms over 5 runs")
    print(f"  run_lava: {args.samples} samples x {args.T} steps in {run:.1f} s "
          f"(startup ~{startup:.1f} s) = {steps / run:.1f} time steps/s, {args.samples / run:.2f} samples/s")
    print(f"  container == Lava: {int((y != y_lava).sum())} mismatches of {int(y.sum())} output spikes")


if __name__ == "__main__":
    main()
