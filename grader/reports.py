"""What ``hwgen grade`` writes: results.json, grades.csv, canvas.csv and feedback/<stem>.md.

Outputs depend on nothing but the gradebook (no timestamps, students by id), so the same inputs
give byte-identical files. Every file is written atomically (a temporary file renamed over
the old one): a reader sees the old content or the new, never half. The three gradebook files
are also flushed to disk one by one; the feedback files, thousands of them, are not, and a
feedback file whose content has not changed is left untouched.

Text a student controls (ids, file names, messages quoting their keys) goes into Markdown as a
code span or escaped, so that it shows literally and never becomes a link, HTML or a heading.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
from grader import __version__, core, mistakes, render
from grader.formatting import counted, fixed
from grader.quoting import shown_path
from grader.grading import (
    FOLLOW_CODE,
    GRADED,
    INVALID,
    MISSING,
    MISSING_CODE,
    MISTAKE_BASE,
    RIGHT_CODE,
    STATUS_NAMES,
    Gradebook,
    GradeReport,
    SCORE_DECIMALS,
    PartScore,
    credit_table,
    is_grade_output,
    mistake_of,
)
from grader.jsonio import AtomicFile, InputError, dumps, encode_text, write_atomic
from grader.parallel import map_chunks

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
_NO_VALUES = ("",) * len(CANVAS_COLUMNS)  # each column's value when the roster does not keep it
TITLE = "HW#2"
PART_TITLES = {
    "1": "Derivations of u, h, z and o",
    "2": "Forward pass and loss",
    "3": "Derivations of the gradients",
    "4": "Gradients dL/dw and dL/dv",
    "5": "One gradient-descent step",
}
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@functools.lru_cache(maxsize=4096)
def score_text(value: float | None) -> str:
    """A score as people write it: 38, 37.375, 34.84375 (at most SCORE_DECIMALS decimals, as
    grading keeps them); '' when not graded."""
    if value is None:
        return ""
    text = f"{value:.{SCORE_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _score(value: float | None) -> float | None:
    return None if value is None else round(value, SCORE_DECIMALS) + 0.0


# --- results.json ---------------------------------------------------------------------------------


def report_json(report: GradeReport) -> dict[str, Any]:
    """One student's record of results.json."""
    record: dict[str, Any] = {
        "student_id": report.student_id,
        **_head_json(report),
        "warnings": list(report.warnings),
        "source": _shown_source(report.source),
    }
    if report.other_sources:
        record["other_sources"] = list(map(shown_path, report.other_sources))
    if report.codes is not None and report.layout is not None:
        # Each answer not wholly right, with the status of every entry in the answer's shape;
        # a right answer is left out, which keeps the file a few kB per student.
        record["entries"] = _entries_json(report)
        record["transposed"] = _transposed_json(report)
    if report.derivations:
        record["derivations"] = _derivations_json(report)
    return record


def _head_json(report: GradeReport) -> dict[str, Any]:
    """A record's items from "status" to "errors": its scores and what was found."""
    return {
        "status": report.status,
        "score": _score(report.score),
        "max_score": _score(report.max_score),
        "parts": _parts_json(report.parts),
        "misconceptions": list(report.misconceptions),
        "follow_through": list(report.follow_through),
        "errors": list(report.errors),
    }


def _transposed_json(report: GradeReport) -> list[str]:
    return [key for key in core.ANSWER_KEYS if key in report.transposed]


def _derivations_json(report: GradeReport) -> dict[str, Any]:
    return {key: {"status": r.status, "mistake": r.mistake, "message": r.message} for key, r in report.derivations.items()}


# The caches of texts shared by a pattern of results are emptied when they reach this many
# entries: a class whose every student errs differently must not grow them without bound
# (a pattern's texts are some kB), and the common patterns are soon built again.
MAX_PATTERNS = 4096


def _remember(cache: dict, key: Any, value: Any) -> Any:
    if len(cache) >= MAX_PATTERNS:
        cache.clear()
    cache[key] = value
    return value


_ENTRIES_CACHE: dict[tuple[int, str, bytes], tuple[Any, str] | None] = {}  # see _answer_entries
_HEADS: dict[tuple, str] = {}  # see _record_pieces
_PARTS_CACHE: dict[tuple, dict[str, Any]] = {}


def _forget_patterns() -> None:
    """Empty the record caches: they serve one class at a time."""
    _ENTRIES_CACHE.clear()
    _PARTS_CACHE.clear()
    _HEADS.clear()
    _FEEDBACK_PATTERNS.clear()
    _ROW_PATTERNS.clear()


def _parts_json(parts: tuple) -> dict[str, Any]:
    """The "parts" of a record; most students share a few score patterns, so each is built once."""
    cached = _PARTS_CACHE.get(parts)
    if cached is None:
        built = {
            p.part: {"score": _score(p.score), "max_score": _score(p.max_score), "status": "graded" if p.graded else "ungraded"}
            for p in parts
        }
        cached = _remember(_PARTS_CACHE, parts, built)
    return cached


def _entries_json(report: GradeReport) -> dict[str, Any]:
    """The "entries" of a record: the statuses of each answer not wholly right."""
    out: dict[str, Any] = {}
    for key, entry in _answer_entries(report):
        out[key] = entry[0]
    return out


def _answer_entries(report: GradeReport) -> list[tuple[str, tuple[Any, str]]]:
    """(key, (statuses, their "key": [...] JSON text)) for each answer not wholly right, each
    built once per pattern of that answer's statuses (far fewer than patterns of whole rows)."""
    codes = report.codes.tobytes()  # int8: one byte an entry, so an answer's slice is its bytes
    layout = report.layout
    out = []
    for key, s in layout.slices.items():
        memo = (id(layout), key, codes[s])
        entry = _ENTRIES_CACHE.get(memo, _UNKNOWN)
        if entry is _UNKNOWN:
            entry = _remember(_ENTRIES_CACHE, memo, _build_answer_entries(key, memo[2], layout.shapes[key]))
        if entry is not None:
            out.append((key, entry))
    return out


