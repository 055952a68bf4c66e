"""The CPU backend (emulate backend='events': the C kernel) against the torch backend and against Lava itself."""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import mismatches

import sj2lava
from sj2lava import GradedOverflowError, emulate, run_lava
from sj2lava.emulator import ckernel as emulate_events
from sj2lava.emulator import compiled, events_backend, torch_backend
from sj2lava.netx import hdf5
from sj2lava.netx.random_nets import random_spec
from sj2lava.netx.spec import Cuba, Dense, NetSpec

pytestmark = pytest.mark.skipif(not emulate_events.available(), reason="no C compiler for the event kernel")
ALL = ("spikes", "layer_spikes", "voltage", "current")


def _input(spec, seed, batch=3):
    rng = np.random.default_rng(seed)
    steps = int(rng.integers(6, 16))
    return torch.from_numpy((rng.random((steps, batch, *spec.input_shape)) < rng.uniform(0.1, 0.7)).astype(np.float32))


def _same(a, b):
    return all(torch.equal(a[k], b[k]) if k == "spikes" else
               all(torch.equal(p, q) for p, q in zip(a[k], b[k])) for k in ALL)


@pytest.mark.parametrize("dot", [True, False])
@pytest.mark.parametrize("wide", [0.0, 0.7])
def test_events_equal_torch_every_layer_state_and_spike(wide, dot, monkeypatch):
    """60 random nets each (the corners of netx.random_nets.random_spec: saturating, sparse and all-negative
    weights, groups, dilation, padding, strides, biases, decays 0..4096, dense_rec), and with
    ``wide`` the 16/32-channel convolutions; on a CPU with the dot path also with it turned off, so
    that the table and fan-out paths are checked as well."""
    if dot and not emulate_events.has_dot():
        pytest.skip("this CPU has no AVX512-VNNI: no dot path")
    monkeypatch.setattr(emulate_events, "DOT", dot)
    paths = dict(dot=0, table=0, fan=0)
    for seed in range(60):
        spec = random_spec(seed, wide=wide)
        x = _input(spec, seed)
        a, b = emulate(spec, x, record=ALL, backend="torch"), emulate(spec, x, record=ALL, backend="events")
        assert _same(a, b), seed
        for layer, _, _ in events_backend.prepare(compiled.compile_net(spec), tuple(spec.input_shape), dot):
            paths["dot" if layer.struct.w8 else "table" if layer.struct.lut else "fan"] += 1
    assert paths["fan"] > 20 and (paths["dot"] > 40) == dot and (paths["table"] > 10) == (wide > 0 and not dot), paths


def _graded_or_spikes(spec, seed, batch=3):
    rng = np.random.default_rng(seed)
    longest = max([int(l.delay.max()) for l in spec.layers if getattr(l, "delay", None) is not None], default=0)
    shape = (16 + longest, batch, *spec.input_shape)
    if spec.graded_input:
        return dict(x=torch.from_numpy(rng.integers(-20, 41, shape) * (rng.random(shape) < 0.5)))
    if spec.layers[0].kind == "input":
        return dict(input_bias=torch.from_numpy(rng.integers(-300, 400, (batch, *spec.input_shape))),
                    x=torch.from_numpy(rng.integers(-8, 9, shape) * (rng.random(shape) < 0.3)))
    return dict(x=torch.from_numpy((rng.random(shape) < 0.4).astype(np.float32)))


def test_sdnn_and_rf_nets_run_on_the_kernel_equal_to_torch():
    """Random nets with sigma-delta layers (graded messages, Delta inputs, Sigma outputs, CUBA between, delays) and
    resonate-and-fire layers: every layer's messages / spikes, sigma, u and v equal on both backends."""
    want = ALL + ("sigma",)
    kinds = {}
    for seed in range(80):
        spec = random_spec(seed, delays=0.5, inputs=0.25, sdnn=0.3, rf=0.3)
        assert not events_backend.unsupported(compiled.compile_net(spec)), seed
        kw = _graded_or_spikes(spec, seed)
        try:
            a = emulate(spec, record=want, backend="torch", **kw)
        except GradedOverflowError:  # one exception for one event, whichever backend
            with pytest.raises(GradedOverflowError, match="graded messages up to"):
                emulate(spec, record=want, backend="events", **kw)
            kinds["overflow"] = kinds.get("overflow", 0) + 1
            continue
        b = emulate(spec, record=want, backend="events", **kw)
        for key in want[1:]:
            assert [x is None for x in a[key]] == [x is None for x in b[key]], (seed, key)
            assert all(x is None or torch.equal(x, y) for x, y in zip(a[key], b[key])), (seed, key)
        for l in spec.layers:
            if l.kind != "flatten":
                kinds[l.neuron.kind] = kinds.get(l.neuron.kind, 0) + 1
    assert kinds["sdnn"] > 30 and kinds["rf"] > 10 and kinds["cuba"] > 50, kinds


