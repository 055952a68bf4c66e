"""Supervise a Lava run: a dead worker or a stalled run becomes an error, never a hang.

Lava's runtime forks one worker process per process model and runtime service and talks to them over shared-memory
channels whose ``recv`` waits forever: when the kernel's out-of-memory killer (or anything else) ends a worker, the
caller blocks for good and the shared memory stays. :func:`supervise` therefore runs the Lava calls in a helper
thread (the *Lava thread*) while the caller's thread watches, every :data:`POLL` seconds:

* every worker of the runtime: one that is gone while the run goes on stops the run;
* the time since the last sign of progress (a sample finished): more than ``timeout`` seconds stops the run;
* Ctrl-C in the caller's thread, which stops the run too.

Stopping a failed run cannot go through Lava's own ``stop`` (it waits for the dead worker's answer), so
:func:`_force_stop` ends it from outside: the remaining workers are killed and reaped, the channels' threads
released, the shared memory unlinked (by the manager, or by name when the manager is gone itself) and the runtime
marked stopped so that its finaliser does not wait either. The Lava thread, stuck in a channel wait, is woken
and fails on its closed channel; if it has not left Lava after :data:`CANCEL_WAIT` seconds it stays behind as an
idle daemon thread (with a warning). A normal run costs one queue wait per sample and one look at the workers per
:data:`POLL` seconds.

Workers forked by the Lava thread also die with it (Linux ``PR_SET_PDEATHSIG``): when the whole process is killed
(``kill -9``), no orphaned Lava worker spins on, and Python's resource tracker unlinks the shared memory.
"""
from __future__ import annotations

import ctypes
import itertools
import logging
import os
import queue
import signal
import sys
import threading
import time
from typing import Callable, Iterator, List, Optional, Tuple, TypeVar

from ..errors import LavaRunError

log = logging.getLogger(__name__)

POLL = 0.2  # seconds between two looks at the workers
GRACE = 10.0  # seconds Lava may take to raise its own error after a worker ended with exit code 0 (its exception)
STOP_LIMIT = 30.0  # seconds Lava's stop may take
CANCEL_WAIT = 5.0  # seconds a forced stop waits for the Lava thread to leave Lava
THREAD_PREFIX = "sj2lava-lava"

T = TypeVar("T")


_DONE = object()
_STOPPING = object()


def supervise(net, work: Callable[[Callable[[int], None]], T], *, what: str, total: int,
              timeout: Optional[float] = None, progress: Optional[Callable[[int], None]] = None) -> T:
    """Run ``work(beat)`` in a Lava thread, then stop Lava process ``net``'s runtime; watch both from this thread.

    ``work`` runs ``net`` and calls ``beat(i)`` after sample ``i`` (1-based) of ``total`` finished;
    ``progress(i)`` is then called in this thread. ``timeout`` is in seconds without a beat (the first sample
    includes compiling the network), ``None`` to wait as long as the workers live; stopping the runtime may take
    :data:`STOP_LIMIT` seconds (or ``timeout``, if longer). Returns what ``work`` returns, or raises what it
    raised, or :class:`LavaRunError` after stopping the runtime by force.
    """
    _die_with_lava_thread()
    watch = _Watch(net, what, total, timeout)
    events: queue.Queue[object] = queue.Queue()
    result: dict = {}
    thread = threading.Thread(target=watch.lava_thread, args=(work, events, result), name=f"{THREAD_PREFIX} {what}",
                              daemon=True)
    thread.start()
    try:
        while not watch.step(events, progress):
            pass
    except BaseException:
        watch.cancel(thread)
        raise
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def check_timeout(timeout: Optional[float], what: str) -> None:
    """A timeout is a positive number of seconds, or ``None`` for none."""
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"{what}: timeout must be a positive number of seconds or None, got {timeout!r}")


def _stop(net, events: queue.Queue[object]) -> None:
    """Lava's own stop of a started runtime; the watcher expects the workers to end from now on."""
    runtime = _runtime(net)
    if runtime is not None and runtime._is_started:
        events.put(_STOPPING)
        net.stop()