_UNKNOWN = object()


def _build_answer_entries(key: str, codes: bytes, shape: tuple[int, ...]) -> tuple[Any, str] | None:
    if all(c == RIGHT_CODE for c in codes):
        return None
    names = [STATUS_NAMES[c] for c in codes]
    if not shape:
        value: Any = names[0]
    elif len(shape) == 1:
        value = names
    else:
        value = [names[r * shape[1] : (r + 1) * shape[1]] for r in range(shape[0])]
    return value, f"{_json_str(key)}: {_RECORD_ENCODER.encode(value)}"


_RECORD_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(", ", ": "))
_json_str = json.encoder.encode_basestring  # what _RECORD_ENCODER.encode gives for a str, without its overhead


def _json_strs(texts: Sequence[str]) -> str:
    """What _RECORD_ENCODER.encode gives for a list of strs."""
    return "[" + ", ".join(map(_json_str, texts)) + "]"


def record_line(report: GradeReport) -> str:
    """A report's record of results.json, on one line."""
    return _RECORD_ENCODER.encode(report_json(report))


def results_json(gradebook: Gradebook) -> str:
    """results.json: the settings, then one record per line, one line per student."""
    _forget_patterns()
    return _results_document(gradebook, _records_body([record_line(r) for r in gradebook.reports]))


def _records_body(lines: Sequence[str]) -> str:
    """Record lines as results.json's students list holds them (a piece of it, for some of them)."""
    return ",\n".join("    " + line for line in lines)


def _results_document(gradebook: Gradebook, body: str) -> str:
    """results.json around the students' records (``body``, see _records_body)."""
    return _results_start(gradebook) + ("[\n" + body + "\n  ]" if body else "[]") + _RESULTS_END


_RESULTS_END = "\n}\n"


def _results_start(gradebook: Gradebook) -> str:
    """results.json up to its list of students: the settings."""
    header = {
        "hwgen_version": __version__,
        "graded_against": "manifest" if gradebook.manifest_used else "HW#2 (no manifest)",
        "tolerance": gradebook.tolerance.to_json(),
        "follow_through": gradebook.follow_through,
        "rubric": gradebook.rubric.to_json(),
        "skipped": list(map(shown_path, gradebook.skipped)),
    }
    head = dumps(header).rstrip()
    assert head.endswith("}")
    return head[:-1].rstrip() + ',\n  "students": '


# --- CSV ------------------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula gets a leading '."""
    text = "" if text is None else text if type(text) is str else str(text)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


class _Line:
    """A file for csv.writer whose write gives back the line written: writerow then returns it."""

    @staticmethod
    def write(line: str) -> str:
        return line


_csv_writerow = csv.writer(_Line(), lineterminator="\r\n").writerow  # cells -> their CSV line, as _csv writes it


def _csv_line(cells: Sequence[str]) -> str:
    """Cells (strs) as their CSV line, as _csv writes it: joined with commas when no cell needs
    quotes (none holds a comma, a quote or a line break), which is every line of a usual class
    and five times faster than the writer."""
    line = ",".join(cells)
    if len(cells) > 1 and line.count(",") == len(cells) - 1 and '"' not in line and "\r" not in line and "\n" not in line:
        return line + "\r\n"
    return _csv_writerow(cells)


def grades_csv(gradebook: Gradebook) -> str:
    """grades.csv: one row per record (students by id, then unmatched files), part scores, total."""
    parts = gradebook.rubric.parts
    return _csv([_grades_header(parts), *(grades_row(r, parts) for r in gradebook.reports)])


def _grades_header(parts: tuple[str, ...]) -> list[str]:
    return ["student_id", "name", "status", *(f"part_{p}" for p in parts), "score", "max_score", "misconceptions", "follow_through", "source"]


def grades_row(report: GradeReport, parts: tuple[str, ...]) -> list[str]:
    """A report's row of grades.csv."""
    return [
        _cell(report.student_id),
        _cell(render.student_name(report.roster) or ""),
        report.status,
        *_part_cells(report.parts, parts),
        score_text(report.score),
        score_text(report.max_score),
        " ".join(report.misconceptions),
        " ".join(report.follow_through),
        _cell(_shown_source(report.source)),
    ]


@functools.lru_cache(maxsize=1024)
def _part_cells(scores: tuple[PartScore, ...], parts: tuple[str, ...]) -> tuple[str, ...]:
    """The part columns of grades.csv for one pattern of part scores (most students share a few)."""
    by_part = {p.part: score_text(p.score) for p in scores}
    return tuple(by_part.get(part, "") for part in parts)


def canvas_csv(gradebook: Gradebook, assignment: str) -> str:
    """canvas.csv: a Canvas gradebook import, one row per roster student, from the kept roster columns."""
    rows = (canvas_row(r) for r in gradebook.reports)
    return _csv([_canvas_header(assignment), *(row for row in rows if row is not None)])


def _canvas_header(assignment: str) -> list[str]:
    return [*CANVAS_COLUMNS, _cell(assignment)]


def canvas_row(report: GradeReport) -> list[str] | None:
    """A report's row of canvas.csv; None for a file matched to no student (no gradebook row).

    A roster without any of Canvas's id columns (ID, SIS User ID, SIS Login ID) would leave
    Canvas nothing to match on, so the student id goes into SIS User ID there.
    """
    if report.file_stem is None:
        return None
    return _canvas_cells(report.roster, report.student_id, report.score)


