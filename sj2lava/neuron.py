"""The quantization-aware CUBA-LIF neuron of Loihi, and conversions into and out of it.

One step of the neuron is the LIF step written out in :mod:`sj2lava.quant`, in integer state units
(1/4096), exactly as lava-dl and Lava compute it; here the synaptic input ``a << 6`` is
``quant.to_state(z)`` of the float input ``z`` (a weight of 1.0 is 64 mantissa units), decays are
rounded to 1/4096 and the threshold floored to 1/64. Gradients use a surrogate derivative of the
spike, as in SpikingJelly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, Union, cast

import torch
from torch import nn

from . import quant
from ._alloc import keep_freed_memory
from .errors import UnsupportedLayerError

__all__ = [
    "Sigmoid",
    "CubaLIFNode",
    "cuba_lif",
    "to_cuba",
    "NeuronRule",
    "register_neuron",
    "is_neuron",
    "unsupported_neuron",
]


# --------------------------------------------------------------------------- surrogate
class _SigmoidSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * _sigmoid_derivative(x, ctx.alpha), None


def _sigmoid_derivative(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha * sig(alpha x) * (1 - sig(alpha x))`` in three in-place passes."""
    sg = torch.sigmoid(x * alpha)
    return torch.addcmul(sg, sg, sg, value=-1.0).mul_(alpha)


