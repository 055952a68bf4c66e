"""lava-dl (``lava.lib.dl.slayer``): its CUBA neurons and blocks, in and out.

- In: ``slayer.neuron.cuba.Neuron`` converts to :class:`~sj2lava.neuron.CubaLIFNode` (a registered neuron
  rule); ``slayer.block.cuba`` ``Dense`` / ``Conv`` / ``Pool`` / ``Flatten`` blocks export to NetX
  (a registered block exporter) and :func:`sj2lava.convert` reads them as BlockContainers (a registered
  block reader); every other lava-dl block is refused by name.
- Out: the lava-dl block equal to a BlockContainer (:func:`lava_block`, behind
  ``BlockContainer.to_lava_block``), :func:`to_lava` for a whole model, :func:`to_lava_neuron`, and
  SpikingJelly's ``lava_exchange`` synapse functions under their SpikingJelly names.

lava-dl is imported only when a lava-dl object is built; recognising one needs no import.
"""
from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

import numpy as np
import torch
from torch import nn

from .. import quant, synapses
from .._deps import HINT, quiet_import
from ..block import BlockContainer
from ..convert import Frontend, register_frontend
from ..errors import ExportError, UnsupportedLayerError
from ..export import BlockExporter
from ..export import neuron as netx_neuron
from ..netx.spec import Conv, Dense, Flatten, Layer, Shape, conv_out_shape
from ..neuron import CubaLIFNode, NeuronRule, to_cuba, unsupported_neuron
from ..pool import SumPool2d, pair
from ..synapses import host, need_image, pool_tap, rule_for, scaled

__all__ = ["lava_block", "to_lava", "to_lava_neuron", "lava_neuron_params", "copy_decays_to_lava",
           "conv2d_to_lava_synapse_conv", "linear_to_lava_synapse_dense", "avgpool2d_to_lava_synapse_pool"]


def _slayer() -> ModuleType:
    """``lava.lib.dl.slayer``, or an ImportError that says how to install it."""
    try:
        return quiet_import("lava.lib.dl.slayer")
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"lava-dl is needed for this: {e}. {HINT}") from e


# --------------------------------------------------------------------------- neurons
def _from_slayer(neuron: nn.Module, where: str) -> CubaLIFNode:
    if int(neuron.w_scale) != quant.W_SCALE:
        raise UnsupportedLayerError(f"{where}: lava-dl neuron with scale={neuron.w_scale}; use 64.")
    if neuron.current_decay.numel() != 1 or not neuron.shared_param:
        raise UnsupportedLayerError(
            f"{where}: lava-dl neuron with per-channel decays (shared_param=False) is not supported; "
            "use shared_param=True."
        )
    if getattr(neuron, "norm", None) is not None or getattr(neuron, "graded_spike", False):
        raise UnsupportedLayerError(
            f"{where}: lava-dl neuron with norm or graded_spike is not supported; use norm=None, "
            "graded_spike=False (a bias belongs to sj2lava.BlockContainer's synapse)."
        )
    node = CubaLIFNode(1.0, 1.0, float(neuron.threshold), requires_grad=bool(neuron.requires_grad))
    with torch.no_grad():
        node.current_decay.copy_(neuron.current_decay.detach().reshape(1).float())
        node.voltage_decay.copy_(neuron.voltage_decay.detach().reshape(1).float())
    return node


def lava_neuron_params(node: CubaLIFNode) -> dict:
    """Keyword arguments of lava-dl's ``cuba.Neuron`` equal to ``node`` (floored threshold)."""
    return dict(
        threshold=node.threshold,
        current_decay=float(node.current_decay.detach()[0]) / quant.P_SCALE,
        voltage_decay=float(node.voltage_decay.detach()[0]) / quant.P_SCALE,
        scale=quant.W_SCALE,
        requires_grad=node.requires_grad,
    )


