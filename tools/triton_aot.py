"""Compile every Triton kernel variant sj2lava's launch sites can request, ahead of time, without a GPU.

Triton compiles a kernel per signature (pointer dtypes, i32 or i64 integers) and specialisation (pointers
and integers divisible by 16, integers equal to 1, constexpr values). This tool calls the launch functions
of ``sj2lava.neuron_triton`` the way ``sj2lava.neuron`` does, over every dtype, flag and size class they accept
(sizes past 2^31 elements on the ``meta`` device, so nothing is allocated), records the launches instead of
running them, derives each compile key exactly as Triton's JIT does, and drives the CUDA backend stages
TTIR -> TTGIR -> LLIR -> PTX -> cubin (Triton's bundled ``ptxas``) for each target capability.
``triton.compile`` itself stops after the cubin, at the launcher stub, because that needs libcuda; the
stages before it need no GPU, so a compile error reaches CI on a CPU machine.

    python tools/triton_aot.py [--capabilities 80 90]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from typing import Dict, List, Tuple

import torch

if os.environ.get("TRITON_INTERPRET") == "1":  # the interpreter replaces the JIT functions this compiles
    sys.exit("triton_aot: unset TRITON_INTERPRET (it turns the kernels into interpreted functions)")

from triton.compiler.backends.cuda import CUDABackend  # noqa: E402
from triton.compiler.compiler import ASTSource  # noqa: E402

from sj2lava import neuron_triton as kernels  # noqa: E402

STAGES = ("ttir", "ttgir", "llir", "ptx", "cubin")


def _z(steps: int, n: int, dtype: torch.dtype, kind: str) -> torch.Tensor:
    if kind == "huge":
        return torch.empty(steps, n, dtype=dtype, device="meta")
    if kind == "unaligned":  # a view one element into its storage: not 16-byte aligned
        return torch.zeros(steps * n + 1, dtype=dtype)[1:].view(steps, n)
    return torch.zeros(steps, n, dtype=dtype)


# (steps, n, kind, force_i64): multi-step, single-step on one neuron (both integers equal 1), an unaligned
# view, the int64 kernels forced on a small tensor, and a real int64 size (2^31 neurons, on meta).
SIZES = [(16, 4096, "aligned", False), (1, 1, "aligned", False), (3, 37, "unaligned", False),
         (16, 4096, "aligned", True), (2, 2**31, "huge", False)]


def launch_variants() -> List[Tuple[object, tuple, dict]]:
    """The recorded launches: ``(kernel, args, constexprs)`` for every combination the launch sites take."""
    calls: List[Tuple[object, tuple, dict]] = []
    with kernels.record_launches() as rec:
        for (steps, n, kind, force), dtype, bias, store_u in itertools.product(
                SIZES, kernels.Z_DTYPES, (False, True), (False, True)):
            _forward(steps, n, kind, force, dtype, bias, store_u, keep=3072)
        for (steps, n, kind, force), keep in itertools.product(SIZES, (4095, 1, 0)):
            _forward(steps, n, kind, force, torch.float32, True, False, keep=keep)
        for (steps, n, kind, force), dtype, need_du, need_dv, g_state in itertools.product(
                SIZES, (torch.float16, torch.float32, torch.float64), (False, True), (False, True), (False, True)):
            _backward(steps, n, kind, force, dtype, need_du, need_dv, g_state)
        calls.extend(rec)
    return calls


def _forward(steps, n, kind, force, dtype, bias, store_u, keep):
    dev = "meta" if kind == "huge" else "cpu"
    state = torch.zeros(n, dtype=torch.int64, device=dev)
    kernels.FORCE_I64 = force
    try:
        kernels.forward(_z(steps, n, dtype, kind), state if bias else None, keep, keep, 64 << 6, state, state, store_u)
    finally:
        kernels.FORCE_I64 = False


def _backward(steps, n, kind, force, dtype, need_du, need_dv, g_state):
    dev = "meta" if kind == "huge" else "cpu"
    f32 = torch.zeros(n, device=dev)
    hist = _z(steps, n, torch.float32, kind) if kind != "unaligned" else torch.zeros(steps, n)
    g = torch.zeros(n, dtype=torch.float64, device=dev) if g_state else None
    kernels.FORCE_I64 = force
    try:
        kernels.backward(_z(steps, n, dtype, kind), _z(steps, n, dtype, kind), 0.75, 0.5, g, g,
                         hist if need_du else None, f32, hist if need_dv else None, f32)
    finally:
        kernels.FORCE_I64 = False


def compile_key(kernel, args: tuple, constexprs: dict):
    """``(signature, constants, attrs)`` exactly as Triton 2.3's ``JITFunction.run`` derives them."""
    values = list(args) + [constexprs[p.name] for p in kernel.params if p.is_constexpr]
    by_param = dict(zip([p for p in kernel.params if not p.is_constexpr], args))
    by_param.update({p: constexprs[p.name] for p in kernel.params if p.is_constexpr})
    ordered = [by_param[p] for p in kernel.params]
    assert len(values) == len(ordered)
    attrs = kernel._get_config(*ordered)
    constants = {p.num: v for p, v in zip(kernel.params, ordered)
                 if p.is_constexpr or p.num in attrs.equal_to_1 or v is None}
    signature = {p.num: kernel._type_of(kernel._key_of(v)) for p, v in zip(kernel.params, ordered)
                 if not p.is_constexpr}
    return signature, constants, attrs


