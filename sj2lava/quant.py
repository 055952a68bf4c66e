"""Loihi's fixed-point rules, in one place.

Every other Python module of sj2lava calls these functions and constants; none keeps its own copy
of a rule. The rules are those of lava-dl 0.6.0 (``slayer.neuron.cuba``,
``slayer.neuron.base.quantize_8bit``) and NetX / Lava 0.10.0 (``PyLifModelBitAcc``).

Units
-----
- Weights: 8-bit mantissas in steps of 2, ``w_mant in {-256, -254, ..., 254}``; the float
  weight is ``w_mant / 64``, so the float grid step is ``2/64``.
- Thresholds: ``vThMant = int(threshold * 64)`` (floored to 1/64), unsigned 17 bits; compared with
  the voltage as ``vThMant << 6`` in state units (:func:`threshold_state`).
- State (current ``u`` and voltage ``v``): integers in 1/4096 of a float unit, 24-bit registers. At their limits
  Lava wraps ``u`` (:func:`lava_wrap`: its sign flips, so export refuses a layer whose worst-case ``u`` can get
  there, :func:`state_bounds`) and saturates ``v`` (:func:`clip_state`: above the threshold it spikes and resets
  anyway; below ``-(2^23 - 1)`` it stays there, in sj2lava's neurons and emulator as in Lava).
- Decays: integers in 1/4096 (``iDecay``, ``vDecay`` in [0, 4096]).
- Bias: integer ``bias_mant`` (signed 13 bits) with exponent 6, i.e. ``bias_mant * 64`` state units
  added to ``v`` each step; the float bias is ``bias_mant / 64``.

The LIF step (Lava's ``PyLifModelBitAcc``; the one statement of the equations others refer to)
----------------------------------------------------------------------------------------------
Per neuron and time step, with ``a`` the step's synaptic sum (weight mantissas times spikes)::

    u = lava_wrap(rs0(u * (4096 - iDecay), 12) + (a << 6))        current, kept in (-2^23, 2^23]
    v = clip_state(rs0(v * (4096 - vDecay), 12) + u + (bias_mant << 6))
    s = v > threshold_state(vThMant);  v = 0 where s               (u is never reset)

A convolution's sum first passes :func:`conv_wrap` (Lava Conv's signed 24-bit accumulator). In
training, ``a << 6`` is :func:`to_state` of the float synaptic input.

Twins
-----
Some rules must also exist outside Python, where speed needs them; each twin is a transcription of
the function named here, and ``tests/test_quant.py`` runs every twin on the same boundary values:

- :func:`rs0`: ``rs0`` (scalar) and ``rs0_8`` (8 lanes) in ``emulator/ckernel.c``; the decay
  products in ``neuron_triton._fwd``.
- :func:`lava_wrap`: ``lava_wrap`` / ``lava_wrap16`` in ``emulator/ckernel.c``.
- :func:`conv_wrap`: ``conv_wrap`` in ``emulator/ckernel.c``.
- :func:`clip_state`: ``clip16`` in ``emulator/ckernel.c``, the clamp in ``neuron_triton._fwd`` and in the
  training neuron's ``neuron._forward_torch``.
- :func:`sd_fire`: ``sd_fire`` and ``sd_fire16`` (16 lanes) in ``emulator/ckernel.c`` (with ``wadd`` / ``wsub``,
  int32 arithmetic that wraps as Lava's numpy int32 arrays do).
- :func:`to_state`: the ``floor(4096 z + 0.5)`` in ``neuron_triton._fwd``.
- :func:`decay_int32`: the same number as ``rs0(x * keep)``, in int32 only (the emulator's torch backend);
  ``decay16`` in ``emulator/ckernel.c`` (16 lanes, int64 products of the even and odd lanes).
- The LIF step: ``neurons16`` / ``neuron_block`` in ``emulator/ckernel.c`` and ``neuron_triton._fwd``
  (checked against this module's rules by the emulator and kernel tests against Lava and the torch
  reference). The SDNN and RF steps: ``sdnn_neurons`` / ``rf_neurons`` in ``emulator/ckernel.c`` and the
  torch backend (both checked against Lava).
"""
from __future__ import annotations

from typing import List, Tuple, Union

import torch

