"""The grading engine: tolerance, follow-through, named mistakes, scores (grader/grading.py).

Students are simulated by ``hand_answers``: a hand computation of the whole problem, each step
optionally rounded and always carried forward, with an optional catalogued mistake or slip.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from grader import core, grading, mistakes, reports, variants
from grader.grading import GRADED, INVALID, MISSING, _Student, grade_files, grade_students
from grader.manifest import Manifest, StudentRecord
from grader.params import HW2, Params, answers_to_json, solve_one, stack
from grader.rubric import DEFAULT_RUBRIC, Rubric
from grader.submission import from_json, layout_of
from grader.tolerance import Tolerance

TOL = Tolerance()


# --- Simulated students -------------------------------------------------------------------------


def sig(values, figures: int = 3):
    """Round to ``figures`` significant figures, as a student with a calculator does."""
    a = np.asarray(values, dtype=float)
    magnitude = np.floor(np.log10(np.where(a == 0, 1.0, np.abs(a))))
    scale = 10.0 ** (figures - 1 - magnitude)
    return np.round(a * scale) / scale + 0.0


def decimals(places: int = 4):
    return lambda values: np.round(np.asarray(values, dtype=float), places) + 0.0


def exact(values):
    return np.asarray(values, dtype=float) + 0.0


def hand_answers(
    p: Params, rounding=exact, mistake: str | tuple[str, ...] | None = None, slip=None, round_steps: bool = False, df_from_h: bool = False
) -> dict:
    """A student's answers (JSON-ready): every step computed from their own previous rounded
    step. ``mistake`` is a catalogue id made on the way (or several, made together); ``slip`` =
    (key, index, delta) adds an arithmetic slip to one entry, carried forward; ``round_steps``
    also rounds dL/dz, dL/dh, f'(u) and dL/du, the steps in between; ``df_from_h`` takes f'(u)
    from the rounded h (for ELU, h + 1 where u < 0) rather than from u."""
    made = {mistake} if isinstance(mistake, str) else set(mistake or ())
    act = core.ACTIVATIONS[p.activation]
    step = rounding if round_steps else exact
    t = p.target

    def slipped(key, value):
        value = np.array(value, dtype=float)
        if slip is not None and slip[0] == key:
            value[slip[1]] += slip[2]
        return rounding(value)

    u = slipped("u", p.v @ p.x)
    h = slipped("h", np.maximum(u, 0.0) if "relu-for-elu" in made else act.f(u))
    z = slipped("z", p.w @ h)
    o = slipped("o", core.ACTIVATIONS["sigmoid"].f(z) if "sigmoid-output" in made else core.softmax(z[None])[0])
    o_t = max(o[int(np.argmax(t))], 1e-4)  # a probability rounded away to 0 (sigmoid of a very negative z): no finite loss to write
    loss = slipped("loss", -np.log10(o_t) if "log10-loss" in made else -np.log(o_t))
    dz = step(t - o if "target-minus-output" in made else o - t)
    grad_w = slipped("grad_w", np.outer(dz, h))
    df = act.df_from_h(u, h) if df_from_h else act.df(u)
    if "elu-derivative-zero" in made:
        df = np.where(u >= 0, 1.0, 0.0)
    elif "elu-derivative-one" in made:
        df = np.ones_like(u)
    elif "elu-derivative-expm1" in made:
        df = np.where(u >= 0, 1.0, np.expm1(np.minimum(u, 0.0)))
    du = step(step(dz @ p.w) * step(df))
    grad_v = slipped("grad_v", np.outer(du, p.x))
    sign = 1.0 if "gradient-ascent" in made else -1.0
    w_new = slipped("w_new", p.w + sign * p.lr * grad_w)
    v_new = slipped("v_new", p.v + sign * p.lr * grad_v)
    out = {"u": u, "h": h, "z": z, "o": o, "loss": loss, "grad_w": grad_w, "grad_v": grad_v, "w_new": w_new, "v_new": v_new}
    answers = {key: np.asarray(value).tolist() for key, value in out.items()}
    if "transposed-gradient" in made:
        answers["grad_v"] = np.asarray(grad_v).T.tolist()
    return answers


def grade_answers(p: Params, answers: dict, tolerance=TOL, rubric=DEFAULT_RUBRIC, follow_through=True, sid="s"):
    sub = from_json({"student_id": sid, "answers": answers}, layout_of(p))
    assert not isinstance(sub, Exception), sub
    return grade_students([_Student(sub, p, {})], tolerance, rubric, follow_through)[0]


def grade_many(params: list[Params], answers: list[dict], **kw):
    students = []
    for n, (p, a) in enumerate(zip(params, answers)):
        sub = from_json({"student_id": f"s{n}", "answers": a}, layout_of(p))
        assert not isinstance(sub, Exception), sub
        students.append(_Student(sub, p, {}))
    return grade_students(students, kw.get("tolerance", TOL), kw.get("rubric", DEFAULT_RUBRIC), kw.get("follow_through", True))


def not_right(report) -> dict[str, list[str]]:
    return {q.key: q.statuses for q in report.quantities if any(s != "right" for s in q.statuses)}


def full_marks(report) -> bool:
    return report.score == report.max_score


HW2_KEY = solve_one(HW2)
HW2_REAL = {  # the real student's answers (HW2.md): right to 4 decimals, but the loss in log10
    **{key: np.round(value, 4).tolist() for key, value in HW2_KEY.items()},
    "z": [3.673, 2.659],
    "loss": 0.1344,
    "grad_w": [[-0.5324, 0.2068, -1.251, -0.0532], [0.5324, -0.2068, 1.251, 0.0532]],
}

ids = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=12, unique=True)
seeds = st.text(min_size=1, max_size=12)
slow = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- The tolerance rule --------------------------------------------------------------------------


def test_an_entry_within_atol_plus_rtol_of_expected_is_right():
    answers = answers_to_json(HW2_KEY)
    answers["z"] = [3.673130160148429 * 1.0099, 2.659252064059372]  # 0.99% off: inside 0.001 + 1%
    assert grade_answers(HW2, answers).statuses("z") == ["right", "right"]


def test_an_entry_just_outside_the_tolerance_is_wrong():
    answers = answers_to_json(HW2_KEY)
    answers["u"] = [2.0 + 0.001 + 0.01 * 2.0 + 1e-6, -1.5, 4.7, 0.2]
    assert grade_answers(HW2, answers, follow_through=False).statuses("u")[0] == "wrong"


def test_a_sum_of_products_each_rounded_to_3_figures_that_cancels_is_still_right():
    # z_1 = 1.5 * 0.823 - 1.2 * 0.9963 = 0.03898: each product rounded to 3 figures (1.23 and
    # -1.20) gives 0.03, off by a quarter of the sum, but within the rounding of its terms.
    params = Params(x=np.array([1.0]), v=np.array([[0.823], [0.9963]]), w=np.array([[1.5, -1.2], [0.5, 0.5]]), target=np.array([1.0, 0.0]), lr=0.1)
    answers = answers_to_json(solve_one(params))
    answers["z"][0] = 1.23 - 1.20
    assert grade_answers(params, answers).statuses("z")[0] == "right"


def test_a_slip_in_a_sum_of_large_terms_is_wrong_though_within_1_percent_of_the_terms():
    # z_1 of HW#2 is 2.0 - 0.7769 + 2.35 + 0.1 = 3.6731: 3.72 is no rounding of those terms.
    answers = answers_to_json(HW2_KEY)
    answers["z"][0] = 3.72
    assert grade_answers(HW2, answers).statuses("z") == ["wrong", "right"]


def test_an_expected_zero_is_graded_by_the_absolute_tolerance():
    answers = answers_to_json(HW2_KEY)
    answers["grad_v"][2] = [0.0004, -0.0009, 0.0]  # dL/dv row 3 is exactly 0 in HW#2
    assert grade_answers(HW2, answers).statuses("grad_v")[6:9] == ["right"] * 3


@pytest.mark.parametrize("expected", [5.6e-17, -5.6e-17, 0.0])
def test_an_answer_exactly_atol_from_a_zero_is_right_whatever_the_float_noise(expected):
    assert TOL.close([TOL.atol, -TOL.atol], [expected, expected]).all()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_an_answer_of_atol_where_float64_makes_zero_a_hair_off_is_right_on_either_side(sign):
    # w_11 = w_21: dL/dh_1 = w_11 * sum(o - o*) is exactly 0, which float64 makes 1e-16 or so.
    params = Params(
        x=np.array([-0.5, 1.5, -1.0]),
        v=np.array([[-1.9, 1.3, 0.4], [0.8, -0.5, 1.8], [-1.0, -1.4, 0.0], [0.9, 1.1, -0.7]]),
        w=np.array([[0.8, 0.7, -0.1, 2.0], [0.8, 2.0, -0.8, 1.2]]),
        target=np.array([0.0, 1.0]),
        lr=0.1,
    )
    key = solve_one(params)
    assert 0 < np.abs(key["grad_v"][0]).max() < 1e-15  # the case: a zero computed as noise
    answers = answers_to_json(key)
    # an o that does not sum to 1: dL/dv_1 recomputed from it is not 0, so the key decides
    answers["o"] = [0.898, 0.0995]
    answers["grad_v"][0] = [sign * TOL.atol, -sign * TOL.atol, sign * TOL.atol]
    assert grade_answers(params, answers).statuses("grad_v")[:3] == ["right"] * 3


def test_a_nonzero_answer_where_zero_is_expected_is_wrong():
    answers = answers_to_json(HW2_KEY)
    answers["grad_v"][2] = [0.05, 0.0, 0.0]
    assert grade_answers(HW2, answers).statuses("grad_v")[6] == "wrong"


def test_sigfigs_mode_gives_full_marks_to_work_rounded_to_that_many_figures():
    report = grade_answers(HW2, hand_answers(HW2, sig), tolerance=Tolerance(sigfigs=3))
    assert full_marks(report), not_right(report)


@slow
@given(seed=seeds, students=ids, figures=st.sampled_from([3, 4]))
def test_sigfigs_mode_gives_full_marks_to_work_rounded_to_that_many_figures_on_any_variant(seed, students, figures):
    # A rounded factor with first figure 1 (1.04 for 1.035) makes a product 2.5 units of its
    # own third figure off (-0.52 for -0.5175): one unit of the expected value's is too little.
    params = variants.variants(seed, students)
    reports = grade_many(params, [hand_answers(p, lambda a: sig(a, figures)) for p in params], tolerance=Tolerance(sigfigs=figures))
    assert all(full_marks(r) for r in reports), [not_right(r) for r in reports if not full_marks(r)]


def test_sigfigs_mode_is_about_the_figures_asked_for():
    # 0.5% off: within 3 significant figures' allowance (1%), outside 4's (0.1%).
    answers = answers_to_json(HW2_KEY)
    answers["z"] = [value * 1.005 for value in answers["z"]]
    assert grade_answers(HW2, answers, tolerance=Tolerance(sigfigs=3)).quantity("z").statuses == ["right", "right"]
    assert grade_answers(HW2, answers, tolerance=Tolerance(sigfigs=4)).quantity("z").statuses == ["wrong", "wrong"]


# --- The real HW#2 student ----------------------------------------------------------------------


def test_real_hw2_student_is_named_log10_loss():
    assert grade_answers(HW2, HW2_REAL).misconceptions == ("log10-loss",)


def test_real_hw2_student_loses_exactly_the_loss_entry():
    report = grade_answers(HW2, HW2_REAL)
    assert not_right(report) == {"loss": ["mistake:log10-loss"]}
    assert (report.score, report.max_score) == (38.0, 40.0)


# --- Right and rounded work ------------------------------------------------------------------------


@pytest.mark.parametrize("rounding", [exact, decimals(4), decimals(3), sig], ids=["exact", "4dp", "3dp", "3sf"])
def test_right_work_gets_full_marks_on_hw2(rounding):
    report = grade_answers(HW2, hand_answers(HW2, rounding))
    assert full_marks(report) and not report.misconceptions and not report.follow_through, not_right(report)


@slow
@given(seed=seeds, students=ids, round_steps=st.booleans())
def test_rounding_every_step_to_3_sig_figs_gets_full_marks_on_any_variant(seed, students, round_steps):
    params = variants.variants(seed, students)
    reports = grade_many(params, [hand_answers(p, sig, round_steps=round_steps) for p in params])
    for r in reports:
        assert full_marks(r) and not r.misconceptions and not r.follow_through, not_right(r)


@slow
@given(seed=seeds, students=ids)
def test_rounding_to_3_sig_figs_gets_full_marks_without_follow_through_too(seed, students):
    params = variants.variants(seed, students)
    reports = grade_many(params, [hand_answers(p, sig) for p in params], follow_through=False)
    assert all(full_marks(r) for r in reports), [not_right(r) for r in reports if not full_marks(r)]


# --- Named mistakes --------------------------------------------------------------------------------


@pytest.mark.parametrize("mistake_id", mistakes.MISTAKE_IDS)
def test_each_mistake_is_named_on_hw2(mistake_id):
    report = grade_answers(HW2, hand_answers(HW2, decimals(4), mistake_id))
    assert report.misconceptions == (mistake_id,), not_right(report)


@pytest.mark.parametrize("mistake_id", mistakes.MISTAKE_IDS)
def test_a_mistake_costs_only_its_own_entries(mistake_id):
    report = grade_answers(HW2, hand_answers(HW2, decimals(4), mistake_id))
    statuses = [s for q in report.quantities for s in q.statuses]
    assert "wrong" not in statuses and "missing" not in statuses


@slow
@given(seed=seeds, students=ids, mistake_id=st.sampled_from(mistakes.MISTAKE_IDS), rounded=st.booleans())
# sigmoid(z_1) 0.1801 is just outside the tolerance of the softmax's 0.1769, and o_1 rounded to
# 0.179 is within it of both: o_2 alone tells the mistake.
@example(seed="`\n\x91\U000bdf95â]Ê\x89:\x8e°X", students=["\x88\U000dfe2c<r"], mistake_id="sigmoid-output", rounded=True)
def test_each_mistake_is_named_exactly_on_any_variant(seed, students, mistake_id, rounded):
    params = variants.variants(seed, students)
    rounding = sig if rounded else decimals(4)
    reports = grade_many(params, [hand_answers(p, rounding, mistake_id) for p in params])
    for r in reports:
        assert r.misconceptions == (mistake_id,), not_right(r)


@slow
@given(seed=seeds, students=ids)
def test_no_mistake_is_named_on_right_or_rounded_work_of_any_variant(seed, students):
    params = variants.variants(seed, students)
    for rounding in (exact, decimals(4), sig):
        reports = grade_many(params, [hand_answers(p, rounding) for p in params])
        assert all(r.misconceptions == () for r in reports)


@slow
@given(seed=seeds, students=ids)
def test_every_variant_tells_every_mistake_apart_from_the_right_answer(seed, students):
    params = variants.variants(seed, students)
    given_data = stack(params)
    assert variants.mistakes_distinguishable(given_data, core.solve(**given_data)).all()


def test_hw2_tells_every_mistake_apart_from_the_right_answer():
    given_data = stack([HW2])
    assert variants.mistakes_distinguishable(given_data, core.solve(**given_data)).all()


def test_two_mistakes_in_one_submission_are_both_named():
    answers = hand_answers(HW2, decimals(4), "log10-loss")
    answers["w_new"] = hand_answers(HW2, decimals(4), "gradient-ascent")["w_new"]
    assert grade_answers(HW2, answers).misconceptions == ("log10-loss", "gradient-ascent")


ELU_DERIVATIVE_MISTAKES = ("elu-derivative-zero", "elu-derivative-one", "elu-derivative-expm1")


@pytest.mark.parametrize("elu_mistake", ELU_DERIVATIVE_MISTAKES)
def test_a_wrong_elu_derivative_with_target_minus_output_names_both_on_hw2(elu_mistake):
    report = grade_answers(HW2, hand_answers(HW2, decimals(4), ("target-minus-output", elu_mistake)))
    assert set(report.misconceptions) == {"target-minus-output", elu_mistake}, not_right(report)
    assert "wrong" not in report.quantity("grad_v").statuses


def _visible_with_target_minus_output(p: Params, elu_mistake: str, margin: float = 1.0) -> bool:
    """Does ``elu_mistake`` made with o* - o give some entry of dL/dv that is neither o* - o's
    alone nor the key's, by more than ``margin`` times the tolerance? Not where every negative u
    has e^u near 1/2: there e^u - 1 = -e^u, and the pair's row is the key's."""
    given_data = stack([p])
    key = core.solve(**given_data)
    chain = mistakes.chain_from(given_data, key)
    pair = mistakes.spoiled(chain, next(m for m in mistakes.COMBINED if m.id == elu_mistake))
    alone = mistakes.spoiled(chain, mistakes.alone("target-minus-output", "grad_v"))
    wide = Tolerance(rtol=TOL.rtol * margin, atol=TOL.atol * margin)
    return bool((~wide.close(pair, alone) & ~wide.close(pair, key.grad_v)).any())


@slow
@given(seed=seeds, students=ids, elu_mistake=st.sampled_from(ELU_DERIVATIVE_MISTAKES), rounded=st.booleans())
@example(seed="\xfb\x04\xde\U00082a66", students=["H\U0010325fA\x9f=@$\x16\xf7P{"], elu_mistake="elu-derivative-expm1", rounded=False)  # u_1 = -0.7
def test_a_wrong_elu_derivative_with_target_minus_output_names_both_on_any_variant(seed, students, elu_mistake, rounded):
    # For a very negative u, o* - o with ELU' taken as 1 gives the row ELU' taken as e^u - 1
    # alone gives: only the rows of positive u tell the pair from the single mistake.
    params = variants.variants(seed, students)
    rounding = sig if rounded else decimals(4)
    reports = grade_many(params, [hand_answers(p, rounding, ("target-minus-output", elu_mistake)) for p in params])
    for p, r in zip(params, reports):
        both, alone = {"target-minus-output", elu_mistake}, {"target-minus-output"}
        if _visible_with_target_minus_output(p, elu_mistake, margin=3.0):
            allowed = [both]
        elif _visible_with_target_minus_output(p, elu_mistake):
            # e^u within a few percent of 1/2 (u = -0.7: 0.4966): the pair's row is as near the
            # key's as rounding goes, so either is fair.
            allowed = [both, alone]
        else:
            allowed = [alone]
        assert set(r.misconceptions) in allowed, not_right(r)


def test_relu_for_elu_with_elu_derivative_one_names_both():
    # With h = 0 for u < 0, h + 1 is 1: ELU' taken as 1 is not an f'(u) written with h when h
    # itself is the named mistake.
    report = grade_answers(HW2, hand_answers(HW2, decimals(4), ("relu-for-elu", "elu-derivative-one")))
    assert report.misconceptions == ("relu-for-elu", "elu-derivative-one"), not_right(report)


def test_elu_derivative_one_made_for_one_of_two_negative_units_is_named():
    # u = (-1.5, 0.5, -1.0): ELU' taken as 1 at u_1, rightly as e^u at u_3. Half of the entries
    # the mistake changes are right, but the whole row of unit 1 is the mistake's.
    params = Params(x=np.array([1.0, 0.5]), v=np.array([[-1.0, -1.0], [0.3, 0.4], [-0.5, -1.0]]), w=np.array([[0.5, -0.3, 0.8], [-0.7, 0.6, 0.2]]), target=np.array([0.0, 1.0]), lr=0.1)
    key = solve_one(params)
    assert key["u"][0] < 0 and key["u"][2] < 0
    answers = answers_to_json(key)
    dh = (key["o"] - params.target) @ params.w  # dL/dh_j
    answers["grad_v"][0] = (dh[0] * 1.0 * params.x).tolist()
    report = grade_answers(params, answers)
    assert report.misconceptions == ("elu-derivative-one",)
    assert report.quantity("grad_v").statuses == ["mistake:elu-derivative-one"] * 2 + ["right"] * 4


def test_the_keys_update_after_one_row_of_the_gradient_flipped_stays_right():
    # Only a whole gradient flipped, then stepped uphill, is two mistakes cancelling.
    answers = hand_answers(HW2, decimals(4))
    answers["grad_w"][0] = [-g for g in answers["grad_w"][0]]
    report = grade_answers(HW2, answers)
    assert "gradient-ascent" not in report.misconceptions and set(report.quantity("w_new").statuses) == {"right"}


def test_a_mistake_with_a_slip_in_one_of_the_two_entries_it_changes_is_still_named():
    answers = hand_answers(HW2, decimals(4), "sigmoid-output", slip=("o", 1, 0.5))
    assert grade_answers(HW2, answers).misconceptions == ("sigmoid-output",)


@pytest.mark.parametrize("mistake_id", mistakes.MISTAKE_IDS)
def test_without_follow_through_a_mistake_names_nothing_downstream(mistake_id):
    # o* - o, then the right step along that gradient, is w + eta dL/dw of the key: the update
    # follows from the student's own gradient, so it is wrong without follow-through, not a mistake.
    report = grade_answers(HW2, hand_answers(HW2, decimals(4), mistake_id), follow_through=False)
    assert report.misconceptions == (mistake_id,), not_right(report)


_MIXES = [None, *mistakes.MISTAKE_IDS, ("target-minus-output", "gradient-ascent"), ("target-minus-output", "elu-derivative-one")]


@slow
@given(seed=seeds, students=ids, made=st.lists(st.sampled_from(_MIXES), min_size=12, max_size=12), rounded=st.booleans())
def test_a_students_grade_in_a_class_is_their_grade_alone(seed, students, made, rounded):
    """Right work beside mistakes, in one batch: the mistake search runs on the rows with
    something open only, which must change no student's codes."""
    params = variants.variants(seed, students)
    rounding = sig if rounded else decimals(4)
    answers = [hand_answers(p, rounding, mistake) for p, mistake in zip(params, made)]
    together = grade_many(params, answers)
    for p, a, report in zip(params, answers, together):
        alone = grade_answers(p, a, sid=report.student_id)
        assert report.codes.tobytes() == alone.codes.tobytes() and report.misconceptions == alone.misconceptions


