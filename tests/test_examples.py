"""Every example runs (on tiny settings) and reports success."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


CASES = {
    "quickstart.py": (["--steps", "12", "--batch", "2"], "equal to lava-dl: True; equal to Lava: True"),
    "lava_mnist.py": (["--synthetic", "--epochs", "1", "--train-samples", "64", "--test-samples", "8",
                       "--lava-samples", "2", "--steps", "8", "--out", "{tmp}/m.net"], "0 mismatches"),
    "convert_spikingjelly.py": (["--epochs", "1", "--train-samples", "96", "--test-samples", "16",
                                 "--lava-samples", "2", "--out", "{tmp}/sj.net"], "0 mismatches"),
    "inspect_net.py": (["--example", "{tmp}/ex.net"], "synaptic layers"),
}


@pytest.mark.parametrize("script", list(CASES))
def test_example_runs(script, tmp_path):
    args, expect = CASES[script]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert expect in r.stdout


def test_lava_mnist_says_how_to_get_the_data(tmp_path):
    r = subprocess.run([sys.executable, str(EXAMPLES / "lava_mnist.py"), "--data", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "MNIST not found" in r.stderr and "--synthetic" in r.stderr
