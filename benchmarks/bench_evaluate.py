"""`evaluate` against the plain loop of `emulate` calls it wraps, in one run on the same machine.

The net (1x28x28, IF neurons, 8-bit weights): conv 3x3 1->16 p1 | sum-pool 2 | conv 3x3 16->32 p1 | sum-pool 2 |
dense 1568->10. Both sides classify the same rate-coded images (``rate_encoder(steps)``, batches of 256):
``evaluate`` counts accuracy and the workload metrics (spikes, activation sparsity, synaptic operations) of every
layer; the loop only runs ``emulate`` and takes each batch's argmax. Each side runs in a child process, so its peak
memory (maximum resident set) is its own.

    python benchmarks/bench_evaluate.py [--samples 10000] [--steps 32]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn


def net_file(folder: Path) -> Path:
    import sj2lava

    torch.manual_seed(0)
    blocks = nn.Sequential(
        sj2lava.BlockContainer(nn.Conv2d(1, 16, 3, padding=1, bias=False), sj2lava.CubaLIFNode(1.0, 0.0, 1.0), "m"),
        sj2lava.BlockContainer(sj2lava.SumPool2d(2), sj2lava.CubaLIFNode(1.0, 0.0, 1.0), "m"),
        sj2lava.BlockContainer(nn.Conv2d(16, 32, 3, padding=1, bias=False), sj2lava.CubaLIFNode(1.0, 0.0, 1.0), "m"),
        sj2lava.BlockContainer(sj2lava.SumPool2d(2), sj2lava.CubaLIFNode(1.0, 0.0, 1.0), "m"),
        sj2lava.BlockContainer(nn.Flatten(), None, "m"),
        sj2lava.BlockContainer(nn.Linear(1568, 10, bias=False), sj2lava.CubaLIFNode(1.0, 0.0, 1.0), "m"),
    )
    with torch.no_grad():
        for m in blocks.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.uniform_(-1.0, 2.0)
    return sj2lava.export(blocks, folder / "mnist_like.net", (1, 28, 28))


def data(samples: int):
    g = torch.Generator().manual_seed(1)
    return torch.rand(samples, 1, 28, 28, generator=g), torch.randint(0, 10, (samples,), generator=g)


def part(which: str, path: str, samples: int, steps: int) -> dict:
    """One side, in a child process."""
    import sj2lava
    from sj2lava.train import batches, rate_encoder

    x, y = data(samples)
    spec = sj2lava.load(path)
    sj2lava.emulate(spec, torch.zeros(steps, 2, 1, 28, 28))  # warm up (builds the kernel's tables)
    t = time.perf_counter()
    if which == "evaluate":
        result = sj2lava.evaluate(path, (x, y), steps=steps, spec=spec, progress=False)
        accuracy, synops = result.accuracy, result.metrics.synops_per_sample
    else:
        encode, ok = rate_encoder(steps), 0
        for xb, yb in batches((x, y), 256):
            out = sj2lava.emulate(spec, encode(xb), window="aligned")
            ok += int((out.sum(0).reshape(len(yb), -1).argmax(1) == yb).sum())
        accuracy, synops = ok / samples, float("nan")
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return dict(seconds=seconds, peak_mib=peak, accuracy=accuracy, synops=synops)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--part", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.part:
        print(json.dumps(part(args.part, args.path, args.samples, args.steps)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = str(net_file(Path(tmp)))
        res = {}
        for which in ("emulate loop", "evaluate"):
            cmd = [sys.executable, __file__, "--part", which.split()[0], "--path", path, "--samples",
                   str(args.samples), "--steps", str(args.steps)]
            res[which] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    loop, ev = res["emulate loop"], res["evaluate"]
    print(f"{args.samples} samples x {args.steps} steps, batches of 256 (conv-pool-conv-pool-dense, 1x28x28)")
    for name, r in res.items():
        print(f"  {name:<13} {r['seconds']:7.2f} s  {args.samples * args.steps / r['seconds']:>10,.0f} "
              f"sample-steps/s  peak {r['peak_mib']:7,.0f} MiB  accuracy {r['accuracy']:.4f}")
    print(f"  evaluate / loop: time {ev['seconds'] / loop['seconds']:.2f}x, peak memory "
          f"{ev['peak_mib'] / loop['peak_mib']:.2f}x (synops/sample {ev['synops']:,.0f}); the two accuracies "
          f"{'agree' if abs(ev['accuracy'] - loop['accuracy']) < 1e-12 else 'DIFFER'}")


if __name__ == "__main__":
    main()