def test_gradient_ascent_is_named_when_target_minus_output_cancels_it_on_hw2():
    # w + eta (o* - o) h equals the key's w - eta (o - o*) h: two sign errors, a right value.
    report = grade_answers(HW2, hand_answers(HW2, decimals(4), ("target-minus-output", "gradient-ascent")))
    assert set(report.misconceptions) == {"target-minus-output", "gradient-ascent"}
    # Right against the key, so full credit (an entry is right within tolerance of the key);
    # named, as the mistake was made. Where eta dL/dv is within the tolerance of v (its zero
    # third row in HW#2, some small entries), adding or subtracting it is the same: right.
    assert set(report.quantity("w_new").statuses) == {"cancelled:gradient-ascent"}
    v_new = report.quantity("v_new").statuses
    assert set(v_new) == {"cancelled:gradient-ascent", "right"} and v_new[6:9] == ["right"] * 3
    alone = grade_answers(HW2, hand_answers(HW2, decimals(4), "target-minus-output"))
    assert report.score == alone.score


@slow
@given(seed=seeds, students=ids, rounded=st.booleans())
def test_gradient_ascent_is_named_when_target_minus_output_cancels_it_on_any_variant(seed, students, rounded):
    params = variants.variants(seed, students)
    rounding = sig if rounded else decimals(4)
    reports = grade_many(params, [hand_answers(p, rounding, ("target-minus-output", "gradient-ascent")) for p in params])
    for r in reports:
        assert set(r.misconceptions) == {"target-minus-output", "gradient-ascent"}, not_right(r)