def copy_decays_to_lava(node: CubaLIFNode, lava_neuron: nn.Module) -> None:
    """Copy the stored decay parameters bit for bit, so lava-dl rounds exactly what we round."""
    with torch.no_grad():
        lava_neuron.current_decay.data = node.current_decay.detach().clone().reshape(1)
        lava_neuron.voltage_decay.data = node.voltage_decay.detach().clone().reshape(1)


def to_lava_neuron(neuron: nn.Module) -> nn.Module:
    """The equivalent lava-dl ``slayer.neuron.cuba.Neuron`` (learned decays, floored threshold).

    Accepts anything :func:`to_cuba` accepts. Needs lava-dl.
    """
    node = cast(Tuple[CubaLIFNode, float], to_cuba(neuron, with_input_scale=True))[0]
    lava = _slayer().neuron.cuba.Neuron(**lava_neuron_params(node))
    copy_decays_to_lava(node, lava)
    return lava


def _recognises(m: nn.Module) -> bool:
    return type(m).__module__.startswith("lava.lib.dl.slayer.neuron")


def _to_cuba(m: nn.Module, where: str, approximate: bool) -> Tuple[CubaLIFNode, float]:
    if not (type(m).__name__ == "Neuron" and type(m).__module__.endswith("neuron.cuba")):
        raise unsupported_neuron(m, where)
    return _from_slayer(m, where), 1.0




# --------------------------------------------------------------------------- blocks out
def _neuron_kwargs_with_bias(neuron_kwargs: Optional[dict], bias: Optional[torch.Tensor]) -> Optional[dict]:
    if bias is None:
        return neuron_kwargs
    mant = quant.bias_mant(bias).double()
    return dict(neuron_kwargs or {}, norm=lambda: _NeuronBias(mant))


class _NeuronBias(nn.Module):
    """lava-dl ``norm`` hook that adds a per-channel bias to the neuron's voltage input.

    slayer's CUBA neuron feeds ``norm(current)`` to the voltage integrator, so adding the bias here is
    ``v = a_v v + u + bias``, NetX's ``bias_mant`` (exponent 6) semantics; lava-dl's HDF5 export
    writes ``norm.bias`` as the layer's ``bias``.
    """

    def __init__(self, bias_mant: torch.Tensor):
        super().__init__()
        self.register_buffer("bias", bias_mant.float())

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        b = self.bias / quant.W_SCALE
        return current + b.view(1, -1, *([1] * (current.dim() - 2)))


def _conv_to_lava(m: nn.Conv2d, neuron_kwargs: Optional[dict], delay_shift: bool, scale: float):
    blk = _slayer().block.cuba.Conv(
        _neuron_kwargs_with_bias(neuron_kwargs, rule_for(m, type(m).__name__).bias(m, scale)),
        in_features=m.in_channels, out_features=m.out_channels, kernel_size=m.kernel_size,
        stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups,
        delay_shift=delay_shift,
    )
    with torch.no_grad():
        blk.synapse.weight.data[..., 0] = scaled(m.weight.detach(), scale)
    return blk


def _dense_to_lava(m: nn.Linear, neuron_kwargs: Optional[dict], delay_shift: bool, scale: float):
    blk = _slayer().block.cuba.Dense(
        _neuron_kwargs_with_bias(neuron_kwargs, rule_for(m, type(m).__name__).bias(m, scale)),
        m.in_features, m.out_features, delay_shift=delay_shift,
    )
    with torch.no_grad():
        blk.synapse.weight.data[:, :, 0, 0, 0] = scaled(m.weight.detach(), scale)
    return blk


def _pool_to_lava(m: SumPool2d, neuron_kwargs: Optional[dict], delay_shift: bool, scale: float):
    if m.stride != m.kernel_size:
        raise UnsupportedLayerError(
            f"SumPool2d(kernel_size={m.kernel_size}, stride={m.stride}): lava-dl's Pool block is only "
            "correct for stride == kernel_size (it pools across channel boundaries otherwise). "
            "Use stride=kernel_size; sj2lava.export writes other strides as a depthwise conv."
        )
    return _slayer().block.cuba.Pool(
        neuron_kwargs, m.kernel_size, stride=m.stride, weight_scale=pool_tap(m, scale),
        delay_shift=delay_shift,
    )


