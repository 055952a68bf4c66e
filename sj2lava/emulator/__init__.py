"""A batched, bit-exact emulator of NetX ``.net`` files: what Lava's ``Loihi2SimCfg(select_tag='fixed_pt')``
computes, for a whole batch at once, on CPU or GPU.

Per time step ``t`` (from 1) and per layer, exactly in Lava's order and integer arithmetic::

    a_out(t)   = a_buf(t-1)                               one step of synaptic delay (a_buf(0) = 0)
    a_buf(t)   = dense: (W_lava s_in(t)) >> sb            NetX's weight-bit optimisation (W << sb, clip,
                                                          truncate) and Lava Dense's exponent shift (floor)
                 conv:  conv_wrap(conv(s_in(t), W))       Lava Conv: integer weights, 24-bit signed wrap
    u, v, s    = the LIF step of sj2lava.quant on a_in = a_out(t) (+ W_rec s(t-1) for dense_rec)

with the rules of :mod:`sj2lava.quant` (``rs0``, ``lava_wrap``, ``conv_wrap``, ``clip_state``). Input
neurons (a NetX ``Input`` block) have no synapse: their ``a_in`` is the caller's ``x`` at the same step.
Sigma-delta layers (:class:`~sj2lava.netx.spec.SigmaDelta`) send graded int32 messages, which the next
synapse multiplies (``W m``, exact while every sum stays below 2^31, else refused); resonate-and-fire
layers (:class:`~sj2lava.netx.spec.Resonator`) sum a real and an imaginary synapse. Their steps are in
those classes' docstrings.

Backends: ``'events'`` (:mod:`.events_backend` over :mod:`.ckernel`, a C kernel on the CPU: int8 dot
products, pattern tables or spike-driven fan-out, per layer) and
``'torch'`` (torch ops, CPU or GPU; its synaptic sums use float32 (or float64) matrix/conv kernels only
where every sum is provably below 2^24 (2^53), so they are exact, and become integers before they touch
the state; :mod:`.torch_backend`). Both read the same backend-neutral
:class:`~.compiled.CompiledLayer` list made by :func:`~.compiled.compile_net`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..layout import TNX_to_NXT
from ..metrics import Counts
from ..netx.hdf5 import load
from ..netx.inputs import (
    WINDOWS,
    RunInput,
    check_binary,
    pad_steps,
    read_window,
    reset_phases,
    run_input,
    run_steps,
    warn_unread,
)
from ..netx.spec import InputNeurons, NetSpec
from . import ckernel, events_backend, torch_backend
from .compiled import compile_net, fingerprint, prepared

__all__ = ["emulate"]


def _spike_bytes(x: torch.Tensor) -> np.ndarray:
    """``x`` ``[T, N, *input_shape]`` as uint8 ``[T, N, n_in]``, after checking that every value is 0 or 1
    (one C pass for float32)."""
    steps, batch = x.shape[0], x.shape[1]
    if x.dtype == torch.float32 and x.device.type == "cpu":
        s, bad = ckernel.spike_bytes(x.detach().numpy())
        if bad >= 0:
            check_binary(x.reshape(-1)[bad:bad + 1], "emulate")
    else:
        check_binary(x, "emulate")
        s = x.to(torch.uint8).cpu().numpy()
    return s.reshape(steps, batch, -1)


def emulate(path_or_spec: Union[str, Path, NetSpec], x: Optional[torch.Tensor] = None, *, layout: str = "TNX",
            batch_size: Optional[int] = None, device: Union[str, torch.device] = "cpu",
            record: Sequence[str] = ("spikes",), backend: str = "auto", reset_interval: Optional[int] = None,
            reset_offset: int = 0, input_bias: Optional[torch.Tensor] = None,
            num_steps: Optional[int] = None, num_layers: Optional[int] = None, skip_layers: int = 0,
            spike_exp: int = 6, window: str = "all") -> Union[torch.Tensor, Dict[str, object]]:
    """Run a NetX ``.net`` file (or a :class:`~sj2lava.netx.spec.NetSpec`) exactly as Lava's fixed-point
    simulation would (the step in this package's docstring).

    Args:
        path_or_spec: a ``.net`` path (anything :func:`sj2lava.load` accepts) or a loaded spec.
        x: binary input spikes ``[T, N, *input_shape]`` (``'TNX'``) or ``[N, *input_shape, T]`` (``'NXT'``);
            integers for a net that takes graded input (an SDNN input layer: its Delta neurons' ``a_in``, or
            ``input_message_bits`` after ``skip_layers``).
        batch_size: samples per chunk (default: 256 for ``'events'``; for ``'torch'`` all at once on a GPU, and
            on the CPU chunks of about 4 M neuron states).
        device: ``'cpu'`` or ``'cuda'``.
        record: ``('spikes',)`` returns the output spikes; adding ``'layer_spikes'``, ``'voltage'``
            and/or ``'current'`` returns a dict with ``'spikes'`` (output) and per synaptic layer lists
            ``'layer_spikes'``, ``'voltage'``, ``'current'`` (``v`` after reset and ``u``, int32 state
            units: 4096 = 1.0; None for SDNN layers); ``'sigma'`` adds the SDNN layers' sigma state (None for
            the others). Every returned array is in ``layout``. Spikes are float 0/1; the messages of an SDNN
            layer are int32 (units of ``2^-spike_exp``). ``'counts'`` adds ``'counts'``, a
            :class:`~sj2lava.metrics.Counts` (per neuron, its non-zero outputs summed over samples and its steps:
            what :func:`sj2lava.metrics.metrics_of` needs), counted chunk by chunk inside the run, so that no
            layer's spikes are held beyond a chunk (memory independent of the number of samples).
        backend: ``'events'`` (CPU, a C kernel built on first use: the fast one),
            ``'torch'`` (dense torch ops, CPU or GPU) or ``'auto'``: events on the CPU when a C compiler
            is at hand and the net's sums fit its int32 registers, else torch. Both compute the same
            integers.
        input_bias: for a net whose input layer has neurons (NetX's ``Input`` block): their ``bias_mant``,
            integers in [-4096, 4095], ``[N, *input_shape]`` (one image per sample) or ``[*input_shape]``;
            lava-dl drives PilotNet-LIF and tinynet this way. ``x`` is then optional: the neurons' ``a_in``
            (integers, added to ``u`` as ``a_in << 6`` at the same step); without it, ``num_steps`` zeros.
        num_layers, skip_layers: run only the file's first layers, or all but its first ones (NetX's names; see
            :func:`sj2lava.load`).
        spike_exp: NetX's ``spike_exp``, the fraction bits of SDNN messages (default 6: a message of 64 is 1.0).
        window: ``'all'`` (every step run) or ``'aligned'``: ``T + L`` steps run (``L`` the output's latency, one
            step per synaptic layer), each layer's ``T`` steps that answer the input returned
            (:data:`sj2lava.netx.inputs.WINDOWS`); a classifier's output is read there. ``'all'`` warns when ``T``
            is too short to show any output.
        reset_interval, reset_offset: NetX's names and meaning: every ``reset_interval`` steps each layer's
            ``u`` and ``v`` are zeroed, synaptic layer ``i`` at the Lava steps ``k`` (from 1) with
            ``k % reset_interval == (reset_offset + 1 + i) % reset_interval``
            (:func:`sj2lava.netx.inputs.reset_phases`).

    Every sample starts from zero state, as ``run_lava`` resets between samples. Bad input (wrong
    shape, non-binary spikes, NaN) raises ``ValueError`` before any work.
    """
    if isinstance(path_or_spec, NetSpec):
        if num_layers is not None or skip_layers:
            raise ValueError("emulate: num_layers and skip_layers select layers of a file; use load(path, ...) "
                             "for a spec")
        spec = path_or_spec
    else:
        spec = load(path_or_spec, num_layers=num_layers, skip_layers=skip_layers)
    if window not in WINDOWS:
        raise ValueError(f"emulate: window must be one of {WINDOWS}, got {window!r}")
    options: Dict[str, Any] = dict(layout=layout, batch_size=batch_size, device=device, record=record,
                                   backend=backend, reset_interval=reset_interval, reset_offset=reset_offset,
                                   input_bias=input_bias, spike_exp=spike_exp)
    if window == "all":
        if x is not None or num_steps is not None:
            warn_unread(spec, run_steps(x, num_steps, layout), "emulate")
        return _emulate(spec, x, num_steps, None, **options)
    steps, extra = run_steps(x, num_steps, layout), spec.latency
    padded = x if x is None or num_steps is not None else pad_steps(x, extra, layout)
    windows = [(d, d + steps) for d in spec.latencies]  # each layer's answer to the input's steps
    out = _emulate(spec, padded, None if num_steps is None else num_steps + extra, windows, **options)
    if not isinstance(out, dict):
        return read_window(out, spec, steps, layout)
    counts = out.pop("counts", None)
    out = read_window(out, spec, steps, layout)
    if counts is not None:
        out["counts"] = counts
    return out


def _emulate(spec: NetSpec, x: Optional[torch.Tensor], num_steps: Optional[int],
             windows: Optional[List[Tuple[int, int]]], *, layout: str, batch_size: Optional[int],
             device: Union[str, torch.device], record: Sequence[str], backend: str, reset_interval: Optional[int],
             reset_offset: int, input_bias: Optional[torch.Tensor],
             spike_exp: int) -> Union[torch.Tensor, Dict[str, object]]:
    """:func:`emulate` on ``x`` as given (``windows``: each synaptic layer's counted steps, default all)."""
    _check_options(record, spike_exp)
    dev = torch.device(device)
    inp = run_input(spec, x, input_bias, num_steps, layout, "emulate", spike_exp, check_values=False)
    steps, n = inp.x.shape[0], inp.x.shape[1]
    counting = "counts" in record
    if counting and windows is None:
        windows = [(0, steps)] * len(spec.latencies)
    _check_memory(spec, steps, n, record, batch_size)  # counts hold no spikes: only the output's are recorded
    resets = reset_phases(spec, reset_interval, reset_offset)
    run, size = _runner(spec, inp, _pick_backend(backend, dev), dev, record, resets, batch_size, int(spike_exp),
                        windows if counting else None)
    parts: Dict[str, List[List[torch.Tensor]]] = {}
    totals: Dict[str, List[torch.Tensor]] = {}
    for i in range(0, n, size):
        for key, tensors in run(i, i + size).items():
            if key in ("fired", "last"):  # counts: summed over the chunks, never held per sample
                totals[key] = tensors if key not in totals else [a + b for a, b in zip(totals[key], tensors)]
            else:
                parts.setdefault(key, []).append(tensors)
    out = _assemble(parts, spec, record, layout, steps, n)
    if counting:
        assert isinstance(out, dict) and windows is not None
        out["counts"] = _counts(spec, inp, windows, totals, n)
    return out


def _counts(spec: NetSpec, inp: RunInput, windows: List[Tuple[int, int]], totals: Dict[str, List[torch.Tensor]],
            n: int) -> Counts:
    """The run's :class:`~sj2lava.metrics.Counts`: the chunks' per-neuron counts, and the input's non-zero values
    (over its steps; the aligned window's padding is zeros) for a first synaptic layer."""
    flat = inp.x.reshape(-1, int(np.prod(spec.input_shape)))
    first = None if spec.layers and isinstance(spec.layers[0], InputNeurons) else (
        (flat != 0).sum(0).double() if spec.graded_input else flat.sum(0, dtype=torch.float64))  # spikes: 0 or 1
    inputs = [first] + totals["fired"][:-1]
    if first is None:  # input neurons have no synapse; the layer after them reads their spikes
        inputs = [None] + totals["fired"][:-1]
    steps = windows[0][1] - windows[0][0]
    return Counts(n, steps, inputs, totals["fired"], totals["last"])


def _check_options(record: Sequence[str], spike_exp: int) -> None:
    unknown = set(record) - {"spikes", "layer_spikes", "voltage", "current", "sigma", "counts"}
    if unknown:
        raise ValueError("emulate: record may hold 'spikes', 'layer_spikes', 'voltage', 'current', 'sigma', 'counts'; "
                         f"got {sorted(unknown)}")
    if isinstance(spike_exp, bool) or not isinstance(spike_exp, (int, np.integer)) or not 0 <= spike_exp <= 24:
        raise ValueError(f"emulate: spike_exp must be an integer in [0, 24], got {spike_exp!r}")


def _runner(spec: NetSpec, inp: RunInput, backend: str, dev: torch.device, record: Sequence[str], resets,
            batch_size: Optional[int], spike_exp: int,
            windows: Optional[List[Tuple[int, int]]]) -> Tuple[Callable[[int, int], dict], int]:
    """``(run(i, j) -> the outputs of samples i..j, chunk size)`` on the chosen backend: the events kernel where
    it holds the net exactly (``'auto'`` falls back to torch where it does not), else the torch backend. With
    ``windows`` (record 'counts') each chunk also gives per-layer counts ``fired`` and ``last`` over them, and keeps
    the layers' spikes only where asked."""
    key = fingerprint(spec)
    layers = prepared(key, ("compiled", spike_exp), lambda: compile_net(spec, spike_exp))
    kernel_layers = None
    if backend != "torch":
        kernel_layers = prepared(key, ("events", ckernel.DOT, events_backend.DOT_MIN, spike_exp),
                                 lambda: events_backend.prepare(layers, tuple(spec.input_shape), use_dot=ckernel.DOT))
        if isinstance(kernel_layers, str):  # why the kernel cannot hold this net exactly
            if backend == "events":
                raise ValueError(f"emulate: the 'events' backend cannot run this net exactly ({kernel_layers}); "
                                 "use backend='torch'")
            kernel_layers = None
    if kernel_layers is not None:
        return _events_runner(kernel_layers, spec, inp, record, resets, windows), \
            256 if batch_size is None else max(1, int(batch_size))
    x, input_bias, n = inp.x, inp.bias, inp.x.shape[1]
    if not (inp.neurons_in or spec.graded_input):
        check_binary(x, "emulate")
    torch_layers = torch_backend.prepare(layers, dev)

    def run(i: int, j: int) -> dict:
        out = torch_backend.run(torch_layers, x[:, i:j].to(dev), record, resets,
                                None if input_bias is None else input_bias[i:j], counting=windows is not None)
        return out if windows is None else _count_chunk(out, windows, _every_layer(record))

    size = max(1, int(batch_size)) if batch_size is not None else (
        n if dev.type != "cpu" else max(1, min(n, _CPU_CHUNK_STATES // max(1, spec.neurons))))
    return run, size


def _every_layer(record: Sequence[str]) -> bool:
    """Whether ``record`` returns every layer's spikes (anything beyond the output's spikes and the counts)."""
    return any(k in record for k in ("layer_spikes", "voltage", "current", "sigma"))


def _count_chunk(out: dict, windows: List[Tuple[int, int]], keep: bool) -> dict:
    """A chunk's per-layer counts over ``windows`` (``fired``: non-zero outputs per neuron; ``last``: those of the
    window's last step), its layers' spikes dropped unless ``keep`` (the output's stay)."""
    spikes = out["spikes"]
    fired = [(a[lo:hi] != 0).reshape(hi - lo, a.shape[1], -1).sum((0, 1)).double() for a, (lo, hi) in
             zip(spikes, windows)]
    last = [(a[hi - 1] != 0).reshape(a.shape[1], -1).sum(0).double() for a, (_, hi) in zip(spikes, windows)]
    if not keep:
        out["spikes"] = [None] * (len(spikes) - 1) + [spikes[-1]]
    return dict(out, fired=fired, last=last)


def _assemble(parts: Dict[str, List[List[torch.Tensor]]], spec: NetSpec, record: Sequence[str], layout: str,
              steps: int, n: int) -> Union[torch.Tensor, Dict[str, object]]:
    """The batches' recordings joined along ``N``, in the caller's layout: the output spikes, or a dict of what
    ``record`` asked for."""
    merged = {k: [None if v[0][j] is None else torch.cat([p[j] for p in v], 1) for j in range(len(v[0]))]
              for k, v in parts.items()}
    to_layout = (lambda a: a) if layout == "TNX" else TNX_to_NXT  # every returned array follows `layout`
    as_out = lambda a: a.float() if a.dtype == torch.bool else a  # noqa: E731  (SDNN messages stay int32)
    out_spikes = to_layout(as_out(merged["spikes"][-1]).reshape(steps, n, *spec.output_shape))
    if tuple(record) == ("spikes",):
        return out_spikes
    result: Dict[str, object] = {"spikes": out_spikes}
    if _every_layer(record):  # not for counts alone
        result["layer_spikes"] = [None if s is None else to_layout(as_out(s)) for s in merged["spikes"]]
    for name in ("voltage", "current", "sigma"):
        if name in merged:
            result[name] = [None if a is None else to_layout(a) for a in merged[name]]
    return result


def _events_runner(kernel_layers, spec: NetSpec, inp: RunInput, record: Sequence[str], resets,
                   windows: Optional[List[Tuple[int, int]]] = None) -> Callable:
    """``(i, j) -> recordings`` of samples ``i .. j`` on the C kernel, the input packed as it takes it."""
    x, n = inp.x, inp.x.shape[1]
    if inp.neurons_in:  # a_in and bias images, already checked; a_in all zero when not given (an expanded view)
        assert inp.bias is not None  # run_input gives input neurons their bias
        a_in = None if x.stride()[:2] == (0, 0) else x.numpy()
        bias_np = inp.bias.numpy()
        return lambda i, j: events_backend.run(
            kernel_layers, np.zeros((x.shape[0], min(j, n) - i, 0), np.int32) if a_in is None else a_in[:, i:j],
            record, resets, bias_np[i:j], windows=windows)
    # int32 graded values (a Delta layer's a_in, or messages; already checked), or spikes as bytes
    s = x.reshape(x.shape[0], n, -1).numpy() if spec.graded_input else _spike_bytes(x)
    delta_in = bool(spec.layers) and isinstance(spec.layers[0], InputNeurons)  # a Delta layer's a_in: flat
    order = None if delta_in else events_backend.channels_last(tuple(spec.input_shape))
    return lambda i, j: events_backend.run(kernel_layers, s[:, i:j], record, resets, in_order=order, windows=windows)


def memory_limit() -> int:
    """The bytes a run may use: ``$SJ2LAVA_MAX_BYTES``, default the memory the kernel reports available now
    (``MemAvailable``), else the machine's physical memory."""
    value = os.environ.get("SJ2LAVA_MAX_BYTES")
    if value is not None:
        return int(value)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # physical memory
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def _check_memory(spec: NetSpec, steps: int, n: int, record: Sequence[str], batch_size: Optional[int]) -> None:
    """Refuse before any work a run whose recordings and state would not fit in memory
    (``$SJ2LAVA_MAX_BYTES``, default the machine's physical memory)."""
    neurons = spec.neurons
    every = any(k in record for k in ("layer_spikes", "voltage", "current", "sigma"))
    per_value = 1 + 4 * sum(k in record for k in ("voltage", "current", "sigma"))
    recorded = steps * n * (neurons * per_value if every else int(np.prod(spec.output_shape)) * 4)
    chunk = n if batch_size is None else min(n, max(1, int(batch_size)))
    state = chunk * neurons * 4 * 6
    need, limit = recorded + state, memory_limit()
    if need > limit:
        raise ValueError(f"emulate: this run needs about {need / 2**30:,.1f} GiB ({steps} steps x {n} samples x "
                         f"{neurons:,} neurons{', every layer recorded' if every else ''}), more than "
                         f"{limit / 2**30:,.1f} GiB; run fewer samples at a time, record less, or raise "
                         "$SJ2LAVA_MAX_BYTES")


_CPU_CHUNK_STATES = 1 << 22
"""On the CPU the torch backend runs samples in chunks of about this many neurons' states: a chunk's int32
state then stays near the caches (PilotNet-LIF runs 2.6x faster in chunks of 26 than all 256 at once)."""


def _pick_backend(backend: str, device: torch.device) -> str:
    if backend not in ("auto", "events", "torch"):
        raise ValueError(f"emulate: backend must be 'auto', 'events' or 'torch', got {backend!r}")
    if backend == "auto":  # 'auto' still falls back to torch for a net the kernel cannot hold exactly
        return "auto" if device.type == "cpu" and ckernel.available() else "torch"
    if backend == "events":
        if device.type != "cpu":
            raise ValueError(f"emulate: the 'events' backend runs on the CPU; use backend='torch' for {device}")
        if not ckernel.available():
            raise RuntimeError(f"emulate: the 'events' backend could not build its C kernel "
                               f"({ckernel.unavailable_reason()}); use backend='torch'")
    return backend