def test_the_cancelled_update_is_named_with_a_blank_in_the_gradient():
    answers = hand_answers(HW2, decimals(4), ("target-minus-output", "gradient-ascent"))
    answers["grad_w"][0][0] = None
    report = grade_answers(HW2, answers)
    assert set(report.misconceptions) == {"target-minus-output", "gradient-ascent"}
    # The update of the blank entry says nothing of how it was made: right.
    assert report.quantity("w_new").statuses == ["right"] + ["cancelled:gradient-ascent"] * 7


def test_the_right_update_after_a_slip_in_the_gradient_stays_right():
    # A value right against the key though not from the student's own (slipped) gradient is
    # looked at for two mistakes cancelling; a plain slip is not that, and the update stays right.
    answers = hand_answers(HW2, decimals(4), slip=("grad_w", (0, 1), 0.5))
    answers["w_new"] = np.round(HW2.w - HW2.lr * HW2_KEY["grad_w"], 4).tolist()
    report = grade_answers(HW2, answers)
    assert report.misconceptions == () and set(report.quantity("w_new").statuses) == {"right"}


# The hidden unit at u = -3.75: h = -0.976 to 3 figures, so h + 1 = 0.024 where e^u = 0.0235,
# 2% off, which the key's 1% does not forgive, though it is the student's own h, right.
VERY_NEGATIVE_U = Params(
    x=np.array([1.5, 1.0, -0.5]),
    v=np.array([[-1.5, -1.5, 0.0], [0.4, 0.3, -0.2], [1.0, -0.6, 0.8], [0.2, 0.9, -1.0]]),
    w=np.array([[1.2, -0.7, 0.5, 0.9], [-0.8, 0.6, -1.1, 0.3]]),
    target=np.array([0.0, 1.0]),
    lr=0.1,
)