def _flatten_to_lava(m: nn.Flatten, neuron_kwargs: Optional[dict], delay_shift: bool, scale: float):
    return _slayer().block.cuba.Flatten()


# --------------------------------------------------------------------------- lava-dl blocks


_BUILDERS: Dict[str, Callable[..., nn.Module]] = {
    "conv": _conv_to_lava, "dense": _dense_to_lava, "pool": _pool_to_lava, "flatten": _flatten_to_lava,
}
"""The lava-dl block for each synapse kind of :mod:`sj2lava.synapses`."""


def lava_block(synapse: nn.Module, neuron: Optional[CubaLIFNode], delay_shift: bool,
               input_scale: float = 1.0, where: str = "block") -> nn.Module:
    """The lava-dl ``slayer.block.cuba`` block computing ``neuron(synapse(x))`` (needs lava-dl)."""
    build = _BUILDERS[rule_for(synapse, where).kind]
    if neuron is None:
        return build(synapse, None, delay_shift, input_scale)
    blk = build(synapse, lava_neuron_params(neuron), delay_shift, input_scale)
    copy_decays_to_lava(neuron, blk.neuron)
    return blk


# --------------------------------------------------------------------------- SpikingJelly names
def _no_bias(m: nn.Module, fn: str) -> None:
    if getattr(m, "bias", None) is not None:
        raise UnsupportedLayerError(
            f"{fn}: {type(m).__name__} has a bias, and lava-dl synapses have none. Build a "
            "sj2lava.BlockContainer instead: it carries the bias into the neuron (NetX bias)."
        )




def conv2d_to_lava_synapse_conv(conv2d_nn: nn.Conv2d) -> nn.Module:
    """SpikingJelly-compatible: a lava-dl ``slayer.synapse.Conv`` with ``conv2d_nn``'s weights."""
    synapses.CONV.check(conv2d_nn, "conv2d_to_lava_synapse_conv")
    _no_bias(conv2d_nn, "conv2d_to_lava_synapse_conv")
    syn = _slayer().synapse.Conv(
        in_features=conv2d_nn.in_channels, out_features=conv2d_nn.out_channels,
        kernel_size=conv2d_nn.kernel_size, stride=conv2d_nn.stride, padding=conv2d_nn.padding,
        dilation=conv2d_nn.dilation, groups=conv2d_nn.groups,
    )
    with torch.no_grad():
        syn.weight.data[..., 0] = conv2d_nn.weight.detach()
    return syn


def linear_to_lava_synapse_dense(fc: nn.Linear) -> nn.Module:
    """SpikingJelly-compatible: a lava-dl ``slayer.synapse.Dense`` with ``fc``'s weights."""
    _no_bias(fc, "linear_to_lava_synapse_dense")
    syn = _slayer().synapse.Dense(fc.in_features, fc.out_features)
    with torch.no_grad():
        syn.weight.data[:, :, 0, 0, 0] = fc.weight.detach()
    return syn


def avgpool2d_to_lava_synapse_pool(pool2d_nn: nn.AvgPool2d) -> nn.Module:
    """SpikingJelly-compatible: a lava-dl ``slayer.synapse.Pool`` (a sum-pool; warns)."""
    where = "avgpool2d_to_lava_synapse_pool"
    normalize = rule_for(pool2d_nn, where).normalize
    assert normalize is not None  # the AvgPool2d rule: a sum-pool, with a warning
    pool = cast(SumPool2d, normalize(pool2d_nn, where))
    return _slayer().synapse.Pool(pool.kernel_size, pool.stride)


