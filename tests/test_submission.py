"""Reading answer files: what is well-formed, and a one-line reason naming the field when not."""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest

from grader import core
from grader.jsonio import InputError, MAX_INPUT_BYTES
from grader.params import HW2, answers_to_json, solve_one
from grader.submission import InvalidSubmission, Submission, layout_for, layout_of, load_submission, read_submission

LAYOUT = layout_of(HW2)
RIGHT = answers_to_json(solve_one(HW2))


def blank() -> dict:
    """The blank submission.json of `hwgen generate`: every answer present and null."""
    shapes = LAYOUT.shapes
    answers = {key: np.full(shapes[key], None).tolist() for key in core.ANSWER_KEYS}
    return {"student_id": "s1", "answers": answers, "derivations": {k: None for k in ("u", "h", "z", "o", "grad_w", "grad_v")}}


def read_text(tmp_path, text: str | bytes, layouts=LAYOUT):
    path = tmp_path / "sub.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return read_submission(path, layouts)


def read_obj(tmp_path, obj, layouts=LAYOUT):
    return read_text(tmp_path, json.dumps(obj), layouts)


def problems(result) -> list[str]:
    assert isinstance(result, InvalidSubmission), "expected the file to be refused"
    return list(result.problems)


def with_answer(key, value, **extra):
    return {"student_id": "s1", "answers": {**RIGHT, key: value}, **extra}


# --- Well-formed -------------------------------------------------------------------------------


def test_the_answers_of_hwgen_solve_are_well_formed(tmp_path):
    sub = read_obj(tmp_path, {"student_id": "s1", "answers": RIGHT})
    assert isinstance(sub, Submission) and np.allclose(sub.answers["grad_v"], solve_one(HW2)["grad_v"])


def test_the_blank_submission_is_well_formed_with_everything_missing(tmp_path):
    sub = read_obj(tmp_path, blank())
    assert isinstance(sub, Submission)
    assert all(value is None for value in sub.answers.values())
    assert sub.missing() == [f"answers.{key}" for key in core.ANSWER_KEYS]


def test_a_partly_null_answer_keeps_the_given_entries(tmp_path):
    sub = read_obj(tmp_path, with_answer("grad_w", [[1.0, None, 2.0, 3.0], None]))
    assert sub.given["grad_w"].tolist() == [[True, False, True, True], [False] * 4]
    assert sub.missing()[0] == "answers.grad_w[0][1]"


def test_an_absent_answer_is_missing_not_malformed(tmp_path):
    answers = dict(RIGHT)
    del answers["v_new"]
    sub = read_obj(tmp_path, {"student_id": "s1", "answers": answers})
    assert sub.answers["v_new"] is None


@pytest.mark.parametrize("loss", [0.31, [0.31], 1])
def test_the_loss_may_be_a_number_or_a_list_of_one(tmp_path, loss):
    assert read_obj(tmp_path, with_answer("loss", loss)).answers["loss"] == pytest.approx(float(np.ravel(loss)[0]))


def test_integers_are_numbers(tmp_path):
    assert read_obj(tmp_path, with_answer("u", [2, -1, 4, 0])).answers["u"].tolist() == [2.0, -1.0, 4.0, 0.0]


def test_a_numeric_student_id_is_read_as_its_text_with_a_warning(tmp_path):
    sub = read_obj(tmp_path, {"student_id": 2018170622, "answers": RIGHT})
    assert sub.student_id == "2018170622" and "student_id" in sub.warnings[0]


def test_unknown_keys_are_warnings(tmp_path):
    sub = read_obj(tmp_path, {"student_id": "s1", "answers": {**RIGHT, "dz": [1, 2]}, "name": "Kim"})
    assert isinstance(sub, Submission) and sub.warnings == ("name: unknown key, ignored", "answers.dz: unknown key, ignored")


def test_a_transposed_gradient_is_kept_transposed_back_and_remembered(tmp_path):
    sub = read_obj(tmp_path, with_answer("grad_v", np.array(RIGHT["grad_v"]).T.tolist()))
    assert sub.transposed == {"grad_v"} and np.allclose(sub.answers["grad_v"], RIGHT["grad_v"])