def test_elu_derivative_taken_as_h_plus_one_from_a_rounded_h_gets_full_marks():
    assert solve_one(VERY_NEGATIVE_U)["u"][0] == pytest.approx(-3.75)
    report = grade_answers(VERY_NEGATIVE_U, hand_answers(VERY_NEGATIVE_U, sig, df_from_h=True, round_steps=True))
    assert full_marks(report) and report.misconceptions == (), not_right(report)


@slow
@given(seed=seeds, students=ids)
def test_elu_derivative_taken_as_h_plus_one_gets_full_marks_on_any_variant(seed, students):
    params = variants.variants(seed, students)
    reports = grade_many(params, [hand_answers(p, sig, df_from_h=True) for p in params])
    assert all(full_marks(r) and r.misconceptions == () for r in reports), [not_right(r) for r in reports if not full_marks(r)]


def test_a_wrong_h_carried_into_h_plus_one_earns_follow_through_not_right():
    answers = hand_answers(VERY_NEGATIVE_U, decimals(4), slip=("h", 0, 0.1), df_from_h=True)
    statuses = grade_answers(VERY_NEGATIVE_U, answers).quantity("grad_v").statuses
    assert statuses[:3] == ["follow-through"] * 3


def test_one_entry_coinciding_with_a_mistake_that_changes_two_names_nothing():
    # A slip that lands o_1 on sigmoid(z_1), o_2 right: sigmoid-output would change both.
    answers = hand_answers(HW2, decimals(4))
    sigmoid = core.ACTIVATIONS["sigmoid"].f(np.array(answers["z"]))
    assert not TOL.close(sigmoid, HW2_KEY["o"]).any()
    answers["o"][0] = round(float(sigmoid[0]), 4)
    report = grade_answers(HW2, answers)
    assert report.misconceptions == () and report.quantity("o").statuses == ["wrong", "right"]


