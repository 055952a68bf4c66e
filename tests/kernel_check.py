"""Run by tests/test_kernels.py with TRITON_INTERPRET=1: the fused Triton path against the torch reference.

Prints one line per case and 'ALL OK' at the end; any difference raises.
"""
import sys

import torch

from sj2lava import quant
from sj2lava.neuron import Sigmoid, cuba_lif


def case(seed: int, steps: int, shape, cd: float, vd: float, th: float, bias: bool, detach: bool, learn: bool,
         scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    z0 = torch.randint(-40, 70, (steps, *shape), generator=g).float() * (2 / 64) * scale
    w = torch.randn((steps, *shape), generator=g)
    u0 = (torch.randint(-3000, 3000, shape, generator=g).double() / 4096)
    v0 = (torch.randint(-3000, 3000, shape, generator=g).double() / 4096)
    out = {}
    for backend in ("torch", "triton"):
        z = z0.clone().requires_grad_(True)
        cdp = quant.decay_param(cd).reshape(1).requires_grad_(learn)
        vdp = quant.decay_param(vd).reshape(1).requires_grad_(learn)
        b = (torch.linspace(-0.3, 0.5, shape[-1]) if bias else None)
        if b is not None:
            b.requires_grad_(True)
        s0, s1 = u0.clone().requires_grad_(True), v0.clone().requires_grad_(True)
        spikes, (u, v), (u_seq, v_seq) = cuba_lif(
            z, cdp, vdp, quant.threshold_mant(th), bias=b, state=(s0, s1), surrogate_function=Sigmoid(),
            detach_reset=detach, record=True, backend=backend)
        ((spikes * w).sum() + (u * 0.3).sum() + (v * 0.2).sum()).backward()
        out[backend] = dict(spikes=spikes.detach(), u=u.detach(), v=v.detach(), u_seq=u_seq, v_seq=v_seq,
                            gz=z.grad, gb=None if b is None else b.grad, gcd=cdp.grad, gvd=vdp.grad,
                            gu0=s0.grad, gv0=s1.grad)
    ref, tri = out["torch"], out["triton"]
    for k in ("spikes", "u", "v", "u_seq", "v_seq"):
        assert torch.equal(ref[k], tri[k]), (k, seed)
    for k in ("gz", "gb", "gcd", "gvd", "gu0", "gv0"):
        if ref[k] is None or tri[k] is None:  # "no gradient" and an all-zero gradient are the same
            other = tri[k] if ref[k] is None else ref[k]
            assert other is None or not other.abs().any(), (k, seed)
            continue
        assert torch.allclose(ref[k].double(), tri[k].double(), rtol=1e-4, atol=1e-5 * (1 + ref[k].abs().max().item())), \
            (k, seed, (ref[k] - tri[k]).abs().max())
    print(f"seed {seed}: T={steps} shape={tuple(shape)} cd={cd} vd={vd} th={th} bias={bias} detach={detach} "
          f"learn={learn}: {int(ref['spikes'].sum())} spikes identical, gradients within float rounding")


def main() -> int:
    cases = [
        (0, 8, (3, 5), 1.0, 0.0, 0.5, False, False, False),
        (1, 32, (2, 3, 4, 4), 0.25, 0.03, 0.7, True, False, True),
        (2, 64, (4, 37), 0.0, 0.25, 1.25, True, True, True),
        (3, 256, (2, 300), 0.03, 1.0, 0.3, False, True, False),
        (4, 128, (3, 2, 5, 7), 0.5, 0.1, 64 + 1 / 64, True, False, True, 16.0),
        (5, 16, (1, 600), 1.0, 1.0, 1.0, False, False, True),
    ]
    for c in cases:
        case(*c)
    # and the kernels are really used: the reference loop is not what ran
    import sj2lava.kernels as k
    assert k.available(torch.device("cpu"))
    print("ALL OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
