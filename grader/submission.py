"""Is a submission well-formed? Reading a student's answer file, apart from judging it.

A submission is the answer file of ``hwgen solve --format json`` with the student's id:

    {"student_id": "...",
     "answers": {"u": [...], "h": [...], "z": [...], "o": [...], "loss": 0.31,
                 "grad_w": [[...], ...], "grad_v": [[...], ...], "w_new": [[...], ...], "v_new": [[...], ...]},
     "derivations": {...}}

Any answer, row or entry may be null (the blank ``submission.json`` of ``hwgen generate`` is all
nulls): a null is a missing answer, not a malformed one. ``loss`` may be a number or a list of
one. ``grad_w`` or ``grad_v`` given with the shape of its transpose is kept (transposed back)
and remembered, because that is a mistake to grade, not a malformed file. Everything else that
is not a finite number where a number belongs makes the file invalid, with one line per problem
naming the field, e.g. ``answers.grad_v[2][1]: expected a number, got a string``; so does a NaN,
an Infinity or a 1e999 anywhere, even in a key that is otherwise ignored.

Reading is the only per-file Python work of ``hwgen grade``, so it is kept lean: a file's answers
become one flat float64 vector (NaN where not given) laid out by a ``Layout``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from grader import core, derivations
from grader.formatting import counted
from grader.jsonio import (
    MAX_NESTING,
    REPEATED_KEY,
    TOO_DEEP,
    InputError,
    NonFiniteError,
    decode_utf8,
    fast_loads,
    loads_strict,
    nesting_depth,
    read_bytes,
    read_int,
    too_deep_field,
)
from grader.params import Params, answer_shapes
from grader.quoting import clip as _clip
from grader.roster import id_problem

TOP_LEVEL_KEYS = ("student_id", "help", "answers", "derivations")  # "help" is the blank file's note
DERIVATION_KEYS = (*derivations.REQUIRED_KEYS, derivations.LOSS_KEY)
_TOP_LEVEL_SET, _ANSWER_SET, _DERIVATION_SET = frozenset(TOP_LEVEL_KEYS), frozenset(core.ANSWER_KEYS), frozenset(DERIVATION_KEYS)
TRANSPOSABLE = ("grad_w", "grad_v")  # a gradient written transposed is the transposed-gradient mistake
MAX_PROBLEMS = 20  # lines of problems (and of warnings) reported per file
_LARGEST = sys.float_info.max
_NUMBER_TYPES = frozenset({float, int, type(None)})
_KINDS = {str: "a string", bool: "a boolean", dict: "an object", list: "a list", type(None): "null"}


@dataclass(frozen=True, eq=False)  # one instance per size (layout_for caches), compared by identity
class Layout:
    """Where each answer's entries sit in a submission's flat vector, for one network size."""

    sizes: tuple[int, int, int]  # (inputs I, hidden J, outputs K)
    shapes: Mapping[str, tuple[int, ...]]  # answer key -> shape without the batch axis
    slices: Mapping[str, slice]  # answer key -> its entries in the flat vector
    size: int  # entries in all

    def entry_names(self, key: str) -> tuple[str, ...]:
        """Each entry's name as the problem writes it (u_1, dL/dw_12, ...), in flat order."""
        return _entry_names(self, key)

    def __reduce__(self):
        return layout_for, (self.sizes,)  # unpickled as the one cached instance of its size


@lru_cache(maxsize=None)
def layout_for(sizes: tuple[int, int, int]) -> Layout:
    """The layout of answers for a network of ``sizes`` (I, J, K)."""
    shapes = answer_shapes(sizes)
    slices, start = {}, 0
    for key in core.ANSWER_KEYS:
        count = math.prod(shapes[key])
        slices[key] = slice(start, start + count)
        start += count
    return Layout(tuple(sizes), shapes, slices, start)


def layout_of(params: Params) -> Layout:
    return layout_for(params.sizes)


