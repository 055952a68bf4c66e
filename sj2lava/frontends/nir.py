"""NIR (Neuromorphic Intermediate Representation, package ``nir``) graphs to and from Loihi.

NIR nodes are continuous-time and carry no time step, so ``dt`` is required. sj2lava discretises
with forward Euler, each neuron using this step's current (as Loihi, SpikingJelly and snnTorch do)::

    IF:       v[t] = v[t-1] + r dt I[t]
    LIF:      v[t] = (1 - dt/tau) v[t-1] + (dt/tau) (r I[t] + v_leak)
    CubaLIF:  I[t] = (1 - dt/tau_syn) I[t-1] + (dt/tau_syn) w_in x[t]
              v[t] = (1 - dt/tau_mem) v[t-1] + (dt/tau_mem) (r I[t] + v_leak)

so CUBA's ``current_decay = dt/tau_syn`` (1 for IF and LIF), ``voltage_decay = dt/tau_mem``, the
input scale ``(dt/tau_syn) w_in (dt/tau_mem) r`` (``r dt`` for IF) is folded into the synapse weights,
and ``(dt/tau_mem) v_leak`` becomes the neuron bias. Spikes fire on ``v > v_threshold``, reset to 0.
snnTorch exports with ``dt = 1e-4``; with that ``dt`` a Leaky(beta) comes back as voltage decay 1 - beta.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, cast

import numpy as np
import torch
from torch import nn

from .. import quant
from ..block import BlockContainer
from ..convert import Layers, compose_pool, effective_weight
from ..errors import NirFileError, UnsupportedLayerError
from ..netx.hdf5 import limits, scan_file
from ..netx.spec import Conv, Cuba, Flatten, InputNeurons, NetSpec
from ..neuron import CubaLIFNode
from ..pool import SumPool2d, pair

__all__ = ["from_nir", "to_nir", "simulate_nir"]

_NO_DECAY_TAU = float(2 ** 30)  # a time constant (in dt) whose decay rounds to 0 on Loihi's 1/4096 grid


def _nir():
    try:
        import nir
    except ImportError as e:  # pragma: no cover
        raise ImportError("NIR support needs the 'nir' package: pip install 'sj2lava[nir]'") from e
    return nir


def _scalar(v, what: str, where: str) -> float:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise UnsupportedLayerError(f"{where}: {what} is empty")
    if not np.all(a == a[0]):
        raise UnsupportedLayerError(f"{where}: {what} differs between neurons; NetX takes one value per layer. "
                                    "Use one value per layer.")
    return float(a[0])


def _chain(graph) -> List[str]:
    """Node names from Input to Output, or an error if the graph is not a simple chain."""
    nxt: Dict[str, str] = {}
    for a, b in graph.edges:
        if a in nxt:
            raise UnsupportedLayerError(f"from_nir: node {a!r} feeds several nodes; only sequential graphs are "
                                        "supported (recurrent subgraphs and branches are not)")
        nxt[a] = b
    starts = [k for k, n in graph.nodes.items() if type(n).__name__ == "Input"]
    if len(starts) != 1:
        named = ", ".join(f"NIR node {k!r} (Input)" for k in starts)
        raise UnsupportedLayerError(f"from_nir: expected one Input node, found {len(starts)}{': ' if named else ''}"
                                    f"{named}; sj2lava reads graphs with one input")
    order, node = [], starts[0]
    while True:
        order.append(node)
        if node not in nxt:
            break
        node = nxt[node]
        if node in order:
            raise UnsupportedLayerError(f"from_nir: the graph has a cycle at {node!r}; recurrent graphs are not "
                                        "supported")
    if len(order) != len(graph.nodes):
        missing = sorted(set(graph.nodes) - set(order))
        raise UnsupportedLayerError(f"from_nir: nodes {missing} are not on the Input -> Output chain")
    return order


class _Chain:
    """A graph's nodes and edges after its recurrent loops are folded into their neurons."""

    def __init__(self, nodes: Dict[str, object], edges: List[Tuple[str, str]],
                 recurrent: Dict[str, Tuple[str, object]]):
        self.nodes, self.edges, self.recurrent = nodes, edges, recurrent


def _fold_recurrence(graph) -> _Chain:
    """The graph with every recurrent loop folded into its neuron: a neuron ``n`` (IF, LIF, CubaLIF) and a
    Linear/Affine ``r`` with edges ``n -> r -> n`` and no others on ``r`` (NIR's form of an RNN layer, flat or as
    a subgraph node ``Input -> n <-> r -> Output``, as snnTorch writes RLeaky/RSynaptic) becomes ``n`` with
    ``recurrent[n] = (r's name, r)``. Any other subgraph is refused by name."""
    nodes, edges, recurrent = dict(graph.nodes), [tuple(e) for e in graph.edges], {}
    for name, node in list(nodes.items()):
        if type(node).__name__ != "NIRGraph":
            continue
        inner = _fold_recurrence(node)
        kinds = {k: type(v).__name__ for k, v in inner.nodes.items()}
        neurons = [k for k, v in kinds.items() if v in _NEURONS]
        if len(neurons) != 1 or len(inner.recurrent) != 1 or sorted(kinds.values()) != sorted(
                ["Input", "Output", kinds[neurons[0]]]) or sorted(inner.edges) != sorted(
                [(k, neurons[0]) for k, v in kinds.items() if v == "Input"] +
                [(neurons[0], k) for k, v in kinds.items() if v == "Output"]):
            raise UnsupportedLayerError(f"NIR node {name!r} (NIRGraph): a subgraph other than a recurrent layer "
                                        "(Input -> neuron <-> Linear/Affine -> Output); sj2lava reads flat chains")
        inside = f"{name}.{neurons[0]}"
        nodes[inside] = inner.nodes[neurons[0]]
        recurrent[inside] = (f"{name}.{next(iter(inner.recurrent.values()))[0]}",
                             next(iter(inner.recurrent.values()))[1])
        del nodes[name]
        ends = {name, *(f"{name}.{k}" for k in inner.nodes)}
        edges = [(inside if a in ends else a, inside if b in ends else b) for a, b in edges]
    for n in [k for k, v in nodes.items() if type(v).__name__ in _NEURONS]:
        loops = [r for a, r in edges if a == n and (r, n) in edges and type(nodes.get(r)).__name__ in
                 ("Linear", "Affine")]
        for r in loops:
            if sum(r in e for e in edges) != 2:
                raise UnsupportedLayerError(f"NIR node {r!r} ({type(nodes[r]).__name__}): it closes a loop on {n!r} "
                                            "and also connects elsewhere; sj2lava reads a recurrent layer only")
            if n in recurrent:
                raise UnsupportedLayerError(f"NIR node {n!r}: more than one recurrent loop")
            recurrent[n] = (r, nodes.pop(r))
            edges = [e for e in edges if r not in e]
    return _Chain(nodes, edges, recurrent)


