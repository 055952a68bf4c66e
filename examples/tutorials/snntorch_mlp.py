"""snnTorch's MLP tutorial net, class form, as written: two Linear + Leaky layers, ``init_leaky`` and a time loop
over the same static image inside ``forward``. Trained briefly on digits, then deployed with sj2lava.

    python examples/tutorials/snntorch_mlp.py [--epochs 3] [--lava-samples 2]

Leaky's default reset subtracts the threshold, which Loihi's CUBA neuron cannot do: ``approximate=True`` takes the
nearest CUBA neuron (reset to zero) and ``finetune`` recovers the accuracy. ``fc1`` sees the analog image: it runs
on the host as the bias of the input neurons (``lif1``).
"""
import sys

import snntorch as snn
import snntorch.functional as SF
import torch
from common import deploy, digits28, parser, subset, train
from snntorch import surrogate
from torch import nn


class Net(nn.Module):
    def __init__(self, num_steps: int, beta: float = 0.95):
        super().__init__()
        self.num_steps = num_steps
        spike_grad = surrogate.fast_sigmoid()
        self.fc1 = nn.Linear(784, 1000)
        self.lif1 = snn.Leaky(beta=beta, spike_grad=spike_grad)
        self.fc2 = nn.Linear(1000, 10)
        self.lif2 = snn.Leaky(beta=beta, spike_grad=spike_grad)

    def forward(self, x):
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec = []
        for step in range(self.num_steps):  # noqa: B007  (as the tutorial writes it)
            cur1 = self.fc1(x.view(x.size(0), -1))
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
        return torch.stack(spk2_rec)


def main(argv=None) -> int:
    args = parser(__doc__, steps=25, epochs=3).parse_args(argv)
    torch.manual_seed(args.seed)
    train_data, test_data = digits28()
    train_data, test_data = subset(train_data, args.train_samples), subset(test_data, args.test_samples)
    net = Net(args.steps)
    loss_fn = SF.ce_rate_loss()
    train(lambda x, y: loss_fn(net(x), y), net.parameters(), train_data, args.epochs, lr=5e-4)
    return deploy(net, train_data, test_data, example=test_data[0][:4], steps=args.steps, approximate=True,
                  finetune_epochs=args.finetune_epochs, lava_samples=args.lava_samples, loss_fn=loss_fn, lr=5e-5,
                  out=args.out or "snntorch_mlp.net")


if __name__ == "__main__":
    sys.exit(main())