def to_lava(model: nn.Module) -> nn.Sequential:
    """``nn.Sequential`` of lava-dl ``slayer.block.cuba`` blocks equal to ``model`` (converted first
    if it is not made of BlockContainers). Needs lava-dl."""
    from ..block import BlockContainer
    from ..convert import convert

    _slayer()
    plain = isinstance(model, nn.Sequential) and all(isinstance(b, BlockContainer) for b in model)
    blocks = cast(nn.Sequential, model) if plain else convert(model)
    return nn.Sequential(*[cast(BlockContainer, b).to_lava_block() for b in blocks])


# --------------------------------------------------------------------------- blocks in (export, convert)
def _lava_kind(blk: nn.Module) -> Optional[str]:
    if type(blk).__module__ != "lava.lib.dl.slayer.block.cuba":
        return None
    return {"Dense": "dense", "Conv": "conv", "Pool": "pool", "Flatten": "flatten"}.get(type(blk).__name__)


def _is_slayer_block(m: nn.Module) -> bool:
    return type(m).__module__.startswith("lava.lib.dl.slayer.block.")


def _from_slayer_block(blk: nn.Module, path: str, notes: List[str]) -> BlockContainer:
    """A lava-dl ``slayer.block.cuba`` Dense / Conv / Pool / Flatten block as the BlockContainer that computes
    the same spikes: its quantized weights (``pre_hook_fx``, already on Loihi's grid), its neuron, its
    ``delay_shift``, and a bias that :func:`lava_block` wrote as the neuron's ``norm``."""
    kind = _lava_kind(blk)
    where = f"{path} (lava-dl {type(blk).__module__.rsplit('.', 1)[-1]}.{type(blk).__name__})"
    if type(blk).__module__ == "lava.lib.dl.slayer.block.cuba" and type(blk).__name__ == "Recurrent":
        return _from_slayer_recurrent(blk, where)
    if kind is None:
        _refuse_block(blk, where)
    if kind == "flatten":
        return BlockContainer(nn.Flatten(), None, "m")
    assert kind is not None  # refused above
    delay = _axon_delays(blk, kind, where, notes, path)
    syn = blk.synapse
    w = _grid_weight(syn, where)
    neuron = copy.deepcopy(blk.neuron)
    bias = _norm_bias(neuron, where, path, notes)
    k = pair(tuple(int(v) for v in syn.kernel_size[:2]))
    if kind == "dense":
        new: nn.Module = nn.Linear(int(syn.in_channels), int(syn.out_channels), bias=bias is not None)
        weight = w.reshape(w.shape[:2])
    elif kind == "conv":
        new = nn.Conv2d(int(syn.in_channels), int(syn.out_channels), k, stride=pair(syn.stride[:2]),
                        padding=pair(syn.padding[:2]), dilation=pair(syn.dilation[:2]), groups=int(syn.groups),
                        bias=bias is not None)
        weight = w.reshape(w.shape[:4])
    else:
        taps = torch.unique(w)
        if taps.numel() != 1 or tuple(syn.stride[:2]) != k or tuple(syn.padding[:2]) != (0, 0):
            raise UnsupportedLayerError(f"{where}: a Pool with several tap weights, a stride other than its kernel "
                                        "or padding has no sum-pool form; use stride == kernel, no padding")
        notes.append(f"{path}: lava-dl Pool{k} as a sum-pool; lava-dl pads odd map sizes where NetX drops the "
                     "last row/column: use sizes divisible by the kernel")
        return BlockContainer(SumPool2d(k, k, weight=float(taps[0])), neuron, "m", delay_shift=bool(blk.delay_shift))
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias.reshape(-1))
    return BlockContainer(new, neuron, "m", delay_shift=bool(blk.delay_shift), delay=delay)


