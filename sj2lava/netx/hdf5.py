"""The NetX HDF5 (``.net``) format: atomic writing and validating reading of a :class:`NetSpec`.

Schema (lava-dl 0.6.0 / NetX, ``lava/lib/dl/netx/hdf5.py``); layers are ``layer/0 .. layer/<n-1>``::

    layer/i/type        ASCII string, shape (1,): input | conv | dense | dense_rec | flatten
    input:   shape      (C, H, W) or (features,), PyTorch order (NetX reverses it to W, H, C)
             optional neuron/ (input neurons) and weight, bias (NetX's transform: stored, never applied)
    conv:    shape      output (C, H, W);  weight (C_out, C_in/groups, kH, kW) integer mantissas
             stride, padding, dilation (H, W) pairs;  groups scalar;  inChannels, outChannels, kernelSize
    dense:   shape      (out,);  weight (out, in), `in` in C, H, W flatten order;  inFeatures, outFeatures
             optional delay (axonal, 0..62): scalar, (out,), (in,) or (out, in)
    dense_rec: as dense, plus weight_rec (out, out)
    flatten: shape      (C*H*W, 1, 1)
    neuron/  type 'CUBA' (or 'LOIHI'): iDecay, vDecay (1/4096), vThMant (1/64), refDelay, gradedSpike
             type 'SDNN': vThMant (2^-6 message units), activation 'relu', sigma_output (output layer)
             (messageBits: NetX 0.6.0 cannot build a network from a file holding it; refused)
    conv/dense bias     optional, per channel / neuron: CUBA bias_mant (bias_exp = 6); SDNN bias (2^-6 units)

NetX reads weights and biases with ``astype(int)``, so they must hold exact integers.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import h5py
import numpy as np

from .. import quant
from .._atomic import atomic_target
from ..errors import NetFileError
from .spec import (
    Conv,
    Cuba,
    Dense,
    Flatten,
    InputNeurons,
    NetSpec,
    NeuronType,
    Resonator,
    Shape,
    SigmaDelta,
    conv_out_shape,
)
from .weights import rf_decays, rf_threshold

PathLike = Union[str, os.PathLike]


def _limit(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return max(1, int(value))
    except ValueError:
        raise ValueError(f"${name} must be an integer, got {value!r}") from None


def limits() -> dict:
    """What a file may declare before ``load`` refuses it, so that no file makes sj2lava allocate gigabytes
    before saying no. Raise them with the environment variables of the same names:

    - ``SJ2LAVA_MAX_VALUES``: values in one dataset (default 2^27: 1 GiB as int64);
    - ``SJ2LAVA_MAX_NEURONS``: neurons of the whole net (default 2^26);
    - ``SJ2LAVA_MAX_OBJECTS``: HDF5 groups and datasets in the file (default 100,000; layers included).
    """
    return {"SJ2LAVA_MAX_VALUES": _limit("SJ2LAVA_MAX_VALUES", 1 << 27),
            "SJ2LAVA_MAX_NEURONS": _limit("SJ2LAVA_MAX_NEURONS", 1 << 26),
            "SJ2LAVA_MAX_OBJECTS": _limit("SJ2LAVA_MAX_OBJECTS", 100_000)}


LAVA_CONV_FIELD_MAX = 127
"""Lava's Conv process stores kernel size, stride, padding, dilation and groups as int8."""

NOT_LOADABLE = {"pool", "average", "convT", "unpool", "concat"}


# --------------------------------------------------------------------------- writing
def write(spec: NetSpec, path: PathLike) -> Path:
    """Write ``spec`` to ``path`` atomically: a temporary file in the same folder, then a rename, so a
    failure never leaves a half-written file nor truncates an existing one."""
    path = Path(path)
    if not path.parent.exists():
        raise FileNotFoundError(f"{path}: folder {path.parent} does not exist")
    if spec.input_message_bits:
        raise ValueError(f"{path}: this net takes graded messages at its input (input_message_bits="
                         f"{spec.input_message_bits}, from skip_layers), which a NetX file cannot say; write the "
                         "net with the layers it skipped")
    with atomic_target(path) as tmp, h5py.File(tmp, "w") as f:
        first = spec.layers[0] if spec.layers else None
        if isinstance(first, InputNeurons):
            g = _write_layer(f, 0, "input", shape=np.asarray(spec.input_shape, dtype=np.int64))
            if first.transform is not None:
                g.create_dataset("weight", data=first.transform[0])
                g.create_dataset("bias", data=first.transform[1])
            _write_neuron(g, first.neuron)
        else:
            _write_layer(f, 0, "input", shape=np.asarray(spec.input_shape, dtype=np.int64))
        rest = spec.layers[1:] if isinstance(first, InputNeurons) else spec.layers
        for i, layer in enumerate(rest, start=1):
            _write(f, i, layer)
    return path


def _write_layer(f: h5py.File, i: int, kind: str, **data: Any) -> h5py.Group:
    g = f.create_group(f"layer/{i}")
    g.create_dataset("type", (1,), "S10", [kind.encode("ascii")])
    for k, v in data.items():
        g.create_dataset(k, data=v)
    return g


def _write(f: h5py.File, i: int, layer) -> None:
    if isinstance(layer, Conv):
        fields = dict(kernel=max(layer.weight.shape[2:]), stride=max(layer.stride), padding=max(layer.padding),
                      dilation=max(layer.dilation), groups=layer.groups)
        big = {k: v for k, v in fields.items() if int(v) > LAVA_CONV_FIELD_MAX}
        if big:
            raise ValueError(f"layer {i} (conv): {', '.join(f'{k} {v}' for k, v in big.items())} beyond "
                             f"{LAVA_CONV_FIELD_MAX}, which Lava's Conv holds in 8 bits (it fails or wraps); "
                             "split the layer (e.g. a sum-pool over more than 127 channels into groups)")
    if isinstance(layer, Flatten):
        _write_layer(f, i, "flatten", shape=np.array([layer.out_shape[0], 1, 1], dtype=np.int64))
        return
    if isinstance(layer, Conv):
        g = _write_layer(
            f, i, "conv", shape=np.asarray(layer.out_shape, dtype=np.int64),
            inChannels=layer.in_shape[0], outChannels=layer.out_shape[0],
            kernelSize=np.asarray(layer.weight.shape[2:], dtype=np.int64),
            stride=np.asarray(layer.stride, dtype=np.int64), padding=np.asarray(layer.padding, dtype=np.int64),
            dilation=np.asarray(layer.dilation, dtype=np.int64), groups=int(layer.groups),
            weight=layer.weight.astype(np.int16),
        )
    else:
        kind = "dense" if layer.weight_rec is None else "dense_rec"
        weights = {"weight": layer.weight.astype(np.int16)} if layer.weight_imag is None else {
            "weight/real": layer.weight.astype(np.int16), "weight/imag": layer.weight_imag.astype(np.int16)}
        g = _write_layer(
            f, i, kind, shape=np.asarray(layer.out_shape, dtype=np.int64),
            inFeatures=int(layer.weight.shape[1]), outFeatures=int(layer.weight.shape[0]), **weights,
        )
        if layer.weight_rec is not None:
            g.create_dataset("weight_rec", data=layer.weight_rec.astype(np.int16))
        if layer.delay is not None:
            g.create_dataset("delay", data=layer.delay.astype(np.int8))
    if layer.bias is not None:
        g.create_dataset("bias", data=np.asarray(layer.bias, dtype=np.int32))
    if not (isinstance(layer, Dense) and _is_default_neuron(layer.neuron)):  # NetX's default: no group, as read
        _write_neuron(g, layer.neuron)


