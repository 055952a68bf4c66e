"""CPU training keeps glibc from mapping fresh pages for every large tensor (sj2lava._alloc)."""
import os
import subprocess
import sys

import pytest

_CODE = """
import resource, torch
from sj2lava._alloc import keep_freed_memory
from sj2lava.neuron import cuba_lif
z = torch.rand(4, 2, 8, requires_grad=True)
cuba_lif(z, torch.tensor(4096.0), torch.tensor(0.0), 64)[0].sum().backward()  # a CPU training step turns it on
on = keep_freed_memory()
torch.ones(50_000_000).sum()                    # 200 MB, allocated, touched and freed
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
torch.ones(50_000_000).sum()                    # the same size again
print(on, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(keep: str):
    env = dict(os.environ, SJ2LAVA_KEEP_FREED_MEMORY=keep)
    r = subprocess.run([sys.executable, "-c", _CODE], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    on, faults = r.stdout.split()
    return on == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_cpu_training_step_makes_freed_memory_reused_and_the_opt_out_leaves_glibc_alone():
    on, faults = _faults("1")
    off, faults_off = _faults("0")
    assert on and not off
    assert faults_off > 40_000  # 200 MB in 4 KiB pages, mapped afresh
    assert faults < faults_off / 20, (faults, faults_off)