def _canvas_cells(roster: Mapping[str, str], student_id: str | None, score: float, name: str | None = None) -> list[str]:
    """A row of canvas.csv; ``name`` is render.student_name(roster) when already known."""
    student, canvas_id, sis_user, sis_login, section = map(roster.get, CANVAS_COLUMNS, _NO_VALUES)
    if not (canvas_id or sis_user or sis_login):
        sis_user = student_id or ""
    student = student or (render.student_name(roster) if name is None else name) or ""
    return [*map(_cell, (student, canvas_id, sis_user, sis_login, section)), score_text(score)]


class Row(NamedTuple):
    """What the gradebook files and the summary need of one report. It is built where the report
    is (a worker process, for a large class), so that only this travels back (a named tuple:
    twenty thousand of them are unpickled by the process that writes the files)."""

    student_id: str | None
    status: str  # "graded", "invalid" or "missing"
    score: float
    max_score: float
    misconceptions: tuple[str, ...]  # mistake ids named
    source: str | None  # the file graded
    other_sources: tuple[str, ...]  # older files for the same student, not graded
    record: str  # its line of results.json
    grades: str  # its line of grades.csv
    canvas: str | None  # its line of canvas.csv; None for a file matched to no student
    feedback_stem: str | None  # its feedback/<stem>.md; None for a file matched to no student


def _shown_source(source: str | None) -> str | None:
    """A report's file as the outputs show it (quoting.shown_path); None for no file."""
    return None if source is None else shown_path(source)


def _optional_line(cells: list[str] | None) -> str | None:
    return None if cells is None else _csv_line(cells)


def row_of(report: GradeReport, parts: tuple[str, ...]) -> Row:
    return Row(
        report.student_id, report.status, report.score, report.max_score, report.misconceptions,
        _shown_source(report.source), tuple(map(shown_path, report.other_sources)), record_line(report), _csv_line(grades_row(report, parts)), _optional_line(canvas_row(report)), report.file_stem,
    )


# --- A graded student's texts, without a report -----------------------------------------------------
#
# In a large class most graded students share a few patterns of results (all right, above all).
# Two students of one group with equal status codes, transposed answers and derivation results
# have equal reports except for who they are, their file, their values and their warnings; so
# the first of a pattern gets a GradeReport, its texts are built from it (the feedback template
# as feedback_markdown uses it, the record and grades.csv row from pieces kept per answer's
# statuses and per score pattern) and kept with a slot for each of those. Every other student
# of the pattern is then a few string operations. (A test holds these texts to the reference
# functions' own, record_line, row_of and feedback_markdown, student by student.)


class _RowPattern(NamedTuple):
    feedback: _FeedbackPattern
    record_head: str  # the record's items from "status" to "errors"
    record_tail: str  # its items after "source" and "other_sources", each after ", " (none: "")
    grades_middle: list[str]  # the grades.csv cells from status to follow_through
    score: float
    max_score: float
    misconceptions: tuple[str, ...]


_ROW_PATTERNS: dict[tuple, _RowPattern] = {}


def _row_pattern(report: GradeReport, gradebook: Gradebook, reveal: bool, parts: tuple[str, ...]) -> _RowPattern:
    head, tail = _record_pieces(report)
    return _RowPattern(
        # Built, not looked up in _FEEDBACK_PATTERNS: a new pattern of rows is one of feedback.
        _build_feedback_pattern(report, gradebook, _shared(gradebook), reveal),
        head,
        tail,
        grades_row(report, parts)[2:-1],
        report.score,
        report.max_score,
        report.misconceptions,
    )


def _record_pieces(report: GradeReport) -> tuple[str, str]:
    """A graded report's record line (record_line) cut around the items that differ between
    students of one pattern: its items from "status" to "errors", and those after "source" and
    "other_sources" (each after ", "). Put together from pieces kept per pattern of scores and
    per answer's statuses, rather than by encoding the whole record."""
    encode = _RECORD_ENCODER.encode
    memo = (report.status, report.score, report.max_score, report.parts, report.misconceptions, report.follow_through, report.errors)
    head = _HEADS.get(memo)
    if head is None:
        head = _remember(_HEADS, memo, ", ".join(f"{_json_str(k)}: {encode(v)}" for k, v in _head_json(report).items()))
    entries = ", ".join(entry[1] for _, entry in _answer_entries(report))
    tail = f', "entries": {{{entries}}}, "transposed": {_json_strs(_transposed_json(report))}'
    if report.derivations:
        tail += f', "derivations": {encode(_derivations_json(report))}'
    return head, tail