def _write_neuron(g: h5py.Group, n: NeuronType) -> None:
    if isinstance(n, Resonator):  # the fields lava-dl's RF neurons write
        g.create_dataset("neuron/type", (1,), "S16", [n.type_name.encode("ascii")])
        g.create_dataset("neuron/sinDecay", data=np.asarray(n.sin_decay))
        g.create_dataset("neuron/cosDecay", data=np.asarray(n.cos_decay))
        g.create_dataset("neuron/vThMant", data=n.v_th_mant)
    elif isinstance(n, SigmaDelta):  # the fields lava-dl's SDNN blocks write
        g.create_dataset("neuron/type", (1,), "S10", [b"SDNN"])
        if n.activation is not None:
            g.create_dataset("neuron/activation", data=n.activation.encode("ascii"))
        if n.role == "sigma":
            g.create_dataset("neuron/sigma_output", data=True)
        else:
            g.create_dataset("neuron/vThMant", data=int(n.v_th_mant))
    else:
        g.create_dataset("neuron/type", (1,), "S10", [b"CUBA"])
        g.create_dataset("neuron/iDecay", data=np.asarray(n.i_decay, dtype=np.int64))
        g.create_dataset("neuron/vDecay", data=np.asarray(n.v_decay, dtype=np.int64))
        g.create_dataset("neuron/vThMant", data=np.asarray(n.v_th_mant, dtype=np.int64))
        g.create_dataset("neuron/refDelay", data=1)
        g.create_dataset("neuron/gradedSpike", data=False)


# --------------------------------------------------------------------------- reading
class _Ctx:
    """Where we are in the file, for error messages, and the notes on fields NetX does not read."""

    def __init__(self, path: Path):
        self.path, self.where, self.index = path, "", 0
        self.ignored: dict = {}  # field -> layer indices where NetX (and so sj2lava) does not read it
        self.reasons: dict = {}  # field -> what it is, where the tables below do not say
        self.notes: list = []

    def fail(self, msg: str) -> NetFileError:
        return NetFileError(f"{self.path}: {self.where}{msg}")


# Every field a layer may hold: read (and validated) by sj2lava exactly as NetX reads it, or not read by
# NetX 0.6.0 at all (then Lava runs without it, sj2lava too, and the spec's notes say so). Anything else
# is refused by name: a field NetX acts on that sj2lava would not is a silently wrong result.
_READ = {
    "input": {"type", "shape"},
    "input_neurons": {"type", "shape", "neuron", "weight", "bias"},
    "flatten": {"type", "shape"},
    "conv": {"type", "shape", "weight", "stride", "padding", "dilation", "groups", "neuron", "bias"},
    "dense": {"type", "shape", "weight", "neuron", "bias", "delay"},
    "dense_rec": {"type", "shape", "weight", "weight_rec", "neuron", "bias"},
    "dense_complex": {"type", "shape", "weight", "neuron"},
}
_INFORMATIONAL = {"inChannels", "outChannels", "kernelSize", "inFeatures", "outFeatures"}  # checked, not used
_NEURON_READ = {
    "CUBA": {"type", "iDecay", "vDecay", "vThMant"},
    "SDNN": {"type", "vThMant", "sigma_output", "activation"},
    "RF": {"type", "sinDecay", "cosDecay", "vThMant"},
}
_NEURON_NOT_READ_BY_NETX = {
    "refDelay": "a refractory delay (Lava's CUBA neuron has none)",
    "gradedSpike": "lava-dl's graded-spike flag (NetX reads messageBits instead)",
    "scaleRho": "a surrogate-gradient setting of training", "tauRho": "a surrogate-gradient setting of training",
    "theta": "the float threshold of training (vThMant is what runs)",
    "wgtExp": "a Loihi 1 weight exponent",
}
_NOT_READ_FOR_SDNN = {"iDecay": "a CUBA decay, which NetX does not give SDNN or RF neurons",
                      "vDecay": "a CUBA decay, which NetX does not give SDNN or RF neurons"}
_REFUSED_COMPLEX = {
    "bias": "a bias, which NetX does not give a complex (RF) dense layer: Lava would run it without",
    "delay": "axonal delays, which NetX does not give a complex (RF) dense layer: Lava would run it without",
}
_REFUSED = {
    "delay": "axonal delays, which NetX applies to dense layers only (it ignores them on conv layers, and sj2lava "
             "does not emulate them on dense_rec layers yet), so this file would run differently than written",
    "messageBits": "message bits, which NetX 0.6.0 reads as an HDF5 group instead of a number, so it fails to "
                   "build or run the network (TypeError) and Lava cannot run this file. Remove the field: spikes "
                   "are 0/1 whatever it says, and NetX gives SDNN messages 16 bits",
}


def _neuron_type(g: h5py.Group, ctx: _Ctx) -> Optional[str]:
    if "neuron" not in g or not isinstance(g["neuron"], h5py.Group):
        return None
    kind = _string(g["neuron"], "type", ctx) if "type" in g["neuron"] else "CUBA"
    if kind in ("CUBA", "LOIHI"):
        return "CUBA"
    if kind == "SDNN":
        return kind
    if "RF" in kind:  # NetX: "RF" anywhere in the name; RF if it holds "PHASE", else RF_IZ
        return "RF"
    raise ctx.fail(f"neuron type {ascii(kind)[:40]} is not one NetX builds (CUBA, LOIHI, SDNN, RF, RF_IZ)")