_SYMBOLS = {"u": "u", "h": "h", "z": "z", "o": "o", "grad_w": "dL/dw", "grad_v": "dL/dv", "w_new": "w_new", "v_new": "v_new"}


@lru_cache(maxsize=None)
def _entry_names(layout: Layout, key: str) -> tuple[str, ...]:
    if key == "loss":
        return ("L",)
    shape = layout.shapes[key]
    if len(shape) == 1:
        return tuple(f"{_SYMBOLS[key]}_{n + 1}" for n in range(shape[0]))
    sep = "," if max(shape) >= 10 else ""  # w_1,12 is unambiguous where w_112 is not
    return tuple(f"{_SYMBOLS[key]}_{r + 1}{sep}{c + 1}" for r in range(shape[0]) for c in range(shape[1]))


@dataclass(frozen=True, eq=False)
class Submission:
    """A well-formed submission: answers in the expected layout, NaN wherever nothing was given."""

    student_id: str
    values: np.ndarray  # (layout.size,) float64; NaN marks a missing entry (a given one is finite)
    layout: Layout
    transposed: frozenset[str] = frozenset()  # keys given in the shape of their transpose
    derivations: dict | None = None  # the raw "derivations" object, graded by grader.derivations
    warnings: tuple[str, ...] = ()
    source: str = ""  # the path it was read from ('-' for standard input)
    mtime_ns: int = 0  # modification time, to tell which of two files for a student is newer

    def __reduce__(self):
        # Thousands travel back from the processes that read them: the values as raw bytes
        # pickle in half the time of the dataclass's own way.
        fields = (self.student_id, self.values.tobytes(), self.layout, self.transposed, self.derivations, self.warnings, self.source, self.mtime_ns)
        return _submission, fields

    @property
    def answers(self) -> dict[str, np.ndarray | None]:
        """Answer key -> array in the expected shape (NaN where null), or None when none of it was given."""
        out: dict[str, np.ndarray | None] = {}
        for key in core.ANSWER_KEYS:
            part = self.values[self.layout.slices[key]]
            out[key] = None if np.isnan(part).all() else part.reshape(self.layout.shapes[key])
        return out

    @property
    def given(self) -> dict[str, np.ndarray]:
        """Answer key -> boolean array in the expected shape: which entries were given."""
        return {key: ~np.isnan(self.values[s]).reshape(self.layout.shapes[key]) for key, s in self.layout.slices.items()}

    def missing(self) -> list[str]:
        """The fields left out or null: a whole answer when none of it was given, else each entry."""
        return [field for _, fields in missing_answers(self.layout, np.isnan(self.values)) for field in fields]


def missing_answers(layout: Layout, missing: np.ndarray) -> list[tuple[str, list[str]]]:
    """For each answer with entries ``missing`` (a flat mask in ``layout``), its key and the
    fields not given: ``[answers.u]`` when none of it was, else each entry (answers.grad_v[2][1])."""
    out = []
    for key in core.ANSWER_KEYS:
        part = missing[layout.slices[key]]
        if part.all():
            out.append((key, [f"answers.{key}"]))
        elif part.any():
            shape = layout.shapes[key]
            out.append((key, [f"answers.{key}" + "".join(f"[{i}]" for i in np.unravel_index(n, shape)) for n in np.flatnonzero(part)]))
    return out


def _submission(student_id, values, layout, transposed, derivations, warnings, source, mtime_ns) -> Submission:
    # A copy, writable like the array of a submission read in this process.
    return Submission(student_id, np.frombuffer(values, dtype=np.float64).copy(), layout, transposed, derivations, warnings, source, mtime_ns)


