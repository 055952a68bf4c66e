"""Writing a file so that readers see the old one or the whole new one, never a part, and nobody can
redirect the write: a temporary file with an unpredictable name, created exclusively in the target's folder
(``tempfile.mkstemp``: never an existing file or a planted link), then renamed onto the target.

Temporary files name their writer: ``.<target name>.<pid>.<random>.tmp``. They go on error, Ctrl-C and SIGTERM
(the default SIGTERM action would kill the process without cleaning up, so while a file is being written in the
main thread SIGTERM raises ``SystemExit(143)`` instead, where nobody else handles it); a ``kill -9`` leaves one,
which the next write of that target (or the next kernel build, in the kernel cache) removes once its writer's
process is gone.
"""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_target", "remove_stale", "sigterm_raises"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # someone else's process, or no way to tell: keep its file
        return True
    return True


def remove_stale(folder: Path, prefix: str, suffix: str) -> None:
    """Remove ``folder/<prefix><pid>.<random><suffix>`` files whose writer ``pid`` has died (a kill -9 mid-write)."""
    try:
        names = [p for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix)]
    except OSError:
        return
    for p in names:
        pid = p.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)) and p.is_file() and not p.is_symlink():
            with contextlib.suppress(OSError):
                p.unlink()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the block runs in the main thread and SIGTERM has its default action, SIGTERM raises
    ``SystemExit(143)`` (so that ``finally`` blocks remove temporary files); restored after."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def atomic_target(path: os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; when the block ends without error it becomes ``path``
    (with the permissions a new file would get), otherwise it is removed (SIGTERM included, see the module)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist")
    prefix = f".{path.name}."
    remove_stale(path.parent, prefix, suffix)
    with sigterm_raises():
        fd, name = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}.", suffix=suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