def test_a_mistake_is_not_named_from_one_coinciding_entry():
    # Flipping the sign of one row of dL/dv is not o* - o, which flips every row.
    answers = answers_to_json(HW2_KEY)
    answers["grad_v"][0] = [-x for x in answers["grad_v"][0]]
    report = grade_answers(HW2, answers)
    assert report.misconceptions == () and report.statuses("grad_v")[:3] == ["wrong"] * 3


def test_transposed_gradient_is_named_and_earns_the_rubric_fraction():
    report = grade_answers(HW2, hand_answers(HW2, decimals(4), "transposed-gradient"))
    assert report.misconceptions == ("transposed-gradient",)
    assert report.quantity("grad_v").score == pytest.approx(7.5 * 0.5)


def test_transposed_grad_w_is_named_too():
    answers = answers_to_json(HW2_KEY)
    answers["grad_w"] = np.asarray(answers["grad_w"]).T.tolist()
    report = grade_answers(HW2, answers)
    assert report.misconceptions == ("transposed-gradient",) and report.transposed == {"grad_w"}


def test_mistake_made_on_the_students_own_wrong_values_is_named():
    # A slip in u_1, then ReLU for ELU on their own u: named from the student's chain.
    answers = hand_answers(HW2, decimals(4), "relu-for-elu", slip=("u", 1, 0.5))
    assert "relu-for-elu" in grade_answers(HW2, answers).misconceptions