def _check_fields(g: h5py.Group, kind: str, index: int, ctx: _Ctx) -> None:
    """Every field of the layer group is one NetX reads (or one sj2lava knows NetX ignores, noted); anything else
    is refused by name, never skipped."""
    names = set(g.keys())
    neuron_type = _neuron_type(g, ctx)
    kind = _complex_kind(g, kind, neuron_type, names, ctx)
    for name in sorted(names):
        if name in _READ[kind] or (name in _INFORMATIONAL and kind != "input"):
            continue
        _refuse_field(name, name, kind, ctx)
    if neuron_type is None:
        return
    neuron = g["neuron"]
    for name in sorted(neuron.keys()):
        path = f"neuron/{name}"
        if name in _NEURON_READ[neuron_type]:
            continue
        if name in _NEURON_NOT_READ_BY_NETX or (neuron_type != "CUBA" and name in _NOT_READ_FOR_SDNN):
            _unread_neuron_field(np.asarray(neuron[name][()]), name, index, ctx)
            continue
        _refuse_field(path, name, kind, ctx)


def _complex_kind(g: h5py.Group, kind: str, neuron_type: Optional[str], names: set, ctx: _Ctx) -> str:
    """``'dense_complex'`` for NetX's complex dense layer (weight/real and weight/imag into RF neurons), checked;
    else ``kind``, refusing RF neurons without complex weights."""
    if not ("weight" in g and isinstance(g["weight"], h5py.Group)):
        if neuron_type == "RF":
            raise ctx.fail(f"neuron type {ascii(_string(g['neuron'], 'type', ctx))[:40]} (resonate-and-fire) on a "
                           "layer without complex weights: NetX builds RF neurons only on dense layers with "
                           "weight/real and weight/imag, and fails elsewhere")
        return kind
    parts = set(g["weight"].keys())
    if kind != "dense":
        raise ctx.fail(f"field 'weight' is a group (complex weights) on a {kind} layer; NetX builds complex "
                       "weights on dense layers only (and ignores weight_rec there)")
    if parts != {"real", "imag"}:
        raise ctx.fail(f"field 'weight' of a complex dense layer must hold 'real' and 'imag', found {sorted(parts)}")
    if neuron_type != "RF":
        raise ctx.fail("complex weights feed the real and imaginary inputs of resonate-and-fire neurons; NetX "
                       f"fails to connect them to {neuron_type or 'its default CUBA'} neurons")
    for name in sorted(names - _READ["dense_complex"]):
        if name in _REFUSED_COMPLEX:
            raise ctx.fail(f"field '{name}' holds {_REFUSED_COMPLEX[name]}")
    return "dense_complex"


def _unread_neuron_field(value: np.ndarray, name: str, index: int, ctx: _Ctx) -> None:
    """A neuron field NetX does not read: refused where it changes what was trained, else noted as ignored."""
    if name == "gradedSpike" and bool(value.any()):
        raise ctx.fail("field 'neuron/gradedSpike' is true: the layer was trained with graded "
                       "spikes, which NetX runs as binary ones (it reads messageBits); refusing "
                       "rather than running something else than what was trained")
    # refDelay 1 and gradedSpike false state what NetX assumes anyway: nothing to note
    if not ((name == "refDelay" and value.size == 1 and int(value) == 1) or name == "gradedSpike"):
        ctx.ignored.setdefault(f"neuron/{name}", []).append(index)


def _refuse_field(path: str, name: str, kind: str, ctx: _Ctx) -> None:
    if name in _REFUSED:
        raise ctx.fail(f"field '{path}' holds {_REFUSED[name]}")
    raise ctx.fail(f"field '{_safe(path)[:60]}' is not one sj2lava understands for a "
                   f"{kind.replace('_', ' ')} layer; refusing rather than ignoring it (NetX reads: "
                   + ", ".join(sorted(_READ[kind])) + ")")


def _notes(ctx: _Ctx) -> list:
    notes = list(ctx.notes)
    for path, layers in sorted(ctx.ignored.items()):
        name = path.split("/")[-1]
        what = ctx.reasons.get(path) or _NEURON_NOT_READ_BY_NETX.get(name) or _NOT_READ_FOR_SDNN.get(name)
        where = ", ".join(map(str, layers))
        notes.append(f"layer {where}: field '{path}' ({what}) is not read by NetX: Lava runs without it, "
                     "and so do sj2lava's emulator and run_lava")
    return notes


def load(path: PathLike, input_shape: Optional[Shape] = None, num_layers: Optional[int] = None,
         skip_layers: int = 0) -> NetSpec:
    """Read and validate a NetX ``.net`` file (sj2lava's or lava-dl's ``export_hdf5`` output).

    ``input_shape`` is needed only for files without an ``input`` layer whose first layer is a conv.
    ``num_layers`` (NetX's argument of the same name) reads only ``layer/0 .. layer/<num_layers - 1>``, as
    NetX builds only those: lava-dl runs NTIDIGITS with ``num_layers=5``, before its ``average`` layer.
    ``skip_layers`` (NetX's too) drops ``layer/0 .. layer/<skip_layers - 1>``: the net then takes what the last
    skipped layer would send (graded messages after an SDNN layer: ``NetSpec.input_message_bits``), as
    lava-dl's Loihi tests feed PilotNet-SDNN's first conv.

    Raises:
        NetFileError: naming the file, the layer and the field, for anything NetX could not load
            or that does not fit together (missing or non-numeric datasets, non-integer weights,
            shapes that do not chain, unknown or non-loadable layer types, truncated files).
    """
    ctx = _Ctx(Path(path))
    f = _open(ctx, "a .net file")
    try:
        with f:
            _scan(f, ctx)
            return _read(f, ctx, input_shape, num_layers, skip_layers)
    except NetFileError:
        raise
    except Exception as e:  # h5py and numpy raise many kinds for damaged data
        raise ctx.fail(f"unreadable data ({type(e).__name__}: {e})") from None


def scan_file(path: Union[str, Path], error: type = NetFileError) -> None:
    """The checks :func:`load` makes before reading any value, on any HDF5 file (a ``.nir`` graph): soft and
    external links, external storage and virtual datasets refused unresolved, object and value counts within
    :func:`limits`; a missing, empty, truncated or non-HDF5 file refused by name (as ``error``)."""
    ctx = _Ctx(Path(path))
    try:
        with _open(ctx, "an HDF5 file") as f:
            try:
                _scan(f, ctx)
            except NetFileError:
                raise
            except Exception as e:  # h5py raises many kinds for a damaged structure
                raise ctx.fail(f"unreadable HDF5 structure ({type(e).__name__}: {str(e)[:200]})") from None
    except NetFileError as e:
        raise error(str(e)) from None


def _open(ctx: _Ctx, kind: str) -> h5py.File:
    """The file at ``ctx.path`` opened for reading, or a refusal naming it (missing, empty, truncated, foreign)."""
    if not ctx.path.is_file():
        raise ctx.fail("no such file")
    try:
        return h5py.File(ctx.path, "r")
    except OSError as e:
        raise ctx.fail(f"not a readable HDF5 file ({e}); it may be empty, truncated or not {kind}") from None