def graded_texts(group: Any, row: int, gradebook: Gradebook, reveal: bool, parts: tuple[str, ...]) -> tuple[Row, str | None]:
    """The Row and the feedback of row ``row`` of a graded group (grading.GroupGrades): what
    ``row_of(report)`` and ``feedback_markdown(report)`` give for its report, without building it
    (see above)."""
    _shared(gradebook)  # a new gradebook empties the pattern caches
    student = group.students[row]
    sub, extra = student.submission, student.extra
    derivations = group.derivations[row]
    key = (
        id(group.layout),
        group.codes[row].tobytes(),
        sub.transposed,
        tuple((k, r.status, r.fraction, r.mistake, r.message) for k, r in derivations.items()) if derivations else (),
        reveal,
    )
    pattern = _ROW_PATTERNS.get(key)
    if pattern is None:
        pattern = _remember(_ROW_PATTERNS, key, _row_pattern(group.report(row), gradebook, reveal, parts))
    sid, source, warnings = sub.student_id, shown_path(sub.source), group.warnings[row]
    others = tuple(map(shown_path, extra.get("other_sources", ())))
    roster = extra.get("roster", {})
    record = (
        f'{{"student_id": {_json_str(sid)}, {pattern.record_head}, "warnings": {_json_strs(warnings)}, "source": {_json_str(source)}'
        + (f', "other_sources": {_json_strs(others)}' if others else "")
        + pattern.record_tail
        + "}"
    )
    name = render.student_name(roster) or ""
    grades = _csv_line([_cell(sid), _cell(name), *pattern.grades_middle, _cell(source)])
    stem = extra.get("file_stem")
    canvas = None if stem is None else _csv_line(_canvas_cells(roster, sid, pattern.score, name))
    feedback = None
    if stem is not None:
        if reveal:
            shown = _shown(group.answers[row], group.expected[row], pattern.feedback, reveal)
        else:  # _shown, from the group's rows converted at once
            values, order = group.answer_row(row), pattern.feedback.order
            shown = values if order is None else [values[n] for n in order]
        feedback = pattern.feedback.template % (*_who(sid, source), *shown, _notes(warnings))
    row_ = Row(sid, GRADED, pattern.score, pattern.max_score, pattern.misconceptions, source, tuple(others), record, grades, canvas, stem)
    return row_, feedback


# --- feedback/<stem>.md ---------------------------------------------------------------------------


def _result_text(status: str) -> str:
    if status == "follow-through":
        return "follow-through: right for your earlier answers"
    if status == "mistake:transposed-gradient":
        return "transposed: the values are right, the layout is not"
    if status.startswith("mistake:"):
        return "wrong: " + status.removeprefix("mistake:")
    if status.startswith("cancelled:"):
        return "right, but only as two mistakes cancel: " + status.removeprefix("cancelled:")
    return status


_RESULT_TEXT = [_result_text(s) for s in STATUS_NAMES]


def _mark_mistakes(report: GradeReport, codes: list[int], where: dict[str, dict[str, list[str]]]) -> None:
    """Record in ``where`` the entries showing each named mistake: mistake -> answer -> names."""
    layout = report.layout
    hits = [n for n, code in enumerate(codes) if code >= MISTAKE_BASE]  # a few of the entries
    names = _flat_names(layout)
    at = 0
    for key in core.ANSWER_KEYS:
        stop = layout.slices[key].stop
        while at < len(hits) and hits[at] < stop:
            n = hits[at]
            where.setdefault(mistake_of(codes[n]), {}).setdefault(key, []).append(names[n])
            at += 1
        if key in report.transposed:
            where.setdefault("transposed-gradient", {}).setdefault(key, [])


@functools.lru_cache(maxsize=64)
def _flat_names(layout) -> tuple[str, ...]:
    """Each entry's name (layout.entry_names), in flat order."""
    return tuple(name for key in core.ANSWER_KEYS for name in layout.entry_names(key))


def _table_templates(layout, codes: bytes, part_of: tuple[str, ...], reveal: bool) -> dict[str, "_Template"]:
    """Each part's table for one pattern of status codes (int8, one byte an entry), with a
    %-placeholder for each value."""
    return {
        part: _part_table(layout, part_of, reveal, part, codes[where] if type(where) is slice else bytes(codes[n] for n in where))
        for part, (_, where, _) in _table_lines(layout, part_of, reveal).items()
    }


@functools.lru_cache(maxsize=4096)
def _part_table(layout, part_of: tuple[str, ...], reveal: bool, part: str, codes: bytes) -> "_Template":
    """One part's table for one pattern of its entries' status codes (most students share a
    few such patterns, even when their whole rows differ)."""
    head, _, line_table = _table_lines(layout, part_of, reveal)[part]
    return _Template(head + "\n".join([lines[code] for lines, code in zip(line_table, codes)]))


_SHOWN = "%.6g"  # a student's value in the feedback, as they would recognise it (formatted by %)
_MISSING_TEXT = "(missing)"


@functools.lru_cache(maxsize=64)
def _table_lines(layout, part_of: tuple[str, ...], reveal: bool) -> dict[str, tuple[str, slice | list[int], list[list[str]]]]:
    """Per part: the table's head; where its entries are in a student's flat row (a slice, or
    their indices when the rubric splits an answer's neighbours between parts); and for each
    entry its line for every status code, with a %-placeholder for each value. A student's
    table is then a join of lines chosen by their codes and one %-operation that formats their
    values (and expected values)."""
    heads: dict[str, str] = {}
    indices: dict[str, list[int]] = {}
    lines: dict[str, list[list[str]]] = {}
    for key, part in zip(core.ANSWER_KEYS, part_of):
        if part not in heads:
            heads[part] = "| Entry | Your answer | Expected | Result |\n|---|---:|---:|---|\n" if reveal else "| Entry | Your answer | Result |\n|---|---:|---|\n"
            indices[part], lines[part] = [], []
        for n, name in enumerate(layout.entry_names(key), start=layout.slices[key].start):
            by_code = []
            for code, result in enumerate(_RESULT_TEXT):
                shown = _MISSING_TEXT if code == MISSING_CODE else _SHOWN
                by_code.append(f"| {name.replace('%', '%%')} | {shown}{' | %s' if reveal else ''} | {result} |")
            indices[part].append(n)
            lines[part].append(by_code)
    tables = {}
    for part, head in heads.items():
        where = indices[part]
        contiguous = where == list(range(where[0], where[0] + len(where)))
        tables[part] = (head, slice(where[0], where[-1] + 1) if contiguous else where, lines[part])
    return tables


def _text(value: Any) -> str:
    """Text the student controls, as Markdown that shows it literally."""
    text = "" if value is None else str(value)
    return text if text.isalnum() and text.isascii() else render.md_escape(text)


