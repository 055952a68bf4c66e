"""Training throughput of the seed MNIST conv net: sj2lava vs SpikingJelly lava_exchange vs lava-dl.

Net (1x28x28): conv 3x3 16ch p1 | conv 2x2 s2 | conv 3x3 p1 | conv 2x2 s2 | dense 784->128 | dense 128->10,
IF neurons, 8-bit weights. Measures forward + backward sample-steps per second (batch * T per second)
of the implementations in one run on the same machine, and prints the ratios.

    python benchmarks/bench_block.py [--T 16] [--batch 32] [--iters 5]              # CPU
    python benchmarks/bench_block.py --device cuda                                   # GPU

On CUDA it runs (T, batch) = (16, 32), (32, 128), (32, 512) and adds sj2lava's fused Triton kernels
next to its reference path, and each implementation's peak GPU memory. lava-dl's JIT kernels are
built for the GPU present (lava-dl 0.6.0 hard-codes sm_80, which fails on Hopper).
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


def sj2lava_net(backend: str = "auto"):
    from sj2lava import BlockContainer, CubaLIFNode

    return nn.Sequential(*[
        BlockContainer(s, None if isinstance(s, nn.Flatten) else CubaLIFNode(1.0, 0.0, 1.0, backend=backend), "m")
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


def fix_lava_dl_arch() -> None:
    """lava-dl 0.6.0 JIT-compiles for sm_80 whenever the major capability is >= 8; build for this GPU."""
    if torch.cuda.is_available():
        from lava.lib.dl.slayer import jitconfig

        major, minor = torch.cuda.get_device_capability()
        jitconfig.TORCH_CUDA_ARCH_LIST = f"{major}.{minor}"


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


def _one_iteration(net, x) -> float:
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    reset(net)
    net(x).sum().backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def throughput(net, x, iters, warmup=1):
    """Forward+backward sample-steps per second on input ``x`` (median of ``iters`` timed iterations)."""
    steps, batch = (x.shape[0], x.shape[1]) if x.dim() == 5 and x.shape[2] == 1 else (x.shape[-1], x.shape[0])
    for _ in range(warmup):
        _one_iteration(net, x)
    times = sorted(_one_iteration(net, x) for _ in range(iters))
    return batch * steps / times[len(times) // 2]


def run_config(steps: int, batch: int, iters: int, dev: torch.device) -> dict:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(steps, batch, 1, 28, 28, generator=g) < 0.2).float().to(dev)
    x_nxt = x.permute(1, 2, 3, 4, 0).contiguous()
    nets = {"sj2lava BlockContainer": (lambda: sj2lava_net("auto"), x)}
    if dev.type == "cuda":
        nets = {"sj2lava fused (Triton)": (lambda: sj2lava_net("triton"), x),
                "sj2lava reference (torch)": (lambda: sj2lava_net("torch"), x)}
    nets["SpikingJelly lava_exchange"] = (spikingjelly_net, x)
    nets["lava-dl slayer blocks"] = (lava_dl_net, x_nxt)
    # interleave the implementations, one iteration each per round, so that machine noise hits all alike
    built = {name: build().to(dev) for name, (build, _) in nets.items()}
    for name, net in built.items():
        _one_iteration(net, nets[name][1])  # warm-up (and lava-dl's JIT build)
    times = {name: [] for name in built}
    for _ in range(iters):
        for name, net in built.items():
            times[name].append(_one_iteration(net, nets[name][1]))
    results = {}
    for name, net in built.items():
        peak = float("nan")
        if dev.type == "cuda":  # peak memory of one iteration of this implementation alone
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            _one_iteration(net, nets[name][1])
            peak = torch.cuda.max_memory_allocated() / 2**20
        ts = sorted(times[name])
        results[name] = (batch * steps / ts[len(ts) // 2], peak)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--iters", type=int, default=7, help="timed rounds (median reported)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        fix_lava_dl_arch()
    configs = [(16, 32), (32, 128), (32, 512)] if dev.type == "cuda" else [(16, 32)]
    if args.T or args.batch:
        configs = [(args.T or 16, args.batch or 32)]
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    all_results = {}
    for steps, batch in configs:
        results = run_config(steps, batch, args.iters, dev)
        all_results[(steps, batch)] = results
        first = next(iter(results.values()))[0]
        print(f"seed MNIST conv net, T={steps}, batch={batch}, {where}, forward+backward")
        for name, (rate, peak) in results.items():
            mem = f"   peak {peak:8,.0f} MiB" if peak == peak else ""
            print(f"  {name:28s} {rate:12,.0f} sample-steps/s   first / this = {first / rate:5.2f}x{mem}")
    return all_results


if __name__ == "__main__":
    main()
