"""Hostile ``.net`` files: seeded mutants of small valid nets, each through ``load``, ``sj2lava inspect`` and
``emulate`` (both backends), in a child process under a time and address-space limit.

    python tools/fuzz_netx.py [--mutants 800] [--seed 0] [--timeout 20] [--memory-gib 4]

Every mutant must end in a ``NetFileError`` (``inspect`` exit 2 with one line) or a clean run. Anything else
(another exception, a signal, a hang, a MemoryError, an accepted file that ``emulate`` fails on) is a failure:
the summary counts each class and the exit status is 1. Mutation classes: deleted, added, retyped, reshaped
and revalued fields (0, -1, huge, NaN, inf, int8 edges), soft and external links, external raw storage,
virtual datasets, truncation, byte flips, odd layer names and type strings with terminal escapes, huge
declared shapes, impossible conv geometry.
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import List, Tuple

import _fuzz  # tools/, beside this script
import h5py
import numpy as np

SPECIALS = [0, -1, 1, 127, 128, -129, 255, 256, 2**15, 2**31, -2**31, 2**40, -2**40, 1e30, float("nan"),
            float("inf"), 0.5]
DTYPES = ["float64", "float32", "bool", "int8", "uint64", "complex64", "S5", "str"]
ODD_NAMES = ["999999999999999999999", "abc", "-1", "1e3", "\x1b[31m1", " 1", "01", "10000000000", "\u0661"]


def base_files(folder: Path) -> List[Path]:
    """Small valid nets of every layer kind (sj2lava's writer), plus lava-dl's tiny.net and mnist.net."""
    from sj2lava.netx import hdf5
    from sj2lava.netx.random_nets import random_spec

    paths = []
    for seed, kw in [(1, {}), (3, {}), (5, {"delays": 1.0}), (8, {"inputs": 1.0}), (4, {"sdnn": 1.0}),
                     (2, {"rf": 1.0}), (12, {}), (21, {})]:
        paths.append(hdf5.write(random_spec(seed, **kw), folder / f"base{seed}.net"))
    try:
        import lava.lib.dl.netx as netx

        shipped = Path(netx.__file__).parents[4] / "tests" / "lava" / "lib" / "dl" / "netx"
        for name in ("tiny.net", "mnist.net"):
            if (shipped / name).is_file():
                paths.append(Path(shutil.copy(shipped / name, folder / name)))
    except ImportError:  # the core environment: sj2lava's own nets only
        pass
    return paths


def _objects(f: h5py.File) -> Tuple[List[str], List[str]]:
    datasets, groups = [], []
    f.visititems(lambda name, obj: (datasets if isinstance(obj, h5py.Dataset) else groups).append(name))
    return datasets, groups


def _replace(f: h5py.File, name: str, data) -> None:
    del f[name]
    f.create_dataset(name, data=data)


def mutate(rng: np.random.Generator, path: Path, scratch: Path) -> str:
    """Apply one random mutation to the file at ``path`` in place; return what it did."""
    kind = rng.choice(["delete", "add", "retype", "reshape", "value", "value", "link", "external", "virtual",
                       "truncate", "flip", "name", "type_string", "huge_shape", "geometry", "geometry"])
    if kind == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[:int(rng.integers(0, len(data)))])
        return kind
    if kind == "flip":
        data = bytearray(path.read_bytes())
        for _ in range(int(rng.integers(1, 20))):
            data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(data))
        return kind
    with h5py.File(path, "r+") as f:
        datasets, groups = _objects(f)
        layers = sorted(g for g in groups if g.count("/") == 1)
        name = str(rng.choice(datasets))
        if kind == "delete":
            target = str(rng.choice(datasets + groups))
            del f[target]
            return f"delete {target}"
        if kind == "add":
            layer = str(rng.choice(layers))
            field = str(rng.choice(["delay", "bias", "weight_rec", "neuron/messageBits", "neuron/sigma_output",
                                    "neuron/foo", "weight_imag", "groups", "stride", "neuron/sinDecay"]))
            if field not in f[layer]:
                f[layer].create_dataset(field, data=rng.integers(-3, 70, int(rng.integers(1, 5))))
            return f"add {layer}/{field}"
        if kind == "retype":
            dtype = str(rng.choice(DTYPES))
            old = f[name][()]
            if dtype == "str":
                new = "x" * 3
            elif dtype == "S5":
                new = np.asarray(old).astype("S5") if np.asarray(old).dtype.kind != "O" else b"abc"
            else:
                new = np.asarray(old).astype(dtype) if np.asarray(old).dtype.kind in "iufb" else np.zeros(2, dtype)
            _replace(f, name, new)
            return f"retype {name} {dtype}"
        if kind == "reshape":
            old = np.asarray(f[name][()])
            choice = int(rng.integers(4))
            new = [old.reshape(-1)[:0], old.reshape(-1), old.reshape(1, *old.shape), np.repeat(old, 2)][choice] \
                if old.dtype.kind in "iufb" else old
            _replace(f, name, new)
            return f"reshape {name} #{choice}"
        if kind == "value":
            old = np.asarray(f[name][()])
            value = SPECIALS[int(rng.integers(len(SPECIALS)))]
            if old.dtype.kind not in "iufb":
                return "skipped value (a string)"
            new = old.astype(np.float64).copy()
            if new.size:
                new.reshape(-1)[int(rng.integers(new.size))] = value
            if not (np.all(np.isfinite(new)) and np.all(new == np.round(new))):
                pass
            elif np.abs(new).max(initial=0) < 2**62:
                new = new.astype(np.int64)
            _replace(f, name, new)
            return f"value {name} {value}"
        if kind == "link":
            del f[name]
            target = rng.choice(["soft", "external", "fifo"])
            if target == "soft":
                f[name] = h5py.SoftLink("/" + str(rng.choice(datasets)))
            elif target == "external":
                f[name] = h5py.ExternalLink("/etc/passwd", "/x")
            else:
                fifo = scratch / f"fifo{int(rng.integers(1 << 30))}"
                if hasattr(os, "mkfifo"):
                    os.mkfifo(fifo)
                f[name] = h5py.ExternalLink(str(fifo), "/x")
            return f"link {name} {target}"
        if kind == "external":
            old = np.asarray(f[name][()])
            raw = scratch / f"raw{int(rng.integers(1 << 30))}"
            raw.write_bytes(b"\0" * max(8, old.nbytes))
            del f[name]  # a scalar cannot live in external storage: a one-value array does
            f.create_dataset(name, shape=old.shape or (1,), dtype=old.dtype if old.dtype.kind in "iufb" else "i8",
                             external=[(str(raw), 0, h5py.h5f.UNLIMITED)])
            return f"external {name}"
        if kind == "virtual":
            other = scratch / f"v{int(rng.integers(1 << 30))}.h5"
            old = np.asarray(f[name][()])
            if old.dtype.kind not in "iufb":
                return "skipped virtual (a string)"
            old = old.reshape(old.shape or (1,))
            with h5py.File(other, "w") as g:
                g.create_dataset("d", data=old)
            layout = h5py.VirtualLayout(shape=old.shape, dtype=old.dtype)
            layout[...] = h5py.VirtualSource(str(other), "d", shape=old.shape)
            del f[name]
            f.create_virtual_dataset(name, layout)
            return f"virtual {name}"
        if kind == "name":
            layer = str(rng.choice(layers))
            new = "layer/" + ODD_NAMES[int(rng.integers(len(ODD_NAMES)))]
            if new not in f:
                f.move(layer, new)
            return f"name {layer} -> {new!r}"
        if kind == "type_string":
            layer = str(rng.choice(layers))
            if "type" in f[layer]:
                del f[f"{layer}/type"]
            f[layer].create_dataset("type", (1,), "S16", [b"\x1b[2J\x1b[31mconv"])
            return f"type_string {layer}"
        if kind == "huge_shape":
            layer = str(rng.choice(layers))
            value = [np.array([2**28]), np.array([2**31, 1, 1]), np.array([10**6, 10**3, 10**3]),
                     np.arange(2**16)][int(rng.integers(4))]
            if "shape" in f[layer]:
                del f[f"{layer}/shape"]
            f[layer].create_dataset("shape", data=value)
            return f"huge_shape {layer}"
        convs = [g for g in layers if "type" in f[g] and f[g]["type"][()].reshape(-1)[0] == b"conv"]
        layer = str(rng.choice(convs or layers))
        field = str(rng.choice(["stride", "padding", "dilation", "groups", "weight"]))
        value = [0, -1, -5, 128, 2**40, 2**31, 200][int(rng.integers(7))]
        if field == "weight" and "weight" in f[layer] and isinstance(f[layer]["weight"], h5py.Dataset):
            w = np.asarray(f[layer]["weight"][()])
            if w.ndim == 4:
                shape = list(w.shape)
                shape[int(rng.integers(4))] = 0
                _replace(f, f"{layer}/weight", np.zeros(shape))
            return f"geometry {layer} empty kernel"
        if field in f[layer]:
            del f[f"{layer}/{field}"]
        f[layer].create_dataset(field, data=np.array([value, value]) if rng.random() < 0.5 else value)
        return f"geometry {layer} {field}={value}"


def check(path: Path) -> str:
    """``'refused'`` or ``'ran'``; raises on anything else."""
    import torch

    from sj2lava import NetFileError, emulate, load
    from sj2lava.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["inspect", str(path)])
    try:
        spec = load(path)
    except NetFileError:
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        if code != 2 or len(lines) != 1 or "\x1b" in err.getvalue():
            raise AssertionError(f"inspect of a refused file: exit {code}, stderr {err.getvalue()!r}") from None
        return "refused"
    if code != 0:
        raise AssertionError(f"load accepts the file but inspect exits {code}: {err.getvalue()!r}")
    first = spec.layers[0]
    steps = 4
    g = torch.Generator().manual_seed(0)
    if spec.graded_input:
        kw = dict(x=torch.randint(-3, 4, (steps, 2, *spec.input_shape), generator=g))
    elif first.kind == "input":
        kw = dict(input_bias=torch.randint(0, 100, (2, *spec.input_shape), generator=g), num_steps=steps)
    else:
        kw = dict(x=(torch.rand(steps, 2, *spec.input_shape, generator=g) < 0.5).float())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = emulate(spec, backend="torch", **kw)
        b = emulate(spec, backend="auto", **kw)
    if not torch.equal(a, b):
        raise AssertionError("the backends disagree")
    return "ran"


def child(args) -> int:
    """Run mutants ``first..`` and print one JSON line per mutant; a crash ends the process mid-mutant."""
    _fuzz.limit_child(args)

    scratch = Path(args.scratch)
    bases = sorted(scratch.glob("base*.net")) + sorted(scratch.glob("tiny.net")) + sorted(scratch.glob("mnist.net"))
    for i in range(args.first, args.mutants):
        rng = np.random.default_rng([args.seed, i])
        base = bases[int(rng.integers(len(bases)))]
        path = scratch / f"m{i}.net"
        shutil.copy(base, path)
        try:
            what = f"{base.name}: " + mutate(rng, path, scratch)
        except Exception as e:  # a mutation h5py itself refuses: count the unmutated file
            what = f"{base.name}: mutation failed ({type(e).__name__})"
        print(json.dumps({"i": i, "start": what}), flush=True)
        _fuzz.report(i, args.timeout, functools.partial(check, path))
        path.unlink(missing_ok=True)
    return 0


def main(argv=None) -> int:
    return _fuzz.main(__file__, __doc__, 800, child, lambda start: start.split(": ", 1)[1].split(" ")[0],
                      prepare=base_files, argv=argv)

if __name__ == "__main__":
    sys.exit(main())
