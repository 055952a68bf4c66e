"""The sj2lava command line: inspect and run a .net file, exit codes 0 (ok) and 2 (bad input)."""
import numpy as np
import torch
from conftest import small_net_file, spikes

from sj2lava import run_lava


def test_cli_inspect_and_run(tmp_path, capsys):
    from sj2lava.cli import main

    path = small_net_file(tmp_path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    for word in ("conv", "flatten", "dense", "total", "iD=4096", "kernel", "synapses"):
        assert word in out
    x = spikes((10, 2, 1, 5, 5), 0.5, seed=1)
    np.save(tmp_path / "x.npy", x.numpy())
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert np.array_equal(y, run_lava(path, x).numpy())
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--window", "aligned", "--out",
                 str(tmp_path / "ya.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "ya.npy"), run_lava(path, x, window="aligned").numpy())
    np.save(tmp_path / "bad.npy", np.full((10, 2, 1, 5, 5), 0.5, dtype=np.float32))
    assert main(["run", str(path), "--input", str(tmp_path / "bad.npy")]) == 2
    assert "binary spikes" in capsys.readouterr().err
    assert main(["run", str(path), "--input", str(tmp_path / "missing.npy")]) == 2
    assert main(["inspect", str(tmp_path / "nope.net")]) == 2
    assert main(["run", str(path)]) == 2
    assert "give --input" in capsys.readouterr().err


def test_cli_run_with_periodic_reset(tmp_path, capsys):
    from sj2lava import emulate
    from sj2lava.cli import main

    path = small_net_file(tmp_path)
    x = spikes((11, 2, 1, 5, 5), 0.6, seed=2)
    np.save(tmp_path / "x.npy", x.numpy())
    for backend in ("emulator", "lava"):
        assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--backend", backend, "--reset-interval",
                     "4", "--reset-offset", "1", "--out", str(tmp_path / f"{backend}.npy")]) == 0
    want = emulate(path, x, reset_interval=4, reset_offset=1).numpy()
    assert np.array_equal(np.load(tmp_path / "emulator.npy"), want)
    assert np.array_equal(np.load(tmp_path / "lava.npy"), want)
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--reset-interval", "0"]) == 2
    assert "reset_interval" in capsys.readouterr().err