@pytest.mark.parametrize("key", ["grad_w", "grad_v"])
@pytest.mark.parametrize("null_rows", [True, False])
def test_an_all_null_gradient_in_the_transposed_shape_is_blank_not_transposed(tmp_path, key, null_rows):
    cols, rows = LAYOUT.shapes[key]  # the transpose's shape
    value = [None] * rows if null_rows else [[None] * cols for _ in range(rows)]
    sub = read_obj(tmp_path, with_answer(key, value))
    assert sub.transposed == frozenset() and sub.answers[key] is None and f"answers.{key}" in sub.missing()


def test_a_byte_order_mark_is_harmless(tmp_path):
    assert isinstance(read_text(tmp_path, "\ufeff" + json.dumps({"student_id": "s", "answers": RIGHT})), Submission)


def test_the_layout_follows_the_network_size():
    layout = layout_for((5, 3, 4))
    assert layout.shapes["grad_v"] == (3, 5) and layout.size == 3 + 3 + 4 + 4 + 1 + 12 + 15 + 12 + 15


def test_entry_names_follow_the_problem():
    assert LAYOUT.entry_names("grad_w")[:2] == ("dL/dw_11", "dL/dw_12") and LAYOUT.entry_names("loss") == ("L",)


# --- Bad files, one line each ---------------------------------------------------------------------


def test_not_utf8(tmp_path):
    assert problems(read_text(tmp_path, b'{"student_id": "\xff"}')) == ["not UTF-8 text (byte 16 is invalid)"]


def test_not_json(tmp_path):
    assert problems(read_text(tmp_path, '{"student_id": "s1", '))[0].startswith("not valid JSON: ")


@pytest.mark.parametrize("top", ["[1, 2]", '"text"', "3", "null"])
def test_a_top_level_that_is_not_an_object(tmp_path, top):
    assert problems(read_text(tmp_path, top))[0].startswith("the file must be a JSON object")


def test_no_student_id(tmp_path):
    assert problems(read_obj(tmp_path, {"answers": RIGHT})) == ["student_id: is missing"]


@pytest.mark.parametrize("sid,kind", [("", "is empty"), ("   ", "is empty"), (True, "expected a string, got a boolean"), (1.5, "expected a string, got a number"), (None, "expected a string, got null")])
def test_an_unusable_student_id(tmp_path, sid, kind):
    assert problems(read_obj(tmp_path, {"student_id": sid, "answers": RIGHT})) == [f"student_id: {kind}"]


def test_a_student_id_longer_than_any_roster_s_is_refused_in_one_short_line(tmp_path):
    found = problems(read_obj(tmp_path, {"student_id": "x" * 200_000, "answers": RIGHT}))
    assert found == ["student_id: is 200,000 characters long; an id has at most 200: '" + "x" * 40 + "...'"]


def test_an_unknown_student_id(tmp_path):
    def layouts(student_id):
        raise InputError("student_id", f"{student_id!r} is not in the manifest")

    result = read_obj(tmp_path, {"student_id": "zz", "answers": RIGHT}, layouts)
    assert problems(result) == ["student_id: 'zz' is not in the manifest"] and result.student_id == "zz"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_naming_the_field(tmp_path, literal):
    text = json.dumps(with_answer("z", [1.0, 12345.5])).replace("12345.5", literal, 1)
    result = read_text(tmp_path, text)
    assert problems(result) == [f"answers.z[1]: expected a number, got {literal}, which is not a finite number (JSON allows only finite numbers)"]
    assert result.student_id == "s1"  # still known, so the report goes to the student


@pytest.mark.parametrize("literal", ["1e999", "-1E+400", "1" * 400 + ".0"])
def test_numbers_too_large_to_be_finite_are_refused_naming_the_field(tmp_path, literal):
    text = json.dumps(with_answer("z", [1.0, 12345.5])).replace("12345.5", literal, 1)
    assert problems(read_text(tmp_path, text)) == ["answers.z[1]: the number is too large to be finite"]


def test_a_huge_integer_is_refused(tmp_path):
    text = json.dumps(with_answer("z", [1.0, 12345.5])).replace("12345.5", "1" + "0" * 400, 1)
    assert problems(read_text(tmp_path, text)) == ["answers.z[1]: the number is too large to be finite"]


