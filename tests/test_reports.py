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


def test_feedback_marks_follow_through(samples):
    assert "| z_1 | 4.6731 | follow-through: right for your earlier answers |" in feedback_for(book_of(samples), "2019345678")


def test_feedback_of_an_invalid_file_gives_the_reason(samples):
    text = feedback_for(book_of(samples), "2019890123")
    assert "could not be graded" in text and "`answers.loss: expected a number, got a string`" in text


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

    def fail(*args):
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are forked on Linux only")
def test_worker_processes_write_exactly_what_one_process_writes(samples, tmp_path, monkeypatch):
    from grader import grading

    monkeypatch.setenv("HWGEN_WORKERS", "1")
    write_reports(book_of(samples), tmp_path / "one")
    monkeypatch.setenv("HWGEN_WORKERS", "3")
    monkeypatch.setattr(grading, "PARALLEL_FROM", 1)
    monkeypatch.setattr(grading, "CHUNK", 2)
    write_reports(book_of(samples), tmp_path / "many")
    one = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*") if p.is_file()}
    many = {p.relative_to(tmp_path / "many"): p.read_bytes() for p in (tmp_path / "many").rglob("*") if p.is_file()}
    assert one == many


def test_the_summary_counts_statuses(samples):
    text = reports.summary(book_of(samples))
    assert text.startswith(f"{len(samples)} records: {len(samples) - 2} graded, 2 invalid, 0 missing;")


def test_graded_statuses_in_samples(samples):
    assert sum(r.status == GRADED for r in book_of(samples).reports) == len(samples) - 2