def _input_shape(node) -> Tuple[int, ...]:
    shape = tuple(int(s) for s in np.asarray(node.input_type["input"]).reshape(-1))
    if len(shape) in (2, 4):  # a leading batch dimension (snnTorch exports one)
        shape = shape[1:]
    return shape


_SYNAPSES = ("Affine", "Linear", "Conv2d", "SumPool2d", "AvgPool2d")
_DELAY_TOL = 1e-6  # a NIR delay must be a whole number of steps, to this relative tolerance
_NEURONS = ("IF", "LIF", "CubaLIF")
_REFUSED = {
    "Conv1d": "NetX convolutions are 2-D; reshape the data to (C, 1, L) and use a Conv2d with a (1, k) kernel",
    "Threshold": "a Threshold node is a stateless spike function; Loihi neurons are CUBA-LIF (use IF)",
    "I": "an integrator without a threshold sends no spikes; Loihi layers are spiking (use IF)",
    "LI": "a leaky integrator without a threshold sends no spikes; Loihi layers are spiking (use LIF, and read "
          "its voltage)",
    "CubaLI": "a leaky integrator without a threshold sends no spikes; Loihi layers are spiking (use CubaLIF, and "
              "read its voltage)",
}


def from_nir(graph_or_path, *, dt: float, reset: str = "zero", approximate: bool = False,
             rescale: bool = True) -> nn.Sequential:
    """BlockContainers from a sequential NIR graph, discretised with ``dt`` as in the module docstring.

    Every node maps exactly or is refused by name: Input, Output, Affine, Linear, Conv2d, SumPool2d and
    AvgPool2d (a pool that feeds a neuron is a pool layer; one that feeds a Conv2d or Affine/Linear, with or
    without a Flatten between, is composed into its weights), Flatten, IF, LIF, CubaLIF. Two synapses with no
    neuron between them otherwise are refused, never merged or dropped.

    Args:
        dt: the time step (NIR nodes carry none); discrete-time exporters (sinabs) need ``dt = 1``.
        reset: what the graph's neurons do after a spike: ``'zero'`` (NIR's ``v_reset``, 0 on Loihi) or
            ``'subtract'`` (subtract the threshold), which NIR graphs of format 0.2 do not record. Loihi resets
            to zero, so ``'subtract'`` needs ``approximate=True`` and is noted.
        approximate: accept the nearest Loihi neuron where there is no exact one (subtract reset), with a note.
        rescale: scale each layer's weights, bias and threshold by one positive factor so that its largest
            weight fills Loihi's 8-bit grid (254/64; the threshold within 17 bits, the bias within 13, the
            current within 24), which leaves zero-reset CUBA spikes unchanged and makes small float weights
            survive quantization. The chosen factors are in ``conversion_notes``.

    The returned ``nn.Sequential`` has ``input_shape`` set (from the Input node) for :func:`sj2lava.export` and
    ``conversion_notes``: every change made (pools composed, factors chosen, approximations).
    """
    _check_options(dt, reset, approximate)
    nir = _nir()
    graph = _read_graph(graph_or_path, nir)
    _check_graph(graph)
    walk = _NirWalk(_fold_recurrence(graph), dt, reset, approximate)
    for name in _chain(walk.graph):
        walk.take(name, nir)
    if walk.synapse is not None:
        raise UnsupportedLayerError(f"from_nir: the graph ends in NIR node {walk.syn_name!r} with no neuron after it")
    net = walk.layers.finish(rescale, empty="from_nir: the graph has no synapse + neuron layer to put on Loihi")
    for b, where in walk.layers.made:
        _check_not_silent(b, where, dt)
    net.input_shape = walk.input_shape
    net.float_reference = lambda x: simulate_nir(graph, x, dt, reset)  # what verify compares with
    return net


_MAX_DEPTH = 8  # subgraphs within subgraphs: a recurrent layer is one level; exporters write at most two
_CONV_FIELD_MAX = 127  # Lava's Conv holds kernel size, stride, padding, dilation and groups as int8
_TIME_CONSTANTS = {"LIF": ("tau",), "CubaLIF": ("tau_mem", "tau_syn")}


def _read_graph(graph_or_path, nir):
    """A graph as given, or read from a ``.nir`` file after the ``.net`` reader's checks of the HDF5 file itself
    (links, external storage and virtual datasets refused unresolved, sizes bounded before any value is read)."""
    if not isinstance(graph_or_path, (str, Path)):
        return graph_or_path
    path = Path(graph_or_path)
    scan_file(path, NirFileError)
    try:  # nir 1.0.8's type inference sizes Conv2d outputs with kH for both axes (wrong for non-square
        # kernels), so its check is skipped here; sj2lava.export checks every shape
        return nir.read(str(path), type_check=False)
    except RecursionError:
        raise NirFileError(f"{path}: subgraphs nested too deep to read; sj2lava reads flat chains") from None
    except Exception as e:  # noqa: BLE001  (the nir package raises many kinds for a malformed graph)
        raise NirFileError(f"{path}: not a readable NIR graph ({type(e).__name__}: {str(e)[:200]})") from None


def _check_graph(graph, depth: int = 0) -> None:
    """Every edge between existing nodes, subgraphs nested at most :data:`_MAX_DEPTH` deep, and every node's
    fields within what Loihi and NIR's equations hold (:func:`_check_node`); refusals name node and field."""
    if depth > _MAX_DEPTH:
        raise NirFileError(f"from_nir: subgraphs nested deeper than {_MAX_DEPTH} levels; sj2lava reads flat chains "
                           "and recurrent layers")
    nodes = getattr(graph, "nodes", None)
    if not isinstance(nodes, dict):
        raise NirFileError(f"from_nir: {type(graph).__name__} is not a NIR graph (no nodes)")
    for edge in graph.edges:
        for end in edge:
            head, _, inner = str(end).partition(".")
            sub = nodes.get(head)
            inside = inner and type(sub).__name__ == "NIRGraph" and inner in getattr(sub, "nodes", {})
            if end not in nodes and not inside:
                raise NirFileError(f"NIR edge {edge[0]!r} -> {edge[1]!r}: node {end!r} does not exist")
    for name, node in nodes.items():
        if type(node).__name__ == "NIRGraph":
            _check_graph(node, depth + 1)
        elif node is not None:  # an empty node is refused by name when the walk reaches it
            _check_node(node, name)


