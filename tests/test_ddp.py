"""Multi-process training (torch.distributed DDP, gloo, 2 CPU processes) of BlockContainers.

Conv + sum-pool + dense with learnable decays, in both step modes: the ranks stay bit-identical, equal one
process trained on the combined batch within float rounding, and ``export(model.module)`` on rank 0 writes
the same bytes as the single-process export. Runs tests/ddp_check.py in a child process (spawned workers).
"""
import subprocess
import sys
from pathlib import Path


def test_ddp_ranks_identical_equal_one_process_and_export_the_same_file():
    r = subprocess.run([sys.executable, str(Path(__file__).with_name("ddp_check.py"))],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.strip().endswith("ALL OK")
    assert r.stdout.count("ranks bit-identical") == 2 and r.stdout.count("exported files identical") == 2