def _scan(f: h5py.File, ctx: _Ctx) -> None:
    """Walk every object before reading any value: refuse soft and external links, external raw storage and
    virtual datasets (NetX files need none of them; following them would read other files, or block on a
    FIFO), and any dataset or object count beyond :func:`limits`. Links are looked at, never resolved."""
    lim = limits()
    count, stack = 0, [("", f)]
    while stack:
        prefix, group = stack.pop()
        for name in group:
            count += 1
            path = f"{prefix}/{name}"
            if count > lim["SJ2LAVA_MAX_OBJECTS"]:
                raise ctx.fail(f"more than {lim['SJ2LAVA_MAX_OBJECTS']:,} HDF5 objects (a NetX file holds a few per "
                               "layer; raise $SJ2LAVA_MAX_OBJECTS for a larger net)")
            link = group.get(name, getlink=True)
            if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
                kind = "an external" if isinstance(link, h5py.ExternalLink) else "a soft"
                raise ctx.fail(f"{_safe(path)} is {kind} HDF5 link; refusing to follow it (NetX files need no links)")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                stack.append((path, obj))
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    raise ctx.fail(f"{_safe(path)} is a virtual dataset (its data lives in other files); refused")
                if obj.external:
                    raise ctx.fail(f"{_safe(path)} keeps its data in an external file; refused")
                if obj.size is not None and obj.size > lim["SJ2LAVA_MAX_VALUES"]:
                    raise ctx.fail(f"{_safe(path)} holds {obj.size:,} values, more than "
                                   f"{lim['SJ2LAVA_MAX_VALUES']:,} (raise $SJ2LAVA_MAX_VALUES for a larger net)")
            else:
                raise ctx.fail(f"{_safe(path)} is an HDF5 object of kind {type(obj).__name__}; refused")


def _safe(text: str) -> str:
    """A string from a file as it may be shown: itself when plain printable ASCII, else escaped."""
    return text if text.isascii() and text.isprintable() else ascii(text)


def _read(f: h5py.File, ctx: _Ctx, input_shape: Optional[Shape], num_layers: Optional[int] = None,
          skip_layers: int = 0) -> NetSpec:
    idx = _layer_indices(f, ctx)
    if num_layers is not None:
        if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) or num_layers < 1:
            raise ValueError(f"num_layers must be an integer >= 1, got {num_layers!r}")
        idx = idx[:int(num_layers)]
    walk = _LayerWalk(ctx, tuple(int(s) for s in input_shape) if input_shape is not None else None)
    for i in idx:
        walk.read(f["layer"][str(i)], i)
    layers = walk.layers
    if not any(not isinstance(l, Flatten) for l in layers):
        raise ctx.fail("the network has no layer with neurons after its input (NetX builds no network from it)")
    _check_neurons(layers, walk.where, ctx)
    assert walk.net_input is not None  # set by the input layer, or by the first dense layer (a conv first fails)
    if not skip_layers:
        return NetSpec(walk.net_input, layers, source=ctx.path, notes=_notes(ctx))
    layers, bits = _skip(layers, walk.index, skip_layers, ctx)
    net_input = tuple(layers[0].in_shape)
    ctx.notes.append(f"layers before layer/{skip_layers} skipped (skip_layers={skip_layers}): the net takes "
                     + (f"{bits}-bit graded messages" if bits else "spikes") + f" of shape {net_input}")
    return NetSpec(net_input, layers, source=ctx.path, notes=_notes(ctx), input_message_bits=bits)


def _layer_indices(f: h5py.File, ctx: _Ctx) -> List[int]:
    """The file's layer numbers, checked to be 0..n-1."""
    if "layer" not in f or not isinstance(f["layer"], h5py.Group):
        raise ctx.fail("no 'layer' group: not a NetX network file")
    keys = list(f["layer"].keys())
    if not all(k.isdigit() and len(k) <= 6 and k.isascii() for k in keys):
        bad = next(k for k in keys if not (k.isdigit() and len(k) <= 6 and k.isascii()))
        raise ctx.fail(f"layer names must be 0..n-1, found {_safe(bad)[:40]}")
    idx = sorted(int(k) for k in keys)
    if not idx:
        raise ctx.fail("the 'layer' group is empty")
    if idx != list(range(len(idx))):
        missing = sorted(set(range(idx[-1] + 1)) - set(idx))
        raise ctx.fail(f"layer indices must be contiguous from 0; missing layer/{missing[0]}")
    return idx


class _LayerWalk:
    """The file's layers read in order, each checked against the shape the one before hands it; ``where`` and
    ``index`` say, per layer read, its group and number (an input layer with neurons is one layer)."""

    def __init__(self, ctx: _Ctx, input_shape: Optional[Shape]) -> None:
        self.ctx = ctx
        self.layers: list = []
        self.where: List[str] = []
        self.index: List[int] = []
        self.shape: Optional[Shape] = input_shape
        self.net_input: Optional[Shape] = input_shape

    def read(self, g: h5py.Group, i: int) -> None:
        ctx = self.ctx
        ctx.where, ctx.index = f"layer/{i}: ", i
        kind = _string(g, "type", ctx)
        ctx.where = f"layer/{i} ({_safe(kind)[:40]}): "
        if kind in NOT_LOADABLE:
            raise ctx.fail(f"NetX cannot load '{kind}' layers (NotImplementedError in lava-dl 0.6.0), so Lava "
                           "cannot run this file either. If the model is yours, export it with sj2lava, which "
                           "writes sum-pools as depthwise convolutions.")
        if kind in _READ:
            _check_fields(g, "input_neurons" if kind == "input" and "neuron" in g else kind, i, ctx)
        readers = {"input": self._input, "flatten": self._flatten, "conv": self._conv, "dense": self._dense,
                   "dense_rec": self._dense}
        if kind not in readers:
            raise ctx.fail(f"unknown layer type {ascii(kind)[:40]}; NetX loads input, conv, dense, dense_rec, flatten")
        readers[kind](g, i, kind)
        self.where += [ctx.where] * (len(self.layers) - len(self.where))
        self.index += [i] * (len(self.layers) - len(self.index))

    def _input(self, g: h5py.Group, i: int, kind: str) -> None:
        if i != 0:
            raise self.ctx.fail("an input layer must be layer/0")
        self.shape = self.net_input = _shape(g, "shape", self.ctx)
        if "neuron" in g:
            self.layers.append(_read_input_neurons(g, self.ctx, self.shape, i))

    def _flatten(self, g: h5py.Group, i: int, kind: str) -> None:
        ctx, shape = self.ctx, self.shape
        if shape is None:
            raise ctx.fail("flatten cannot be the first layer of a NetX network (NetX fails on it)")
        out = (int(np.prod(shape)),)
        if "shape" in g and int(np.prod(_ints(g, "shape", ctx))) != out[0]:
            raise ctx.fail(f"field 'shape' {tuple(_ints(g, 'shape', ctx))} does not hold the "
                           f"{out[0]} values of the input {shape}")
        self.layers.append(Flatten(shape, out))
        self.shape = out

    def _conv(self, g: h5py.Group, i: int, kind: str) -> None:
        layer = _read_conv(g, self.ctx, self.shape)
        if self.net_input is None:
            raise self.ctx.fail("the file has no input layer and starts with a conv: its input size is "
                                "unknown. Pass input_shape=(C, H, W).")
        self.layers.append(layer)
        self.shape = layer.out_shape

    def _dense(self, g: h5py.Group, i: int, kind: str) -> None:
        layer = _read_dense(g, self.ctx, self.shape, rec=kind == "dense_rec", first=not self.layers)
        if self.net_input is None:
            self.net_input = layer.in_shape
        self.layers.append(layer)
        self.shape = layer.out_shape


