"""What the multi-process test scripts (``evaluate_dist_check.py`` under torchrun, ``ddp_check.py`` under
``mp.spawn``) do at a rank's start and end, in one place."""
import faulthandler
import os

import torch.distributed as dist

HANG_S = 120
"""Seconds after which a rank that is still running dumps its Python stacks and exits with status 1."""


def watch_for_hangs() -> None:
    """A rank that hangs says where, and ends, instead of holding the test until its timeout."""
    faulthandler.dump_traceback_later(HANG_S, exit=True)


def leave() -> None:
    """End the rank once its files are written: every rank meets at a barrier (a collective after the work's own,
    so the group is shown to be in step), then exits without gloo's teardown, which in torch 2.3 hangs
    (``destroy_process_group``) or aborts (no call) in 7 of 81 two-rank runs on this project's Linux sandbox
    (gVisor, as CI)."""
    dist.barrier()
    os._exit(0)
