"""Lazy imports of the optional heavy dependencies (lava-dl, lava-nc, SpikingJelly).

The core of sj2lava imports with torch, numpy and h5py only; these are imported where used.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional

_HINT = "Install the Lava extra: pip install 'sj2lava[lava]' (needs Python 3.10)."


def slayer() -> ModuleType:
    """``lava.lib.dl.slayer``, or an ImportError that says how to install it."""
    try:
        return importlib.import_module("lava.lib.dl.slayer")
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"lava-dl is needed for this: {e}. {_HINT}") from e


def optional(name: str) -> Optional[ModuleType]:
    """Import ``name`` if it is installed and already importable, else None (never raises)."""
    try:
        return importlib.import_module(name)
    except Exception:  # a broken optional package must not break sj2lava
        return None
