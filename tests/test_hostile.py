"""Hostile .net files (sj2lava.netx.hdf5's reader, the kernel cache, atomic writes, export of non-finite
models): refused by name, never followed, never crashing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import small_net_file

import sj2lava
from sj2lava import NetFileError, load

ROOT = Path(__file__).resolve().parents[1]


def test_fuzzed_files_are_refused_or_run_never_anything_else():
    """300 seeded mutants (links, external storage, virtual datasets, truncation, flips, odd names, huge shapes,
    impossible geometry, retyped and revalued fields), each through load, inspect and both emulator backends in
    a child process limited to 20 s and 4 GiB: every one is a NetFileError (inspect exit 2, one line) or a run."""
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "fuzz_netx.py"), "--mutants", "300", "--seed", "7"],
                       capture_output=True, text=True, timeout=600)
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0 and summary["failures"] == 0, r.stdout[-3000:] + r.stderr[-2000:]
    classes = summary["classes"]
    for cls in ("link", "external", "virtual", "truncate", "name", "type_string", "huge_shape"):
        assert set(classes[cls]) == {"refused"}, cls
    assert summary["counts"]["ran"] > 30 and summary["counts"]["refused"] > 150


def _layered(tmp_path, fn):
    path = small_net_file(tmp_path)
    with h5py.File(path, "r+") as f:
        fn(f, tmp_path)
    return path


def _swap(f, name, make):
    data = f[name][()]
    del f[name]
    make(f, name, data)


@pytest.mark.parametrize("make, match", [
    (lambda f, t: f.__setitem__("layer/1/extra", h5py.ExternalLink("/etc/passwd", "/x")),
     "/layer/1/extra is an external HDF5 link; refusing to follow it"),
    (lambda f, t: f.__setitem__("layer/1/extra", h5py.SoftLink("/layer/3/weight")), "is a soft HDF5 link"),
    (lambda f, t: _swap(f, "layer/3/weight", lambda f, n, d: (
        (t / "raw").write_bytes(d.astype(np.int16).tobytes()),
        f.create_dataset(n, shape=d.shape, dtype=np.int16, external=[(str(t / "raw"), 0, d.size * 2)]))),
     "/layer/3/weight keeps its data in an external file"),
])
def test_links_external_storage_and_virtual_datasets_are_refused_by_name(tmp_path, make, match):
    path = _layered(tmp_path, make)
    with pytest.raises(NetFileError, match=match):
        load(path)


def test_virtual_datasets_are_refused_by_name(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as g:
        g.create_dataset("d", data=np.arange(3))

    def make(f, t):
        layout = h5py.VirtualLayout(shape=(3,), dtype=np.int64)
        layout[...] = h5py.VirtualSource(str(other), "d", shape=(3,))
        f.create_virtual_dataset("layer/3/vbias", layout)
    with pytest.raises(NetFileError, match="/layer/3/vbias is a virtual dataset"):
        load(_layered(tmp_path, make))


@pytest.mark.parametrize("field, value, match", [
    ("layer/1/stride", 0, r"'stride' must lie in \[1, 127\]"),
    ("layer/1/padding", -1, r"'padding' must lie in \[0, 127\]"),
    ("layer/1/dilation", 128, r"'dilation' must lie in \[1, 127\]"),
    ("layer/1/groups", 2**40, r"'groups' must lie in \[1, 127\]"),
    ("layer/1/bias", np.array([5000]), r"'bias' must lie in \[-4096, 4095\]"),
    ("layer/0/shape", np.array([2**28]), "more than 67,108,864"),
    ("layer/0/shape", np.arange(2**16), "should be \\(C, H, W\\) or \\(features,\\), found 65536 values"),
    ("layer/3/weight", np.full((3, 18), 1000), "all of one sign and beyond"),
    ("layer/3/neuron/vThMant", 1e30, "beyond any Loihi field"),
])
def test_impossible_fields_are_refused_with_their_range(tmp_path, field, value, match):
    path = _layered(tmp_path, lambda f, t: (f.__delitem__(field) if field in f else None,
                                            f.create_dataset(field, data=value)))
    with pytest.raises(NetFileError, match=match) as e:
        load(path)
    assert field.rsplit("/", 1)[0].split("/neuron")[0] in str(e.value)


def test_an_empty_kernel_and_odd_layer_names_are_refused(tmp_path):
    path = _layered(tmp_path, lambda f, t: _swap(f, "layer/1/weight", lambda f, n, d: f.create_dataset(
        n, data=np.zeros((d.shape[0], d.shape[1], 0, 2)))))
    with pytest.raises(NetFileError, match="each side must lie in"):
        load(path)
    path = _layered(tmp_path, lambda f, t: f.move("layer/3", "layer/10000000000"))
    with pytest.raises(NetFileError, match="layer names must be 0..n-1"):
        load(path)


def test_limits_can_be_raised_by_the_environment(tmp_path, monkeypatch):
    path = small_net_file(tmp_path)
    monkeypatch.setenv("SJ2LAVA_MAX_VALUES", "10")
    with pytest.raises(NetFileError, match="raise \\$SJ2LAVA_MAX_VALUES"):
        load(path)
    monkeypatch.setenv("SJ2LAVA_MAX_VALUES", str(10**6))
    monkeypatch.setenv("SJ2LAVA_MAX_OBJECTS", "5")
    with pytest.raises(NetFileError, match="more than 5 HDF5 objects"):
        load(path)
    monkeypatch.delenv("SJ2LAVA_MAX_OBJECTS")
    assert load(path).neurons > 0


def test_escape_sequences_from_a_file_are_shown_escaped(tmp_path, capsys):
    from sj2lava.cli import main

    path = _layered(tmp_path, lambda f, t: (f.__delitem__("layer/1/type"),
                                            f["layer/1"].create_dataset("type", (1,), "S16", [b"\x1b[2Jconv"])))
    with pytest.raises(NetFileError, match=r"\\x1b\[2Jconv") as e:
        load(path)
    assert "\x1b" not in str(e.value)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and len(err.strip().splitlines()) == 1


def test_the_kernel_refuses_impossible_geometry_handed_to_it_directly():
    """The C kernel trusts its tables: events_backend.prepare checks every layer, whatever made it."""
    from sj2lava.emulator import events_backend
    from sj2lava.emulator.compiled import compile_net
    from sj2lava.netx.random_nets import random_spec

    spec = next(s for s in (random_spec(k) for k in range(50)) if s.layers[0].kind == "conv")
    good = compile_net(spec)
    assert events_backend.prepare(good, tuple(spec.input_shape)) is not None
    for field, value in (("stride", (0, 1)), ("dilation", (-1, 1)), ("padding", (-3, 0)), ("groups", 0),
                         ("padding", (2**31, 0))):
        layers = compile_net(spec)
        layers[0].conv = dict(layers[0].conv, **{field: value})
        with pytest.raises(ValueError, match="event kernel: layer 0 \\(conv\\)"):
            events_backend.prepare(layers, tuple(spec.input_shape))
    layers = compile_net(spec)
    layers[0].out_shape = (layers[0].out_shape[0], layers[0].out_shape[1] + 5, layers[0].out_shape[2])
    with pytest.raises(ValueError, match="does not follow from the geometry"):
        events_backend.prepare(layers, tuple(spec.input_shape))


def _kernel_in(cache, code: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, SJ2LAVA_CACHE=str(cache), PYTHONWARNINGS="default")
    script = ("import warnings, sj2lava.emulator.ckernel as k; "
              "print('AVAILABLE', k.available(), repr(k.unavailable_reason())); " + code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)


def test_a_planted_or_empty_library_in_the_kernel_cache_is_never_loaded(tmp_path):
    cache = tmp_path / "cache"
    r = _kernel_in(cache)
    assert "AVAILABLE True" in r.stdout, r.stderr
    (lib,) = cache.glob("ckernel-*.so")
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    # a planted library (constructor that would write a marker) at the right name is rebuilt, not loaded
    marker = tmp_path / "planted"
    src = tmp_path / "evil.c"
    src.write_text(f'#include <stdio.h>\n__attribute__((constructor)) static void f(void) {{ FILE *h = '
                   f'fopen("{marker}", "w"); if (h) fclose(h); }}\n')
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    r = _kernel_in(cache)
    assert "AVAILABLE True" in r.stdout and not marker.exists(), r.stderr
    lib.write_bytes(b"")  # an empty library is rebuilt too
    r = _kernel_in(cache, "import sj2lava.emulator.ckernel as k; print(k.has_dot() in (True, False))")
    assert "AVAILABLE True" in r.stdout and lib.stat().st_size > 0, r.stderr


def test_a_cache_folder_others_can_write_is_refused_with_a_warning(tmp_path):
    cache = tmp_path / "shared"
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    r = _kernel_in(cache)
    assert "AVAILABLE False" in r.stdout and "not this user's private folder" in r.stdout
    assert "RuntimeWarning" in r.stderr and "using the torch backend" in r.stderr


def test_a_link_planted_at_a_temporary_name_is_never_followed(tmp_path):
    """Writes go to an unpredictable temporary file created exclusively, then a rename: planting links at every
    name of the old pid-based scheme changes nothing, and the target is a whole file."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    spec = load(small_net_file(tmp_path))
    target = tmp_path / "out.net"
    for name in (f".out.net.{os.getpid()}.tmp", ".out.net.tmp", "out.net.tmp"):
        (tmp_path / name).symlink_to(victim)
    sj2lava.netx.write(spec, target)
    assert victim.read_text() == "keep me" and load(target).neurons == spec.neurons
    assert not target.is_symlink() and oct(target.stat().st_mode & 0o777) != "0o600"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.net.")) == \
           sorted(n for n in (f".out.net.{os.getpid()}.tmp", ".out.net.tmp"))


