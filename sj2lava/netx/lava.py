"""Run a ``.net`` file in Lava's CPU simulation of Loihi (``Loihi2SimCfg(select_tag='fixed_pt')``).

Timing: Lava step ``k`` (from 1) consumes input step ``k - 1`` and every synaptic layer delays by one
step, exactly as ``BlockContainer(delay_shift=True)`` does; so Lava's output at step ``k`` is the
container output at ``t = k - 1`` and no re-alignment is needed.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .._deps import quiet_import, require_lava
from ..errors import LavaRunError
from ..layout import TNX_to_NXT
from ._watch import check_timeout, supervise
from .hdf5 import load
from .inputs import (
    WINDOWS,
    RunInput,
    read_window,
    reset_phases,
    run_input,
    run_steps,
    warn_unread,
)
from .spec import Flatten, InputNeurons, NetSpec

__all__ = ["LavaRunError", "run_lava"]


def _import_lava_runtime() -> None:
    """Import Lava's runtime even when this process already fixed its multiprocessing context.

    Lava calls ``multiprocessing.set_start_method('fork')`` at import, which raises "context has
    already been set" once anything (tqdm's lock, a DataLoader) has created a context. When that
    context already is 'fork', the call is a no-op in effect, so let it pass.
    """
    name = "lava.magma.runtime.message_infrastructure.multiprocessing"
    if name in sys.modules:
        return
    require_lava("run_lava")
    current = multiprocessing.get_start_method(allow_none=True)
    if current is None:
        quiet_import(name)
        return
    if current != "fork":
        raise RuntimeError(f"Lava needs the 'fork' multiprocessing start method; this process uses "
                           f"{current!r}. Run Lava in a process that has not set another method.")
    original = multiprocessing.set_start_method

    def same_method_ok(method, force=False):
        if method != current:
            original(method, force)

    multiprocessing.set_start_method = same_method_ok
    try:
        quiet_import(name)
    finally:
        multiprocessing.set_start_method = original


def run_lava(path: Union[str, Path], x: Optional[torch.Tensor] = None, *, layout: str = "TNX",
             num_steps: Optional[int] = None,
             progress: Optional[Callable[[int], None]] = None,
             all_layers: bool = False,
             record: Sequence[str] = ("spikes",),
             spec: Optional[NetSpec] = None,
             reset_interval: Optional[int] = None,
             reset_offset: int = 0,
             input_bias: Optional[torch.Tensor] = None,
             run_cfg: Optional[object] = None,
             num_layers: Optional[int] = None,
             skip_layers: int = 0,
             spike_exp: int = 6,
             window: str = "all",
             timeout: Optional[float] = None) -> Union[torch.Tensor, List[torch.Tensor], dict]:
    """Run the ``.net`` at ``path`` in Lava on spikes ``x`` and return the output spikes.

    Args:
        x: input spikes ``[T, N, *input_shape]`` (layout ``'TNX'``) or ``[N, *input_shape, T]`` (``'NXT'``).
        num_steps: steps to run per sample (default ``T``); input beyond ``T`` is zero.
        progress: called with the number of samples done after each sample (the CLI draws a bar).
        all_layers: return the spikes of every synaptic layer (a list, in file order) instead of
            the output only.
        record: adding ``'voltage'`` / ``'current'`` probes every LIF's ``v`` / ``u`` with Lava monitors
            and returns a dict like :func:`sj2lava.emulator.emulate` (state units, 4096 = 1.0).
        spec: the file's :class:`NetSpec` when the caller has already loaded ``path`` (read once).
        reset_interval, reset_offset: passed to ``netx.hdf5.Network`` (periodic reset of every layer's
            ``u`` and ``v``, NetX's ``LIFReset``). Lava's step counter runs on across samples, so each
            sample is padded with empty steps to a multiple of ``reset_interval``: every sample then sees
            the reset phases of a fresh network, as :func:`sj2lava.emulate` computes them.
        input_bias: for a net whose input layer has neurons, their ``bias_mant`` per sample (set on
            ``net.in_layer.neuron.bias_mant``, as lava-dl's own tests drive PilotNet-LIF); ``x`` is then
            the neurons' ``a_in`` (a source connected to ``net.in_layer.neuron.a_in``), optional, and
            ``num_steps`` the steps per sample. Same meaning and checks as in :func:`sj2lava.emulate`.
        num_layers, skip_layers, spike_exp: passed to ``netx.hdf5.Network`` (see :func:`sj2lava.load` and
            :func:`sj2lava.emulate`). A net with graded input (an SDNN input layer, or SDNN messages after
            ``skip_layers``) takes integer ``x``; SDNN layers' messages come back as int32, and
            ``record=('sigma',)`` probes their sigma state.
        window: ``'all'`` or ``'aligned'`` (``T + L`` steps run, each layer's ``T`` answering steps returned), as in
            :func:`sj2lava.emulate`.
        run_cfg: a Lava run configuration; default ``Loihi2SimCfg(select_tag='fixed_pt')``, the CPU simulation
            the emulator equals. With ``lava-loihi`` and access to a Loihi 2 system, ``Loihi2HwCfg()`` runs the
            same call on the chip (untested here: no chip is reachable from this project's machines).
        timeout: seconds the run may go without finishing a sample (the first includes compiling the network);
            default ``None``, no limit. Whatever the timeout, a Lava worker that dies (the kernel's out-of-memory
            killer ends the largest process) stops the run within a second: :class:`LavaRunError`, with the
            runtime stopped and its shared memory released, never a hang.

    Returns:
        Output spikes in the caller's layout, aligned so that they equal the exported
        BlockContainers' output (no lag). Samples run one after another in one compiled network,
        with every neuron and synapse state reset to zero between samples.

    The Lava runtime is always stopped and NetX's HDF5 handle closed, also on error or Ctrl-C (see
    :mod:`sj2lava.netx._watch`).
    """
    spec = load(path, num_layers=num_layers, skip_layers=skip_layers) if spec is None else spec
    what = f"run_lava({Path(path).name})"
    if window not in WINDOWS:
        raise ValueError(f"{what}: window must be one of {WINDOWS}, got {window!r}")
    check_timeout(timeout, what)
    if window == "aligned":
        steps = run_steps(x, num_steps, layout)
        out = run_lava(path, x, layout=layout, num_steps=steps + spec.latency, progress=progress,
                       all_layers=all_layers, record=record, spec=spec, reset_interval=reset_interval,
                       reset_offset=reset_offset, input_bias=input_bias, run_cfg=run_cfg, spike_exp=spike_exp,
                       timeout=timeout)
        return read_window(out, spec, steps, layout)
    warn_unread(spec, run_steps(x, num_steps, layout), what)
    inp = run_input(spec, x, input_bias, num_steps, layout, what, spike_exp)
    steps = int(num_steps) if num_steps is not None else inp.x.shape[0]
    if steps < 1:
        raise ValueError("run_lava: num_steps must be >= 1")
    reset_phases(spec, reset_interval, reset_offset)  # the same argument checks as emulate
    states = [k for k in ("voltage", "current", "sigma") if k in record]
    plan = _Plan(n=inp.x.shape[1], steps=steps, states=states, all_layers=all_layers or bool(states),
                 period=steps if reset_interval is None else -(-steps // reset_interval) * reset_interval)
    net = _network(path, reset_interval=reset_interval, reset_offset=reset_offset, num_layers=num_layers,
                   skip_layers=skip_layers, spike_exp=spike_exp)
    try:
        outs, probes = _run_samples(net, spec, inp, plan, run_cfg, progress, what, timeout)
    finally:
        f = getattr(getattr(net, "net_config", None), "f", None)
        if f is not None:
            f.close()
    return _results(spec, outs, probes, plan.all_layers, plan.n, steps, layout)


def _network(path: Union[str, Path], *, reset_interval: Optional[int], reset_offset: int,
             num_layers: Optional[int], skip_layers: int, spike_exp: int):
    """lava-dl's ``netx.hdf5.Network`` for the file, given only the options that differ from NetX's defaults."""
    _import_lava_runtime()
    netx = quiet_import("lava.lib.dl.netx")
    options = {} if reset_interval is None else dict(reset_interval=int(reset_interval), reset_offset=int(reset_offset))
    options.update({k: int(v) for k, v in (("num_layers", num_layers), ("skip_layers", skip_layers or None),
                                           ("spike_exp", None if spike_exp == 6 else spike_exp)) if v is not None})
    return netx.hdf5.Network(net_config=str(path), **options)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """One run_lava call: ``n`` samples of ``period`` steps each (``steps`` read back, the rest padding to the
    reset interval), the ``states`` probed, and whether every layer's output is read."""

    n: int
    steps: int
    period: int
    states: List[str]
    all_layers: bool


def _run_samples(net, spec: NetSpec, inp: RunInput, plan: _Plan, run_cfg: Optional[object],
                 progress: Optional[Callable[[int], None]], what: str,
                 timeout: Optional[float]) -> Tuple[List[np.ndarray], dict]:
    """Run the NetX network on every sample, one after another with the states reset between them, and record
    every layer's output spikes (or the net's) and the asked states; the runtime is stopped at the end. The Lava
    calls run under :func:`supervise`: a dead worker or ``timeout`` seconds without a finished sample stop the
    run with :class:`LavaRunError`."""
    io = quiet_import("lava.proc.io")
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    # NetX's Input block leaves its inp unconnected: input neurons are driven at their a_in; a graded net's Delta
    # input neurons take x as their a_in too, and have no bias to set
    delta_in = inp.graded and isinstance(spec.layers[0], InputNeurons)
    target = net.in_layer.neuron.a_in if inp.neurons_in or (spec.graded_input and delta_in) else net.inp
    lava_in = tuple(target.shape)
    src = io.source.RingBuffer(data=_input_buffer(inp.x, lava_in, plan.steps, plan.period))
    src.s_out.connect(target)
    images = _bias_images(inp, lava_in) if inp.neurons_in else []
    if images:
        net.in_layer.neuron.bias_mant.init = images[0]
    cfg = run_cfg if run_cfg is not None else Loihi2SimCfg(select_tag="fixed_pt")
    with tempfile.TemporaryDirectory(prefix="sj2lava-run-") as folder:
        run_io = _RunIO(Path(folder), plan.n, plan.period)
        outs_read = [run_io.spikes(p.out) for p in (net.layers if plan.all_layers else [net])]
        states_read = [(key, j, run_io.state(getattr(layer.neuron, var)))
                       for j, layer in enumerate(net.layers) for key, var in _probed_states(layer, plan.states)]
        run_io.between_samples(net, images)
        run_io.connect()

        def work(beat: Callable[[int], None]) -> Tuple[List[np.ndarray], dict]:
            for i in range(plan.n):
                if i:
                    for var in run_io.host_zeroed:
                        var.set(np.zeros(var.shape, dtype=np.int32))
                    if run_io.host_bias:
                        net.in_layer.neuron.bias_mant.set(images[i])
                net.run(condition=RunSteps(num_steps=plan.period), run_cfg=cfg)
                beat(i + 1)
            outs = [_unpad(read(), plan.n, plan.period, plan.steps) for read in outs_read]
            probes: dict = {key: [None] * len(net.layers) for key in plan.states}
            for key, j, read in states_read:
                probes[key][j] = _unpad(read(), plan.n, plan.period, plan.steps)
            return outs, probes

        return supervise(net, work, what=what, total=plan.n, timeout=timeout, progress=progress)


HOST_IO = False  # True: Lava's own RingBuffer, Monitor and Var.set from the host (one message per value: slow)
HOST_SET_MAX = 2_000  # values: a Var set from the host (~50 us a value) below this costs less than a VarProbe (~0.1 s)


class _RunIO:
    """What moves between the caller and a run of ``n`` samples of ``period`` steps, other than the input: the
    recorded spikes and states (each read back by a function, as a ``(*lava_shape, n * period)`` array: the layout of
    Lava's ring buffers), the states zeroed between two samples and the input neurons' bias image of each sample.

    Lava's own ``sink.RingBuffer``, ``Monitor`` and ``Var.set`` move one value per channel message (PilotNet-LIF: two
    minutes to read its layers' 16 steps, 16 s to reset it between two samples), so most of this is done in the run
    by sj2lava's own Lava processes (:mod:`sj2lava.netx._lava_procs.probes`), through files of ``folder``: one
    ``VarProbe`` per recorded Var records it and sets it, in that order. A Var that is only set between samples and
    holds fewer than :data:`HOST_SET_MAX` values over the run is set from the host (``host_zeroed``,
    ``host_bias``): a process of its own would cost more. :data:`HOST_IO` does it all Lava's own way (a test shows
    both give the same)."""

    def __init__(self, folder: Path, n: int, period: int):
        self.folder, self.n, self.period, self.total = folder, n, period, n * period
        self.probes: dict = {}  # id(var) -> [var, record path, values path]
        self.host_zeroed: list = []
        self.host_bias = False
        self.files = 0

    def _file(self) -> Path:
        self.files += 1
        return self.folder / f"{self.files}.npy"

    def _record(self, shape: tuple) -> Tuple[Path, Callable[[], np.ndarray]]:
        """A new recording file of ``shape`` at every step, and the function that reads it back."""
        from ._lava_procs.probes import new_record

        path = self._file()
        new_record(path, self.total, shape)
        return path, lambda: np.moveaxis(np.load(path), 0, -1)

    def spikes(self, port) -> Callable[[], np.ndarray]:
        """Record what OutPort ``port`` sends, at every step."""
        shape = tuple(port.shape)
        if HOST_IO:
            sink = quiet_import("lava.proc.io").sink.RingBuffer(shape=shape, buffer=self.total)
            port.connect(sink.a_in)
            return lambda: np.asarray(sink.data.get())
        from ._lava_procs.probes import SpikeRecorder

        path, read = self._record(shape)
        port.connect(SpikeRecorder(shape=shape, total=self.total, path=path).a_in)
        return read

    def state(self, var) -> Callable[[], np.ndarray]:
        """Record Var ``var`` after every step."""
        if HOST_IO:
            from lava.proc.monitor.process import Monitor

            mon = Monitor()
            mon.probe(target=var, num_steps=self.total)
            return lambda: np.moveaxis(np.asarray(next(iter(mon.get_data().values()))[var.name]), 0, -1)
        path, read = self._record(tuple(var.shape))
        self.probes.setdefault(id(var), [var, None, None])[1] = path
        return read

    def between_samples(self, net, images: List[np.ndarray]) -> None:
        """Zero every state after each sample and set the next sample's bias image: from the host, or by the Var's
        probe (which a recorded Var has anyway)."""
        if self.n == 1:
            return
        bias = net.in_layer.neuron.bias_mant if images else None
        for var in [*_sample_states(net), *([bias] if images else [])]:
            if not HOST_IO and (id(var) in self.probes or var.size * (self.n - 1) > HOST_SET_MAX):
                entry = self.probes.setdefault(id(var), [var, None, None])
                if var is bias:
                    entry[2] = self._file()
                    np.save(entry[2], np.stack(images))
            elif var is bias:
                self.host_bias = True
            else:
                self.host_zeroed.append(var)

    def connect(self) -> None:
        """Connect every Var's probe (the last step: ``state`` and ``between_samples`` decide what each does)."""
        if self.probes:
            from ._lava_procs.probes import probe_var

            for var, record, values in self.probes.values():
                probe_var(var, total=self.total, record=record, period=self.period, values=values)


def _probed_states(layer, states: List[str]) -> List[Tuple[str, str]]:
    """``(key, Var name)`` of the asked states (``'voltage'``: v, ``'current'``: u, ``'sigma'``) the layer has."""
    # Lava's Delta holds a sigma it never uses: only Sigma / SigmaDelta neurons report theirs
    return [(key, var) for key, var in (("voltage", "v"), ("current", "u"), ("sigma", "sigma"))
            if key in states and hasattr(layer.neuron, var)
            and not (var == "sigma" and type(layer.neuron).__name__ == "Delta")]


def _bias_images(inp: RunInput, lava_in: tuple) -> List[np.ndarray]:
    """Each sample's input-neuron bias, one image per sample in Lava's (W, H, C) order."""
    bias = inp.bias
    assert bias is not None  # run_input gives input neurons their bias
    return [bias[i].numpy().transpose(*reversed(range(bias.dim() - 1))).reshape(lava_in) for i in range(bias.shape[0])]


def _results(spec: NetSpec, outs: List[np.ndarray], probes: dict, all_layers: bool, n: int, steps: int,
             layout: str) -> Union[torch.Tensor, List[torch.Tensor], dict]:
    """Lava's sink and monitor arrays as ``run_lava`` returns them: the output (or every layer's) spikes in the
    caller's layout, with the probed states in a dict like ``emulate``'s."""
    kept = [l for l in spec.layers if not isinstance(l, Flatten)]
    kept = kept if all_layers else kept[-1:]
    ys = [_to_torch(o, n, steps, l.out_shape, layout, l.neuron.graded) for o, l in zip(outs, kept)]
    if not probes:
        return ys if all_layers else ys[0]
    result: dict = {"spikes": ys[-1], "layer_spikes": ys}
    for key, arrays in probes.items():
        result[key] = [None if a is None else _to_torch(a, n, steps, l.out_shape, layout, True).long()
                       for a, l in zip(arrays, kept)]
    return result


def _input_buffer(x: torch.Tensor, lava_in: tuple, steps: int, period: int) -> np.ndarray:
    """The source's data: sample ``i`` of ``x`` [T, N, *] at steps ``i * period`` .. ``i * period + steps - 1``.
    Lava's shapes are (W, H, C), torch's (C, H, W) reversed: reversing all axes of a sample's [T, C, H, W] gives
    Lava's [W, H, C, T]. A network whose first layer is dense takes the sample flattened in C, H, W order."""
    n = x.shape[1]
    data = np.zeros((*lava_in, n * period), dtype=np.int32)
    t_in = min(steps, x.shape[0])
    xs = x[:t_in].detach().cpu().numpy().astype(np.int32)
    for i in range(n):
        sample = xs[:, i].reshape(t_in, -1) if len(lava_in) == 1 else xs[:, i]
        data[..., i * period:i * period + t_in] = sample.T
    return data


def _unpad(out: np.ndarray, n: int, period: int, steps: int) -> np.ndarray:
    """(..., n * period) -> (..., n * steps): each sample's first ``steps`` steps."""
    if period == steps:
        return out
    return out.reshape(*out.shape[:-1], n, period)[..., :steps].reshape(*out.shape[:-1], n * steps)


def _to_torch(out: np.ndarray, n: int, steps: int, shape, layout: str, graded: bool = False) -> torch.Tensor:
    """Spikes as float 0/1; graded messages and states (``graded``) as int32, exactly."""
    # (W, H, C, N*T) -> (W, H, C, N, T) -> reversed: [T, N, C, H, W]
    out = out.reshape(*out.shape[:-1], n, steps).T
    y = torch.from_numpy(np.ascontiguousarray(out))
    y = (y.to(torch.int32) if graded else y.float()).reshape(steps, n, *shape)
    return y if layout == "TNX" else TNX_to_NXT(y)


def _sample_states(net) -> Iterator:
    """Every Var that holds state from one sample to the next: each neuron's u, v (and sigma-delta, resonator
    states), each synapse's in-flight activation. They are zeroed between two samples."""
    for block in net.layers:
        neuron = getattr(block, "neuron", None)
        if neuron is not None:
            for var in ("u", "v", "sigma", "act", "residue", "error", "real", "imag"):
                if hasattr(neuron, var):
                    yield getattr(neuron, var)
        for syn_name in ("synapse", "synapse_rec", "real_synapse", "imag_synapse"):
            syn = getattr(block, syn_name, None)
            for var in ("a_buff", "a_buf"):
                if syn is not None and hasattr(syn, var):
                    yield getattr(syn, var)
