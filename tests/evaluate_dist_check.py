"""Run by tests/test_evaluate.py under torchrun: each rank evaluates the same data (its shard of the batches) and
writes what it returns, as JSON, to <folder>/rank<r>.json."""
import dataclasses
import json
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from dist_ranks import leave, watch_for_hangs  # this script's folder is on sys.path

import sj2lava

watch_for_hangs()
folder = Path(sys.argv[1])
dist.init_process_group("gloo", timeout=timedelta(seconds=60))
data = torch.load(folder / "data.pt")
ev = sj2lava.evaluate(folder / "net.net", data, steps=9, batch_size=3, progress=False)
out = dict(accuracy=ev.accuracy, samples=ev.samples, per_class={str(k): v for k, v in ev.per_class.items()},
           metrics=dataclasses.asdict(ev.metrics))
(folder / f"rank{dist.get_rank()}.json").write_text(json.dumps(out))
leave()