class _Watch:
    """The caller-side state of one supervised run."""

    def __init__(self, net, what: str, total: int, timeout: Optional[float]):
        check_timeout(timeout, what)
        self.net, self.what, self.total, self.timeout = net, what, total, timeout
        self.done, self.stopping, self.cancelled = 0, False, False
        self.last = time.monotonic()
        self.ended_at: Optional[float] = None

    def lava_thread(self, work: Callable[[Callable[[int], None]], T], events: queue.Queue[object],
                    result: dict) -> None:
        """The Lava thread: ``work``, then Lava's stop; what it returns or raises goes to ``result``. After a forced
        stop it ends at its next channel operation (the channels are closed under it) and stops any workers it
        forked in the meantime."""
        try:
            try:
                result["value"] = work(events.put)
            finally:
                if not self.cancelled:
                    _stop(self.net, events)
        except BaseException as e:  # noqa: B036 - handed to the caller's thread, which re-raises it
            result["error"] = e
        finally:
            runtime = _runtime(self.net)
            if self.cancelled and runtime is not None:
                _force_stop(runtime)
            events.put(_DONE)

    def step(self, events: queue.Queue[object], progress: Optional[Callable[[int], None]]) -> bool:
        """Wait one poll for a beat; True once the Lava thread has finished."""
        try:
            item = events.get(timeout=POLL)
        except queue.Empty:
            item = None
        if item is _DONE:
            return True
        if item is _STOPPING:
            self.stopping, self.last = True, time.monotonic()
        elif isinstance(item, int):
            self.done, self.last = item, time.monotonic()
            if progress is not None:
                progress(item)
        self._check()
        return False

    def _check(self) -> None:
        now = time.monotonic()
        ended = _ended_workers(self.net)
        killed = [w for w in ended if w[2] != 0]
        if killed or (ended and not self.stopping):
            if killed or (self.ended_at is not None and now - self.ended_at > GRACE):
                raise self._error(_describe(killed or ended))
            self.ended_at = self.ended_at or now
        limit = max(STOP_LIMIT, self.timeout or 0) if self.stopping else self.timeout
        if limit is not None and now - self.last > limit:
            raise self._error(f"no progress for {limit:g} s" + ("" if self.stopping else " (timeout)"))

    def _error(self, cause: str) -> LavaRunError:
        at = ("while stopping the runtime" if self.stopping else "while reading the results"
              if self.done >= self.total else f"at sample {self.done + 1} of {self.total}")
        return LavaRunError(f"{self.what}: {cause} {at}; the Lava runtime was stopped and its shared memory "
                            f"released. Run fewer samples per call, give the run more memory or time (timeout=), "
                            f"or use sj2lava.emulate, which gives the same spikes without Lava.", self.done)

    def cancel(self, thread: threading.Thread) -> None:
        """Stop the runtime by force and get the Lava thread out of its wait: every channel it may wait on is
        poked, and its next use of a closed channel raises there, at a defined point (no exception is injected into
        the thread: one landing inside a fork or a lock's release would leave that lock held for good). While the
        thread lives (it may still be forking workers, when the run stopped during Lava's start), every worker it
        made so far is killed."""
        self.cancelled = True
        deadline = time.monotonic() + CANCEL_WAIT
        while True:
            runtime = _runtime(self.net)
            if runtime is not None:
                _force_stop(runtime)
                _poke(runtime)
            if not thread.is_alive() or time.monotonic() > deadline:
                break
            thread.join(0.05)
        if thread.is_alive():
            log.warning("the Lava thread did not end after its runtime was stopped; it stays as an idle daemon thread")


def _runtime(net):
    return getattr(net, "_runtime", None)


def _actors(runtime) -> list:
    infrastructure = getattr(runtime, "_messaging_infrastructure", None)
    return list(getattr(infrastructure, "actors", None) or [])


def _ended_workers(net) -> List[tuple]:
    """``(name, pid, exitcode)`` of every worker of the runtime that is no longer running."""
    runtime = _runtime(net)
    ended = []
    for i, actor in enumerate(_actors(runtime) if runtime is not None else []):
        status = _exit_status(actor)
        if status is not None:
            ended.append((i, *status))
    if not ended:
        return []
    names = list(itertools.islice(_worker_names(runtime), len(_actors(runtime))))
    return [(names[i], pid, code) for i, pid, code in ended]


def _exit_status(actor) -> Optional[Tuple[int, int]]:
    """``(pid, exit code)`` of a worker that ended (the code is minus the signal that killed it), or None while it
    runs, without reaping it: Lava's own join waits for it in the other thread, and two threads reaping one child
    break multiprocessing's bookkeeping. Everything is read from one reference to the worker's ``Popen``: Lava's
    stop closes the process object in the Lava thread at any moment, after which ``actor.pid`` raises."""
    popen = getattr(actor, "_popen", None)
    if popen is None:  # closed: Lava's join saw it end
        return None
    pid, code = popen.pid, getattr(popen, "returncode", None)
    if code is not None:  # reaped by Lava's join
        return pid, code
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except (ChildProcessError, AttributeError):  # reaped meanwhile, or a system without waitid
        return None
    if info is None:
        return None
    return pid, -info.si_status if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status


def _worker_names(runtime) -> Iterator[str]:
    """What each worker runs, in the order Lava starts them: one per Python process model, then the runtime
    services (a worker's own arguments are dropped once it is started)."""
    from lava.magma.compiler.builders.py_builder import PyProcessBuilder

    executable = runtime._executable
    for proc, builder in (executable.proc_builders or {}).items():
        if isinstance(builder, PyProcessBuilder):
            yield f"{getattr(builder, '_proc_model', type(proc)).__name__} of process {proc.name!r}"
    for builder in (executable.runtime_service_builders or {}).values():
        yield getattr(builder.rs_class, "__name__", "runtime service")
    while True:
        yield "(unknown)"


