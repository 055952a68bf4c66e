"""The C kernel of the emulator's CPU backend: the integer step of :mod:`sj2lava.emulator` in a small C
program (``ckernel.c``) compiled on first use, and its ctypes binding.

A layer's synaptic sum takes one of four paths, picked per layer when the net is prepared (and between dot and
fan-out per step, by the step's count of input events):

* **depthwise** (any CPU; a convolution whose output channel ``c`` reads input channel ``c`` alone, as NetX's sum
  pooling does): per tap, 16 channels' spikes select 16 weights (:func:`depthwise_table`).

* **dot** (CPUs with AVX512-VNNI; convolutions without groups and dense layers whose weights are int8
  times a power of two, which 8-bit Loihi weights are): the input spikes are bytes 0/1, so a sum is an
  integer dot product, and VPDPBUSD multiplies four input bytes with the int8 weights of 16 output
  channels in one instruction, exactly. A convolution reads its input from a zero-padded
  channels-last copy, so each kernel row is a run of adjacent bytes and the hot loop has no
  geometry in it (:func:`dot_table`). Graded messages below 2^15 in magnitude take it as two bytes each
  (two instructions a group). A layer whose input is often sparse keeps the fan-out path beside it and
  takes that at the steps with few events (a cost model per layer sets the crossing, ``dot_min``).
* **table** (other CPUs; convolutions without groups with 16k output channels): the weight rows of
  four (tap, channel) pairs pre-summed for each of the 16 spike patterns (:func:`nibble_table`).
* **fan-out** (grouped convolutions, ``dense_rec`` layers, the rest), driven by events: input position
  ``p`` reaches the output rows ``fan_out[fan_start[p]:fan_start[p+1]]`` through taps
  ``fan_tap[...]``, and a spike of channel ``c`` at ``p`` adds ``w[tap, c, :]`` at each of them
  (:func:`fan_table`).

All paths give the same integers (the suite checks each against the torch backend, and the kernel
against Lava). State is channels-last (``[H, W, C]`` flattened) so a position's channels are
contiguous; a layer's sums and its neuron update run block by block so that a block stays in L1. CUBA parameters
that repeat per channel are kept once per channel; the neuron steps run 16 neurons at a time in registers.
:class:`LayerTimer` times each layer inside the kernel and :func:`dot_peak` measures the dot instruction's peak,
for ``benchmarks/bench_emulator.py``.

A net may start with input neurons (NetX's Input block): no synapse, their ``a_in`` (int32, same step) and
a bias image per sample go straight to the neurons. A dense layer with axonal delays (Lava's DelayDense)
runs on the fan-out path into per-delay sums, each shifted by the weight exponent apart and added to a ring
of rows the delay ahead; the neurons take the ring's row of the step.

Sigma-delta layers send int32 messages: the synapse after them takes the non-zero ones as events on the
fan-out path and adds ``message * w``; before each such step the largest ``|message|`` times the layer's row
bound must stay below 2^31 (the torch backend refuses the same sums: both raise
:class:`~sj2lava.errors.GradedOverflowError`). Their neurons and those of a resonate-and-fire layer (whose
imaginary synapse is a second fan-out sum) step in int32 that wraps, as Lava's numpy int32 arrays do.

Samples are independent, so a batch is shared out to threads sample by sample (the kernel runs
without the GIL); in each thread a sample runs time-major as Lava steps it: at step ``t`` every layer
takes the spikes the layer before made at ``t`` (the one-step synaptic delay lives inside each layer).

The kernel is built with the system C compiler (``$CC``, else ``cc``/``gcc``/``clang``) into
``$SJ2LAVA_CACHE`` (default ``~/.cache/sj2lava``), once per source version and CPU. Without a
compiler, :func:`available` is False and ``emulate(backend='auto')`` uses the torch backend.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._atomic import remove_stale, sigterm_raises
from ..errors import GradedOverflowError

__all__ = ["available", "unavailable_reason", "has_dot", "twin", "TWINS", "spike_bytes", "fan_table", "nibble_table",
           "dot_table", "depthwise_table", "KernelLayer", "GradedOverflow", "run", "LayerTimer", "dot_peak"]

_SOURCE = Path(__file__).with_name("ckernel.c")
# $SJ2LAVA_CFLAGS comes last, so it can override, e.g. "-march=x86-64-v3" for a cache shared by
# machines with different CPUs (the tests build the kernel without AVX-512 that way)
_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-std=c99", "-Wno-psabi",
          *os.environ.get("SJ2LAVA_CFLAGS", "").split()]
DOT = True  # use the dot path where the CPU has it; False tests the table and fan-out paths on such CPUs
_lib: Optional[ctypes.CDLL] = None
_failed: Optional[str] = None
_lock = threading.Lock()


def _cpu_tag() -> str:
    """What ``-march=native`` depends on, so that a cache shared between machines stays correct."""
    try:
        flags = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags"))
    except (OSError, StopIteration):
        flags = platform.processor()
    return platform.machine() + flags


def _compiler() -> Optional[str]:
    named = os.environ.get("CC")
    if named and not shutil.which(named):  # the user asked for this one: say so before falling back
        warnings.warn(f"emulate: $CC={named!r} is not found; building the C kernel with the first of cc, gcc, "
                      "clang instead", RuntimeWarning, stacklevel=4)
    for name in filter(None, (named, "cc", "gcc", "clang")):
        if shutil.which(name):
            return name
    return None


def _private_folder(folder: Path) -> Path:
    """``folder``, created with mode 0700 if missing; refused unless this user owns it and nobody else may
    write to it (a library in it is loaded into this process)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.lstat()
    if folder.is_symlink() or not folder.is_dir():
        raise RuntimeError(f"kernel cache {folder} is not a plain folder")
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
        raise RuntimeError(f"kernel cache {folder} is not this user's private folder (owner {st.st_uid}, mode "
                           f"{oct(st.st_mode & 0o777)}); make it mode 0700 or set $SJ2LAVA_CACHE")
    return folder


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build() -> ctypes.CDLL:
    """Build (once) and load the kernel. The library lives in a private folder beside a file holding its
    sha256, written after a build that compiled in a unique temporary file and renamed it; a library whose
    digest file is missing or does not match (planted, truncated, empty) is rebuilt, never loaded."""
    src = _SOURCE.read_bytes()
    key = hashlib.sha256(src + " ".join(_FLAGS).encode() + _cpu_tag().encode() + sys.platform.encode())
    try:
        cache = _private_folder(Path(os.environ.get("SJ2LAVA_CACHE", Path.home() / ".cache" / "sj2lava")))
    except OSError:  # a read-only home: this user's private folder in the temporary directory instead
        cache = _private_folder(Path(tempfile.gettempdir()) / f"sj2lava-{os.getuid() if hasattr(os, 'getuid') else 0}")
    lib = cache / f"ckernel-{key.hexdigest()[:16]}.so"
    stamp = lib.with_suffix(".sha256")
    ok = lib.is_file() and not lib.is_symlink() and stamp.is_file() and lib.stat().st_size > 0
    if not ok or stamp.read_text().strip() != _digest(lib):
        cc = _compiler()
        if cc is None:
            raise RuntimeError("no C compiler found (set $CC)")
        for suffix in (".so", ".sha256"):  # what a build killed mid-way (kill -9) left behind
            remove_stale(cache, ".build.", suffix)
        with sigterm_raises():  # a SIGTERM mid-build still removes the temporary files
            fd, tmp = tempfile.mkstemp(prefix=f".build.{os.getpid()}.", suffix=".so", dir=cache)
            os.close(fd)
            tmp_stamp = ""
            try:  # compile beside the target, then rename: a half-written library is never loaded
                out = subprocess.run([cc, *_FLAGS, "-o", tmp, str(_SOURCE)], capture_output=True, text=True)
                if out.returncode != 0:
                    raise RuntimeError(f"{cc} failed: {out.stderr.strip()[-500:]}")
                digest = _digest(Path(tmp))
                fd, tmp_stamp = tempfile.mkstemp(prefix=f".build.{os.getpid()}.", suffix=".sha256", dir=cache)
                with os.fdopen(fd, "w") as fh:
                    fh.write(digest)
                os.replace(tmp, lib)
                os.replace(tmp_stamp, stamp)
            finally:
                for leftover in (tmp, tmp_stamp):
                    if leftover and os.path.exists(leftover):
                        os.unlink(leftover)
        if _digest(lib) != digest:
            raise RuntimeError(f"kernel library {lib} changed while it was being installed")
    dll = ctypes.CDLL(str(lib))
    dll.sj2lava_run.restype = ctypes.c_int
    dll.sj2lava_spike_bytes.restype = ctypes.c_int64
    dll.sj2lava_twin.restype = None
    dll.sj2lava_dot_peak.restype = ctypes.c_int64
    return dll


