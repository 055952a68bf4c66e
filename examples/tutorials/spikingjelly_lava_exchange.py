"""SpikingJelly's Loihi tutorial net (``spikingjelly.activation_based.examples.lava_mnist.MNISTNet``), imported as it
ships: ``lava_exchange.BlockContainer``s of Conv2d + IFNode (stride-2 convolutions in place of pools), Flatten,
two Linear + IFNode, trained on Poisson-encoded images over T = 16 steps with cross-entropy on the firing rate, as
the tutorial trains it, but with Adam (lr 3e-3): the tutorial's SGD (lr 0.1) needs its 60,000 MNIST images and 16
epochs to leave the silent start. Trained briefly on digits, then deployed with sj2lava.

    python examples/tutorials/spikingjelly_lava_exchange.py [--epochs 3] [--lava-samples 2]

Nothing is approximated: lava_exchange blocks already train on Loihi's grid.
"""
import logging
import sys

import torch
import torch.nn.functional as F
from common import deploy, digits28, parser, subset, train
from spikingjelly.activation_based import encoding, functional
from spikingjelly.activation_based.examples.lava_mnist import MNISTNet

logging.getLogger().setLevel(logging.WARNING)  # the tutorial's module sets the root logger to INFO on import


def poisson(x: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    """The tutorial's input: ``PoissonEncoder`` over the image repeated T times, ``[T, N, 1, 28, 28]`` spikes."""
    torch.manual_seed(seed)
    return encoding.PoissonEncoder(step_mode="m")(x.unsqueeze(0).repeat(steps, 1, 1, 1, 1))


def main(argv=None) -> int:
    args = parser(__doc__, steps=16, epochs=3).parse_args(argv)
    torch.manual_seed(args.seed)
    train_data, test_data = digits28()
    train_data, test_data = subset(train_data, args.train_samples), subset(test_data, args.test_samples)
    net = MNISTNet(channels=16)
    functional.set_step_mode(net, step_mode="m")
    encoder = encoding.PoissonEncoder(step_mode="m")

    def step(img, label):
        net.train()
        fr = net(encoder(img.unsqueeze(0).repeat(args.steps, 1, 1, 1, 1))).mean(0)
        functional.reset_net(net)
        return F.cross_entropy(fr, label)

    train(step, net.parameters(), train_data, args.epochs, lr=3e-3)
    functional.reset_net(net)
    spikes = lambda d, seed: (poisson(d[0], args.steps, seed), d[1])  # noqa: E731  (the data as the net takes it)
    test = spikes(test_data, 2)
    return deploy(net, spikes(train_data, 1), test, example=test[0][:, :4], steps=args.steps, approximate=False,
                  finetune_epochs=0, lava_samples=args.lava_samples, out=args.out or "spikingjelly_lava_exchange.net")


if __name__ == "__main__":
    sys.exit(main())
