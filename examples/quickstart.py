"""Quickstart: a SpikingJelly-style net of BlockContainers -> lava-dl blocks -> .net -> Lava, same spikes.

    python examples/quickstart.py [--steps 16] [--batch 2]
"""
import argparse
import tempfile
from pathlib import Path

import torch
from spikingjelly.activation_based import neuron, surrogate

import sj2lava


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        sj2lava.BlockContainer(torch.nn.Conv2d(1, 8, 3, padding=1, bias=False),
                               neuron.IFNode(surrogate_function=surrogate.ATan()), step_mode="m"),
        sj2lava.BlockContainer(sj2lava.SumPool2d(2), neuron.IFNode(), step_mode="m"),
        sj2lava.BlockContainer(torch.nn.Flatten(), None, step_mode="m"),
        sj2lava.BlockContainer(torch.nn.Linear(8 * 7 * 7, 10), neuron.LIFNode(tau=2.0), step_mode="m"))
    with torch.no_grad():
        net[0].synapse.weight.mul_(5)
        net[3].synapse.weight.mul_(8)
    x = (torch.rand(args.steps, args.batch, 1, 14, 14) < 0.3).float()  # [T, N, C, H, W] spikes
    out = net(x)
    lava_dl = torch.nn.Sequential(*[b.to_lava_block() for b in net])
    same_as_lava_dl = torch.equal(out, sj2lava.NXT_to_TNX(lava_dl(sj2lava.TNX_to_NXT(x))))
    with tempfile.TemporaryDirectory() as d:
        path = sj2lava.export(net, Path(d) / "quickstart.net")
        same_as_lava = torch.equal(out, sj2lava.run_lava(path, x))
    print(f"{int(out.sum())} output spikes; equal to lava-dl: {same_as_lava_dl}; equal to Lava: {same_as_lava}")
    return 0 if same_as_lava_dl and same_as_lava else 1


if __name__ == "__main__":
    raise SystemExit(main())