def _check_node(node, name: str) -> None:
    """Real, finite, bounded fields: NaN, infinity and complex values refused (an imaginary part would be dropped),
    time constants > 0, convolution and pool geometry within Lava's int8 fields, an input within the neuron limit."""
    kind = type(node).__name__
    where = f"NIR node {name!r} ({kind})"
    for field in dataclasses.fields(node) if dataclasses.is_dataclass(node) else ():
        _check_values(getattr(node, field.name), field.name, where, (kind, field.name))
    for field_name in _TIME_CONSTANTS.get(kind, ()):
        if np.any(np.asarray(getattr(node, field_name)) <= 0):
            raise NirFileError(f"{where}: field {field_name!r} must be > 0 (a time constant)")
    if kind == "Delay" and np.any(np.asarray(node.delay) < 0):
        raise NirFileError(f"{where}: field 'delay' holds negative delays")
    if kind in ("Conv2d", "SumPool2d", "AvgPool2d"):
        _check_geometry(node, kind, where)
    if kind == "Input":
        shape = np.asarray(node.input_type.get("input", []), dtype=np.float64).reshape(-1)
        if shape.size == 0 or np.any(shape < 1) or float(np.prod(shape)) > limits()["SJ2LAVA_MAX_NEURONS"]:
            raise NirFileError(f"{where}: field 'input_type' shape {shape.astype(np.int64).tolist()} is empty or "
                               f"beyond {limits()['SJ2LAVA_MAX_NEURONS']:,} values ($SJ2LAVA_MAX_NEURONS)")


_MAY_BE_NONE = {("Conv2d", "bias"), ("Conv2d", "input_shape")}
_MAY_BE_TEXT = {("Conv2d", "padding")}  # 'same' / 'valid': refused by name when the synapse is built


def _check_values(value, field: str, where: str, key: Tuple[str, str] = ("", "")) -> None:
    """A numeric field: real and finite; only a few fields may be None or, Conv2d's padding, a string."""
    if isinstance(value, dict) or (value is None and key in _MAY_BE_NONE) or \
            (isinstance(value, str) and key in _MAY_BE_TEXT):
        return
    if value is None or isinstance(value, str):
        raise NirFileError(f"{where}: field {field!r} is {value!r}, not a number or an array")
    try:
        a = np.asarray(value)
    except Exception:  # noqa: BLE001  (ragged or odd objects)
        raise NirFileError(f"{where}: field {field!r} is not a numeric array ({type(value).__name__})") from None
    if np.iscomplexobj(a):
        raise NirFileError(f"{where}: field {field!r} holds complex values; NIR's fields are real")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise NirFileError(f"{where}: field {field!r} holds NaN or infinity")
    if a.dtype.kind not in "fiub":
        raise NirFileError(f"{where}: field {field!r} is not numeric ({a.dtype})")


def _check_geometry(node, kind: str, where: str) -> None:
    """Strides and dilations in 1..127, paddings in 0..127 (Lava's int8 fields), kernels 1..127, groups >= 1."""
    fields = {"stride": (1, _CONV_FIELD_MAX), "padding": (0, _CONV_FIELD_MAX)}
    if kind == "Conv2d":
        fields.update(dilation=(1, _CONV_FIELD_MAX), groups=(1, _CONV_FIELD_MAX))
    else:
        fields["kernel_size"] = (1, _CONV_FIELD_MAX)
    for field_name, (lo, hi) in fields.items():
        value = getattr(node, field_name, None)
        if value is None or isinstance(value, str):
            continue
        a = np.asarray(value, dtype=np.float64)
        if a.size == 0 or np.any(a < lo) or np.any(a > hi) or np.any(a != np.round(a)):
            raise NirFileError(f"{where}: field {field_name!r} = {a.tolist()} must be whole numbers in {lo}..{hi}")
    if kind == "Conv2d":
        w = np.asarray(node.weight)
        if w.ndim != 4 or min(w.shape) < 1 or max(w.shape[2:]) > _CONV_FIELD_MAX:
            raise NirFileError(f"{where}: field 'weight' of shape {tuple(w.shape)} is not a 2-D kernel of 1..127 per "
                               "side")


def _check_options(dt: float, reset: str, approximate: bool) -> None:
    if dt is None or not dt > 0:
        raise ValueError("from_nir: dt must be a positive time step (NIR nodes carry none)")
    if reset not in ("zero", "subtract"):
        raise ValueError(f"from_nir: reset must be 'zero' or 'subtract', got {reset!r}")
    if reset == "subtract" and not approximate:
        raise UnsupportedLayerError(
            "from_nir: reset='subtract' has no exact Loihi form (CUBA neurons reset v to 0). Pass approximate=True "
            "to run it with zero reset; sj2lava.verify then measures the spike difference against the graph.")


