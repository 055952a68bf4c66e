"""Fused multi-step CUBA-LIF kernels in Triton: one launch for all time steps, forward and backward.

Forward: the LIF step of :mod:`sj2lava.quant` per neuron, integer state in 1/4096, with the twins
``_rs0`` and ``_to_state`` of ``quant.rs0`` and ``quant.to_state`` (``keep = 4096 - decay``).
Backward is the recurrence of ``sj2lava.neuron._CubaLIF.backward`` (the reference), per neuron::

    g_vpre = A[t] + g_v * C[t];  g_u = g_vpre + g_u';  g_z[t] = g_u;  g_v = keep_v g_vpre;  g_u' = keep_u g_u

Used on CUDA tensors (``backend='auto'`` or ``'triton'``); on CPU the same kernels run through Triton's
interpreter (``TRITON_INTERPRET=1``), which is how the suite checks them without a GPU. This module is
imported only when a kernel may run, so ``import sj2lava`` never imports Triton.
"""
# No `from __future__ import annotations`: Triton reads the `tl.constexpr` annotations as objects.

import contextlib
import os
from typing import Optional, Tuple

import torch

_BLOCK = 256


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def available(device: torch.device) -> bool:
    """Whether the Triton kernels can run on ``device`` (a GPU, or the CPU under TRITON_INTERPRET=1)."""
    return triton is not None and (device.type == "cuda" or interpreted())


try:  # Triton's interpreter needs triton.language among the kernels' module globals
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton ships with torch's Linux wheels
    triton = None


def _complete_interpreter() -> None:
    # Triton 2.3.1's interpreter builder lacks the float64 type constructor that the float64 kernels
    # (and any cast to float64) ask for; its numpy type table already maps float64. Compiled kernels
    # do not go through this builder (they are checked by the ahead-of-time compile test).
    from triton.runtime import interpreter

    if not hasattr(interpreter.Builder, "get_double_ty"):
        interpreter.Builder.get_double_ty = lambda self: tl.float64


def twin(rule: str, x: torch.Tensor) -> torch.Tensor:
    """The kernels' own ``_rs0`` (``rule='rs0'``, int64 ``x``) or ``_to_state`` (``'to_state'``, float ``x``)
    on ``x``: the Triton twins of :mod:`sj2lava.quant`'s rules, for the edge-case test."""
    _kernels()
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.int64, device=x.device)
    n = x.numel()
    _probe[_grid(n)](x, out, n, RULE=("rs0", "to_state").index(rule), BLOCK=_BLOCK)
    return out


def _kernels():
    if triton is None:
        raise ImportError("the fused kernels need Triton (pip install triton)")
    if interpreted():
        _complete_interpreter()
    return _fwd, _bwd


