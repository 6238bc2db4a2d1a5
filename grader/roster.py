"""Class rosters from CSV: a plain file with a ``student_id`` column, or a Canvas gradebook export.

A Canvas export is taken as it comes: its header is ``Student, ID, SIS User ID, SIS Login ID,
Section`` then one column per assignment, and it has rows that are not students (``Points
Possible``, a posting-policy row with no name, the "Test Student" of Student View). Those rows
are skipped; every other row is a student and must have an id.

Rows are numbered as a spreadsheet shows them: the header is row 1.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from grader.jsonio import InputError, read_text
from grader.quoting import escaped

DEFAULT_ID_COLUMNS = ("student_id", "SIS User ID", "ID")
# The identity columns of a Canvas export, kept for grade exports (a Canvas import needs them).
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Section")
CANVAS_TEST_STUDENT = ("Student, Test", "Test Student")
MAX_ROSTER_BYTES = 64 * 1024 * 1024  # a Canvas export of 20,000 students with grades is a few MB
MAX_ROWS_NAMED = 10  # an error lists this many rows, then says how many more
MAX_ID_LENGTH = 200  # characters in a student id (Canvas's SIS ids have at most 255 bytes)
# Students in one class (--count or a roster). A class of 20,000 writes 1.1 GB in 40 s and holds
# 0.2 GB of memory; a million would want some 10 GB of memory and 55 GB of disk, so a typo in
# --count would end in a MemoryError or a full disk half an hour later.
MAX_STUDENTS = 100_000
UNBALANCED = '(is a " missing or one too many?)'


def id_problem(student_id: str) -> str | None:
    """Why ``student_id`` (stripped) cannot be a student's id, or None. The roster and the
    submissions ask the same: an id the roster takes must be one a student's file can give back."""
    if len(student_id) > MAX_ID_LENGTH:
        return f"is {len(student_id):,} characters long; an id has at most {MAX_ID_LENGTH}"
    if not student_id.isprintable():
        char = next(c for c in student_id if not c.isprintable())
        if "\ud800" <= char <= "\udfff":
            return f"contains a lone surrogate ({escaped(char)}), half of a UTF-16 pair and not a character"
        if unicodedata.category(char) == "Cc":
            return f"contains a control character ({escaped(char)})"
        return f"contains a character that is not printable ({escaped(char)})"
    return None


@dataclass(frozen=True)
class RosterEntry:
    """One student of the roster."""

    student_id: str
    columns: dict[str, str] = field(default_factory=dict)  # kept columns, under their original names
    row: int = 0  # the spreadsheet row it came from (header = 1)


@dataclass(frozen=True)
class Roster:
    """The students of a roster, in file order, and the rows that were not students."""

    entries: tuple[RosterEntry, ...]
    id_column: str
    skipped: tuple[tuple[int, str], ...] = ()  # (row, why) of each row that is not a student

    @property
    def student_ids(self) -> list[str]:
        return [e.student_id for e in self.entries]


def _rows_text(rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:MAX_ROWS_NAMED])
    more = f" and {len(rows) - MAX_ROWS_NAMED} more" if len(rows) > MAX_ROWS_NAMED else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _delimiter(text: str) -> str:
    """Commas, or the semicolons or tabs some spreadsheets write, judged from the header line."""
    header = text.split("\n", 1)[0]
    if "," in header:
        return ","
    return next((d for d in (";", "\t") if d in header), ",")


def _choose_id_column(header: list[str], id_column: str | None) -> str:
    if id_column is not None:
        if id_column.strip() not in header:
            raise InputError("--id-column", f"no column {id_column!r}; the roster has {_columns_text(header)}")
        return id_column.strip()
    for name in DEFAULT_ID_COLUMNS:
        if name in header:
            return name
    raise InputError(
        None,
        f"no student id column: expected one of {', '.join(repr(c) for c in DEFAULT_ID_COLUMNS)}; "
        f"the roster has {_columns_text(header)}. Choose one with --id-column",
    )


def _columns_text(header: list[str]) -> str:
    named = [repr(c) for c in header[:12]]
    return "columns " + ", ".join(named) + (f" and {len(header) - 12} more" if len(header) > 12 else "")


def _kept_columns(header: list[str], id_column: str, canvas: bool) -> list[str]:
    """Canvas: its identity columns, not the assignment scores. A plain roster: everything but the id."""
    if canvas:
        return [c for c in header if c in CANVAS_COLUMNS]
    return [c for c in header if c != id_column and c]


def _not_a_student(cells: dict[str, str], canvas: bool, student_id: str) -> str | None:
    """Why a row is not a student, or None when it is one."""
    if not canvas:
        return None
    name = cells.get("Student", "").strip()
    if name == "Points Possible":
        return "Points Possible"
    if name in CANVAS_TEST_STUDENT:
        return "Canvas test student"
    if not name and not student_id:
        return "no student (a Canvas settings row)"
    return None


def _records(text: str) -> list[list[str]]:
    """The rows of a CSV roster; an InputError names the row where a quote left open swallows
    the rows after it.

    Python's reader takes a quote that is never closed as a cell running to the end of the
    file, and a quote closed rows later as one cell holding those rows: every later student
    silently becomes part of one name. In strict mode it says when a quote is never closed; a
    cell over several lines is kept (a note typed with Alt-Enter) unless a later line of it
    holds the delimiter, as a swallowed row does. Strict mode also refuses a stray character
    after a closing quote (1,"Kim" A), which spreadsheets never write and which is read as it
    always was, leniently.
    """
    delimiter = _delimiter(text)
    try:
        return _rows(text, delimiter, strict=True)
    except _NotStrict:
        return _rows(text, delimiter, strict=False)


