"""`make demo`: a random net of BlockContainers equals lava-dl's blocks and, exported to a ``.net``
file, Lava's fixed-point CPU simulation of Loihi, spike for spike.

(An entry point: it prints. The full train -> convert -> export -> Lava job replaces this later.)
"""
from __future__ import annotations

import sys
import time

import torch
from torch import nn


def main(argv=None) -> int:
    from . import BlockContainer, CubaLIFNode, NXT_to_TNX, SumPool2d, TNX_to_NXT

    torch.manual_seed(0)
    blocks = nn.Sequential(
        BlockContainer(nn.Conv2d(1, 16, 3, padding=1, bias=False), CubaLIFNode(1.0, 0.0, 0.7), "m"),
        BlockContainer(SumPool2d(2), CubaLIFNode(1.0, 0.0, 1.0), "m"),
        BlockContainer(nn.Conv2d(16, 16, 3, padding=1, bias=False), CubaLIFNode(0.25, 0.25, 1.25), "m"),
        BlockContainer(nn.Conv2d(16, 16, 2, stride=2, bias=False), CubaLIFNode(1.0, 0.1, 0.5), "m"),
        BlockContainer(nn.Flatten(), None, "m"),
        BlockContainer(nn.Linear(16 * 7 * 7, 128, bias=False), CubaLIFNode(1.0, 0.0, 1.0), "m"),
        BlockContainer(nn.Linear(128, 10, bias=False), CubaLIFNode(0.5, 0.2, 0.3), "m"),
    )
    with torch.no_grad():
        for m in blocks.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(4)
    x = (torch.rand(32, 8, 1, 28, 28) < 0.25).float()  # [T, N, C, H, W]
    t0 = time.perf_counter()
    with torch.no_grad():
        outs, h = [], x
        for b in blocks:
            h = b(h)
            outs.append(h)
    t1 = time.perf_counter()
    lava = nn.Sequential(*[b.to_lava_block() for b in blocks])
    with torch.no_grad():
        ref, h = [], TNX_to_NXT(x).contiguous()
        for b in lava:
            h = b(h)
            ref.append(NXT_to_TNX(h))
    t2 = time.perf_counter()
    print("sj2lava BlockContainer vs lava-dl slayer.block.cuba, random 7-block net, T=32, batch 8")
    print(f"{'layer':>5}  {'block':<10} {'shape':<16} {'spikes':>8} {'mismatches':>10}")
    bad = 0
    for i, (b, o, r) in enumerate(zip(blocks, outs, ref)):
        mism = int((o != r).sum())
        bad += mism
        print(f"{i:>5}  {b.kind:<10} {str(tuple(o.shape[2:])):<16} {int(o.sum()):>8} {mism:>10}")
    print(f"container {t1 - t0:.2f} s, lava-dl {t2 - t1:.2f} s; total mismatches: {bad}")

    import tempfile
    from pathlib import Path

    from . import export, load, run_lava

    with tempfile.TemporaryDirectory() as d:
        path = export(blocks, Path(d) / "demo.net")
        print(f"\nexported {path.name}:")
        print(load(path).table())
        samples = 2
        t3 = time.perf_counter()
        y = run_lava(path, x[:, :samples])
        t4 = time.perf_counter()
    lava_bad = int((y != outs[-1][:, :samples]).sum())
    print(f"Lava Loihi2SimCfg(fixed_pt) on {samples} of the 8 samples ({t4 - t3:.1f} s): "
          f"{int(y.sum())} output spikes, {lava_bad} mismatches with the container")
    return 0 if bad == 0 and lava_bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
