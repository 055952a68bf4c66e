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
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..layout import TNX_to_NXT
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
            layer are int32 (units of ``2^-spike_exp``).
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
    if window == "aligned":
        steps, extra = run_steps(x, num_steps, layout), spec.latency
        padded = x if x is None or num_steps is not None else pad_steps(x, extra, layout)
        return read_window(emulate(spec, padded, layout=layout, batch_size=batch_size, device=device, record=record,
                                   backend=backend, reset_interval=reset_interval, reset_offset=reset_offset,
                                   input_bias=input_bias, num_steps=None if num_steps is None else num_steps + extra,
                                   spike_exp=spike_exp), spec, steps, layout)
    if x is not None or num_steps is not None:
        warn_unread(spec, run_steps(x, num_steps, layout), "emulate")
    _check_options(record, spike_exp)
    dev = torch.device(device)
    inp = run_input(spec, x, input_bias, num_steps, layout, "emulate", spike_exp, check_values=False)
    n = inp.x.shape[1]
    _check_memory(spec, inp.x.shape[0], n, record, batch_size)
    resets = reset_phases(spec, reset_interval, reset_offset)
    run, size = _runner(spec, inp, _pick_backend(backend, dev), dev, record, resets, batch_size, int(spike_exp))
    parts: Dict[str, List[List[torch.Tensor]]] = {}
    for i in range(0, n, size):
        for key, tensors in run(i, i + size).items():
            parts.setdefault(key, []).append(tensors)
    return _assemble(parts, spec, record, layout, inp.x.shape[0], n)


def _check_options(record: Sequence[str], spike_exp: int) -> None:
    unknown = set(record) - {"spikes", "layer_spikes", "voltage", "current", "sigma"}
    if unknown:
        raise ValueError("emulate: record may hold 'spikes', 'layer_spikes', 'voltage', 'current', 'sigma'; got "
                         f"{sorted(unknown)}")
    if isinstance(spike_exp, bool) or not isinstance(spike_exp, (int, np.integer)) or not 0 <= spike_exp <= 24:
        raise ValueError(f"emulate: spike_exp must be an integer in [0, 24], got {spike_exp!r}")


def _runner(spec: NetSpec, inp: RunInput, backend: str, dev: torch.device, record: Sequence[str], resets,
            batch_size: Optional[int], spike_exp: int) -> Tuple[Callable[[int, int], dict], int]:
    """``(run(i, j) -> the outputs of samples i..j, chunk size)`` on the chosen backend: the events kernel where
    it holds the net exactly (``'auto'`` falls back to torch where it does not), else the torch backend."""
    key = fingerprint(spec)
    layers = prepared(key, ("compiled", spike_exp), lambda: compile_net(spec, spike_exp))
    kernel_layers = None
    if backend != "torch":
        kernel_layers = prepared(key, ("events", ckernel.DOT, spike_exp),
                                 lambda: events_backend.prepare(layers, tuple(spec.input_shape), use_dot=ckernel.DOT))
        if isinstance(kernel_layers, str):  # why the kernel cannot hold this net exactly
            if backend == "events":
                raise ValueError(f"emulate: the 'events' backend cannot run this net exactly ({kernel_layers}); "
                                 "use backend='torch'")
            kernel_layers = None
    if kernel_layers is not None:
        return _events_runner(kernel_layers, spec, inp, record, resets), \
            256 if batch_size is None else max(1, int(batch_size))
    x, input_bias, n = inp.x, inp.bias, inp.x.shape[1]
    if not (inp.neurons_in or spec.graded_input):
        check_binary(x, "emulate")
    torch_layers = torch_backend.prepare(layers, dev)

    def run(i: int, j: int) -> dict:
        return torch_backend.run(torch_layers, x[:, i:j].to(dev), record, resets,
                                 None if input_bias is None else input_bias[i:j])

    size = max(1, int(batch_size)) if batch_size is not None else (
        n if dev.type != "cpu" else max(1, min(n, _CPU_CHUNK_STATES // max(1, spec.neurons))))
    return run, size


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
    result: Dict[str, object] = {"spikes": out_spikes,
                                 "layer_spikes": [to_layout(as_out(s)) for s in merged["spikes"]]}
    for name in ("voltage", "current", "sigma"):
        if name in merged:
            result[name] = [None if a is None else to_layout(a) for a in merged[name]]
    return result


def _events_runner(kernel_layers, spec: NetSpec, inp: RunInput, record: Sequence[str], resets) -> Callable:
    """``(i, j) -> recordings`` of samples ``i .. j`` on the C kernel, the input packed as it takes it."""
    x, n = inp.x, inp.x.shape[1]
    if inp.neurons_in:  # a_in and bias images, already checked; a_in all zero when not given (an expanded view)
        assert inp.bias is not None  # run_input gives input neurons their bias
        a_in = None if x.stride()[:2] == (0, 0) else x.numpy()
        bias_np = inp.bias.numpy()
        return lambda i, j: events_backend.run(
            kernel_layers, np.zeros((x.shape[0], min(j, n) - i, 0), np.int32) if a_in is None else a_in[:, i:j],
            record, resets, bias_np[i:j])
    # int32 graded values (a Delta layer's a_in, or messages; already checked), or spikes as bytes
    s = x.reshape(x.shape[0], n, -1).numpy() if spec.graded_input else _spike_bytes(x)
    delta_in = bool(spec.layers) and isinstance(spec.layers[0], InputNeurons)  # a Delta layer's a_in: flat
    order = None if delta_in else events_backend.channels_last(tuple(spec.input_shape))
    return lambda i, j: events_backend.run(kernel_layers, s[:, i:j], record, resets, in_order=order)


def _memory_limit() -> int:
    value = os.environ.get("SJ2LAVA_MAX_BYTES")
    if value is not None:
        return int(value)
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
    need, limit = recorded + state, _memory_limit()
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
