"""evaluate: accuracy and metrics of a .net on a data set, in one process or sharded over torchrun's ranks."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

import sj2lava
from sj2lava.netx import hdf5
from sj2lava.netx.random_nets import random_spec


def test_torchrun_with_two_processes_returns_on_every_rank_what_one_process_returns(tmp_path):
    """Two gloo ranks under torchrun each run every other batch (encoding all of them, so the seeded rate code gives
    each sample the spikes one process gives it) and all-gather the tallies: accuracy, per-class counts and every
    metric equal one process's, on both ranks."""
    spec = random_spec(5, wide=0.3)
    hdf5.write(spec, tmp_path / "net.net")
    g = torch.Generator().manual_seed(3)
    data = (torch.rand(11, *spec.input_shape, generator=g), torch.randint(0, 3, (11,), generator=g))
    torch.save(data, tmp_path / "data.pt")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("evaluate_dist_check.py")), str(tmp_path)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as p:
        try:
            out, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:  # take torchrun's workers down with it
            os.killpg(p.pid, signal.SIGKILL)
            raise
    assert p.returncode == 0, out[-3000:] + err[-3000:]
    one = sj2lava.evaluate(tmp_path / "net.net", data, steps=9, batch_size=3, progress=False)
    per_class = {str(k): list(v) for k, v in one.per_class.items()}
    want = dict(accuracy=one.accuracy, samples=one.samples, per_class=per_class,
                metrics=json.loads(json.dumps(dataclasses.asdict(one.metrics))))
    assert one.samples == 11 and one.metrics.synops_per_sample > 0  # batches of 3, 3, 3, 2: each rank runs two
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == want, rank