W_SCALE = 64
"""Float 1.0 in weight (and threshold) mantissa units."""
S_SCALE = 4096
"""Float 1.0 in neuron state units (``W_SCALE << 6``)."""
P_SCALE = 4096
"""Decay 1.0 in decay units (12 fractional bits)."""
DECAY_BITS = 12
WEIGHT_STEP = 2 / W_SCALE
W_MANT_MIN = -256
W_MANT_MAX = 254
BIAS_EXP = 6
STATE_BITS = 24
"""Lava's fixed-point LIF keeps ``u`` and ``v`` in 24-bit signed registers."""
STATE_MAX = (1 << (STATE_BITS - 1)) - 1
V_TH_MANT_MAX = (1 << 17) - 1
MAX_DELAY = 62
"""The largest axonal delay (steps) Lava's ``DelayDense`` holds; NetX clips larger ones to it."""
"""Lava's ``vth`` field: unsigned 17 bits (``vThMant << 6`` fits ``v``'s 24 bits)."""
BIAS_MANT_MIN, BIAS_MANT_MAX = -(1 << 12), (1 << 12) - 1
"""Lava's ``bias_mant`` field: signed 13 bits."""


class _RoundSTE(torch.autograd.Function):
    """``round(x / step) * step`` with a straight-through gradient (lava-dl's ``_quantize``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, step: float) -> torch.Tensor:  # type: ignore[override]
        # Same expression, same float32 operations as slayer.utils.quantize.
        return torch.round(x / step) * step

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


def round_ste(x: torch.Tensor, step: float = 1.0) -> torch.Tensor:
    """Round to the nearest multiple of ``step`` (half to even), gradient passed straight."""
    return _RoundSTE.apply(x, step)


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """Loihi's 8-bit weight quantizer (lava-dl ``quantize_8bit``), in float units.

    ``w_q = clamp(round(w / (2/64)) * (2/64), -256/64, 254/64)``.
    The rounding has a straight-through gradient; the clamp has the usual zero gradient
    outside the range, as in lava-dl.
    """
    return round_ste(w, WEIGHT_STEP).clamp(W_MANT_MIN / W_SCALE, W_MANT_MAX / W_SCALE)


def weight_mant(w: torch.Tensor) -> torch.Tensor:
    """Integer weight mantissas ``64 * quantize_weight(w)`` (even, in [-256, 254]), int64."""
    return torch.round(quantize_weight(w.detach()) * W_SCALE).to(torch.int64)


def quantize_bias(b: torch.Tensor) -> torch.Tensor:
    """Bias on NetX's grid (``bias_mant`` with exponent 6): ``round(b * 64) / 64``, STE."""
    return round_ste(b, 1.0 / W_SCALE)


def bias_mant(b: torch.Tensor) -> torch.Tensor:
    """Integer ``bias_mant = round(64 * b)`` that NetX applies with ``bias_exp = 6``, int64."""
    return torch.round(b.detach() * W_SCALE).to(torch.int64)


def decay_param(decay: Union[float, torch.Tensor]) -> torch.Tensor:
    """The stored decay parameter ``4096 * decay`` in float32, computed as lava-dl does.

    lava-dl computes the product in Python float64 and stores float32; learned values are then
    rounded from that float32 parameter. Keeping the same storage keeps the same rounding.
    """
    if isinstance(decay, torch.Tensor):
        return (P_SCALE * decay.detach().double()).float()
    return torch.tensor(P_SCALE * float(decay), dtype=torch.float32)


def quantize_decay(decay_param: torch.Tensor) -> torch.Tensor:
    """Decay as used on chip, in 1/4096: ``round(clamp(p, 0, 4096))`` (half to even), STE.

    ``decay_param`` is the stored parameter in 1/4096 units (see :func:`decay_param`).
    """
    return round_ste(decay_param.clamp(0, P_SCALE), 1.0)


def decay_int(decay_param: torch.Tensor) -> torch.Tensor:
    """Integer ``iDecay`` / ``vDecay`` in [0, 4096] (what NetX stores), int64."""
    return quantize_decay(decay_param.detach()).to(torch.int64)


def threshold_mant(threshold: float) -> int:
    """``vThMant = int(threshold * 64)``: the threshold floored to the 1/64 grid (lava-dl)."""
    return int(float(threshold) * W_SCALE)


def threshold_state(v_th_mant):
    """Threshold in state units, ``vThMant << 6`` (ints, numpy or torch integers); a neuron spikes when
    ``v > this``."""
    return v_th_mant << BIAS_EXP


def to_state(x: torch.Tensor) -> torch.Tensor:
    """Synaptic input in state units, rounded to the nearest integer: ``floor(4096 * x + 0.5)`` (float64).

    With binary (or integer) spikes and weights on the 2/64 grid, ``4096 * x`` is an exact multiple of
    128, so this equals lava-dl's truncation. Rounding (not truncating) keeps it exact when the float
    sum that produced ``x`` was not: cuDNN's FFT/Winograd convolutions and TF32 can return ``k - eps``,
    which truncation would turn into ``k - 1``. Scaling by a power of two is exact in any float format,
    so float16/32 input is rounded in float32 before widening; the Triton twin does the same.
    """
    x = x.detach()
    if x.dtype in (torch.float16, torch.bfloat16, torch.float32):
        return torch.floor(x.float() * S_SCALE + 0.5).double()
    return torch.floor(x.double() * S_SCALE + 0.5)