@pytest.mark.parametrize("dot_min", [0, 10**9])
def test_dot_and_fanout_paths_switch_per_step_and_agree(dot_min, monkeypatch):
    """Layers that hold both the dot path and the fan-out table pick one per step (by the step's events, and for
    graded messages only below 2^15 in magnitude). Forced to the dot path wherever it may go (dot_min 0) or never
    (a huge dot_min), random nets with sigma-delta and CUBA layers equal the torch backend in every layer, with
    messages past 2^15 at some steps and below it at others, so that a graded dot layer also falls back."""
    if not emulate_events.has_dot():
        pytest.skip("this CPU has no AVX512-VNNI: no dot path")
    monkeypatch.setattr(events_backend, "DOT_MIN", dot_min)
    want = ALL + ("sigma",)
    seen = dict(graded_dot=0, spike_dot=0, both=0, big=0, small=0)
    for seed in range(40):
        spec = random_spec(300 + seed, inputs=0.3, sdnn=0.6, wide=0.5)
        kw = _graded_or_spikes(spec, seed)
        if spec.graded_input:  # alternate steps of messages far past 2^15 and small ones
            kw["x"] = kw["x"] * torch.where(torch.arange(kw["x"].shape[0]) % 2 == 0, 1500, 1).reshape(
                -1, *[1] * (kw["x"].dim() - 1))
        try:
            a = emulate(spec, record=want, backend="torch", **kw)
        except GradedOverflowError:
            with pytest.raises(GradedOverflowError):
                emulate(spec, record=want, backend="events", **kw)
            continue
        b = emulate(spec, record=want, backend="events", **kw)
        for key in want:
            pairs = [(a[key], b[key])] if key == "spikes" else list(zip(a[key], b[key]))
            assert all(x is None and y is None or torch.equal(x, y) for x, y in pairs), (seed, key)
        kernel = events_backend.prepare(compiled.compile_net(spec), tuple(spec.input_shape))
        for j, (layer, _, _) in enumerate(kernel):
            st = layer.struct
            seen["both"] += bool(st.w8 and st.fan_start)
            if st.w8 and st.graded_in:
                seen["graded_dot"] += 1
                if j > 0 and a["layer_spikes"][j - 1] is not None:  # the messages this layer took
                    top = a["layer_spikes"][j - 1].abs().flatten(2).amax((1, 2))
                    seen["big"] += int((top >= 2**15).any())
                    seen["small"] += int(((top > 0) & (top < 2**15)).any())
            seen["spike_dot"] += bool(st.w8 and not st.graded_in)
    assert seen["graded_dot"] > 5 and seen["spike_dot"] > 10 and seen["both"] > 15, seen
    assert seen["big"] > 0 and seen["small"] > 0, seen


def test_input_neurons_take_a_single_step_of_a_in():
    """One step of one sample with a_in given (once read as the shared all-zero row): equal to the torch backend."""
    for seed in range(40):
        spec = random_spec(seed, inputs=1.0)
        if spec.layers[0].kind != "input" or spec.graded_input:
            continue
        rng = np.random.default_rng(seed)
        x = torch.from_numpy(rng.integers(1, 9, (1, 1, *spec.input_shape)))
        bias = torch.from_numpy(rng.integers(-300, 400, (1, *spec.input_shape)))
        with warnings.catch_warnings():  # one step shows no output: emulate says so, and that is not the point here
            warnings.simplefilter("ignore")
            a = emulate(spec, x, input_bias=bias, backend="torch", record=("voltage",))
            b = emulate(spec, x, input_bias=bias, backend="events", record=("voltage",))
        assert a["voltage"][0].shape[0] == 1
        assert all(p is None and q is None or torch.equal(p, q) for p, q in zip(a["voltage"], b["voltage"])), seed


def test_layer_timer_and_dot_peak():
    spec = random_spec(7, wide=0.9)
    x = _input(spec, 3, batch=4)
    with emulate_events.LayerTimer() as timer:
        emulate(spec, x, backend="events")
        emulate(spec, x, backend="events")
    n = len(events_backend.prepare(compiled.compile_net(spec), tuple(spec.input_shape)))
    assert timer.runs == 2 and timer.seconds.shape == (n,) and (timer.seconds > 0).all()
    emulate(spec, x, backend="events")  # after the block: not timed
    assert timer.runs == 2
    peak = emulate_events.dot_peak(1, seconds=0.05)
    assert (peak > 1e9) == emulate_events.has_dot() and (peak == 0.0) != emulate_events.has_dot()