class _NirWalk:
    """One pass over a chain of NIR nodes, grouping them into Loihi layers (:class:`sj2lava.convert.Layers`):
    a synapse (with a pool composed in front, a Scale folded in, a Delay on its axons) waits for its neuron."""

    def __init__(self, graph: _Chain, dt: float, reset: str, approximate: bool) -> None:
        self.graph, self.dt, self.reset, self.approximate = graph, dt, reset, approximate
        self.layers = Layers()
        self.synapse: Optional[nn.Module] = None
        self.syn_name = self.syn_kind = ""
        self.pool: Optional[Tuple[str, Any, Optional[Tuple[int, ...]]]] = None  # a pool waiting for its synapse
        self.delay: Optional[torch.Tensor] = None  # a Delay's steps, waiting for the neuron after it
        self.input_shape: Optional[Tuple[int, ...]] = None
        self.shape: Optional[Tuple[int, ...]] = None  # of the data between nodes (C, H, W) or (N,)

    @property
    def notes(self) -> List[str]:
        return self.layers.notes

    def take(self, name: str, nir) -> None:
        """Take node ``name`` into the layer being built (or refuse it by name)."""
        node = self.graph.nodes[name]
        kind = type(node).__name__
        where = f"NIR node {name!r} ({kind})"
        _known_node(node, name, nir)
        if kind in _REFUSED:
            raise UnsupportedLayerError(f"{where}: {_REFUSED[kind]}")
        self._check_no_second_synapse(kind, where)
        handler = {"Input": self._input, "Output": self._output, "Affine": self._synapse_node,
                   "Linear": self._synapse_node, "Conv2d": self._synapse_node, "SumPool2d": self._pool_node,
                   "AvgPool2d": self._pool_node, "Flatten": self._flatten, "Scale": self._scale, "Delay": self._delay,
                   **{k: self._neuron for k in _NEURONS}}.get(kind)
        if handler is None:
            raise UnsupportedLayerError(f"{where}: NIR node type {kind} has no Loihi form sj2lava writes. Supported: "
                                        "Input, Affine, Linear, Conv2d, SumPool2d, AvgPool2d, Flatten, Scale, "
                                        "Delay, IF, LIF, CubaLIF, recurrent loops, Output.")
        handler(name, node, kind, where)

    def _check_no_second_synapse(self, kind: str, where: str) -> None:
        if kind in _SYNAPSES and self.synapse is not None and not (
                kind in ("Conv2d", "Affine", "Linear") and isinstance(self.synapse, SumPool2d)):
            raise UnsupportedLayerError(
                f"{where} follows NIR node {self.syn_name!r} ({self.syn_kind}) with no neuron between them; a "
                "Loihi layer is one synapse and its neurons. Add a neuron between them or merge the two yourself "
                "(sj2lava composes only a pool into the Conv2d/Affine after it).")

    def _input(self, name: str, node, kind: str, where: str) -> None:
        self.input_shape = self.shape = _input_shape(node)

    def _output(self, name: str, node, kind: str, where: str) -> None:
        if self.pool is not None or self.synapse is not None:
            raise UnsupportedLayerError(f"from_nir: NIR node {self.syn_name!r} feeds the Output with no neuron after "
                                        "it; every Loihi layer ends in spiking neurons")

    def _synapse_node(self, name: str, node, kind: str, where: str) -> None:
        new = _synapse(node, kind, where)
        if kind != "Conv2d" and self.shape is not None and len(self.shape) == 3:  # a map read in C, H, W order
            self.layers.flatten()
            self.shape = (int(np.prod(self.shape)),)
        if isinstance(self.synapse, SumPool2d):  # a pool with no neuron after it: composed into this synapse
            new = self._compose_pending_pool(new, where)
        self.synapse, self.syn_name, self.syn_kind = new, name, kind
        self.shape = _after_synapse(new, self.shape, where)

    def _compose_pending_pool(self, new: nn.Module, where: str) -> nn.Module:
        assert isinstance(self.synapse, SumPool2d) and self.pool is not None
        pname, pnode, pshape = self.pool
        k, st = self.synapse.kernel_size, self.synapse.stride
        hw = (pshape[1], pshape[2]) if pshape is not None and len(pshape) == 3 else None
        new = compose_pool(k, st, pair(pnode.padding), self.synapse.weight, new, f"NIR node {pname!r}", where,
                           hw, self.notes, what=f"{type(pnode).__name__}{k}")
        self.shape = pshape  # the composed synapse reads the map before the pool
        self.pool = None
        return new

    def _pool_node(self, name: str, node, kind: str, where: str) -> None:
        if np.any(np.asarray(node.padding) != 0):
            raise UnsupportedLayerError(f"{where}: pooling with padding is not supported; pad the map before "
                                        "the pool or use a Conv2d")
        k = pair(node.kernel_size)
        self.synapse = SumPool2d(k, pair(node.stride), weight=1.0 if kind == "SumPool2d" else 1.0 / (k[0] * k[1]))
        self.syn_name, self.syn_kind, self.pool = name, kind, (name, node, self.shape)
        self.shape = _after_synapse(self.synapse, self.shape, where)

    def _flatten(self, name: str, node, kind: str, where: str) -> None:
        if int(node.start_dim) not in (0, 1) or int(node.end_dim) != -1:
            raise UnsupportedLayerError(f"{where}: only a full flatten (start_dim 0 or 1, end_dim -1) is supported")
        if self.synapse is not None and self.pool is None:
            raise UnsupportedLayerError(f"{where} follows NIR node {self.syn_name!r} with no neuron between them")
        self.layers.flatten()  # a pending pool then meets the dense layer
        self.shape = None if self.shape is None else (int(np.prod(self.shape)),)

    def _scale(self, name: str, node, kind: str, where: str) -> None:
        """``y = scale * x`` per element, between a synapse and its neuron: folded into the synapse."""
        if self.synapse is None or isinstance(self.synapse, SumPool2d):
            raise UnsupportedLayerError(f"{where}: sj2lava folds a Scale into the Conv2d/Linear/Affine before it "
                                        "(a Scale on the input spikes or after a pool has no NetX form)")
        _fold_scale(node, self.synapse, where)
        self.notes.append(f"{where}: folded into the weights and bias of NIR node {self.syn_name!r} (exact in float)")

    def _delay(self, name: str, node, kind: str, where: str) -> None:
        """``y(t) = x(t - tau)`` per element, between a dense synapse and its neuron: NetX's axonal delay."""
        if not isinstance(self.synapse, nn.Linear) or self.delay is not None:
            after = "another Delay" if self.delay is not None else self.syn_kind or "no synapse"
            raise UnsupportedLayerError(f"{where}: sj2lava reads a Delay between a Linear/Affine and its neuron "
                                        f"(NetX's axonal delays, on dense layers); this one follows {after}")
        self.delay = _delay_steps(node, self.synapse.out_features, self.dt, where)
        if self.synapse.bias is None or int(self.delay.max()) == 0:
            return
        # NIR delays the bias too; Loihi's acts at once
        lo, hi = int(self.delay.min()), int(self.delay.max())
        if not self.approximate:
            raise UnsupportedLayerError(
                f"{where}: the bias of NIR node {self.syn_name!r} passes through this Delay and so starts "
                f"{lo}..{hi} steps late, while Loihi adds a bias to the voltage from the first step. Exact "
                "alternative: the constant as the neuron's v_leak (after the Delay); or from_nir(..., "
                "approximate=True): the bias acts from the first step (noted).")
        self.notes.append(f"{where}: the bias of NIR node {self.syn_name!r} acts from the first step, not after its "
                          f"delay of up to {hi} steps (not exact in those steps)")

    def _neuron(self, name: str, node, kind: str, where: str) -> None:
        if self.synapse is None:
            raise UnsupportedLayerError(f"{where}: a neuron needs a synapse node before it")
        rec = self.graph.recurrent.get(name)
        if rec is not None and not isinstance(self.synapse, nn.Linear):
            raise UnsupportedLayerError(f"{where}: a recurrent loop (NIR node {rec[0]!r}) after a "
                                        f"{type(self.synapse).__name__}; NetX's dense_rec follows a dense synapse")
        b = _neuron_block(node, kind, self.synapse, self.dt, where, rec, self.delay, self.approximate, self.notes)
        self.layers.add_made(b, f"NIR node {name!r}")
        self.delay = None
        if self.reset == "subtract":
            self.notes.append(f"{where}: subtract reset approximated by reset to zero (not exact; verify measures it)")
        self.synapse, self.pool = None, None