class Sigmoid(nn.Module):
    """Heaviside step with the sigmoid surrogate derivative ``alpha * sig(alpha x) * (1 - sig(alpha x))``.

    The same function as SpikingJelly's ``surrogate.Sigmoid`` (its default ``alpha=4``), so that
    sj2lava needs no SpikingJelly install. Any SpikingJelly surrogate, or any elementwise callable
    whose forward is a step and whose autograd gives the surrogate derivative, can be used instead.
    """

    def __init__(self, alpha: float = 4.0):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SigmoidSpike.apply(x, self.alpha)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """The surrogate derivative at ``x``, in closed form (the fused neuron's backward calls this
        rather than differentiating the forward through autograd)."""
        return _sigmoid_derivative(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


def _surrogate_derivative(surrogate: Callable, x: torch.Tensor) -> torch.Tensor:
    """d surrogate(x) / dx for an elementwise surrogate, for every element of ``x`` at once: its closed form
    where the surrogate offers one (``derivative``), else through autograd on the surrogate itself."""
    closed = getattr(surrogate, "derivative", None)
    if callable(closed):
        return closed(x)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        y = surrogate(x)
        (d,) = torch.autograd.grad(y, x, torch.ones_like(y))
    return d


# --------------------------------------------------------------------------- fused dynamics
class _CubaLIF(torch.autograd.Function):
    """All time steps of the CUBA-LIF neuron in one autograd node.

    Forward is integer arithmetic (float64 tensors holding integers). Backward is
    backpropagation through time of the float relaxation
    ``u = a_u u + z``, ``v = a_v v + u + b``, ``s = H(v - th)``, ``v = v (1 - s)`` with the
    surrogate derivative for ``dH`` and straight-through rounding.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        z: torch.Tensor,  # [T, N, *] synaptic input, float units
        bias: Optional[torch.Tensor],  # broadcastable to [N, *], on the 1/64 grid
        di: torch.Tensor,  # current decay, integer-valued float, 1/4096
        dv: torch.Tensor,  # voltage decay, integer-valued float, 1/4096
        u0: torch.Tensor,  # [N, *] float64 state in float units
        v0: torch.Tensor,
        th_mant: int,
        surrogate: Callable,
        detach_reset: bool,
        record: bool,
        backend: str,
    ):
        ctx.set_materialize_grads(False)
        keep_u = (quant.P_SCALE - di.detach().double()) / quant.P_SCALE
        keep_v = (quant.P_SCALE - dv.detach().double()) / quant.P_SCALE
        need_du, need_dv = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        if backend == "triton":
            fired, v_pre, zi, u, v = _forward_triton(z, bias, di, dv, u0, v0, th_mant, need_du or record)
        else:
            fired, v_pre, zi, u, v = _forward_torch(z, bias, keep_u, keep_v, u0, v0, th_mant)
        spikes = fired.to(z.dtype)
        v_post = v_pre.masked_fill(fired, 0.0) if (need_dv or record) else None
        # float32 copies for the backward pass; scaling by 2^-12 after rounding equals rounding after it
        scaled = lambda a: a.float().mul_(1.0 / quant.S_SCALE)  # noqa: E731
        ctx.th = th_mant / quant.W_SCALE
        ctx.surrogate = surrogate
        ctx.detach_reset = detach_reset
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.leaks = (bool((keep_u != 0).any()), bool((keep_v != 1).any()))
        ctx.backend = backend
        ctx.save_for_backward(
            scaled(v_pre), spikes, keep_u.float(), keep_v.float(),
            u0.detach().float(), v0.detach().float(),
            scaled(zi) if need_du else None,
            scaled(v_post) if need_dv else None,
        )
        if record:
            assert zi is not None and v_post is not None  # both backends keep them when recording
            u_seq, v_seq = zi / quant.S_SCALE, v_post / quant.S_SCALE
            ctx.mark_non_differentiable(u_seq, v_seq)
        else:
            u_seq = v_seq = torch.empty(0, device=z.device)
        return spikes, u / quant.S_SCALE, v / quant.S_SCALE, u_seq, v_seq

    @staticmethod
    def backward(ctx, g_spikes, g_uT, g_vT, _g_useq, _g_vseq):  # type: ignore[override]
        v_pre, spikes, keep_u, keep_v, u0, v0, u_hist, v_hist = ctx.saved_tensors
        if g_spikes is None:
            g_spikes = torch.zeros_like(spikes)
        dsdv = _surrogate_derivative(ctx.surrogate, v_pre - ctx.th).to(g_spikes.dtype)
        # dL/dv_pre[t] = A[t] + dL/dv[t] * C[t]   (v[t] = v_pre[t] (1 - s[t]), s = H(v_pre - th))
        a_term = g_spikes * dsdv
        c_term = 1.0 - spikes
        if not ctx.detach_reset:
            c_term.addcmul_(v_pre, dsdv, value=-1.0)
        if ctx.backend == "triton":
            return _backward_triton(ctx, a_term, c_term, keep_u, keep_v, g_uT, g_vT, u0, v0, u_hist, v_hist)
        return _backward_torch(ctx, a_term, c_term, keep_u, keep_v, g_uT, g_vT, u0, v0, u_hist, v_hist)


def _backward_torch(ctx, a_term, c_term, keep_u, keep_v, g_uT, g_vT, u0, v0, u_hist, v_hist):
    """The reverse loop over steps: ``dL/dz`` and the bias, decay and initial-state gradients (in 1/4096)."""
    u_leaks, v_leaks = ctx.leaks
    need_du, need_dv = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
    g_z = torch.empty_like(a_term)
    gu = None if g_uT is None else g_uT.to(a_term.dtype)  # dL/du[t] from step t+1
    gv = None if g_vT is None else g_vT.to(a_term.dtype)  # dL/dv[t] from step t+1
    g_bias = torch.zeros_like(a_term[0]) if ctx.bias_shape is not None else None
    ga_u = torch.zeros((), dtype=a_term.dtype, device=a_term.device)
    ga_v = torch.zeros_like(ga_u)
    for t in range(a_term.shape[0] - 1, -1, -1):
        gvp = g_z[t]
        if gv is None:
            gvp.copy_(a_term[t])
        else:
            torch.addcmul(a_term[t], gv, c_term[t], out=gvp)
        if g_bias is not None:
            g_bias += gvp
        if need_dv:
            ga_v += (gvp * (v_hist[t - 1] if t > 0 else v0)).sum()
        if v_leaks:
            gv = gvp * keep_v
        else:  # gvp becomes dL/du below; keep dL/dv apart when they differ
            gv = gvp.clone() if gu is not None else gvp
        if gu is not None:
            gvp.add_(gu)  # g_z[t] = dL/du[t] = dL/dz[t]
        if need_du:
            ga_u += (gvp * (u_hist[t - 1] if t > 0 else u0)).sum()
        gu = gvp * keep_u if u_leaks else None
    g_b = g_bias.sum_to_size(ctx.bias_shape) if g_bias is not None else None
    # a = 1 - d/4096  =>  dL/dd = -dL/da / 4096
    g_di = (-ga_u / quant.P_SCALE).reshape(keep_u.shape) if need_du else None
    g_dv = (-ga_v / quant.P_SCALE).reshape(keep_v.shape) if need_dv else None
    g_u0 = None if gu is None else gu.double()
    g_v0 = None if gv is None else gv.double()
    return (g_z if ctx.needs_input_grad[0] else None, g_b, g_di, g_dv, g_u0, g_v0, None, None, None, None, None)


def _forward_torch(z, bias, keep_u, keep_v, u0, v0, th_mant):
    """The reference loop, on float64 tensors holding integers. Returns (fired, v before reset,
    u per step, final u, final v), states in 1/4096 units."""
    u_leaks = bool((keep_u != 0).any())  # iDecay = 4096: u is just this step's input
    v_leaks = bool((keep_v != 1).any())  # vDecay = 0: v does not decay (IF)
    bi = None if bias is None else (bias.detach().double() * quant.S_SCALE)
    th = float(quant.threshold_state(th_mant))
    # u[t] overwrites zi[t] in place, so zi ends as the current history.
    zi = quant.to_state(z)
    v_pre = torch.empty(z.shape, dtype=torch.float64, device=z.device)
    fired = torch.empty(z.shape, dtype=torch.bool, device=z.device)
    u = u0.detach().double() * quant.S_SCALE
    v = v0.detach().double() * quant.S_SCALE
    for t in range(z.shape[0]):
        # quant.decay_step inlined for float64 integers: trunc(x * (4096 - d) / 4096).
        if u_leaks:
            zi[t].add_(torch.trunc(u * keep_u))
        u = zi[t]
        vp = v_pre[t]
        if v_leaks:
            torch.mul(v, keep_v, out=vp).trunc_().add_(u)
        else:
            torch.add(v, u, out=vp)
        if bi is not None:
            vp.add_(bi)
        vp.clamp_(-quant.STATE_MAX, quant.STATE_MAX)  # quant.clip_state: Lava saturates v (it never wraps)
        torch.gt(vp, th, out=fired[t])
        v = vp.masked_fill(fired[t], 0.0)
    return fired, v_pre, zi, u, v


def _forward_triton(z, bias, di, dv, u0, v0, th_mant, store_u):
    """The fused kernel (sj2lava.neuron_triton); same outputs as _forward_torch, from int64 state."""
    from . import neuron_triton as kernels

    to_int = lambda x: torch.round(x.detach().double() * quant.S_SCALE).to(torch.int64)  # noqa: E731
    bias_state = None if bias is None else to_int(bias)
    spikes, v_pre, u_hist, u, v = kernels.forward(
        z, bias_state, int(quant.P_SCALE - di.detach().reshape(-1)[0]), int(quant.P_SCALE - dv.detach().reshape(-1)[0]),
        quant.threshold_state(th_mant), to_int(u0), to_int(v0), store_u)
    zi = u_hist.double() if u_hist is not None else None
    return spikes.bool(), v_pre.double(), zi, u.double(), v.double()


def _backward_triton(ctx, a_term, c_term, keep_u, keep_v, g_uT, g_vT, u0, v0, u_hist, v_hist):
    from . import neuron_triton as kernels

    need_du, need_dv = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
    g_z, gu, gv, gb, gau, gav = kernels.backward(
        a_term, c_term, float(keep_u.reshape(-1)[0]), float(keep_v.reshape(-1)[0]), g_uT, g_vT,
        u_hist if need_du else None, u0, v_hist if need_dv else None, v0)
    g_b = gb.sum_to_size(ctx.bias_shape) if ctx.bias_shape is not None else None
    g_di = (-gau.sum() / quant.P_SCALE).reshape(keep_u.shape) if need_du else None
    g_dv = (-gav.sum() / quant.P_SCALE).reshape(keep_v.shape) if need_dv else None
    return (g_z.to(a_term.dtype) if ctx.needs_input_grad[0] else None, g_b, g_di, g_dv,
            gu.double(), gv.double(), None, None, None, None, None)


def cuba_lif(
    z: torch.Tensor,
    current_decay: torch.Tensor,
    voltage_decay: torch.Tensor,
    threshold_mant: int,
    *,
    bias: Optional[torch.Tensor] = None,
    state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
    surrogate_function: Optional[Callable] = None,
    detach_reset: bool = False,
    record: bool = False,
    backend: str = "auto",
):
    """Functional multi-step CUBA-LIF (the equations in the module docstring).

    Args:
        z: synaptic input ``[T, N, *]`` in float units (binary spikes times weights on 2/64).
        current_decay, voltage_decay: stored decay parameters in 1/4096 (rounded here, STE).
        threshold_mant: ``vThMant`` (see :func:`sj2lava.quant.threshold_mant`).
        bias: float bias added to ``v`` each step, broadcastable to ``z[0]``; quantized to 1/64.
        state: ``(u, v)`` at ``t = -1`` in float units (float64), default zeros.
        surrogate_function: elementwise step with a surrogate gradient (default :class:`Sigmoid`).
        detach_reset: cut the gradient through the reset ``v (1 - s)``.
        record: also return the current and (after reset) voltage of every step.
        backend: ``'torch'`` (the reference loop), ``'triton'`` (the fused kernels of
            :mod:`sj2lava.neuron_triton`: CUDA, or the CPU under ``TRITON_INTERPRET=1``) or ``'auto'``
            (Triton for CUDA tensors when it is installed). Both give the same spikes and states.

    Returns:
        ``(spikes [T, N, *], (u, v) final state)`` and, with ``record``, ``(u_seq, v_seq)``.
    """
    if z.dim() < 2:
        raise ValueError(f"cuba_lif expects [T, N, *] input, got shape {tuple(z.shape)}")
    sg = surrogate_function if surrogate_function is not None else Sigmoid()
    if state is None:
        zeros = torch.zeros(z.shape[1:], dtype=torch.float64, device=z.device)
        state = (zeros, zeros)
    di = quant.quantize_decay(current_decay)
    dv = quant.quantize_decay(voltage_decay)
    b = None if bias is None else quant.quantize_bias(bias)
    if not z.is_cuda and z.requires_grad and torch.is_grad_enabled():  # training on the CPU: see sj2lava._alloc
        keep_freed_memory()
    spikes, u, v, u_seq, v_seq = _CubaLIF.apply(
        z, b, di, dv, state[0], state[1], int(threshold_mant), sg, bool(detach_reset), bool(record),
        _resolve_backend(backend, z),
    )
    if record:
        return spikes, (u, v), (u_seq, v_seq)
    return spikes, (u, v)


def check_step_mode(value: str) -> str:
    """SpikingJelly's step modes: ``'s'`` (one step per call) or ``'m'`` (``[T, N, *]`` per call)."""
    if value not in ("s", "m"):
        raise ValueError(f"step_mode must be 's' or 'm', got {value!r}")
    return value


def _resolve_backend(backend: str, z: torch.Tensor) -> str:
    if backend not in ("auto", "torch", "triton"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'triton', got {backend!r}")
    if backend == "torch" or (backend == "auto" and not z.is_cuda):
        return "torch"  # decided without importing Triton
    from . import neuron_triton as kernels

    ok = kernels.available(z.device)
    if backend == "triton" and not ok:
        raise RuntimeError("backend='triton' needs Triton and a CUDA tensor (or TRITON_INTERPRET=1 to run the "
                           "kernels on the CPU through Triton's interpreter)")
    return "triton" if ok and (backend == "triton" or z.is_cuda) else "torch"


# --------------------------------------------------------------------------- learned decays
def _clamp_decay_(p: torch.Tensor) -> None:
    # .data: no autograd version bump, so graphs built before (which saw in-range values) stay valid
    if bool(((p.data < 0) | (p.data > quant.P_SCALE)).any()):
        p.data.clamp_(0, quant.P_SCALE)


_DECAY_TAG = "_sj2lava_decay"
_step_hook = None


def _clamp_after_step(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    """Global ``torch.optim`` step post-hook: clamp the tagged decay parameters an optimizer holds."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if getattr(p, _DECAY_TAG, False):
                _clamp_decay_(p)


class _DecayParameter(nn.Parameter):
    # The tag lives on the class (kept by deepcopy, which rebuilds type(self)) and on the instance
    # (kept by pickle, which rebuilds a plain Parameter with its __dict__).
    _sj2lava_decay = True


def _decay_parameter(value: torch.Tensor) -> nn.Parameter:
    """A learnable decay (1/4096 units) that every ``torch.optim`` optimizer keeps inside [0, 4096].

    The hook is registered once, on the first learnable decay, and acts only on parameters carrying
    the tag, so optimizers of other models are untouched.
    """
    global _step_hook
    if _step_hook is None:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        _step_hook = register_optimizer_step_post_hook(_clamp_after_step)
    p = _DecayParameter(value)
    setattr(p, _DECAY_TAG, True)
    return p


# --------------------------------------------------------------------------- module
class CubaLIFNode(nn.Module):
    """Loihi's CUBA-LIF neuron, quantization-aware, as a SpikingJelly-style memory module.

    Forward equals lava-dl's ``slayer.neuron.cuba.Neuron`` and Lava's fixed-point LIF spike for
    spike (equations in the :mod:`sj2lava.neuron` docstring). Differences from lava-dl, all in
    favour of Lava: the threshold test is strict in integers, so thresholds >= 64 behave as Lava
    does (slayer compares in float32 and spikes at equality there).

    Args:
        current_decay: fraction of ``u`` lost per step, in [0, 1] (stored as ``4096 * decay``).
        voltage_decay: fraction of ``v`` lost per step, in [0, 1].
        v_threshold: spike threshold, floored to 1/64 (``vThMant = int(64 * v_threshold)``).
        scale: weight scale; Loihi and NetX fix it at 64.
        requires_grad: learn the decays.
        surrogate_function: spike function with a surrogate gradient (default :class:`Sigmoid`).
        detach_reset: detach the reset from the graph.
        step_mode: ``'s'`` (input ``[N, *]`` per call) or ``'m'`` (input ``[T, N, *]``).
        store_v_seq, store_i_seq: in multi-step mode keep ``v_seq`` / ``i_seq`` (float units,
            ``v`` after reset) of the last call, for inspection.
        backend: ``'auto'`` (the fused Triton kernels for CUDA tensors), ``'torch'`` or ``'triton'``.

    State ``current_state`` and ``voltage_state`` (float64, float units) persist between calls
    until :meth:`reset` (or SpikingJelly's ``functional.reset_net``).
    """

    def __init__(
        self,
        current_decay: Union[float, torch.Tensor],
        voltage_decay: Union[float, torch.Tensor],
        v_threshold: float = 1.0,
        scale: int = 1 << 6,
        requires_grad: bool = False,
        surrogate_function: Optional[Callable] = None,
        detach_reset: bool = False,
        step_mode: str = "s",
        store_v_seq: bool = False,
        store_i_seq: bool = False,
        backend: str = "auto",
    ):
        super().__init__()
        if int(scale) != quant.W_SCALE:
            raise UnsupportedLayerError(
                f"CubaLIFNode: scale={scale} is not supported; Loihi/NetX fix the weight scale at 64. "
                "Use scale=64 (the default)."
            )
        if not math.isfinite(float(v_threshold)) or float(v_threshold) < 0:
            raise UnsupportedLayerError(
                f"CubaLIFNode: v_threshold={v_threshold} must be a finite number >= 0."
            )
        for name, d in (("current_decay", current_decay), ("voltage_decay", voltage_decay)):
            if isinstance(d, torch.Tensor) and d.numel() != 1:
                raise UnsupportedLayerError(
                    f"CubaLIFNode: {name} must be a scalar (one decay per layer); got shape "
                    f"{tuple(d.shape)}."
                )
        cd = quant.decay_param(current_decay).reshape(1)
        vd = quant.decay_param(voltage_decay).reshape(1)
        self.requires_grad = bool(requires_grad)
        if self.requires_grad:
            self.current_decay = _decay_parameter(cd)
            self.voltage_decay = _decay_parameter(vd)
        else:
            self.register_buffer("current_decay", cd)
            self.register_buffer("voltage_decay", vd)
        self.v_threshold = float(v_threshold)
        self.scale = quant.W_SCALE
        self.surrogate_function = surrogate_function if surrogate_function is not None else Sigmoid()
        self.detach_reset = bool(detach_reset)
        self.step_mode = step_mode
        self.store_v_seq = store_v_seq
        self.store_i_seq = store_i_seq
        self.backend = backend
        self.input_scale = 1.0
        """Factor the enclosing synapse folds into its weights (``1/tau`` for a converted
        SpikingJelly ``LIFNode(decay_input=True)``); 1.0 otherwise."""
        self.reset()

    # -- fixed-point views of the parameters
    @property
    def v_threshold_mant(self) -> int:
        """``vThMant``: the threshold in 1/64 units, floored."""
        return quant.threshold_mant(self.v_threshold)

    @property
    def threshold(self) -> float:
        """The threshold actually used, ``vThMant / 64``."""
        return self.v_threshold_mant / quant.W_SCALE

    @property
    def i_decay(self) -> int:
        """``iDecay`` in 1/4096 as exported (rounded, clamped to [0, 4096])."""
        return int(quant.decay_int(self.current_decay).item())

    @property
    def v_decay(self) -> int:
        """``vDecay`` in 1/4096 as exported."""
        return int(quant.decay_int(self.voltage_decay).item())

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        self._step_mode = check_step_mode(value)

    def reset(self) -> None:
        """Forget the state (``u = v = 0``)."""
        self.current_state: Optional[torch.Tensor] = None
        self.voltage_state: Optional[torch.Tensor] = None
        self.v_seq: Optional[torch.Tensor] = None
        self.i_seq: Optional[torch.Tensor] = None

    def clamp_decays(self) -> None:
        """Put learned decays back into [0, 4096] (1/4096 units), outside autograd.

        Runs after every ``torch.optim`` step (a global step hook that touches only tagged decay
        parameters) and before each forward. It writes ``.data``, as lava-dl does, so a graph that
        still holds the decays (single-step training, a sequence fed in chunks) stays valid: the
        values it saw were already in range, so nothing it needs changes.
        """
        for p in (self.current_decay, self.voltage_decay):
            _clamp_decay_(p)

    def forward(self, x: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Spikes for input ``x`` (``[N, *]`` in mode 's', ``[T, N, *]`` in mode 'm').

        ``bias`` (float, broadcastable to one step) is added to ``v`` every step on NetX's 1/64 grid.
        """
        seq = x.unsqueeze(0) if self.step_mode == "s" else x
        if self.requires_grad:
            self.clamp_decays()
        state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        if self.current_state is not None:
            if self.current_state.shape != seq.shape[1:]:
                raise ValueError(
                    f"CubaLIFNode: input shape {tuple(seq.shape[1:])} does not match the stored state "
                    f"{tuple(self.current_state.shape)}; call reset() between batches of different shape."
                )
            state = (self.current_state, cast(torch.Tensor, self.voltage_state))
        record = self.step_mode == "m" and (self.store_v_seq or self.store_i_seq)
        out = cuba_lif(
            seq, self.current_decay, self.voltage_decay, self.v_threshold_mant,
            bias=bias, state=state, surrogate_function=self.surrogate_function,
            detach_reset=self.detach_reset, record=record, backend=getattr(self, "backend", "auto"),
        )
        spikes, (self.current_state, self.voltage_state) = out[0], out[1]
        if record:
            self.i_seq, self.v_seq = out[2]
        return spikes[0] if self.step_mode == "s" else spikes

    def extra_repr(self) -> str:
        return (
            f"iDecay={self.i_decay}, vDecay={self.v_decay}, vThMant={self.v_threshold_mant}, "
            f"requires_grad={self.requires_grad}, detach_reset={self.detach_reset}, "
            f"step_mode={self.step_mode!r}"
        )

# --------------------------------------------------------------------------- neuron rules
@dataclass(frozen=True)
class NeuronRule:
    """How one family of neuron modules becomes a :class:`CubaLIFNode`; registered by a front-end
    (:mod:`sj2lava.frontends`), so this module never names a framework.

    Attributes:
        name: the family, for messages (e.g. ``'SpikingJelly'``).
        recognises: ``module -> bool``: a neuron of this family, convertible or not (so that
            ``convert`` can say "this neuron cannot be mapped" rather than "this is not a neuron").
        to_cuba: ``(module, where, approximate) -> (node, input_scale)``; raises
            :class:`UnsupportedLayerError` naming ``where`` for settings with no CUBA form.
        note: ``class names found in a model -> note or None``: what a float-trained neuron of this
            family computes differently on Loihi (shown by ``convert`` and ``verify``).
        single_step: the family's neurons take one time step per call (``verify`` runs such a model
            step by step).
        bias_in_current: the family's synaptic current takes the whole synapse output, bias included, so that
            with a current decay the bias reaches its full effect ``bias / current_decay`` only as the current
            settles; Loihi adds a bias to the voltage at full size from the first step (``convert`` refuses
            the pair, or moves the bias under ``approximate=True``).
    """

    name: str
    recognises: Callable[[nn.Module], bool]
    to_cuba: Callable[[nn.Module, str, bool], Tuple[CubaLIFNode, float]]
    note: Optional[Callable[[List[str]], Optional[str]]] = None
    single_step: bool = False
    bias_in_current: bool = False


_NEURON_RULES: List[NeuronRule] = []


def register_neuron(rule: NeuronRule) -> NeuronRule:
    """Add ``rule`` to the rules :func:`to_cuba` and :func:`is_neuron` consult (first match wins)."""
    _NEURON_RULES.append(rule)
    return rule


def neuron_rule(module: nn.Module) -> Optional[NeuronRule]:
    """The registered rule that recognises ``module``, or None."""
    return next((r for r in _NEURON_RULES if r.recognises(module)), None)


def is_neuron(module: nn.Module) -> bool:
    """A spiking neuron module (sj2lava's, or one a front-end recognises), convertible or not."""
    return isinstance(module, CubaLIFNode) or neuron_rule(module) is not None


def neuron_notes(model: nn.Module) -> List[str]:
    """Per neuron family found in ``model``: what its float neurons compute differently on Loihi."""
    notes = []
    for rule in _NEURON_RULES:
        names = sorted({type(m).__name__ for m in model.modules() if not isinstance(m, CubaLIFNode)
                        and rule.recognises(m)})
        note = rule.note(names) if names and rule.note is not None else None
        if note:
            notes.append(note)
    return notes


def from_package(obj: object, prefix: str) -> bool:
    """Whether ``obj``'s class comes from the package ``prefix`` (checked without importing it)."""
    return type(obj).__module__.startswith(prefix)


def unsupported_neuron(neuron: nn.Module, where: str) -> UnsupportedLayerError:
    """The error for a neuron no rule can map, naming it and the neurons that can be."""
    families = ", ".join(r.name for r in _NEURON_RULES) or "no front-end"
    return UnsupportedLayerError(
        f"{where}: {type(neuron).__module__}.{type(neuron).__name__} is not a neuron sj2lava can map to "
        "Loihi's CUBA-LIF. Use sj2lava.CubaLIFNode, SpikingJelly IFNode/LIFNode with v_reset=0, "
        "SpikingJelly lava_exchange.CubaLIFNode, lava-dl slayer.neuron.cuba.Neuron or snnTorch "
        f"Leaky/Synaptic (front-ends loaded: {families})."
    )


def to_cuba(
    neuron: nn.Module, *, with_input_scale: bool = False, where: Optional[str] = None,
    approximate: bool = False,
) -> Union[CubaLIFNode, Tuple[CubaLIFNode, float]]:
    """Convert a neuron to an equivalent :class:`CubaLIFNode`.

    Accepted, with their CUBA parameters (``current_decay``, ``voltage_decay``), through the rules the
    front-ends register:

    - :class:`CubaLIFNode`: returned as is.
    - SpikingJelly ``IFNode(v_reset=0)``: (1, 0). Note SpikingJelly fires on ``v >= th`` and
      Loihi on ``v > th``: a float-trained net is close, not identical.
    - SpikingJelly ``LIFNode(v_reset=0, decay_input=False)``: (1, 1/tau).
    - SpikingJelly ``LIFNode(v_reset=0, decay_input=True)``: (1, 1/tau) and an input scale of
      1/tau that the synapse must fold into its weights; pass ``with_input_scale=True`` to get
      ``(node, input_scale)`` (``BlockContainer`` does this for you).
    - SpikingJelly ``lava_exchange.CubaLIFNode``: decays (learned values included), threshold,
      surrogate and ``detach_reset`` kept.
    - lava-dl ``slayer.neuron.cuba.Neuron`` (shared parameters, no norm, binary spikes).
    - snnTorch ``Leaky(beta, reset_mechanism="zero")``: (1, 1 - beta);
      ``Synaptic(alpha, beta, reset_mechanism="zero", reset_delay=False)``: (1 - alpha, 1 - beta).
      A learnable beta/alpha becomes a learnable decay; snnTorch's spike function is kept as the
      surrogate and its reset is detached, as in snnTorch. Both fire on ``mem > threshold``, as Loihi.

    ``approximate=True`` turns snnTorch's subtract reset into Loihi's reset to zero, with a warning:
    the net then computes something else, and ``verify`` shows how much.

    Raises:
        UnsupportedLayerError: soft reset, ``v_reset != 0``, other neuron types, per-neuron decays,
            graded spikes; the message names the neuron and what to change.
    """
    where = where or type(neuron).__name__
    if isinstance(neuron, CubaLIFNode):
        node, scale = neuron, neuron.input_scale
    else:
        rule = neuron_rule(neuron)
        if rule is None:
            raise unsupported_neuron(neuron, where)
        node, scale = rule.to_cuba(neuron, where, approximate)
        if scale != 1.0:
            node.input_scale = scale
    if with_input_scale:
        return node, scale
    if scale != 1.0:
        raise UnsupportedLayerError(
            f"{where}: {type(neuron).__name__} scales its input by {scale:g} (e.g. LIFNode(decay_input=True): "
            "1/tau), which belongs "
            "in the synapse weights. Call to_cuba(neuron, with_input_scale=True) and fold the "
            "scale, or wrap it in sj2lava.BlockContainer, which folds it for you."
        )
    return node