def _skip(layers: list, index: List[int], skip_layers: int, ctx: _Ctx) -> Tuple[list, int]:
    """NetX's ``skip_layers``: the layers from file layer ``skip_layers`` on, and the message bits the first of
    them takes (0: spikes; a skipped SDNN layer's graded messages otherwise)."""
    if isinstance(skip_layers, bool) or not isinstance(skip_layers, (int, np.integer)) or skip_layers < 0:
        raise ValueError(f"skip_layers must be an integer >= 0, got {skip_layers!r}")
    kept = [k for k, i in enumerate(index) if i >= skip_layers]
    while kept and isinstance(layers[kept[0]], Flatten):  # NetX connects a later dense to the flat input
        kept.pop(0)
    if not kept:
        raise ctx.fail(f"skip_layers={skip_layers} leaves no layer to run")
    sent = [l for l in layers[:kept[0]] if not isinstance(l, Flatten)]
    bits = SDNN_MESSAGE_BITS if sent and sent[-1].neuron.graded else 0  # NetX: the next synapse takes its messages
    return layers[kept[0]:], bits


SDNN_MESSAGE_BITS = 16
"""NetX's message bits for SDNN neurons whose group has no ``messageBits``."""


def _check_neurons(layers: list, where: list, ctx: _Ctx) -> None:
    """What NetX 0.6.0 cannot build, or builds otherwise than the file says, across layers."""
    with_neurons = [(l, w) for l, w in zip(layers, where) if not isinstance(l, Flatten)]
    for layer, w in with_neurons:
        ctx.where = w
        n = layer.neuron
        if isinstance(n, SigmaDelta):
            if isinstance(layer, Dense) and layer.weight_rec is not None:
                raise ctx.fail("a dense_rec layer with SDNN neurons, which sj2lava does not emulate")
            if n.role == "sigma" and layer.bias is not None:
                raise ctx.fail("field 'bias' on a Sigma output layer: NetX passes it to Lava's Sigma, which "
                               "takes no bias, and fails to build the network")
            if layer.bias is not None and int(np.abs(layer.bias).max()) > SDNN_V_TH_MANT_MAX:
                raise ctx.fail(f"field 'bias' must lie in [-{SDNN_V_TH_MANT_MAX}, {SDNN_V_TH_MANT_MAX}] for SDNN "
                               "neurons (scaled by 2^12 into int32)")


def _dataset(g: h5py.Group, name: str, ctx: _Ctx) -> h5py.Dataset:
    if name not in g:
        raise ctx.fail(f"missing field '{name}'")
    d = g[name]
    if not isinstance(d, h5py.Dataset):
        raise ctx.fail(f"field '{name}' is a group, expected data")
    return d


def _string(g: h5py.Group, name: str, ctx: _Ctx) -> str:
    v = _dataset(g, name, ctx)[()]
    if isinstance(v, np.ndarray):
        if v.size != 1:
            raise ctx.fail(f"field '{name}' should hold one string, found {v.size} values")
        v = v.reshape(-1)[0]
    if isinstance(v, bytes):
        return v.decode("ascii", "replace")
    if isinstance(v, str):
        return v
    raise ctx.fail(f"field '{name}' should be a string, found {type(v).__name__}")


def _numbers(g: h5py.Group, name: str, ctx: _Ctx) -> np.ndarray:
    d = _dataset(g, name, ctx)
    if d.dtype.kind not in "iufb":
        raise ctx.fail(f"field '{name}' should be numeric, found dtype {d.dtype}")
    a = np.asarray(d[()])
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise ctx.fail(f"field '{name}' holds NaN or infinity")
    return a


def _ints(g: h5py.Group, name: str, ctx: _Ctx) -> np.ndarray:
    a = _numbers(g, name, ctx)
    if a.dtype.kind == "f" and np.any(a != np.round(a)):
        bad = a[a != np.round(a)].reshape(-1)[0]
        raise ctx.fail(f"field '{name}' must hold integers (NetX truncates with astype(int)); found {bad}")
    if a.size and a.dtype.kind in "fu" and float(np.abs(a).max()) >= 2.0**62:
        raise ctx.fail(f"field '{name}' holds {float(np.abs(a).max()):g}, beyond any Loihi field (|x| < 2^62)")
    return a.astype(np.int64)


def _shape(g: h5py.Group, name: str, ctx: _Ctx) -> Shape:
    size = _dataset(g, name, ctx).size
    if size > 3:
        raise ctx.fail(f"field '{name}' should be (C, H, W) or (features,), found {size} values")
    a = _ints(g, name, ctx).reshape(-1)
    if a.size not in (1, 3) or np.any(a <= 0):
        raise ctx.fail(f"field '{name}' should be (C, H, W) or (features,) of positive sizes, found {tuple(a)}")
    neurons, most = int(np.prod([float(x) for x in a])), limits()["SJ2LAVA_MAX_NEURONS"]
    if neurons > most:
        raise ctx.fail(f"field '{name}' declares {neurons:,} neurons, more than {most:,} "
                       "(raise $SJ2LAVA_MAX_NEURONS for a larger net)")
    return tuple(int(x) for x in a)


def _pair(g: h5py.Group, name: str, ctx: _Ctx, default: Optional[int] = None, low: int = 1) -> Tuple[int, int]:
    """A conv geometry field as ``(H, W)``, each in ``[low, 127]`` (Lava's Conv stores them as int8)."""
    if name not in g and default is not None:
        return (default, default)
    size = _dataset(g, name, ctx).size
    if size > 2:
        raise ctx.fail(f"field '{name}' should be a scalar or an (H, W) pair, found {size} values")
    a = _ints(g, name, ctx).reshape(-1)
    if a.size not in (1, 2):
        raise ctx.fail(f"field '{name}' should be a scalar or an (H, W) pair, found {a.size} values")
    if np.any(a < low) or np.any(a > LAVA_CONV_FIELD_MAX):
        raise ctx.fail(f"field '{name}' must lie in [{low}, {LAVA_CONV_FIELD_MAX}] (Lava's Conv holds it in 8 bits), "
                       f"found {a.tolist()}")
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