def _known_node(node, name: str, nir) -> None:
    """Refuse, naming the node, what no NIR reader can interpret: an empty node (None), which an exporter left
    where it had no NIR node for a module, or an object of a type the ``nir`` package does not define."""
    if node is None:
        raise UnsupportedLayerError(
            f"NIR node {name!r} is empty (None): the exporter that wrote the graph had no NIR node for that module "
            "and left a hole (norse 1.1.0 does this for nn.Flatten). Re-export with the module replaced by its NIR "
            "node (e.g. nir.Flatten), or put that node into the graph before reading it.")
    kind = type(node).__name__
    if getattr(nir, kind, None) is not type(node):
        raise UnsupportedLayerError(
            f"NIR node {name!r}: a {type(node).__module__}.{kind} object, which is not a node type of the nir package "
            "installed here (an exporter's own class, or a newer nir); re-export with nir's node types.")


def _synapse(node, kind: str, where: str) -> nn.Module:
    if kind in ("Affine", "Linear"):
        w = torch.as_tensor(np.asarray(node.weight), dtype=torch.float32)
        if w.dim() != 2:
            raise UnsupportedLayerError(f"{where}: weight of shape {tuple(w.shape)} is not a matrix")
        has_bias = kind == "Affine" and bool(np.any(np.asarray(node.bias) != 0))
        synapse = nn.Linear(w.shape[1], w.shape[0], bias=has_bias)
        with torch.no_grad():
            synapse.weight.copy_(w)
            if has_bias:
                synapse.bias.copy_(torch.as_tensor(np.asarray(node.bias), dtype=torch.float32).reshape(-1))
        return synapse
    w = torch.as_tensor(np.asarray(node.weight), dtype=torch.float32)
    if isinstance(node.padding, str):
        raise UnsupportedLayerError(f"{where}: padding={node.padding!r} is not supported; use integers")
    if w.dim() != 4:
        raise UnsupportedLayerError(f"{where}: weight of shape {tuple(w.shape)} is not a 2-D convolution's")
    conv = nn.Conv2d(w.shape[1] * int(node.groups), w.shape[0], pair(tuple(w.shape[2:])), stride=pair(node.stride),
                     padding=pair(node.padding), dilation=pair(node.dilation), groups=int(node.groups),
                     bias=node.bias is not None and bool(np.any(np.asarray(node.bias) != 0)))
    with torch.no_grad():
        conv.weight.copy_(w)
        if conv.bias is not None:
            conv.bias.copy_(torch.as_tensor(np.asarray(node.bias), dtype=torch.float32).reshape(-1))
    return conv


def _after_synapse(synapse: nn.Module, shape: Optional[Tuple[int, ...]], where: str) -> Optional[Tuple[int, ...]]:
    """The shape after ``synapse`` (None where unknown)."""
    if shape is None:
        return None
    if isinstance(synapse, nn.Linear):
        return (synapse.out_features,)
    if len(shape) != 3:
        raise UnsupportedLayerError(f"{where}: needs a (C, H, W) input, gets {shape}")
    try:
        with torch.no_grad():
            return tuple(synapse(torch.zeros(1, *shape)).shape[1:])
    except RuntimeError as e:  # a kernel, stride or channel count that does not fit the map
        raise UnsupportedLayerError(f"{where}: does not fit its {shape} input ({str(e).splitlines()[0][:160]})") \
            from None


def _check_not_silent(b: BlockContainer, where: str, dt: float) -> None:
    """Refuse a layer whose weights all round to 0 on Loihi's grid: at a wrong ``dt`` (a discrete-time
    exporter's graph read with a small ``dt``) every input is lost."""
    w = effective_weight(b)
    if w.numel() and not bool((quant.quantize_weight(w) != 0).any()):
        raise UnsupportedLayerError(
            f"{where}: every weight (largest |w| {float(w.abs().max()):.3g} after dt = {dt:g}) rounds to 0 on Loihi's "
            "8-bit grid (steps of 2/64), so the layer would never receive input. A discrete-time exporter (sinabs' "
            "IF) needs dt = 1; otherwise check dt, or let rescale=True fill the grid.")


def _fold_scale(node, synapse: nn.Module, where: str) -> None:
    """``scale * (W x + b)`` as one synapse: each output row (channel) of ``W`` and ``b`` times its factor."""
    a = np.asarray(node.scale, dtype=np.float64).reshape(-1)
    rows = synapse.out_channels if isinstance(synapse, nn.Conv2d) else synapse.out_features
    if isinstance(synapse, nn.Conv2d) and a.size > 1 and a.size != rows:
        per = a.reshape(rows, -1)
        if not np.all(per == per[:, :1]):
            raise UnsupportedLayerError(f"{where}: a scale that varies within a channel has no conv form")
        a = per[:, 0]
    if a.size not in (1, rows):
        raise UnsupportedLayerError(f"{where}: {a.size} factors for {rows} outputs")
    f = torch.as_tensor(np.broadcast_to(a, (rows,)).copy(), dtype=torch.float32)
    with torch.no_grad():
        synapse.weight.mul_(f.view(-1, *([1] * (synapse.weight.dim() - 1))))
        if synapse.bias is not None:
            synapse.bias.mul_(f)


def _delay_steps(node, n: int, dt: float, where: str) -> torch.Tensor:
    """A Delay node's ``delay`` (time, one value or one per neuron) as whole steps of ``dt`` in 0..62."""
    d = np.asarray(node.delay, dtype=np.float64).reshape(-1) / dt
    if d.size not in (1, n):
        raise UnsupportedLayerError(f"{where}: {d.size} delays for {n} neurons")
    steps = np.round(d)
    if np.any(np.abs(d - steps) > _DELAY_TOL * np.maximum(1.0, np.abs(d))) or steps.min() < 0:
        raise UnsupportedLayerError(f"{where}: delays {d.min():g}..{d.max():g} steps of dt = {dt:g} are not whole "
                                    "non-negative steps; Loihi delays by whole steps. Choose dt to divide them")
    if steps.max() > quant.MAX_DELAY:
        raise UnsupportedLayerError(f"{where}: delays up to {int(steps.max())} steps; Lava holds 0..{quant.MAX_DELAY}")
    return torch.as_tensor(np.broadcast_to(steps, (n,)).copy(), dtype=torch.int64)