def _code(text: str) -> str:
    """Text as a Markdown code span, which shows it literally; escaped when it cannot be one."""
    if text and "`" not in text and text.isprintable():
        return f"`{text}`"
    return _text(text)


_SHARED: dict[int, tuple[Gradebook, dict[str, str]]] = {}


def _shared(gradebook: Gradebook) -> dict[str, str]:
    """The text that is the same in every student's feedback (computed once per gradebook)."""
    cached = _SHARED.get(id(gradebook))
    if cached is not None and cached[0] is gradebook:
        return cached[1]
    credit = credit_table(gradebook.rubric, gradebook.follow_through)[FOLLOW_CODE]
    shared = {
        "tolerance": (
            f"An entry is right when {_code(gradebook.tolerance.describe())}, or when it agrees\n"
            "with your own earlier answers, where those are right, to within their rounding."
        ),
        "follow_through": (
            "An entry marked *follow-through* is wrong against the key but right for your own earlier\n"
            f"answers, so an early slip is not counted twice: it earns {_fraction_text(credit)} of its points."
        ),
    }
    _SHARED.clear()
    _SHARED[id(gradebook)] = (gradebook, shared)
    _FEEDBACK_PATTERNS.clear()  # built with the previous gradebook's settings
    _ROW_PATTERNS.clear()
    return shared


def feedback_markdown(report: GradeReport, gradebook: Gradebook, reveal: bool = False) -> str:
    """A student's feedback/<stem>.md: score, named mistakes explained, every entry's result.

    The expected values appear only with ``reveal``. Built with string operations and cached
    %-templates, not Jinja: it is written for every student of classes of tens of thousands.
    A graded student's document is a template shared by every student with the same pattern of
    results (see _feedback_pattern), filled with who they are, their values and their warnings.
    """
    if report.status == GRADED:
        pattern = _feedback_pattern(report, gradebook, reveal)
        shown = _shown(report.answers, report.expected, pattern, reveal) if _has_entries(report) else []
        return pattern.template % (*_who(report.student_id, report.source), *shown, _notes(report.warnings))
    out = [f"# {TITLE}: feedback for {_text(report.student_id)}", ""]
    max_score = score_text(report.max_score)
    if report.status == MISSING:
        out.append(f"No submission was found for you, so this assignment scores 0 out of {max_score}.")
    else:
        out += [f"Your file {_code(os.path.basename(report.source or ''))} could not be graded, so it scores 0 out of {max_score}:", ""]
        out += [f"- {_code(e)}" for e in report.errors]
        out += ["", "Fix the file and check its form with `hwgen check FILE` before submitting it again."]
    return "\n".join(out) + _notes(report.warnings) + "\n"


def _who(student_id: str | None, source: str | None) -> tuple[str, str]:
    """The student and their file's name, as a feedback document shows them."""
    # The file's name only: the instructor's folders are none of the student's business.
    return _text(student_id), _code(os.path.basename(source or ""))


def _notes(warnings: tuple[str, ...]) -> str:
    """The closing section on a file's warnings; empty when there are none."""
    if not warnings:
        return ""
    return "\n\n## Notes on your file\n\n" + "\n".join(f"- {_code(w)}" for w in warnings)


class _FeedbackPattern(NamedTuple):
    """The feedback shared by the graded students with one pattern of results."""

    template: str  # the document, with %-slots: student, file name, each value shown, notes
    order: list[int] | None  # the entries shown, in the document's order; None: all, in row order
    given: list[bool]  # for each entry in ``order``: was it given (with ``reveal``, shown with its expected value)


class _Template(str):
    """A piece of a feedback template that is a %-template already (a table): left unescaped."""


def _has_entries(report: GradeReport) -> bool:
    """Does the report hold its answers' entries? (A graded report built without them, by a
    library user, gets feedback without tables.)"""
    return report.codes is not None and report.layout is not None


def _pattern_key(report: GradeReport, reveal: bool) -> tuple:
    derivations = tuple((key, r.status, r.mistake, r.message) for key, r in report.derivations.items()) if report.derivations else ()
    codes = report.codes.tobytes() if _has_entries(report) else None
    return (id(report.layout), codes, report.parts, report.misconceptions, report.transposed, derivations, reveal)


_FEEDBACK_PATTERNS: dict[tuple, _FeedbackPattern] = {}


def _feedback_pattern(report: GradeReport, gradebook: Gradebook, reveal: bool) -> _FeedbackPattern:
    """The template of ``report``'s feedback, built once per pattern of results (the cache is
    emptied with every new gradebook, see _shared)."""
    shared = _shared(gradebook)
    key = _pattern_key(report, reveal)
    pattern = _FEEDBACK_PATTERNS.get(key)
    if pattern is None:
        pattern = _remember(_FEEDBACK_PATTERNS, key, _build_feedback_pattern(report, gradebook, shared, reveal))
    return pattern