NETX_DEFAULT_V_TH_MANT = 1 << 17
"""NetX's threshold for a dense layer without a neuron group (its ``1 << 18 - 1``): ``v`` is clipped to
``2^23 - 1`` while the threshold is ``2^23``, so such a layer never spikes; it integrates."""


def _is_default_neuron(n: NeuronType) -> bool:
    return isinstance(n, Cuba) and all(np.asarray(a).size == 1 for a in (n.i_decay, n.v_decay, n.v_th_mant)) and (
        int(n.i_decay), int(n.v_decay), int(n.v_th_mant)) == (0, quant.P_SCALE, NETX_DEFAULT_V_TH_MANT)


def _default_neuron(ctx: _Ctx) -> NeuronType:
    ctx.notes.append(f"{ctx.where.rstrip(': ')}: no neuron group; NetX gives the layer its default integrator "
                     f"(iDecay 0, vDecay 4096, vThMant {NETX_DEFAULT_V_TH_MANT}, which never spikes), and so does "
                     "sj2lava")
    return Cuba(np.asarray(0), np.asarray(quant.P_SCALE), np.asarray(NETX_DEFAULT_V_TH_MANT))


def _neuron(g: h5py.Group, ctx: _Ctx, n_out: int, is_input: bool = False) -> NeuronType:
    if "neuron" not in g:
        raise ctx.fail("missing group 'neuron'")
    n, kind = g["neuron"], _neuron_type(g, ctx)
    if kind == "SDNN":
        return _sdnn_neuron(n, ctx, ctx.index, is_input)
    if kind == "RF":
        return _rf_neuron(n, ctx, n_out)
    vals = []
    for key, lo, hi in (("iDecay", 0, 4096), ("vDecay", 0, 4096), ("vThMant", 0, quant.V_TH_MANT_MAX)):
        a = _ints(n, key, ctx)
        if a.size not in (1, n_out):
            raise ctx.fail(f"field 'neuron/{key}' has {a.size} values; expected 1 or {n_out}")
        if np.any(a < lo) or np.any(a > hi):
            raise ctx.fail(f"field 'neuron/{key}' must lie in [{lo}, {hi}], found {int(a.min())}..{int(a.max())}")
        vals.append(a.reshape(()) if a.size == 1 else a.reshape(-1))
    return Cuba(*vals)


def _rf_neuron(n: h5py.Group, ctx: _Ctx, n_out: int) -> Resonator:
    decays = []
    for key in ("sinDecay", "cosDecay"):
        a = _numbers(n, key, ctx)
        if a.size not in (1, n_out):
            raise ctx.fail(f"field 'neuron/{key}' has {a.size} values; expected 1 or {n_out}")
        if np.any(np.abs(a) > quant.P_SCALE):
            raise ctx.fail(f"field 'neuron/{key}' must lie in [-4096, 4096], found {a.min()}..{a.max()}")
        decays.append(a.reshape(()) if a.size == 1 else a.reshape(-1))
    th = _numbers(n, "vThMant", ctx).reshape(-1)
    if th.size != 1:
        raise ctx.fail(f"field 'neuron/vThMant' has {th.size} values; NetX gives RF neurons one threshold per layer")
    if not 0 <= rf_threshold(th[0]) < 1 << 23:
        raise ctx.fail(f"field 'neuron/vThMant' {th[0]} scales (x 64) beyond RF's 24-bit state")
    sin_l, cos_l = rf_decays(*decays)
    if np.any(sin_l != decays[0]) or np.any(cos_l != decays[1]):
        ctx.notes.append(f"{ctx.where.rstrip(': ')}: NetX's float round trip of the RF decays gives Lava sinDecay "
                         f"{_fmt_changed(decays[0], sin_l)}, cosDecay {_fmt_changed(decays[1], cos_l)}; "
                         "sj2lava runs what Lava runs")
    return Resonator(decays[0], decays[1], th[0].item(), _string(n, "type", ctx))


def _fmt_changed(before: np.ndarray, after: np.ndarray) -> str:
    changed = np.asarray(before) != after
    if not changed.any():
        return "unchanged"
    return f"changed in {int(changed.sum())} neurons by up to {float(np.abs(after - before).max()):g}"


SDNN_V_TH_MANT_MAX = (1 << 19) - 1
"""Largest SDNN ``vThMant``: NetX scales it by ``2^(spike_exp + 6) = 2^12`` into Lava's int32 threshold."""

_ACTIVATION_NOT_APPLIED = "an activation, which NetX's Delta (input) and Sigma (output) neurons do not apply"


def _sdnn_neuron(n: h5py.Group, ctx: _Ctx, index: int, is_input: bool) -> SigmaDelta:
    """NetX's choice (``get_neuron_params``): an input layer is a Delta encoder, a layer whose neuron group
    holds ``sigma_output`` (whatever its value) a Sigma decoder, any other a ReLU SigmaDelta neuron."""
    role = "delta" if is_input else ("sigma" if "sigma_output" in n else "sigma_delta")
    if "sigma_output" in n:
        _sigma_output_flag(n, ctx, index, is_input)
    activation = _string(n, "activation", ctx) if "activation" in n else None
    if activation is not None and activation != "relu" and role == "sigma_delta":
        raise ctx.fail(f"field 'neuron/activation' is {ascii(activation)[:40]}, but NetX's SigmaDelta neurons "
                       "always apply ReLU: Lava would run another network than the one trained")
    if activation is not None and role != "sigma_delta":
        ctx.ignored.setdefault("neuron/activation", []).append(index)
        ctx.reasons["neuron/activation"] = _ACTIVATION_NOT_APPLIED
    if role == "sigma":
        if "vThMant" in n:
            ctx.ignored.setdefault("neuron/vThMant", []).append(index)
            ctx.reasons["neuron/vThMant"] = "a threshold, which NetX's Sigma output neurons do not have"
        return SigmaDelta(0, role, activation)
    th = _ints(n, "vThMant", ctx).reshape(-1)
    if th.size != 1:
        raise ctx.fail(f"field 'neuron/vThMant' has {th.size} values; NetX gives SDNN neurons one threshold "
                       "per layer")
    if not 0 <= int(th[0]) <= SDNN_V_TH_MANT_MAX:
        raise ctx.fail(f"field 'neuron/vThMant' must lie in [0, {SDNN_V_TH_MANT_MAX}] for SDNN neurons "
                       f"(scaled by 2^12 into int32), found {int(th[0])}")
    return SigmaDelta(int(th[0]), role, activation)