def _neuron_block(node, kind: str, synapse: nn.Module, dt: float, where: str,
                  rec: Optional[Tuple[str, object]] = None, delay: Optional[torch.Tensor] = None,
                  approximate: bool = False, notes: Optional[List[str]] = None) -> BlockContainer:
    """The layer ``synapse -> node`` discretised with ``dt`` (module docstring): decays, input scale and
    ``v_leak`` as bias; a recurrent loop ``rec`` as the block's recurrent synapse; ``delay`` its axonal delays."""
    notes = [] if notes is None else notes
    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and _scalar(v_reset, "v_reset", where) != 0.0:
        raise UnsupportedLayerError(f"{where}: v_reset != 0 has no CUBA equivalent (Loihi resets v to 0)")
    th = _scalar(node.v_threshold, "v_threshold", where)
    cd, vd, scale, v_leak = _decays(node, kind, synapse, dt, where, notes)
    if getattr(synapse, "bias", None) is not None and cd < 1.0 - 1e-9:
        _bias_at_settled_size(synapse, cd, dt, where, approximate, notes)
    bias_v = vd * np.asarray(v_leak, dtype=np.float64)  # v per step, per output channel/feature or scalar
    if np.any(bias_v != 0.0):
        _add_leak_bias(synapse, bias_v / scale, where)
    recurrent = None if rec is None else _recurrent(rec, synapse, cd, approximate, notes)
    node_ = CubaLIFNode(min(cd, 1.0), min(vd, 1.0), th)
    node_.input_scale = scale
    if delay is not None and recurrent is not None:
        raise UnsupportedLayerError(f"{where}: axonal delays and a recurrent loop on one layer; NetX's dense_rec "
                                    "has no delays")
    return BlockContainer(synapse, node_, "m", recurrent=recurrent, delay=delay)


def _decays(node, kind: str, synapse: nn.Module, dt: float, where: str,
            notes: List[str]) -> Tuple[float, float, float, object]:
    """``(current decay, voltage decay, input scale, v_leak)`` of an IF / LIF / CubaLIF node at step ``dt``."""
    r = _scalar(node.r, "r", where)
    if kind == "IF":
        return 1.0, 0.0, r * dt, 0.0
    vd = dt / _scalar(node.tau if kind == "LIF" else node.tau_mem, "tau", where)
    scale, cd = vd * r, 1.0
    if kind == "CubaLIF":
        cd = dt / _scalar(node.tau_syn, "tau_syn", where)
        w_in = _scalar(node.w_in, "w_in", where)
        scale *= cd * w_in
        if w_in == 1.0 and cd < 1.0 - 1e-9:
            notes.append(f"{where}: w_in = 1 with tau_syn = {1 / cd:.4g} dt: by NIR's equations each input raises "
                         f"the current by {cd:.4g} of itself per step (as deployed). norse and rockpool write "
                         "w_in = 1 for a current that jumps by the whole input; if the graph came from them, set "
                         "w_in = tau_syn / dt")
    for name, d in (("current", cd), ("voltage", vd)):
        if not 0.0 <= d <= 1.0 + 1e-9:
            raise UnsupportedLayerError(f"{where}: dt / tau gives a {name} decay of {d:g}, outside [0, 1]; "
                                        "use a smaller dt or larger time constants.")
    return cd, vd, scale, _leak(node.v_leak, synapse, where)


def _bias_at_settled_size(synapse: nn.Module, cd: float, dt: float, where: str, approximate: bool,
                          notes: List[str]) -> None:
    """A synaptic bias into a decaying current (CubaLIF, tau_syn != dt): refused, or under ``approximate`` put on
    the voltage at the size the current settles at (``bias / current decay``), noted."""
    if not approximate:
        raise UnsupportedLayerError(
            f"{where}: a synaptic bias feeding a CubaLIF with tau_syn != dt enters the decaying current (it "
            "reaches its full size only after ~tau_syn), and Loihi adds biases to the voltage, at full size from "
            "the first step; no NetX layer computes the ramp. Exact alternatives: tau_syn = dt (a current decay "
            "of 1), or the bias as v_leak = r * w_in * bias, which equals it once the current has settled (a "
            "change of model: retrain). Or from_nir(..., approximate=True): the bias on the voltage at its "
            "settled size, noted; sj2lava.verify measures the difference against the graph's equations.")
    with torch.no_grad():  # the current settles at w_in * bias: on v, that is the bias / current decay
        synapse.bias.div_(cd)
    notes.append(f"{where}: the synaptic bias (into a current with tau_syn = {dt / cd:g}) added to the voltage "
                 f"at its settled size (x{1 / cd:.4g}); equal once the current has settled, larger in the "
                 "first steps (not exact; verify measures it)")


def _add_leak_bias(synapse: nn.Module, extra_v, where: str) -> None:
    """Add ``extra_v`` (scalar or per output) to the synapse's bias, in its input units."""
    if isinstance(synapse, SumPool2d):
        raise UnsupportedLayerError(f"{where}: v_leak after a pooling node is not supported (pools carry no bias)")
    with torch.no_grad():
        n_out = synapse.out_channels if isinstance(synapse, nn.Conv2d) else synapse.out_features
        extra = torch.as_tensor(np.broadcast_to(extra_v, (n_out,)).copy(), dtype=torch.float32)
        if synapse.bias is None:
            synapse.bias = nn.Parameter(extra)
        else:
            synapse.bias.add_(extra)


def _recurrent(rec: Tuple[str, object], synapse: nn.Module, cd: float, approximate: bool,
               notes: List[str]) -> nn.Linear:
    """The loop's weights R as the block's recurrent synapse (the neuron's input is ``W x + R s``, both scaled
    alike); its bias, a constant input every step, joins the synapse's."""
    name, rnode = rec
    r = _synapse(rnode, type(rnode).__name__, f"NIR node {name!r} ({type(rnode).__name__})")
    n = synapse.out_features
    if (r.in_features, r.out_features) != (n, n):
        raise UnsupportedLayerError(f"NIR node {name!r}: a recurrent weight of shape {tuple(r.weight.shape)} on "
                                    f"{n} neurons")
    recurrent = nn.Linear(n, n, bias=False)
    with torch.no_grad():
        recurrent.weight.copy_(r.weight)
    if r.bias is None:
        return recurrent
    settled = r.bias.detach().clone()
    if cd < 1.0 - 1e-9:
        if not approximate:
            raise UnsupportedLayerError(
                f"NIR node {name!r}: a recurrent bias into a CubaLIF with tau_syn != dt enters the "
                "decaying current, which NetX's voltage bias cannot express; use tau_syn = dt or v_leak, "
                "or from_nir(..., approximate=True) (the bias on the voltage at its settled size, noted)")
        settled /= cd
        notes.append(f"NIR node {name!r}: the recurrent bias added to the voltage at its settled "
                     f"size (x{1 / cd:.4g}; not exact in the first steps)")
    with torch.no_grad():
        if synapse.bias is None:
            synapse.bias = nn.Parameter(settled)
        else:
            synapse.bias.add_(settled)
    return recurrent


