import numpy as np
import torch

from sj2lava import quant


def test_weight_quantizer_equals_lava_dl(slayer):
    w = torch.linspace(-6, 6, 20001)
    ref = slayer.neuron.cuba.Neuron(1.0, 1.0, 0.0).quantize_8bit(w)
    assert torch.equal(quant.quantize_weight(w), ref)
    m = quant.weight_mant(w)
    assert m.min() == -256 and m.max() == 254 and bool((m % 2 == 0).all())


def test_weight_quantizer_is_straight_through_inside_range():
    w = torch.tensor([0.01, 1.0, 3.9, 10.0], requires_grad=True)
    quant.quantize_weight(w).sum().backward()
    assert w.grad.tolist() == [1.0, 1.0, 1.0, 0.0]


def test_threshold_and_decay_rules_equal_lava_dl(slayer):
    for th in [0.3, 0.7, 1.0, 1.25, 64.0, 100.3]:
        for d in [0.0, 0.03, 0.25, 1 / 3, 0.5, 1.0]:
            n = slayer.neuron.cuba.Neuron(th, d, d)
            assert quant.threshold_mant(th) == n.v_th_mant
            assert int(quant.decay_int(quant.decay_param(d))) == n.cx_current_decay


def test_decay_step_rounds_toward_zero_in_int_and_float():
    x = torch.tensor([-5000, -4097, -1, 0, 1, 4097, 5000, 2**23 - 1], dtype=torch.int64)
    d = torch.tensor(123)
    expect = [int(v * (4096 - 123) / 4096) for v in x.tolist()]  # Python int() truncates
    assert quant.decay_step(x, d).tolist() == expect
    assert quant.decay_step(x.double(), d).long().tolist() == expect


def test_wrap_and_clip():
    x = torch.tensor([2**23 + 1, 2**23, -2**23, -2**23 - 1, 5], dtype=torch.int64)
    # Lava keeps u in (-2^23, 2^23]: 2^23 stays, -2^23 becomes 2^23
    assert quant.lava_wrap(x).tolist() == [-2**23 + 1, 2**23, 2**23, 2**23 - 1, 5]
    assert quant.clip_state(x).tolist() == [2**23 - 1, 2**23 - 1, -(2**23 - 1), -(2**23 - 1), 5]


def test_integer_rules_are_the_same_on_tensors_arrays_and_python_ints():
    x = [-2**40 - 1, -8193, -4097, -4096, -1, 0, 1, 4095, 4096, 2**40 + 4097, 2**23, -2**23, 3 * 2**22]
    rs0 = [int(v / 4096) for v in x]  # Python int() truncates toward zero
    for wrap in (torch.tensor(x), np.array(x, dtype=np.int64)):
        assert quant.rs0(wrap).tolist() == rs0
        assert quant.lava_wrap(wrap).tolist() == [quant.lava_wrap(v) for v in x]
    assert [quant.rs0(v) for v in x] == rs0


def test_bias_grid():
    b = torch.tensor([0.1, -0.5, 1 / 128 * 3])
    assert quant.bias_mant(b).tolist() == [6, -32, 2]
    assert torch.equal(quant.quantize_bias(b) * 64, quant.bias_mant(b).float())


def test_synaptic_input_rounds_to_the_nearest_state_unit():
    """A sum that a float kernel returned as k/32 - eps (cuDNN FFT/Winograd, TF32) still gives the state
    of k/32, in every float dtype; on-grid values are unchanged (there rounding equals lava-dl's truncation)."""
    k = torch.arange(-70, 70, dtype=torch.float64) * (2 / 64)
    exact = (k * 4096).long()
    for dtype in (torch.float16, torch.float32, torch.float64):
        on_grid = k.to(dtype)
        assert quant.to_state(on_grid).long().tolist() == exact.tolist()
        for eps in (3e-5, -3e-5):  # 0.12 state units off
            assert quant.to_state((k + eps).to(dtype)).long().tolist() == exact.tolist(), (dtype, eps)
    # halves round up (floor(x + 1/2)), the rule the Triton kernel copies
    assert quant.to_state(torch.tensor([0.5, -0.5, 1.5, -1.5]) / 4096).tolist() == [1, 0, 2, -1]