def _refuse_block(blk: nn.Module, where: str) -> None:
    if type(blk).__name__ == "Affine":
        raise UnsupportedLayerError(f"{where}: lava-dl's Affine block sends its neurons' voltage, not spikes, and "
                                    "NetX layers spike; end the model with a Dense block and read its voltage "
                                    "(emulate(..., record=('voltage',)))")
    if ".sigma_delta" in type(blk).__module__:
        raise UnsupportedLayerError(f"{where}: a sigma-delta block sends graded messages, not a BlockContainer's "
                                    "spikes; pass the whole sigma-delta model to sj2lava.to_sdnn")
    raise UnsupportedLayerError(f"{where}: sj2lava converts lava-dl's cuba Dense, Conv, Pool, Flatten and "
                                "Recurrent blocks; this one has no converter")


def _norm_bias(neuron: nn.Module, where: str, path: str, notes: List[str]) -> Optional[torch.Tensor]:
    """The bias :func:`lava_block` wrote as the neuron's ``norm`` (in float units), taken off the neuron."""
    norm = getattr(neuron, "norm", None)
    if norm is None:
        return None
    if not isinstance(norm, _NeuronBias):
        raise UnsupportedLayerError(f"{where}: its neuron has a {type(norm).__name__} norm, which NetX does not "
                                    "run; build it with norm=None")
    cast(Any, neuron).norm = None
    notes.append(f"{path}: the neuron's bias (lava-dl norm) becomes the synapse bias; lava-dl applies a block's "
                 "delay to its output, so with a bias its first step differs from Lava's (the container follows "
                 "Lava)")
    return norm.bias.detach().float() / quant.W_SCALE


def _axon_delays(blk: nn.Module, kind: str, where: str, notes: List[str], path: str) -> Optional[torch.Tensor]:
    """A ``delay=True`` block's axonal delays as lava-dl runs and exports them: ``floor`` of the learned
    ``slayer.axon.Delay`` values (its CPU shift truncates; ``export_hdf5`` floors), one per output neuron of a
    dense block. None for a block without delays."""
    d = getattr(blk, "delay", None)
    if d is None:
        return None
    if kind != "dense":
        raise UnsupportedLayerError(f"{where}: axonal delays on a {kind} block; NetX reads delays on dense layers "
                                    "only. Build it with delay=False")
    if not getattr(d, "init", True):
        raise UnsupportedLayerError(f"{where}: its delays are not initialised yet (lava-dl draws them on the first "
                                    "forward); run the model once, or train it, before converting")
    with torch.no_grad():
        learned = d.delay.detach().reshape(-1)
        steps = torch.floor(learned.clamp(min=0) / float(getattr(d, "sampling_time", 1)))
    if int(steps.max()) > quant.MAX_DELAY:
        raise UnsupportedLayerError(f"{where}: delays up to {int(steps.max())} steps; Lava holds 0..{quant.MAX_DELAY}")
    if bool((steps != learned).any()):
        notes.append(f"{path}: learned delays {float(learned.min()):.3g}..{float(learned.max()):.3g} taken as "
                     f"{int(steps.min())}..{int(steps.max())} steps (floored, as lava-dl's forward and export do)")
    return steps.to(torch.int64)


def _grid_weight(syn: nn.Module, where: str) -> torch.Tensor:
    """A slayer synapse's quantized weights (``pre_hook_fx``) in float units, checked to lie on Loihi's grid."""
    with torch.no_grad():
        w = torch.round(syn.pre_hook_fx(syn.weight.detach(), descale=True)) / quant.W_SCALE
    if not torch.equal(quant.quantize_weight(w), w):
        raise UnsupportedLayerError(f"{where}: its quantized weights leave Loihi's 8-bit grid (weight_exponent != 0 "
                                    "or weight scaling); build it with the default weight_scale and exponent")
    return w