def _leak(v_leak, synapse: nn.Module, where: str):
    """v_leak as a scalar, or one value per output channel (conv) / neuron (dense)."""
    a = np.asarray(v_leak, dtype=np.float64).reshape(-1)
    if a.size <= 1 or np.all(a == a[0]):
        return float(a[0]) if a.size else 0.0
    if isinstance(synapse, nn.Conv2d):
        per_channel = a.reshape(synapse.out_channels, -1)
        if np.all(per_channel == per_channel[:, :1]):
            return per_channel[:, 0]
        raise UnsupportedLayerError(f"{where}: v_leak varies within a channel; NetX's conv bias is per channel")
    if isinstance(synapse, nn.Linear) and a.size == synapse.out_features:
        return a
    raise UnsupportedLayerError(f"{where}: v_leak has {a.size} values that do not fit the layer")




def simulate_nir(graph, x: torch.Tensor, dt: float, reset: str = "zero") -> List[torch.Tensor]:
    """The graph's own equations (the module docstring's forward Euler) in float64, with no quantization and no
    synaptic delay: per neuron node, its spikes ``[T, N, *]`` for input ``x`` ``[T, N, *]``. Recurrent loops feed
    back the spikes of the step before. ``reset``: ``'zero'`` (v = 0 after a spike, in the same step: NIR's
    ``v_reset``, Loihi) or ``'subtract'`` as snnTorch computes it (its default reset): the threshold is taken off
    one step later, after that step's decay and input (``v[t] = a v[t-1] + b I[t] - th s[t-1]``), so it is not
    decayed. The reference ``verify`` compares a ``from_nir`` net with (its ``float`` stage)."""
    g = _fold_recurrence(graph)
    order = _chain(g)
    neurons = [n for n in order if type(g.nodes[n]).__name__ in _NEURONS]
    state: Dict[str, Dict[str, Any]] = {}
    out: Dict[str, List[torch.Tensor]] = {n: [] for n in neurons}
    for t in range(x.shape[0]):
        h = x[t].double()
        for name in order:
            node, kind = g.nodes[name], type(g.nodes[name]).__name__
            if kind in _NEURONS:
                h = _simulate_neuron(node, kind, h, state.setdefault(name, {}), g.recurrent.get(name), dt, reset)
                out[name].append(h)
            elif kind == "Delay":
                h = _simulate_delay(node, h, state.setdefault(name, {}).setdefault("hist", []), dt)
            else:
                h = _simulate_stateless(node, kind, h)
    return [torch.stack(v) for v in out.values()]


