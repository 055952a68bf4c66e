"""What the five tutorial scripts share: their data and the documented way down to Loihi.

The data: scikit-learn's 8x8 digits upsampled to MNIST's 28x28 (so every tutorial net keeps its exact layer shapes;
no download), and synthetic DVS-style event streams for the gesture net. The deployment is the README's path and
nothing else: ``convert(model, example_input=x[, approximate=True])``, ``finetune`` where something was approximated,
``export`` (strict), ``verify`` against the source model, the emulator and Lava.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

import sj2lava

Split = Tuple[torch.Tensor, torch.Tensor]


def digits28(seed: int = 0) -> Tuple[Split, Split]:
    """scikit-learn's digits as ``[N, 1, 28, 28]`` intensities in [0, 1] (bilinear from 8x8) and labels, 80/20."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1)
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(y))
    return (x[perm[:cut]], y[perm[:cut]]), (x[perm[cut:]], y[perm[cut:]])


def gestures(n: int, steps: int, seed: int, classes: int = 11, size: int = 32) -> Split:
    """Synthetic DVS gestures ``[steps, n, 2, size, size]`` (ON, OFF events) and labels: class ``k`` is a bright
    square moving at one pixel a step in direction ``2 pi k / classes`` from near the centre; ON events where it
    arrives, OFF where it leaves, plus 0.5% noise events."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    side = torch.randint(4, 8, (n,), generator=g)
    start = size / 2 + (torch.rand(n, 2, generator=g) - 0.5) * 6
    angle = 2 * math.pi * y.float() / classes
    vel = torch.stack([torch.sin(angle), torch.cos(angle)], 1)
    rows, cols = torch.arange(size).view(1, size, 1), torch.arange(size).view(1, 1, size)

    def frame(t: int) -> torch.Tensor:
        pos = (start + vel * t).round()
        top, left = (pos[:, 0] - side // 2).view(n, 1, 1), (pos[:, 1] - side // 2).view(n, 1, 1)
        s = side.view(n, 1, 1)
        return ((rows >= top) & (rows < top + s) & (cols >= left) & (cols < left + s)).float()

    prev = frame(0)
    x = torch.zeros(steps, n, 2, size, size)
    for t in range(steps):
        cur = frame(t + 1)
        x[t, :, 0], x[t, :, 1] = (cur > prev).float(), (prev > cur).float()
        prev = cur
    noise = torch.rand(x.shape, generator=g) < 0.005
    return torch.where(noise, 1 - x, x), y


def parser(doc: str, *, steps: int, epochs: int, finetune_epochs: int = 3) -> argparse.ArgumentParser:
    """The options every tutorial script takes (the suite runs them on tiny settings)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=steps, help="time steps T (default %(default)s)")
    ap.add_argument("--epochs", type=int, default=epochs, help="training epochs of the source model")
    ap.add_argument("--finetune-epochs", type=int, default=finetune_epochs,
                    help="sj2lava.finetune epochs where something was approximated")
    ap.add_argument("--train-samples", type=int, default=None, help="default: all 1437")
    ap.add_argument("--test-samples", type=int, default=None, help="default: all 360")
    ap.add_argument("--lava-samples", type=int, default=2, help="test samples also run in Lava")
    ap.add_argument("--out", type=Path, default=None, help="the .net file (default: <script>.net here)")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def subset(split: Split, n: Optional[int], axis: int = 0) -> Split:
    x, y = split
    return (x if n is None else x.narrow(axis, 0, min(n, x.shape[axis])), y[:n])


def train(step, params, data: Split, epochs: int, *, lr: float, batch: int = 32, axis: int = 0, seed: int = 0,
          opt: str = "adam") -> None:
    """The tutorials' plain PyTorch loop: ``step(x, y) -> loss`` on shuffled batches (``axis``: the batch axis)."""
    o = (torch.optim.Adam(params, lr=lr) if opt == "adam" else torch.optim.SGD(params, lr=lr, momentum=0.9))
    g = torch.Generator().manual_seed(seed)
    x, y = data
    for epoch in range(epochs):
        t0, total = time.time(), 0.0
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            loss = step(x.index_select(axis, idx), y[idx])
            o.zero_grad()
            loss.backward()
            o.step()
            total += loss.item() * len(idx)
        print(f"train epoch {epoch + 1}/{epochs}: loss {total / len(y):.4f} ({time.time() - t0:.0f} s)", flush=True)


def deploy(model: nn.Module, train_data: Split, test_data: Split, *, example: torch.Tensor, steps: int,
           approximate: bool, finetune_epochs: int, lava_samples: int, out: Path, loss_fn=None,
           lr: Optional[float] = None) -> int:
    """convert -> finetune (only where approximated) -> export -> verify; prints the report and one summary line.

    ``example``, ``train_data`` and ``test_data`` are in the form the model takes (an image for a model that makes
    its own time steps, ``[T, N, ...]`` for one stepped over a sequence); ``loss_fn`` (the tutorial's loss) and
    ``lr`` (a tenth of the tutorial's training rate) are ``finetune``'s. Returns 0 when every exact stage
    (containers, lava-dl, emulator, Lava) agrees spike for spike.
    """
    model.eval()
    blocks = sj2lava.convert(model, example_input=example, approximate=approximate)
    print("converted:", " | ".join(b.kind for b in blocks), "(the notes say what changed: see the report)")
    if approximate:
        t0 = time.time()
        losses = sj2lava.finetune(blocks, train_data, epochs=finetune_epochs, steps=steps, loss_fn=loss_fn, lr=lr,
                                  progress=False)
        print(f"finetune: losses {', '.join(f'{v:.4f}' for v in losses)} ({time.time() - t0:.0f} s)")
    path = sj2lava.export(blocks, out)
    x, y = test_data
    report = sj2lava.verify(model, path, x, labels=y, lava_samples=lava_samples, containers=blocks)
    print(report)
    flt, emu = report.stage("float").accuracy, report.stage("emulator").accuracy
    lava = [s for s in report.stages if s.name == "lava"]
    same = "skipped" if not lava else (f"{'yes' if all(m == 0 for m in lava[0].mismatches) else 'NO'} "
                                       f"on {lava[0].samples} samples")
    print(f"summary: float {flt:.2%}, deployed (emulator, aligned window) {emu:.2%} ({(emu - flt) * 100:+.1f} points), "
          f"emulate == Lava: {same}, approximated: {'yes' if approximate else 'no'}, exact: "
          f"{'yes' if report.exact else 'NO'}")
    return 0 if report.exact else 1