if triton is not None:

    @triton.jit
    def _rs0(p):
        # quant.rs0(p, 12): the arithmetic shift rounds down, so negatives first get 4095 added
        return (p + ((p >> 63) & 4095)) >> 12

    @triton.jit
    def _to_state(z):
        # quant.to_state: floor(4096 z + 0.5), floor written as trunc minus one below zero (the
        # interpreter has no floor). 4096 z is exact, so an FMA of the two changes nothing.
        if z.dtype != tl.float64:
            z = z.to(tl.float32)
        x = z * 4096.0 + 0.5
        zi = x.to(tl.int64)
        return zi - (zi.to(x.dtype) > x).to(tl.int64)

    @triton.jit
    def _offsets(I64: tl.constexpr, BLOCK: tl.constexpr):
        # this program's neurons; with I64 every index product is int64 (offsets past 2^31 elements)
        if I64:
            offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        else:
            offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        return offs

    @triton.jit
    def _row(t, n, offs, I64: tl.constexpr, BLOCK: tl.constexpr):
        # step t's elements t * n + offs; with I64, t * n as an int64 vector (the interpreter's loop
        # index is a Python int, the compiler's an i32 scalar)
        if I64:
            row = (tl.zeros([BLOCK], dtype=tl.int64) + t) * n + offs
        else:
            row = t * n + offs
        return row

    @triton.jit
    def _probe(x_ptr, out_ptr, n, RULE: tl.constexpr, BLOCK: tl.constexpr):
        # the rules above on an array (RULE 0: _rs0 of int64, 1: _to_state of floats), for the test that
        # runs every twin of sj2lava.quant on the same boundary values
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        m = offs < n
        x = tl.load(x_ptr + offs, mask=m)
        if RULE == 0:
            tl.store(out_ptr + offs, _rs0(x), mask=m)
        else:
            tl.store(out_ptr + offs, _to_state(x), mask=m)

    @triton.jit
    def _fwd(z_ptr, b_ptr, u0_ptr, v0_ptr, s_ptr, vpre_ptr, uh_ptr, uT_ptr, vT_ptr,
            n, steps, keep_u, keep_v, th,
            HAS_BIAS: tl.constexpr, STORE_U: tl.constexpr, I64: tl.constexpr, BLOCK: tl.constexpr):
        offs = _offsets(I64, BLOCK)
        m = offs < n
        u = tl.load(u0_ptr + offs, mask=m, other=0)
        v = tl.load(v0_ptr + offs, mask=m, other=0)
        if HAS_BIAS:
            b = tl.load(b_ptr + offs, mask=m, other=0)
        for t in range(steps):
            row = _row(t, n, offs, I64, BLOCK)
            z = tl.load(z_ptr + row, mask=m, other=0.0)
            u = _rs0(u * keep_u) + _to_state(z)  # the LIF step of sj2lava.quant
            v = _rs0(v * keep_v) + u
            if HAS_BIAS:
                v = v + b
            v = tl.where(v > 8388607, 8388607, tl.where(v < -8388607, -8388607, v))  # quant.clip_state
            fired = v > th
            tl.store(vpre_ptr + row, v, mask=m)
            tl.store(s_ptr + row, fired.to(tl.float32), mask=m)
            if STORE_U:
                tl.store(uh_ptr + row, u, mask=m)
            v = tl.where(fired, 0, v)
        tl.store(uT_ptr + offs, u, mask=m)
        tl.store(vT_ptr + offs, v, mask=m)

    @triton.jit
    def _bwd(a_ptr, c_ptr, gz_ptr, gu_ptr, gv_ptr, uh_ptr, u0_ptr, vh_ptr, v0_ptr, gb_ptr, gau_ptr, gav_ptr,
            n, steps, keep_u, keep_v,
            NEED_DU: tl.constexpr, NEED_DV: tl.constexpr, I64: tl.constexpr, BLOCK: tl.constexpr):
        # Accumulates in the gradients' dtype (float32, or float64 for float64 models).
        offs = _offsets(I64, BLOCK)
        m = offs < n
        gu = tl.load(gu_ptr + offs, mask=m, other=0.0)
        gv = tl.load(gv_ptr + offs, mask=m, other=0.0)
        gb = tl.zeros_like(gu)
        gau = tl.zeros_like(gu)
        gav = tl.zeros_like(gu)
        u_init = tl.load(u0_ptr + offs, mask=m, other=0.0)
        v_init = tl.load(v0_ptr + offs, mask=m, other=0.0)
        for i in range(steps):
            t = steps - 1 - i
            row = _row(t, n, offs, I64, BLOCK)
            prev = row - n
            a = tl.load(a_ptr + row, mask=m, other=0.0)
            c = tl.load(c_ptr + row, mask=m, other=0.0)
            gvp = a + gv * c
            gb += gvp
            if NEED_DV:  # v after reset at t-1 (the initial state at t = 0); masked, not branched
                vprev = tl.load(vh_ptr + prev, mask=m & (t > 0), other=0.0)
                gav += gvp * tl.where(t > 0, vprev, v_init)
            gv = keep_v * gvp
            g = gvp + gu
            tl.store(gz_ptr + row, g, mask=m)
            if NEED_DU:
                uprev = tl.load(uh_ptr + prev, mask=m & (t > 0), other=0.0)
                gau += g * tl.where(t > 0, uprev, u_init)
            gu = keep_u * g
        tl.store(gu_ptr + offs, gu, mask=m)
        tl.store(gv_ptr + offs, gv, mask=m)
        tl.store(gb_ptr + offs, gb, mask=m)
        tl.store(gau_ptr + offs, gau, mask=m)
        tl.store(gav_ptr + offs, gav, mask=m)


FORCE_I64 = False
"""Take the int64-offset kernels even for small tensors (tests and the ahead-of-time compile use it)."""

_I32_LIMIT = 2**31 - 1


def _needs_i64(steps: int, n: int) -> bool:
    # The largest offset a kernel forms is (steps - 1) * n plus one block past n.
    return FORCE_I64 or steps * n + _BLOCK > _I32_LIMIT