@pytest.mark.parametrize("digits", [4299, 4301, 5000, 100_000])
def test_an_integer_longer_than_python_reads_is_refused_naming_the_field(tmp_path, digits):
    # Python refuses to read integers of more than 4,300 digits (a ValueError, once a traceback
    # that stopped the whole class).
    text = json.dumps(with_answer("z", [1.0, 12345.5])).replace("12345.5", "-" + "9" * digits, 1)
    assert problems(read_text(tmp_path, text)) == ["answers.z[1]: the number is too large to be finite"]


def test_an_integer_longer_than_a_lowered_digit_limit_is_refused_naming_the_field(tmp_path):
    # PYTHONINTMAXSTRDIGITS may lower Python's limit to 640 digits.
    text = json.dumps(with_answer("z", [1.0, 12345.5])).replace("12345.5", "7" * 1000, 1)
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert problems(read_text(tmp_path, text)) == ["answers.z[1]: the number is too large to be finite"]
    finally:
        sys.set_int_max_str_digits(limit)


def test_an_integer_longer_than_python_reads_in_an_unknown_key_is_only_warned_about(tmp_path):
    text = json.dumps({"student_id": "s1", "answers": RIGHT, "note": 1}).replace('"note": 1', '"note": ' + "1" * 5000)
    result = read_text(tmp_path, text)
    assert isinstance(result, Submission) and result.warnings == ("note: unknown key, ignored",)


def test_an_integer_longer_than_python_reads_beside_a_nan_still_names_the_student(tmp_path):
    text = json.dumps(with_answer("z", [1.0, 12345.5])).replace("12345.5", "NaN", 1).replace("[1.0", "[" + "1" * 5000, 1)
    result = read_text(tmp_path, text)
    assert result.student_id == "s1" and "answers.z[1]: expected a number, got NaN, which is not a finite number (JSON allows only finite numbers)" in problems(result)


@pytest.mark.parametrize("digits", [41, 5000])
def test_a_numeric_student_id_too_long_to_be_an_id_is_refused(tmp_path, digits):
    text = json.dumps({"student_id": 1, "answers": RIGHT}).replace('"student_id": 1', '"student_id": ' + "7" * digits)
    assert problems(read_text(tmp_path, text)) == ["student_id: a number of more than 40 digits is no student id; write the id in quotes"]


def test_a_non_finite_number_anywhere_is_refused(tmp_path):
    text = json.dumps({"student_id": "s1", "answers": RIGHT, "note": [1.0]}).replace("[1.0]", "[1e999]")
    assert problems(read_text(tmp_path, text)) == ["note[0]: the number is too large to be finite"]


@pytest.mark.parametrize("literal", ["NaN", "-Infinity", "1e999"])
@pytest.mark.parametrize("where,field", [("note", "note[0]"), ("help", "help[0]"), ("answers", "answers.extra[0]")])
def test_a_nan_is_refused_wherever_it_is_like_a_number_too_large(tmp_path, literal, where, field):
    obj = with_answer("extra", [12345.5]) if where == "answers" else {"student_id": "s1", "answers": RIGHT, where: [12345.5]}
    result = read_text(tmp_path, json.dumps(obj).replace("12345.5", literal))
    reason = "the number is too large to be finite" if literal == "1e999" else f"{literal}, which is not a finite number (JSON allows only finite numbers)"
    assert problems(result) == [f"{field}: {reason}"] and result.student_id == "s1"


def test_a_nan_as_a_derivation_is_refused_in_the_words_of_the_answers(tmp_path):
    text = json.dumps({"student_id": "s1", "answers": RIGHT, "derivations": {"u": 12345.5}}).replace("12345.5", "NaN")
    assert problems(read_text(tmp_path, text)) == ["derivations.u: NaN, which is not a finite number (JSON allows only finite numbers)"]


@pytest.mark.parametrize("value,kind", [("0.31", "a string"), (True, "a boolean"), ({"a": 1}, "an object")])
def test_strings_and_booleans_where_numbers_belong(tmp_path, value, kind):
    assert problems(read_obj(tmp_path, with_answer("u", [2.0, value, 4.7, 0.2]))) == [f"answers.u[1]: expected a number, got {kind}"]


def test_a_string_in_a_matrix_names_row_and_column(tmp_path):
    grad_v = [row[:] for row in RIGHT["grad_v"]]
    grad_v[2][1] = "0"
    assert problems(read_obj(tmp_path, with_answer("grad_v", grad_v))) == ["answers.grad_v[2][1]: expected a number, got a string"]


