"""Emulator vs Lava throughput on the seed MNIST conv net, measured in one run on the same machine.

Lava's steady rate (time steps/s, batch 1) is taken from two runs of different length, so its ~3 s
compile cancels out; it and the emulator's batch-256 rate are each the median of three measurements.
The emulator's rate (default backend: the C kernel on the CPU) is sample-steps/s at batch 1 and 256, the
torch backend's at batch 256 for comparison, plus a full 10,000-sample x 32-step evaluation. Peak memory
is the emulator process's maximum resident set.

Then lava-dl's own PilotNet files, as lava-dl drives them: PilotNet-LIF (the image as the input neurons'
bias, a reset every 16 steps, 16 steps a sample) and PilotNet-SDNN (the image as graded input, 9 steps),
Lava's steady rate from runs of one and four sample lengths (the median of three pairs) against the emulator at
batch 256 on both backends (torch, one run; the 'events' C kernel, the median of three).

For each net, the C kernel's time per layer (thread time per sample-step, from the kernel's own clock reads) and
the int8 multiply-adds per second it achieves there, counted dense-equivalent (every synapse of every input, spike
or not: what a dense int8 GEMM would do), against this machine's measured peak of the dot path's instruction
(VPDPBUSD on registers, one thread): a sparse layer on the event path can pass 100%.

    python benchmarks/bench_emulator.py [--samples 10000] [--steps 32] [--skip-pilotnet]
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

import numpy as np
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


def layer_rows(spec, seconds: np.ndarray, sample_steps: int) -> list:
    """Per kernel layer: (what it is, its thread time per sample-step in microseconds, its dense-equivalent int8
    multiply-adds per sample-step), from a ``LayerTimer``'s seconds over ``sample_steps``."""
    from sj2lava.emulator import compiled

    layers = [l for l in compiled.compile_net(spec) if l.kind != "flatten"]  # the kernel's layers, in order
    rows = []
    for l, sec in zip(layers, seconds):
        w = l.weight
        macs = 0 if w is None else int(np.prod(l.out_shape)) * int(np.prod(w.shape[1:]))  # conv: Ci/groups*kh*kw
        name = l.kind + ("(graded in)" if l.graded_in else "") + " -> " + "x".join(map(str, l.out_shape))
        rows.append((name, float(sec) / sample_steps * 1e6, macs))
    return rows


def timed_layers(spec, sample_steps: int, **kw) -> list:
    """One more emulate call (``kw``) with the kernel's per-layer clock on: :func:`layer_rows` of it."""
    import sj2lava
    from sj2lava.emulator import ckernel

    with ckernel.LayerTimer() as timer:
        sj2lava.emulate(spec, backend="events", **kw)
    return layer_rows(spec, timer.seconds, sample_steps)


def dot_peaks() -> dict:
    """The dot path's measured peak (int8 MAC/s): one thread alone, and per thread with all the kernel's threads
    running at once (what each gets while the emulator runs: on SMT siblings, less)."""
    from sj2lava.emulator import ckernel

    n = torch.get_num_threads()
    return dict(one=ckernel.dot_peak(1), per_thread=ckernel.dot_peak(n) / n, threads=n)


def print_layers(rows: list, peaks: dict) -> None:
    """The per-layer table: time, and dense-equivalent int8 MAC/s per thread against the per-thread peak."""
    total = sum(r[1] for r in rows)
    macs = sum(r[2] for r in rows)
    peak = peaks["per_thread"]
    print(f"  C kernel per layer: thread time per sample-step, and int8 MAC/s per thread (dense-equivalent) against "
          f"the measured VPDPBUSD peak, {peak / 1e9:,.0f} G/s per thread with {peaks['threads']} running "
          f"({peaks['one'] / 1e9:,.0f} G/s for one alone):")
    for name, us, m in rows:
        rate = m / (us * 1e-6) if m and us else 0.0
        share = f"{rate / 1e9:8.1f} GMAC/s {100 * rate / peak:5.0f}% of peak" if m and peak else ""
        print(f"    {name:34s} {us:9.1f} us {100 * us / total:5.1f}%  {share}")
    print(f"    {'all layers':34s} {total:9.1f} us        {macs / (total * 1e-6) / 1e9:8.1f} GMAC/s "
          f"{100 * macs / (total * 1e-6) / peak if peak else 0:5.0f}% of peak")


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
    layers = timed_layers(spec, 256 * steps, x=x256)
    peaks = dot_peaks()
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
    full = time.perf_counter() - t  # (peak memory: ru_maxrss is KiB on Linux)
    return dict(b1=b1, b256=b256, torch256=torch256, full=full, peak_mib=resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1024, layers=layers, dot_peak=peaks)


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


