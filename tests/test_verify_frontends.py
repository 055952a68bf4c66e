"""`make verify-frontends` (tools/verify_frontends.py): seeded random nets built in SpikingJelly, snnTorch, lava-dl
and NIR, converted, exported and emulated, equal to the framework's own forward in every layer."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TOOL = Path(__file__).resolve().parents[1] / "tools" / "verify_frontends.py"


@pytest.fixture(scope="module")
def vf():
    spec = importlib.util.spec_from_file_location("verify_frontends", TOOL)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["verify_frontends"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_the_tool_finds_no_mismatch_on_its_first_seeds_with_lava():
    r = subprocess.run([sys.executable, str(TOOL), "--nets", "6", "--lava", "1"], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert "24 random nets over 4 front-end(s), 0 with mismatches" in lines[-1]
    assert sum(" lava [" in line for line in lines) == 4  # one net of each front-end went through Lava


@pytest.mark.parametrize("frontend", ["spikingjelly", "snntorch", "lavadl", "nir"])
def test_more_seeds_of_each_front_end_are_exact_in_every_layer(vf, frontend, tmp_path):
    for seed in range(100, 112):
        r = vf.check(frontend, seed, tmp_path)
        assert not r.bad and all(r.spikes), (seed, r)


def test_nir_plans_have_several_pools(vf):
    pools = [sum(l.kind == "pool" or bool(l.pre_pool) for l in vf.random_plan(s, "nir").layers) for s in range(40)]
    assert max(pools) >= 3 and sum(p >= 2 for p in pools) >= 15


@pytest.mark.parametrize("frontend", ["snntorch", "nir"])
def test_a_wrong_translation_is_seen_in_that_layer(vf, frontend, tmp_path):
    """The comparison can fail: one weight of the last layer changed after conversion shows up there (and the
    layers before stay equal)."""
    def tamper(blocks):
        last = [b for b in blocks if b.neuron is not None][-1]
        with torch.no_grad():
            last.synapse.weight.view(-1)[0] += 2.0
            last.neuron.v_threshold = 0.0  # so that the change reaches the spikes
    r = vf.check(frontend, 3, tmp_path, tamper=tamper)
    assert r.framework[-1] > 0 and sum(r.framework[:-1]) == 0 and r.emulate == [0] * len(r.emulate)
