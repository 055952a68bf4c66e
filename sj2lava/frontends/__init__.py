"""Everything that names another framework: SpikingJelly, snnTorch, lava-dl and NIR.

Each module registers what it recognises through one :class:`sj2lava.convert.Frontend` (its neuron and
synapse rules, block readers, dropouts, recurrences, exporters and sigma-delta readers), so the core never
names a framework; adding a framework is one file here.
None of them imports its framework at import time: objects are recognised by their module path.
"""