def test_spike_bytes_takes_only_zero_and_one():
    x = np.array([0.0, 1.0, -0.0, 1.0, 0.0], np.float32)
    s, bad = emulate_events.spike_bytes(x)
    assert bad == -1 and s.tolist() == [0, 1, 0, 1, 0]
    for value in (-1.0, 0.5, 2.0, float("nan"), float("inf"), 1e-45):
        y = np.zeros(10_000, np.float32)
        y[7777] = value
        assert emulate_events.spike_bytes(y)[1] == 7777, value


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")
def test_wide_random_nets_equal_lava_every_layer(seed, tmp_path):
    spec = random_spec(100 + seed, wide=0.9)
    path = hdf5.write(spec, tmp_path / "w.net")
    x = _input(spec, seed, batch=2)
    lava = run_lava(path, x, all_layers=True)
    emu = emulate(path, x, record=("layer_spikes",), backend="events")["layer_spikes"]
    assert [mismatches(a, b) for a, b in zip(emu, lava)] == [0] * len(lava)


def test_threads_chunks_and_layouts_do_not_change_results():
    spec = random_spec(7, wide=0.9)
    x = _input(spec, 3, batch=9)
    full = emulate(spec, x, backend="events")
    assert torch.equal(emulate(spec, x, backend="events", batch_size=2), full)
    torch_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(emulate(spec, x, backend="events"), full)
    finally:
        torch.set_num_threads(torch_threads)
    assert torch.equal(sj2lava.NXT_to_TNX(emulate(spec, sj2lava.TNX_to_NXT(x), layout="NXT", backend="events")), full)


def test_a_current_past_int32_wraps_as_in_the_torch_backend():
    """A dense layer whose shifted sum reaches 2^24: 64 times it leaves int32, and both backends wrap it as
    Lava's int32 registers do (every layer's u and v equal)."""
    n_in = 1 << 17
    w = np.full((2, n_in), 254, dtype=np.int64)
    w[1] = -254
    spec = NetSpec((n_in,), [Dense((n_in,), (2,), w, Cuba(np.asarray(0), np.asarray(0), np.asarray(1 << 16)))])
    x = torch.ones(3, 1, n_in)
    assert not events_backend.unsupported(compiled.compile_net(spec))
    a, b = emulate(spec, x, record=ALL, backend="events"), emulate(spec, x, record=ALL, backend="torch")
    assert _same(a, b) and int(b["current"][0].abs().max()) > 2**22


def test_auto_falls_back_to_torch_where_a_sum_could_pass_int32():
    """The kernel's accumulators are int32: a layer whose 0/1 sum may reach 2^31 runs on the torch backend under
    'auto', and 'events' says why."""
    spec = random_spec(1)
    x = _input(spec, 1)
    real = compiled.compile_net
    layers = real(spec)
    first = next(l for l in layers if l.kind != "flatten")
    first.bound = 2.0**31
    assert "a sum may reach 2^31" in events_backend.unsupported(layers)
    key = ("compiled", 6)
    compiled._CACHE.clear()
    compiled._CACHE[(compiled.fingerprint(spec), key)] = layers
    try:
        with pytest.raises(ValueError, match="layer 0 .*a sum may reach 2\\^31.*backend='torch'"):
            emulate(spec, x, backend="events")
        assert torch.equal(emulate(spec, x), emulate(spec, x, backend="torch"))
    finally:
        compiled._CACHE.clear()


def test_backend_argument_is_checked():
    spec = random_spec(1)
    x = _input(spec, 1)
    with pytest.raises(ValueError, match="backend must be"):
        emulate(spec, x, backend="numba")
    with pytest.raises(ValueError, match="runs on the CPU"):
        emulate(spec, x, backend="events", device="cuda")


