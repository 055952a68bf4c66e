"""Every ```python block of README.md runs, in order, in one namespace (as a reader pastes them one after another).

The few names the blocks use without defining are small stand-ins made here, and the README says so:
``members_model`` / ``subtract_model`` (snnTorch nets with member layers), ``images`` / ``labels``, the DDP
block's ``build_model`` / ``loader`` / ``loss_fn`` (one process, gloo), and the files ``model.nir`` (snnTorch's
NIR export) and ``sinabs.nir`` (a discrete-time conv + IF + sum-pool graph)."""
import os
import re
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


class _Members(nn.Module):
    def __init__(self, reset: str):
        import snntorch as snn

        super().__init__()
        self.fc1, self.fc2 = nn.Linear(20, 12), nn.Linear(12, 4)
        self.lif1 = snn.Leaky(beta=0.5, init_hidden=True, reset_mechanism=reset)
        self.lif2 = snn.Leaky(beta=0.5, init_hidden=True, reset_mechanism=reset)

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


def _stand_ins(folder: Path) -> dict:
    import snntorch as snn

    import sj2lava

    torch.manual_seed(0)
    snn_net = nn.Sequential(nn.Linear(20, 12), snn.Leaky(beta=0.5, init_hidden=True, reset_mechanism="zero"),
                            nn.Linear(12, 4), snn.Leaky(beta=0.5, init_hidden=True, reset_mechanism="zero",
                                                        output=True))
    nir.write(folder / "model.nir", sj2lava.frontends.snntorch.snntorch_to_nir(snn_net, torch.zeros(1, 20)),
              compression=None)
    rng = np.random.default_rng(1)
    sinabs = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([2, 8, 8])}),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 0.5, (4, 2, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.zeros(4)),
        "if1": nir.IF(r=np.ones((4, 8, 8)), v_threshold=np.ones((4, 8, 8))),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(0, 0.3, (5, 64)), bias=np.zeros(5)),
        "if2": nir.IF(r=np.ones(5), v_threshold=np.ones(5)),
        "out": nir.Output(output_type={"output": np.array([5])})},
        edges=[("in", "conv"), ("conv", "if1"), ("if1", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "if2"),
               ("if2", "out")], type_check=False)
    nir.write(folder / "sinabs.nir", sinabs)

    def build_model():
        return nn.Sequential(sj2lava.BlockContainer(nn.Linear(20, 4), sj2lava.CubaLIFNode(0.5, 0.1, 0.5,
                                                                                           requires_grad=True), "m"))

    loader = [((torch.rand(6, 3, 20) < 0.4).float(), torch.randint(0, 4, (3,))) for _ in range(2)]
    return dict(members_model=_Members("zero"), subtract_model=_Members("subtract"), images=torch.rand(16, 20),
                labels=torch.randint(0, 4, (16,)), build_model=build_model, loader=loader,
                loss_fn=lambda out, y: nn.functional.cross_entropy(out.sum(0), y))


def run_blocks(folder: Path) -> None:
    """In ``folder``: the stand-ins, then every block in order, in one namespace; a failure names its block."""
    os.chdir(folder)
    namespace = _stand_ins(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the blocks' own warnings (approximations) are what they show
        for i, code in enumerate(blocks()):
            try:
                exec(compile(code, f"README.md python block {i}", "exec"), namespace)  # noqa: S102
            except Exception as e:  # name the block, not just the line
                raise AssertionError(f"README python block {i} failed: {type(e).__name__}: {e}\n{code}") from e
    assert float(namespace["out"].sum()) > 0  # the example net spikes
    assert (folder / "net.net").exists() and (folder / "ann.net").exists()


def test_every_readme_python_block_runs_in_order(tmp_path):
    """In a fresh interpreter, as a reader runs them: the DDP block's process group (gloo) must not outlive the
    script, or a later fork (Lava's runtime) inherits it and hangs when the child frees it."""
    assert len(blocks()) >= 6
    with socket.socket() as s:  # the DDP block: one process, gloo, on a free local port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1")
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
            f"from test_readme import run_blocks; from pathlib import Path; run_blocks(Path({str(tmp_path)!r}))\n"
            "print('README OK')")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0 and "README OK" in out.stdout, out.stderr[-4000:]
