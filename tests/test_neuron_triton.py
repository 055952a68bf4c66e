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


def test_offsets_past_2_31_elements_are_computed_in_int64():
    """T * n >= 2^31 with n itself an i32 (T=128 steps of 2^25 neurons, 32 GiB, fits an H200): the kernels
    Triton builds for that launch index memory with 64-bit offsets, and a small launch keeps 32-bit ones.
    Read from the TTIR of the very launches the host code makes (recorded on the meta device, not run)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = (
        "import re, torch\n"
        "import sys; sys.path.insert(0, 'tools')\n"
        "import triton_aot as aot\n"
        "from triton.compiler.backends.cuda import CUDABackend\n"
        "from triton.compiler.compiler import ASTSource\n"
        "from sj2lava import neuron_triton as k\n"
        "def ttir(steps, n):\n"
        "    with k.record_launches() as rec:\n"
        "        z = torch.empty(steps, n, device='meta')\n"
        "        s = torch.empty(n, dtype=torch.int64, device='meta')\n"
        "        k.forward(z, s, 3072, 3072, 4096, s, s, True)\n"
        "        g = torch.empty(steps, n, device='meta')\n"
        "        k.backward(g, g, 0.5, 0.5, None, None, g, s.float(), g, s.float())\n"
        "    out = []\n"
        "    for kernel, args, const in rec:\n"
        "        sig, consts, attrs = aot.compile_key(kernel, args, const)\n"
        "        be = CUDABackend(('cuda', 80)); opts = be.parse_options({})\n"
        "        out.append(str(ASTSource(kernel, sig, consts, attrs).make_ir(opts)))\n"
        "    return out\n"
        "for steps, n in ((128, 1 << 25), (16, 4096)):\n"
        "    for ir in ttir(steps, n):\n"
        "        wide = bool(re.search(r'tt[.]addptr [^\\n]*, tensor<256xi64>', ir))\n"
        "        print(steps, n, 'i64' if wide else 'i32')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                       cwd=str(Path(__file__).resolve().parents[1]))
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.split("\n")
    assert lines.count(f"128 {1 << 25} i64") == 2 and lines.count("16 4096 i32") == 2, r.stdout