def _library() -> Optional[ctypes.CDLL]:
    global _lib, _failed
    with _lock:
        if _lib is None and _failed is None:
            try:
                _lib = _build()
            except (OSError, RuntimeError) as e:
                _failed = str(e)
                warnings.warn(f"emulate: the C event kernel is unavailable ({e}); using the torch backend",
                              RuntimeWarning, stacklevel=3)
    return _lib


def _require_library() -> ctypes.CDLL:
    lib = _library()
    if lib is None:
        raise RuntimeError(f"the C event kernel is unavailable ({unavailable_reason()})")
    return lib


def available() -> bool:
    """True when the event kernel is built (or can be built now) on this machine."""
    return _library() is not None


def unavailable_reason() -> str:
    """Why the kernel could not be built (the compiler's message), or '' when it could."""
    return _failed or ""


def has_dot() -> bool:
    """True when the kernel was built with the dot path (the CPU has AVX512-VNNI)."""
    lib = _library()
    return lib is not None and bool(lib.sj2lava_has_dot())


TWINS = ("rs0", "rs0_8", "lava_wrap", "lava_wrap16", "conv_wrap", "sd_fire", "decay16", "sd_fire16")
"""The C twins of :mod:`sj2lava.quant`'s rules that :func:`twin` runs (scalar and vector forms)."""


