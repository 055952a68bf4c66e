"""``python -m sj2lava``: the command line (:mod:`sj2lava.cli`)."""
import sys

from .cli import main

sys.exit(main())
