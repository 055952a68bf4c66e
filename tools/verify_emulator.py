"""Compare sj2lava.emulate with Lava (Loihi2SimCfg fixed_pt) on seeded random NetX networks.

    python tools/verify_emulator.py [--nets 200] [--first-seed 0]

Every synaptic layer's spikes must be identical; prints one line per net and a summary; exits 1 on
any mismatch. Besides the layer corners of ``random_spec``, the nets include axonal delays (0..62, so
each such net runs past its longest delay), input neurons driven by bias images and graded ``a_in``,
sigma-delta (SDNN) layers with graded messages (Delta inputs taking graded values, Sigma outputs, CUBA
layers between), resonate-and-fire layers (complex dense, RF and RF_IZ), and NetX's periodic reset, each
drawn per seed. (The suite runs the same kinds of nets
in tests.)
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
from sj2lava.netx.spec import InputNeurons


def check(seed: int, folder: Path):
    spec = random_spec(seed, delays=0.5, inputs=0.25, sdnn=0.3, rf=0.3)
    path = hdf5.write(spec, folder / f"net{seed}.net")
    rng = np.random.default_rng(10_000 + seed)
    longest = max([int(l.delay.max()) for l in spec.layers if getattr(l, "delay", None) is not None], default=0)
    steps = int(rng.integers(8, 21)) + longest
    x = torch.from_numpy((rng.random((steps, 2, *spec.input_shape)) < rng.uniform(0.1, 0.7)).astype(np.float32))
    kw = {}
    if spec.graded_input:  # SDNN Delta input neurons take graded values
        x = torch.from_numpy(rng.integers(-20, 41, (steps, 2, *spec.input_shape))) * (x > 0)
    elif isinstance(spec.layers[0], InputNeurons):  # a bias image per sample, and graded a_in on some nets
        kw["input_bias"] = torch.from_numpy(rng.integers(-50, 400, (2, *spec.input_shape)))
        x = x * int(rng.choice([0, 1, 5]))
    if rng.random() < 0.3:
        kw.update(reset_interval=int(rng.integers(2, 10)), reset_offset=int(rng.integers(0, 6)))
    lava = run_lava(path, x, all_layers=True, **kw)
    emu = emulate(path, x, record=("spikes", "layer_spikes"), **kw)["layer_spikes"]
    mism = [int((a.long() != b.long()).sum()) for a, b in zip(emu, lava)]
    names = [("dense_rec" if getattr(l, "weight_rec", None) is not None else l.kind)
             + ("(delay)" if getattr(l, "delay", None) is not None else "")
             + (f"({l.neuron.role})" if l.kind != "flatten" and l.neuron.graded else "")
             + ("(rf)" if l.kind != "flatten" and l.neuron.kind == "rf" else "") for l in spec.layers]
    if "reset_interval" in kw:
        names.append(f"reset{kw['reset_interval']}")
    return "+".join(names), [int((s != 0).sum()) for s in lava], mism


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
    print(f"{args.nets} random nets, {spikes:,} Lava spikes and non-zero messages compared, {bad} nets with "
          "mismatches, "
          f"{time.time() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
