"""The main job (``make demo`` / ``sj2lava demo``): train, convert, export, run on simulated Loihi, verify.

1. Train the seed MNIST conv net's shape (BlockContainers, IF neurons, ATan surrogate, rate-coded
   input, T=16) on scikit-learn's 8x8 digits (shipped inside the package: no network), upscaled to
   16x16, with a progress bar per epoch.
2. Convert and export ``demo.net``.
3. Run the test split through the containers and lava-dl's blocks, and a subset through Lava's
   fixed-point CPU simulation of Loihi (it runs ~20 steps/s); print per-stage accuracies and the
   per-layer spike agreement.
4. Save a figure: accuracy per stage and the output spike raster of one sample, Lava vs container.

Seeds are fixed: two runs print the same accuracies and spike counts. (An entry point: it prints.)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
from torch import nn

from .train import rate_code

STEPS = 16


def digits(seed: int = 0):
    """scikit-learn's digits as [N, 1, 16, 16] intensities in [0, 1] and labels, split 80/20."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32) / 16.0
    x = x.repeat_interleave(2, 1).repeat_interleave(2, 2).unsqueeze(1)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(y))
    return (x[perm[:cut]], y[perm[:cut]]), (x[perm[cut:]], y[perm[cut:]])


def seed_net(width: int = 16, image: int = 16) -> nn.Sequential:
    """The seed MNIST conv net's shape for ``image`` x ``image`` input (conv 3x3 p1 | conv 2x2 s2 |
    conv 3x3 p1 | conv 2x2 s2 | dense 128 | dense 10), IF neurons with the ATan surrogate."""
    from . import BlockContainer as B
    from ._deps import quiet_import

    neuron = quiet_import("spikingjelly.activation_based.neuron")  # its import prints dataset notices
    surrogate = quiet_import("spikingjelly.activation_based.surrogate")

    def if_node():
        return neuron.IFNode(surrogate_function=surrogate.ATan())

    return nn.Sequential(
        B(nn.Conv2d(1, width, 3, padding=1, bias=False), if_node(), "m"),
        B(nn.Conv2d(width, width, 2, stride=2, bias=False), if_node(), "m"),
        B(nn.Conv2d(width, width, 3, padding=1, bias=False), if_node(), "m"),
        B(nn.Conv2d(width, width, 2, stride=2, bias=False), if_node(), "m"),
        B(nn.Flatten(), None, "m"),
        B(nn.Linear(width * (image // 4) ** 2, 128, bias=False), if_node(), "m"),
        B(nn.Linear(128, 10, bias=False), if_node(), "m"),
    )


def train(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor, epochs: int, steps: int, seed: int,
          progress: bool = True) -> List[float]:
    """Quantization-aware training with surrogate gradients (:func:`sj2lava.finetune` from weights scaled
    so that every IF layer is active); returns the mean loss per epoch."""
    from .train import finetune

    with torch.no_grad():  # start with every layer active (IF neurons, threshold 1)
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(3.0)
    gen = torch.Generator().manual_seed(seed)  # shuffles each epoch, then rate-codes each batch
    return finetune(net, (x, y), epochs, encoder=lambda b: rate_code(b, steps, gen), lr=3e-3, batch_size=32,
                    progress=progress, shuffle=gen)


def figure(report, path: Path, sample: int = 0) -> Path:
    """Accuracy per stage, and one sample's output raster: Lava vs container."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    names = [s.name for s in report.stages if s.accuracy is not None]
    accs = [100 * s.accuracy for s in report.stages if s.accuracy is not None]
    counts = [s.samples for s in report.stages if s.accuracy is not None]
    bars = a.bar(names, accs, color=["#999999", "#4477aa", "#66ccee", "#228833"][-len(names):])
    for r, acc, n in zip(bars, accs, counts):
        a.text(r.get_x() + r.get_width() / 2, acc + 1, f"{acc:.1f}%\nn={n}", ha="center", fontsize=9)
    a.set_ylim(0, 110)
    a.set_ylabel("test accuracy (%)")
    a.set_title("digits: accuracy per stage")
    cont = report.stage("containers").output[:, sample].reshape(report.steps, -1)
    lava = report.stage("lava").output[:, sample].reshape(report.steps, -1)
    tc, nc = torch.nonzero(cont, as_tuple=True)
    tl, nl = torch.nonzero(lava, as_tuple=True)
    b.scatter(tc, nc, marker="o", s=80, facecolors="none", edgecolors="#4477aa", label="container")
    b.scatter(tl, nl, marker="x", s=40, color="#228833", label="Lava (Loihi2SimCfg fixed_pt)")
    b.set_xlabel("time step")
    b.set_ylabel("output neuron (class)")
    b.set_yticks(range(10))
    b.set_xlim(-0.5, report.steps - 0.5)
    b.set_title(f"output spikes of test sample {sample}: "
                f"{int((cont != lava).sum())} mismatches")
    b.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="sj2lava demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    ap.add_argument("--steps", type=int, default=STEPS, help=f"time steps per sample (default {STEPS})")
    ap.add_argument("--lava-samples", type=int, default=20, help="test samples run in Lava (slow)")
    ap.add_argument("--test-samples", type=int, default=None, help="limit the test split (default: all)")
    ap.add_argument("--train-samples", type=int, default=None, help="limit the training split")
    ap.add_argument("--out", type=Path, default=Path("demo_out"),
                    help="folder for demo.net, the test data (x.npy, test.npz) and demo.png (default demo_out)")
    args = ap.parse_args(argv)

    from . import export, load, verify

    torch.manual_seed(0)
    (x_tr, y_tr), (x_te, y_te) = digits()
    x_tr, y_tr = x_tr[:args.train_samples], y_tr[:args.train_samples]
    x_te, y_te = x_te[:args.test_samples], y_te[:args.test_samples]
    print(f"sj2lava demo: scikit-learn digits upscaled to 16x16, {len(y_tr)} train / {len(y_te)} test, "
          f"T={args.steps}, rate coding")
    net = seed_net()
    t0 = time.perf_counter()
    losses = train(net, x_tr, y_tr, args.epochs, args.steps, seed=1)
    print(f"1. trained {args.epochs} epochs in {time.perf_counter() - t0:.0f} s, loss "
          f"{losses[0]:.3f} -> {losses[-1]:.3f}")

    args.out.mkdir(parents=True, exist_ok=True)
    path = export(net, args.out / "demo.net")
    print(f"2. exported {path}:")
    print(load(path).table())

    x = rate_code(x_te, args.steps, torch.Generator().manual_seed(2))
    np.save(args.out / "x.npy", x.numpy())  # what `sj2lava run` and `sj2lava eval` take (README)
    np.savez(args.out / "test.npz", x=x_te.numpy(), y=y_te.numpy())
    t1 = time.perf_counter()
    report = verify(net, path, x, labels=y_te, lava_samples=args.lava_samples, progress=True)
    print(f"3. the test split through containers and lava-dl ({len(y_te)} samples) and Lava "
          f"({report.stage('lava').samples} samples), {time.perf_counter() - t1:.0f} s:")
    print(report)
    fig = figure(report, args.out / "demo.png")
    print(f"4. figure written to {fig.resolve()}")
    return 0 if report.exact else 1


if __name__ == "__main__":
    sys.exit(main())
