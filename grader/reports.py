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
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from grader import __version__, core, mistakes, render
from grader.formatting import fixed
from grader.grading import (
    FOLLOW_CODE,
    chunked_map,
    GRADED,
    INVALID,
    MISSING,
    MISTAKE_BASE,
    RIGHT_CODE,
    STATUS_NAMES,
    Gradebook,
    GradeReport,
    credit_table,
)
from grader.jsonio import dumps, encode_text, write_atomic

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
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
    """A score as people write it: 38, 37.375 (at most 4 decimals); '' when not graded."""
    if value is None:
        return ""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _score(value: float | None) -> float | None:
    return None if value is None else round(value, 4) + 0.0


_STATUS_ARRAY = np.array(STATUS_NAMES, dtype=object)

# --- results.json ---------------------------------------------------------------------------------


def report_json(report: GradeReport) -> dict[str, Any]:
    """One student's record of results.json."""
    record: dict[str, Any] = {
        "student_id": report.student_id,
        "status": report.status,
        "score": _score(report.score),
        "max_score": _score(report.max_score),
        "parts": _parts_json(report.parts),
        "misconceptions": list(report.misconceptions),
        "follow_through": list(report.follow_through),
        "errors": list(report.errors),
        "warnings": list(report.warnings),
        "source": report.source,
    }
    if report.other_sources:
        record["other_sources"] = list(report.other_sources)
    if report.codes is not None and report.layout is not None:
        # Each answer not wholly right, with the status of every entry in the answer's shape;
        # a right answer is left out, which keeps the file a few kB per student.
        record["entries"] = _entries_json(report)
        record["transposed"] = [key for key in core.ANSWER_KEYS if key in report.transposed]
    if report.derivations:
        record["derivations"] = {
            key: {"status": r.status, "mistake": r.mistake, "message": r.message} for key, r in report.derivations.items()
        }
    return record


_ENTRIES_CACHE: dict[tuple[int, bytes], dict[str, Any]] = {}
_PARTS_CACHE: dict[tuple, dict[str, Any]] = {}


def _parts_json(parts: tuple) -> dict[str, Any]:
    """The "parts" of a record; most students share a few score patterns, so each is built once."""
    cached = _PARTS_CACHE.get(parts)
    if cached is None:
        cached = _PARTS_CACHE[parts] = {
            p.part: {"score": _score(p.score), "max_score": _score(p.max_score), "status": "graded" if p.graded else "ungraded"}
            for p in parts
        }
    return cached


def _entries_json(report: GradeReport) -> dict[str, Any]:
    """The "entries" of a record, built once per pattern of statuses (most are all right)."""
    memo = (id(report.layout), report.codes.tobytes())
    cached = _ENTRIES_CACHE.get(memo)
    if cached is None:
        cached = _ENTRIES_CACHE[memo] = _build_entries_json(report)
    return cached


def _build_entries_json(report: GradeReport) -> dict[str, Any]:
    codes = report.codes
    if not (codes != RIGHT_CODE).any():
        return {}
    names = _STATUS_ARRAY[codes]
    out = {}
    for key, s in report.layout.slices.items():
        if (codes[s] != RIGHT_CODE).any():
            shape = report.layout.shapes[key]
            out[key] = names[s].reshape(shape).tolist() if shape else names[s.start]
    return out


def results_json(gradebook: Gradebook) -> str:
    """results.json: the settings, then one record per line, one line per student."""
    header = {
        "hwgen_version": __version__,
        "graded_against": "manifest" if gradebook.manifest_used else "HW#2 (no manifest)",
        "tolerance": gradebook.tolerance.to_json(),
        "follow_through": gradebook.follow_through,
        "rubric": gradebook.rubric.to_json(),
        "skipped": list(gradebook.skipped),
    }
    head = dumps(header).rstrip()
    assert head.endswith("}")
    _ENTRIES_CACHE.clear()
    _PARTS_CACHE.clear()
    lines = [json.dumps(report_json(r), ensure_ascii=False, allow_nan=False, separators=(", ", ": ")) for r in gradebook.reports]
    students = "[\n" + ",\n".join("    " + line for line in lines) + "\n  ]" if lines else "[]"
    return head[:-1].rstrip() + ',\n  "students": ' + students + "\n}\n"


# --- CSV ------------------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula gets a leading '."""
    text = "" if text is None else str(text)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def grades_csv(gradebook: Gradebook) -> str:
    """grades.csv: one row per record (students by id, then unmatched files), part scores, total."""
    parts = gradebook.rubric.parts
    header = ["student_id", "name", "status", *(f"part_{p}" for p in parts), "score", "max_score", "misconceptions", "follow_through", "source"]
    rows = [header]
    for r in gradebook.reports:
        scores = {p.part: score_text(p.score) for p in r.parts}
        rows.append(
            [
                _cell(r.student_id),
                _cell(render.student_name(dict(r.roster)) or ""),
                r.status,
                *(scores.get(p, "") for p in parts),
                score_text(r.score),
                score_text(r.max_score),
                " ".join(r.misconceptions),
                " ".join(r.follow_through),
                _cell(r.source),
            ]
        )
    return _csv(rows)


