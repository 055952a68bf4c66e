"""sj2lava: spiking nets trained in PyTorch, deployed on Intel Loihi through Lava, exactly.

The core (this package's import) needs only torch, numpy and h5py; lava-dl, lava-nc and
SpikingJelly are imported where they are used.
"""
from __future__ import annotations

import logging as _logging

from .block import BlockContainer, InputBlock
from .convert import convert, rescale
from .emulator import emulate
from .errors import ExportError, GradedOverflowError, LavaRunError, NetFileError, NirFileError, UnsupportedLayerError
from .evaluate import Evaluation, evaluate
from .export import export, to_spec

# The front-ends register their neuron, synapse, block and export rules with the core on import
# (none imports its framework); lava-dl's also carries SpikingJelly lava_exchange's names.
from .frontends import lavadl as _lavadl  # noqa: F401
from .frontends import nir as _nir  # noqa: F401
from .frontends import snntorch as _snntorch  # noqa: F401
from .frontends import spikingjelly as _spikingjelly  # noqa: F401
from .frontends.lavadl import (  # noqa: E402
    avgpool2d_to_lava_synapse_pool,
    conv2d_to_lava_synapse_conv,
    linear_to_lava_synapse_dense,
    to_lava,
    to_lava_neuron,
)
from .frontends.nir import from_nir, to_nir  # noqa: E402
from .layout import NXT_to_TNX, TNX_to_NXT
from .netx.hdf5 import load
from .netx.lava import run_lava
from .netx.spec import NetSpec
from .neuron import CubaLIFNode, Sigmoid, cuba_lif, to_cuba
from .pool import SumPool2d
from .sdnn import SdnnNet, to_sdnn
from .summary import summary
from .train import finetune, rate_code
from .verify import Report, verify

__version__ = "0.1.0"

__all__ = [
    "BlockContainer",
    "CubaLIFNode",
    "InputBlock",
    "Evaluation",
    "ExportError",
    "NetFileError",
    "NirFileError",
    "LavaRunError",
    "GradedOverflowError",
    "NXT_to_TNX",
    "NetSpec",
    "Report",
    "Sigmoid",
    "SumPool2d",
    "TNX_to_NXT",
    "UnsupportedLayerError",
    "avgpool2d_to_lava_synapse_pool",
    "conv2d_to_lava_synapse_conv",
    "convert",
    "cuba_lif",
    "emulate",
    "evaluate",
    "export",
    "finetune",
    "from_nir",
    "load",
    "run_lava",
    "to_spec",
    "linear_to_lava_synapse_dense",
    "rescale",
    "reset_net",
    "to_cuba",
    "to_lava",
    "to_nir",
    "to_sdnn",
    "summary",
    "SdnnNet",
    "to_lava_neuron",
    "verify",
    "quiet_spikingjelly_reset",
    "rate_code",
]


def reset_net(net) -> None:
    """Reset every stateful module of ``net`` (same as SpikingJelly's ``functional.reset_net``)."""
    for m in net.modules():
        if hasattr(m, "reset"):
            m.reset()


class _QuietSJReset(_logging.Filter):
    _prefix = "Trying to call `reset()` of "
    _ours = ("CubaLIFNode(", "BlockContainer(", "InputBlock(")

    def filter(self, record: _logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (msg.startswith(self._prefix) and msg[len(self._prefix):].startswith(self._ours))


def quiet_spikingjelly_reset() -> None:
    """Drop SpikingJelly's per-module warning when its ``functional.reset_net`` resets sj2lava modules.

    SpikingJelly logs "Trying to call `reset()` of ..." on the root logger for every module with a
    ``reset()`` that is not its own ``MemoryModule``; sj2lava's are plain ``nn.Module`` s (subclassing
    would import SpikingJelly on ``import sj2lava``), and the reset itself works. A library must not
    change the root logger on import, so this is opt-in: call it once, or use :func:`reset_net`, which
    never warns. It filters exactly that message for sj2lava's classes and is idempotent.
    """
    root = _logging.getLogger()
    if not any(isinstance(f, _QuietSJReset) for f in root.filters):
        root.addFilter(_QuietSJReset())