class _NotStrict(Exception):
    """The strict reader refused something other than a quote left open."""


def _rows(text: str, delimiter: str, strict: bool) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=strict)
    records: list[list[str]] = []
    while True:
        row = len(records) + 1  # as a spreadsheet numbers it: the header is row 1
        try:
            record = next(reader)
        except StopIteration:
            return records
        except csv.Error as exc:
            if str(exc) == "unexpected end of data":  # _csv's only sign of it
                raise InputError(None, f'row {row}: a " opens a cell that is never closed {UNBALANCED}') from None
            if strict:
                raise _NotStrict from None
            raise InputError(None, f"not a readable CSV file at row {row}: {exc}") from None
        if any(_holds_rows(cell, delimiter) for cell in record):
            raise InputError(None, f"row {row}: a quoted cell runs over lines that look like further rows {UNBALANCED}")
        records.append(record)


def _holds_rows(cell: str, delimiter: str) -> bool:
    """A cell over several lines, a later one holding the delimiter: rows swallowed by a quote,
    not a note typed over two lines."""
    lines = cell.splitlines()
    return len(lines) > 1 and any(delimiter in line for line in lines[1:])


def parse_roster(text: str, id_column: str | None = None) -> Roster:
    """The students of a CSV roster; an InputError names every row that is wrong."""
    text = text.removeprefix("\ufeff")
    records = _records(text)
    if not records or not any(cell.strip() for cell in records[0]):
        raise InputError(None, "the roster is empty; it needs a header row naming its columns")
    header = [cell.strip() for cell in records[0]]
    repeated = sorted({c for c in header if c and header.count(c) > 1})
    if repeated:
        raise InputError(None, f"the header names column {', '.join(repr(c) for c in repeated)} more than once")
    column = _choose_id_column(header, id_column)
    canvas = "Student" in header and "ID" in header
    kept = _kept_columns(header, column, canvas)

    entries: list[RosterEntry] = []
    skipped: list[tuple[int, str]] = []
    empty: list[int] = []
    too_long: list[int] = []
    unusable: list[tuple[int, str]] = []  # (row, why)
    for row, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue  # a blank line, often the last one
        if len(record) > len(header) and any(cell.strip() for cell in record[len(header):]):
            too_long.append(row)
            continue
        # Spreadsheets drop trailing empty cells, so a short row is padded rather than refused.
        cells = dict(zip(header, [*record, *[""] * (len(header) - len(record))]))
        student_id = cells[column].strip()
        why = _not_a_student(cells, canvas, student_id)
        if why is not None:
            skipped.append((row, why))
        elif not student_id:
            empty.append(row)
        elif (problem := id_problem(student_id)) is not None:
            unusable.append((row, problem))
        elif len(entries) == MAX_STUDENTS:
            raise InputError(None, f"row {row}: the roster has more than {MAX_STUDENTS:,} students, more than hwgen takes in one class")
        else:
            entries.append(RosterEntry(student_id, {c: cells[c].strip() for c in kept}, row))
    if too_long:
        raise InputError(None, f"{_rows_text(too_long)} ha{'ve' if len(too_long) > 1 else 's'} more cells than the header has columns")
    if empty:
        raise InputError(column, f"is empty in {_rows_text(empty)}; every student needs an id")
    if unusable:
        row, why = unusable[0]
        more = f" (and {len(unusable) - 1} more row{'s' if len(unusable) > 2 else ''})" if len(unusable) > 1 else ""
        raise InputError(column, f"in row {row} {why}{more}: a student's file could not give that id back")
    _check_unique(entries, column)
    if not entries:
        raise InputError(None, "the roster has no students")
    return Roster(tuple(entries), column, tuple(skipped))


def _check_unique(entries: list[RosterEntry], column: str) -> None:
    rows_of: dict[str, list[int]] = {}
    for entry in entries:
        rows_of.setdefault(entry.student_id, []).append(entry.row)
    repeated = [(sid, rows) for sid, rows in rows_of.items() if len(rows) > 1]
    if repeated:
        shown = "; ".join(f"{sid!r} in {_rows_text(rows)}" for sid, rows in repeated[:MAX_ROWS_NAMED])
        extra = len(repeated) - MAX_ROWS_NAMED
        more = f"; and {extra} more id{'s' if extra > 1 else ''}" if extra > 0 else ""
        raise InputError(column, f"has duplicate student ids: {shown}{more}")


def read_roster(path: str | Path, id_column: str | None = None) -> Roster:
    """A roster from a CSV file, or from standard input when ``path`` is '-'."""
    return parse_roster(read_text(path, max_bytes=MAX_ROSTER_BYTES), id_column)


def numbered_roster(count: int) -> Roster:
    """``count`` made-up students, student-001 ..., for a quick try without a roster."""
    if not 1 <= count <= MAX_STUDENTS:
        raise InputError("--count", f"must be from 1 to {MAX_STUDENTS:,}")
    width = max(3, len(str(count)))
    entries = tuple(RosterEntry(f"student-{n:0{width}d}", {}, n + 1) for n in range(1, count + 1))
    return Roster(entries, "student_id")
