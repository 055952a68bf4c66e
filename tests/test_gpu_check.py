"""`make gpu-check` works before a GPU is lent: its dry run (tools/gpu_check.py --dry-run) passes on the CPU.

The dry run takes the same code paths with the CPU as the device: the fused kernels through Triton's
interpreter against the reference, the emulator's torch backend against its C kernel with TF32 and cuDNN
benchmark flags off and on, containers (fused) against the CPU reference and the exported .net, export of
the model, and bench_block on tiny settings.
"""
import os
import subprocess
import sys
from pathlib import Path


def test_gpu_check_dry_run_passes_on_the_cpu():
    tool = Path(__file__).resolve().parents[1] / "tools" / "gpu_check.py"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, str(tool), "--dry-run"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    lines = r.stdout.splitlines()
    table = lines[lines.index(next(l for l in lines if l.startswith("check "))) + 1:]
    rows = {l.split()[0]: l.split()[1] for l in table if l and not l[0].isdigit()}
    assert rows == {k: "ok" for k in ("kernels", "emulator", "blocks", "export", "bench")}, rows
    assert lines[-1] == "5 passed, 0 failed"