def _pilotnet_inputs(which: str, batch: int):
    """(file, emulate/run_lava keywords for ``batch`` samples, steps per sample) of lava-dl's shipped PilotNet."""
    import numpy as np
    from lava.lib.dl import netx

    folder = Path(netx.__file__).parents[4] / "tests" / "lava" / "lib" / "dl" / "netx" / "gts" / f"pilotnet_{which}"
    if which == "lif":
        image = torch.from_numpy(np.load(folder / "image.npy").astype(np.int64).transpose(2, 1, 0).copy())
        return folder / "network.net", dict(input_bias=image.expand(batch, *image.shape), reset_interval=16), 16
    x = torch.from_numpy(np.load(folder / "input.npy").astype(np.int32).transpose(3, 2, 1, 0).copy())  # [1, C, H, W]
    return folder / "network.net", dict(x=x.unsqueeze(1).expand(9, batch, *x.shape[1:]).contiguous()), 9


def pilotnet_part(which: str) -> dict:
    """The emulator's batch-256 rate on a PilotNet file (in its own process, for its peak memory)."""
    import sj2lava

    path, kw, steps = _pilotnet_inputs(which, 256)
    spec = sj2lava.load(path)
    if "x" not in kw:
        kw["num_steps"] = steps
    small = {k: (v[:, :2] if k == "x" else v[:2] if k == "input_bias" else v) for k, v in kw.items()}
    rates = {}
    for backend in ("torch", "events"):
        sj2lava.emulate(spec, backend=backend, **small)  # warm up
        runs = []
        for _ in range(1 if backend == "torch" else REPEATS):  # the torch backend needs seconds: one run
            t = time.perf_counter()
            sj2lava.emulate(spec, backend=backend, **kw)
            runs.append(256 * steps / (time.perf_counter() - t))
        rates[backend] = statistics.median(runs)
    return dict(rates=rates, peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                layers=timed_layers(spec, 256 * steps, **kw), dot_peak=dot_peaks())


def pilotnet_lava_rate(which: str, longer: int = 4) -> float:
    """Lava's steady stepping rate (time steps/s) on a PilotNet file: runs of one sample's steps and of ``longer``
    times as many, the difference of their times (which cancels compiling and starting), the median of
    ``REPEATS`` such pairs."""
    import sj2lava

    path, kw, steps = _pilotnet_inputs(which, 1)
    rates = []
    for _ in range(REPEATS):
        times = {}
        for k in (1, longer):
            run = dict(kw)
            if "x" in run:
                run["x"] = run["x"].repeat(k, 1, 1, 1, 1)
            else:
                run["num_steps"] = k * steps
            t = time.perf_counter()
            sj2lava.run_lava(path, **run)
            times[k] = time.perf_counter() - t
        rates.append((longer - 1) * steps / (times[longer] - times[1]))
    return statistics.median(rates)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--skip-pilotnet", action="store_true", help="only the seed MNIST net")
    ap.add_argument("--emulator-part", help=argparse.SUPPRESS)
    ap.add_argument("--pilotnet-part", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.emulator_part:
        print(json.dumps(emulator_part(args.emulator_part, args.samples, args.steps)))
        return None
    if args.pilotnet_part:
        print(json.dumps(pilotnet_part(args.pilotnet_part)))
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
    print_layers(emu["layers"], emu["dot_peak"])
    if args.skip_pilotnet:
        return emu, lava
    for which, what in (("lif", "bias image, reset every 16 steps, 16 steps"), ("sdnn", "graded input, 9 steps")):
        child = subprocess.run([sys.executable, __file__, "--pilotnet-part", which], capture_output=True, text=True,
                               check=True)
        part = json.loads(child.stdout.strip().splitlines()[-1])
        rate = pilotnet_lava_rate(which)
        print(f"lava-dl's PilotNet-{which.upper()} ({what}), {torch.get_num_threads()} threads, CPU")
        print(f"  Lava Loihi2SimCfg(fixed_pt), batch 1: {rate:10,.2f} time steps/s (steady, compile excluded)")
        for backend, r in part["rates"].items():
            print(f"  emulator {backend + ' backend, batch 256:':<29s}{r:10,.0f} sample-steps/s   "
                  f"{r / rate:7,.0f}x Lava   (peak RSS {part['peak_mib']:,.0f} MiB)")
        print_layers(part["layers"], part["dot_peak"])
    return emu, lava


if __name__ == "__main__":
    main()
