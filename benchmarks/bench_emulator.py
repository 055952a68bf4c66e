"""Emulator vs Lava throughput on the seed MNIST conv net, measured in one run on the same machine.

Lava's steady rate (time steps/s, batch 1) is taken from two runs of different length, so its ~3 s
compile cancels out; it and the emulator's batch-256 rate are each the median of three measurements.
The emulator's rate (default backend: the C kernel on the CPU) is sample-steps/s at batch 1 and 256, the
torch backend's at batch 256 for comparison, plus a full 10,000-sample x 32-step evaluation. Peak memory
is the emulator process's maximum resident set.

    python benchmarks/bench_emulator.py [--samples 10000] [--steps 32]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_block import sj2lava_net  # noqa: E402

REPEATS = 3  # rates are the median of this many runs, Lava's and the emulator's alike


def seed_file(folder: Path) -> Path:
    import sj2lava

    net = sj2lava_net()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.mul_(5)
        net(torch.zeros(2, 1, 1, 28, 28))
    return sj2lava.export(net, folder / "seed.net")


def emulator_part(path: str, samples: int, steps: int) -> dict:
    """Runs in a child process so that its peak memory is its own."""
    import sj2lava

    spec = sj2lava.load(path)
    g = torch.Generator().manual_seed(0)
    x1 = (torch.rand(steps, 1, 1, 28, 28, generator=g) < 0.2).float()
    x256 = (torch.rand(steps, 256, 1, 28, 28, generator=g) < 0.2).float()
    sj2lava.emulate(spec, x1)  # warm up
    t = time.perf_counter()
    for _ in range(5):
        sj2lava.emulate(spec, x1)
    b1 = 5 * steps / (time.perf_counter() - t)
    sj2lava.emulate(spec, x256[:, :2])  # warm up
    rates = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        sj2lava.emulate(spec, x256)
        rates.append(256 * steps / (time.perf_counter() - t))
    b256 = statistics.median(rates)
    t = time.perf_counter()
    sj2lava.emulate(spec, x256, backend="torch")
    torch256 = 256 * steps / (time.perf_counter() - t)
    # the full evaluation: rate-coded random images, 256 at a time
    t = time.perf_counter()
    done = 0
    while done < samples:
        n = min(256, samples - done)
        sj2lava.emulate(spec, (torch.rand(steps, n, 1, 28, 28, generator=g) < 0.2).float())
        done += n
    full = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    return dict(b1=b1, b256=b256, torch256=torch256, full=full, peak_mib=peak)


def lava_rate(path: Path, steps: int) -> float:
    import sj2lava

    g = torch.Generator().manual_seed(1)
    sj2lava.run_lava(path, torch.zeros(2, 1, 1, 28, 28))  # imports and first-time costs
    rates = []
    for _ in range(REPEATS):
        times = {}
        for n in (steps, 5 * steps):
            x = (torch.rand(n, 1, 1, 28, 28, generator=g) < 0.2).float()
            t = time.perf_counter()
            sj2lava.run_lava(path, x)
            times[n] = time.perf_counter() - t
        rates.append(4 * steps / (times[5 * steps] - times[steps]))
    return statistics.median(rates)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--emulator-part", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.emulator_part:
        print(json.dumps(emulator_part(args.emulator_part, args.samples, args.steps)))
        return None
    with tempfile.TemporaryDirectory() as d:
        path = seed_file(Path(d))
        child = subprocess.run([sys.executable, __file__, "--emulator-part", str(path), "--samples",
                                str(args.samples), "--steps", str(args.steps)],
                               capture_output=True, text=True, check=True)
        emu = json.loads(child.stdout.strip().splitlines()[-1])
        lava = lava_rate(path, args.steps)
    print(f"seed MNIST conv net, T={args.steps}, {torch.get_num_threads()} threads, CPU")
    print(f"  Lava Loihi2SimCfg(fixed_pt), batch 1: {lava:10,.1f} time steps/s (steady, compile excluded)")
    print(f"  emulator, batch 1:                    {emu['b1']:10,.0f} sample-steps/s   {emu['b1'] / lava:7,.0f}x Lava")
    ratio = emu["b256"] / lava
    print(f"  emulator, batch 256:                  {emu['b256']:10,.0f} sample-steps/s   {ratio:7,.0f}x Lava")
    print(f"  emulator torch backend, batch 256:    {emu['torch256']:10,.0f} sample-steps/s   "
          f"{emu['torch256'] / lava:7,.0f}x Lava")
    print(f"  emulated evaluation of {args.samples:,} samples x {args.steps} steps: {emu['full']:.1f} s "
          f"(Lava would need ~{args.samples * args.steps / lava / 3600:.1f} h)")
    print(f"  emulator peak memory (process RSS): {emu['peak_mib']:,.0f} MiB")
    return emu, lava


if __name__ == "__main__":
    main()
