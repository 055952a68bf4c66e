"""Lava processes that record a run into files and reset it between samples, without the host: what Lava's own
``sink.RingBuffer`` and ``Monitor`` record and what ``Var.set`` between two runs sets, at memory speed.

Lava moves a Var between the caller and a worker one value per channel message (``Runtime.get_var`` and
``set_var``: about 50 us a value on 2 cores): reading PilotNet-LIF's 10 layers x 16 steps (2.5 M values) out of
ring buffers took 120 s of a 125 s run, and zeroing its states between two samples 16 s a sample. Here:

* :class:`SpikeRecorder` receives a port's messages in the spiking phase, as ``sink.RingBuffer`` does, and writes
  step ``t`` (from 1, counted by Lava across runs) to row ``(t - 1) % total`` of a float64 ``.npy`` file
  ``(total, *shape)`` (exact for every int32 and float32 value) that the caller made before the run and reads after
  it; the workers map it shared, so nothing is sent over a channel.
* :class:`VarProbe` works on one Var through a RefPort in the management phase after every step, as ``Monitor``
  does: it records the Var (to a file as above), then, after the last step of every sample but the last
  (``t % period == 0``), writes the next sample's value into it: zeros (a state's reset) or row ``t // period`` of a
  ``(samples, *shape)`` file (an input neuron's bias image). One process does both, in this order, so that a
  recorded state is read before it is reset.

This module imports only Lava and numpy, with absolute imports, because Lava's compiler executes it as a standalone
script when it looks for process models.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Tuple, Union

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

PathLike = Union[str, Path]


def new_record(path: PathLike, total: int, shape: Tuple[int, ...]) -> None:
    """Make the zeroed float64 ``(total, *shape)`` file a recorder writes into."""
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(total, *shape)).flush()


class SpikeRecorder(AbstractProcess):
    """Records the messages arriving at ``a_in`` (connect an OutPort to it) into the file at ``path``."""

    def __init__(self, *, shape: Tuple[int, ...], total: int, path: PathLike) -> None:
        super().__init__(shape=shape, total=total, path=str(path))
        self.a_in = InPort(shape=shape)


class VarProbe(AbstractProcess):
    """Records a Var of ``shape`` (connected by :func:`probe_var`) after every step of a ``total``-step run into the
    file at ``record`` (None: not recorded), then sets it after the last step of every ``period`` steps (0: never)
    but the run's last: to zeros, or to row ``t // period`` of the ``(samples, *shape)`` array in the ``.npy`` file at
    ``values``."""

    def __init__(self, *, shape: Tuple[int, ...], total: int, record: Optional[PathLike] = None, period: int = 0,
                 values: Optional[PathLike] = None) -> None:
        super().__init__(shape=shape, total=total, record=None if record is None else str(record),
                         period=period, values=None if values is None else str(values))
        self.state = RefPort(shape=shape)


def probe_var(var: Var, **options) -> VarProbe:
    """A :class:`VarProbe` on ``var`` (connected after construction, as Lava's ``Monitor.probe`` connects)."""
    probe = VarProbe(shape=var.shape, **options)
    probe.state.connect_var(var)
    return probe


class _SpikeModel(PyLoihiProcessModel):
    a_in: Any = None  # the subclass declares its port type

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._record = np.load(proc_params["path"], mmap_mode="r+")

    def run_spk(self) -> None:
        self._record[(self.time_step - 1) % len(self._record)] = self.a_in.recv()


class _VarModel(PyLoihiProcessModel):
    state: Any = None  # the subclass declares its port type

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        record, values = proc_params["record"], proc_params["values"]
        self._record = None if record is None else np.load(record, mmap_mode="r+")
        self._values = None if values is None else np.load(values, mmap_mode="r")
        self._period, self._total = int(proc_params["period"]), int(proc_params["total"])

    def _sets_now(self) -> bool:
        return self._period > 0 and self.time_step % self._period == 0 and self.time_step < self._total

    def post_guard(self) -> bool:
        return self._record is not None or self._sets_now()

    def run_post_mgmt(self) -> None:
        if self._record is not None:
            self._record[(self.time_step - 1) % len(self._record)] = self.state.read()
        if self._sets_now():
            if self._values is None:
                value = np.zeros(self.state._shape, self.state._d_type)
            else:
                value = np.asarray(self._values[self.time_step // self._period], self.state._d_type)
            self.state.write(value)
            self.state.wait()  # the write lands in this step, before the next sample's first


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderFixed(_SpikeModel):
    """Integer messages, as ``sink.PyReceiveModelFixed`` takes them."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeRecorderFloat(_SpikeModel):
    """Float messages, as ``sink.PyReceiveModelFloat`` takes them."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


@implements(proc=VarProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyVarProbeFixed(_VarModel):
    """Integer Vars, as ``Monitor``'s and ``io.reset.Reset``'s models read and write them."""

    state: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, int)


@implements(proc=VarProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyVarProbeFloat(_VarModel):
    """Float Vars."""

    state: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)