def _fresh_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a new interpreter (so the kernel is built anew) with these environment variables."""
    return subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env), capture_output=True,
                          text=True, timeout=300)


def test_without_a_compiler_auto_uses_torch_and_events_says_why(tmp_path):
    code = (
        "import torch, sj2lava\n"
        "from sj2lava.emulator import ckernel as emulate_events\n"
        "from sj2lava.netx.random_nets import random_spec\n"
        "spec = random_spec(3); x = (torch.rand(5, 2, *spec.input_shape) < .5).float()\n"
        "assert not emulate_events.available()\n"
        "assert torch.equal(sj2lava.emulate(spec, x), sj2lava.emulate(spec, x, backend='torch'))\n"
        "try:\n"
        "    sj2lava.emulate(spec, x, backend='events')\n"
        "except RuntimeError as e:\n"
        "    print('refused:', e)\n")
    out = _fresh_python(code, CC="false", SJ2LAVA_CACHE=str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr
    assert "refused: emulate: the 'events' backend could not build its C kernel (false failed" in out.stdout


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 -march levels")
def test_kernel_without_avx512_computes_the_same(tmp_path):
    """The kernel as a CPU without AVX-512 (so without the dot path) builds it: the vector code's
    portable forms, against the torch backend on 30 random nets."""
    code = (
        "import torch, sj2lava\n"
        "from sj2lava.emulator import ckernel as emulate_events\n"
        "from sj2lava.netx.random_nets import random_spec\n"
        "assert emulate_events.available() and not emulate_events.has_dot()\n"
        "ALL = ('spikes', 'layer_spikes', 'voltage', 'current')\n"
        "for seed in range(30):\n"
        "    spec = random_spec(seed, wide=0.5 * (seed % 2))\n"
        "    x = (torch.rand(9, 3, *spec.input_shape, generator=torch.Generator().manual_seed(seed)) < .4).float()\n"
        "    a = sj2lava.emulate(spec, x, record=ALL, backend='torch')\n"
        "    b = sj2lava.emulate(spec, x, record=ALL, backend='events')\n"
        "    assert torch.equal(a['spikes'], b['spikes']), seed\n"
        "    for k in ALL[1:]:\n"
        "        assert all(torch.equal(p, q) for p, q in zip(a[k], b[k])), (seed, k)\n"
        "print('ok')\n")
    out = _fresh_python(code, SJ2LAVA_CFLAGS="-march=x86-64-v2", SJ2LAVA_CACHE=str(tmp_path / "cache"))
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_kernel_is_built_once_into_the_cache(tmp_path):
    code = "from sj2lava.emulator import ckernel as e; assert e.available()"
    assert _fresh_python(code, SJ2LAVA_CACHE=str(tmp_path)).returncode == 0
    built = list(Path(tmp_path).glob("ckernel-*.so"))
    assert len(built) == 1 and not list(Path(tmp_path).glob("tmp*"))
    stamp = built[0].stat().st_mtime_ns
    assert _fresh_python(code, SJ2LAVA_CACHE=str(tmp_path)).returncode == 0
    assert built[0].stat().st_mtime_ns == stamp


def test_torch_backend_rounds_float_sums_it_gets_back(monkeypatch):
    """A float kernel that does not accumulate exactly (cuDNN's FFT/Winograd convolutions, TF32) returns
    k - eps for an integer sum k. The torch backend must still compute Lava's integers: with every weight
    nudged down by 1e-4 (sums off by far less than 1/2), all spikes, currents and voltages stay those of
    the C kernel."""
    real = torch_backend.prepare

    def inexact(layers, device):
        out = real(layers, device)
        for tl in out:
            for name in ("weight", "rec_weight"):
                w = getattr(tl, name)
                if w is not None:
                    setattr(tl, name, w - 1e-4)
        return out

    monkeypatch.setattr(torch_backend, "prepare", inexact)
    checked = 0
    for seed in range(12):
        spec = random_spec(seed)
        x = _input(spec, seed)
        a, b = emulate(spec, x, record=ALL, backend="torch"), emulate(spec, x, record=ALL, backend="events")
        assert _same(a, b), seed
        checked += int(b["spikes"].sum())
    assert checked > 0


def test_exact_float_sums_switches_tf32_off_and_restores_it():
    matmul = torch.backends.cuda.matmul
    before = (matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    matmul.allow_tf32 = True
    try:
        with torch_backend._exact_float_sums():
            assert not matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert matmul.allow_tf32 and torch.backends.cudnn.allow_tf32 == before[1]
    finally:
        matmul.allow_tf32 = before[0]


@pytest.mark.parametrize("backend", ["events", "torch"])
def test_every_recorded_array_follows_the_layout(backend):
    spec = random_spec(3)
    x = _input(spec, 3)
    tnx = emulate(spec, x, record=ALL, backend=backend)
    nxt = emulate(spec, sj2lava.TNX_to_NXT(x), layout="NXT", record=ALL, backend=backend)
    assert torch.equal(nxt["spikes"], sj2lava.TNX_to_NXT(tnx["spikes"]))
    for key in ("layer_spikes", "voltage", "current"):
        assert len(nxt[key]) == len(tnx[key]) > 0
        for a, b in zip(nxt[key], tnx[key]):
            assert torch.equal(a, sj2lava.TNX_to_NXT(b)), key
