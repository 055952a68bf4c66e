"""The NetX file format and its runners.

- :mod:`.spec`: the typed layers of a ``.net`` file (``NetSpec``, ``Conv``, ``Dense``, ``Flatten``,
  ``InputNeurons``; neuron types ``Cuba`` (its old name ``Neuron`` still imports), ``SigmaDelta``, ``Resonator``).
- :mod:`.hdf5`: the HDF5 schema: an atomic writer and a validating reader.
- :mod:`.weights`: NetX's and Lava's dense weight rules (what the file's integers become in Lava).
- :mod:`.inputs`: the input checks every runner shares.
- :mod:`.lava`: running a file in Lava's fixed-point CPU simulation of Loihi.
- :mod:`.random_nets`: seeded random NetX networks (the emulator's verification against Lava).

Adding a NetX neuron type touches this package (spec, hdf5) and :mod:`sj2lava.emulator` only.
"""
from .hdf5 import load, write
from .spec import Conv, Cuba, Dense, Flatten, InputNeurons, NetSpec, Neuron, Resonator, SigmaDelta

__all__ = ["load", "write", "NetSpec", "Conv", "Dense", "Flatten", "InputNeurons", "Cuba", "Neuron", "SigmaDelta",
           "Resonator", "run_lava"]


def __getattr__(name: str):
    # run_lava lives beside the reader but is loaded on use: the file format needs no Lava
    if name == "run_lava":
        from .lava import run_lava

        return run_lava
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
