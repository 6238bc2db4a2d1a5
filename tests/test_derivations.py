"""Grading the derivations (HW2 parts 1 and 3) by randomized identity testing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from grader.derivations import (
    FREE_INDICES,
    IDENTITY_ATOL,
    IDENTITY_RTOL,
    LOSS_KEY,
    LOSS_REFERENCE,
    MIN_POINTS,
    MISTAKES,
    NUM_POINTS,
    REFERENCE,
    REQUIRED_KEYS,
    U_MARGIN,
    check_derivations,
    draw_points,
    grade_derivation,
    grade_derivations,
    identity_points,
)
from grader.expr import evaluate, parse

# --- Right answers, in many spellings -----------------------------------------------------

EQUIVALENT = [
    ("u", "sum(v[j,i] * x[i], i)"),
    ("u", "v[j,1]*x[1] + v[j,2]*x[2] + v[j,3]*x[3]"),
    ("u", "sum(x[m] * V[J,m], m)"),
    ("h", "where(u[j] >= 0, u[j], exp(u[j]) - 1)"),
    ("h", "where(u[j] < 0, e^u[j] - 1, u[j])"),
    ("h", "ELU(sum(v[j,i]*x[i], i))"),
    ("h", "elu(u[j])"),
    ("h", "max(u[j], 0) + min(exp(u[j]) - 1, 0)"),
    ("z", "sum(w[k,j] * ELU(u[j]), j)"),
    ("z", "w[k,1]*h[1] + w[k,2]*h[2] + w[k,3]*h[3] + w[k,4]*h[4]"),
    ("z", "sum(w[k,j] * h[j]^1, j)"),
    ("o", "exp(z[k]) / (exp(z[1]) + exp(z[2]))"),
    ("o", "e^z[k] / sum(e^z[m], m)"),
    ("o", "exp(z[k]) / sum(exp(z[k]), k)"),
    ("o", "1 / (1 + exp(z[1] + z[2] - 2*z[k]))"),
    ("o", "exp(sum(w[k,j]*h[j], j)) / sum(exp(sum(w[m,j]*h[j], j)), m)"),
    ("grad_w", "(o[k] - ostar[k]) * h[j]"),
    ("grad_w", "-(t[k] - o[k]) * h[j]"),
    ("grad_w", "h[j]*o[k] - h[j]*t[k]"),
    ("grad_w", "(o[k] - t[k]) * h[j] * 2^3 / 8"),
    ("grad_w", "(o[k] - t[k]) * h[j] * (1 + 1e-12)"),
    ("grad_v", "sum((o[k] - t[k]) * w[k,j], k) * where(u[j] >= 0, 1, exp(u[j])) * x[i]"),
    ("grad_v", "((o[1]-t[1])*w[1,j] + (o[2]-t[2])*w[2,j]) * dELU(u[j]) * x[i]"),
    ("grad_v", "sum((o[m] - t[m]) * w[m,j] * dELU(u[j]) * x[i], m)"),
    ("grad_v", "sum((o[k] - t[k]) * w[k,j], k) * where(u[j] > 0, 1, h[j] + 1) * x[i]"),
    ("grad_v", "-sum((ostar[k] - o[k]) * w[k,j], k) * dELU(u[j]) * x[i]**1"),
    ("loss", "-sum(t[k] * log(o[k]), k)"),
    ("loss", "-log(sum(t[k] * o[k], k))"),
    ("loss", "-(t[1]*ln(o[1]) + t[2]*ln(o[2]))"),
]


@pytest.mark.parametrize("key, text", EQUIVALENT)
def test_equivalent_forms_earn_full_credit(key, text):
    result = grade_derivation(key, text)
    assert (result.status, result.fraction, result.mistake, result.message) == ("right", 1.0, None, "")


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_reference_expression_is_right(key):
    assert grade_derivation(key, REFERENCE[key]).status == "right"


def test_loss_reference_is_right():
    assert grade_derivation(LOSS_KEY, LOSS_REFERENCE).status == "right"


def test_every_reference_has_its_free_indices():
    assert set(REFERENCE) == set(FREE_INDICES) == {"u", "h", "z", "o", "grad_w", "grad_v"}
    assert FREE_INDICES["grad_w"] == ("k", "j") and FREE_INDICES["grad_v"] == ("j", "i")


# --- Wrong answers ------------------------------------------------------------------------

WRONG = [
    ("u", "sum(v[j,i], i)"),
    ("u", "v[j,1]*x[1] + v[j,2]*x[2]"),
    ("h", "u[j]"),
    ("h", "exp(u[j]) - 1"),
    ("z", "sum(w[k,j] * u[j], j)"),
    ("o", "exp(z[k])"),
    ("o", "z[k] / sum(z[m], m)"),
    ("grad_w", "o[k] * h[j]"),
    ("grad_w", "(o[k] - t[k]) * u[j]"),
    ("grad_w", "(o[k] - t[k]) * h[j] * (1 + 1e-6)"),
    ("grad_v", "sum((o[k] - t[k]) * w[k,j], k) * dELU(u[j])"),
    ("grad_v", "(o[1] - t[1]) * w[1,j] * dELU(u[j]) * x[i]"),
    ("grad_v", "0"),
    ("loss", "-sum(log(o[k]), k)"),
]


@pytest.mark.parametrize("key, text", WRONG)
def test_wrong_answers_earn_nothing(key, text):
    result = grade_derivation(key, text)
    assert (result.status, result.fraction) == ("wrong", 0.0)
    assert result.message and "\n" not in result.message


def test_mistake_ids_are_the_catalogued_ones():
    assert {m.id for m in MISTAKES} == {
        "elu-derivative-one",
        "elu-derivative-zero",
        "elu-derivative-expm1",
        "target-minus-output",
        "sigmoid-output",
        "relu-for-elu",
        "log10-loss",
    }


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: f"{m.id}-{m.key}")
def test_each_catalogued_mistake_is_named_with_its_explanation(mistake):
    result = grade_derivation(mistake.key, mistake.expression)
    assert (result.status, result.fraction) == ("wrong", 0.0)
    assert (result.mistake, result.message) == (mistake.id, mistake.explanation)


@pytest.mark.parametrize(
    "key, text, mistake_id",
    [
        ("h", "max(u[j], 0)", "relu-for-elu"),
        ("o", "1 / (1 + exp(-z[k]))", "sigmoid-output"),
        ("grad_w", "-(o[k] - t[k]) * h[j]", "target-minus-output"),
        ("grad_v", "x[i] * sum(w[m,j] * (t[m] - o[m]), m) * dELU(u[j])", "target-minus-output"),
        ("grad_v", "((o[1]-t[1])*w[1,j] + (o[2]-t[2])*w[2,j]) * x[i]", "elu-derivative-one"),
        ("grad_v", "sum((o[k]-t[k])*w[k,j], k) * x[i] * where(u[j] > 0, 1, 0)", "elu-derivative-zero"),
        ("grad_v", "sum((o[k]-t[k])*w[k,j], k) * where(u[j] >= 0, 1, h[j]) * x[i]", "elu-derivative-expm1"),
        ("loss", "-sum(t[k] * log(o[k]), k) / log(10)", "log10-loss"),
    ],
)
def test_mistakes_are_named_however_they_are_written(key, text, mistake_id):
    assert grade_derivation(key, text).mistake == mistake_id


# --- Hints --------------------------------------------------------------------------------


def test_hint_says_which_elu_branch_is_wrong():
    assert grade_derivation("h", "u[j]").message == "h_j is right where u_j >= 0 but not where u_j < 0."


def test_hint_for_a_sign_error():
    assert grade_derivation("z", "-sum(w[k,j] * h[j], j)").message == "z_k has the wrong sign."


def test_hint_for_a_constant_factor():
    assert grade_derivation("u", "2 * sum(v[j,i] * x[i], i)").message == "u_j is off by a constant factor."


def test_hint_for_a_missing_index():
    message = grade_derivation("grad_v", "sum((o[k] - t[k]) * w[k,j], k) * dELU(u[j])").message
    assert message == "dL/dv_ji does not depend on i, but it should."


def test_hint_for_values_that_are_not_finite():
    assert "is not a finite number at some test points" in grade_derivation("h", "log(u[j])").message


def test_generic_hint_counts_the_points_that_differ():
    message = grade_derivation("o", "exp(z[k])").message
    assert message == f"o_k does not match the correct expression at {NUM_POINTS} of {NUM_POINTS} test points."


@pytest.mark.parametrize("key, text", WRONG)
def test_hints_do_not_give_the_answer_away(key, text):
    message = grade_derivation(key, text).message
    for giveaway in ("dELU", "exp(", "sum(", "ELU(", "o[k] - t[k]"):
        assert giveaway not in message


# --- Tolerance ----------------------------------------------------------------------------


def test_tolerance_constants():
    assert IDENTITY_RTOL == 1e-8 and 0 < IDENTITY_ATOL < IDENTITY_RTOL


def test_absolute_floor_accepts_rounding_sized_differences_where_values_nearly_cancel():
    # sum_k (o_k - o*_k) w_kj nearly cancels at some points: there a difference of 1e-13 is
    # beyond any relative tolerance, yet it is rounding-sized next to terms of order 1.
    reference = evaluate(parse(REFERENCE["grad_v"], ("j", "i")), identity_points(), ("j", "i"))
    assert (1e-13 > IDENTITY_RTOL * np.abs(reference)).any()
    assert grade_derivation("grad_v", REFERENCE["grad_v"] + " + 1e-13").status == "right"
    assert grade_derivation("grad_v", REFERENCE["grad_v"] + " + 1e-6").status == "wrong"


# --- Statuses, types and the results dictionary ------------------------------------------


def test_grade_derivations_has_every_required_key_in_order():
    assert tuple(grade_derivations({})) == REQUIRED_KEYS


def test_absent_null_and_blank_answers_are_missing():
    results = grade_derivations({"u": None, "h": "", "z": "  \n"})
    assert {key: r.status for key, r in results.items()} == {key: "missing" for key in REQUIRED_KEYS}
    assert results["u"].message == "u: no expression given"
    assert all(r.fraction == 0.0 and r.mistake is None for r in results.values())


@pytest.mark.parametrize("value", [3, 2.5, True, ["u[j]"], {"text": "u[j]"}])
def test_values_that_are_not_strings_are_invalid_and_the_key_is_named(value):
    result = grade_derivation("grad_w", value)
    assert (result.status, result.fraction, result.text) == ("invalid", 0.0, None)
    assert result.message.startswith("grad_w: expected an expression as a string, got ")


def test_parse_error_is_invalid_with_the_key_and_column():
    result = grade_derivation("grad_v", "sum((o[k]-t[k])*w[k,j], k))")
    assert (result.status, result.message) == ("invalid", "grad_v: unexpected ')' at column 27")


@pytest.mark.parametrize(
    "text",
    ["__import__('os').system('echo hi')", "().__class__.__bases__[0]", "open('/etc/passwd')", "x[1]\x00"],
)
def test_hostile_answers_are_invalid(text):
    assert grade_derivation("u", text).status == "invalid"


def test_the_students_text_is_kept_unchanged():
    text = "  SUM( v[J,i]*x[i] , i )  "
    assert grade_derivation("u", text).text == text


def test_unknown_keys_are_ignored():
    assert "extra" not in grade_derivations({"extra": "1", "u": REFERENCE["u"]})


def test_loss_is_graded_only_when_given():
    assert LOSS_KEY not in grade_derivations({})
    assert grade_derivations({LOSS_KEY: LOSS_REFERENCE})[LOSS_KEY].status == "right"


def test_a_block_that_is_not_an_object_makes_every_answer_invalid():
    results = grade_derivations(["u[j]"])
    assert all(r.status == "invalid" and r.message.startswith(f"{key}: ") for key, r in results.items())


def test_result_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        grade_derivation("u", REFERENCE["u"]).status = "wrong"


def test_grading_is_deterministic():
    submission = {"u": "v[j,1]", "h": "u[j]", "o": "sigmoid(z[k])", "grad_v": "0"}
    assert grade_derivations(submission) == grade_derivations(submission)


# --- check_derivations --------------------------------------------------------------------


def test_check_lists_parse_errors_and_wrong_types():
    problems = check_derivations({"u": "sum(v[j,i]*x[i], i))", "h": 3, "z": REFERENCE["z"], "loss": "y"})
    assert problems == [
        "u: unexpected ')' at column 20",
        "h: expected an expression as a string, got a number",
        "loss: unknown name 'y' at column 1 (allowed: x, v, w, t, ostar, u, h, z, o, e, exp, log, ln, "
        "log10, ELU, dELU, sigmoid, max, min, sum, where)",
    ]


def test_check_says_nothing_about_right_or_wrong_answers():
    right = dict(REFERENCE)
    wrong = {key: "1" for key in REQUIRED_KEYS}
    assert check_derivations(right) == check_derivations(wrong) == []


def test_check_says_nothing_about_absent_answers():
    assert check_derivations({}) == []


def test_check_messages_are_the_grading_messages():
    submission = {"grad_v": "v[j,q]", "o": ["o"]}
    graded = grade_derivations(submission)
    assert check_derivations(submission) == [graded["o"].message, graded["grad_v"].message]


# --- The test points ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def points():
    return identity_points()


def test_there_are_enough_points(points):
    assert len(points["x"]) == NUM_POINTS >= MIN_POINTS >= 20


def test_u_takes_both_signs_at_every_hidden_unit(points):
    assert (points["u"] > 0).any(axis=0).all() and (points["u"] < 0).any(axis=0).all()


def test_u_keeps_away_from_zero(points):
    assert np.abs(points["u"]).min() >= U_MARGIN


def test_targets_are_one_hot(points):
    assert set(np.unique(points["t"])) == {0.0, 1.0}
    np.testing.assert_array_equal(points["t"].sum(axis=1), 1.0)


def test_intermediates_are_computed_from_the_givens(points):
    u = np.einsum("pji,pi->pj", points["v"], points["x"])
    h = np.where(u >= 0, u, np.exp(u) - 1)
    z = np.einsum("pkj,pj->pk", points["w"], h)
    o = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    for name, expected in {"u": u, "h": h, "z": z, "o": o}.items():
        np.testing.assert_allclose(points[name], expected, rtol=1e-12, err_msg=name)


def test_points_are_drawn_deterministically():
    first, second = draw_points(8), draw_points(8)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


@pytest.mark.parametrize("key,text", [("grad_v", "1/1e-308*x[i]"), ("u", "sum(v[j,i]*x[i], i)/1e-308"), ("h", "exp(1000*u[j])")])
def test_a_huge_derivation_is_graded_without_a_numpy_warning(key, text):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would fail here; on stderr it confuses a TA
        result = grade_derivation(key, text)
    assert result.status == "wrong" and result.fraction == 0.0
