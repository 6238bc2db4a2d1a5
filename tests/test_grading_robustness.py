"""Cases found by an adversarial review: a hostile file never stops the class, and a mistake
made alongside a slip is still named."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner

from grader import grading
from grader.cli import cli
from grader.params import HW2, answers_to_json, solve_one

from test_grading import grade_answers

SUBMISSION_DIR = "in"


def grade_folder(tmp_path, files: dict[str, str]) -> dict:
    folder = tmp_path / SUBMISSION_DIR
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["grade", str(folder), "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))["students"]
    return {r["source"].rsplit("/", 1)[-1]: r for r in records}


def right_file(student_id: str) -> str:
    return json.dumps({"student_id": student_id, "answers": answers_to_json(solve_one(HW2))})


def test_a_lone_surrogate_in_the_student_id_makes_that_file_invalid_not_the_run_fail(tmp_path):
    records = grade_folder(tmp_path, {"bad.json": '{"student_id": "a\\ud800b", "answers": {}}', "ok.json": right_file("ok")})
    assert records["bad.json"]["status"] == "invalid"
    assert records["ok.json"]["score"] == 40


def test_a_lone_surrogate_in_a_key_name_makes_that_file_invalid_not_the_run_fail(tmp_path):
    records = grade_folder(tmp_path, {"bad.json": '{"student_id": "b", "answers": {"\\udc00": 1}}', "ok.json": right_file("ok")})
    assert records["bad.json"]["status"] == "invalid"
    assert records["ok.json"]["status"] == "graded"


def test_a_control_character_in_the_student_id_is_refused(tmp_path):
    records = grade_folder(tmp_path, {"bad.json": '{"student_id": "x\\u0000y", "answers": {}}'})
    assert records["bad.json"]["errors"] == ["student_id: contains a control character (\\x00): 'x\\x00y'"]


def test_a_surrogate_pair_is_ordinary_text(tmp_path):
    records = grade_folder(tmp_path, {"ok.json": right_file("ok\U0001f600")})
    assert records["ok.json"]["status"] == "graded"


def elu_derivative_one_answers() -> dict:
    """HW#2 to 4 decimals with ELU'(u_2) taken as 1: row 2 of dL/dv is dL/dh_2 x."""
    answers = json.loads(json.dumps(answers_to_json(solve_one(HW2))))
    dh2 = -0.1597
    answers["grad_v"][1] = [round(dh2 * x, 4) for x in (1.0, 1.5, -0.5)]
    return answers


def test_elu_derivative_one_is_named_when_made_cleanly():
    assert "elu-derivative-one" in grade_answers(HW2, elu_derivative_one_answers()).misconceptions


def test_elu_derivative_one_is_named_alongside_a_slip_in_one_of_its_entries():
    answers = elu_derivative_one_answers()
    answers["grad_v"][1][2] = 0.0892  # a copying slip: the mistake gives 0.0799
    assert "elu-derivative-one" in grade_answers(HW2, answers).misconceptions


def test_a_lone_coincident_entry_does_not_name_a_mistake():
    answers = json.loads(json.dumps(answers_to_json(solve_one(HW2))))
    answers["grad_v"][0][0] = -answers["grad_v"][0][0]  # one sign slip: o* - o flips every entry
    assert "target-minus-output" not in grade_answers(HW2, answers).misconceptions


def test_a_nan_in_an_unknown_key_makes_the_file_invalid_as_a_1e999_does(tmp_path):
    records = grade_folder(tmp_path, {"f.json": '{"student_id": "n1", "scratch": NaN, "answers": {"u": [2.0, -1.5, 4.7, 0.2]}}'})
    assert (records["f.json"]["status"], records["f.json"]["score"]) == ("invalid", 0)
    assert records["f.json"]["errors"] == ["scratch: NaN, which is not a finite number (JSON allows only finite numbers)"]
    assert records["f.json"]["warnings"] == ["scratch: unknown key, ignored"]


def test_a_nan_in_an_answer_makes_the_file_invalid_naming_the_entry(tmp_path):
    records = grade_folder(tmp_path, {"f.json": '{"student_id": "n2", "answers": {"u": [2.0, NaN, 4.7, 0.2]}}'})
    assert records["f.json"]["status"] == "invalid"
    assert records["f.json"]["errors"][0].startswith("answers.u[1]: expected a number, got NaN")


def test_a_first_run_leaves_no_staging_folder_and_a_readable_feedback_folder(tmp_path):
    grade_folder(tmp_path, {"ok.json": right_file("ok")})
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["canvas.csv", "feedback", "grades.csv", "results.json"]
    assert (out / "feedback").stat().st_mode & 0o777 == 0o755
    assert [p.name for p in (out / "feedback").iterdir()] == ["ok.md"]


def test_a_second_run_into_the_same_folder_gives_the_same_bytes(tmp_path):
    grade_folder(tmp_path, {"ok.json": right_file("ok")})
    first = (tmp_path / "out" / "feedback" / "ok.md").read_bytes()
    result = CliRunner().invoke(cli, ["grade", str(tmp_path / SUBMISSION_DIR), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0
    assert (tmp_path / "out" / "feedback" / "ok.md").read_bytes() == first


def test_regrading_fewer_students_into_the_same_folder_removes_their_old_feedback(tmp_path):
    grade_folder(tmp_path, {"a.json": right_file("a"), "b.json": right_file("b")})
    (tmp_path / SUBMISSION_DIR / "b.json").unlink()
    result = CliRunner().invoke(cli, ["grade", str(tmp_path / SUBMISSION_DIR), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out" / "feedback").iterdir()) == ["a.md"]


def test_a_manifest_with_a_huge_weight_is_refused_naming_it(tmp_path):
    from grader.grading import load_class_manifest
    from grader.jsonio import InputError
    from grader.manifest import Manifest, StudentRecord

    Manifest("f", (StudentRecord("a", "a", HW2),)).write(tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text().replace("[1.0, 1.5, -0.5]", "[1e300, 1.5, -0.5]", 1)
    (tmp_path / "m.json").write_text(text)
    try:
        load_class_manifest(tmp_path / "m.json")
    except InputError as exc:
        assert str(exc) == "students[0].params.x: has a number larger than 1e+06 in size"
    else:
        raise AssertionError("a manifest with x = 1e300 was accepted")


def test_a_folder_that_cannot_be_listed_is_reported_not_passed_over_in_silence(tmp_path, monkeypatch):
    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "a.json").write_text("{}")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "b.json").write_text("{}")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.path.basename(os.fspath(path)) == "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    unreadable: list[str] = []
    files, _ = grading.collect_files([tmp_path], unreadable=unreadable)
    assert files == [str(tmp_path / "open" / "a.json")]
    assert unreadable == [f"{tmp_path / 'locked'}: Permission denied"]
