"""Export time and Lava (CPU simulation of Loihi) throughput for the seed MNIST conv net; then what ``run_lava``
adds to Lava's own stepping on lava-dl's PilotNet-LIF file, against Lava's own way of doing it.

Lava's CPU simulation is the slow, trusted baseline that sj2lava's emulator must beat. ``run_lava`` records every
layer's spikes, resets the states between samples and sets each sample's bias image with Lava processes of its own
that go through files; Lava's own ``RingBuffer``, ``Monitor`` and ``Var.set`` (``sj2lava.netx.lava.HOST_IO = True``)
move one value per channel message. Both are timed in the same run, with their results compared.

    python benchmarks/bench_lava.py [--samples 3] [--T 16] [--skip-pilotnet]
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
    ap.add_argument("--skip-pilotnet", action="store_true", help="skip the PilotNet-LIF recording comparison "
                                                                  "(about 3 minutes, mostly Lava's own way)")
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
    if not args.skip_pilotnet:
        pilotnet_io()


def pilotnet_io() -> None:
    """PilotNet-LIF in Lava: every layer's spikes of one sample (15 steps), and the output of three samples (16 steps
    each, reset and a new bias image between them), recorded and reset by run_lava's probes and Lava's own way."""
    import numpy as np
    from lava.lib.dl import netx

    import sj2lava
    from sj2lava.netx import lava as lava_module

    folder = Path(netx.__file__).parents[4] / "tests" / "lava" / "lib" / "dl" / "netx" / "gts" / "pilotnet_lif"
    path = folder / "network.net"
    image = torch.from_numpy(np.load(folder / "image.npy").astype(np.int64).transpose(2, 1, 0).copy())
    runs = {"10 layers, 1 sample x 15 steps": dict(input_bias=image, num_steps=15, reset_interval=16,
                                                   all_layers=True),
            "output, 3 samples x 16 steps": dict(input_bias=torch.stack([image, image // 2, image // 4]),
                                                 num_steps=16, reset_interval=16)}
    print("lava-dl's PilotNet-LIF in run_lava: recording, resets and bias images")
    for what, kw in runs.items():
        took, outs = {}, {}
        for host_io in (False, True):
            lava_module.HOST_IO = host_io
            try:
                t = time.perf_counter()
                outs[host_io] = sj2lava.run_lava(path, **kw)
                took[host_io] = time.perf_counter() - t
            finally:
                lava_module.HOST_IO = False
        a, b = ([o] if isinstance(o, torch.Tensor) else o for o in (outs[False], outs[True]))
        same = all(torch.equal(x, y) for x, y in zip(a, b))
        print(f"  {what}: {took[False]:6.1f} s (Lava's own way {took[True]:6.1f} s, {took[True] / took[False]:5.1f}x; "
              f"same spikes: {same})")


if __name__ == "__main__":
    main()