def test_the_loss_as_a_string(tmp_path):
    assert problems(read_obj(tmp_path, with_answer("loss", "0.3095"))) == ["answers.loss: expected a number, got a string"]


def test_a_ragged_matrix(tmp_path):
    grad_w = [RIGHT["grad_w"][0], RIGHT["grad_w"][1][:3]]
    assert problems(read_obj(tmp_path, with_answer("grad_w", grad_w))) == [
        "answers.grad_w: is ragged: its rows have 3, 4 entries; expected 2 rows of 4"
    ]


def test_a_wrongly_shaped_matrix(tmp_path):
    assert problems(read_obj(tmp_path, with_answer("w_new", RIGHT["w_new"][:1]))) == [
        "answers.w_new: expected 2 rows of 4 numbers (a 2x4 matrix), got 1 rows of 4"
    ]


def test_a_transposed_update_is_malformed_not_a_mistake(tmp_path):
    result = read_obj(tmp_path, with_answer("w_new", np.array(RIGHT["w_new"]).T.tolist()))
    assert problems(result) == ["answers.w_new: expected 2 rows of 4 numbers (a 2x4 matrix), got 4 rows of 2"]


def test_a_vector_of_the_wrong_length(tmp_path):
    assert problems(read_obj(tmp_path, with_answer("u", [1.0, 2.0]))) == ["answers.u: expected 4 numbers, got 2"]


def test_a_number_where_a_vector_belongs(tmp_path):
    assert problems(read_obj(tmp_path, with_answer("o", 0.5))) == ["answers.o: expected a list of 2 numbers, got a number"]


def test_a_column_vector_names_the_entry(tmp_path):
    assert problems(read_obj(tmp_path, with_answer("z", [[3.67], [2.66]]))) == ["answers.z[0]: expected a number, got a list", "answers.z[1]: expected a number, got a list"]


def test_deeply_nested_arrays(tmp_path):
    deep = "[" * 40 + "1" + "]" * 40
    found = problems(read_text(tmp_path, json.dumps(with_answer("u", None)).replace("null", deep, 1)))
    assert found[0] == "answers.u: arrays or objects nest deeper than 32 levels"


def test_deep_nesting_in_an_unknown_key_names_it_in_one_line(tmp_path):
    deep = "{\"a\": " * 40 + "1" + "}" * 40
    text = json.dumps({"student_id": "s1", "answers": RIGHT, "n\note": 0}).replace("0}", deep + "}")
    assert problems(read_text(tmp_path, text))[0] == "n\\note.a: arrays or objects nest deeper than 32 levels"


def test_brackets_in_derivation_text_are_not_nesting(tmp_path):
    derivations = {"grad_v": "sum((o[k] - t[k]) * w[k,j], k) * dELU(u[j]) * x[i]" * 3}
    assert isinstance(read_obj(tmp_path, {"student_id": "s", "answers": RIGHT, "derivations": derivations}), Submission)


def test_a_file_over_1_mib_is_refused_unread(tmp_path):
    result = read_text(tmp_path, b" " * (MAX_INPUT_BYTES + 1))
    assert problems(result) == [f"file is {MAX_INPUT_BYTES + 1:,} bytes; the limit is {MAX_INPUT_BYTES:,} (not read)"]


def test_duplicate_keys(tmp_path):
    text = '{"student_id": "a", "student_id": "b", "answers": {}}'
    result = read_text(tmp_path, text)
    assert problems(result) == ["student_id: appears twice in the same object; keep one"]


def test_a_key_given_twice_deeper_is_named_by_its_whole_field(tmp_path):
    text = '{"student_id": "a", "answers": {"u": [1, 2, 3, 4], "loss": 0.3, "loss": 0.31}, "derivations": {"h": "ELU(u[j])", "h": "x"}}'
    assert problems(read_text(tmp_path, text)) == [
        "answers.loss: appears twice in the same object; keep one",
        "derivations.h: appears twice in the same object; keep one",
    ]


