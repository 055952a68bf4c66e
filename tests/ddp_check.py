"""Run by tests/test_ddp.py: DDP training of BlockContainers on 2 CPU processes (gloo) against one process.

For each step mode, rank r trains on shard r of a batch; a single process trains the same initial model on the
whole batch. Prints one line per mode and 'ALL OK'; any difference beyond what is asserted raises.
"""
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from dist_ranks import leave, watch_for_hangs  # this script's folder is on sys.path
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

import sj2lava
from sj2lava import BlockContainer, CubaLIFNode, SumPool2d

STEPS, BATCH, ITERS = 8, 8, 3


def model(step_mode: str) -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(
        BlockContainer(nn.Conv2d(1, 4, 3, padding=1), CubaLIFNode(0.5, 0.1, 0.5, requires_grad=True), step_mode),
        BlockContainer(SumPool2d(2), CubaLIFNode(1.0, 0.0, 0.5), step_mode),
        BlockContainer(nn.Flatten(), None, step_mode),
        BlockContainer(nn.Linear(4 * 4 * 4, 3), CubaLIFNode(0.25, 0.2, 0.5, requires_grad=True), step_mode))
    with torch.no_grad():
        net[0].synapse.weight.mul_(4)
        net[3].synapse.weight.mul_(4)
    return net


def data():
    g = torch.Generator().manual_seed(1)
    return (torch.rand(STEPS, BATCH, 1, 8, 8, generator=g) < 0.4).float(), torch.arange(BATCH) % 3


def run(net: nn.Module, x: torch.Tensor, step_mode: str) -> torch.Tensor:
    if step_mode == "m":
        return net(x)
    return torch.stack([net(x[t]) for t in range(x.shape[0])])  # single-step: one call per time step


def train(net: nn.Module, x: torch.Tensor, y: torch.Tensor, step_mode: str, params) -> list:
    opt = torch.optim.SGD(params, lr=0.5)
    counts = []
    for _ in range(ITERS):
        sj2lava.reset_net(net)
        out = run(net, x, step_mode)
        loss = F.cross_entropy(out.sum(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        counts.append(int(out.sum()))
    return counts


def worker(rank: int, world: int, init: str, outdir: str, step_mode: str) -> None:
    watch_for_hangs()
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    torch.set_num_threads(1)
    x, y = data()
    shard = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    net = model(step_mode)
    ddp = DDP(net)
    train(ddp, x[:, shard], y[shard], step_mode, ddp.parameters())
    torch.save({k: v.clone() for k, v in ddp.module.state_dict().items()}, Path(outdir) / f"rank{rank}.pt")
    if rank == 0:  # export from rank 0 only: every rank holds the same model
        sj2lava.export(ddp.module, Path(outdir) / "ddp.net", (1, 8, 8))
    leave()


def check(step_mode: str, world: int = 2) -> None:
    with tempfile.TemporaryDirectory() as d:
        init = f"file://{Path(d) / 'rendezvous'}"
        mp.spawn(worker, args=(world, init, d, step_mode), nprocs=world, join=True)
        ranks = [torch.load(Path(d) / f"rank{r}.pt") for r in range(world)]
        x, y = data()
        single = model(step_mode)
        counts = train(single, x, y, step_mode, single.parameters())
        sj2lava.export(single, Path(d) / "single.net", (1, 8, 8))
        for k, v in ranks[0].items():
            for r in range(1, world):
                assert torch.equal(v, ranks[r][k]), f"{step_mode}: rank {r} differs from rank 0 in {k}"
        ref = single.state_dict()
        worst = 0.0
        for k, v in ranks[0].items():
            assert torch.allclose(v, ref[k], rtol=1e-5, atol=1e-6), f"{step_mode}: {k} differs from one process"
            worst = max(worst, float((v - ref[k]).abs().max()))
        moved = sum(float((single.state_dict()[k] - model(step_mode).state_dict()[k]).abs().sum()) for k in ref)
        assert moved > 0, "training changed nothing"
        for k in ("0.neuron.current_decay", "3.neuron.voltage_decay"):
            assert 0 <= float(ranks[0][k]) <= 4096
        same_file = (Path(d) / "ddp.net").read_bytes() == (Path(d) / "single.net").read_bytes()
        assert same_file, f"{step_mode}: the file exported from rank 0 differs from the single-process one"
    print(f"step_mode={step_mode!r}: {world} ranks bit-identical, max |DDP - one process| = {worst:.2e}, "
          f"spikes per iteration {counts}, exported files identical")


def main() -> int:
    for mode in ("m", "s"):
        check(mode)
    print("ALL OK")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