def _from_slayer_recurrent(blk: nn.Module, where: str) -> BlockContainer:
    """lava-dl's ``cuba.Recurrent`` (``s[t] = f(W x[t] + R s[t-1])``, its output delayed one step by
    ``delay_shift``): the recurrent BlockContainer, whose spikes equal that output (Lava's timing)."""
    if getattr(blk, "delay", None) is not None:
        raise UnsupportedLayerError(f"{where}: axonal delays (delay=True) have no BlockContainer form yet")
    if getattr(blk, "bias", None) is not None:
        raise UnsupportedLayerError(f"{where}: its bias is added to the current input, which NetX's voltage bias "
                                    "only equals with current_decay = 1; build it without a bias")
    if getattr(blk.neuron, "norm", None) is not None:
        raise UnsupportedLayerError(f"{where}: its neuron has a norm, which NetX does not run; use norm=None")
    if not blk.delay_shift:
        raise UnsupportedLayerError(f"{where}: delay_shift=False; Lava delays every layer by one step")
    w_in, w_rec = _grid_weight(blk.input_synapse, where), _grid_weight(blk.recurrent_synapse, where)
    n = int(blk.input_synapse.out_channels)
    syn, rec = nn.Linear(int(blk.input_synapse.in_channels), n, bias=False), nn.Linear(n, n, bias=False)
    with torch.no_grad():
        syn.weight.copy_(w_in.reshape(w_in.shape[:2]))
        rec.weight.copy_(w_rec.reshape(w_rec.shape[:2]))
    return BlockContainer(syn, copy.deepcopy(blk.neuron), "m", recurrent=rec)




def _netx_neuron(blk: nn.Module, where: str):
    """The block's neuron as NetX's CUBA neuron (one shared set of decays and threshold)."""
    p = blk.neuron.device_params
    if p.get("type") != "CUBA" or p.get("gradedSpike"):
        raise ExportError(f"export: {where} has a {p.get('type')} neuron (graded={p.get('gradedSpike')}); "
                          "sj2lava exports binary CUBA neurons")
    if np.size(p["iDecay"]) != 1:
        raise ExportError(f"export: {where} has per-channel decays; use shared_param=True")
    return netx_neuron(int(p["iDecay"]), int(p["vDecay"]), int(p["vThMant"]))


def _lava_layer(blk: nn.Module, shape: Shape, where: str, refuse: Callable[[str], None]) -> Layer:
    kind = _lava_kind(blk)
    if kind == "flatten":
        return Flatten(shape, (int(np.prod(shape)),))
    if getattr(blk, "delay", None) is not None:
        raise ExportError(f"export: {where} has axonal delays, which sj2lava does not export; use delay=False")
    if not blk.delay_shift:
        refuse(f"export: {where} has delay_shift=False, but Lava delays every synaptic layer by one "
                "step. Build it with delay_shift=True.")
    neuron = _netx_neuron(blk, where)
    syn = blk.synapse
    w = host(torch.round(syn.pre_hook_fx(syn.weight.detach(), descale=True)).to(torch.int64))
    norm = getattr(blk.neuron, "norm", None)
    bias = None
    if norm is not None:
        bias = np.rint(host(norm.bias).reshape(-1)).astype(np.int64)
    if kind == "dense":
        w = w.reshape(w.shape[:2])
        if len(shape) != 1:
            raise ExportError(f"export: {where} is a Dense after a {shape} layer; put a Flatten before it")
        if shape[0] != w.shape[1]:
            raise ExportError(f"export: {where} takes {w.shape[1]} features but gets {shape[0]}")
        return Dense(shape, (w.shape[0],), w, neuron, bias)
    need_image(shape, where)
    k, s = tuple(syn.kernel_size[:2]), tuple(syn.stride[:2])
    pad, dil = tuple(syn.padding[:2]), tuple(syn.dilation[:2])
    if kind == "conv":
        w = w.reshape(w.shape[:4])
        out = conv_out_shape(shape, w.shape[0], k, s, pad, dil)
        return Conv(shape, out, w, s, pad, dil, int(syn.groups), neuron, bias)
    # lava-dl Pool: exact as a depthwise conv only where slayer neither pads nor crosses channels
    if s != k or pad != (0, 0) or dil != (1, 1) or shape[1] % k[0] or shape[2] % k[1]:
        raise ExportError(
            f"export: {where} is a lava-dl Pool with kernel {k}, stride {s}, padding {pad} on a {shape} "
            "input; lava-dl pads odd sizes (or pools across channels) where NetX's depthwise conv would "
            "not, so it cannot be exported exactly. Use stride == kernel and sizes divisible by the kernel."
        )
    taps = np.unique(w)
    w = np.full((shape[0], 1, *k), int(taps[0]), dtype=np.int64)
    return Conv(shape, conv_out_shape(shape, shape[0], k, s, pad, dil), w, s, pad, dil, shape[0], neuron, None)


