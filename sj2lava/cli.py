"""The ``sj2lava`` command line.

    sj2lava inspect FILE.net
    sj2lava run FILE.net --input X.npy [--input-bias B.npy] [--backend emulator|lava] [--layout TNX|NXT]
                         [--reset-interval R] [--num-layers N] [--skip-layers K] [--out OUT.npy] [--timeout S]
    sj2lava eval FILE.net --data DATA.npz --steps N [--backend emulator|lava] [--spikes] [--timeout S]
    sj2lava convert MODEL.nir -o FILE.net --dt DT [--input-shape C,H,W] [--reset zero|subtract]
                    [--approximate] [--no-rescale]
    sj2lava demo
    sj2lava --version          (also: python -m sj2lava ...)

Exit codes: 0 ok, 2 bad arguments or file, 1 any other failure. Messages go to stderr, without
tracebacks for user errors.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, cast

from ._atomic import atomic_target
from ._deps import progress

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _UserError(Exception):
    """Bad arguments or input file: exit 2 with one line on stderr."""


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="sj2lava", description="Deploy PyTorch spiking nets on Loihi via Lava.")
    p.add_argument("--version", action="version", version=f"sj2lava {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("inspect", help="print the layers of a .net file")
    i.add_argument("file", type=Path, help="the NetX .net (HDF5) file")
    r = sub.add_parser("run", help="run a .net file (bit-exact emulator, or Lava's CPU simulation of Loihi)")
    r.add_argument("file", type=Path, help="the NetX .net (HDF5) file")
    r.add_argument("--input", type=Path, help=".npy spikes, [T, N, *shape] or [N, *shape, T]; integers for a net with "
                   "graded input (SDNN) or input neurons (their a_in)")
    r.add_argument("--input-bias", type=Path, metavar="B.npy",
                   help="bias_mant images [N, *shape] of the input neurons (NetX's Input block, as lava-dl drives "
                        "PilotNet-LIF); --input is then optional and --steps sets the steps")
    r.add_argument("--layout", choices=("TNX", "NXT"), default="TNX",
                   help="axis order of --input and --out: TNX [T, N, *shape] (SpikingJelly) or NXT [N, *shape, T] "
                        "(lava-dl); default TNX")
    r.add_argument("--out", type=Path, help="where to save the output spikes (.npy)")
    r.add_argument("--steps", type=int, help="time steps per sample (default: T of the input)")
    r.add_argument("--backend", choices=("emulator", "lava"), default="emulator",
                   help="emulator: sj2lava's bit-exact emulator (fast, batched); lava: Lava's CPU simulation of Loihi "
                        "(needs the lava extra); default emulator")
    r.add_argument("--reset-interval", type=int, metavar="R",
                   help="zero every layer's u and v every R steps (NetX's reset_interval)")
    r.add_argument("--reset-offset", type=int, default=0, metavar="K", help="phase of the reset (NetX's reset_offset)")
    r.add_argument("--num-layers", type=int, metavar="N", help="run only the file's first N layers (NetX's num_layers)")
    r.add_argument("--skip-layers", type=int, default=0, metavar="K",
                   help="drop the file's first K layers; the input then feeds layer K (NetX's skip_layers)")
    r.add_argument("--spike-exp", type=int, default=6, metavar="E",
                   help="SDNN message fraction bits (NetX's spike_exp)")
    r.add_argument("--window", choices=("all", "aligned"), default="all",
                   help="all: every step run (default); aligned: T + L steps run (L: one step of Lava latency per "
                        "synaptic layer) and the output's T steps that answer the input saved")
    r.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="Lava backend: stop with an error when a sample takes longer than SECONDS (the first "
                        "includes compiling); a dead Lava worker always stops the run")
    e = sub.add_parser("eval", help="accuracy on a labelled .npz (x: [N, *shape] in [0, 1], y: [N])")
    e.add_argument("file", type=Path, help="the NetX .net (HDF5) file")
    e.add_argument("--data", required=True, type=Path, help=".npz with x [N, *shape] and labels y [N]")
    e.add_argument("--steps", required=True, type=int, help="time steps per sample (rate coding of x)")
    e.add_argument("--backend", choices=("emulator", "lava"), default="emulator",
                   help="emulator (bit-exact, fast) or lava (Lava's CPU simulation; needs the lava extra)")
    e.add_argument("--spikes", action="store_true", help="x already holds spikes [T, N, *shape]")
    e.add_argument("--limit", type=int, help="evaluate the first LIMIT samples only")
    e.add_argument("--window", choices=("aligned", "all"), default="aligned",
                   help="aligned (default): each sample runs steps + L (Lava's latency) and its output is read in "
                        "the steps that answer the input; all: the given steps only")
    e.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="Lava backend: stop with an error when a sample takes longer than SECONDS (the first "
                        "includes compiling); a dead Lava worker always stops the run")
    c = sub.add_parser("convert", help="convert a NIR graph (.nir) to a NetX .net file")
    c.add_argument("model", type=Path, help="the NIR graph (.nir)")
    c.add_argument("-o", "--out", required=True, type=Path, help="the .net file to write")
    c.add_argument("--dt", required=True, type=float, help="time step that discretises the NIR graph")
    c.add_argument("--input-shape", help="C,H,W or F, if the graph's Input node does not say")
    c.add_argument("--reset", choices=("zero", "subtract"), default="zero",
                   help="the graph's reset after a spike (NIR 0.2 graphs do not record it; default zero)")
    c.add_argument("--approximate", action="store_true",
                   help="accept the nearest Loihi neuron where none is exact (subtract reset), with a note")
    c.add_argument("--no-rescale", action="store_true",
                   help="keep each layer's float scale instead of filling Loihi's 8-bit weight grid")
    sub.add_parser("demo", help="run the main demo job (train, export, verify in Lava); its options: "
                                "sj2lava demo --help")
    return p


def _load(path: Path, **options):
    from .errors import NetFileError
    from .netx.hdf5 import load

    try:
        return load(path, **options)
    except NetFileError as e:
        raise _UserError(str(e)) from None
    except ValueError as e:  # bad num_layers / skip_layers
        raise _UserError(str(e)) from None


def _inspect(args) -> int:
    spec = _load(args.file)
    print(f"{args.file}: {len(spec.layers)} layers, input {spec.input_shape}, output {spec.output_shape}")
    print(spec.table())
    print("reset: a run option, not stored in the file (NetX's reset_interval / reset_offset: "
          "sj2lava run --reset-interval R --reset-offset K)")
    return EXIT_OK


def _run(args) -> int:
    import numpy as np
    import torch

    from ._deps import require_lava
    from .netx.lava import run_lava

    _check_out(args.out)
    if args.backend == "lava":  # before any bar is drawn: without Lava, say how to get it
        require_lava("sj2lava run --backend lava")
    _check_timeout(args)
    spec = _load(args.file, num_layers=args.num_layers, skip_layers=args.skip_layers)
    x = None if args.input is None else _npy(args.input)
    bias = None if args.input_bias is None else _npy(args.input_bias)
    if x is None and bias is None:
        raise _UserError("give --input (and/or --input-bias for a net whose input layer has neurons)")
    options = dict(layout=args.layout, reset_interval=args.reset_interval, reset_offset=args.reset_offset,
                   input_bias=bias, spike_exp=args.spike_exp, window=args.window)
    try:
        if args.backend == "emulator":
            from .emulator import emulate

            if x is not None and args.steps is not None and args.steps != (
                    x.shape[0] if args.layout == "TNX" else x.shape[-1]):
                raise _UserError("--steps is for the Lava backend; the emulator runs the input's T steps")
            y = cast(torch.Tensor, emulate(spec, x, num_steps=args.steps if x is None else None, **options))
        else:
            n = (bias.shape[0] if bias is not None and bias.dim() > len(spec.input_shape) else 1) if x is None else (
                x.shape[1] if args.layout == "TNX" and x.dim() > 1 else x.shape[0])
            bar = _Bar(n, f"Lava {args.file.name}")
            try:
                y = cast(torch.Tensor, run_lava(args.file, x, num_steps=args.steps, progress=bar.update_to, spec=spec,
                                                num_layers=args.num_layers, skip_layers=args.skip_layers,
                                                timeout=args.timeout, **options))
            finally:
                bar.close()
    except ValueError as e:
        raise _UserError(str(e)) from None
    shown = tuple(x.shape) if x is not None else f"bias {tuple(cast(torch.Tensor, bias).shape)}"
    what = "output spikes" if y.dtype.is_floating_point else "output message sum"
    print(f"{args.backend}: {shown} -> {tuple(y.shape)} ({args.layout}), {int(y.sum())} {what}, "
          f"{len(spec.layers)} layers")
    if args.out:
        with atomic_target(args.out) as tmp, open(tmp, "wb") as fh:
            np.save(fh, y.numpy())
        print(f"saved {args.out}")
    return EXIT_OK


def _check_out(out: Optional[Path]) -> None:
    """Refuse an output path that cannot be written before any work is done."""
    if out is None:
        return
    if out.is_dir():
        raise _UserError(f"--out {out} is a folder; give a file name")
    if not out.parent.is_dir():
        raise _UserError(f"--out {out}: folder {out.parent} does not exist")


def _npy(path: Path):
    import numpy as np
    import torch

    if not path.is_file():
        raise _UserError(f"{path}: no such file")
    try:
        return torch.from_numpy(np.load(path, allow_pickle=False))
    except Exception as e:
        raise _UserError(f"{path}: not a readable .npy array ({e})") from None


def _eval_data(path: Path):
    """``(x, y)`` from the ``.npz`` at ``path`` (arrays ``x`` and ``y``), or a user error naming the file."""
    import numpy as np
    import torch

    if not path.is_file():
        raise _UserError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as d:
            x, y = torch.from_numpy(d["x"]), d["y"]
    except KeyError as e:
        raise _UserError(f"{path}: needs arrays 'x' and 'y' (missing {e})") from None
    except Exception as e:
        raise _UserError(f"{path}: not a readable .npz ({e})") from None
    if not np.issubdtype(y.dtype, np.integer):
        raise _UserError(f"{path}: labels y must be integer class indices, got {y.dtype}")
    return x, torch.from_numpy(y).long()


def _check_timeout(args) -> None:
    if args.timeout is None:
        return
    if args.backend != "lava":
        raise _UserError("--timeout is for the Lava backend (--backend lava); the emulator needs none")
    if not args.timeout > 0:
        raise _UserError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")


def _eval(args) -> int:
    import torch

    from .evaluate import evaluate

    if args.backend == "lava":
        from ._deps import require_lava

        require_lava("sj2lava eval --backend lava")
    _check_timeout(args)
    spec = _load(args.file)
    if args.limit is not None and args.limit < 1:
        raise _UserError(f"--limit must be >= 1, got {args.limit}")
    if args.steps < 1:
        raise _UserError(f"--steps must be >= 1, got {args.steps}")
    x, y = _eval_data(args.data)
    encoder = None
    if args.spikes:
        if x.dim() < 3 or x.shape[0] != args.steps:
            raise _UserError(f"--spikes: x must be [T={args.steps}, N, *shape], got {tuple(x.shape)}")
        x = x.transpose(0, 1)  # batches along N; the encoder puts time first again
        encoder = lambda b: b.transpose(0, 1).float()  # noqa: E731
    else:
        xf = x.double()
        if x.numel() and not (bool(torch.isfinite(xf).all()) and float(xf.min()) >= 0 and float(xf.max()) <= 1):
            raise _UserError(f"{args.data}: x must hold rates in [0, 1] (found {float(xf.min()):g}.."
                             f"{float(xf.max()):g}); scale it, or pass --spikes for spike trains")
    if args.limit is not None:
        x, y = x[:args.limit], y[:args.limit]
    try:
        result = evaluate(args.file, (x, y), steps=args.steps, encoder=encoder, backend=args.backend, spec=spec,
                          window=args.window, timeout=args.timeout)
    except ValueError as e:
        raise _UserError(str(e)) from None
    print(result)
    return EXIT_OK


def _convert(args) -> int:
    from .errors import ExportError, UnsupportedLayerError
    from .export import export
    from .frontends.nir import from_nir

    try:
        shape = tuple(int(v) for v in args.input_shape.split(",")) if args.input_shape else None
    except ValueError:
        raise _UserError(f"--input-shape must be integers such as 1,28,28 (C,H,W) or 784 (F), got "
                         f"{args.input_shape!r}") from None
    if shape is not None and (not 1 <= len(shape) <= 3 or min(shape) < 1):
        raise _UserError(f"--input-shape must be C,H,W or F with every size >= 1, got {args.input_shape!r}")
    if not args.model.is_file():
        raise _UserError(f"{args.model}: no such file")
    if args.model.suffix != ".nir":
        raise _UserError(f"{args.model}: expected a NIR graph (.nir); convert PyTorch models in Python with "
                         "sj2lava.convert")
    try:
        net = from_nir(args.model, dt=args.dt, reset=args.reset, approximate=args.approximate,
                       rescale=not args.no_rescale)
        path = export(net, args.out, shape or net.input_shape)
    except (UnsupportedLayerError, ExportError, ValueError, OSError) as e:
        raise _UserError(str(e)) from None
    print(f"{args.model} -> {path} ({len([b for b in net if b.neuron is not None])} layers, dt={args.dt:g})")
    for note in getattr(net, "conversion_notes", []):
        print(f"note: {note}")
    return EXIT_OK


class _Bar:
    """tqdm over samples on stderr (a no-op if tqdm is missing)."""

    def __init__(self, total: int, desc: str):
        self._bar = progress(total=total, desc=desc, unit="sample")
        self._done = 0

    def update_to(self, done: int) -> None:
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        self._bar.close()


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # the demo parses its own options (sj2lava demo --help lists them); argparse exits 2 on bad arguments
    args = argparse.Namespace(cmd="demo") if argv[:1] == ["demo"] else _parser().parse_args(argv)
    try:
        if args.cmd == "demo":
            from .demo import main as demo

            return demo(argv[1:])
        if args.cmd == "inspect":
            return _inspect(args)
        if args.cmd == "run":
            return _run(args)
        if args.cmd == "eval":
            return _eval(args)
        if args.cmd == "convert":
            return _convert(args)
        raise AssertionError(f"unhandled command {args.cmd}")
    except _UserError as e:
        print(f"sj2lava {args.cmd}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"sj2lava {args.cmd}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an unexpected failure: say what, keep the traceback out of the user's way
        print(f"sj2lava {args.cmd}: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
