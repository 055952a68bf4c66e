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
