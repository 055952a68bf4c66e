"""The fused Triton CUBA kernels equal the torch reference: spikes and states exactly, gradients to float
rounding; over random shapes, decays (0..1), thresholds (incl. >= 64), biases and T up to 256.

On CPU (CI) the kernels run through Triton's interpreter (TRITON_INTERPRET=1, set before Triton compiles,
hence the subprocess); on a GPU the same check runs on CUDA tensors.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def test_triton_kernels_equal_reference_in_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    r = subprocess.run([sys.executable, str(Path(__file__).with_name("kernel_check.py"))], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.strip().endswith("ALL OK")
    assert r.stdout.count("spikes identical") == 15
    for variant in ("float64", "float16", "permuted=True", "i64=True", "single_step=True", "analog=True"):
        assert variant in r.stdout


def test_every_kernel_variant_compiles_to_cubin_for_sm80_and_sm90():
    """Ahead of time, without a GPU: each signature and specialisation a launch site can request (float16/32/
    64 inputs, bias, stored currents, decay gradients, i32 and i64 sizes, single-step) through TTIR, TTGIR,
    LLIR, PTX and cubin for sm_80 and sm_90 (tools/triton_aot.py)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    tool = Path(__file__).resolve().parents[1] / "tools" / "triton_aot.py"
    r = subprocess.run([sys.executable, str(tool), "--capabilities", "80", "90"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = r.stdout.splitlines()[0]
    variants = int(summary.split()[0])
    assert variants >= 100 and f"{2 * variants} compiled to cubin, 0 failed" in summary, summary
    assert "'i32'" in summary and "'i64'" in summary, summary


def test_backend_choice():
    from sj2lava import CubaLIFNode
    from sj2lava.neuron import _resolve_backend

    cpu = torch.zeros(2, 3)
    assert _resolve_backend("auto", cpu) == "torch"  # CPU tensors keep the reference path
    with pytest.raises(ValueError, match="backend"):
        _resolve_backend("cupy", cpu)
    if "TRITON_INTERPRET" not in os.environ:
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
            _resolve_backend("triton", cpu)
    node = CubaLIFNode(0.5, 0.5, backend="torch", step_mode="m")
    assert node(torch.ones(3, 2, 4)).shape == (3, 2, 4)
