"""snnTorch's DVS-gesture CSNN tutorial net, as written: a Sequential of Conv2d, MaxPool2d and Leaky layers with
``init_hidden=True`` on 2x32x32 event frames, the time loop outside (``utils.reset(net)``, then ``net(data[step])``).
Trained briefly on synthetic gestures (11 directions of a moving square, ON/OFF events), then deployed with sj2lava.

    python examples/tutorials/snntorch_dvs.py [--epochs 3] [--lava-samples 2]

Two things have no exact Loihi form and ``approximate=True`` replaces them, each with a note: Leaky's subtract reset
(by reset to zero) and the max-pools over the convolutions' currents (by average pools, which Loihi computes
exactly); ``finetune`` then recovers the accuracy.
"""
import sys

import snntorch as snn
import snntorch.functional as SF
import torch
from common import deploy, gestures, parser, subset, train
from snntorch import surrogate, utils
from torch import nn


def make_net(beta: float = 0.5) -> nn.Sequential:
    spike_grad = surrogate.atan()
    return nn.Sequential(nn.Conv2d(2, 12, 5), nn.MaxPool2d(2),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                         nn.Conv2d(12, 32, 5), nn.MaxPool2d(2),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True),
                         nn.Flatten(),
                         nn.Linear(32 * 5 * 5, 11),
                         snn.Leaky(beta=beta, spike_grad=spike_grad, init_hidden=True, output=True))


def forward_pass(net: nn.Module, data: torch.Tensor) -> torch.Tensor:
    spk_rec = []
    utils.reset(net)
    for step in range(data.size(0)):
        spk_out, mem_out = net(data[step])
        spk_rec.append(spk_out)
    return torch.stack(spk_rec)


def main(argv=None) -> int:
    ap = parser(__doc__, steps=16, epochs=3)
    ap.set_defaults(train_samples=2000, test_samples=1000)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    train_data = gestures(args.train_samples, args.steps, seed=1)
    test_data = subset(gestures(args.test_samples, args.steps, seed=2), None, axis=1)
    net = make_net()
    loss_fn = SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)
    train(lambda x, y: loss_fn(forward_pass(net, x), y), net.parameters(), train_data, args.epochs, lr=2e-2,
          axis=1)
    return deploy(net, train_data, test_data, example=test_data[0][:, :4], steps=args.steps, approximate=True,
                  finetune_epochs=args.finetune_epochs, lava_samples=args.lava_samples, loss_fn=loss_fn, lr=2e-3,
                  out=args.out or "snntorch_dvs.net")


if __name__ == "__main__":
    sys.exit(main())
