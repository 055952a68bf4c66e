"""evaluate: accuracy and metrics of a .net on a data set, in one process or sharded over torchrun's ranks."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
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
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True) as p:
        try:
            out, _ = p.communicate(timeout=240)  # a hung rank ends after dist_ranks.HANG_S (120 s)
        except subprocess.TimeoutExpired:  # take torchrun's workers down with it, and show what they printed
            os.killpg(p.pid, signal.SIGKILL)
            out = "torchrun did not return in 240 s\n" + p.communicate()[0]
    assert p.returncode == 0, out[-6000:]
    one = sj2lava.evaluate(tmp_path / "net.net", data, steps=9, batch_size=3, progress=False)
    per_class = {str(k): list(v) for k, v in one.per_class.items()}
    want = dict(accuracy=one.accuracy, samples=one.samples, per_class=per_class,
                metrics=json.loads(json.dumps(dataclasses.asdict(one.metrics))))
    assert one.samples == 11 and one.metrics.synops_per_sample > 0  # batches of 3, 3, 3, 2: each rank runs two
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == want, rank


def test_labels_and_their_count_are_checked_before_any_run(tmp_path):
    spec = random_spec(5)
    path = hdf5.write(spec, tmp_path / "net.net")
    classes = int(np.prod(spec.output_shape))
    x = torch.rand(4, *spec.input_shape)
    for y, words in ((torch.zeros(4), "integer class indices"), (torch.tensor([0, 1, -1, 0]), "outside"),
                     (torch.tensor([0, 1, classes, 0]), f"{classes} output neurons"),
                     (torch.zeros(3, dtype=torch.long), "4 inputs but 3 labels")):
        with pytest.raises(ValueError, match=words):
            sj2lava.evaluate(path, (x, y), steps=4, progress=False)


def test_a_run_that_cannot_fit_is_refused_before_allocating_and_batches_shrink_to_fit(tmp_path, monkeypatch):
    spec = random_spec(5)
    path = hdf5.write(spec, tmp_path / "net.net")
    x = torch.rand(7, *spec.input_shape, generator=torch.Generator().manual_seed(0))
    data = (x, torch.zeros(7, dtype=torch.long))
    in_twos = sj2lava.evaluate(path, data, steps=6, batch_size=2, progress=False)
    per_sample = (6 + spec.latency) * (int(np.prod(spec.input_shape)) * 12 + int(np.prod(spec.output_shape)) * 4) \
        + spec.neurons * 24
    monkeypatch.setenv("SJ2LAVA_MAX_BYTES", str(2 * per_sample))  # two samples a batch
    assert sj2lava.evaluate(path, data, steps=6, progress=False) == in_twos  # batch_size 256 lowered to 2
    with pytest.raises(ValueError, match="use fewer steps"):
        sj2lava.evaluate(path, data, steps=100_000_000, progress=False)