def decay_step(x: torch.Tensor, decay: torch.Tensor) -> torch.Tensor:
    """``rs0(x * (4096 - decay), 12)``: one decay of an integer state, rounded toward zero.

    ``rs0(a, 12) = sign(a) * (|a| >> 12)``. Works on int64 tensors, and on float64 tensors
    holding integers (exact while ``|x| < 2**41``), which is what the training path uses
    because float64 arithmetic needs no sign/abs/shift round trip.
    """
    if x.dtype.is_floating_point:
        keep = (P_SCALE - decay.to(x.dtype)) / P_SCALE  # k/4096: exact in float64
        return torch.trunc(x * keep)
    return rs0(x * (P_SCALE - decay.to(x.dtype)))


def rs0(x, bits: int = DECAY_BITS):
    """``sign(x) * (|x| >> bits)``: Loihi's right shift that rounds toward zero, on 64-bit integers.

    Integer operators only, so that this one definition serves torch int64 tensors, numpy int64
    arrays and Python ints: an arithmetic shift rounds down, so negatives first get
    ``2**bits - 1`` added.
    """
    return (x + ((x >> 63) & ((1 << bits) - 1))) >> bits


def decay_int32(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``rs0(x * keep)`` for a 24-bit state ``x`` and ``keep = 4096 - decay`` in ``[0, 4096]``, in int32 only.

    The product needs 36 bits; split ``|x| = 4096 h + l`` instead: ``(|x| keep) >> 12 = h keep + ((l keep) >> 12)``
    exactly (``h keep`` is a whole multiple of 4096 before the shift), each term below 2^24. Valid for
    ``|x| < 2^23 + 2^12`` (Lava's current and voltage registers); the sign is ``x``'s (``keep >= 0``).
    """
    a = x.abs()
    mag = (a >> DECAY_BITS) * keep + (((a & ((1 << DECAY_BITS) - 1)) * keep) >> DECAY_BITS)
    return torch.where(x < 0, -mag, mag)


def lava_wrap(u):
    """Lava's wrap of the current register into ``(-2**23, 2**23]`` (``PyLifModelBitAcc``): one period
    ``2**24`` is subtracted above ``2**23`` or added at or below ``-2**23``; ``2**23`` itself is kept.

    Operators only (torch, numpy, Python ints alike); on torch tensors the result is int64.
    """
    half, full = 1 << (STATE_BITS - 1), 1 << STATE_BITS
    return u - (u > half) * full + (u <= -half) * full


def conv_wrap(a):
    """Lava Conv's signed 24-bit accumulator: ``a`` wrapped into ``[-2**23, 2**23)``.

    Operators only (floored modulo on torch and numpy integers and Python ints).
    """
    half, full = 1 << (STATE_BITS - 1), 1 << STATE_BITS
    return (a + half) % full - half


def sd_fire(delta, vth):
    """A sigma-delta neuron's output before its ``>> 6`` (Lava's ``PySigmaDeltaModelFixed``): ``delta`` where
    ``|delta| >= vth``, else 0, on int32 tensors or arrays (``vth`` in state units, ``vThMant << (spike_exp + 6)``).

    ``|delta|`` is numpy's int32 absolute value, so ``|-2**31|`` stays ``-2**31`` and never fires; that is
    why the argument must be int32 (Python ints would fire there).
    """
    return delta * (abs(delta) >= vth)


def clip_state(x: torch.Tensor, bits: int = STATE_BITS) -> torch.Tensor:
    """Saturate to ``+-(2**(bits-1) - 1)`` (Lava's ``v`` register)."""
    m = (1 << (bits - 1)) - 1
    return x.clamp(-m, m)


def state_bounds(a: float, i_decay: int) -> List[Tuple[float, str]]:
    """The registers that can wrap, at their worst: the largest per-step synaptic input ``a`` (``sum |w| << 6``
    state units; a convolution's 24-bit accumulator wraps it) and the current ``|u| <= a * 4096 / iDecay``
    (a geometric series when every input spikes every step; truncation only shrinks it; a zero current decay
    grows without bound and is left to ``verify``). Each must stay within ``STATE_MAX``. The voltage needs no
    bound: Lava saturates it (:func:`clip_state`), and so do sj2lava's neurons; above the threshold it spikes and
    resets either way, and only a float model whose ``v`` falls below ``-(2^23 - 1)`` differs. Every bound is
    linear in a common scale of the weights."""
    out = [(a, "one step's synaptic input")]
    if i_decay > 0:
        out.append((a * P_SCALE / i_decay, "the current u"))
    return out
