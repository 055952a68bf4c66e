"""Every ```python block of CONTRIBUTING.md runs (the toy framework), in a fresh interpreter: its neuron rule is
registered for the whole process, which must not leak into the other tests."""
import re
import subprocess
import sys
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[1] / "CONTRIBUTING.md"


def test_the_toy_framework_of_contributing_converts_exactly(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert blocks, "CONTRIBUTING.md has no python block"
    code = "\n".join(blocks) + "\nprint('spikes', sum(report.stage('emulator').spikes))\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert int(r.stdout.split("spikes")[-1]) > 0  # the toy net spikes, so its equality means something