def _build_feedback_pattern(report: GradeReport, gradebook: Gradebook, shared: dict[str, str], reveal: bool) -> _FeedbackPattern:
    codes = report.codes.tolist() if _has_entries(report) else []
    where: dict[str, dict[str, list[str]]] = {}
    if codes and (max(codes) >= MISTAKE_BASE or report.transposed):
        _mark_mistakes(report, codes, where)
    part_of = tuple(report.part_of[key] for key in core.ANSWER_KEYS) if codes else ()
    tables = _table_templates(report.layout, report.codes.tobytes(), part_of, reveal) if codes else {}
    if report.derivations:
        sections = _sections(report, gradebook, tables, where)
    else:  # most files: the sections' text depends on the scores alone, tables aside
        sections = [tables[piece[0]] if type(piece) is tuple else piece for piece in _plain_sections(report.parts, tuple(tables))]
    out = [_Template(f"# {TITLE}: feedback for %s"), "", _score_line(report.score, report.max_score, report.parts)]
    out += ["", _Template("Graded from %s. " + shared["tolerance"].replace("%", "%%"))]
    if gradebook.follow_through:
        out.append(shared["follow_through"])
    if report.misconceptions:
        out += ["", "## Mistakes to look at", ""]
        for m in report.misconceptions:
            found = where.get(m, {})
            out.append(f"- **{m}** ({_places(report, found)}): {_explanation(m, report, found)}")
    out += sections
    template = "\n".join([piece if type(piece) is _Template else piece.replace("%", "%%") for piece in out]) + "%s\n"
    # The values each table shows, in the document's order (see _shown).
    order = _table_order(report.layout, part_of, reveal, tuple(part.part for part in report.parts)) if codes else []
    if MISSING_CODE not in codes:
        given = [True] * len(order)
    else:
        given = [codes[n] != MISSING_CODE for n in order]
        if not reveal:
            order = [n for n, g in zip(order, given) if g]
            given = [True] * len(order)
    return _FeedbackPattern(template, None if order == _identity(len(codes)) else order, given)


@functools.lru_cache(maxsize=64)
def _table_order(layout, part_of: tuple[str, ...], reveal: bool, parts: tuple[str, ...]) -> list[int]:
    """The entries the tables show, in the document's order: the parts' order, each part's
    entries as its table lists them. (A list shared by the patterns: read, never changed.)"""
    lines = _table_lines(layout, part_of, reveal)
    order: list[int] = []
    for part in parts:
        if part in lines:
            where_in_row = lines[part][1]
            order += range(where_in_row.start, where_in_row.stop) if type(where_in_row) is slice else where_in_row
    return order


@functools.lru_cache(maxsize=64)
def _identity(count: int) -> list[int]:
    return list(range(count))


def _shown(answers: np.ndarray, expected_row: np.ndarray, pattern: _FeedbackPattern, reveal: bool) -> list:
    """The values a student's feedback tables show, in order: their own (a -0.0 as 0), each
    followed by the expected one with ``reveal`` (a missing entry shows the expected alone)."""
    values = (answers + 0.0).tolist()
    order = pattern.order
    if not reveal:
        return values if order is None else [values[n] for n in order]
    expected = expected_row.tolist()
    shown: list = []
    for n, given in zip(range(len(values)) if order is None else order, pattern.given):
        shown += (values[n], fixed(expected[n])) if given else (fixed(expected[n]),)
    return shown


def _sections(report: GradeReport, gradebook: Gradebook, tables: dict[str, str], where: dict[str, dict[str, list[str]]]) -> list[str]:
    """Each part's heading and body (its table, its derivations' results); records in ``where``
    the derivations showing a mistake."""
    sections = []
    for part in report.parts:
        table = tables.get(part.part)
        body = [table] if table is not None else []
        for key in gradebook.rubric.derivations.get(part.part, {}):
            result = report.derivations.get(key)
            if result is None:
                continue
            label = _derivation_label(key)
            outcome = result.status + (f" ({result.mistake})" if result.mistake else "")
            body.append(f"- {label}: {outcome}" + (f". {_text(result.message)}" if result.message else ""))
            if result.mistake:
                where.setdefault(result.mistake, {})[f"derivation {key}"] = [f"the derivation of {label}"]
        if not body and not part.graded:
            body = [_UNGRADED]
        sections += ["", _part_heading(part), "", *body]
    return sections


# True of every ungraded part: no derivations, blank ones, unknown keys only, or a problem
# whose activation the references are not written for (the notes at the end then say so).
_UNGRADED = "Not graded: no derivation of yours was graded here, so this part is left out of your maximum."


@functools.lru_cache(maxsize=1024)
def _plain_sections(parts: tuple[PartScore, ...], with_table: tuple[str, ...]) -> list[str | tuple[str]]:
    """_sections for a report without derivations, with (part,) where its table goes."""
    sections: list[str | tuple[str]] = []
    for part in parts:
        body = [(part.part,)] if part.part in with_table else [] if part.graded else [_UNGRADED]
        sections += ["", _part_heading(part), "", *body]
    return sections


@functools.lru_cache(maxsize=1024)
def _score_line(score: float, max_score: float, parts: tuple[PartScore, ...]) -> str:
    ungraded = [p.part for p in parts if not p.graded]
    return f"**Score: {score_text(score)} out of {score_text(max_score)}**" + (f" ({_parts_phrase(ungraded)} not graded)." if ungraded else ".")


@functools.lru_cache(maxsize=1024)
def _part_heading(part: PartScore) -> str:
    title = PART_TITLES.get(part.part, f"Part {_text(part.part)}")
    marks = f"{score_text(part.score)} / {score_text(part.max_score)}" if part.graded else "not graded"
    return f"## Part {_text(part.part)}: {title} ({marks})"


def _derivation_label(key: str) -> str:
    return {"grad_w": "dL/dw_kj", "grad_v": "dL/dv_ji", "u": "u_j", "h": "h_j", "z": "z_k", "o": "o_k", "loss": "L"}.get(key, key)


_QUANTITY_LABELS = {"loss": "L", "grad_w": "dL/dw", "grad_v": "dL/dv"}


