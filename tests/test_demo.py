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