_EXPORTER = BlockExporter(
    recognises=lambda blk: _lava_kind(blk) is not None,
    to_netx=_lava_layer,
    input_shape=lambda blk: (int(blk.synapse.in_channels),) if _lava_kind(blk) == "dense" else None,
)


# --------------------------------------------------------------------------- sigma-delta models in
def _is_slayer_sdnn(model: nn.Module) -> bool:
    blocks = list(model) if isinstance(model, nn.Sequential) else []
    return bool(blocks) and all(type(b).__module__ == "lava.lib.dl.slayer.block.sigma_delta" for b in blocks)


def _sdnn_from_slayer(model: nn.Module, example_input: torch.Tensor):
    """A ``slayer.block.sigma_delta`` model (``Input`` with a neuron first, ``Output`` last) as the file lava-dl's
    own ``export_hdf5`` writes for it, read back with :func:`sj2lava.load`. Its input unit is 1/64 (``a_in =
    round(64 x)``, vThMant = 64 x threshold) and its output ``sigma / 2^18``; Lava runs one step later per
    synapse than lava-dl's SDNN blocks (which have no synaptic delay)."""
    import tempfile

    import h5py

    from ..netx.hdf5 import load
    from ..sdnn import SdnnNet

    blocks = list(model)
    first, last = type(blocks[0]).__name__, type(blocks[-1]).__name__
    if first != "Input" or getattr(blocks[0], "neuron", None) is None or last != "Output":
        raise UnsupportedLayerError(f"to_sdnn: a lava-dl sigma-delta model starts with an Input block with a neuron "
                                    f"and ends with an Output block; this one runs {first} ... {last}")
    x = example_input.detach().float()
    with torch.no_grad():  # lava-dl sizes its blocks (and their export) on a first forward
        model(x.unsqueeze(-1).expand(*x.shape, 2).contiguous())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sdnn.net"
        with h5py.File(path, "w") as f:
            layer = f.create_group("layer")
            for i, blk in enumerate(blocks):
                blk.export_hdf5(layer.create_group(str(i)))
        spec = load(path)
    synapses = spec.synaptic_layers - 1  # Lava delays each synapse by one step

    def reference(m: nn.Module, x: torch.Tensor, steps: int) -> torch.Tensor:
        with torch.no_grad():
            y = m(x.float().unsqueeze(-1).expand(*x.shape, steps).contiguous())  # [N, *out, T]
        y = y.movedim(-1, 0).double()
        return torch.cat([torch.zeros_like(y[:synapses]), y[:steps - synapses]], 0)

    return SdnnNet(spec, float(quant.W_SCALE), float(quant.W_SCALE * quant.S_SCALE), None, [float(quant.W_SCALE)],
                   ["to_sdnn: the lava-dl sigma-delta model as lava-dl's own export_hdf5 writes it: a_in = "
                    "round(64 x), y = sigma / 2^18; Lava is one step later per synapse than lava-dl's blocks"]
                   + list(spec.notes),
                   reference)


register_frontend(Frontend(
    "lava-dl",
    neurons=[NeuronRule("lava-dl", _recognises, _to_cuba)],
    blocks=[(_is_slayer_block, _from_slayer_block)],
    exporters=[_EXPORTER],
    sdnn_readers=[(_is_slayer_sdnn, _sdnn_from_slayer)],
    lava_block=lava_block,
))