@pytest.mark.parametrize("what", ["weight", "bias", "decay"])
def test_export_refuses_nan_and_inf_naming_the_block(tmp_path, what):
    from sj2lava import BlockContainer, CubaLIFNode, ExportError

    blk = BlockContainer(torch.nn.Linear(4, 3, bias=what == "bias"), CubaLIFNode(0.5, 0.5, 1.0))
    with torch.no_grad():
        if what == "weight":
            blk.synapse.weight[0, 0] = float("nan")
        elif what == "bias":
            blk.synapse.bias[1] = float("inf")
        else:
            blk.neuron.current_decay.fill_(float("nan"))
    with pytest.raises(ExportError, match="holds (NaN|inf)"):
        sj2lava.export(torch.nn.Sequential(blk), tmp_path / "x.net", input_shape=(4,))
    assert not (tmp_path / "x.net").exists()


def test_cli_output_and_eval_arguments_are_checked_before_work(tmp_path, capsys):
    from sj2lava.cli import main

    path = small_net_file(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 1, 5, 5), dtype=np.float32))
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    np.savez(tmp_path / "d.npz", x=np.full((5, 1, 5, 5), 0.5, dtype=np.float32), y=np.zeros(5, dtype=np.int64))
    assert main(["eval", str(path), "--data", str(tmp_path / "d.npz"), "--steps", "4", "--limit", "-1"]) == 2
    assert "--limit must be >= 1" in capsys.readouterr().err
    np.savez(tmp_path / "e.npz", x=np.full((5, 1, 5, 5), 5.0, dtype=np.float32), y=np.zeros(5, dtype=np.int64))
    assert main(["eval", str(path), "--data", str(tmp_path / "e.npz"), "--steps", "4"]) == 2
    assert "rates in [0, 1]" in capsys.readouterr().err


