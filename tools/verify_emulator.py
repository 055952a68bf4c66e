"""Compare sj2lava.emulate with Lava (Loihi2SimCfg fixed_pt) on seeded random NetX networks.

    python tools/verify_emulator.py [--nets 200] [--first-seed 0]

Every synaptic layer's spikes must be identical; prints one line per net and a summary; exits 1 on
any mismatch. (The suite runs a small subset of the same seeds.)
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sj2lava import run_lava
from sj2lava.emulator import emulate
from sj2lava.netx import hdf5
from sj2lava.netx.random_nets import random_spec


def check(seed: int, folder: Path):
    spec = random_spec(seed)
    path = hdf5.write(spec, folder / f"net{seed}.net")
    rng = np.random.default_rng(10_000 + seed)
    steps = int(rng.integers(8, 21))
    x = torch.from_numpy((rng.random((steps, 2, *spec.input_shape)) < rng.uniform(0.1, 0.7)).astype(np.float32))
    lava = run_lava(path, x, all_layers=True)
    emu = emulate(path, x, record=("spikes", "layer_spikes"))["layer_spikes"]
    mism = [int((a != b).sum()) for a, b in zip(emu, lava)]
    kinds = "+".join(("dense_rec" if getattr(l, "weight_rec", None) is not None else l.kind) for l in spec.layers)
    return kinds, [int(s.sum()) for s in lava], mism


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nets", type=int, default=200)
    ap.add_argument("--first-seed", type=int, default=0)
    args = ap.parse_args(argv)
    bad, spikes, t0 = 0, 0, time.time()
    with tempfile.TemporaryDirectory() as d:
        for seed in range(args.first_seed, args.first_seed + args.nets):
            kinds, counts, mism = check(seed, Path(d))
            spikes += sum(counts)
            bad += sum(mism) > 0
            print(f"net {seed:4d} {kinds:<40s} spikes {counts} mismatches {mism}", flush=True)
    print(f"{args.nets} random nets, {spikes:,} Lava spikes compared, {bad} nets with mismatches, "
          f"{time.time() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