# --------------------------------------------------------------------------- every twin, same boundary values
RS0_EDGES = [-2**40 - 1, -2**35, -8193, -8192, -4097, -4096, -4095, -1, 0, 1, 4095, 4096, 4097, 8191,
             2**23 * 4095, -(2**23) * 4095, 2**35 + 4095, 2**40 + 4097]
WRAP_EDGES = [-2**24 - 1, -2**24, -2**23 - 1, -2**23, -2**23 + 1, -1, 0, 1, 2**23 - 1, 2**23, 2**23 + 1,
              2**24 - 1, 2**24, 2**24 + 1, 3 * 2**23, 2**30, -2**30]
STATE_EDGES = [x / 4096 for x in (-2.5, -1.5, -0.5, -0.49, 0.0, 0.49, 0.5, 1.5, 2.5, 128.0, -128.0)] + \
    [k * 2 / 64 + e for k in (-70, -3, 3, 70) for e in (-3e-5, 0.0, 3e-5)]


def _c_twin(rule, values, arg=0):
    from sj2lava.emulator import ckernel

    if not ckernel.available():
        return None  # no C compiler on this machine: the C twin does not exist here
    return ckernel.twin(rule, np.array(values, dtype=np.int64), arg).tolist()


def _triton_twins(code: str):
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, TRITON_INTERPRET="1")
    r = subprocess.run([sys.executable, "-c", "import json, torch\nfrom sj2lava import neuron_triton as k\n" + code],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_rs0_twins_agree_on_boundary_values():
    want = [int(v / 4096) if abs(v) < 2**52 else -((-v) // 4096) if v < 0 else v // 4096 for v in RS0_EDGES]
    assert [quant.rs0(v) for v in RS0_EDGES] == want  # Python ints
    assert quant.rs0(torch.tensor(RS0_EDGES)).tolist() == want
    assert quant.rs0(np.array(RS0_EDGES, dtype=np.int64)).tolist() == want
    for rule in ("rs0", "rs0_8"):
        got = _c_twin(rule, RS0_EDGES)
        assert got is None or got == want, rule
    triton = _triton_twins(f"print(json.dumps(k.twin('rs0', torch.tensor({RS0_EDGES})).tolist()))")
    assert triton == want


def test_int32_decay_equals_rs0_of_the_int64_product():
    """quant.decay_int32 (the torch backend's) and the C kernel's decay16 against rs0(x * keep) on every 24-bit state
    edge and keep."""
    xs = torch.tensor([-2**23 - 4095, -2**23, -2**23 + 1, -4097, -4096, -4095, -1, 0, 1, 4095, 4096, 4097,
                       2**23 - 1, 2**23, 2**23 + 4095] + list(range(-70000, 70001, 997)), dtype=torch.int32)
    keeps = torch.tensor([0, 1, 2, 1365, 2047, 2048, 2049, 4094, 4095, 4096], dtype=torch.int32)
    got = quant.decay_int32(xs[:, None], keeps[None, :])
    want = quant.rs0(xs[:, None].long() * keeps[None, :].long())
    assert got.dtype == torch.int32 and torch.equal(got.long(), want)
    ends = [-2**31, -2**31 + 1, -2**31 + 4095, -2**30 - 1, 2**30, 2**31 - 4096, 2**31 - 1]  # int32 ends
    for keep in keeps.tolist():  # the C kernel's 16-lane twin, which holds for every int32 state
        c = _c_twin("decay16", xs.tolist() + ends, keep)
        assert c is None or c == [quant.rs0(v * keep) for v in xs.tolist() + ends], keep


def test_wrap_twins_agree_on_boundary_values():
    lava = [quant.lava_wrap(v) for v in WRAP_EDGES]
    conv = [quant.conv_wrap(v) for v in WRAP_EDGES]
    assert all(-2**23 <= v < 2**23 and (v - x) % 2**24 == 0 for v, x in zip(conv, WRAP_EDGES))
    assert lava[WRAP_EDGES.index(2**23)] == 2**23 and lava[WRAP_EDGES.index(-2**23)] == 2**23
    assert conv[WRAP_EDGES.index(2**23)] == -2**23 and conv[WRAP_EDGES.index(-2**23)] == -2**23
    # lava_wrap removes one period only: the registers it serves never pass +-(2^24 + 2^23)
    for v, x in zip(lava, WRAP_EDGES):
        if abs(x) < 2**24 + 2**23:
            assert -2**23 < v <= 2**23 and (v - x) % 2**24 == 0, x
    for wrap in (torch.tensor(WRAP_EDGES), np.array(WRAP_EDGES, dtype=np.int64)):
        assert quant.lava_wrap(wrap).tolist() == lava
        assert quant.conv_wrap(wrap).tolist() == conv
    for rule in ("lava_wrap", "lava_wrap16"):
        got = _c_twin(rule, WRAP_EDGES)
        assert got is None or got == lava, rule
    got = _c_twin("conv_wrap", WRAP_EDGES)
    assert got is None or got == conv


def test_to_state_twins_agree_on_boundary_values():
    for dtype in ("float32", "float64"):
        x = torch.tensor(STATE_EDGES, dtype=getattr(torch, dtype))
        want = quant.to_state(x).long().tolist()
        triton = _triton_twins(
            f"print(json.dumps(k.twin('to_state', torch.tensor({STATE_EDGES}, dtype=torch.{dtype})).tolist()))")
        assert triton == want, dtype
    assert quant.to_state(torch.tensor([-0.5, 0.5, -1.5]) / 4096).tolist() == [0, 1, -1]


def test_sd_fire_twins_agree_on_boundary_values():
    """The SDNN threshold with numpy's int32 |d| (|-2^31| stays negative: no message), torch and numpy int32 and
    the C kernel's sd_fire and sd_fire16, at and around each threshold and at the int32 ends."""
    for vth in (1, 64, 4096, (1 << 23) << 6, (1 << 31) - 1):
        d = [-2**31, -2**31 + 1, -vth - 1, -vth, -vth + 1, -1, 0, 1, vth - 1, vth, vth + 1, 2**31 - 1]
        d = [v for v in d if -2**31 <= v < 2**31]
        want = [0 if v == -2**31 else (v if abs(v) >= vth else 0) for v in d]
        assert quant.sd_fire(torch.tensor(d, dtype=torch.int32), vth).tolist() == want, vth
        with np.errstate(over="ignore"):
            assert quant.sd_fire(np.array(d, dtype=np.int32), vth).tolist() == want, vth
        for rule in ("sd_fire", "sd_fire16"):
            got = _c_twin(rule, d, vth)
            assert got is None or got == want, (rule, vth)



CLIP_EDGES = [-2**23 - 5, -2**23, -2**23 + 1, -2**23 + 2, -1, 0, 1, 2**23 - 2, 2**23 - 1, 2**23, 2**23 + 5]


def test_clip_state_twins_agree_on_boundary_values():
    """Lava saturates v at +-(2^23 - 1) (it wraps only u): quant.clip_state, the training neuron's torch loop and
    its Triton kernel give the same v before reset for one step of input on every edge (u and v start at 0, no
    decay; the threshold is the largest, so v above it is still recorded before the reset)."""
    from sj2lava import neuron

    want = quant.clip_state(torch.tensor(CLIP_EDGES)).tolist()
    assert want[0] == -(2**23 - 1) and want[-1] == 2**23 - 1 and want[1:-1] != want
    z = torch.tensor(CLIP_EDGES, dtype=torch.float64)[None] / 4096
    zeros = torch.zeros(len(CLIP_EDGES), dtype=torch.float64)
    _, v_pre, *_ = neuron._forward_torch(z, None, torch.tensor(0.0, dtype=torch.float64),
                                         torch.tensor(1.0, dtype=torch.float64), zeros, zeros, quant.V_TH_MANT_MAX)
    assert v_pre[0].long().tolist() == want
    triton = _triton_twins(
        f"z = torch.tensor({CLIP_EDGES}, dtype=torch.float64)[None] / 4096\n"
        "zero = torch.zeros(z.shape[1:], dtype=torch.int64)\n"
        f"_, v_pre, *_ = k.forward(z, None, 0, 4096, {quant.threshold_state(quant.V_TH_MANT_MAX)}, zero, zero, False)\n"
        "print(json.dumps(v_pre[0].tolist()))")
    assert triton == want
