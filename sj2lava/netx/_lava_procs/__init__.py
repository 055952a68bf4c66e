"""Lava processes of sj2lava's own, one module each (imported only where Lava is installed).

They live in a package of their own because Lava's compiler, looking for a process's models, executes every
module in the directory of the process's module as a standalone script.
"""
