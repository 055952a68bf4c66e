"""The main job on tiny settings: it runs, is exact, writes its figure, and repeats itself exactly."""
import re

from sj2lava.demo import main


def _numbers(text: str) -> str:
    # everything but timings must repeat
    return re.sub(r"\d+ s\b|\(\d+(\.\d+)? s\)", "", text)


def test_demo_is_exact_deterministic_and_draws(tmp_path, capsys):
    args = ["--epochs", "1", "--train-samples", "160", "--test-samples", "24", "--lava-samples", "2",
            "--steps", "10"]
    outs = []
    for run in range(2):
        assert main(args + ["--out", str(tmp_path / f"run{run}")]) == 0
        outs.append(capsys.readouterr().out)
        assert (tmp_path / f"run{run}" / "demo.png").stat().st_size > 10_000
        assert (tmp_path / f"run{run}" / "demo.net").exists()
    assert "exact stages agree with the containers: yes, 0 mismatches" in outs[0]
    assert "accuracy" in outs[0] and "figure written to" in outs[0]
    assert _numbers(outs[0]).replace("run0", "run") == _numbers(outs[1]).replace("run1", "run")


def test_the_readme_shell_lines_run_on_what_the_demo_leaves(tmp_path, capsys):
    """`make demo` leaves demo.net, x.npy and test.npz; `sj2lava inspect / run / eval` (the README's lines) run on
    them, and `sj2lava demo` passes the demo's options through."""
    import pytest

    from sj2lava.cli import main as cli

    out = tmp_path / "d"
    assert cli(["demo", "--epochs", "1", "--train-samples", "96", "--test-samples", "12", "--lava-samples", "1",
                "--steps", "8", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= {"demo.net", "x.npy", "test.npz", "demo.png"}
    assert cli(["inspect", str(out / "demo.net")]) == 0
    assert cli(["run", str(out / "demo.net"), "--input", str(out / "x.npy"), "--out", str(tmp_path / "y.npy")]) == 0
    assert cli(["eval", str(out / "demo.net"), "--data", str(out / "test.npz"), "--steps", "8"]) == 0
    assert "synops/sample" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli(["demo", "--help"])
    assert e.value.code == 0 and "--lava-samples" in capsys.readouterr().out
