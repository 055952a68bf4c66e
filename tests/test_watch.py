"""run_lava under supervision (sj2lava/netx/_watch.py): a dying Lava worker, a stalled run and a killed process end
with a clear error or a clean exit, never a hang, an orphaned worker or leaked shared memory."""
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

import sj2lava
from sj2lava import LavaRunError, run_lava

SHM = Path("/dev/shm")
pytestmark = [pytest.mark.skipif(not SHM.is_dir(), reason="needs Linux shared memory (/dev/shm)"),
              # a Lava channel thread that dies on a half-stopped runtime is a defect, not noise
              pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")]


def _shm() -> set:
    return set(os.listdir(SHM))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _workers() -> list:
    return [p for p in multiprocessing.active_children() if p.name.startswith(("SystemProcess", "SharedMemory"))]


def test_a_killed_lava_worker_stops_the_run_with_an_error_and_leaves_nothing_behind(netx_files):
    path = netx_files / "tiny.net"
    x = (torch.rand(10, 40, *sj2lava.load(path).input_shape, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    shm_before, killed = _shm(), {}

    def kill_a_neuron_worker(done: int) -> None:
        if done == 3:
            workers = [p for p in _workers() if p.name.startswith("SystemProcess")]
            assert len(workers) >= 4, workers  # the process models and the runtime service
            os.kill(workers[len(workers) // 2].pid, signal.SIGKILL)
            killed["at"] = time.monotonic()

    with pytest.raises(LavaRunError, match=r"run_lava\(tiny.net\): Lava worker .* \(pid \d+\) was killed by signal 9 "
                                           r"\(SIGKILL.*at sample 4 of 40; the Lava runtime was stopped") as e:
        run_lava(path, x, progress=kill_a_neuron_worker)
    assert time.monotonic() - killed["at"] < 30
    assert e.value.samples_done == 3
    assert _workers() == []
    assert _shm() - shm_before == set()
    assert not [t for t in threading.enumerate() if t.name.startswith("sj2lava-lava")]
    # the process is fit for the next run: Lava's answer equals the emulator's
    assert torch.equal(run_lava(path, x[:, :2]), sj2lava.emulate(path, x[:, :2]))


def test_a_run_without_progress_for_timeout_seconds_is_stopped(netx_files, monkeypatch):
    from lava.magma.core.process.process import AbstractProcess

    path = netx_files / "tiny.net"
    x = torch.zeros(5, 3, *sj2lava.load(path).input_shape)
    compile_network = AbstractProcess.compile

    def slow_compile(self, *args, **kwargs):  # a compile that takes a second: no luck in how fast Lava is today
        time.sleep(1.0)
        return compile_network(self, *args, **kwargs)

    monkeypatch.setattr(AbstractProcess, "compile", slow_compile)
    shm_before, start = _shm(), time.monotonic()
    # the first sample includes compiling the network: a 0.3 s timeout stops it while Lava compiles, and the Lava
    # thread, which goes on to start the runtime, has its workers killed as it forks them
    with pytest.raises(LavaRunError, match=r"no progress for 0.3 s \(timeout\) at sample 1 of 3"):
        run_lava(path, x, timeout=0.3)
    assert time.monotonic() - start < 10
    assert _workers() == [] and _shm() - shm_before == set()
    assert not [t for t in threading.enumerate() if t.name.startswith("sj2lava-lava")]
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        run_lava(path, x, timeout=0)


def test_ctrl_c_during_a_lava_run_stops_it_cleanly(netx_files):
    path = netx_files / "tiny.net"
    x = torch.zeros(5, 20, *sj2lava.load(path).input_shape)
    shm_before = _shm()

    def ctrl_c(done: int) -> None:  # progress runs in the caller's thread, where Ctrl-C arrives
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_lava(path, x, progress=ctrl_c)
    assert _workers() == [] and _shm() - shm_before == set()
    assert not [t for t in threading.enumerate() if t.name.startswith("sj2lava-lava")]


def test_lava_workers_die_with_a_killed_process(netx_files, tmp_path):
    """kill -9 of the process that runs Lava: its workers (and the shared-memory manager) go with it."""
    script = textwrap.dedent(f"""
        import multiprocessing, os, signal, torch, sj2lava
        path = {str(netx_files / "tiny.net")!r}
        x = torch.zeros(5, 20, *sj2lava.load(path).input_shape)
        def die(done):
            if done == 2:
                print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        sj2lava.run_lava(path, x, progress=die)
    """)
    shm_before, out, err = _shm(), tmp_path / "pids.txt", tmp_path / "stderr.txt"
    with open(out, "w") as f, open(err, "w") as g:  # files, not pipes: orphaned workers would hold a pipe open
        run = subprocess.run([sys.executable, "-c", script], stdout=f, stderr=g, timeout=120)
    pids = [int(p) for p in out.read_text().split()]
    try:
        assert run.returncode == -signal.SIGKILL, err.read_text()[-2000:]
        assert len(pids) >= 4, pids
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ([p for p in pids if _alive(p)] or _shm() - shm_before):
            time.sleep(0.1)
        assert [p for p in pids if _alive(p)] == []
        assert _shm() - shm_before == set()
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_closed_by_lavas_stop_while_the_watcher_reads_it_is_no_error():
    """Lava's stop joins and closes every worker in the Lava thread while the watcher looks at them: a process object
    closed between two reads of the watcher (after its Popen, before its pid) is a worker that ended, not an error.
    (It once raised ``process object is closed`` in the watcher, which left the Lava thread behind.)"""
    from types import SimpleNamespace

    from sj2lava.netx._watch import _ended_workers

    proc = multiprocessing.get_context("fork").Process(target=int)
    proc.start()
    proc.join()
    pid, popen = proc.pid, proc._popen

    class ClosedWhileRead:  # the worker as the watcher sees it when Lava's stop closes it at the worst moment
        @property
        def _popen(self):
            proc.close()
            return popen

        @property
        def pid(self):
            return proc.pid  # raises: the process object is closed

    executable = SimpleNamespace(proc_builders={}, runtime_service_builders={})
    runtime = SimpleNamespace(_messaging_infrastructure=SimpleNamespace(actors=[ClosedWhileRead()]),
                              _executable=executable)
    assert _ended_workers(SimpleNamespace(_runtime=runtime)) == [("(unknown)", pid, 0)]