def _places(report: GradeReport, found: dict[str, list[str]]) -> str:
    """Where a mistake shows: a whole answer by its name, or the entries of it."""
    places = []
    for key, names in found.items():
        if key.startswith("derivation "):
            places += names
            continue
        label = _QUANTITY_LABELS.get(key, key)
        entries = report.layout.slices[key].stop - report.layout.slices[key].start
        if key in report.transposed:
            rows, cols = report.layout.shapes[key]
            places.append(f"{label}, written as a {cols}x{rows} matrix instead of {rows}x{cols}")
        elif len(names) == entries or not names:
            places.append(f"all of {label}" if len(names) > 1 else label)
        else:
            places.append(", ".join(names))
    return "; ".join(places) or "a derivation"


def _explanation(mistake_id: str, report: GradeReport, found: dict[str, list[str]]) -> str:
    """The catalogue's sentence for the answer where the mistake shows first."""
    for key in found:
        for m in mistakes.CATALOGUE:
            if m.id == mistake_id and m.quantity == key:
                return m.explanation
    if mistake_id in mistakes.MISTAKE_IDS:
        return mistakes.explanation(mistake_id)
    for result in report.derivations.values():
        if result.mistake == mistake_id and result.message:
            return _text(result.message)
    return _text(mistake_id)


def _fraction_text(fraction: float) -> str:
    return "all" if fraction == 1.0 else f"{fraction:.0%}"


def _parts_phrase(parts: list[str]) -> str:
    if len(parts) == 1:
        return f"part {parts[0]}"
    return "parts " + ", ".join(parts[:-1]) + " and " + parts[-1]


# --- Writing ---------------------------------------------------------------------------------------


def _up_to_date(path: str, data: bytes, dir_fd: int | None = None) -> bool:
    """Does ``path`` (relative to ``dir_fd`` if given) hold exactly ``data``? (Non-blocking: a
    FIFO put there is never waited on.)"""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        return stat.S_ISREG(st.st_mode) and st.st_size == len(data) and os.read(fd, len(data) + 1) == data
    except OSError:
        return False
    finally:
        os.close(fd)


def _write_if_changed(path: str | os.PathLike, data: bytes, dir_fd: int | None = None) -> bool:
    """Atomically replace ``path`` with ``data`` unless it already holds exactly that; True if written.

    ``path`` is a file name in the folder open as ``dir_fd`` when that is given (no path to walk
    for each of thousands of files). The temporary file is named after the process, created
    exclusively with its final mode (no mkstemp, no chmod: for thousands of files every system
    call shows).
    """
    path = os.fspath(path)
    if _up_to_date(path, data, dir_fd):
        return False
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    fd = None
    for attempt in range(100):  # the name is taken (left by a crashed run of a process with our pid): another
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
            break
        except FileExistsError:
            tmp = os.path.join(folder, f".{name}.{os.getpid()}.{attempt + 1}.tmp")
    if fd is None:
        raise FileExistsError(f"no free temporary name beside {path}")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        raise
    return True


@dataclass(frozen=True)
class Written:
    """What write_reports wrote."""

    results: Path
    grades: Path
    canvas: Path
    feedback_dir: Path
    feedback_files: int  # feedback files for this run (written or already up to date)


