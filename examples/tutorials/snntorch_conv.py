"""snnTorch's convolutional tutorial net for 1x28x28 digits, as written, in both its forms: the Sequential of
Conv2d, MaxPool2d and Leaky layers (``init_hidden=True``) stepped over the same image, and the class form whose
``forward`` calls ``F.max_pool2d`` and ``.view`` (with ``init_leaky`` and the time loop inside ``forward``, as the
MLP tutorial writes it). Each is trained briefly on digits and deployed with sj2lava.

    python examples/tutorials/snntorch_conv.py [--form both|sequential|class] [--epochs 3] [--lava-samples 2]

The first conv sees the analog image: it and its max-pool run on the host as the bias of the input neurons, exactly.
The second max-pool is over currents and Leaky resets by subtraction: ``approximate=True`` replaces them (an average
pool, a reset to zero; noted) and ``finetune`` recovers the accuracy.
"""
import sys
from pathlib import Path

import snntorch as snn
import snntorch.functional as SF
import torch
import torch.nn.functional as F
from common import deploy, digits28, parser, subset, train
from snntorch import surrogate, utils
from torch import nn

beta = 0.5
spike_grad = surrogate.fast_sigmoid(slope=25)


def sequential_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 12, 5), nn.MaxPool2d(2),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                         nn.Conv2d(12, 64, 5), nn.MaxPool2d(2),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                         nn.Flatten(),
                         nn.Linear(64 * 4 * 4, 10),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True, output=True))


class Net(nn.Module):
    def __init__(self, num_steps: int):
        super().__init__()
        self.num_steps = num_steps
        self.conv1 = nn.Conv2d(1, 12, 5)
        self.lif1 = snn.Leaky(beta=beta, spike_grad=spike_grad)
        self.conv2 = nn.Conv2d(12, 64, 5)
        self.lif2 = snn.Leaky(beta=beta, spike_grad=spike_grad)
        self.fc1 = nn.Linear(64 * 4 * 4, 10)
        self.lif3 = snn.Leaky(beta=beta, spike_grad=spike_grad)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        mem3 = self.lif3.init_leaky()
        spk3_rec = []
        for step in range(self.num_steps):  # noqa: B007  (as the tutorial writes it)
            cur1 = F.max_pool2d(self.conv1(x), 2)
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = F.max_pool2d(self.conv2(spk1), 2)
            spk2, mem2 = self.lif2(cur2, mem2)
            cur3 = self.fc1(spk2.view(x.size(0), -1))
            spk3, mem3 = self.lif3(cur3, mem3)
            spk3_rec.append(spk3)
        return torch.stack(spk3_rec)


def forward_pass(net: nn.Module, num_steps: int, data: torch.Tensor) -> torch.Tensor:
    spk_rec = []
    utils.reset(net)
    for step in range(num_steps):  # noqa: B007
        spk_out, mem_out = net(data)
        spk_rec.append(spk_out)
    return torch.stack(spk_rec)


def main(argv=None) -> int:
    ap = parser(__doc__, steps=25, epochs=3)
    ap.add_argument("--form", choices=("both", "sequential", "class"), default="both")
    args = ap.parse_args(argv)
    train_data, test_data = digits28()
    train_data, test_data = subset(train_data, args.train_samples), subset(test_data, args.test_samples)
    loss_fn = SF.ce_rate_loss()
    out = Path(args.out or "snntorch_conv.net")
    rc = 0
    if args.form in ("both", "sequential"):
        print("== Sequential form")
        torch.manual_seed(args.seed)
        net = sequential_net()
        train(lambda x, y: loss_fn(forward_pass(net, args.steps, x), y), net.parameters(), train_data, args.epochs,
              lr=1e-2)
        # it is stepped over its input from outside: its data is the sequence it sees, the same image every step
        seq = lambda d: (d[0].unsqueeze(0).expand(args.steps, *d[0].shape), d[1])  # noqa: E731
        rc |= deploy(net, seq(train_data), seq(test_data), example=test_data[0][:4], steps=args.steps,
                     approximate=True, finetune_epochs=args.finetune_epochs, lava_samples=args.lava_samples,
                     loss_fn=loss_fn, lr=1e-3, out=out)
    if args.form in ("both", "class"):
        print("== class form")
        torch.manual_seed(args.seed)
        net = Net(args.steps)
        train(lambda x, y: loss_fn(net(x), y), net.parameters(), train_data, args.epochs, lr=1e-2)
        rc |= deploy(net, train_data, test_data, example=test_data[0][:4], steps=args.steps, approximate=True,
                     finetune_epochs=args.finetune_epochs, lava_samples=args.lava_samples, loss_fn=loss_fn, lr=1e-3,
                     out=out.with_name(out.stem + "_class.net"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