def compile_stages(kernel, signature, constants, attrs, capability: int) -> Dict[str, int]:
    """Run every backend stage for ``sm_<capability>``; returns the size of each stage's output."""
    backend = CUDABackend(("cuda", capability))
    options = backend.parse_options({})
    stages: dict = {}
    backend.add_stages(stages, options)
    metadata = {**options.__dict__, "ids_of_folded_args": tuple(int(k) for k in attrs.ids_of_folded_args)}
    module = ASTSource(kernel, signature, constants, attrs).make_ir(options)
    sizes = {}
    for name in STAGES:
        module = stages[name](module, metadata)
        sizes[name] = len(module) if isinstance(module, (str, bytes)) else len(str(module))
        if sizes[name] == 0:
            raise RuntimeError(f"{name} stage produced nothing")
    return sizes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--capabilities", type=int, nargs="+", default=[80, 90],
                    help="CUDA compute capabilities to compile for (80 = A100, 90 = H100/H200)")
    opts = ap.parse_args(argv)
    start = time.perf_counter()
    seen, failures = {}, []
    for kernel, args, constexprs in launch_variants():
        sig, consts, attrs = compile_key(kernel, args, constexprs)
        key = (kernel.__name__, tuple(sorted(sig.items())), tuple(sorted(consts.items())),
               tuple(sorted(attrs.divisible_by_16)), tuple(sorted(attrs.equal_to_1)))
        seen.setdefault(key, (kernel, sig, consts, attrs))
    done = 0
    for kernel, sig, consts, attrs in seen.values():
        for cap in opts.capabilities:
            try:
                sizes = compile_stages(kernel, sig, consts, attrs, cap)
                done += 1
            except Exception as e:  # report every failing variant, not just the first
                failures.append(f"{kernel.__name__} sm_{cap} signature={sig} constants={consts}: "
                                f"{type(e).__name__}: {e}")
    ints = {t for _, (k, sig, _c, _a) in seen.items() for t in sig.values() if not t.startswith("*")}
    print(f"{len(seen)} variants x {len(opts.capabilities)} targets: {done} compiled to cubin, "
          f"{len(failures)} failed, integer types {sorted(ints)}, {time.perf_counter() - start:.1f} s")
    for f in failures:
        print("FAILED", f)
    if not failures:
        print(f"last cubin stages: {sizes}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