def _describe(ended: List[tuple]) -> str:
    name, pid, code = ended[0]
    if code < 0:
        sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        oom = "; the kernel's out-of-memory killer sends it" if -code == signal.SIGKILL else ""
        how = f"was killed by signal {-code} ({sig}{oom})"
    else:
        how = f"exited with code {code}"
    more = f" (and {len(ended) - 1} more)" if len(ended) > 1 else ""
    return f"Lava worker {name} (pid {pid}) {how}{more}"


_FORCE = threading.Lock()


def _force_stop(runtime) -> None:
    """End a runtime whose workers cannot be trusted to answer: kill and reap them, release the channels' threads,
    unlink the shared memory, mark the runtime stopped. Safe to repeat, from either thread."""
    with _FORCE:
        _force_stop_locked(runtime)


def _force_stop_locked(runtime) -> None:
    actors = _actors(runtime)
    for actor in actors:
        popen = getattr(actor, "_popen", None)
        if popen is not None and _exit_status(actor) is None:
            try:
                os.kill(popen.pid, signal.SIGKILL)
            except OSError:
                pass
    for actor in actors:
        try:
            actor.join()  # Lava's join: reaps the process and closes its pipes
        except (ValueError, OSError, AssertionError):
            pass
    for port in [*getattr(runtime, "_open_ports", []), *getattr(runtime, "runtime_to_service", []),
                 *getattr(runtime, "service_to_runtime", [])]:
        try:
            _close_port(port)
        except Exception:  # noqa: BLE001 - a half-built port: nothing of it to release
            pass
    _release_shared_memory(runtime)
    manager = getattr(runtime, "_watchdog_manager", None)
    if manager is not None:
        try:
            manager.stop()
        except Exception:  # noqa: BLE001 - its own manager process may be gone as well
            pass
    runtime._is_running = runtime._is_started = False  # its finaliser would otherwise wait for the dead worker


def _close_port(port) -> None:
    """Lava's join of a channel port, which ends its thread. A port not started yet (the run stopped during Lava's
    start) is marked done with its semaphore released instead, so that the thread Lava may still start for it ends
    at once rather than fail on the handles a join clears."""
    if getattr(port, "thread", None) is not None or getattr(port, "_done", True):
        port.join()
        return
    port._done = True
    for name in ("_req", "_ack"):  # the one its thread would wait on: _req for a receiver, _ack for a sender
        sem = getattr(port, name, None)
        if sem is not None:
            sem.release()


def _release_shared_memory(runtime) -> None:
    """Unlink every segment of the runtime and end its shared-memory manager process."""
    smm = getattr(getattr(runtime, "_messaging_infrastructure", None), "_smm", None)
    if smm is None:
        return
    # unlinked, not unmapped: the Lava thread may still read a channel's array on its way out
    handles = list(getattr(smm, "_shared_memory_handles", []))
    smm._shared_memory_handles = []
    manager, smm._manager = getattr(smm, "_manager", None), None
    if manager is not None:
        try:
            manager.shutdown()  # unlinks every segment it made
        except Exception:  # noqa: BLE001 - the manager died too: unlink by name below
            pass
    for handle in handles:
        try:
            handle.unlink()
        except OSError:  # FileNotFoundError: the manager unlinked it
            pass


def _poke(runtime) -> None:
    """Wake whatever the Lava thread waits on once its runtime is stopped by force: a receive gets a token (and
    fails on its closed channel), a send a free slot (likewise), a selector a look at its channels, and Lava's
    start-up an answer from each worker (a killed worker never sends its own)."""
    for port in [*getattr(runtime, "service_to_runtime", []), *getattr(runtime, "runtime_to_service", [])]:
        recv_queue, slots = getattr(port, "_queue", None), getattr(port, "_semaphore", None)
        if recv_queue is not None and not recv_queue.qsize():
            recv_queue.put_nowait(0)
        if slots is not None:
            slots._value = max(slots._value, 1)  # the slot a blocked send waits for; notify below
            with slots._cond:
                slots._cond.notify_all()
        observer = getattr(port, "observer", None)
        if observer is not None:
            observer()
    for q in getattr(runtime, "exception_q", None) or []:
        try:
            q.put_nowait(None)
        except Exception:  # noqa: BLE001 - a closed or full queue has nobody left waiting on it
            pass


_DEATH_SIGNAL_SET = False


def _die_with_lava_thread() -> None:
    """Make every process the Lava thread forks get SIGKILL when that thread's process dies (Linux only)."""
    global _DEATH_SIGNAL_SET
    if _DEATH_SIGNAL_SET or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return
    parent = [0]

    def before() -> None:
        parent[0] = os.getpid()

    def in_child() -> None:
        if threading.current_thread().name.startswith(THREAD_PREFIX):
            prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
            if os.getppid() != parent[0]:  # the parent died between fork and prctl
                os._exit(1)

    os.register_at_fork(before=before, after_in_child=in_child)
    _DEATH_SIGNAL_SET = True
