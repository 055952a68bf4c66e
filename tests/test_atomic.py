"""Writes that are whole or absent: temporary files go on error, Ctrl-C and SIGTERM, and a kill -9's are removed
by the next write once their writer is gone."""
import os
import signal
import subprocess
import sys

import torch
from torch import nn

import sj2lava
from sj2lava._atomic import atomic_target

_SLOW_WRITE = """
import sys, time
from pathlib import Path
from sj2lava._atomic import atomic_target
with atomic_target(Path(sys.argv[1])) as tmp:
    tmp.write_bytes(b"half a file")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_sigterm_mid_write_leaves_neither_a_temporary_file_nor_a_target(tmp_path):
    target = tmp_path / "out.net"
    p = subprocess.Popen([sys.executable, "-c", _SLOW_WRITE, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "writing"
        assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")]  # the write is under way
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        p.kill()
    assert list(tmp_path.iterdir()) == []


def test_a_dead_writers_temporary_file_is_removed_by_the_next_write_and_a_live_ones_kept(tmp_path):
    dead = tmp_path / ".net.net.999999999.abc.tmp"  # beyond any pid_max: no such process
    live = tmp_path / ".net.net.1.def.tmp"  # pid 1 is always alive
    other = tmp_path / ".other.net.999999999.ghi.tmp"  # another target's: not this write's business
    for f in (dead, live, other):
        f.write_bytes(b"left over")
    blocks = nn.Sequential(sj2lava.BlockContainer(nn.Linear(4, 3, bias=False), sj2lava.CubaLIFNode(1.0, 0.0, 1.0), "m"))
    with torch.no_grad():
        blocks[0].synapse.weight.fill_(0.5)
    sj2lava.export(blocks, tmp_path / "net.net", (4,))
    assert not dead.exists() and live.exists() and other.exists() and (tmp_path / "net.net").is_file()


def test_an_error_inside_the_block_removes_the_temporary_file_and_keeps_the_old_target(tmp_path):
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    try:
        with atomic_target(target) as tmp:
            tmp.write_bytes(b"new, half")
            raise RuntimeError("disk full")
    except RuntimeError:
        pass
    assert target.read_bytes() == b"old" and [f.name for f in tmp_path.iterdir()] == ["t.bin"]


def test_the_kernel_build_removes_what_a_killed_build_left_in_its_cache(tmp_path):
    stale = tmp_path / ".build.999999999.xyz.so"
    stale.write_bytes(b"half a library")
    code = "from sj2lava.emulator import ckernel; print(ckernel.available())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, SJ2LAVA_CACHE=str(tmp_path)))
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stderr[-2000:]
    assert not stale.exists()
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".build.")]  # its own temporary files gone too
