"""NetX's and Lava's rules for dense weights: what a ``.net`` file's integers become inside Lava.

A dense layer's weights (8-bit mantissas, steps of 2, in [-256, 254]) pass two stages:

1. NetX ``optimize_weight_bits`` (:func:`netx_weight_bits`): a shift ``sb`` that fills 8 bits, the
   number of significant weight bits, and the exponent ``-sb`` that Lava Dense applies after the sum.
2. Lava ``PyDenseModelBitAcc`` (:func:`lava_dense_weights`): sign mode from the weights, an 8-bit clip,
   then truncation to ``num_weight_bits`` (the low bits are dropped).

The emulator uses both, so its sums are Lava's; ``a >> shift`` after the sum is Lava's flooring shift.
Resonate-and-fire decays take a float round trip through NetX and Lava (:func:`rf_decays`).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["netx_weight_bits", "lava_dense_weights", "rf_decays", "rf_threshold"]


def netx_weight_bits(w: np.ndarray) -> Tuple[np.ndarray, int, int]:
    """NetX's ``optimize_weight_bits`` (``lava/lib/dl/netx/utils.py``): ``(w << sb, num_weight_bits, -sb)``."""
    w = np.asarray(w, dtype=np.int64)
    hi, lo = int(w.max()), int(w.min())
    if (hi > 254 and lo < 0) or (lo < -256 and hi > 0):
        w = np.clip(w, -256, 254)
        hi, lo = int(w.max()), int(w.min())
    if hi < 0:
        signed, scale = 0, -256 / lo
    elif lo >= 0:
        if hi == 0:
            raise ValueError("an all-zero dense weight matrix: NetX fails on it (OverflowError)")
        signed, scale = 0, 255 / hi
    else:
        # max == 0 with negatives is "mixed" to NetX; numpy then makes 127/0 infinite
        signed, scale = 1, min(127 / hi if hi else np.inf, -128 / lo)
    sb = int(np.floor(np.log2(scale))) + signed
    n = 8
    while n > 0 and np.any(w % (1 << n)):  # trailing zero bits shared by every weight
        n -= 1
    n -= signed
    return np.left_shift(w, sb), 8 - sb - n, -sb


def lava_dense_weights(w: np.ndarray, num_weight_bits: int) -> np.ndarray:
    """Lava ``PyDenseModelBitAcc``'s weights: sign mode from the weights, 8-bit clip, then truncation."""
    w = np.asarray(w, dtype=np.int64).copy()
    inhibitory = w.max() <= 0 and w.min() < 0
    mixed = int(w.min() < 0 and w.max() > 0)
    if inhibitory:
        w = -w
    w = np.clip(w, -(1 << 8) * mixed, (1 << 8) - 1)
    drop = 8 - num_weight_bits + mixed
    w = (w >> drop) << drop
    return -w if inhibitory else w


def rf_decays(sin_decay, cos_decay) -> Tuple[np.ndarray, np.ndarray]:
    """The integer ``(sin_decay, cos_decay)`` (1/4096) Lava's fixed-point RF / RF_IZ models run with, from a
    file's ``sinDecay``, ``cosDecay``: NetX (``slayer.neuron.rf.neuron_params``) makes a float period and
    decay of them, and Lava's ``RF`` process makes integers again, ``int32(x * 4096)`` (truncation). The same
    numpy operations in the same order, so the result is Lava's to the bit (it may differ from the file's
    values by one)."""
    sin_f = sin_decay / (1 << 12)
    cos_f = cos_decay / (1 << 12)
    decay = 1 - np.sqrt(sin_f ** 2 + cos_f ** 2)
    with np.errstate(divide="ignore"):  # sinDecay 0: frequency 0, an infinite period, sin(0) again
        period = 1 / (np.arctan2(sin_f, cos_f) / 2 / np.pi)
    alpha = decay
    sin_out = (1 - alpha) * np.sin(np.pi * 2 * 1 / period)
    cos_out = (1 - alpha) * np.cos(np.pi * 2 * 1 / period)
    return (np.asarray(np.int32(sin_out * (1 << 12)), dtype=np.int64),
            np.asarray(np.int32(cos_out * (1 << 12)), dtype=np.int64))


def rf_threshold(v_th_mant) -> int:
    """Lava's RF threshold: ``int(vThMant * 2^6)`` (``state_exp = 6``)."""
    return int(v_th_mant * (1 << 6))