class InvalidSubmission(InputError):
    """A submission that is not well-formed; ``problems`` has one line per problem."""

    def __init__(self, problems: list[str], *, student_id: str | None = None, warnings=(), source: str = "", mtime_ns: int = 0):
        if len(problems) > MAX_PROBLEMS:  # a file of a thousand strings needs no thousand lines
            problems = [*problems[:MAX_PROBLEMS], f"... and {counted(len(problems) - MAX_PROBLEMS, 'more problem')}"]
        self.problems = tuple(problems)
        self.student_id = student_id  # when the file says who it is from, even if the rest is bad
        self.warnings = tuple(warnings)
        self.source = source
        self.mtime_ns = mtime_ns
        super().__init__(None, self.problems[0] if len(self.problems) == 1 else f"{self.problems[0]} (and {counted(len(self.problems) - 1, 'more problem')})")

    def __reduce__(self):
        # An exception pickles as cls(*args) by default, which would lose every field here.
        return _invalid, (self.problems, self.student_id, self.warnings, self.source, self.mtime_ns)


def _invalid(problems, student_id, warnings, source, mtime_ns) -> InvalidSubmission:
    return InvalidSubmission(list(problems), student_id=student_id, warnings=warnings, source=source, mtime_ns=mtime_ns)


LayoutSource = Layout | Callable[[str], Layout]


class NonFinite:
    """Stands in for a non-finite number when a file is re-read to say where it is."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def _lenient_json(text: str, repeated: list[str]) -> Any:
    """The JSON with non-finite numbers as NonFinite and repeated keys kept last (and the field
    of each listed in ``repeated``: answers.loss), or None when it is not JSON at all.

    Only for files already refused: it lets the report say which student the file is from and
    which field holds the NaN or the repeated key, instead of only that there is one somewhere.
    """
    def float_or_marker(token: str):
        value = float(token)
        return value if math.isfinite(value) else NonFinite(token[:20])

    found: list[tuple[dict, str]] = []  # (the object, its key given twice), in the order read

    def last_wins(pairs):
        obj = {}
        for key, value in pairs:
            if key in obj:
                found.append((obj, key))
            obj[key] = value
        return obj

    try:
        tree = json.loads(text, parse_constant=NonFinite, parse_float=float_or_marker, parse_int=read_int, object_pairs_hook=last_wins)
    except (ValueError, RecursionError):
        return None
    if found:  # the objects are built inner first: where each sits is known once the tree is
        where = _object_fields(tree)
        repeated += [f"{where[id(obj)]}.{_clip(key)}" if where.get(id(obj)) else _clip(key) for obj, key in found]
    return tree


def _object_fields(tree: Any) -> dict[int, str]:
    """The field of every object in parsed JSON, by its id: "" for the top, answers, x[2]."""
    fields: dict[int, str] = {}
    stack = [(tree, "")]
    while stack:
        node, field = stack.pop()
        if isinstance(node, dict):
            fields[id(node)] = field
            stack += [(value, f"{field}.{_clip(key)}" if field else _clip(key)) for key, value in node.items()]
        elif isinstance(node, list):
            stack += [(value, f"{field}[{n}]") for n, value in enumerate(node)]
    return fields


def parse_json(data: bytes, *, check_duplicates: bool = True, check_depth: bool = True) -> Any:
    """jsonio.loads_strict on a submission's bytes, leaving 1e999 for from_json to refuse where
    it stands, and refusing a lone surrogate, which no file or hash can take."""
    obj = fast_loads(data, check_duplicates=check_duplicates)
    if obj is not None:
        if check_depth and data.count(b"[") + data.count(b"{") > MAX_NESTING and nesting_depth(obj) > MAX_NESTING:
            raise InputError(too_deep_field(obj), TOO_DEEP)
        return obj
    text = decode_utf8(data)
    obj = loads_strict(text, check_duplicates=check_duplicates, check_depth=check_depth, finite_floats=False)
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(obj):
        # A lone \ud800 decodes to a str that no file or hash can take: refuse it here, whole.
        raise InputError(None, "contains a \\ud800-\\udfff escape that is not text (a lone surrogate)")
    return obj


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(obj: Any) -> bool:
    """Whether any key or string in parsed JSON holds half a surrogate pair (iterative)."""
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def read_submission(
    path: str | os.PathLike, layouts: LayoutSource, folder_fd: int | None = None, regular_only: bool = False
) -> Submission | InvalidSubmission:
    """The submission in ``path``, or (returned, not raised) why it is not well-formed.

    ``layouts`` is the expected layout, or a function from a student id to that student's layout
    which raises InputError for an id it does not know. ``folder_fd``, when given, is ``path``'s
    folder, open (the file is then opened by its name there). ``regular_only``: a pipe or a
    device is refused unread (see jsonio.read_bytes).
    """
    source = str(path)
    try:
        if folder_fd is None:
            data, mtime_ns = read_bytes(path, regular_only=regular_only)
        else:
            data, mtime_ns = read_bytes(os.path.basename(source), dir_fd=folder_fd, regular_only=regular_only)
    except InputError as exc:
        return InvalidSubmission([str(exc)], source=source)
    return submission_from_bytes(data, layouts, source=source, mtime_ns=mtime_ns)


def submission_from_bytes(data: bytes, layouts: LayoutSource, *, source: str = "", mtime_ns: int = 0) -> Submission | InvalidSubmission:
    """read_submission on a file's bytes, read already."""
    try:
        obj = parse_json(data, check_depth=False)
        if not _nesting_ok(data, obj):
            raise InputError(too_deep_field(obj), TOO_DEEP)
    except InputError as exc:
        # Refused as JSON; if it is JSON nonetheless (NaN, a repeated key), read it leniently
        # to tell whose file it is and where the problem sits.
        text = data.decode("utf-8", errors="strict") if _is_utf8(data) else None
        repeated: list[str] = []
        obj = None if text is None else _lenient_json(text.removeprefix("\ufeff"), repeated)
        if obj is None:
            return InvalidSubmission([str(exc)], source=source, mtime_ns=mtime_ns)
        result = from_json(obj, layouts, source=source, mtime_ns=mtime_ns)
        problems = list(result.problems) if isinstance(result, InvalidSubmission) else []
        problems += [f"{field}: {REPEATED_KEY}" for field in dict.fromkeys(repeated)]
        said = (isinstance(exc, NonFiniteError) and any(NON_FINITE in p for p in problems)) or (exc.reason == REPEATED_KEY and repeated)
        if not said and str(exc) not in problems:
            problems.insert(0, str(exc))
        return InvalidSubmission(problems, student_id=result.student_id, warnings=result.warnings, source=source, mtime_ns=mtime_ns)
    return from_json(obj, layouts, source=source, mtime_ns=mtime_ns)