def test_answers_missing_or_not_an_object(tmp_path):
    assert problems(read_obj(tmp_path, {"student_id": "s"})) == ['answers: is missing; the file needs an "answers" object']
    assert problems(read_obj(tmp_path, {"student_id": "s", "answers": [1]}))[0].startswith("answers: expected an object")


def test_derivations_that_are_not_an_object(tmp_path):
    assert problems(read_obj(tmp_path, {"student_id": "s", "answers": RIGHT, "derivations": "u = vx"})) == [
        "derivations: expected an object (or null); got a string"
    ]


def test_every_problem_is_listed_not_only_the_first(tmp_path):
    obj = with_answer("u", [1.0, "x", 3.0, 4.0])
    obj["answers"]["o"] = True
    assert len(problems(read_obj(tmp_path, obj))) == 2


def test_a_thousand_problems_are_capped(tmp_path):
    obj = with_answer("u", [1.0, 2.0, 3.0, 4.0])
    obj["junk"] = [1.0] * 1000
    text = json.dumps(obj).replace("1.0, 1.0", "1e999, 1e999")
    assert len(problems(read_text(tmp_path, text))) <= 21


def test_a_missing_file(tmp_path):
    assert problems(read_submission(tmp_path / "nope.json", LAYOUT))[0].startswith("cannot read the file")


def test_load_submission_raises_an_input_error_naming_the_field(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(with_answer("loss", "x")))
    with pytest.raises(InputError, match=r"^answers\.loss: expected a number, got a string$"):
        load_submission(path, LAYOUT)


def test_reading_never_modifies_the_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(with_answer("loss", "x")))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    read_submission(path, LAYOUT)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_an_overflow_in_an_unknown_answer_key_is_reported_once(tmp_path):
    answers = {**RIGHT, "extra": [2.0], "u": [3.0, *RIGHT["u"][1:]]}
    text = json.dumps({"student_id": "s1", "answers": answers}).replace("[2.0]", "[1e999]").replace("[3.0,", "[1e999,")
    found = problems(read_text(tmp_path, text))
    assert found.count("answers.extra[0]: the number is too large to be finite") == 1
    assert "answers.u[0]: the number is too large to be finite" in found


def test_a_file_starting_with_two_byte_order_marks_says_so(tmp_path):
    found = problems(read_text(tmp_path, b"\xef\xbb\xbf\xef\xbb\xbf" + json.dumps(with_answer("u", RIGHT["u"])).encode()))
    assert found == ["not valid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig) at line 1 column 1"]


def test_a_fifo_named_like_an_answer_file_reads_as_empty_instead_of_waiting(tmp_path):
    import os
    import subprocess
    import sys

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "pipe.json")
    code = "import sys; from grader.submission import read_submission, layout_of; from grader.params import HW2; print(read_submission(sys.argv[1], layout_of(HW2)).problems[0])"
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "pipe.json")], capture_output=True, text=True, timeout=60)
    assert done.stdout == "the file is empty (no JSON in it)\n"


def test_an_input_error_survives_pickling_as_a_worker_sends_it():
    import pickle

    from grader.jsonio import NonFiniteError

    for error in (InputError("answers.u", "expected 4 numbers"), NonFiniteError(None, "NaN is not a number")):
        back = pickle.loads(pickle.dumps(error))
        assert (type(back), back.field, back.reason, str(back)) == (type(error), error.field, error.reason, str(error))


def test_an_overflow_is_reported_beside_another_problem(tmp_path):
    answers = {**RIGHT, "loss": "abc", "u": [3.0, *RIGHT["u"][1:]]}
    text = json.dumps({"student_id": "s1", "answers": answers}).replace("[3.0,", "[1e999,")
    assert sorted(problems(read_text(tmp_path, text))) == [
        "answers.loss: expected a number, got a string",
        "answers.u[0]: the number is too large to be finite",
    ]


# --- A batch of files read together gives what each file read alone gives -------------------------

from hypothesis import example, given, settings, strategies as st  # noqa: E402

from grader.submission import submission_from_bytes, submissions_from_bytes  # noqa: E402

_ODD_VALUES = st.sampled_from([None, 1, -2.5, 0.0, "0.31", True, [], [1.0], [[1.0]], {"a": 1}, 10**400, 2**70])