def twin(rule: str, x: np.ndarray, arg: int = 0) -> np.ndarray:
    """The kernel's own code for one of :data:`TWINS` on ``x`` (int64; the wraps, ``sd_fire(16)`` and ``decay16``
    take int32 values; ``arg`` is ``sd_fire``'s threshold, ``decay16``'s keep)."""
    lib = _library()
    if lib is None:
        raise RuntimeError(f"the C kernel is unavailable: {unavailable_reason()}")
    x = np.ascontiguousarray(x, dtype=np.int64)
    n = -(-x.size // 16) * 16
    padded = np.zeros(n, np.int64)
    padded[:x.size] = x.ravel()
    out = np.empty(n, np.int64)
    lib.sj2lava_twin(ctypes.c_int64(TWINS.index(rule)), padded.ctypes.data_as(ctypes.c_void_p),
                     out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(n), ctypes.c_int64(arg))
    return out[:x.size].reshape(x.shape)


def spike_bytes(x: np.ndarray) -> Tuple[np.ndarray, int]:
    """``x`` (float32) as bytes 0/1 in one pass, and the flat index of its first value that is not 0 or 1
    (NaN included), or -1 when there is none (the bytes are then incomplete)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(x.shape, np.uint8)
    lib = _require_library()
    bad = lib.sj2lava_spike_bytes(x.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                                  ctypes.c_int64(x.size))
    return out, int(bad)


def fan_table(in_hw: Sequence[int], out_hw: Sequence[int], kernel: Tuple[int, int],
              stride: Tuple[int, int], padding: Tuple[int, int], dilation: Tuple[int, int],
              channels: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fan-out of a 2-D convolution: for input position ``p = iy * W + ix`` the entries
    ``fan_start[p] .. fan_start[p+1]`` list the output positions ``oy * Wo + ox`` it reaches (times
    ``channels``: the offset of that position's channel row) and the tap ``ky * kw + kx`` that carries
    it, where ``iy = oy * sy - py + ky * dy`` (and likewise x)."""
    (h, w), (ho, wo), (kh, kw) = in_hw, out_hw, kernel
    oy, ox, ky, kx = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(kh), np.arange(kw), indexing="ij")
    iy = oy * stride[0] - padding[0] + ky * dilation[0]
    ix = ox * stride[1] - padding[1] + kx * dilation[1]
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    p = (iy * w + ix)[ok]
    order = np.argsort(p, kind="stable")
    start = np.zeros(h * w + 1, dtype=np.int32)
    np.cumsum(np.bincount(p, minlength=h * w), out=start[1:])
    out = ((oy * wo + ox) * channels)[ok][order]
    return start, out.astype(np.int32), (ky * kw + kx)[ok][order].astype(np.int32)


def nibble_table(in_chw: Sequence[int], out_hw: Sequence[int], w: np.ndarray,
                 stride: Tuple[int, int], padding: Tuple[int, int], dilation: Tuple[int, int],
                 max_bytes: int = 1 << 19) -> Optional[Tuple[np.ndarray, np.ndarray, int]]:
    """The table path of a convolution without groups (``w`` ``[Co, Ci, kh, kw]``), or None where it
    does not fit (``Co`` not a multiple of 16, or a table over ``max_bytes``).

    The ``(tap, channel)`` pairs of an output position are taken four at a time; ``lut[g, nib]`` is
    the sum of the weight rows of the pairs of group ``g`` whose bit is set in ``nib`` (16 values),
    and ``nib_at[o, g]`` the input byte offsets of those pairs at output position ``o``: one offset of
    four adjacent channel bytes when ``Ci % 4 == 0`` (``nib_bytes = 1``), else four offsets. An
    offset of ``n_in`` (zero bytes) stands for padding and for the pairs that fill the last group.
    """
    co, ci, kh, kw = w.shape
    (c, h, wd), (ho, wo) = in_chw, out_hw
    n_in = c * h * wd
    aligned = ci % 4 == 0
    k = kh * kw * ci
    n_nib = -(-k // 4)
    if co % 16 or n_nib * 16 * co * 4 > max_bytes:
        return None
    oy, ox, ky, kx = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(kh), np.arange(kw), indexing="ij")
    iy = oy * stride[0] - padding[0] + ky * dilation[0]
    ix = ox * stride[1] - padding[1] + kx * dilation[1]
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < wd)
    base = np.where(inside, (iy * wd + ix) * ci, n_in).reshape(ho * wo, kh * kw, 1)
    at = np.where(base == n_in, n_in, base + np.arange(ci)).reshape(ho * wo, k)  # pair (tap, c) -> byte
    rows = w.transpose(2, 3, 1, 0).reshape(k, co).astype(np.int64)  # pair -> weight row
    pad = n_nib * 4 - k
    at = np.concatenate([at, np.full((ho * wo, pad), n_in)], 1).reshape(ho * wo, n_nib, 4)
    rows = np.concatenate([rows, np.zeros((pad, co), np.int64)]).reshape(n_nib, 4, co)
    bits = (np.arange(16)[:, None] >> np.arange(4)) & 1  # [nib, member]
    lut = np.einsum("nm,gmc->gnc", bits, rows)
    return lut, (at[:, :, 0] if aligned else at), 1 if aligned else 4