def submissions_from_bytes(files: Sequence[tuple[str, bytes, int]], layout: Layout) -> list[Submission | InvalidSubmission]:
    """submission_from_bytes(data, layout) for each (source, data, mtime_ns) of ``files``, the
    usual files checked together.

    A class's files are nearly all of one form: an object with a string id, answers of exactly
    the expected shapes (or null), derivations as strings, nothing else. Those are checked an
    answer at a time across the batch with C-speed builtins, and their values become one array;
    every other file, and any file the batch check stops at, is read on its own, which words
    its problems. Both ways give the same results (a test holds them to it).
    """
    out: list[Submission | InvalidSubmission | None] = [None] * len(files)
    usual: list[tuple[int, dict]] = []  # (position, parsed object) of the files of the usual form
    for position, (source, data, mtime_ns) in enumerate(files):
        obj = fast_loads(data)
        if obj is not None and _usual_form(obj) and _nesting_ok(data, obj):
            usual.append((position, obj))
        else:
            out[position] = submission_from_bytes(data, layout, source=source, mtime_ns=mtime_ns)
    values, unusual = _answer_columns([obj["answers"] for _, obj in usual], layout)
    no_transposed: frozenset[str] = frozenset()
    for n, ((position, obj), row) in enumerate(zip(usual, values)):
        source, data, mtime_ns = files[position]
        if n in unusual:  # read on its own, which words its problems
            out[position] = submission_from_bytes(data, layout, source=source, mtime_ns=mtime_ns)
        else:
            out[position] = Submission(obj["student_id"], row, layout, no_transposed, obj.get("derivations"), (), source, mtime_ns)
    return out  # type: ignore[return-value]


