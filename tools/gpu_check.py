"""Every check that needs a GPU, in one command (`make gpu-check`), with one summary table at the end.

    python tools/gpu_check.py              # on a CUDA machine
    python tools/gpu_check.py --dry-run    # anywhere: the same checks on the CPU (Triton's interpreter)

(a) kernels   the fused Triton kernels against the torch reference (tests/kernel_check.py: float16/32/64,
              strided upstream gradients, int64 offsets, single-step); on CUDA also a real int64 case
              (T * neurons > 2^31), compared on neuron subsets (neurons are independent).
(b) emulator  emulate(device='cuda', backend='torch') against the CPU kernel on random nets: spikes, voltages
              and currents of every layer identical, with the user's TF32 and cuDNN-benchmark flags on and off.
(c) blocks    BlockContainers on the device (fused kernels) against the CPU reference, and the exported .net
              in the emulator against both: spikes identical.
(d) export    export of a device-resident model writes the bytes of the CPU export.
(e) bench     benchmarks/bench_block.py --device cuda: fused vs lava-dl vs SpikingJelly, peak memory.

The dry run uses the CPU for the device (the 'triton' backend under TRITON_INTERPRET=1, the emulator's
torch backend against its C kernel) and tiny benchmark settings, so the script is known to work before a
GPU is lent. Exit status 0 only if every check passed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="run on the CPU (Triton interpreter), tiny benchmark")
    ap.add_argument("--nets", type=int, default=None, help="random nets for the emulator check")
    ap.add_argument("--skip", nargs="*", default=[], choices=["kernels", "emulator", "blocks", "export", "bench"],
                    help="checks to leave out")
    return ap.parse_args(argv)


ARGS = _parse(sys.argv[1:]) if __name__ == "__main__" else None
if ARGS is not None and ARGS.dry_run:
    os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported: the kernels then run on the CPU

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]
import sj2lava  # noqa: E402
from sj2lava import BlockContainer, CubaLIFNode, SumPool2d  # noqa: E402

ALL = ("spikes", "layer_spikes", "voltage", "current")


def check_kernels(dev: torch.device, dry: bool) -> str:
    import kernel_check

    kernel_check.DEVICE = dev
    spikes = kernel_check.run_all()
    detail = f"{len(kernel_check.CASES) + len(kernel_check.VARIANTS)} cases, {spikes:,} spikes identical"
    if not dry:
        detail += "; " + _huge_i64_case(dev)
    return detail


def _huge_i64_case(dev: torch.device) -> str:
    """T * n > 2^31: the int64-offset kernels at their real size, against the reference on neuron subsets."""
    from sj2lava import neuron_triton as kernels
    from sj2lava import quant
    from sj2lava.neuron import cuba_lif

    steps, n = 64, (1 << 25) + 512
    free = torch.cuda.mem_get_info(dev)[0]
    if free < 100 * 2**30:
        return f"int64 size skipped ({free / 2**30:.0f} GiB free, needs 100)"
    assert kernels._needs_i64(steps, n) and not kernels.FORCE_I64
    g = torch.Generator(device=dev).manual_seed(0)
    z = (torch.randint(-40, 70, (steps, n), generator=g, device=dev).float() * (2 / 64)).requires_grad_(True)
    th = quant.threshold_mant(0.6)
    cd, vd = quant.decay_param(0.25).reshape(1).to(dev), quant.decay_param(0.1).reshape(1).to(dev)
    spikes, _ = cuba_lif(z, cd, vd, th, backend="triton")
    w = torch.linspace(-1, 1, n, device=dev)
    (spikes * w).sum().backward()
    cols = torch.cat([torch.arange(4096), torch.arange(n - 4096, n)]).to(dev)  # first and last neurons
    zs = z.detach()[:, cols].clone().requires_grad_(True)
    ref, _ = cuba_lif(zs, cd, vd, th, backend="torch")
    (ref * w[cols]).sum().backward()
    assert torch.equal(ref, spikes.detach()[:, cols]), "int64 case: spikes differ"
    assert torch.allclose(zs.grad, z.grad[:, cols], rtol=1e-4, atol=1e-5), "int64 case: gradients differ"
    return f"int64 offsets at T={steps} x {n:,} neurons: {int(ref.sum()):,} spikes identical on 8,192 neurons"


def check_emulator(dev: torch.device, dry: bool, nets: int) -> str:
    from sj2lava import emulate
    from sj2lava.emulator import ckernel
    from sj2lava.netx.random_nets import random_spec

    ref_backend = "events" if ckernel.available() else "torch"
    flags = [(False, False), (True, True)]  # (TF32 allowed, cuDNN benchmark: may pick FFT/Winograd)
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    keep = (cudnn.allow_tf32, matmul.allow_tf32, cudnn.benchmark)
    compared = 0
    try:
        for seed in range(nets):
            spec = random_spec(seed, wide=0.7 if seed % 2 else 0.0)
            g = torch.Generator().manual_seed(seed)
            x = (torch.rand(12, 4, *spec.input_shape, generator=g) < 0.4).float()
            want = emulate(spec, x, record=ALL, backend=ref_backend)
            for tf32, bench in flags:
                cudnn.allow_tf32 = matmul.allow_tf32 = tf32
                cudnn.benchmark = bench
                got = emulate(spec, x, record=ALL, device=dev, backend="torch")
                assert torch.equal(want["spikes"], got["spikes"]), (seed, tf32)
                for key in ("layer_spikes", "voltage", "current"):
                    for k, (a, b) in enumerate(zip(want[key], got[key])):
                        assert torch.equal(a, b), f"net {seed}, TF32={tf32}: {key} of layer {k} differs"
                compared += sum(int(s.sum()) for s in want["layer_spikes"])
    finally:
        cudnn.allow_tf32, matmul.allow_tf32, cudnn.benchmark = keep
    return (f"{nets} random nets, {dev.type} torch backend vs CPU {ref_backend}, TF32 and cuDNN benchmark off/on: "
            f"{compared:,} spikes and every u, v identical")


def _model(bias: bool = True) -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(
        BlockContainer(nn.Conv2d(2, 8, 3, padding=1, bias=bias), CubaLIFNode(0.5, 0.1, 0.5), "m"),
        BlockContainer(SumPool2d(2), CubaLIFNode(1.0, 0.0, 0.5), "m"),
        BlockContainer(nn.Conv2d(8, 8, 3, stride=2, bias=bias), CubaLIFNode(0.25, 0.05, 0.7, requires_grad=True), "m"),
        BlockContainer(nn.Flatten(), None, "m"),
        BlockContainer(nn.Linear(8 * 3 * 3, 10, bias=bias), CubaLIFNode(1.0, 0.2, 0.6), "m"))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(4)
    return net


def _set_backend(net: nn.Module, backend: str) -> None:
    for m in net.modules():
        if isinstance(m, CubaLIFNode):
            m.backend = backend


def check_blocks(dev: torch.device, dry: bool) -> str:
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(20, 16, 2, 16, 16, generator=g) < 0.3).float()
    cpu = _model()
    _set_backend(cpu, "torch")
    with torch.no_grad():
        want = cpu(x)
    on_dev = _model().to(dev)
    _set_backend(on_dev, "triton")  # the fused kernels (CUDA, or the interpreter in the dry run)
    with torch.no_grad():
        got = on_dev(x.to(dev)).cpu()
    assert torch.equal(want, got), f"containers: {int((want != got).sum())} spikes differ between CPU and {dev}"
    with tempfile.TemporaryDirectory() as d:
        path = sj2lava.export(cpu, Path(d) / "m.net", (2, 16, 16))
        emu = sj2lava.emulate(path, x)
    assert torch.equal(emu, want), f".net in the emulator: {int((emu != want).sum())} spikes differ"
    assert want.sum() > 0
    return f"{int(want.sum()):,} output spikes identical: CPU reference = {dev.type} fused = .net in the emulator"


def check_export(dev: torch.device, dry: bool) -> str:
    with tempfile.TemporaryDirectory() as d:
        cpu = _model()
        on_dev = _model().to(dev)
        a = sj2lava.export(cpu, Path(d) / "cpu.net", (2, 16, 16))
        b = sj2lava.export(on_dev, Path(d) / "dev.net", (2, 16, 16))
        same = Path(a).read_bytes() == Path(b).read_bytes()
    assert same, f"export from {dev} differs from the CPU export"
    where = {p.device.type for p in on_dev.parameters()}
    return f"model on {sorted(where)} exported: same bytes as the CPU export"


def check_bench(dev: torch.device, dry: bool) -> str:
    import bench_block

    argv = ["--device", "cpu", "--T", "4", "--batch", "2", "--iters", "1"] if dry else ["--device", str(dev)]
    results = bench_block.main(argv)
    lines = []
    for (steps, batch), res in results.items():
        names = list(res)
        ours = res[names[0]]
        sj = res.get("SpikingJelly lava_exchange")
        ldl = res.get("lava-dl slayer blocks")
        mem = f", peak {ours[1]:,.0f} vs lava-dl {ldl[1]:,.0f} MiB" if ours[1] == ours[1] else ""
        lines.append(f"(T={steps}, N={batch}) {names[0]}: {ours[0] / ldl[0]:.2f}x lava-dl, "
                     f"{ours[0] / sj[0]:.2f}x SpikingJelly{mem}")
    return "; ".join(lines)


def main(args) -> int:
    dry = args.dry_run or not torch.cuda.is_available()
    if not args.dry_run and dry:
        print("no CUDA device: running the dry run on the CPU (use --dry-run to say so)")
        os.environ["TRITON_INTERPRET"] = "1"  # too late only if Triton was imported already, which it is not
    dev = torch.device("cpu") if dry else torch.device("cuda")
    if dry:  # once Triton's interpreter has run, importing torchvision (lava-dl needs it) fails in inspect
        from sj2lava._deps import quiet_import

        quiet_import("lava.lib.dl.slayer")
        quiet_import("spikingjelly.activation_based.lava_exchange")
    where = "CPU (dry run: Triton interpreter)" if dry else torch.cuda.get_device_name(dev)
    nets = args.nets if args.nets is not None else (6 if dry else 40)
    checks = [("kernels", lambda: check_kernels(dev, dry)), ("emulator", lambda: check_emulator(dev, dry, nets)),
              ("blocks", lambda: check_blocks(dev, dry)), ("export", lambda: check_export(dev, dry)),
              ("bench", lambda: check_bench(dev, dry))]
    rows = []
    for name, fn in checks:
        if name in args.skip:
            rows.append((name, "skipped", 0.0, ""))
            continue
        start = time.perf_counter()
        try:
            detail, status = fn(), "ok"
        except Exception as e:  # every check reports; the exit status says whether all passed
            traceback.print_exc()
            detail, status = f"{type(e).__name__}: {e}", "FAILED"
        rows.append((name, status, time.perf_counter() - start, detail))
    print(f"\ngpu-check on {where}, torch {torch.__version__}")
    print(f"{'check':9s} {'result':7s} {'time':>7s}  detail")
    for name, status, secs, detail in rows:
        print(f"{name:9s} {status:7s} {secs:6.1f}s  {detail}")
    failed = [r for r in rows if r[1] == "FAILED"]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