# --- Follow-through ------------------------------------------------------------------------------------


def test_an_early_slip_is_carried_forward_as_follow_through():
    report = grade_answers(HW2, hand_answers(HW2, decimals(4), slip=("h", 1, 1.0)))
    assert report.statuses("h") == ["right", "wrong", "right", "right"]
    assert report.follow_through == ("z", "o", "loss", "grad_w", "grad_v", "w_new", "v_new")
    assert report.score == 40.0 - 2.0 / 4


@slow
@given(seed=seeds, students=ids, j=st.integers(0, 3), delta=st.sampled_from([-1.0, -0.5, 0.5, 1.0]))
def test_a_slip_in_u_costs_that_entry_alone_on_any_variant(seed, students, j, delta):
    params = variants.variants(seed, students)
    reports = grade_many(params, [hand_answers(p, decimals(4), slip=("u", j, delta)) for p in params])
    for r in reports:
        assert r.score == 40.0 - 2.0 / 4 and r.misconceptions == (), not_right(r)


def test_follow_through_can_be_turned_off():
    report = grade_answers(HW2, hand_answers(HW2, decimals(4), slip=("h", 1, 1.0)), follow_through=False)
    assert report.follow_through == () and report.statuses("z") == ["wrong", "wrong"]


def test_follow_through_earns_the_rubric_fraction():
    rubric = Rubric.from_json({**DEFAULT_RUBRIC.to_json(), "follow_through": 0.5})
    report = grade_answers(HW2, hand_answers(HW2, decimals(4), slip=("z", 0, 0.5)), rubric=rubric)
    assert report.statuses("o") == ["follow-through"] * 2
    assert report.quantity("o").score == pytest.approx(1.0)


def test_copying_the_keys_h_but_computing_z_from_another_h_is_not_follow_through():
    answers = answers_to_json(HW2_KEY)
    other_h = np.array(HW2_KEY["h"]) + [0.0, 0.5, 0.0, 0.0]
    answers["z"] = (HW2.w @ other_h).tolist()
    report = grade_answers(HW2, answers)
    assert report.statuses("z") == ["wrong", "wrong"] and "z" not in report.follow_through


