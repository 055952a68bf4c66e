"""Everything that names another framework: SpikingJelly, snnTorch, lava-dl and NIR.

Each module registers what it recognises with the core's registries (neuron rules in
:mod:`sj2lava.neuron`, synapse rules in :mod:`sj2lava.synapses`, block readers in
:mod:`sj2lava.convert`), so the core never names a framework; adding a framework is one file here.
None of them imports its framework at import time: objects are recognised by their module path.
"""