def _f64(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def _simulate_stateless(node, kind: str, h: torch.Tensor) -> torch.Tensor:
    """A synapse, pool, flatten or scale node on ``h`` in float64 (Input and Output pass it on)."""
    import torch.nn.functional as F

    if kind in ("Affine", "Linear"):
        return h.reshape(h.shape[0], -1) @ _f64(node.weight).T + (_f64(node.bias) if kind == "Affine" else 0)
    if kind == "Conv2d":
        bias = None if node.bias is None else _f64(node.bias).reshape(-1)
        return F.conv2d(h, _f64(node.weight), bias, stride=pair(node.stride), padding=pair(node.padding),
                        dilation=pair(node.dilation), groups=int(node.groups))
    if kind in ("SumPool2d", "AvgPool2d"):
        return F.avg_pool2d(h, pair(node.kernel_size), pair(node.stride),
                            divisor_override=1 if kind == "SumPool2d" else None)
    if kind == "Flatten":
        return h.reshape(h.shape[0], -1)
    if kind == "Scale":
        a = _f64(node.scale)
        return h * (a.reshape(h.shape[1:]) if a.numel() == h[0].numel() else a.reshape(-1)[0] if a.numel() == 1
                    else a.reshape(-1, *([1] * (h.dim() - 2))))
    return h


def _simulate_delay(node, h: torch.Tensor, hist: List[torch.Tensor], dt: float) -> torch.Tensor:
    """``y(t) = x(t - tau)`` per element, from ``hist``, this node's inputs so far."""
    hist.append(h)
    d = np.rint(np.broadcast_to(np.asarray(node.delay, dtype=np.float64).reshape(-1) / dt,
                                (h[0].numel(),))).astype(np.int64)
    return torch.stack([hist[-1 - k][:, j] if k < len(hist) else torch.zeros_like(h[:, j])
                        for j, k in enumerate(d)], 1)


def _simulate_neuron(node, kind: str, h: torch.Tensor, st: Dict[str, torch.Tensor], rec: Optional[Tuple[str, Any]],
                     dt: float, reset: str) -> torch.Tensor:
    """One step of an IF / LIF / CubaLIF node on input ``h``; its ``v``, ``i`` and last spikes ``s`` in ``st``."""
    shape = h.shape[1:]

    def p(a):  # per neuron, or one value
        return _f64(a).reshape(shape) if np.size(a) == int(np.prod(shape)) else _f64(a).reshape(-1)[0]

    for k in ("v", "i", "s"):
        st.setdefault(k, torch.zeros_like(h))
    if rec is not None:
        r = rec[1]
        h = h + st["s"] @ _f64(r.weight).T + (_f64(r.bias) if type(r).__name__ == "Affine" else 0)
    if kind == "IF":
        v = st["v"] + p(node.r) * dt * h
    else:
        tau, i = p(node.tau if kind == "LIF" else node.tau_mem), h
        if kind == "CubaLIF":
            st["i"] = (1 - dt / p(node.tau_syn)) * st["i"] + dt / p(node.tau_syn) * p(node.w_in) * h
            i = st["i"]
        v = (1 - dt / tau) * st["v"] + dt / tau * (p(node.r) * i + p(node.v_leak))
    th = p(node.v_threshold)
    if reset == "subtract":  # snnTorch's order: the last step's spike subtracts after this decay
        v = v - st["s"] * th
    s = (v > th).double()
    st["v"], st["s"] = v if reset == "subtract" else v * (1 - s), s
    return s


# --------------------------------------------------------------------------- to NIR
def to_nir(model_or_netfile, *, dt: float, input_shape: Optional[Tuple[int, ...]] = None):
    """A NIR graph of BlockContainers or of a ``.net`` file, with Loihi's quantized numbers.

    Each layer becomes its synapse node (``Conv2d`` / ``Affine`` / ``Linear``, weights ``mant / 64``; axonal delays
    as a ``Delay`` node after it, ``steps * dt``; a ``dense_rec`` layer's recurrent weights as a ``Linear`` loop on
    its neuron) and a neuron node: ``IF`` (no decays), ``LIF`` (current decay 1) or ``CubaLIF``, with time constants
    ``dt * 4096 / decay`` (a zero decay as ``2^30 dt``, which rounds back to 0), ``r`` and ``w_in`` chosen
    so the input scale is 1, ``v_threshold = vThMant / 64`` and the bias as ``v_leak``. :func:`from_nir`
    with the same ``dt`` gives back the same ``.net``.
    """
    from ..export import to_spec
    from ..netx.hdf5 import load

    nir = _nir()
    if isinstance(model_or_netfile, (str, Path)):
        spec = load(model_or_netfile)
    elif isinstance(model_or_netfile, NetSpec):
        spec = model_or_netfile
    else:
        spec = to_spec(model_or_netfile, input_shape)
    nodes: Dict[str, object] = {"input": nir.Input(input_type={"input": np.array(spec.input_shape)})}
    order = ["input"]
    loops: List[Tuple[str, str]] = []  # recurrent layers: (neuron node, its loop's Linear)
    for i, layer in enumerate(spec.layers):
        if isinstance(layer, InputNeurons):
            raise UnsupportedLayerError(f"to_nir: layer {i} holds input neurons (NetX's Input block, driven by their "
                                        "bias), which have no NIR node yet")
        if isinstance(layer, Flatten):
            nodes[f"{i}"] = nir.Flatten(input_type={"input": np.array(layer.in_shape)}, start_dim=0, end_dim=-1)
            order.append(f"{i}")
            continue
        _check_for_nir(layer, i)
        n, delay = cast(Cuba, layer.neuron), getattr(layer, "delay", None)
        di, dv, th = int(n.i_decay), int(n.v_decay), int(n.v_th_mant) / 64.0
        nodes[f"{i}"], leak = _synapse_node(nir, layer, delay)
        nodes[f"{i}_neuron"] = _neuron_node(nir, di, dv, th, leak, dt, layer.out_shape, i)
        order.append(f"{i}")
        if delay is not None:  # Linear -> Delay (one per output neuron, in time units) -> neuron
            nodes[f"{i}_delay"] = nir.Delay(delay=delay[:, 0].astype(np.float64) * dt)
            order.append(f"{i}_delay")
        order.append(f"{i}_neuron")
        w_rec = getattr(layer, "weight_rec", None)
        if w_rec is not None:  # the loop neuron -> Linear -> neuron
            nodes[f"{i}_rec"] = nir.Linear(weight=w_rec.astype(np.float64) / 64.0)
            loops.append((f"{i}_neuron", f"{i}_rec"))
    nodes["output"] = nir.Output(output_type={"output": np.array(spec.output_shape)})
    order.append("output")
    edges = list(zip(order[:-1], order[1:])) + [e for n, r in loops for e in ((n, r), (r, n))]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _check_for_nir(layer, i: int) -> None:
    if layer.neuron.kind != "cuba":
        what = "sigma-delta (SDNN)" if layer.neuron.kind == "sdnn" else "resonate-and-fire"
        raise UnsupportedLayerError(f"to_nir: layer {i} has {what} neurons, which have no NIR node sj2lava writes")
    delay = getattr(layer, "delay", None)
    if delay is not None and not np.all(delay == delay[:, :1]):
        raise UnsupportedLayerError(f"to_nir: layer {i} has per-synapse axonal delays; a NIR Delay node delays a "
                                    "neuron's whole input, so sj2lava writes one delay per output neuron only")


def _synapse_node(nir, layer, delay: Optional[np.ndarray]) -> Tuple[object, Optional[np.ndarray]]:
    """The layer's synapse as a NIR node (weights ``mant / 64``) and the bias left for the neuron's ``v_leak``."""
    n = layer.neuron
    w = layer.weight.astype(np.float64) / 64.0
    bias = None if layer.bias is None else layer.bias.astype(np.float64) / 64.0
    # an IF layer's bias goes on its synapse; before a Delay it would be delayed too, so a no-decay LIF's v_leak
    on_syn = bias is not None and int(n.i_decay) == 4096 and int(n.v_decay) == 0 and delay is None
    leak = None if (bias is None or on_syn) else bias
    if isinstance(layer, Conv):
        syn_bias = bias if on_syn else np.zeros(layer.out_shape[0])
        return nir.Conv2d(input_shape=tuple(layer.in_shape[1:]), weight=w, stride=layer.stride,
                          padding=layer.padding, dilation=layer.dilation, groups=layer.groups, bias=syn_bias), leak
    return (nir.Affine(weight=w, bias=bias) if on_syn else nir.Linear(weight=w)), leak


def _neuron_node(nir, di: int, dv: int, th: float, leak: Optional[np.ndarray], dt: float, shape, i: int):
    """One NIR neuron node; its parameter arrays have the layer's shape, as NIR's type check wants."""
    shape = tuple(int(s) for s in shape)
    full = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    tau_mem = dt * 4096 / dv if dv else dt * _NO_DECAY_TAU
    if leak is None:
        v_leak = full(0.0)
    else:  # per channel (conv) or per neuron (dense), in C, H, W order
        per = leak.reshape(-1, *([1] * (len(shape) - 1))) if leak.size == shape[0] else leak.reshape(shape)
        v_leak = np.broadcast_to(per * tau_mem / dt, shape).astype(np.float64)
    if di == 4096 and dv == 0 and leak is None:
        return nir.IF(r=full(1.0 / dt), v_threshold=full(th), v_reset=full(0.0))
    if di == 4096:
        return nir.LIF(tau=full(tau_mem), r=full(tau_mem / dt), v_leak=v_leak, v_threshold=full(th),
                       v_reset=full(0.0))
    tau_syn = dt * 4096 / di if di else dt * _NO_DECAY_TAU
    return nir.CubaLIF(tau_syn=full(tau_syn), tau_mem=full(tau_mem), r=full(tau_mem / dt), v_leak=v_leak,
                       v_threshold=full(th), v_reset=full(0.0), w_in=full(tau_syn / dt))
