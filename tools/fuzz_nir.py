"""Hostile ``.nir`` files: seeded mutants of small valid NIR graphs, each through ``from_nir`` and, where it is
accepted, ``export`` and ``emulate``, in a child process under a time and address-space limit.

    python tools/fuzz_nir.py [--mutants 500] [--seed 0] [--timeout 20] [--memory-gib 4]

Every mutant must end in a refusal (``NirFileError`` or ``UnsupportedLayerError``: a message naming the file, node
or field) or a clean run. Anything else (another exception, a signal, a hang, a MemoryError) is a failure: the
summary counts each class and the exit status is 1. Mutation classes: field values (0, -1, huge, NaN, inf, complex,
strings, wrong shapes), deleted and retyped fields, ghost and dropped edges, nested subgraphs, and in the HDF5 file
itself soft and external links, truncation, byte flips and empty files.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import _fuzz  # tools/, beside this script
import numpy as np

VALUES = [0, -1, 1, 127, 128, 12_000, 10**6, 2**31, -2**31, 1e30, -1e30, float("nan"), float("inf"), 0.5, 1e-30,
          1 + 1j, "x"]


def base_graphs():
    """Small valid graphs: conv / pool / flatten / dense chains of IF, LIF and CubaLIF, a Scale and a Delay, and an
    RNN layer as snnTorch writes it (a subgraph)."""
    import nir

    rng = np.random.default_rng(0)
    conv = {
        "in": nir.Input(input_type={"input": np.array([2, 8, 8])}),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 1.5, (4, 2, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.zeros(4)),
        "if": nir.IF(r=np.full((4, 8, 8), 1000.0), v_threshold=np.full((4, 8, 8), 1.0)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "lif": nir.LIF(tau=np.full((4, 4, 4), 4e-3), r=np.full((4, 4, 4), 4.0), v_leak=np.zeros((4, 4, 4)),
                       v_threshold=np.full((4, 4, 4), 0.8)),
        "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(0, 1.5, (6, 64)), bias=np.zeros(6)),
        "cuba": nir.CubaLIF(tau_syn=np.full(6, 2e-3), tau_mem=np.full(6, 5e-3), r=np.full(6, 5.0),
                            v_leak=np.full(6, 0.1), v_threshold=np.full(6, 0.5), w_in=np.full(6, 2.0)),
        "out": nir.Output(output_type={"output": np.array([6])}),
    }
    dense = {
        "in": nir.Input(input_type={"input": np.array([5])}),
        "fc": nir.Linear(weight=rng.normal(0, 1.0, (4, 5))),
        "scale": nir.Scale(scale=np.full(4, 2.0)),
        "delay": nir.Delay(delay=np.array([0.0, 1e-3, 2e-3, 3e-3])),
        "lif": nir.LIF(tau=np.full(4, 4e-3), r=np.full(4, 4.0), v_leak=np.zeros(4), v_threshold=np.full(4, 0.5)),
        "out": nir.Output(output_type={"output": np.array([4])}),
    }
    rnn = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([4])}),
                              "lif": nir.LIF(tau=np.full(4, 4e-3), r=np.full(4, 4.0), v_leak=np.zeros(4),
                                             v_threshold=np.full(4, 0.5)),
                              "w_rec": nir.Linear(weight=rng.normal(0, 0.5, (4, 4))),
                              "output": nir.Output(output_type={"output": np.array([4])})},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
                       type_check=False)
    recurrent = {"in": nir.Input(input_type={"input": np.array([5])}),
                 "fc": nir.Linear(weight=rng.normal(0, 1.0, (4, 5))), "rnn": rnn,
                 "out": nir.Output(output_type={"output": np.array([4])})}
    graphs = []
    for nodes in (conv, dense, recurrent):
        order = list(nodes)
        graphs.append(nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), type_check=False))
    return graphs


def mutate_graph(rng: np.random.Generator, g) -> str:
    """One mutation of the graph's nodes or edges, in place; returns its class and a description."""
    import nir

    names = [n for n in g.nodes if type(g.nodes[n]).__name__ not in ("Input", "Output", "NIRGraph")]
    kind = rng.choice(["value", "value", "value", "shape", "delete", "edge", "nest"])
    if kind == "edge":
        if rng.random() < 0.5:
            g.edges.append(("ghost", str(rng.choice(list(g.nodes)))))
            return "edge ghost"
        g.edges.pop(int(rng.integers(len(g.edges))))
        return "edge dropped"
    if kind == "nest":
        inner = nir.NIRGraph(nodes={"i": nir.Input(input_type={"input": np.array([1])}),
                                    "o": nir.Output(output_type={"output": np.array([1])})},
                             edges=[("i", "o")], type_check=False)
        for _ in range(int(rng.integers(1, 40))):
            inner = nir.NIRGraph(nodes={"s": inner}, edges=[], type_check=False)
        g.nodes["nest"] = inner
        return "nest"
    name = str(rng.choice(names))
    node = g.nodes[name]
    fields = [f for f in vars(node) if not f.startswith("_")]
    field = str(rng.choice(fields))
    old = getattr(node, field)
    if kind == "delete":
        setattr(node, field, None)
        return f"delete {name}.{field}"
    if kind == "shape":
        setattr(node, field, np.ones(tuple(int(v) for v in rng.integers(0, 4, int(rng.integers(0, 5))))))
        return f"shape {name}.{field}"
    v = VALUES[int(rng.integers(len(VALUES)))]
    if isinstance(old, np.ndarray) and not isinstance(v, str):
        new = np.array(old, dtype=np.complex128 if isinstance(v, complex) else np.float64)
        new.reshape(-1)[int(rng.integers(max(new.size, 1)))] = v if new.size else 0
        setattr(node, field, new)
    else:
        setattr(node, field, v)
    return f"value {name}.{field}={v!r}"


