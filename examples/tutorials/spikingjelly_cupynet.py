"""SpikingJelly's multi-step tutorial net (CupyNet, Fashion-MNIST), as written with today's ``activation_based`` API:
a static Conv2d + BatchNorm2d on the image, repeated over T = 4 steps with ``unsqueeze(0).repeat(T, ...)``,
multi-step IF neurons, ``SeqToANNContainer``-wrapped max-pools, convolutions and linears, and ``.mean(0)`` as the
readout. Trained briefly on digits, then deployed with sj2lava.

    python examples/tutorials/spikingjelly_cupynet.py [--channels 128] [--epochs 3] [--lava-samples 2]

Nothing is approximated: the static prefix runs on the host (the input neurons' bias), both max-pools are over
spikes (an OR, exact on Loihi), BatchNorm folds into the convolutions. T = 4 is shorter than the five steps Lava
needs to carry an input to the output: ``verify`` reads every layer in its aligned window (T + 5 steps run).
(The tutorial uses 128 channels and the CuPy backend on a GPU; ``--channels 128`` gives its width, the default 32
keeps the CPU run short, and the torch backend computes the same.)
"""
import sys

import torch
import torch.nn.functional as F
from common import deploy, digits28, parser, subset, train
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn


class CupyNet(nn.Module):
    def __init__(self, T: int, channels: int = 128):
        super().__init__()
        self.T = T
        C = channels
        self.static_conv = nn.Sequential(
            nn.Conv2d(1, C, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.conv = nn.Sequential(
            neuron.IFNode(surrogate_function=surrogate.ATan(), step_mode="m"),
            layer.SeqToANNContainer(
                nn.MaxPool2d(2, 2),  # 14 * 14
                nn.Conv2d(C, C, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(C),
            ),
            neuron.IFNode(surrogate_function=surrogate.ATan(), step_mode="m"),
            layer.SeqToANNContainer(
                nn.MaxPool2d(2, 2),  # 7 * 7
                nn.Flatten(),
            ),
        )
        self.fc = nn.Sequential(
            layer.SeqToANNContainer(nn.Linear(C * 7 * 7, C * 4 * 4, bias=False)),
            neuron.IFNode(surrogate_function=surrogate.ATan(), step_mode="m"),
            layer.SeqToANNContainer(nn.Linear(C * 4 * 4, 10, bias=False)),
            neuron.IFNode(surrogate_function=surrogate.ATan(), step_mode="m"),
        )

    def forward(self, x):
        x_seq = self.static_conv(x).unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        # [N, C, H, W] -> [1, N, C, H, W] -> [T, N, C, H, W]
        return self.fc(self.conv(x_seq)).mean(0)


def main(argv=None) -> int:
    ap = parser(__doc__, steps=4, epochs=3)
    ap.add_argument("--channels", type=int, default=32)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    train_data, test_data = digits28()
    train_data, test_data = subset(train_data, args.train_samples), subset(test_data, args.test_samples)
    net = CupyNet(args.steps, args.channels)

    def step(x, y):
        net.train()
        out_fr = net(x)
        functional.reset_net(net)
        return F.mse_loss(out_fr, F.one_hot(y, 10).float())

    train(step, net.parameters(), train_data, args.epochs, lr=0.1, opt="sgd")
    functional.reset_net(net)
    return deploy(net, train_data, test_data, example=test_data[0][:4], steps=args.steps, approximate=False,
                  finetune_epochs=0, lava_samples=args.lava_samples, out=args.out or "spikingjelly_cupynet.net")


if __name__ == "__main__":
    sys.exit(main())