def canvas_csv(gradebook: Gradebook, assignment: str) -> str:
    """canvas.csv: a Canvas gradebook import, one row per roster student, from the kept roster columns.

    A roster without any of Canvas's id columns (ID, SIS User ID, SIS Login ID) would leave
    Canvas nothing to match on, so the student id goes into SIS User ID there.
    """
    rows = [[*CANVAS_COLUMNS, _cell(assignment)]]
    for r in gradebook.reports:
        if r.file_stem is None:  # a file matched to no student has no gradebook row
            continue
        roster = dict(r.roster)
        cells = {column: roster.get(column, "") for column in CANVAS_COLUMNS}
        cells["Student"] = cells["Student"] or render.student_name(roster) or ""
        if not any(cells[c] for c in ("ID", "SIS User ID", "SIS Login ID")):
            cells["SIS User ID"] = r.student_id or ""
        rows.append([*(_cell(cells[c]) for c in CANVAS_COLUMNS), score_text(r.score)])
    return _csv(rows)


# --- feedback/<stem>.md ---------------------------------------------------------------------------


def _result_text(status: str) -> str:
    if status == "follow-through":
        return "follow-through: right for your earlier answers"
    if status == "mistake:transposed-gradient":
        return "transposed: the values are right, the layout is not"
    if status.startswith("mistake:"):
        return "wrong: " + status.removeprefix("mistake:")
    return status


_RESULT_TEXT = [_result_text(s) for s in STATUS_NAMES]


def _tables(report: GradeReport, reveal: bool, where: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    """Each part's Markdown table of entries, as lines; records in ``where`` the entries showing
    each mistake (mistake id -> answer key -> entry names)."""
    tables: dict[str, list[str]] = {}
    layout = report.layout
    codes_row, answers_row = report.codes.tolist(), report.answers.tolist()
    expected_row = report.expected.tolist() if reveal else None
    for key in core.ANSWER_KEYS:
        part = report.part_of[key]
        lines = tables.get(part)
        if lines is None:
            head = ("| Entry | Your answer | Expected | Result |", "|---|---:|---:|---|") if reveal else ("| Entry | Your answer | Result |", "|---|---:|---|")
            lines = tables[part] = list(head)
        for n, name in enumerate(layout.entry_names(key), start=layout.slices[key].start):
            code, answer = codes_row[n], answers_row[n]
            shown = "(missing)" if answer != answer else f"{answer + 0.0:.6g}"
            if reveal:
                lines.append(f"| {name} | {shown} | {fixed(expected_row[n])} | {_RESULT_TEXT[code]} |")
            else:
                lines.append(f"| {name} | {shown} | {_RESULT_TEXT[code]} |")
            if code >= MISTAKE_BASE:
                where.setdefault(STATUS_NAMES[code].removeprefix("mistake:"), {}).setdefault(key, []).append(name)
        if key in report.transposed:
            where.setdefault("transposed-gradient", {}).setdefault(key, [])
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
        "ungraded": "Not graded: your file has no derivations.",
        "tolerance": f"An entry is right when {_code(gradebook.tolerance.describe())}.",
        "follow_through": (
            "An entry marked *follow-through* is wrong against the key but right for your own earlier\n"
            f"answers, so an early slip is not counted twice: it earns {_fraction_text(credit)} of its points."
        ),
    }
    _SHARED.clear()
    _SHARED[id(gradebook)] = (gradebook, shared)
    return shared


def feedback_markdown(report: GradeReport, gradebook: Gradebook, reveal: bool = False) -> str:
    """A student's feedback/<stem>.md: score, named mistakes explained, every entry's result.

    The expected values appear only with ``reveal``. Built with plain string operations, not a
    template: it is written for every student of classes of tens of thousands.
    """
    shared = _shared(gradebook)
    out = [f"# {TITLE}: feedback for {_text(report.student_id)}", ""]
    max_score = score_text(report.max_score)
    if report.status == MISSING:
        out.append(f"No submission was found for you, so this assignment scores 0 out of {max_score}.")
    elif report.status == INVALID:
        out += [f"Your file {_code(report.source or '')} could not be graded, so it scores 0 out of {max_score}:", ""]
        out += [f"- {_code(e)}" for e in report.errors]
        out += ["", "Fix the file and check its form with `hwgen check FILE` before submitting it again."]
    else:
        where: dict[str, dict[str, list[str]]] = {}
        sections = []
        tables = _tables(report, reveal, where) if report.codes is not None else {}
        for part in report.parts:
            title = PART_TITLES.get(part.part, f"Part {_text(part.part)}")
            marks = f"{score_text(part.score)} / {score_text(part.max_score)}" if part.graded else "not graded"
            body = tables.get(part.part, [])
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
                body = [shared["ungraded"]]
            sections += ["", f"## Part {_text(part.part)}: {title} ({marks})", "", *body]
        ungraded = [p.part for p in report.parts if not p.graded]
        out.append(f"**Score: {score_text(report.score)} out of {max_score}**" + (f" ({_parts_phrase(ungraded)} not graded)." if ungraded else "."))
        # The file's name only: the instructor's folders are none of the student's business.
        out += ["", f"Graded from {_code(os.path.basename(report.source or ''))}. {shared['tolerance']}"]
        if gradebook.follow_through:
            out.append(shared["follow_through"])
        if report.misconceptions:
            out += ["", "## Mistakes to look at", ""]
            for m in report.misconceptions:
                found = where.get(m, {})
                out.append(f"- **{m}** ({_places(report, found)}): {_explanation(m, report, found)}")
        out += sections
    if report.warnings:
        out += ["", "## Notes on your file", ""]
        out += [f"- {_code(w)}" for w in report.warnings]
    return "\n".join(out) + "\n"


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


