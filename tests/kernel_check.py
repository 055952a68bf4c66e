"""Run by tests/test_neuron_triton.py with TRITON_INTERPRET=1: the fused Triton path against the torch reference.

Each case runs both backends on the same input and compares spikes and states exactly, gradients to float
rounding. The cases cover float16/32/64 input, off-grid (analog) input, upstream gradients that are
non-contiguous views (a loss on ``spikes.permute``), the int64-offset kernels (forced on small tensors) and
single-step use (T = 1 per call, state carried between calls). Prints one line per case and 'ALL OK'.
"""
import sys

import torch

import sj2lava.neuron_triton as kernels
from sj2lava import quant
from sj2lava.neuron import Sigmoid, cuba_lif

DEVICE = torch.device("cpu")
"""Where the cases run: the CPU under TRITON_INTERPRET=1 (the suite), or a GPU (tools/gpu_check.py)."""


def run(backend, z0, u0, v0, w, cd, vd, th, bias, detach, learn, permuted, single_step):
    z = z0.clone().requires_grad_(True)
    cdp = quant.decay_param(cd).reshape(1).to(z0.device).requires_grad_(learn)
    vdp = quant.decay_param(vd).reshape(1).to(z0.device).requires_grad_(learn)
    b = (torch.linspace(-0.3, 0.5, z0.shape[-1], dtype=z0.dtype, device=z0.device).requires_grad_(True)
         if bias else None)
    s0, s1 = u0.clone().requires_grad_(True), v0.clone().requires_grad_(True)
    kw = dict(bias=b, surrogate_function=Sigmoid(), detach_reset=detach, backend=backend)
    if single_step:
        state, out, us, vs = (s0, s1), [], [], []
        for t in range(z.shape[0]):
            s, state, (u_seq, v_seq) = cuba_lif(z[t:t + 1], cdp, vdp, quant.threshold_mant(th), state=state,
                                                record=True, **kw)
            out.append(s)
            us.append(u_seq)
            vs.append(v_seq)
        spikes, (u, v), u_seq, v_seq = torch.cat(out), state, torch.cat(us), torch.cat(vs)
    else:
        spikes, (u, v), (u_seq, v_seq) = cuba_lif(z, cdp, vdp, quant.threshold_mant(th), state=(s0, s1),
                                                  record=True, **kw)
    # a permuted view gives the backward a non-contiguous upstream gradient
    view = spikes.transpose(0, 1) if permuted else spikes
    ((view * w).sum() + (u * 0.3).sum() + (v * 0.2).sum()).backward()
    return dict(spikes=spikes.detach(), u=u.detach(), v=v.detach(), u_seq=u_seq, v_seq=v_seq,
                gz=z.grad, gb=None if b is None else b.grad, gcd=cdp.grad, gvd=vdp.grad, gu0=s0.grad, gv0=s1.grad)


def case(seed: int, steps: int, shape, cd: float, vd: float, th: float, bias: bool, detach: bool, learn: bool,
         scale: float = 1.0, dtype=torch.float32, analog=False, permuted=False, i64=False, single_step=False):
    g = torch.Generator().manual_seed(seed)
    if analog:  # off the weight grid: exercises the rounding rule of quant.to_state in both twins
        z0 = (torch.randn((steps, *shape), generator=g) * scale).to(dtype)
    else:
        z0 = (torch.randint(-40, 70, (steps, *shape), generator=g).float() * (2 / 64) * scale).to(dtype)
    w = torch.randn((steps, *shape), generator=g, dtype=torch.float64).to(dtype)
    if permuted:
        w = w.transpose(0, 1).contiguous()  # so the gradient reaching spikes is a transposed view
    u0 = (torch.randint(-3000, 3000, shape, generator=g).double() / 4096)
    v0 = (torch.randint(-3000, 3000, shape, generator=g).double() / 4096)
    z0, w, u0, v0 = (t.to(DEVICE) for t in (z0, w, u0, v0))
    kernels.FORCE_I64 = i64
    try:
        ref, tri = (run(b, z0, u0, v0, w, cd, vd, th, bias, detach, learn, permuted, single_step)
                    for b in ("torch", "triton"))
    finally:
        kernels.FORCE_I64 = False
    label = (f"seed {seed}: T={steps} shape={tuple(shape)} {str(dtype)[6:]} analog={analog} permuted={permuted} "
             f"i64={i64} single_step={single_step}")
    for k in ("spikes", "u", "v", "u_seq", "v_seq"):
        assert torch.equal(ref[k], tri[k]), (k, label)
    rtol = 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-4
    for k in ("gz", "gb", "gcd", "gvd", "gu0", "gv0"):
        if ref[k] is None or tri[k] is None:  # "no gradient" and an all-zero gradient are the same
            other = tri[k] if ref[k] is None else ref[k]
            assert other is None or not other.abs().any(), (k, label)
            continue
        assert ref[k].dtype == tri[k].dtype, (k, label, ref[k].dtype, tri[k].dtype)
        assert torch.allclose(ref[k].double(), tri[k].double(), rtol=rtol,
                              atol=rtol / 10 * (1 + ref[k].abs().max().item())), \
            (k, label, (ref[k] - tri[k]).abs().max())
    print(f"{label}: {int(ref['spikes'].sum())} spikes identical, gradients within float rounding")
    return int(ref["spikes"].sum())


CASES = [
    (0, 8, (3, 5), 1.0, 0.0, 0.5, False, False, False),
    (1, 32, (2, 3, 4, 4), 0.25, 0.03, 0.7, True, False, True),
    (2, 64, (4, 37), 0.0, 0.25, 1.25, True, True, True),
    (3, 256, (2, 300), 0.03, 1.0, 0.3, False, True, False),
    (4, 128, (3, 2, 5, 7), 0.5, 0.1, 64 + 1 / 64, True, False, True, 16.0),
    (5, 16, (1, 600), 1.0, 1.0, 1.0, False, False, True),
]
VARIANTS = [
    dict(permuted=True),
    dict(dtype=torch.float64),
    dict(dtype=torch.float16),
    dict(dtype=torch.float64, permuted=True, analog=True),
    dict(analog=True),
    dict(i64=True),
    dict(i64=True, dtype=torch.float64, permuted=True),
    dict(single_step=True),
    dict(single_step=True, dtype=torch.float64, permuted=True),
]


def run_all() -> int:
    """Every case and variant; returns the number of spikes compared."""
    total = 0
    for c in CASES:
        total += case(*c)
    for i, v in enumerate(VARIANTS):
        total += case(10 + i, 24, (3, 2, 37), 0.25, 0.1, 0.6, True, False, True, **v)
    return total


def main() -> int:
    run_all()
    assert kernels.available(torch.device("cpu"))  # the kernels really ran, not the reference twice
    print("ALL OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