def test_an_entry_computed_from_a_missing_answer_cannot_earn_follow_through():
    answers = hand_answers(HW2, decimals(4), slip=("h", 1, 1.0))
    answers["h"] = [answers["h"][0], None, answers["h"][2], answers["h"][3]]
    report = grade_answers(HW2, answers)
    assert report.statuses("h")[1] == "missing" and report.statuses("z") == ["wrong", "wrong"]


def test_follow_through_reaches_w_new_through_a_wrong_gradient():
    answers = hand_answers(HW2, decimals(4), "target-minus-output")
    report = grade_answers(HW2, answers)
    assert set(report.statuses("w_new")) <= {"follow-through", "right"} and "gradient-ascent" not in report.misconceptions


def test_a_student_probability_of_zero_does_not_match_an_infinite_loss():
    answers = answers_to_json(HW2_KEY)
    answers["o"] = [0.0, 1.0]
    answers["loss"] = 1e308
    assert grade_answers(HW2, answers).statuses("loss") == ["wrong"]


# --- Scores -------------------------------------------------------------------------------------------------


def test_missing_answers_score_zero_and_the_rest_is_graded():
    answers = answers_to_json(HW2_KEY)
    answers["w_new"] = None
    answers["v_new"][0] = [None, None, None]
    report = grade_answers(HW2, answers)
    assert report.statuses("w_new") == ["missing"] * 8
    assert report.score == 40.0 - 7.5 - 7.5 * 3 / 12


def test_answers_not_given_are_each_a_line_of_a_graded_files_errors():
    answers = answers_to_json(HW2_KEY)
    answers["loss"] = None
    answers["w_new"] = None
    answers["v_new"][0] = [None, 0.5, None]
    del answers["u"]
    report = grade_answers(HW2, answers)
    assert report.status == GRADED
    assert report.errors == (
        "answers.u: not given; its 4 entries score 0",
        "answers.loss: not given; it scores 0",
        "answers.w_new: not given; its 8 entries score 0",
        "answers.v_new[0][0], answers.v_new[0][2]: not given; they score 0",
    )


def test_a_file_with_every_answer_given_has_no_errors():
    assert grade_answers(HW2, answers_to_json(HW2_KEY)).errors == ()


def test_part_scores_follow_the_rubric():
    report = grade_answers(HW2, HW2_REAL)
    scores = {p.part: (p.score, p.max_score) for p in report.parts}
    assert scores == {"1": (None, None), "2": (8.0, 10.0), "3": (None, None), "4": (15.0, 15.0), "5": (15.0, 15.0)}


def test_part_scores_add_up_to_the_total_as_written():
    # Half credit on a transposed dL/dw is 0.46875 an entry: 5 decimals, kept and shown whole.
    answers = answers_to_json(HW2_KEY)
    answers["grad_w"] = np.array(answers["grad_w"]).T.tolist()
    answers["grad_w"][0][0] = 9.0
    answers["w_new"][1][3] = 5.0
    report = grade_answers(HW2, answers)
    assert report.score == 34.84375
    assert sum(p.score for p in report.parts if p.score is not None) == report.score
    assert reports.score_text(report.score) == "34.84375"
    assert [reports.score_text(p.score) for p in report.parts] == ["", "10", "", "10.78125", "14.0625"]


def test_a_rubric_credit_for_a_mistake_is_applied():
    rubric = Rubric.from_json({**DEFAULT_RUBRIC.to_json(), "mistake_credit": {"log10-loss": 0.25}})
    assert grade_answers(HW2, HW2_REAL, rubric=rubric).score == 38.5


def test_derivations_when_given_are_graded_into_parts_1_and_3():
    from grader.derivations import REFERENCE

    sub = from_json({"student_id": "d", "answers": HW2_REAL, "derivations": dict(REFERENCE)}, layout_of(HW2))
    report = grade_students([_Student(sub, HW2, {})], TOL)[0]
    assert (report.score, report.max_score) == (58.0, 60.0)


def test_derivations_of_a_problem_with_another_activation_are_left_ungraded_with_a_warning():
    from grader.derivations import REFERENCE

    tanh = Params(HW2.x, HW2.v, HW2.w, HW2.target, HW2.lr, "tanh")
    answers = answers_to_json(solve_one(tanh))
    sub = from_json({"student_id": "d", "answers": answers, "derivations": dict(REFERENCE)}, layout_of(tanh))
    report = grade_students([_Student(sub, tanh, {})], TOL)[0]
    assert (report.score, report.max_score) == (40.0, 40.0)
    assert report.warnings == ("derivations: graded for an ELU hidden layer, as in HW#2; this problem's is tanh, so parts 1 and 3 are left ungraded",)
    feedback = reports.feedback_markdown(report, grading.Gradebook((report,), TOL, DEFAULT_RUBRIC, True, True))
    assert "no derivation of yours was graded here" in feedback and "has no derivations" not in feedback
    assert "this problem's is tanh, so parts 1 and 3 are left ungraded" in feedback


