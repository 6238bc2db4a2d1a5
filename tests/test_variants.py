"""Variants: reproducible from seed and id, different across ids, and always good problems."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader import core, mistakes, variants
from grader.params import stack
from grader.tolerance import Tolerance

ids = st.text(min_size=1, max_size=30)
seeds = st.text(min_size=1, max_size=30)

# Pinned forever: if one of these moves, every class generated so far would be graded against
# the wrong numbers. Bump STREAM_VERSION on purpose instead, and pin new values.
GOLDEN = {
    ("s3cret", "2018170622"): {
        "x": [0.5, -0.5, 1.0],
        "v": [[2.0, -1.0, -1.2], [-1.4, -1.9, -0.8], [0.5, 1.1, -0.6], [-0.2, 1.3, 1.2]],
        "w": [[-1.7, -0.4, 1.9, -0.4], [-1.1, 1.5, 0.7, 0.9]],
        "target": [0.0, 1.0],
        "lr": 0.1,
        "activation": "elu",
    },
    ("s3cret", "student-001"): {
        "x": [-1.5, 2.0, -1.5],
        "v": [[0.1, -1.3, -0.8], [-0.8, 1.7, -0.9], [-1.7, -0.4, 0.3], [-0.8, -1.6, -0.8]],
        "w": [[1.6, 1.3, 1.3, -0.5], [1.2, 1.4, 1.1, -0.9]],
        "target": [1.0, 0.0],
        "lr": 0.1,
        "activation": "elu",
    },
    ("another seed", "alice@example.edu"): {
        "x": [0.5, -1.0, 2.0],
        "v": [[0.6, -0.3, -0.2], [-0.8, 1.3, 1.2], [1.6, 1.2, -1.3], [-0.4, -1.9, -0.3]],
        "w": [[-0.2, 0.0, 1.7, -0.3], [0.1, -1.0, 0.1, 0.1]],
        "target": [1.0, 0.0],
        "lr": 0.1,
        "activation": "elu",
    },
}


def batch_of(params_list):
    return stack(params_list)


def test_same_seed_and_id_give_the_same_variant():
    a = variants.variant("s3cret", "2018170622")
    b = variants.variant("s3cret", "2018170622")
    assert a.to_json() == b.to_json()


def test_different_ids_give_different_variants():
    many = variants.variants("s3cret", [f"student-{n:03d}" for n in range(200)])
    assert len({str(p.to_json()) for p in many}) == 200


def test_different_seeds_give_different_variants():
    assert variants.variant("a", "x").to_json() != variants.variant("b", "x").to_json()


def test_a_student_variant_does_not_depend_on_the_rest_of_the_class():
    alone = variants.variant("s3cret", "bob")
    in_class = variants.variants("s3cret", ["alice", "bob", "carol"])[1]
    assert alone.to_json() == in_class.to_json()


def test_empty_seed_is_refused():
    with pytest.raises(ValueError):
        variants.variant("", "x")


@pytest.mark.parametrize("seed, student_id", sorted(GOLDEN))
def test_golden_variants_do_not_move(seed, student_id):
    assert variants.variant(seed, student_id).to_json() == GOLDEN[seed, student_id]


# -- every rule holds for every generated variant -------------------------------------------


@pytest.fixture(scope="module")
def many_variants():
    """Five thousand variants over a few seeds, solved in one batch."""
    params = [
        p
        for seed in ("s3cret", "course-2026", "ß∂ƒ")
        for p in variants.variants(seed, [f"id-{n}" for n in range(1700)])
    ]
    batch = batch_of(params)
    return batch, core.solve(**batch)


def test_every_variant_is_on_the_hand_computable_grids(many_variants):
    batch, _ = many_variants
    assert np.allclose(batch["x"] * 2, np.round(batch["x"] * 2)) and np.abs(batch["x"]).max() <= 2
    for key in ("v", "w"):
        assert np.allclose(batch[key] * 10, np.round(batch[key] * 10)) and np.abs(batch[key]).max() <= 2
    assert np.all(np.abs(batch["x"]) >= 0.5)
    np.testing.assert_allclose(batch["lr"], 0.1)


def test_every_variant_has_hidden_units_of_both_signs(many_variants):
    _, sol = many_variants
    assert ((sol.u < 0).any(axis=1) & (sol.u > 0).any(axis=1)).all()


def test_no_variant_has_a_pre_activation_near_the_kink(many_variants):
    _, sol = many_variants
    assert np.abs(sol.u).min() >= variants.MIN_ABS_U - variants.GRID_SLACK


def test_every_variant_keeps_the_softmax_unsaturated(many_variants):
    batch, sol = many_variants
    p = (sol.o * batch["target"]).sum(axis=1)
    assert p.min() >= 0.1 and p.max() <= 0.9


def test_every_negative_unit_has_distinct_output_weights(many_variants):
    batch, sol = many_variants
    gap = np.abs(batch["w"][:, 0, :] - batch["w"][:, 1, :])
    assert (gap[sol.u < 0] >= variants.MIN_OUTPUT_WEIGHT_GAP - variants.GRID_SLACK).all()


def test_target_classes_are_both_drawn(many_variants):
    batch, _ = many_variants
    share = batch["target"][:, 0].mean()
    assert 0.3 < share < 0.7


@pytest.mark.parametrize("mistake", mistakes.for_activation("elu"), ids=lambda m: f"{m.id}:{m.quantity}")
def test_every_variant_tells_every_mistake_apart_from_the_right_answer(many_variants, mistake):
    batch, sol = many_variants
    right = getattr(sol, mistake.quantity)
    wrong = mistakes.spoiled(mistakes.chain_from(batch, sol), mistake)
    if wrong.shape != right.shape:
        return  # told apart by shape alone
    off = ~Tolerance().close(wrong, right)
    assert off.reshape(len(right), -1).any(axis=1).all()


@settings(max_examples=100, deadline=None)
@given(seeds, ids)
def test_any_seed_and_id_give_a_good_problem(seed, student_id):
    p = variants.variant(seed, student_id)
    assert variants.good_problems(batch_of([p]))[0]


@pytest.mark.parametrize("rounding", ["3 significant figures", "4 decimals"])
def test_carried_rounding_is_within_tolerance_of_every_variant_key(many_variants, rounding):
    batch, sol = many_variants
    step = core.round_significant(3) if rounding == "3 significant figures" else core.round_decimals(4)
    by_hand = core.solve(**batch, round_each_step=step)
    for key in core.ANSWER_KEYS:
        assert Tolerance().close(getattr(by_hand, key), getattr(sol, key)).all(), key