def _grid(n: int):
    return ((n + _BLOCK - 1) // _BLOCK,)


_recording: Optional[list] = None


def _launch(kernel, n: int, *args, **constexprs) -> None:
    """Every launch goes through here, so that :func:`record_launches` can collect the exact argument
    lists (hence the signatures and specialisations Triton would compile) without running anything."""
    if _recording is not None:
        _recording.append((kernel, args, dict(constexprs, BLOCK=_BLOCK)))
        return
    kernel[_grid(n)](*args, **constexprs, BLOCK=_BLOCK)


@contextlib.contextmanager
def record_launches():
    """Collect ``(kernel, args, constexprs)`` of each launch instead of launching (tensors may be on the
    ``meta`` device, so sizes past 2^31 elements cost nothing). Used by the ahead-of-time compile check."""
    global _recording
    outer, _recording = _recording, []
    try:
        yield _recording
    finally:
        _recording = outer


Z_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def forward(z: torch.Tensor, bias_state: Optional[torch.Tensor], keep_u: int, keep_v: int, th: int,
            u0: torch.Tensor, v0: torch.Tensor, store_u: bool):
    """All steps at once. ``z`` [T, *] float (any of :data:`Z_DTYPES`, read as it is); ``bias_state``
    broadcast to one step, in state units (int64); ``u0``, ``v0`` int64 state. Returns spikes (float32),
    v before reset and u per step (int64), final u, v."""
    fwd, _ = _kernels()
    steps = z.shape[0]
    zc = z.detach()
    if zc.dtype not in Z_DTYPES:
        zc = zc.float()
    zc = zc.contiguous()
    n = zc[0].numel()
    dev = z.device
    spikes = torch.empty(zc.shape, dtype=torch.float32, device=dev)
    v_pre = torch.empty(zc.shape, dtype=torch.int64, device=dev)
    u_hist = torch.empty(zc.shape, dtype=torch.int64, device=dev) if store_u else v_pre
    u_t = torch.empty(zc.shape[1:], dtype=torch.int64, device=dev)
    v_t = torch.empty_like(u_t)
    b = bias_state.expand(zc.shape[1:]).contiguous() if bias_state is not None else u_t
    _launch(fwd, n, zc, b, u0.contiguous(), v0.contiguous(), spikes, v_pre, u_hist, u_t, v_t,
            n, steps, keep_u, keep_v, th,
            HAS_BIAS=bias_state is not None, STORE_U=store_u, I64=_needs_i64(steps, n))
    return spikes, v_pre, (u_hist if store_u else None), u_t, v_t


def backward(a_term: torch.Tensor, c_term: torch.Tensor, keep_u: float, keep_v: float,
             g_uT: Optional[torch.Tensor], g_vT: Optional[torch.Tensor],
             u_hist: Optional[torch.Tensor], u0: torch.Tensor, v_hist: Optional[torch.Tensor], v0: torch.Tensor
             ) -> Tuple[torch.Tensor, ...]:
    """Backward through time; returns g_z [T, *], g_u0, g_v0 and per-neuron sums for the bias and decay
    gradients (the caller reduces them). Computed in float64 for float64 gradients, else in float32.

    Every buffer the kernel indexes as ``t * n + i`` is made contiguous here: upstream gradients are
    often views (a loss on ``spikes.permute(...)``), and the output is allocated fresh, never
    ``empty_like`` of a strided input."""
    _, bwd = _kernels()
    steps = a_term.shape[0]
    n = a_term[0].numel()
    dev = a_term.device
    acc = torch.float64 if a_term.dtype == torch.float64 else torch.float32
    a = a_term.to(acc).contiguous()
    c = c_term.to(acc).contiguous()
    gz = torch.empty(a.shape, dtype=acc, device=dev)
    state = lambda g: (g.to(acc).contiguous().clone() if g is not None  # noqa: E731
                       else torch.zeros(a.shape[1:], dtype=acc, device=dev))
    gu, gv = state(g_uT), state(g_vT)
    gb, gau, gav = (torch.empty(a.shape[1:], dtype=acc, device=dev) for _ in range(3))
    uh = u_hist.contiguous() if u_hist is not None else a
    vh = v_hist.contiguous() if v_hist is not None else a
    _launch(bwd, n, a, c, gz, gu, gv, uh, u0.float().contiguous(), vh,
            v0.float().contiguous(), gb, gau, gav, n, steps, float(keep_u), float(keep_v),
            NEED_DU=u_hist is not None, NEED_DV=v_hist is not None, I64=_needs_i64(steps, n))
    return gz, gu, gv, gb, gau, gav
