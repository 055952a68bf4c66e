"""Every example runs (on tiny settings) and reports success."""
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script,args", [("quickstart.py", ["--steps", "12", "--batch", "2"])])
def test_example_runs(script, args):
    r = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "equal to lava-dl: True; equal to Lava: True" in r.stdout
