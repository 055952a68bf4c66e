"""Lazy imports of the optional heavy dependencies (lava-dl, lava-nc, SpikingJelly).

The core of sj2lava imports with torch, numpy and h5py only; these are imported where used.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import logging
import sys
from types import ModuleType
from typing import Optional

HINT = "Install the Lava extra: pip install 'sj2lava[lava]' (needs Python 3.10)."


_log = logging.getLogger("sj2lava")


def quiet_import(name: str) -> ModuleType:
    """Import ``name`` with its import-time prints (lava-dl's and SpikingJelly's notices about CUDA
    and optional datasets) sent to the debug log instead of the user's terminal."""
    if name in sys.modules:
        return sys.modules[name]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        mod = importlib.import_module(name)
    if out.getvalue().strip():
        _log.debug("import %s said: %s", name, out.getvalue().strip())
    return mod


def require_lava(what: str) -> None:
    """Raise an ImportError that says how to install Lava when ``lava`` (lava-nc) is not installed."""
    import importlib.util

    if importlib.util.find_spec("lava") is None:
        raise ImportError(f"{what} needs Lava (lava-nc and lava-dl), which is not installed here. {HINT} The "
                          "emulator needs none of it: sj2lava.emulate gives Lava's results.")


def optional(name: str) -> Optional[ModuleType]:
    """Import ``name`` if it is installed and already importable, else None (never raises)."""
    try:
        return importlib.import_module(name)
    except Exception:  # a broken optional package must not break sj2lava
        return None


class _NoBar:
    """Stands in for a tqdm bar when tqdm is not installed (or the bar is disabled): same calls, no output."""

    def __init__(self, iterable=None):
        self._iterable = iterable

    def __iter__(self):
        return iter(self._iterable if self._iterable is not None else ())

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def progress(iterable=None, *, total=None, desc: str = "", unit: str = "it", disable: bool = False):
    """A tqdm progress bar on stderr, or a silent stand-in when tqdm is absent (it is an optional extra)."""
    if not disable:
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr)
    return _NoBar(iterable)
