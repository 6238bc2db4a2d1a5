"""The backprop core against an independent scalar reference, finite differences and HW#2."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from grader import core
from grader.params import HW2, solve_one

from reference import forward_loss, numeric_gradients

# Central differences with a 1e-6 step are good to about 1e-9 absolute on these magnitudes;
# the relative bound applies where the gradient is not tiny, the absolute floor where it is.
FD_RTOL = 1e-6
FD_ATOL = 1e-7
# The core and the scalar reference compute the same sums in a different order. A tiny loss is
# log-sum-exp(z) minus z_target, a cancellation: its error is absolute, a few ulps of |z|.
REFERENCE_RTOL = 1e-12
REFERENCE_ATOL = 1e-13
# Values printed in HW2.md are rounded to 4 significant decimals: within one unit of the last.
PRINTED_DIGITS_ATOL = 1e-4

ACTIVATION_NAMES = sorted(core.ACTIVATIONS)
values = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)


@st.composite
def instances(draw, batch=1):
    """A random instance (or batch) of any size and activation, as batched float64 arrays."""
    n_in = draw(st.integers(1, 4))
    n_hidden = draw(st.integers(1, 5))
    n_out = draw(st.integers(2, 4))

    def array(*shape):
        return np.array(draw(st.lists(values, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))).reshape(shape)

    target = np.eye(n_out)[[draw(st.integers(0, n_out - 1)) for _ in range(batch)]]
    return {
        "x": array(batch, n_in),
        "v": array(batch, n_hidden, n_in),
        "w": array(batch, n_out, n_hidden),
        "target": target,
        "lr": np.full(batch, 0.1),
        "activation": draw(st.sampled_from(ACTIVATION_NAMES)),
    }


def hw2_batch():
    return {
        "x": HW2.x[None],
        "v": HW2.v[None],
        "w": HW2.w[None],
        "target": HW2.target[None],
        "lr": np.array([HW2.lr]),
        "activation": "elu",
    }


def as_lists(inst):
    return inst["x"][0].tolist(), inst["v"][0].tolist(), inst["w"][0].tolist(), inst["target"][0].tolist()


def away_from_kinks(inst) -> bool:
    """ReLU-like activations have no derivative at 0; finite differences straddle it nearby."""
    u = np.einsum("nji,ni->nj", inst["v"], inst["x"])
    return inst["activation"] in ("elu", "sigmoid", "tanh") or np.abs(u).min() > 1e-3


@settings(max_examples=300, deadline=None)
@given(instances())
@example(hw2_batch())
def test_gradients_match_central_differences(inst):
    assume(away_from_kinks(inst))
    sol = core.solve(**inst)
    numeric_w, numeric_v = numeric_gradients(*as_lists(inst), name=inst["activation"])
    np.testing.assert_allclose(sol.grad_w[0], numeric_w, rtol=FD_RTOL, atol=FD_ATOL)
    np.testing.assert_allclose(sol.grad_v[0], numeric_v, rtol=FD_RTOL, atol=FD_ATOL)


@settings(max_examples=200, deadline=None)
@given(instances())
def test_loss_matches_scalar_reference(inst):
    sol = core.solve(**inst)
    expected = forward_loss(*as_lists(inst), name=inst["activation"])
    assert sol.loss[0] == pytest.approx(expected, rel=REFERENCE_RTOL, abs=REFERENCE_ATOL)


@settings(max_examples=200, deadline=None)
@given(instances())
def test_softmax_sums_to_one(inst):
    assert core.solve(**inst).o.sum(axis=-1) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(instances())
def test_loss_is_not_negative(inst):
    assert core.solve(**inst).loss[0] >= 0.0


@settings(max_examples=200, deadline=None)
@given(instances())
def test_small_step_does_not_increase_loss(inst):
    tiny = dict(inst, lr=np.array([1e-4]))
    sol = core.solve(**tiny)
    after = core.solve(**dict(tiny, v=sol.v_new, w=sol.w_new))
    # Equality when the gradient vanishes; rounding allows a hair above.
    assert after.loss[0] <= sol.loss[0] + 1e-12


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 6).flatmap(lambda n: instances(batch=n)))
def test_batch_equals_loop_over_single_instances(inst):
    batched = core.solve(**inst)
    for n in range(len(inst["x"])):
        single = core.solve(
            inst["x"][n : n + 1], inst["v"][n : n + 1], inst["w"][n : n + 1],
            inst["target"][n : n + 1], inst["lr"][n : n + 1], inst["activation"],
        )
        for key in core.ANSWER_KEYS:
            np.testing.assert_allclose(getattr(batched, key)[n], getattr(single, key)[0], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("scale", [50.0, 1000.0, -1000.0])
def test_softmax_and_loss_stay_finite_for_huge_z(scale):
    sol = core.solve([[1.0]], [[[1.0]]], [[[scale], [-scale]]], [[0.0, 1.0]], 0.1, "tanh")
    assert np.isfinite(sol.o).all() and np.isfinite(sol.loss).all()
    assert np.isfinite(sol.grad_w).all() and np.isfinite(sol.grad_v).all()


def test_loss_of_confidently_wrong_output_is_large_not_infinite():
    # z = (1000, -1000), target class 2: L = 2000 exactly, where a naive log(softmax) gives inf.
    sol = core.solve([[1.0]], [[[1.0]]], [[[1000.0], [-1000.0]]], [[0.0, 1.0]], 0.1, "relu")
    assert sol.loss[0] == pytest.approx(2000.0)


def test_elu_derivative_is_one_at_zero_as_the_problem_defines():
    assert core.ACTIVATIONS["elu"].df(np.array([0.0]))[0] == 1.0


def test_elu_of_large_positive_input_does_not_overflow():
    with np.errstate(over="raise"):
        assert core.ACTIVATIONS["elu"].f(np.array([1000.0]))[0] == 1000.0


# HW2.md's values, to the digits it prints.
HW2_PRINTED = {
    "u": [2, -1.5, 4.7, 0.2],
    "h": [2, -0.7769, 4.7, 0.2],
    "z": [3.6731, 2.6593],
    "o": [0.7338, 0.2662],
    "loss": 0.3095,
    "grad_w": [[-0.5324, 0.2068, -1.2512, -0.0532], [0.5324, -0.2068, 1.2512, 0.0532]],
}


@pytest.mark.parametrize("key", sorted(HW2_PRINTED))
def test_hw2_reproduces_printed_values(key):
    np.testing.assert_allclose(solve_one(HW2)[key], HW2_PRINTED[key], rtol=0, atol=PRINTED_DIGITS_ATOL)


def test_hw2_first_row_of_grad_v():
    np.testing.assert_allclose(solve_one(HW2)["grad_v"][0], [-0.1863, -0.2795, 0.0932], rtol=0, atol=PRINTED_DIGITS_ATOL)


def test_hw2_third_row_of_grad_v_is_zero_because_w13_equals_w23():
    np.testing.assert_allclose(solve_one(HW2)["grad_v"][2], 0.0, rtol=0, atol=1e-15)


def test_hw2_first_row_of_w_new():
    np.testing.assert_allclose(solve_one(HW2)["w_new"][0], [1.0532, 0.9793, 0.6251, 0.5053], rtol=0, atol=PRINTED_DIGITS_ATOL)


def test_hw2_natural_log_loss_not_log10():
    loss = solve_one(HW2)["loss"]
    assert loss == pytest.approx(0.3095, abs=PRINTED_DIGITS_ATOL)
    assert loss / np.log(10) == pytest.approx(0.1344, abs=PRINTED_DIGITS_ATOL)  # the student's slip