@st.composite
def _near_usual(draw) -> bytes:
    """A file near the usual form: the right answers, or blanks, with a few changes of every
    kind the batch check must hand over to the one-file path."""
    obj = {"student_id": "s1", "answers": json.loads(json.dumps(RIGHT))} if draw(st.booleans()) else blank()
    answers = obj["answers"]
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["entry", "answer", "row", "transpose", "loss", "drop", "unknown", "id", "derivation", "top", "text"]))
        key = draw(st.sampled_from(core.ANSWER_KEYS))
        value = answers.get(key)
        if kind == "entry" and isinstance(value, list) and value:
            row = value[draw(st.integers(0, len(value) - 1))]
            target = row if isinstance(row, list) and row else value
            target[draw(st.integers(0, len(target) - 1))] = copy.deepcopy(draw(_ODD_VALUES))
        elif kind == "answer":
            answers[key] = copy.deepcopy(draw(_ODD_VALUES))  # a value drawn twice must not be one object
        elif kind == "row" and isinstance(value, list) and value and isinstance(value[0], list):
            value[draw(st.integers(0, len(value) - 1))] = copy.deepcopy(draw(st.sampled_from([None, [1.0], [], "x"])))
        elif kind == "transpose" and key in ("grad_w", "grad_v") and isinstance(value, list) and all(isinstance(r, list) for r in value):
            answers[key] = [list(col) for col in zip(*value)]
        elif kind == "loss":
            answers["loss"] = copy.deepcopy(draw(st.sampled_from([[0.5], [None], ["a"], [[0.5]], [0.5, 0.5], None, 2])))
        elif kind == "drop":
            answers.pop(key, None)
        elif kind == "unknown":
            answers["extra"] = 1.0
        elif kind == "id":
            obj["student_id"] = draw(st.sampled_from(["", " s1", "s\t1", 7, None, "x" * 300]))
        elif kind == "derivation":
            obj["derivations"] = copy.deepcopy(draw(st.sampled_from([None, {}, {"u": "v @ x"}, {"u": 5}, {"zz": "x"}, "text", [1]])))
        elif kind == "top":
            obj[draw(st.sampled_from(["help", "note"]))] = copy.deepcopy(draw(st.sampled_from(["a note", 3, [1.0]])))
        else:  # the text itself
            return draw(st.sampled_from([b"", b"[]", b"{", json.dumps(obj).encode() + b" x", json.dumps(obj).replace('"s1"', '"s1", "student_id": "s2"', 1).encode()]))
    return json.dumps(obj).encode()


@given(st.lists(_near_usual(), min_size=1, max_size=8))
@example([  # one file of a wrong shape, another with a string, in the same answer
    json.dumps({"student_id": "s1", "answers": {**RIGHT, "grad_v": [[1.0, 2.0]] * 4}}).encode(),
    json.dumps({"student_id": "s2", "answers": {**RIGHT, "grad_v": [[1.0, "y", 2.0]] * 4}}).encode(),
    json.dumps({"student_id": "s3", "answers": RIGHT}).encode(),
])
@settings(max_examples=300, deadline=None)
def test_a_batch_of_files_reads_as_each_file_alone(batch):
    files = [(f"f{n}.json", data, n) for n, data in enumerate(batch)]
    together = submissions_from_bytes(files, LAYOUT)
    for (source, data, mtime), result in zip(files, together):
        alone = submission_from_bytes(data, LAYOUT, source=source, mtime_ns=mtime)
        assert type(result) is type(alone)
        if isinstance(alone, InvalidSubmission):
            assert (result.problems, result.student_id, result.warnings) == (alone.problems, alone.student_id, alone.warnings)
        else:
            assert (result.student_id, result.transposed, result.derivations, result.warnings) == (alone.student_id, alone.transposed, alone.derivations, alone.warnings)
            assert result.values.tobytes() == alone.values.tobytes()
        assert (result.source, result.mtime_ns) == (source, mtime)


def test_one_more_problem_is_counted_in_the_singular():
    from grader.submission import MAX_PROBLEMS

    assert InvalidSubmission([f"p{n}" for n in range(MAX_PROBLEMS + 1)]).problems[-1] == "... and 1 more problem"
    assert str(InvalidSubmission(["answers.u: first", "answers.h: second"])) == "answers.u: first (and 1 more problem)"
    assert str(InvalidSubmission(["a", "b", "c"])) == "a (and 2 more problems)"