def _usual_form(obj: Any) -> bool:
    """Is parsed JSON a submission that from_json takes without a problem or a warning, its
    answers aside? (Those are checked together, by _answer_columns.)"""
    if type(obj) is not dict or not obj.keys() <= _TOP_LEVEL_SET:
        return False
    answers, derivations, note = obj.get("answers"), obj.get("derivations"), obj.get("help")
    problems: list[str] = []
    warnings: list[str] = []
    if type(obj.get("student_id")) is not str or _student_id(obj, problems, warnings) is None or warnings:
        return False
    if type(answers) is not dict or not answers.keys() <= _ANSWER_SET or (note is not None and type(note) is not str):
        return False
    if derivations is None:
        return True
    return type(derivations) is dict and derivations.keys() <= _DERIVATION_SET and all(type(v) is str or v is None for v in derivations.values())


def _answer_columns(answers: list[dict], layout: Layout) -> tuple[np.ndarray, set[int]]:
    """The flat values of ``answers`` (one row per answers object, NaN where null), and the
    positions of the objects not of the usual form: an answer not exactly of its expected shape,
    or holding anything but numbers and nulls (from_json then reads it answer by answer, to
    say what is wrong). What such an object holds is taken as null, so that one pass checks
    them all; their rows mean nothing."""
    count = len(answers)
    unusual: set[int] = set()
    blocks = []
    for key, shape, entries in _plan(layout):
        column = [a.get(key) for a in answers]
        if not shape:  # the loss: a number, a list of one, or null
            if not set(map(type, column)) <= _NUMBER_TYPES:
                unusual.update(n for n, v in enumerate(column) if type(v) not in _NUMBER_TYPES and not (type(v) is list and len(v) == 1))
                column = [v[0] if type(v) is list and len(v) == 1 else v for v in column]
            flat = column
        else:
            flat = _flat_rows(_fill_nulls(column, shape), shape[0], 1, unusual)
            if len(shape) == 2:
                flat = _flat_rows(flat, shape[1], shape[0], unusual)
        types = set(map(type, flat))
        if not types <= _NUMBER_TYPES or (int in types and not all(-_LARGEST <= x <= _LARGEST for x in flat if type(x) is int)):
            refused = [n for n, x in enumerate(flat) if type(x) not in _NUMBER_TYPES or (type(x) is int and not -_LARGEST <= x <= _LARGEST)]
            unusual.update(n // entries for n in refused)
            for n in refused:
                flat[n] = None
        blocks.append(np.array(flat, dtype=np.float64).reshape(count, entries))
    return (np.concatenate(blocks, axis=1) if blocks else np.empty((count, 0))), unusual


def _fill_nulls(column: list, shape: tuple[int, ...]) -> list:
    """A column of answers with each null (a whole answer not given) as its shape of nulls."""
    if None not in column:
        return column
    nulls = [None] * shape[0] if len(shape) == 1 else [[None] * shape[1] for _ in range(shape[0])]
    return [nulls if v is None else v for v in column]


def _flat_rows(items: list, length: int, per_owner: int, unusual: set[int]) -> list:
    """The items of ``items`` (each should be a list of ``length``) one after another in a new
    list; any other item is taken as ``length`` nulls, and its owner added to ``unusual`` (each
    answers object owns ``per_owner`` items in a row)."""
    if items and (set(map(type, items)) != {list} or set(map(len, items)) != {length}):
        nulls = [None] * length
        bad = [n for n, item in enumerate(items) if type(item) is not list or len(item) != length]
        unusual.update(n // per_owner for n in bad)
        items = list(items)
        for n in bad:
            items[n] = nulls
    return list(itertools.chain.from_iterable(items))


def _nesting_ok(data: bytes, obj: Any) -> bool:
    """parse_json's nesting rule, cheaper for submissions: the brackets of derivation
    expressions (v[j,i]) are text, so a file whose other brackets number at most the limit
    cannot nest deeper than it, and only other files are walked."""
    brackets = data.count(b"[") + data.count(b"{")
    if brackets <= MAX_NESTING:
        return True
    derivations = obj.get("derivations") if isinstance(obj, dict) else None
    if isinstance(derivations, dict) and b"\\u" not in data:  # an escape could hide a bracket's count
        brackets -= sum(v.count("[") + v.count("{") for v in derivations.values() if isinstance(v, str))
    return brackets <= MAX_NESTING or nesting_depth(obj) <= MAX_NESTING


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def load_submission(path: str | os.PathLike, layouts: LayoutSource) -> Submission:
    """The submission in ``path``; raises InvalidSubmission (an InputError) when it is not well-formed."""
    result = read_submission(path, layouts)
    if isinstance(result, InvalidSubmission):
        raise result
    return result


def from_json(obj: Any, layouts: LayoutSource, *, source: str = "", mtime_ns: int = 0) -> Submission | InvalidSubmission:
    """A Submission from parsed JSON, or an InvalidSubmission listing every problem found."""
    problems: list[str] = []
    warnings: list[str] = []
    if not isinstance(obj, dict):
        kind = _KINDS.get(type(obj), "a number")
        return InvalidSubmission([f"the file must be a JSON object with \"student_id\" and \"answers\"; got {kind}"], source=source, mtime_ns=mtime_ns)
    if not obj.keys() <= _TOP_LEVEL_SET:
        for key in obj:
            if key not in TOP_LEVEL_KEYS:
                warnings.append(f"{_clip(key)}: unknown key, ignored")
                _non_finite(obj[key], _clip(key), problems)
    note = obj.get("help")
    if note is not None and type(note) is not str:  # unread, but a NaN anywhere makes a file invalid
        _non_finite(note, "help", problems)

    student_id = _student_id(obj, problems, warnings)
    layout = None
    if student_id is not None:
        if isinstance(layouts, Layout):
            layout = layouts
        else:
            try:
                layout = layouts(student_id)
            except InputError as exc:
                problems.append(str(exc))

    answers = obj.get("answers")
    values: list | np.ndarray = []  # the flat entries (None or NaN where not given)
    transposed: set[str] = set()
    if "answers" not in obj:
        problems.append('answers: is missing; the file needs an "answers" object')
    elif not isinstance(answers, dict):
        problems.append(f"answers: expected an object with keys {', '.join(core.ANSWER_KEYS)}; got {_kind(answers)}")
    else:
        if not answers.keys() <= _ANSWER_SET:
            for key in answers:
                if key not in core.ANSWER_KEYS:
                    warnings.append(f"answers.{_clip(key)}: unknown key, ignored")
                    _non_finite(answers[key], f"answers.{_clip(key)}", problems)
        if layout is not None:
            usual, unusual = _answer_columns([answers], layout)
            if not unusual:  # nearly every file: every answer of its shape, numbers and nulls only
                values = usual[0]
            else:
                for key in core.ANSWER_KEYS:
                    values.extend(_entries(answers.get(key), key, layout.shapes[key], problems, transposed))

    derivations = obj.get("derivations")
    if derivations is not None and not isinstance(derivations, dict):
        problems.append(f"derivations: expected an object (or null); got {_kind(derivations)}")
        derivations = None
    if derivations:
        if not derivations.keys() <= _DERIVATION_SET:
            for key in derivations:
                if key not in DERIVATION_KEYS:
                    warnings.append(f"derivations.{_clip(key)}: unknown key, ignored (expected {', '.join(DERIVATION_KEYS)})")
        if not all(type(value) is str or value is None for value in derivations.values()):
            _non_finite(derivations, "derivations", problems)

    # A 1e999 parses as infinity (NaN and Infinity are refused by the parser); say where it is
    # (in the answers read: unknown keys were looked at above).
    if math.inf in values or -math.inf in values:
        _non_finite({key: answers[key] for key in core.ANSWER_KEYS if key in answers}, "answers", problems)
    array = np.array(values, dtype=np.float64) if layout is not None and not problems else None  # None -> NaN
    if len(warnings) > MAX_PROBLEMS:
        warnings = [*warnings[:MAX_PROBLEMS], f"... and {counted(len(warnings) - MAX_PROBLEMS, 'more warning')}"]
    if problems or layout is None:
        return InvalidSubmission(problems, student_id=student_id, warnings=warnings, source=source, mtime_ns=mtime_ns)
    return Submission(
        student_id=student_id,
        values=array,
        layout=layout,
        transposed=frozenset(transposed),
        derivations=derivations,
        warnings=tuple(warnings),
        source=source,
        mtime_ns=mtime_ns,
    )


def _non_finite(value: Any, field: str, problems: list[str]) -> None:
    """A problem for each number in ``value`` too large to be finite (1e999 parses as infinity),
    and for each NaN or Infinity of a file re-read leniently."""
    stack = [(value, field)]
    while stack:
        item, where = stack.pop()
        if type(item) is float and not math.isfinite(item):
            problems.append(f"{where}: the number is too large to be finite")
        elif type(item) is NonFinite:
            problems.append(f"{where}: {_kind(item)}")
        elif type(item) is list:
            stack.extend((x, f"{where}[{n}]") for n, x in reversed(list(enumerate(item))))
        elif type(item) is dict:
            stack.extend((x, f"{where}.{_clip(k)}") for k, x in reversed(list(item.items())))


NON_FINITE = "which is not a finite number"


def _kind(value: Any) -> str:
    if isinstance(value, NonFinite):
        return f"{value.text}, {NON_FINITE} (JSON allows only finite numbers)"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return _KINDS.get(type(value), type(value).__name__)


MAX_ID_DIGITS = 40  # an id given as a number has at most this many digits (a longer one is no id)


def _student_id(obj: dict, problems: list[str], warnings: list[str]) -> str | None:
    if "student_id" not in obj:
        problems.append("student_id: is missing")
        return None
    value = obj["student_id"]
    if isinstance(value, int) and not isinstance(value, bool):
        if not -(10**MAX_ID_DIGITS) < value < 10**MAX_ID_DIGITS:
            problems.append(f"student_id: a number of more than {MAX_ID_DIGITS} digits is no student id; write the id in quotes")
            return None
        # A numeric id (2018170622) is what a careful TA would read as that id's text.
        warnings.append(f"student_id: given as the number {value}; read as the text \"{value}\" (write it in quotes)")
        return str(value)
    if not isinstance(value, str):
        problems.append(f"student_id: expected a string, got {_kind(value)}")
        return None
    stripped = value.strip()
    if not stripped:
        problems.append("student_id: is empty")
        return None
    why = id_problem(stripped)
    if why is not None:
        problems.append(f"student_id: {why}: '{_clip(stripped)}'")
        return None
    if stripped != value:
        warnings.append(f"student_id: surrounding spaces removed from {_clip(value)!r}")
    return stripped


@lru_cache(maxsize=None)
def _plan(layout: Layout) -> tuple[tuple[str, tuple[int, ...], int], ...]:
    """(key, shape, entries) of each answer, in flat order."""
    return tuple((key, layout.shapes[key], math.prod(layout.shapes[key])) for key in core.ANSWER_KEYS)


def _numbers_ok(items: list, field: str, problems: list[str]) -> bool:
    """Are all ``items`` numbers or nulls? Otherwise one problem per bad item."""
    types = set(map(type, items))
    if types <= _NUMBER_TYPES and (int not in types or all(-_LARGEST <= x <= _LARGEST for x in items if type(x) is int)):
        return True
    for n, x in enumerate(items):
        if type(x) is int and not -_LARGEST <= x <= _LARGEST:
            problems.append(f"{field}[{n}]: the number is too large to be finite")
        elif type(x) not in _NUMBER_TYPES:
            problems.append(f"{field}[{n}]: expected a number, got {_kind(x)}")
    return False


def _entries(value: Any, key: str, shape: tuple[int, ...], problems: list[str], transposed: set[str]) -> list:
    """The entries of one answer in flat order (None where null); on a problem, record it and return Nones."""
    field = f"answers.{key}"
    count = math.prod(shape)
    nulls = [None] * count
    if value is None:
        return nulls
    if not shape:  # the loss: a number, or a list of one
        if isinstance(value, list) and len(value) == 1:
            value, field = value[0], f"{field}[0]"
        if value is None:
            return nulls
        if type(value) in (float, int) and not _too_large(value):
            return [value]
        problems.append(f"{field}: the number is too large to be finite" if _too_large(value) else f"{field}: expected a number, got {_kind(value)}")
        return nulls
    if not isinstance(value, list):
        want = f"a list of {shape[0]} numbers" if len(shape) == 1 else f"a {shape[0]}x{shape[1]} matrix (a list of {shape[0]} rows of {shape[1]} numbers)"
        problems.append(f"{field}: expected {want}, got {_kind(value)}")
        return nulls
    if len(shape) == 1:
        if len(value) != shape[0]:
            problems.append(f"{field}: expected {shape[0]} numbers, got {len(value)}")
            return nulls
        return value if _numbers_ok(value, field, problems) else nulls
    rows, cols = shape
    if _is_matrix(value, rows, cols):
        out = []
        ok = True
        for n, row in enumerate(value):
            if row is None:
                out.extend([None] * cols)
            else:
                ok &= _numbers_ok(row, f"{field}[{n}]", problems)
                out.extend(row)
        return out if ok else nulls
    if key in TRANSPOSABLE and rows != cols and _is_matrix(value, cols, rows):
        flat = []
        ok = True
        for n, row in enumerate(value):
            row = [None] * rows if row is None else row
            ok &= _numbers_ok(row, f"{field}[{n}]", problems)
            flat.append(row)
        if not ok:
            return nulls
        if any(x is not None for row in flat for x in row):  # all null is blank, not transposed
            transposed.add(key)
        return [flat[c][r] for r in range(rows) for c in range(cols)]  # back to (rows, cols)
    problems.append(_shape_problem(value, field, rows, cols))
    return nulls


def _too_large(value: Any) -> bool:
    return type(value) is int and not -_LARGEST <= value <= _LARGEST


def _is_matrix(value: list, rows: int, cols: int) -> bool:
    return len(value) == rows and all(row is None or (isinstance(row, list) and len(row) == cols) for row in value)


def _shape_problem(value: list, field: str, rows: int, cols: int) -> str:
    """The first thing wrong with the shape of a would-be matrix, as one line."""
    for n, row in enumerate(value):
        if row is not None and not isinstance(row, list):
            return f"{field}[{n}]: expected a row of {cols} numbers, got {_kind(row)}"
    lengths = sorted({len(row) for row in value if row is not None})
    if len(lengths) > 1:
        return f"{field}: is ragged: its rows have {', '.join(map(str, lengths))} entries; expected {rows} rows of {cols}"
    got = f"{len(value)} rows of {lengths[0]}" if lengths else f"{len(value)} rows"
    return f"{field}: expected {rows} rows of {cols} numbers (a {rows}x{cols} matrix), got {got}"
