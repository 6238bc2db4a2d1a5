"""The rubric: the shipped default, loading TOML and JSON, and one-line errors for bad files."""

from __future__ import annotations

import json

import pytest

from grader import core
from grader.jsonio import InputError
from grader.rubric import DEFAULT_RUBRIC, DEFAULT_RUBRIC_PATH, Rubric, load_rubric


def test_default_rubric_points_per_part_are_those_of_hw2():
    parts = {part: sum(points.values()) for part, points in {**DEFAULT_RUBRIC.answers, **DEFAULT_RUBRIC.derivations}.items()}
    assert parts == {"1": 10.0, "2": 10.0, "3": 10.0, "4": 15.0, "5": 15.0}


def test_default_rubric_points_per_answer():
    assert {key: DEFAULT_RUBRIC.points(key) for key in core.ANSWER_KEYS} == {
        "u": 2, "h": 2, "z": 2, "o": 2, "loss": 2, "grad_w": 7.5, "grad_v": 7.5, "w_new": 7.5, "v_new": 7.5,
    }


def test_default_rubric_derivation_points():
    assert DEFAULT_RUBRIC.derivations == {"1": {"u": 2.5, "h": 2.5, "z": 2.5, "o": 2.5}, "3": {"grad_w": 5.0, "grad_v": 5.0}}


def test_default_follow_through_is_full_credit():
    assert DEFAULT_RUBRIC.follow_through == 1.0


def test_default_credit_of_a_transposed_gradient_is_half_and_other_mistakes_none():
    assert DEFAULT_RUBRIC.credit_for("transposed-gradient") == 0.5 and DEFAULT_RUBRIC.credit_for("log10-loss") == 0.0


def test_parts_are_in_numeric_order():
    assert DEFAULT_RUBRIC.parts == ("1", "2", "3", "4", "5")


def test_a_json_rubric_loads_like_the_toml_one(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(DEFAULT_RUBRIC.to_json()))
    assert load_rubric(path).to_json() == DEFAULT_RUBRIC.to_json()


def test_a_toml_rubric_overrides_the_default(tmp_path):
    text = (tmp_path / "r.toml")
    text.write_text(
        'follow_through = 0.5\n[answers.2]\nu = 1\nh = 1\nz = 1\no = 1\nloss = 6\n[answers.4]\ngrad_w = 5\ngrad_v = 5\n'
        '[answers.5]\nw_new = 5\nv_new = 5\n[mistake_credit]\nlog10-loss = 0.5\n'
    )
    rubric = load_rubric(text)
    assert (rubric.points("loss"), rubric.follow_through, rubric.credit_for("log10-loss"), rubric.derivations) == (6.0, 0.5, 0.5, {})


def error_of(obj) -> str:
    with pytest.raises(InputError) as info:
        Rubric.from_json(obj)
    return str(info.value)


def base():
    return DEFAULT_RUBRIC.to_json()


def test_an_unknown_setting_is_an_error():
    assert error_of({**base(), "bonus": 1}).startswith("bonus: is not a rubric setting")


def test_an_answer_left_out_is_an_error():
    obj = base()
    del obj["answers"]["5"]["v_new"]
    assert error_of(obj) == "answers.v_new: is in no answers part; each answer must be graded exactly once"


def test_an_answer_in_two_parts_is_an_error():
    obj = base()
    obj["answers"]["4"]["u"] = 1
    assert error_of(obj) == "answers.u: is in more than one answers part; each answer must be graded exactly once"


def test_an_unknown_answer_key_is_an_error():
    obj = base()
    obj["answers"]["2"]["dz"] = 1
    assert error_of(obj).startswith("answers.2.dz: is not gradable here")


def test_negative_points_are_an_error():
    obj = base()
    obj["answers"]["2"]["u"] = -1
    assert error_of(obj) == "answers.2.u: must not be negative"


@pytest.mark.parametrize("value", [1.5, -0.1, "half", True])
def test_a_fraction_outside_0_to_1_is_an_error(value):
    assert error_of({**base(), "follow_through": value}).startswith("follow_through: must be")


def test_an_unknown_mistake_id_is_an_error():
    assert error_of({**base(), "mistake_credit": {"typo": 0.5}}).startswith("mistake_credit.typo: is not a known mistake")


def test_a_part_that_is_both_answers_and_derivations_is_an_error():
    obj = base()
    obj["derivations"]["2"] = {"u": 1}
    assert error_of(obj) == "derivations.2: is also an answers part; a part is one or the other"


def test_a_part_not_named_by_a_number_is_an_error():
    obj = base()
    obj["answers"]["two"] = obj["answers"].pop("2")
    assert error_of(obj) == "answers.two: a part is named by its number, e.g. 2"


def test_invalid_toml_is_one_line(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text("follow_through = \n")
    with pytest.raises(InputError, match=r"^not valid TOML: "):
        load_rubric(path)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_an_integer_beyond_float_range_is_an_error_naming_the_entry(tmp_path, suffix):
    path = tmp_path / f"r{suffix}"
    text = json.dumps(base()) if suffix == ".json" else (DEFAULT_RUBRIC_PATH.read_text())
    big = "1" + "0" * 310
    path.write_text(text.replace('"u": 2.0', f'"u": {big}', 1) if suffix == ".json" else text.replace("\nu = 2\n", f"\nu = {big}\n", 1))
    with pytest.raises(InputError) as info:
        load_rubric(path)
    assert str(info.value) == "answers.2.u: the number is too large to be finite"


def test_points_beyond_the_limit_are_an_error():
    obj = base()
    obj["answers"]["2"]["u"] = obj["answers"]["2"]["h"] = 1e308
    assert error_of(obj) == "answers.2.u: is over the limit of 1,000,000 points"


@pytest.mark.parametrize("name", ["r.toml", "r.json"])
def test_an_empty_rubric_file_says_it_is_empty(tmp_path, name):
    path = tmp_path / name
    path.write_text(" \n")
    with pytest.raises(InputError, match=r"^the rubric is empty; "):
        load_rubric(path)