def mutate_file(rng: np.random.Generator, path: Path) -> str:
    import h5py

    kind = rng.choice(["truncate", "flip", "link", "external", "empty"])
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[:int(rng.integers(0, len(data)))])
    elif kind == "flip":
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 20))):
            b[int(rng.integers(len(b)))] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(b))
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        with h5py.File(path, "a") as f:
            f["planted"] = h5py.SoftLink("/etc/passwd") if kind == "link" else h5py.ExternalLink("/etc/passwd", "/")
    return str(kind)


def check(path: Path, dt: float, graph=None) -> str:
    """``'refused'`` or ``'ran'`` for the file at ``path`` (or ``graph`` itself, when no file could be written);
    raises on anything else."""
    import warnings

    import torch

    import sj2lava
    from sj2lava import NirFileError, UnsupportedLayerError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            net = sj2lava.from_nir(path if graph is None else graph, dt=dt, approximate=True)
            out = path.with_suffix(".net")
            sj2lava.export(net, out, net.input_shape, strict=False)
        except (NirFileError, UnsupportedLayerError, sj2lava.ExportError) as e:
            if not str(e).strip() or "\n" in str(e).strip():
                raise AssertionError(f"a refusal without a one-line message: {e!r}") from None
            return "refused"
        spec = sj2lava.load(out)
        x = (torch.rand(4, 2, *spec.input_shape, generator=torch.Generator().manual_seed(0)) < 0.5).float()
        sj2lava.emulate(spec, x)
    return "ran"


def child(args) -> int:
    import nir

    _fuzz.limit_child(args)

    scratch = Path(args.scratch)
    for i in range(args.first, args.mutants):
        rng = np.random.default_rng([args.seed, i])
        graphs = base_graphs()
        g = graphs[int(rng.integers(len(graphs)))]
        path = scratch / f"m{i}.nir"
        try:
            if rng.random() < 0.75:
                what = "graph " + mutate_graph(rng, g)
                nir.write(path, g)
            else:
                nir.write(path, g)
                what = "file " + mutate_file(rng, path)
        except Exception as e:  # a mutant the nir package cannot even write: from_nir gets the graph itself
            what = f"graph unwritable-{type(e).__name__}"
            path.unlink(missing_ok=True)
        print(json.dumps({"i": i, "start": what}), flush=True)
        dt = float(rng.choice([1e-3, 1.0]))
        _fuzz.report(i, args.timeout, functools.partial(check, path, dt, None if path.exists() else g))
        for p in (path, path.with_suffix(".net")):
            p.unlink(missing_ok=True)
    return 0


def main(argv=None) -> int:
    return _fuzz.main(__file__, __doc__, 500, child, lambda start: " ".join(start.split(" ")[:2]), class_width=22,
                      argv=argv)

if __name__ == "__main__":
    sys.exit(main())