def write_reports(
    gradebook: Gradebook,
    out_dir: str | os.PathLike,
    assignment: str = TITLE,
    reveal: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Written:
    """Write every output of a graded class under ``out_dir`` (see write_outputs)."""
    return write_outputs(gradebook, out_dir, gradebook.reports, _as_they_are, assignment, reveal, progress)[0]


def _as_they_are(reports: list[GradeReport]) -> list[GradeReport]:
    return reports


def write_outputs(
    context: Gradebook,
    out_dir: str | os.PathLike,
    items: Sequence[Any],
    make_reports: Callable[[list], list],
    assignment: str = TITLE,
    reveal: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[Written, list[Row]]:
    """Turn ``items`` into reports with ``make_reports`` (chunk by chunk, on every core for a
    large class) and write each one's feedback, then the gradebook files from the rows the
    chunks hand back; results.json last, so that it never describes feedback files that are not
    there yet. ``make_reports`` gives GradeReports, or (group, row) pairs of
    grading.complete_in_groups. ``context`` holds the settings (its own reports are not used).
    """
    def produce(folder: str, fresh: bool) -> Iterator[tuple[int, list[Row]]]:
        return map_chunks(report_chunk, list(items), (make_reports, context, reveal, folder, fresh))

    return write_gradebook(context, out_dir, produce, assignment, progress)


_FILES = ("results.json", "grades.csv", "canvas.csv")  # what a grade writes beside feedback/
_FEEDBACK_STAGING = ".feedback."  # the prefix of the folder a first run builds feedback/ in
# What an interrupted run can leave behind: the staging folder, and AtomicFile's temporary files.
_LEFT_BEHIND = (_FEEDBACK_STAGING, *(f".{name}." for name in _FILES))


def check_out_dir(out_dir: str | os.PathLike) -> None:
    """Refuse an output folder whose content hwgen grade did not write: a grade replaces
    results.json, grades.csv and canvas.csv there, and deletes feedback files no longer wanted,
    so only a new or empty folder, or an earlier output (its results.json says so), is taken."""
    out = Path(out_dir)
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(None, f"{out} is a file, not a folder")
    if all(entry.name.startswith(_LEFT_BEHIND) for entry in out.iterdir()):
        return
    if not is_grade_output(out / "results.json"):
        raise InputError(None, f"{out} is not empty and holds no results.json of hwgen grade; it is left alone: choose a new or empty folder")


def write_gradebook(
    context: Gradebook,
    out_dir: str | os.PathLike,
    produce: Callable[[str, bool], Iterable[tuple[int, list[Row]]]],
    assignment: str = TITLE,
    progress: Callable[[int], None] | None = None,
) -> tuple[Written, list[Row]]:
    """Every output under ``out_dir``: ``produce(folder, fresh)`` writes the feedback files in
    ``folder`` (see report_chunk) and yields, in the order of results.json, parts of the rows as
    (items done, rows); the gradebook files are written from them as they come."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    feedback_dir = out / "feedback"
    # A first run builds the feedback folder aside and renames it into place whole, so its files
    # need no rename each (half the cost of creating them); a later run replaces, file by file,
    # only those that changed.
    fresh = not feedback_dir.is_dir() or not any(feedback_dir.iterdir())
    target = Path(tempfile.mkdtemp(prefix=_FEEDBACK_STAGING, dir=out)) if fresh else feedback_dir
    _forget_patterns()
    rows: list[Row] = []
    results, grades, canvas = (out / name for name in _FILES)
    try:
        # The gradebook files are written as the rows come back, while the workers go on, each
        # into a temporary file put in place at the end (results.json last).
        with AtomicFile(grades) as grades_file, AtomicFile(canvas) as canvas_file, AtomicFile(results) as results_file:
            grades_file.write(_csv([_grades_header(context.rubric.parts)]))
            canvas_file.write(_csv([_canvas_header(assignment)]))
            results_file.write(_results_start(context))
            records = 0
            # Each chunk's feedback files are written where it is rendered (a worker process, for
            # a large class): the files are then created on every core, and never travel between them.
            for count, part in produce(os.fspath(target), fresh):
                rows += part
                grades_file.write("".join([row.grades for row in part]))
                canvas_file.write("".join([row.canvas for row in part if row.canvas is not None]))
                results_file.write(("[\n" if not records else ",\n") + _records_body([row.record for row in part]))
                records += len(part)
                if progress is not None:
                    progress(count)
            results_file.write(("\n  ]" if records else "[]") + _RESULTS_END)  # as _results_document ends it
            stems = {f"{row.feedback_stem}.md" for row in rows if row.feedback_stem is not None}
            if not fresh:
                _remove_stale(feedback_dir, stems)
            else:
                os.chmod(target, 0o755)  # mkdtemp makes it private; the folder is meant to be shared
                if feedback_dir.is_dir():
                    feedback_dir.rmdir()  # empty, as checked above
                os.rename(target, feedback_dir)
            grades_file.commit()
            canvas_file.commit()
            results_file.commit()
    finally:
        if fresh and target.exists():
            shutil.rmtree(target, ignore_errors=True)
    return Written(results, grades, canvas, feedback_dir, len(stems)), rows


def report_chunk(items: list, make_reports: Callable[[list], list], context: Gradebook, reveal: bool, folder: str, fresh: bool) -> list[Row]:
    """Each report of a chunk as its Row, its feedback file written in ``folder``: created
    when ``fresh`` (a new folder), else replaced only if its bytes changed."""
    parts = context.rubric.parts
    out = []
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)  # files are made relative to it
    try:
        for item in make_reports(items):
            if type(item) is tuple:  # (group, row): a graded student
                row, text = graded_texts(item[0], item[1], context, reveal, parts)
            else:
                row = row_of(item, parts)
                text = feedback_markdown(item, context, reveal) if item.file_stem is not None else None
            if text is not None:
                if fresh:
                    _create(row.feedback_stem + ".md", encode_text(text), folder_fd)
                else:
                    _write_if_changed(row.feedback_stem + ".md", encode_text(text), folder_fd)
            out.append(row)
    finally:
        os.close(folder_fd)
    return out


def _remove_stale(feedback_dir: Path, current: set[str]) -> None:
    """Delete feedback files of an earlier run for students who are not in this one, so the
    folder never holds feedback that results.json does not describe. A file hwgen did not
    write (a TA's notes.md, a link) is left alone: only one that opens as feedback does is ours."""
    for path in feedback_dir.glob("*.md"):
        if path.name not in current and not path.is_symlink() and _is_feedback(path):
            path.unlink(missing_ok=True)


_FEEDBACK_HEADING = f"# {TITLE}: feedback for ".encode()


def _is_feedback(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(_FEEDBACK_HEADING)) == _FEEDBACK_HEADING
    except OSError:
        return False


def _create(name: str, data: bytes, dir_fd: int) -> None:
    """A new file ``name`` in the folder open as ``dir_fd``, holding ``data``."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def summary(gradebook: Gradebook) -> str:
    """The closing paragraph of ``hwgen grade``: counts and the mean score."""
    return summary_of(gradebook.reports, gradebook.skipped)


def summary_of(records: Sequence[GradeReport | Row], skipped: Sequence[str] = ()) -> str:
    """summary, from reports or their rows."""
    graded = [r for r in records if r.status == GRADED]
    n_invalid, n_missing = sum(r.status == INVALID for r in records), sum(r.status == MISSING for r in records)
    if graded:
        mean = sum(r.score for r in graded) / len(graded)
        maxima = sorted({r.max_score for r in graded})
        if len(maxima) == 1:
            mean_text = f"mean score {mean:.2f} out of {score_text(maxima[0])}"
        else:  # some wrote derivations (graded) and some did not (left out of their maximum)
            percent = 100 * sum(r.score / r.max_score for r in graded if r.max_score) / len(graded)
            mean_text = f"mean score {mean:.2f} ({percent:.1f}% of each one's maximum)"
    else:
        mean_text = "no mean score, as nothing was graded"
    named = sum(bool(r.misconceptions) for r in graded)
    text = (
        f"{counted(len(records), 'record')}: {len(graded)} graded, {n_invalid} invalid, {n_missing} missing; "
        f"{mean_text}. {named} of the graded made a named mistake."
    )
    if skipped:
        text += f" Skipped {counted(len(skipped), 'file')} that {'is' if len(skipped) == 1 else 'are'} not .json."
    return text