def _sigma_output_flag(n: h5py.Group, ctx: _Ctx, index: int, is_input: bool) -> None:
    """NetX makes any layer whose neuron group holds ``sigma_output`` a Sigma output (ignored on an input)."""
    flag = _numbers(n, "sigma_output", ctx).reshape(-1)
    if is_input:
        ctx.ignored.setdefault("neuron/sigma_output", []).append(index)
        ctx.reasons["neuron/sigma_output"] = "the Sigma output flag, which NetX does not read on an input layer"
    elif flag.size != 1 or not bool(flag[0]):
        raise ctx.fail("field 'neuron/sigma_output' is false, but NetX makes the layer a Sigma output "
                       "whenever the field exists; refusing rather than guessing which was meant")


def _bias(g: h5py.Group, ctx: _Ctx, sizes: Tuple[int, ...]) -> Optional[np.ndarray]:
    if "bias" not in g:
        return None
    b = _ints(g, "bias", ctx).reshape(-1)
    if b.size not in (1, *sizes):
        raise ctx.fail(f"field 'bias' has {b.size} values; expected 1 or {' or '.join(map(str, sizes))}")
    cuba = _neuron_type(g, ctx) in ("CUBA", None)
    if cuba and b.size and (b.min() < quant.BIAS_MANT_MIN or b.max() > quant.BIAS_MANT_MAX):
        raise ctx.fail(f"field 'bias' must lie in [{quant.BIAS_MANT_MIN}, {quant.BIAS_MANT_MAX}] (Lava's 13-bit "
                       f"bias_mant), found {int(b.min())}..{int(b.max())}")
    return b


def _same(g: h5py.Group, ctx: _Ctx, *expected: Tuple[str, Any]) -> None:
    """Informational fields (NetX does not read them) must still agree with what the layer is."""
    for name, want in expected:
        if name in g:
            got = tuple(int(v) for v in _ints(g, name, ctx).reshape(-1))
            want_t = tuple(want) if isinstance(want, tuple) else (int(want),)
            if got != want_t and not (len(want_t) == 2 and got == want_t[:1] and want_t[0] == want_t[1]):
                raise ctx.fail(f"field '{name}' says {got if len(got) > 1 else got[0]}, but the layer's weights "
                               f"and shapes give {want_t if len(want_t) > 1 else want_t[0]}")


def _read_input_neurons(g: h5py.Group, ctx: _Ctx, shape: Shape, index: int) -> InputNeurons:
    n_out = int(np.prod(shape))
    transform = None
    if "weight" in g or "bias" in g:  # NetX keeps these as Input.transform and never applies them
        w = _ints(g, "weight", ctx).reshape(-1) if "weight" in g else np.array([64])
        b = _ints(g, "bias", ctx).reshape(-1) if "bias" in g else np.array([0])
        if w.size != 1 or b.size != 1:
            raise ctx.fail("fields 'weight' and 'bias' of an input layer must be scalars (NetX reads them with "
                           "int())")
        transform = (int(w[0]), int(b[0]))
        ctx.notes.append(f"layer {index}: the input transform (weight {transform[0]}, bias {transform[1]}) is "
                         "stored by NetX but not applied: apply it to the data you pass as input_bias")
    return InputNeurons(shape, shape, _neuron(g, ctx, n_out, is_input=True), transform)


CONV_WEIGHT_MAX = 1 << 15
"""Largest |conv weight| read: Loihi's are 8-bit mantissas (|w| <= 256); beyond 2^15 a file is not a Loihi net."""


def _conv_weight(g: h5py.Group, ctx: _Ctx) -> np.ndarray:
    """``(C_out, C_in / groups, kH, kW)`` 8-bit mantissas (a trailing axis of 1, as lava-dl writes, dropped)."""
    w = _ints(g, "weight", ctx)
    if w.ndim == 5 and w.shape[-1] == 1:
        w = w[..., 0]
    if w.ndim != 4:
        raise ctx.fail(f"field 'weight' should be (C_out, C_in/groups, kH, kW), found shape {w.shape}")
    if min(w.shape) < 1 or max(w.shape[2:]) > LAVA_CONV_FIELD_MAX:
        raise ctx.fail(f"field 'weight' {w.shape} makes kernels of {tuple(w.shape[2:])}; each side must lie in "
                       f"[1, {LAVA_CONV_FIELD_MAX}] and channels be >= 1")
    if np.abs(w).max() > CONV_WEIGHT_MAX:
        raise ctx.fail(f"field 'weight' holds {int(np.abs(w).max())}; conv weights must lie within "
                       f"+-{CONV_WEIGHT_MAX} (Loihi weights are 8-bit mantissas)")
    return w


def _read_conv(g: h5py.Group, ctx: _Ctx, in_shape: Optional[Shape]) -> Conv:
    w = _conv_weight(g, ctx)
    stride, padding = _pair(g, "stride", ctx, 1), _pair(g, "padding", ctx, 0, low=0)
    dilation = _pair(g, "dilation", ctx, 1)
    groups = _pair(g, "groups", ctx, 1)[0] if "groups" in g else 1
    out = _shape(g, "shape", ctx)
    if len(out) != 3:
        raise ctx.fail(f"field 'shape' of a conv should be (C, H, W), found {out}")
    if out[0] != w.shape[0]:
        raise ctx.fail(f"field 'weight' has {w.shape[0]} output channels but 'shape' says {out[0]}")
    if in_shape is None:
        return Conv((w.shape[1] * groups, 0, 0), out, w, stride, padding, dilation, groups, _neuron(g, ctx, 0))
    if len(in_shape) != 3:
        raise ctx.fail(f"a conv needs a (C, H, W) input, but the previous layer gives {in_shape}")
    if groups < 1 or in_shape[0] % groups or w.shape[1] * groups != in_shape[0]:
        raise ctx.fail(f"field 'weight' {w.shape} with groups={groups} does not take {in_shape[0]} input channels")
    expect = conv_out_shape(in_shape, w.shape[0], w.shape[2:], stride, padding, dilation)[1:]
    if expect != out[1:]:
        raise ctx.fail(f"field 'shape' {out} does not follow from input {in_shape}, kernel {w.shape[2:]}, "
                       f"stride {stride}, padding {padding}, dilation {dilation} (expected H, W = {expect})")
    _same(g, ctx, ("inChannels", in_shape[0]), ("outChannels", out[0]), ("kernelSize", tuple(w.shape[2:])))
    n_out = int(np.prod(out))
    return Conv(in_shape, out, w, stride, padding, dilation, groups, _neuron(g, ctx, n_out),
                _bias(g, ctx, (out[0], n_out)))


