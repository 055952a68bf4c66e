"""The seed tutorial's flow with sj2lava: train a conv net of BlockContainers on MNIST, export it,
run it in Lava's CPU simulation of Loihi and verify every spike.

    python examples/lava_mnist.py --data ./data        # MNIST under ./data/MNIST (torchvision layout)
    python examples/lava_mnist.py --synthetic          # random images, to try the flow without MNIST

MNIST is read with torchvision from local files only (no download here): fetch it once on a machine
with network access with torchvision.datasets.MNIST(DIR, download=True).
"""
import argparse
import sys
from pathlib import Path

import torch

import sj2lava
from sj2lava.demo import seed_net, train
from sj2lava.train import rate_code


def mnist(args):
    import torchvision

    if args.synthetic:
        fake = torchvision.datasets.FakeData(size=args.train_samples + args.test_samples, image_size=(1, 28, 28),
                                             num_classes=10, random_offset=0,
                                             transform=torchvision.transforms.ToTensor())
        xs, ys = zip(*[fake[i] for i in range(len(fake))])
        x, y = torch.stack(xs), torch.tensor(ys)
        return (x[:args.train_samples], y[:args.train_samples]), (x[args.train_samples:], y[args.train_samples:])
    out = []
    for train_split in (True, False):
        try:
            ds = torchvision.datasets.MNIST(str(args.data), train=train_split, download=False)
        except RuntimeError:
            sys.exit(f"lava_mnist: MNIST not found under {args.data}. Download it once (needs network) with\n"
                     f"  python -c \"import torchvision; torchvision.datasets.MNIST('{args.data}', download=True)\"\n"
                     "or run with --synthetic to try the flow on random images.")
        n = args.train_samples if train_split else args.test_samples
        out.append((ds.data[:n].unsqueeze(1).float() / 255.0, ds.targets[:n]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--train-samples", type=int, default=10000)
    ap.add_argument("--test-samples", type=int, default=1000)
    ap.add_argument("--lava-samples", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("lava_mnist.net"))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    (x_tr, y_tr), (x_te, y_te) = mnist(args)
    net = seed_net(width=16, image=28)
    train(net, x_tr, y_tr, args.epochs, args.steps, seed=1)
    path = sj2lava.export(net, args.out)
    print(sj2lava.load(path).table())
    x = rate_code(x_te, args.steps, torch.Generator().manual_seed(2))
    report = sj2lava.verify(net, path, x, labels=y_te, lava_samples=args.lava_samples)
    print(report)
    return 0 if report.exact else 1


if __name__ == "__main__":
    sys.exit(main())
