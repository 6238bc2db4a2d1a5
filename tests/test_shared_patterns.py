"""A graded student's texts built from their pattern of results (reports.graded_texts) are the
texts their own report gives (row_of, feedback_markdown), student by student.

Students are given results that many share (all right, rounded, one mistake) and results few
share (slips, blanks, transposed gradients, derivations right and wrong, warnings, two files),
so that patterns are both built and reused, and each student's texts are compared with those
of a report whose patterns were built for it alone.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from grader import derivations, grading, reports, variants
from grader.grading import GRADED, Gradebook, GroupGrades
from grader.manifest import Manifest, StudentRecord
from grader.params import answers_to_json, solve_one
from grader.rubric import DEFAULT_RUBRIC
from grader.tolerance import Tolerance

KINDS = (
    "right", "sig3", "log10", "sign", "slip", "blank", "transposed", "transposed-sign",
    "unknown-key", "derivations", "wrong-derivation", "minus-zero",
)


def _sig3(value):
    return float(f"{value:.3g}")


def _answers(params, kind: str, k: int) -> dict:
    answers = answers_to_json(solve_one(params))
    rounded = {key: np.round(np.asarray(value), 4).tolist() for key, value in answers.items()}
    if kind == "sig3":
        return {key: np.vectorize(_sig3)(np.asarray(value)).tolist() for key, value in answers.items()}
    if kind == "log10":
        rounded["loss"] = round(answers["loss"] / np.log(10), 4)
    elif kind == "sign":
        rounded["grad_w"] = (-np.asarray(answers["grad_w"])).round(4).tolist()
    elif kind == "slip":
        rounded["u"][k % 4] += 0.5
    elif kind == "blank":
        rounded["v_new"] = None
        rounded["h"][k % 4] = None
    elif kind == "transposed":
        rounded["grad_w"] = np.asarray(rounded["grad_w"]).T.tolist()
    elif kind == "transposed-sign":  # the same codes as "sign": only being transposed tells them apart
        rounded["grad_w"] = (-np.asarray(answers["grad_w"])).round(4).T.tolist()
    elif kind == "minus-zero":
        rounded["grad_v"][2] = [-0.0, -0.0, -0.0]
    return rounded


def _submission(student_id: str, params, kind: str, k: int) -> dict:
    obj = {"student_id": student_id, "answers": _answers(params, kind, k)}
    if kind == "unknown-key":
        obj["comment"] = "50% sure"
    if kind == "derivations":
        obj["derivations"] = dict(derivations.REFERENCE)
    if kind == "wrong-derivation":
        obj["derivations"] = {**derivations.REFERENCE, "h": "u_j"}
    return obj


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """A manifest class of 72 students, every kind six times, one with two files and one missing."""
    folder = tmp_path_factory.mktemp("class")
    ids = [f"s{k:03d}" if k % 7 else f"=s{k:03d} % x" for k in range(len(KINDS) * 6)]
    params = variants.variants("pattern-seed", ids)
    records = [StudentRecord(sid, f"f{n}", p, {"Student": f"Student {n}%"} if n % 2 else {}) for n, (sid, p) in enumerate(zip(ids, params))]
    for n, (sid, p) in enumerate(zip(ids[:-1], params)):  # the last hands in nothing
        (folder / f"{n}.json").write_text(json.dumps(_submission(sid, p, KINDS[n % len(KINDS)], n)))
    (folder / "again.json").write_text(json.dumps(_submission(ids[0], params[0], "sig3", 0)))
    os.utime(folder / "again.json", ns=(2 * 10**18, 2 * 10**18))
    files, _ = grading.collect_files([folder])
    manifest = Manifest("fp", tuple(records))
    return grading.assign(grading.read_files(files, manifest), manifest, DEFAULT_RUBRIC)


@pytest.mark.parametrize("reveal", [False, True])
@pytest.mark.parametrize("follow_through", [True, False])
def test_graded_texts_are_the_texts_of_the_students_own_report(graded_class, reveal, follow_through):
    tolerance = Tolerance()
    gradebook = Gradebook((), tolerance, DEFAULT_RUBRIC, follow_through, True)
    parts = DEFAULT_RUBRIC.parts
    graded = [item for item in grading.complete_in_groups(graded_class, tolerance, DEFAULT_RUBRIC, follow_through) if type(item) is tuple]
    assert len(graded) == len(KINDS) * 6 - 1
    reports._forget_patterns()
    shared = [reports.graded_texts(group, row, gradebook, reveal, parts) for group, row in graded]
    assert len(reports._ROW_PATTERNS) < len(graded)  # some patterns were reused
    for (group, row), (row_texts, feedback) in zip(graded, shared):
        reports._forget_patterns()  # the reference builds its patterns for this student alone
        report = group.report(row)
        assert report.status == GRADED
        assert row_texts == reports.row_of(report, parts)
        assert feedback == reports.feedback_markdown(report, gradebook, reveal)


def test_a_record_is_the_encoded_report_json(graded_class):
    """record_line's pieces (see reports._row_pattern) put together as the encoder does."""
    gradebook = Gradebook((), Tolerance(), DEFAULT_RUBRIC, True, True)
    for group, row in (item for item in grading.complete_in_groups(graded_class, Tolerance(), DEFAULT_RUBRIC, True) if type(item) is tuple):
        texts, _ = reports.graded_texts(group, row, gradebook, False, DEFAULT_RUBRIC.parts)
        assert json.loads(texts.record) == json.loads(json.dumps(reports.report_json(group.report(row))))


def test_groups_hold_a_row_per_student(graded_class):
    for group, row in (item for item in grading.complete_in_groups(graded_class, Tolerance(), DEFAULT_RUBRIC, True) if type(item) is tuple):
        assert isinstance(group, GroupGrades)
        assert group.codes.shape == group.answers.shape == group.expected.shape == (len(group.students), group.layout.size)
        assert 0 <= row < len(group.students)


def test_pattern_caches_stay_bounded(graded_class, monkeypatch):
    monkeypatch.setattr(reports, "MAX_PATTERNS", 3)
    gradebook = Gradebook((), Tolerance(), DEFAULT_RUBRIC, True, True)
    graded = [item for item in grading.complete_in_groups(graded_class, Tolerance(), DEFAULT_RUBRIC, True) if type(item) is tuple]
    reports._forget_patterns()
    texts = [reports.graded_texts(group, row, gradebook, False, DEFAULT_RUBRIC.parts) for group, row in graded]
    assert len(reports._ROW_PATTERNS) <= 3 and len(reports._FEEDBACK_PATTERNS) <= 3
    reports._forget_patterns()
    monkeypatch.setattr(reports, "MAX_PATTERNS", 4096)
    assert texts == [reports.graded_texts(group, row, gradebook, False, DEFAULT_RUBRIC.parts) for group, row in graded]