def dot_table(in_chw: Sequence[int], out_hw: Sequence[int], w: np.ndarray,
              stride: Tuple[int, int], padding: Tuple[int, int], dilation: Tuple[int, int]) -> Optional[dict]:
    """The dot path of a convolution without groups (``w`` ``[Co, Ci, kh, kw]``; a dense layer is the
    1x1 case with one position), or None when the weights are not int8 times a power of two.

    The input is read from a zero-padded channels-last copy ``[Hp, Wp, C]`` (no copy when nothing is
    padded). A window's kernel row is a run of ``kw * C`` adjacent bytes (``C`` per tap when
    ``dilation[1] > 1``), cut into groups of four; output position ``o`` reads group ``g`` at byte
    ``base[o] + rel[g]``, and ``w8[cb, g, j, b]`` is the weight of that group's byte ``b`` for output
    channel ``16 cb + j``, divided by ``2**w8_shift`` (0 for bytes past the run and lanes past ``Co``).
    ``w8_corr[16 cb + j]`` is ``128`` times the sum of that channel's ``w8``: graded input goes in as two bytes per
    message, ``lo = m & 255`` and ``hi = (m >> 8) + 128``, and ``sum(m w) = sum(lo w) + 256 (sum(hi w) - w8_corr)``.
    """
    w = np.asarray(w, dtype=np.int64)
    co, ci, kh, kw = w.shape
    c = in_chw[0]
    nz = w[w != 0]
    shift = min(int((nz & -nz).min()).bit_length() - 1, 16) if nz.size else 0  # shared trailing zeros
    w = w >> shift
    if w.min(initial=0) < -128 or w.max(initial=0) > 127:
        return None
    (dy, dx) = dilation
    geometry = _padded(in_chw, out_hw, (kh, kw), stride, padding, dilation)
    wp = geometry["padded_w"]
    runs = [(ky * dy * wp * c, [(ky, kx) for kx in range(kw)]) for ky in range(kh)] if dx == 1 else \
        [((ky * dy * wp + kx * dx) * c, [(ky, kx)]) for ky in range(kh) for kx in range(kw)]
    rel, cols = [], []  # cols: per group, per byte, the (c, ky, kx) it multiplies, or None
    for start, taps in runs:
        pairs = [(cc, ky, kx) for ky, kx in taps for cc in range(c)]
        for m in range(0, len(pairs), 4):
            rel.append(start + m)
            cols.append(pairs[m:m + 4] + [None] * (4 - len(pairs[m:m + 4])))
    n_cb = -(-co // 16)
    w8 = np.zeros((n_cb * 16, len(rel), 4), np.int8)
    for g, members in enumerate(cols):
        for b, tap in enumerate(members):
            if tap is not None:
                w8[:co, g, b] = w[:, tap[0], tap[1], tap[2]]
    return dict(geometry, w8=np.ascontiguousarray(w8.reshape(n_cb, 16, len(rel), 4).transpose(0, 2, 1, 3)),
                w8_corr=128 * w8.astype(np.int64).sum((1, 2)), rel=np.asarray(rel, np.int32), n_grp=len(rel),
                w8_shift=shift)


def _padded(in_chw: Sequence[int], out_hw: Sequence[int], kernel: Tuple[int, int], stride: Tuple[int, int],
            padding: Tuple[int, int], dilation: Tuple[int, int]) -> dict:
    """The zero-padded channels-last input copy ``[Hp, Wp, C]`` of a convolution (``padded_bytes`` 0: no copy, when
    nothing is padded) and ``base[o]``, the byte offset of output position ``o``'s window in it."""
    (c, h, wd), (ho, wo), (kh, kw) = in_chw, out_hw, kernel
    (sy, sx), (py, px), (dy, dx) = stride, padding, dilation
    bottom = max(0, (ho - 1) * sy - py + (kh - 1) * dy - (h - 1))
    right = max(0, (wo - 1) * sx - px + (kw - 1) * dx - (wd - 1))
    hp, wp = h + py + bottom, wd + px + right
    oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    return dict(base=((oy * sy * wp + ox * sx) * c).ravel().astype(np.int32), in_h=h, in_w=wd, in_c=c, pad_top=py,
                pad_left=px, padded_w=wp, padded_bytes=hp * wp * c if py or px or bottom or right else 0)


def depthwise_table(in_chw: Sequence[int], out_hw: Sequence[int], w: np.ndarray, stride: Tuple[int, int],
                    padding: Tuple[int, int], dilation: Tuple[int, int]) -> Optional[dict]:
    """The depthwise path of a convolution whose output channel ``c`` reads input channel ``c`` alone (``w``
    ``[C, C, kh, kw]`` zero off the diagonal, as NetX's sum pooling is, or ``[C, 1, kh, kw]`` with ``C`` groups), or
    None for any other. Output position ``o`` reads tap ``t``'s ``C`` channel bytes at ``base[o] + rel[t]`` of the
    padded input (:func:`dot_table`'s), and ``dw_w[t, c]`` is that tap's weight for channel ``c`` (int32, 0 for
    lanes past ``C``): a sum is ``kh * kw`` selections of 16 weights by 16 spikes, not ``C`` times as many
    multiply-adds of a dense convolution."""
    w = np.asarray(w, dtype=np.int64)
    co, ci, kh, kw = w.shape
    c = in_chw[0]
    if co != c:
        return None
    if ci == c:
        diagonal = w[np.arange(c), np.arange(c)]
        if np.count_nonzero(w) != np.count_nonzero(diagonal):
            return None
        w = diagonal
    elif ci == 1:
        w = w[:, 0]
    else:
        return None
    (dy, dx), n_cb = dilation, -(-c // 16)
    geometry = _padded(in_chw, out_hw, (kh, kw), stride, padding, dilation)
    rel = [(ky * dy * geometry["padded_w"] + kx * dx) * c for ky in range(kh) for kx in range(kw)]
    dw = np.zeros((kh * kw, n_cb * 16), np.int64)
    dw[:, :c] = w.reshape(c, kh * kw).T
    if np.abs(dw).max(initial=0) * kh * kw >= 2**31:
        return None
    return dict(geometry, dw_w=dw.astype(np.int32), rel=np.asarray(rel, np.int32), n_grp=kh * kw, w8_shift=0)


_DOT_SIZES = ("n_grp", "w8_shift", "in_h", "in_w", "in_c", "pad_top", "pad_left", "padded_w", "padded_bytes")


class _KernelLayerC(ctypes.Structure):
    """``layer_t`` of ckernel.c, field for field."""
    _fields_ = [(n, ctypes.c_int64) for n in ("n_in", "n_out", "cig", "co", "groups", "shift", "wrap", "u_mode",
                                              "v_decays", "u_may_wrap")] + \
               [(n, ctypes.c_void_p) for n in ("pos", "chan", "fan_start", "fan_out", "fan_tap", "w", "w_rec",
                                               "keep_u", "keep_v", "bias", "vth", "lut", "nib_at")] + \
               [("n_nib", ctypes.c_int64), ("nib_bytes", ctypes.c_int64)] + \
               [(n, ctypes.c_void_p) for n in ("w8", "rel", "base")] + \
               [(n, ctypes.c_int64) for n in _DOT_SIZES] + \
               [("w8_corr", ctypes.c_void_p), ("dot_min", ctypes.c_int64), ("dw_w", ctypes.c_void_p)] + \
               [(n, ctypes.c_void_p) for n in ("rec_s", "rec_u", "rec_v")] + \
               [(n, ctypes.c_int64) for n in ("reset_interval", "reset_phase")] + \
               [(n, ctypes.c_void_p) for n in ("a_in", "sample_bias")] + [("a_in_rows", ctypes.c_int64)] + \
               [("dly", ctypes.c_void_p), ("n_ring", ctypes.c_int64)] + \
               [(n, ctypes.c_int64) for n in ("neuron", "role", "graded_in")] + [("graded_bound", ctypes.c_double)] + \
               [(n, ctypes.c_int64) for n in ("sd_vth", "sd_shift")] + \
               [(n, ctypes.c_void_p) for n in ("rf_sin", "rf_cos")] + [("rf_vth", ctypes.c_int64)] + \
               [("w_imag", ctypes.c_void_p), ("shift_imag", ctypes.c_int64)] + \
               [(n, ctypes.c_void_p) for n in ("rec_m", "rec_sigma")] + [("in_order", ctypes.c_void_p)] + \
               [(n, ctypes.c_void_p) for n in ("cnt", "cnt_last")] + \
               [(n, ctypes.c_int64) for n in ("cnt_lo", "cnt_hi")] + \
               [("nanos", ctypes.c_void_p), ("period", ctypes.c_int64)]


NEURONS = {"lif": 0, "sdnn": 1, "rf": 2}
SDNN_ROLES = {"delta": 0, "sigma_delta": 1, "sigma": 2}


class KernelLayer:
    """One synaptic layer in the kernel's terms (arrays C-contiguous, int32 unless noted).

    Its sums come from the dot path (``dot``, see :func:`dot_table`; or :func:`depthwise_table`'s path where ``dot``
    holds ``dw_w``), else the table path (``table``,
    see :func:`nibble_table`), else the fan-out table ``fan`` (see :func:`fan_table`) with weights
    ``w`` ``[taps, C_in / groups, C_out]``. A layer given both ``dot`` and ``fan`` chooses at every step: the dot
    path where the step has at least ``dot_min`` input events (spikes, or non-zero messages, whose magnitudes must
    then stay below 2^15), else the fan-out path, which costs per event. ``w_rec`` is ``[n_out (source), n_out]``
    (fan-out path only). ``neuron`` holds the neurons' model (``kind``) and per-neuron integers:

    * ``'lif'``: ``keep_u``, ``keep_v`` (4096 - decay), ``bias`` (``bias_mant << 6``, or None), ``vth``
      (``vThMant << 6``) and the flags ``u_mode`` (0 no decay, 1 decay, 2 ``iDecay == 4096``), ``v_decays``,
      ``u_may_wrap``;
    * ``'sdnn'``: ``role`` (``'delta'``, ``'sigma_delta'``, ``'sigma'``), ``vth`` (one int, state units), ``bias``
      (state units, or None), ``shift`` (a Delta's ``a_in`` shift); it sends int32 messages;
    * ``'rf'``: ``sin``, ``cos`` (int64, 1/4096), ``vth`` (one int), ``izhikevich``; its imaginary synapse has
      the weights ``w_imag`` (like ``w``) and exponent ``shift_imag``.

    ``input_neurons``: NetX's Input block, no synapse (its ``a_in`` and per-sample bias are given to
    :func:`run`); it must be the first layer. ``delay`` (a dense layer on the fan-out path): per-synapse axonal
    delays ``[n_in, n_out]`` in 0..62. ``graded_in``: the input is int32 messages (fan-out path, and the dot path
    where given), and a step whose
    largest ``|message| * graded_bound`` reaches 2^31 stops the run (:class:`~sj2lava.errors.GradedOverflowError`).
    """

    def __init__(self, n_in: int, n_out: int, co: int, shift: int, wrap: bool, neuron: dict, *,
                 fan: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None, w: Optional[np.ndarray] = None,
                 groups: int = 1, w_rec: Optional[np.ndarray] = None,
                 table: Optional[Tuple[np.ndarray, np.ndarray, int]] = None, dot: Optional[dict] = None,
                 input_neurons: bool = False, delay: Optional[np.ndarray] = None, graded_in: bool = False,
                 graded_bound: float = 0.0, w_imag: Optional[np.ndarray] = None, shift_imag: int = 0,
                 dot_min: int = 0):
        self.n_in, self.n_out = n_in, n_out
        kind = neuron["kind"]
        self.kind, self.role = kind, neuron.get("role")
        self.input_neurons, self.graded_in = input_neurons, graded_in
        if (table is not None or (dot is not None and "dw_w" in dot)) and (kind != "lif" or graded_in):
            raise ValueError("event kernel: the table and depthwise paths take spikes into CUBA neurons only")
        if dot is not None and ((kind != "lif" and not graded_in) or (graded_in and fan is None) or
                                w_imag is not None or w_rec is not None or delay is not None):
            raise ValueError("event kernel: the dot path takes spikes into CUBA neurons, or graded messages into a "
                             "layer that has the fan-out path too (for messages past 16 bits); no recurrent, "
                             "delayed or imaginary synapse")
        if w_imag is not None and (kind != "rf" or fan is None or w_rec is not None or delay is not None):
            raise ValueError("event kernel: imaginary weights belong to a resonate-and-fire layer on the fan-out path")
        if w_rec is not None and kind != "lif":
            raise ValueError("event kernel: a recurrent synapse needs CUBA neurons")
        sums = _sum_arrays(n_in, fan, w, w_rec, table, dot, input_neurons, w_imag)
        n_ring = 0
        if delay is not None:
            sums["dly"] = _delay_array(delay, w, fan)
            n_ring = int(delay.max()) + 1
        per, flags = _neuron_arrays(neuron, n_out, 0 if input_neurons else co)
        flags.update(graded_in=int(graded_in), graded_bound=float(graded_bound))
        # the arrays stay referenced here for as long as the struct points at them
        self.arrays = dict(sums, **per)
        sizes = {k: int(dot[k]) for k in _DOT_SIZES} if dot is not None else {}
        self.struct = _KernelLayerC(n_in=n_in, n_out=n_out, cig=0 if w is None else w.shape[1], co=co,
                                    groups=int(groups), shift=int(shift), wrap=int(wrap), shift_imag=int(shift_imag),
                                    n_nib=0 if table is None else table[1].shape[1],
                                    nib_bytes=0 if table is None else table[2], n_ring=n_ring, **sizes, **flags,
                                    dot_min=int(dot_min) if dot is not None and fan is not None else 0,
                                    **{k: None if a is None else a.ctypes.data for k, a in self.arrays.items()})


def _c32(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return None if a is None else np.ascontiguousarray(a, dtype=np.int32)


def _c64(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
    return None if a is None else np.ascontiguousarray(a, dtype=np.int64)


def _sum_arrays(n_in: int, fan, w, w_rec, table, dot, input_neurons: bool, w_imag) -> Dict[str, Optional[np.ndarray]]:
    """The arrays of the layer's sum path (dot, table or fan-out; none for input neurons), as the kernel reads them."""
    if input_neurons:
        return {}
    arrays: Dict[str, Optional[np.ndarray]] = {}
    if dot is not None and "dw_w" in dot:
        return dict(dw_w=_c32(dot["dw_w"]), rel=_c32(dot["rel"]), base=_c32(dot["base"]))
    if dot is not None:
        arrays = dict(w8=np.ascontiguousarray(dot["w8"], dtype=np.int8), rel=_c32(dot["rel"]), base=_c32(dot["base"]),
                      w8_corr=_c32(dot["w8_corr"]))
        if fan is None:
            return arrays
    if table is not None:
        return dict(lut=_c32(table[0]), nib_at=_c32(table[1]))
    positions = fan[0].shape[0] - 1
    channels = n_in // positions
    return dict(arrays, pos=_c32(np.repeat(np.arange(positions), channels)),
                chan=_c32(np.tile(np.arange(channels), positions)), fan_start=_c32(fan[0]), fan_out=_c32(fan[1]),
                fan_tap=_c32(fan[2]), w=_c32(w), w_rec=_c32(w_rec), w_imag=_c32(w_imag))


def _delay_array(delay: np.ndarray, w: Optional[np.ndarray], fan) -> np.ndarray:
    if w is None or fan is None or w.shape[0] != 1 or delay.shape != w.shape[1:] or delay.min() < 0 \
            or delay.max() > 62:
        raise ValueError(f"event kernel: delays {delay.shape} must be 0..62 per synapse of a dense layer "
                         "on the fan-out path")
    return np.ascontiguousarray(delay, dtype=np.uint8)


def _neuron_arrays(neuron: dict, n_out: int, co: int) -> Tuple[Dict[str, Optional[np.ndarray]], dict]:
    """``(per-neuron arrays, struct flags)`` of the layer's neuron model (:class:`KernelLayer`'s ``neuron``). CUBA
    parameters that repeat every ``co`` neurons (per channel) are kept once, as ``co + 16`` values (the kernel's
    ``period``; ``co`` 0: never)."""
    kind = neuron["kind"]
    flags: dict = dict(neuron=NEURONS[kind])
    if kind == "lif":
        per = dict(keep_u=_c32(neuron["keep_u"]), keep_v=_c32(neuron["keep_v"]), bias=_c32(neuron["bias"]),
                   vth=_c32(neuron["vth"]))
        flags.update(u_mode=int(neuron["u_mode"]), v_decays=int(neuron["v_decays"]),
                     u_may_wrap=int(neuron["u_may_wrap"]))
    elif kind == "sdnn":
        per = dict(bias=_c32(neuron["bias"]))
        flags.update(role=SDNN_ROLES[neuron["role"]], sd_vth=int(neuron["vth"]), sd_shift=int(neuron["shift"]))
    else:
        per = dict(rf_sin=_c64(neuron["sin"]), rf_cos=_c64(neuron["cos"]))
        flags.update(role=int(bool(neuron["izhikevich"])), rf_vth=int(neuron["vth"]))
    for name, a in per.items():
        if a is not None and a.size != n_out:
            raise ValueError(f"event kernel: {name} has {a.size} values for {n_out} neurons")
    if kind == "lif" and 0 < co < n_out and n_out % co == 0 and all(
            a is None or (a.reshape(-1, co) == a[:co]).all() for a in per.values()):
        flags.update(period=co)
        per = {name: None if a is None else np.ascontiguousarray(a[np.arange(co + 16) % co]) for name, a in per.items()}
    return per, flags


GradedOverflow = GradedOverflowError  # the kernel's name for it: one exception for one event (sj2lava.errors)


def run(layers: Sequence[KernelLayer], x: np.ndarray, spikes: Sequence[bool], state: Sequence[bool],
        threads: int, resets: Optional[Sequence[Tuple[int, int]]] = None,
        sample_bias: Optional[np.ndarray] = None, sigma: Optional[Sequence[bool]] = None,
        in_order: Optional[np.ndarray] = None,
        counts: Optional[Sequence[Tuple[int, int]]] = None) -> List[Dict[str, Optional[np.ndarray]]]:
    """All layers on ``x`` ``[T, B, n_in]`` (uint8 spikes, or int32 messages where the first layer is
    ``graded_in``; in the stored order, or read through ``in_order``: stored value ``i`` is value
    ``in_order[i]`` of a row), the samples shared out to ``threads`` threads one at a time as each thread
    becomes free.
    ``resets[j] = (interval, phase)``: layer ``j``'s ``u`` and ``v`` are zeroed before step ``t`` when
    ``(t + 1) % interval == phase`` (NetX's LIFReset). A net that starts with input neurons takes ``x`` as their
    ``a_in`` (int32 ``[T, B, n]``, stored order) and ``sample_bias`` (int32 ``[B, n]``, ``bias_mant << 6``) as
    their bias.

    Returns per layer a dict of ``[T, B, n_out]`` arrays (None where not asked for): ``'spikes'`` where
    ``spikes[j]`` (uint8, or the int32 messages of SDNN neurons), ``'current'`` and ``'voltage'`` (CUBA ``u`` and
    ``v``) where ``state[j]``, ``'sigma'`` (SDNN sigma state) where ``sigma[j]``. With ``counts[j] = (lo, hi)``,
    also ``'fired'`` (int64 ``[n_out]``: per neuron its non-zero outputs at steps ``lo .. hi - 1``, summed over the
    samples) and ``'last'`` (those at step ``hi - 1``), counted by the kernel without recording anything. Raises
    :class:`~sj2lava.errors.GradedOverflowError` when a graded sum could reach 2^31.
    """
    lib = _require_library()
    steps, batch = x.shape[:2]
    first = layers[0]
    _check_chain(layers)
    kx = _KernelInput(first, x, sample_bias)
    structs = (_KernelLayerC * len(layers))()
    out = [_records(layer, structs, j, (steps, batch, layer.n_out), spikes[j], state[j],
                    sigma is not None and sigma[j], None if resets is None else resets[j])
           for j, layer in enumerate(layers)]
    for j, window in enumerate(counts or ()):  # the arrays stay referenced in out until the run ends
        fired, last = np.zeros(layers[j].n_out, np.int64), np.zeros(layers[j].n_out, np.int64)
        out[j]["fired"], out[j]["last"] = fired, last
        structs[j].cnt, structs[j].cnt_last = fired.ctypes.data, last.ctypes.data
        structs[j].cnt_lo, structs[j].cnt_hi = window
    if in_order is not None:
        in_order = np.ascontiguousarray(in_order, dtype=np.int32)  # referenced here until the run ends
        n_first = first.n_out if first.input_neurons else first.n_in
        if in_order.shape != (n_first,) or not np.array_equal(np.sort(in_order), np.arange(n_first)):
            raise ValueError(f"event kernel: in_order must be a permutation of {n_first} positions")
        structs[0].in_order = in_order.ctypes.data
    kx.attach(structs[0])
    timer = _timer
    nanos: Optional[np.ndarray] = None  # per layer, where timed; referenced here until the run ends
    if timer is not None:
        nanos = np.zeros(len(layers), np.int64)
        for j in range(len(layers)):
            structs[j].nanos = nanos[j:].ctypes.data
    fault = (ctypes.c_int64 * 2)(0, 0)
    _launch(lib, structs, len(layers), kx.x, batch, steps, threads, fault)
    if timer is not None and nanos is not None:
        timer.add(nanos)
    if fault[0]:
        layer, top = int(fault[0]) - 1, int(fault[1])
        raise GradedOverflowError(f"event kernel: layer {layer} receives graded messages up to {top}", layer, top)
    return out


class LayerTimer:
    """Each layer's time in the kernel runs made while it is entered (``with LayerTimer() as t: ...``), for the
    benchmarks: ``t.seconds[j]`` is kernel layer ``j``'s time in seconds summed over the kernel's threads (its sums,
    neuron step and counting; two clock reads per layer and step), ``t.runs`` the runs timed. One timer at a time,
    and the runs timed must have the same layers."""

    def __init__(self) -> None:
        self.seconds: np.ndarray = np.zeros(0)
        self.runs = 0

    def add(self, nanos: np.ndarray) -> None:
        if self.runs and nanos.size != self.seconds.size:
            raise ValueError(f"LayerTimer: a run of {nanos.size} layers after runs of {self.seconds.size}")
        self.seconds = (self.seconds if self.runs else np.zeros(nanos.size)) + nanos / 1e9
        self.runs += 1

    def __enter__(self) -> LayerTimer:
        global _timer
        if _timer is not None:
            raise RuntimeError("LayerTimer: another timer is running")
        _timer = self
        return self

    def __exit__(self, *exc) -> None:
        global _timer
        _timer = None


_timer: Optional[LayerTimer] = None


def dot_peak(threads: int = 1, seconds: float = 0.3) -> float:
    """This machine's measured peak of the dot path's instruction (VPDPBUSD, 64 int8 multiply-adds), in int8
    multiply-adds per second over ``threads`` threads running at once (0.0 without the dot path)."""
    lib = _require_library()
    if not lib.sj2lava_has_dot():
        return 0.0
    rounds = 1 << 16  # 12 instructions a round
    lib.sj2lava_dot_peak(ctypes.c_int64(rounds))  # warm up (clock ramp)
    while True:
        t = time.perf_counter()
        lib.sj2lava_dot_peak(ctypes.c_int64(rounds))
        if time.perf_counter() - t > seconds / 4:
            break
        rounds *= 2

    def part(_: int) -> float:
        t0 = time.perf_counter()
        lib.sj2lava_dot_peak(ctypes.c_int64(rounds))
        return time.perf_counter() - t0

    with ThreadPoolExecutor(threads) as pool:
        took = max(pool.map(part, range(threads)))
    return threads * rounds * 12 * 64 / took


def _check_chain(layers: Sequence[KernelLayer]) -> None:
    if any(layer.input_neurons for layer in layers[1:]):
        raise ValueError("event kernel: input neurons can only be the first layer")
    for j, layer in enumerate(layers[1:], 1):
        if layer.graded_in != (layers[j - 1].kind == "sdnn"):
            raise ValueError(f"event kernel: layer {j} takes {'messages' if layer.graded_in else 'spikes'}, and "
                             f"layer {j - 1} sends {'messages' if layers[j - 1].kind == 'sdnn' else 'spikes'}")


class _KernelInput:
    """The run's input as the kernel takes it: ``x`` (uint8 spikes or int32 messages) for a first synaptic
    layer; for input neurons, their ``a_in`` (one shared zero row when all zero) and per-sample ``bias``."""

    def __init__(self, first: KernelLayer, x: np.ndarray, sample_bias: Optional[np.ndarray]) -> None:
        batch, n_x = x.shape[1], x.shape[2]
        self.a_in: Optional[np.ndarray] = None
        self.bias: Optional[np.ndarray] = None
        self.x: Optional[np.ndarray] = None
        self.shared = False
        if not first.input_neurons:
            if n_x != first.n_in:
                raise ValueError(f"event kernel: x has {n_x} inputs, the first layer takes {first.n_in}")
            self.x = np.ascontiguousarray(x, dtype=np.int32 if first.graded_in else np.uint8)
            return
        if n_x not in (0, first.n_out) or (sample_bias is not None and sample_bias.shape != (batch, first.n_out)):
            raise ValueError(f"event kernel: input neurons take a_in [T, B, {first.n_out}] and a bias [B, "
                             f"{first.n_out}]; got {x.shape} and {None if sample_bias is None else sample_bias.shape}")
        # none given (width 0), or all zeros (a net driven by its bias alone): one shared zero row instead of T * B
        self.zero = n_x == 0 or not x.any()
        self.a_in = np.zeros((1, 1, first.n_out), np.int32) if self.zero else np.ascontiguousarray(x, dtype=np.int32)
        # one bias image for every sample (a broadcast row): the neurons' own bias for this run, not B copies
        self.shared = sample_bias is not None and batch > 1 and sample_bias.strides[0] == 0
        if sample_bias is not None:
            self.bias = np.ascontiguousarray(sample_bias[:1] if self.shared else sample_bias, dtype=np.int32)

    def attach(self, struct: _KernelLayerC) -> None:
        """Point the first layer's struct at the input neurons' arrays (which this object keeps alive)."""
        if self.a_in is None:
            return
        struct.a_in = self.a_in.ctypes.data
        struct.a_in_rows = int(not self.zero)
        struct.sample_bias = None if self.bias is None or self.shared else self.bias.ctypes.data
        if self.shared:
            assert self.bias is not None
            struct.bias = self.bias.ctypes.data


def _records(layer: KernelLayer, structs, j: int, shape: Tuple[int, int, int], spikes: bool, state: bool,
             sigma: bool, reset: Optional[Tuple[int, int]]) -> Dict[str, Optional[np.ndarray]]:
    """Layer ``j``'s output arrays (None where not asked for), its struct set to write them."""
    lif, sdnn = layer.kind == "lif", layer.kind == "sdnn"
    rec = dict(spikes=np.empty(shape, np.int32 if sdnn else np.uint8) if spikes else None,
               current=np.empty(shape, np.int32) if state and lif else None,
               voltage=np.empty(shape, np.int32) if state and lif else None,
               sigma=np.empty(shape, np.int32) if sigma and sdnn and layer.role != "delta" else None)
    structs[j] = layer.struct
    structs[j].reset_interval, structs[j].reset_phase = reset if reset is not None else (0, 0)
    ptr = lambda a: None if a is None else a.ctypes.data  # noqa: E731
    structs[j].rec_s, structs[j].rec_m = (None, ptr(rec["spikes"])) if sdnn else (ptr(rec["spikes"]), None)
    structs[j].rec_u, structs[j].rec_v = ptr(rec["current"]), ptr(rec["voltage"])
    structs[j].rec_sigma = ptr(rec["sigma"])
    return rec


def _launch(lib: ctypes.CDLL, structs, n_layers: int, x: Optional[np.ndarray], batch: int, steps: int, threads: int,
            fault) -> None:
    """Run the kernel on ``threads`` threads (at most one per sample), each claiming the next sample as it frees."""
    workers = max(1, min(threads, batch))
    next_sample = ctypes.c_int64(0)  # the threads claim samples from this counter
    i64 = ctypes.c_int64

    def part(_: int) -> int:  # ctypes lets go of the GIL for the call
        data = None if x is None else x.ctypes.data_as(ctypes.c_void_p)
        return lib.sj2lava_run(structs, i64(n_layers), data, i64(1), i64(batch),
                               ctypes.byref(next_sample), i64(batch), i64(steps), fault)

    if workers == 1:
        status = [part(0)]
    else:  # the calling thread is one of the workers: one thread fewer to start and to wait for
        with ThreadPoolExecutor(workers - 1) as pool:
            others = [pool.submit(part, i) for i in range(1, workers)]
            status = [part(0)] + [f.result() for f in others]
    if any(status):
        raise MemoryError("emulate: the event kernel could not allocate its scratch memory")