def _up_to_date(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace ``path`` with ``data`` unless it already holds exactly that; True if written.

    The temporary file is named after the process, created exclusively with its final mode
    (no mkstemp, no chmod: for thousands of files every system call shows).
    """
    if _up_to_date(path, data):
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # left by a crashed run of a process with our pid
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        os.fchmod(fd, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
    """Write every output under ``out_dir``; results.json last, so that it never describes
    feedback files that are not there yet. Feedback for a large class is written by worker
    processes while this one builds the gradebook files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    feedback_dir = out / "feedback"
    # A first run builds the feedback folder aside and renames it into place whole, so its files
    # need no rename each (half the cost of creating them); a later run replaces, file by file,
    # only those that changed.
    fresh = not feedback_dir.is_dir() or not any(feedback_dir.iterdir())
    target = Path(tempfile.mkdtemp(prefix=".feedback.", dir=out)) if fresh else feedback_dir
    with_feedback = [r for r in gradebook.reports if r.file_stem is not None]
    texts: dict[str, str] = {}

    def gradebook_files() -> None:
        texts["grades"] = grades_csv(gradebook)
        texts["canvas"] = canvas_csv(gradebook, assignment)
        texts["results"] = results_json(gradebook)

    try:
        done = chunked_map(_write_feedback, with_feedback, (gradebook, reveal, target, fresh), progress, meanwhile=gradebook_files)
        # Changed files rendered by worker processes are replaced here, one at a time: creating
        # files in one folder from several processes at once gains little and risks more.
        for stem, data in done:
            if data is not None:
                _write_if_changed(feedback_dir / f"{stem}.md", data)
        if not fresh:
            _remove_stale(feedback_dir, {f"{r.file_stem}.md" for r in with_feedback})
        if fresh:
            os.chmod(target, 0o755)  # mkdtemp makes it private; the folder is meant to be shared
            if feedback_dir.is_dir():
                feedback_dir.rmdir()  # empty, as checked above
            os.rename(target, feedback_dir)
    finally:
        if fresh and target.exists():
            shutil.rmtree(target, ignore_errors=True)
    if progress is not None and len(gradebook.reports) > len(with_feedback):
        progress(len(gradebook.reports) - len(with_feedback))
    grades, canvas, results = out / "grades.csv", out / "canvas.csv", out / "results.json"
    write_atomic(grades, texts["grades"])
    write_atomic(canvas, texts["canvas"])
    write_atomic(results, texts["results"])
    return Written(results, grades, canvas, feedback_dir, len(done))


_MAIN_PID = os.getpid()  # a forked worker keeps this value and has a pid of its own


def _write_feedback(
    chunk: list[GradeReport], gradebook: Gradebook, reveal: bool, folder: Path, fresh: bool
) -> list[tuple[str, bytes | None]]:
    """Render each report's feedback into ``folder``. A ``fresh`` folder is private to this run
    (renamed into place once complete), so files are created there directly, in any process.
    Otherwise a file is replaced when running in the main process; a worker hands back the
    bytes of the files that are new or changed (None for those already up to date)."""
    in_worker = os.getpid() != _MAIN_PID
    out = []
    for report in chunk:
        path = folder / f"{report.file_stem}.md"
        data = encode_text(feedback_markdown(report, gradebook, reveal))
        if fresh:
            _create(path, data)
            data = None
        elif not in_worker:
            _write_if_changed(path, data)
            data = None
        elif _up_to_date(path, data):
            data = None
        out.append((report.file_stem, data))
    return out


def _remove_stale(feedback_dir: Path, current: set[str]) -> None:
    """Delete feedback files of an earlier run for students who are not in this one, so the
    folder never holds feedback that results.json does not describe."""
    for path in feedback_dir.glob("*.md"):
        if path.name not in current:
            path.unlink(missing_ok=True)


def _create(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def summary(gradebook: Gradebook) -> str:
    """The closing paragraph of ``hwgen grade``: counts and the mean score."""
    graded = [r for r in gradebook.reports if r.status == GRADED]
    n_invalid, n_missing = gradebook.count(INVALID), gradebook.count(MISSING)
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
        f"{len(gradebook.reports)} records: {len(graded)} graded, {n_invalid} invalid, {n_missing} missing; "
        f"{mean_text}. {named} of the graded made a named mistake."
    )
    if gradebook.skipped:
        text += f" Skipped {len(gradebook.skipped)} files that are not .json."
    return text
