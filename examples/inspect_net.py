"""Inspect a NetX .net file: its layers, neuron parameters, weight ranges and sizes.

    python examples/inspect_net.py FILE.net
    python examples/inspect_net.py --example    # writes and inspects a small example net first
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

import sj2lava


def example_net(path: Path) -> Path:
    torch.manual_seed(0)
    net = nn.Sequential(
        sj2lava.BlockContainer(nn.Conv2d(2, 8, 3, padding=1), sj2lava.CubaLIFNode(1.0, 0.1, 0.8), "m"),
        sj2lava.BlockContainer(sj2lava.SumPool2d(2), sj2lava.CubaLIFNode(1.0, 0.0, 1.0), "m"),
        sj2lava.BlockContainer(nn.Flatten(), None, "m"),
        sj2lava.BlockContainer(nn.Linear(8 * 4 * 4, 10), sj2lava.CubaLIFNode(0.5, 0.2, 0.6), "m"))
    return sj2lava.export(net, path, (2, 8, 8))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", nargs="?", type=Path)
    ap.add_argument("--example", action="store_true")
    args = ap.parse_args(argv)
    if args.example:
        args.file = example_net(args.file or Path("example.net"))
    if args.file is None:
        ap.error("give a .net file or --example")
    try:
        spec = sj2lava.load(args.file)
    except sj2lava.NetFileError as e:
        print(f"inspect_net: {e}", file=sys.stderr)
        return 2
    print(f"{args.file}: input {spec.input_shape} -> output {spec.output_shape}, "
          f"{spec.synaptic_layers} synaptic layers (each adds one step of delay in Lava)")
    print(spec.table())
    for i, layer in enumerate(spec.layers):
        if layer.kind == "flatten":
            continue
        w = layer.weight
        print(f"layer {i} ({layer.kind}): {np.count_nonzero(w):,} of {w.size:,} weights non-zero, "
              f"{np.mean(np.abs(w)):.1f} mean |weight| (64 = 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