def test_all_null_derivations_leave_parts_1_and_3_ungraded():
    sub = from_json({"student_id": "d", "answers": HW2_REAL, "derivations": {"u": None, "h": None}}, layout_of(HW2))
    report = grade_students([_Student(sub, HW2, {})], TOL)[0]
    assert report.max_score == 40.0 and not report.parts[0].graded


# --- Files to reports ------------------------------------------------------------------------------------


def write(path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def small_class(seed="seed", n=3) -> Manifest:
    sids = [f"st{k}" for k in range(n)]
    params = variants.variants(seed, sids)
    return Manifest("fp", tuple(StudentRecord(s, s, p, {"Section": "A"}) for s, p in zip(sids, params)))


def test_roster_students_without_a_file_are_missing_with_zero(tmp_path):
    manifest = small_class()
    p = manifest.students[0].params
    f = write(tmp_path / "a.json", {"student_id": "st0", "answers": hand_answers(p)})
    book = grade_files([f], manifest)
    assert [(r.student_id, r.status, r.score) for r in book.reports] == [("st0", GRADED, 40.0), ("st1", MISSING, 0.0), ("st2", MISSING, 0.0)]


def test_each_student_is_graded_against_their_own_variant(tmp_path):
    manifest = small_class()
    files = [write(tmp_path / f"{s.student_id}.json", {"student_id": s.student_id, "answers": hand_answers(s.params)}) for s in manifest.students]
    assert all(r.score == 40.0 for r in grade_files(files, manifest).reports)


def test_a_file_with_an_id_not_in_the_manifest_is_reported_unmatched(tmp_path):
    f = write(tmp_path / "x.json", {"student_id": "nobody", "answers": answers_to_json(HW2_KEY)})
    last = grade_files([f], small_class()).reports[-1]
    assert (last.student_id, last.status, last.file_stem) == ("nobody", INVALID, None)
    assert "not in the manifest" in last.errors[0]


def test_of_two_files_for_a_student_the_newer_is_graded_and_both_named(tmp_path):
    import os

    old = write(tmp_path / "old.json", {"student_id": "a", "answers": answers_to_json(HW2_KEY)})
    new = write(tmp_path / "new.json", {"student_id": "a", "answers": HW2_REAL})
    os.utime(old, ns=(1_000_000_000, 1_000_000_000))
    os.utime(new, ns=(2_000_000_000, 2_000_000_000))
    (report,) = grade_files([new, old]).reports
    assert report.source == new and report.other_sources == (old,) and report.score == 38.0
    assert old in report.warnings[0] and new in report.warnings[0]


def test_a_bad_file_does_not_stop_the_others(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe not utf-8")
    good = write(tmp_path / "good.json", {"student_id": "g", "answers": answers_to_json(HW2_KEY)})
    statuses = {r.source: r.status for r in grade_files([str(bad), good]).reports}
    assert statuses == {str(bad): INVALID, good: GRADED}


def test_collect_files_searches_folders_and_skips_other_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text("{}")
    (tmp_path / "a.JSON").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    found, skipped = grading.collect_files([tmp_path])
    assert [p.split("/")[-1] for p in found] == ["a.JSON", "b.json"] and skipped[0].endswith("notes.txt")


def test_collect_files_leaves_out_the_output_folder(tmp_path):
    (tmp_path / "grades").mkdir()
    (tmp_path / "grades" / "results.json").write_text("{}")
    found, _ = grading.collect_files([tmp_path], exclude=[tmp_path / "grades"])
    assert found == []


def test_large_manifests_load(tmp_path):
    manifest = small_class(n=600)  # over 1 MiB written
    manifest.write(tmp_path / "m.json")
    assert (tmp_path / "m.json").stat().st_size > 1 << 20
    loaded = grading.load_class_manifest(tmp_path / "m.json")
    assert [s.student_id for s in loaded.students] == [s.student_id for s in manifest.students]
    assert all(np.array_equal(a.params.v, b.params.v) for a, b in zip(loaded.students, manifest.students))


def test_an_unusual_manifest_is_validated_by_the_manifest_module(tmp_path):
    obj = small_class(n=2).to_json()
    obj["students"][1]["params"]["x"] = [1.0, "2", 3.0]
    (tmp_path / "m.json").write_text(json.dumps(obj))
    with pytest.raises(Exception, match=r"students\[1\]\.params\.x"):
        grading.load_class_manifest(tmp_path / "m.json")


def test_a_manifest_with_empty_inputs_is_refused_with_a_reason(tmp_path):
    from grader.jsonio import InputError

    obj = small_class(n=2).to_json()
    for student in obj["students"]:
        student["params"]["x"] = []
    (tmp_path / "m.json").write_text(json.dumps(obj))
    with pytest.raises(InputError, match=r"students\[0\]\.params"):
        grading.load_class_manifest(tmp_path / "m.json")


def test_derivation_blocks_graded_once_each_keep_true_apart_from_one():
    """Equal blocks of derivation texts are graded once per process; a block holding a
    number or a boolean is not looked up (as keys, 1 and True are one), so each keeps its own
    message."""
    blocks = [{"u": "v @ x"}, {"u": "v @ x"}, {"u": 1}, {"u": True}]
    results = [grading._grade_derivations(block)["u"] for block in blocks]
    assert results[0] is results[1]
    assert results[2].message.endswith("got a number") and results[3].message.endswith("got true/false")
