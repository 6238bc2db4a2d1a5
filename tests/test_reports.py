"""What `hwgen grade` writes: results.json, grades.csv, canvas.csv, feedback; atomic and repeatable."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from grader import reports
from grader.grading import GRADED, grade_files
from grader.manifest import Manifest, StudentRecord
from grader.params import HW2, answers_to_json, solve_one
from grader.reports import canvas_csv, feedback_markdown, grades_csv, results_json, write_reports

SAMPLES = Path(__file__).resolve().parent.parent / "submissions"


@pytest.fixture()
def samples(tmp_path, monkeypatch):
    """The shipped submissions copied under a temporary working folder (relative paths)."""
    shutil.copytree(SAMPLES, tmp_path / "submissions")
    monkeypatch.chdir(tmp_path)
    return sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "submissions").glob("*.json"))


def book_of(files, manifest=None, **kw):
    return grade_files(files, manifest, **kw)


def one_student(tmp_path, student_id: str, answers=None, roster=None):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"student_id": student_id, "answers": answers or answers_to_json(solve_one(HW2))}))
    manifest = Manifest("fp", (StudentRecord(student_id, "stem", HW2, roster or {}),))
    return book_of([str(path)], manifest)


# --- results.json ---------------------------------------------------------------------------------


def test_results_json_has_one_record_per_student_with_the_documented_fields(samples):
    data = json.loads(results_json(book_of(samples)))
    assert len(data["students"]) == len(samples)
    record = next(s for s in data["students"] if s["student_id"] == "2018170622")
    assert {"student_id", "status", "score", "max_score", "parts", "misconceptions", "follow_through", "errors", "source"} <= set(record)
    assert (record["score"], record["max_score"], record["misconceptions"]) == (38.0, 40.0, ["log10-loss"])
    assert record["parts"]["2"] == {"score": 8.0, "max_score": 10.0, "status": "graded"}


def test_results_json_carries_the_tolerance_and_version(samples):
    data = json.loads(results_json(book_of(samples)))
    assert data["tolerance"] == {"rtol": 0.01, "atol": 0.001, "sigfigs": None} and data["hwgen_version"]


def test_results_json_lists_each_entry_status_in_the_answer_shape(samples):
    data = json.loads(results_json(book_of(samples)))
    record = next(s for s in data["students"] if s["student_id"] == "2019456789")
    assert record["entries"]["grad_v"][1] == ["mistake:elu-derivative-one"] * 3


def test_results_json_leaves_out_answers_that_are_wholly_right(samples):
    data = json.loads(results_json(book_of(samples)))
    real = next(s for s in data["students"] if s["student_id"] == "2018170622")
    assert real["entries"] == {"loss": "mistake:log10-loss"}


def test_results_are_byte_identical_for_the_same_inputs(samples):
    assert results_json(book_of(samples)) == results_json(book_of(list(reversed(samples))))


# --- CSV ---------------------------------------------------------------------------------------------


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_grades_csv_has_part_scores_total_and_status(samples):
    table = rows(grades_csv(book_of(samples)))
    assert table[0] == ["student_id", "name", "status", "part_1", "part_2", "part_3", "part_4", "part_5", "score", "max_score", "misconceptions", "follow_through", "source"]
    real = next(r for r in table if r[0] == "2018170622")
    assert real[2:10] == ["graded", "", "8", "", "15", "15", "38", "40"]


def test_canvas_csv_has_canvas_columns_and_the_assignment(tmp_path):
    roster = {"Student": "Kim, Jihyun", "ID": "123", "SIS User ID": "2018170622", "SIS Login ID": "kim", "Section": "A"}
    table = rows(canvas_csv(one_student(tmp_path, "2018170622", roster=roster), "HW2 P1"))
    assert table == [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW2 P1"], ["Kim, Jihyun", "123", "2018170622", "kim", "A", "40"]]


def test_canvas_csv_without_canvas_ids_puts_the_student_id_in_sis_user_id(tmp_path):
    table = rows(canvas_csv(one_student(tmp_path, "s1"), "HW2"))
    assert table[1] == ["", "", "s1", "", "", "40"]


@pytest.mark.parametrize("text", ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)"])
def test_csv_cells_that_would_run_as_formulas_are_quoted(tmp_path, text):
    book = one_student(tmp_path, text, roster={"Student": text})
    assert rows(grades_csv(book))[1][0] == "'" + text
    assert rows(canvas_csv(book, text))[1][0] == "'" + text and rows(canvas_csv(book, text))[0][5] == "'" + text


def test_scores_are_plain_numbers_in_csv(tmp_path):
    answers = answers_to_json(solve_one(HW2))
    answers["grad_w"][0][0] = 99.0
    assert rows(grades_csv(one_student(tmp_path, "s", answers)))[1][8] == "39.0625"


# --- Feedback ----------------------------------------------------------------------------------------


def feedback_for(book, student_id: str, reveal=False) -> str:
    return feedback_markdown(next(r for r in book.reports if r.student_id == student_id), book, reveal)


def test_feedback_names_and_explains_the_mistake(samples):
    text = feedback_for(book_of(samples), "2018170622")
    assert "**log10-loss** (L): The loss was computed with log base 10" in text
    assert "| L | 0.1344 | wrong: log10-loss |" in text


def test_feedback_hides_the_expected_values_unless_revealed(samples):
    book = book_of(samples)
    assert "0.3095" not in feedback_for(book, "2018170622")
    assert "| L | 0.1344 | 0.3095 | wrong: log10-loss |" in feedback_for(book, "2018170622", reveal=True)


def test_feedback_tables_follow_a_rubric_that_moves_an_answer_to_another_part(samples):
    from grader.rubric import DEFAULT_RUBRIC, Rubric

    answers = {part: dict(points) for part, points in DEFAULT_RUBRIC.answers.items()}
    answers["5"]["loss"] = answers["2"].pop("loss")
    rubric = Rubric(answers, DEFAULT_RUBRIC.derivations, DEFAULT_RUBRIC.follow_through, DEFAULT_RUBRIC.mistake_credit)
    text = feedback_for(book_of(samples, rubric=rubric), "2018170622", reveal=True)
    part_2, part_5 = text.split("## Part 2")[1].split("## Part 3")[0], text.split("## Part 5")[1]
    assert "| L |" not in part_2 and "| L | 0.1344 | 0.3095 | wrong: log10-loss |\n| w_new_11 |" in part_5
    assert "| u_1 | 2 | 2.0000 | right |" in part_2


def test_feedback_shows_a_missing_entry_and_the_others_values(samples, tmp_path):
    answers = answers_to_json(solve_one(HW2))
    answers["u"][1] = None
    answers["loss"] = None
    book = one_student(tmp_path, "s1", answers)
    text = feedback_markdown(book.reports[0], book, reveal=True)
    assert "| u_2 | (missing) | -1.5000 | missing |" in text and "| L | (missing) | 0.3095 | missing |" in text
    assert "| u_1 | 2 | 2.0000 | right |" in text and "| u_3 | 4.7 | 4.7000 | right |" in text


def test_feedback_marks_follow_through(samples):
    assert "| z_1 | 4.6731 | follow-through: right for your earlier answers |" in feedback_for(book_of(samples), "2019345678")


def test_feedback_of_an_invalid_file_gives_the_reason(samples):
    text = feedback_for(book_of(samples), "2019890123")
    assert "could not be graded" in text and "`answers.loss: expected a number, got a string`" in text


def test_feedback_names_a_file_without_the_instructors_folders(samples):
    book = book_of([os.path.abspath(f) for f in samples])
    for student_id in ("2019890123", "2019345678"):  # an invalid file, a graded one
        text = feedback_for(book, student_id)
        assert os.getcwd() not in text and "submissions/" not in text


def test_feedback_of_a_missing_student(tmp_path):
    manifest = Manifest("fp", (StudentRecord("absent", "absent", HW2, {}),))
    book = book_of([], manifest)
    assert "No submission was found for you" in feedback_markdown(book.reports[0], book)


def test_student_text_in_feedback_cannot_become_markdown_or_html(tmp_path):
    book = one_student(tmp_path, "<img src=x>[a](b)")
    text = feedback_markdown(book.reports[0], book)
    assert re.search(r"(?<!\\)[<\[]", text.splitlines()[0]) is None


# --- Writing -------------------------------------------------------------------------------------------


def test_write_reports_writes_every_file(samples, tmp_path):
    written = write_reports(book_of(samples), tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["canvas.csv", "feedback", "grades.csv", "results.json"] and written.feedback_files == len(samples)


def test_no_temporary_files_are_left(samples, tmp_path):
    write_reports(book_of(samples), tmp_path / "out")
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]


def test_an_unchanged_feedback_file_is_not_rewritten(samples, tmp_path):
    book = book_of(samples)
    write_reports(book, tmp_path / "out")
    path = tmp_path / "out" / "feedback" / "2018170622.md"
    before = path.stat().st_ino
    write_reports(book, tmp_path / "out")
    assert path.stat().st_ino == before


def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "f.md"
    path.write_text("old")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        reports._write_if_changed(path, b"new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.md"]


def test_the_same_inputs_give_byte_identical_output_folders(samples, tmp_path):
    for out in ("a", "b"):
        write_reports(book_of(samples), tmp_path / out)
    files = {out: sorted(p.relative_to(tmp_path / out) for p in (tmp_path / out).rglob("*") if p.is_file()) for out in ("a", "b")}
    assert files["a"] == files["b"]
    for relative in files["a"]:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes()


def _folder(root: Path) -> dict:
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _many_workers(monkeypatch):
    from grader import parallel

    monkeypatch.setenv("HWGEN_WORKERS", "3")
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 1)
    monkeypatch.setattr(parallel, "CHUNK", 2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are forked on Linux only")
def test_worker_processes_write_exactly_what_one_process_writes(samples, tmp_path, monkeypatch):
    monkeypatch.setenv("HWGEN_WORKERS", "1")
    write_reports(book_of(samples), tmp_path / "one")
    _many_workers(monkeypatch)
    write_reports(book_of(samples), tmp_path / "many")
    assert _folder(tmp_path / "one") == _folder(tmp_path / "many")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are forked on Linux only")
def test_grading_a_class_in_workers_writes_what_grade_files_and_write_reports_write(samples, tmp_path, monkeypatch):
    from grader import pipeline

    write_reports(book_of(samples), tmp_path / "library")
    _many_workers(monkeypatch)
    written, rows = pipeline.grade_class(samples, None, tmp_path / "class")
    assert _folder(tmp_path / "library") == _folder(tmp_path / "class")
    assert [row.student_id for row in rows] == [r.student_id for r in book_of(samples).reports]
    assert written.feedback_files == len(samples)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are forked on Linux only")
def test_a_regrade_in_workers_replaces_changed_feedback_in_place(samples, tmp_path, monkeypatch):
    from grader import pipeline

    _many_workers(monkeypatch)
    pipeline.grade_class(samples, None, tmp_path / "out")
    changed = tmp_path / "out" / "feedback" / "2018170622.md"
    changed.write_text("edited by hand")
    pipeline.grade_class(samples, None, tmp_path / "out", pipeline.Settings(reveal=True))
    write_reports(book_of(samples), tmp_path / "library", reveal=True)
    assert _folder(tmp_path / "library") == _folder(tmp_path / "out")
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".tmp")]


def test_a_regrade_removes_feedback_of_students_gone_and_leaves_other_files(samples, tmp_path):
    write_reports(book_of(samples), tmp_path / "out")
    feedback = tmp_path / "out" / "feedback"
    gone = (feedback / "2018170622.md").read_bytes()
    (feedback / "someone-gone.md").write_bytes(gone)  # feedback of an earlier run's student
    (feedback / "ta_notes.md").write_text("# Notes\nCheck 2018170622 by hand.\n")
    write_reports(book_of(samples), tmp_path / "out")
    assert not (feedback / "someone-gone.md").exists()
    assert (feedback / "ta_notes.md").read_text() == "# Notes\nCheck 2018170622 by hand.\n"


def test_the_summary_counts_statuses(samples):
    text = reports.summary(book_of(samples))
    assert text.startswith(f"{len(samples)} records: {len(samples) - 2} graded, 2 invalid, 0 missing;")


def test_the_summary_of_one_record_and_one_skipped_file_is_in_the_singular(samples):
    text = reports.summary_of(book_of(samples[:1]).reports, ["notes.txt"])
    assert text.startswith("1 record: 1 graded, 0 invalid, 0 missing;")
    assert text.endswith(" Skipped 1 file that is not .json.")


def test_graded_statuses_in_samples(samples):
    assert sum(r.status == GRADED for r in book_of(samples).reports) == len(samples) - 2


def test_a_graded_report_built_without_entries_gets_feedback_without_tables():
    from grader.grading import Gradebook, GradeReport, PartScore
    from grader.rubric import DEFAULT_RUBRIC
    from grader.tolerance import Tolerance

    report = GradeReport(student_id="x", status=GRADED, score=5.0, max_score=10.0, parts=(PartScore("2", 5.0, 10.0),), source="in/x.json")
    text = feedback_markdown(report, Gradebook((report,), Tolerance(), DEFAULT_RUBRIC, True, True))
    assert "**Score: 5 out of 10**." in text and "Graded from `x.json`." in text and "| Entry |" not in text


def test_a_replacement_finds_a_free_temporary_name(tmp_path):
    (tmp_path / f".f.md.{os.getpid()}.tmp").mkdir()  # in the way, and not removable as a file
    path = tmp_path / "f.md"
    path.write_text("old")
    assert reports._write_if_changed(path, b"new")
    assert path.read_bytes() == b"new"


from hypothesis import given, strategies as st  # noqa: E402


@given(st.lists(st.text(alphabet=st.sampled_from(["a", ",", '"', "\r", "\n", " ", "é", "\t", "="]), max_size=4), min_size=1, max_size=5))
def test_a_csv_line_is_what_the_csv_writer_writes(cells):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    assert reports._csv_line(cells) == buffer.getvalue()