def _read_dense(g: h5py.Group, ctx: _Ctx, in_shape: Optional[Shape], rec: bool, first: bool) -> Dense:
    if isinstance(g["weight"], h5py.Group):  # complex: NetX reads weight/real and weight/imag like weight
        real = _read_dense(_WeightView(g, "weight/real"), ctx, in_shape, False, first)
        notes = list(ctx.notes)
        imag = _read_dense(_WeightView(g, "weight/imag"), ctx, in_shape, False, first)
        ctx.notes = notes  # the neuron's notes once
        if real.weight.shape != imag.weight.shape:
            raise ctx.fail(f"fields 'weight/real' {real.weight.shape} and 'weight/imag' {imag.weight.shape} differ")
        return Dense(real.in_shape, real.out_shape, real.weight, real.neuron, weight_imag=imag.weight)
    w = _dense_weight(g, ctx)
    n_out, n_in = w.shape
    out = _shape(g, "shape", ctx) if "shape" in g else (n_out,)
    if int(np.prod(out)) != n_out:
        raise ctx.fail(f"field 'weight' has {n_out} outputs but 'shape' says {out}")
    if in_shape is not None:
        if len(in_shape) != 1 and not first:
            raise ctx.fail(f"a dense layer after a {in_shape} layer needs a flatten layer in between")
        if int(np.prod(in_shape)) != n_in:
            raise ctx.fail(f"field 'weight' takes {n_in} inputs but the previous layer gives "
                           f"{int(np.prod(in_shape))} {in_shape}")
    _same(g, ctx, ("inFeatures", n_in), ("outFeatures", n_out))
    w_rec = _recurrent_weight(g, ctx, w) if rec else None
    neuron = _neuron(g, ctx, n_out) if "neuron" in g else _default_neuron(ctx)
    return Dense(in_shape if in_shape is not None else (n_in,), (n_out,), w, neuron,
                 _bias(g, ctx, (n_out,)), w_rec, _delay(g, ctx, (n_out, n_in)) if "delay" in g else None)


def _dense_weight(g: h5py.Group, ctx: _Ctx) -> np.ndarray:
    """``(out, in)`` mantissas (a flat weight reshaped to ``(out, -1)`` by ``shape``, as NetX does), range-checked."""
    w = _ints(g, "weight", ctx)
    if w.ndim == 1 and "shape" in g:  # NetX's leniency: a flat weight is reshaped to (out, -1)
        n_out = int(np.prod(_shape(g, "shape", ctx)))
        if n_out < 1 or w.size % n_out:
            raise ctx.fail(f"field 'weight' is flat with {w.size} values, which do not split into "
                           f"{n_out} rows (field 'shape')")
        w = w.reshape(n_out, -1)
    if w.ndim != 2:
        raise ctx.fail(f"field 'weight' should be (out, in), found shape {w.shape}")
    if min(w.shape) < 1:
        raise ctx.fail(f"field 'weight' {w.shape} is empty")
    _dense_range(w, "weight", ctx)
    return w


def _recurrent_weight(g: h5py.Group, ctx: _Ctx, w: np.ndarray) -> np.ndarray:
    n_out = w.shape[0]
    w_rec = _ints(g, "weight_rec", ctx)
    if w_rec.shape != (n_out, n_out):
        raise ctx.fail(f"field 'weight_rec' should be ({n_out}, {n_out}), found {w_rec.shape}")
    _dense_range(np.hstack([w, w_rec]), "weight_rec", ctx)
    return w_rec


def _dense_range(w: np.ndarray, name: str, ctx: _Ctx) -> None:
    """NetX's ``optimize_weight_bits`` clips mixed-sign weights to [-256, 254] (printing a warning): so do we,
    with a note. Same-sign weights beyond that range would need a negative shift there, which numpy leaves
    undefined: refused."""
    hi, lo = int(w.max()), int(w.min())
    if (hi > 254 and lo < 0) or (lo < -256 and hi > 0):
        ctx.notes.append(f"{ctx.where.rstrip(': ')}: field '{name}' holds {lo}..{hi}; NetX clips dense weights to "
                         "[-256, 254] (with a printed warning), and so does sj2lava")
    elif hi > 255 or lo < -256:
        raise ctx.fail(f"field '{name}' holds {lo}..{hi}, all of one sign and beyond [-256, 255]: NetX would shift "
                       "them by a negative amount (undefined in numpy). Loihi weights are 8-bit mantissas")


class _WeightView:
    """A dense layer's group seen with one part of its complex weight as ``weight``."""

    def __init__(self, g: h5py.Group, weight: str):
        self.g, self.weight = g, weight

    def __contains__(self, name: str) -> bool:
        return name in self.g if name != "weight" else True

    def __getitem__(self, name: str):
        return self.g[self.weight if name == "weight" else name]

    def keys(self):
        return self.g.keys()


MAX_DELAY = quant.MAX_DELAY
"""NetX clips axonal delays above 62 (with a warning); Lava's DelayDense holds 0..63."""


def _delay(g: h5py.Group, ctx: _Ctx, shape: Tuple[int, int]) -> np.ndarray:
    """NetX's ``delay`` as a per-synapse ``(out, in)`` array: a scalar, one per output (axonal), one per input,
    or one per synapse; values above 62 clipped as NetX clips them (with a warning and a note)."""
    d = _ints(g, "delay", ctx)
    n_out, n_in = shape
    if d.size == 1:
        d = np.full(shape, int(d.reshape(-1)[0]), dtype=np.int64)
    elif d.ndim == 1 and d.size == n_out:  # NetX checks per output first, as here
        d = np.repeat(d.reshape(-1, 1), n_in, axis=1)
    elif d.ndim == 1 and d.size == n_in:
        d = np.repeat(d.reshape(1, -1), n_out, axis=0)
    elif d.shape != (n_out, n_in):
        raise ctx.fail(f"field 'delay' of shape {d.shape} fits neither one value, {n_out} outputs, {n_in} "
                       f"inputs nor the weight's {shape}")
    if d.min() < 0:
        raise ctx.fail(f"field 'delay' holds negative delays (min {int(d.min())}); Lava drops those synapses")
    if d.max() > MAX_DELAY:
        msg = (f"field 'delay' holds delays up to {int(d.max())}; NetX clips them to {MAX_DELAY}, and so does "
               "sj2lava")
        warnings.warn(f"{ctx.path}: {ctx.where}{msg}", stacklevel=4)
        ctx.notes.append(f"{ctx.where.rstrip(': ')}: {msg}")
        d = np.minimum(d, MAX_DELAY)
    return d.astype(np.int64)