def test_emulate_refuses_a_run_that_would_not_fit_in_memory(tmp_path, monkeypatch):
    path = small_net_file(tmp_path)
    x = torch.zeros(8, 2, 1, 5, 5)
    assert sj2lava.emulate(path, x).shape[:2] == (8, 2)
    monkeypatch.setenv("SJ2LAVA_MAX_BYTES", "1000")
    with pytest.raises(ValueError, match="needs about .* raise \\$SJ2LAVA_MAX_BYTES"):
        sj2lava.emulate(path, x, record=("spikes", "voltage"))


def test_fuzzed_nir_files_are_refused_or_run_never_anything_else():
    """200 seeded .nir mutants (field values, shapes, deletions, ghost and dropped edges, nesting; links, truncation,
    byte flips and empty files), each through from_nir, export and emulate in a child process limited to 20 s and
    4 GiB: every one a one-line refusal (NirFileError, UnsupportedLayerError) or a clean run."""
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "fuzz_nir.py"), "--mutants", "200", "--seed", "7"],
                       capture_output=True, text=True, timeout=600)
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0 and summary["failures"] == 0, r.stdout[-3000:] + r.stderr[-2000:]
    classes = summary["classes"]
    for cls in ("file link", "file external", "file truncate", "file empty", "graph nest", "graph edge"):
        assert set(classes[cls]) == {"refused"}, cls
    assert summary["counts"]["ran"] > 20 and summary["counts"]["refused"] > 100