def test_cli_runs_sdnn_and_input_bias_files(netx_files, tmp_path, capsys):
    """The NetX run options on lava-dl's own files: graded input (PilotNet-SDNN), skip_layers, a bias image with
    resets and num_layers (tinynet), each equal to the Python call."""
    from sj2lava import emulate
    from sj2lava.cli import main

    sdnn = netx_files / "gts" / "pilotnet_sdnn" / "network.net"
    x = np.load(netx_files / "gts" / "pilotnet_sdnn" / "input.npy").transpose(3, 2, 1, 0)[None].repeat(9, 0)
    np.save(tmp_path / "x.npy", x.astype(np.int32))
    assert main(["run", str(sdnn), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int32 and np.array_equal(y[:, 0, 0], np.load(sdnn.parent / "output.npy")[0])
    assert "output message sum" in capsys.readouterr().out
    tiny = netx_files / "tiny.net"
    bias = np.load(netx_files / "gts" / "tinynet" / "input_bias.npy").astype(np.int64).transpose(2, 1, 0)
    np.save(tmp_path / "b.npy", bias)
    args = ["run", str(tiny), "--input-bias", str(tmp_path / "b.npy"), "--steps", "20", "--reset-interval", "17"]
    assert main(args + ["--out", str(tmp_path / "t.npy")]) == 0
    want = emulate(tiny, input_bias=torch.from_numpy(bias), num_steps=20, reset_interval=17)
    assert np.array_equal(np.load(tmp_path / "t.npy"), want.numpy()) and want.sum() > 0
    assert main(args + ["--num-layers", "2", "--out", str(tmp_path / "t2.npy")]) == 0
    assert np.load(tmp_path / "t2.npy").shape[2:] == tuple(emulate(tiny, input_bias=torch.from_numpy(bias),
                                                                  num_steps=20, num_layers=2).shape[2:])
    assert main(["run", str(sdnn), "--input", str(tmp_path / "x.npy"), "--skip-layers", "99"]) == 2
    assert "leaves no layer" in capsys.readouterr().err


def test_every_option_has_help_and_the_version_is_printed():
    """argparse's own parser: every argument of every subcommand carries help text; --version and python -m."""
    import argparse
    import subprocess
    import sys

    import sj2lava
    from sj2lava.cli import _parser

    parser = _parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {a.dest}" for name, sub in subs.choices.items() for a in sub._actions
               if not isinstance(a, argparse._HelpAction) and not a.help]
    assert missing == []
    out = subprocess.run([sys.executable, "-m", "sj2lava", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"sj2lava {sj2lava.__version__}"


def test_run_lava_without_lava_says_how_to_install_it(tmp_path):
    import importlib.util
    import subprocess
    import sys

    code = ("import importlib.util, sys\n"
            "real = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda name, *a: None if name == 'lava' else real(name, *a)\n"
            "import torch, sj2lava\n"
            "from sj2lava.netx.random_nets import random_spec\n"
            "from sj2lava.netx import hdf5\n"
            f"p = hdf5.write(random_spec(1), {str(tmp_path / 'a.net')!r})\n"
            "try:\n"
            "    sj2lava.run_lava(p, torch.zeros(3, 1, *sj2lava.load(p).input_shape))\n"
            "except ImportError as e:\n"
            "    print('HINT', e)\n")
    assert importlib.util.find_spec("lava") is not None
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "HINT run_lava needs Lava" in out.stdout and "pip install 'sj2lava[lava]'" in out.stdout, out.stderr


def test_cli_refuses_unusable_inputs_with_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    """Complex, infinite or empty spikes; float, negative or out-of-range labels and x/y of different lengths;
    a run too large for the machine; an unreadable --input-shape: each a one-line refusal, exit 2."""
    from sj2lava.cli import main

    path = small_net_file(tmp_path)
    cases = {
        "complex": (np.zeros((4, 2, 1, 5, 5), np.complex64), "complex values"),
        "inf": (np.full((4, 2, 1, 5, 5), np.inf, np.float32), "NaN or infinite"),
        "empty": (np.zeros((0, 2, 1, 5, 5), np.float32), "holds no values"),
    }
    for name, (x, words) in cases.items():
        np.save(tmp_path / f"{name}.npy", x)
        assert main(["run", str(path), "--input", str(tmp_path / f"{name}.npy")]) == 2, name
        assert words in capsys.readouterr().err, name
    x = np.random.default_rng(0).random((6, 1, 5, 5)).astype(np.float32)
    labels = {"float": (np.zeros(6, np.float32), "integer class indices"),
              "negative": (np.array([0, 1, -1, 0, 0, 0]), "outside"),
              "range": (np.array([0, 1, 99, 0, 0, 0]), "outside"),
              "length": (np.zeros(5, np.int64), "6 inputs but 5 labels")}
    for name, (y, words) in labels.items():
        np.savez(tmp_path / f"{name}.npz", x=x, y=y)
        assert main(["eval", str(path), "--data", str(tmp_path / f"{name}.npz"), "--steps", "4"]) == 2, name
        assert words in capsys.readouterr().err, name
    np.savez(tmp_path / "ok.npz", x=x, y=np.zeros(6, np.int64))
    monkeypatch.setenv("SJ2LAVA_MAX_BYTES", str(4 << 30))  # this machine's memory is not the test's business
    assert main(["eval", str(path), "--data", str(tmp_path / "ok.npz"), "--steps", "100000000"]) == 2
    assert "use fewer steps" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "any.nir"), "-o", str(tmp_path / "o.net"), "--dt", "1",
                 "--input-shape", "a,b"]) == 2
    assert "--input-shape must be integers" in capsys.readouterr().err


def test_cli_timeout_is_for_the_lava_backend_and_positive(tmp_path, capsys):
    from sj2lava.cli import main

    path = small_net_file(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((4, 2, 1, 5, 5), np.float32))
    run = ["run", str(path), "--input", str(tmp_path / "x.npy")]
    assert main([*run, "--timeout", "5"]) == 2
    assert "--timeout is for the Lava backend" in capsys.readouterr().err
    for bad in ("0", "-1", "nan"):
        assert main([*run, "--backend", "lava", "--timeout", bad]) == 2, bad
        assert "--timeout must be a positive number of seconds" in capsys.readouterr().err
