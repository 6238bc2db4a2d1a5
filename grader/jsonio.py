"""Reading untrusted JSON strictly, turning it into float64 arrays, and writing files atomically.

Everything a user hands us (parameters, rosters, submissions) passes through here first, so
that each problem becomes an ``InputError`` whose one-line message names the field.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from grader.quoting import clip

MAX_INPUT_BYTES = 1024 * 1024  # a homework answer file is a few kB; anything over 1 MiB is not one
MAX_NESTING = 32  # the deepest array an answer needs is 2; this leaves room and stops stack abuse


class InputError(ValueError):
    """A problem with something the user gave, worded as one line that names the field."""

    def __init__(self, field: str | None, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)

    def __reduce__(self):
        # Raised in a worker process, it travels back pickled; by default that is cls(*args),
        # which does not fit this __init__ (and a pool whose result cannot be unpickled hangs).
        return type(self), (self.field, self.reason)


class NonFiniteError(InputError):
    """A NaN or an Infinity literal, refused while parsing (a reader may then say where it was)."""


def _reject_constant(name: str):
    raise NonFiniteError(None, f"{name} is not a number JSON allows; write a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteError(None, f"{text[:20]} is too large to be a finite number")
    return value


# Python refuses to turn a string of more than 4,300 digits into an int (ValueError), and a
# user may lower that limit to 640 (PYTHONINTMAXSTRDIGITS). An integer of more than 400 digits,
# far beyond any float (310 digits), is read as 10^400 instead, without asking Python to read
# it, and refused where it stands like any other number too large to be finite.
MAX_INT_DIGITS = 400
_BEYOND_FLOAT = 10**400


def read_int(text: str) -> int:
    """A JSON integer; one of more than MAX_INT_DIGITS digits as a number beyond any float."""
    if len(text) > MAX_INT_DIGITS:
        return -_BEYOND_FLOAT if text.startswith("-") else _BEYOND_FLOAT
    return int(text)


REPEATED_KEY = "appears twice in the same object; keep one"


def no_duplicate_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise InputError(clip(key), REPEATED_KEY)
        obj[key] = value
    return obj


TOO_DEEP = f"arrays or objects nest deeper than {MAX_NESTING} levels"


def nesting_depth(obj: Any) -> int:
    """How deeply lists and objects nest in parsed JSON (a number is 0, [] is 1, [[1]] is 2)."""
    deepest = 0
    stack = [(obj, 1)] if isinstance(obj, (list, dict)) else []
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (list, dict)):
                stack.append((child, depth + 1))
    return deepest


def too_deep_field(obj: Any) -> str | None:
    """Where in parsed JSON the nesting passes MAX_NESTING, as the keys down to it, at most two
    (answers.u); None when it starts at the top (a file that is one deep list). Only for a
    file already found too deep: it walks the file again."""
    keys: list[str] = []
    node, depth = obj, 1  # depth: the arrays and objects around each child of node
    while len(keys) < 2 and isinstance(node, dict):
        key = next((k for k, v in node.items() if depth + nesting_depth(v) > MAX_NESTING), None)
        if key is None:
            break
        keys.append(clip(key))
        node, depth = node[key], depth + 1
    return ".".join(keys) or None


@functools.lru_cache(maxsize=None)
def _decoder(check_duplicates: bool, finite_floats: bool) -> json.JSONDecoder:
    """A decoder with loads_strict's hooks, built once: json.loads with hooks builds one per call,
    which is a fifth of the cost of reading a submission."""
    hooks: dict[str, Any] = {"parse_constant": _reject_constant, "parse_int": read_int}
    if finite_floats:
        hooks["parse_float"] = _finite_float
    if check_duplicates:
        hooks["object_pairs_hook"] = no_duplicate_keys
    return json.JSONDecoder(**hooks)


def loads_strict(
    text: str, *, check_duplicates: bool = True, check_depth: bool = True, finite_floats: bool = True
) -> Any:
    """Parse JSON, refusing NaN, Infinity, duplicate keys, deep nesting and (with
    ``finite_floats``) numbers too large for a float.

    The C parser guards its own recursion, so nesting is measured on what it returns, and only
    when there are enough brackets to matter. Without ``finite_floats`` a 1e999 parses as
    infinity at C speed, for a reader that refuses it where it stands, naming the field (a
    Python hook on every float doubles the cost of reading a submission).
    """
    if text.startswith("\ufeff"):  # what json.loads says; JSONDecoder.decode does not check
        raise InputError(None, "not valid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig) at line 1 column 1")
    try:
        obj = _decoder(check_duplicates, finite_floats).decode(text)
    except NonFiniteError as exc:
        raise NonFiniteError(non_finite_field(text, finite_floats), exc.reason) from None
    except json.JSONDecodeError as exc:
        if not text.strip(_JSON_SPACE):
            raise InputError(None, "the file is empty (no JSON in it)") from None
        # Some of the parser's messages end in "at" ("Invalid control character at"): it means
        # to be followed by the position, which is worded here.
        raise InputError(None, f"not valid JSON: {exc.msg.removesuffix(' at')} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # the C parser's own guard, far deeper than our limit
        raise InputError(None, TOO_DEEP) from None
    if check_depth and text.count("[") + text.count("{") > MAX_NESTING and nesting_depth(obj) > MAX_NESTING:
        raise InputError(too_deep_field(obj), TOO_DEEP)
    return obj


_JSON_SPACE = " \t\r\n"  # the white space JSON allows between values


_NON_FINITE = object()  # what a NaN or an Infinity reads as when a refused file is re-read


class _Pairs(list):
    """An object's (key, value) pairs as written, repeated keys and all, in a re-read file."""


def non_finite_field(text: str, too_large_too: bool = True) -> str | None:
    """Where in ``text``, JSON that the strict reader refused for a non-finite number, the first
    one stands, as a field: v[1][2], students[3].params.x[0], answers.2.u; None when it is the
    whole document, or when the text is not JSON even leniently read.

    Only for a file already refused, so that the normal path of reading a large manifest pays
    nothing for it. NaN and Infinity always count; a number too large for a float (1e999, read
    as infinity) counts with ``too_large_too``, as it does for the reader that refused it.
    """
    try:
        obj = json.loads(text, parse_constant=lambda name: _NON_FINITE, parse_int=read_int, object_pairs_hook=_Pairs)
        path = _path_to_non_finite(obj, too_large_too) if type(obj) in (list, _Pairs) else None
    except (ValueError, RecursionError):
        return None
    if not path:
        return None
    field = "".join(f"[{key}]" if type(key) is int else f".{clip(key)}" for key in reversed(path))
    return field.removeprefix(".") or None


def _path_to_non_finite(node: list, too_large_too: bool) -> list | None:
    """The keys and indices from ``node`` down to its first non-finite number in the order of
    the text, innermost first; None when it holds none. (Recursive, and so some ten times faster
    than a walk with a stack of its own: a manifest of 20,000 students is looked through in
    a fraction of a second.)"""
    for key, item in node if type(node) is _Pairs else enumerate(node):
        if item is _NON_FINITE or (too_large_too and type(item) is float and (item == math.inf or item == -math.inf)):
            return [key]
        if type(item) is _Pairs or type(item) is list:
            path = _path_to_non_finite(item, too_large_too)
            if path is not None:
                path.append(key)
                return path
    return None


# A run of 19 digits, which may be an integer orjson reads as a float and Python as an int, is
# found by turning every digit into a 0 and looking for nineteen of them: a regular expression
# tries a match at every digit, 15 times slower on a manifest.
_DIGIT_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19
_KEY_END = re.compile(rb'"[ \t\r\n]*:')  # how every key ends: its quote, any space, the colon


def fast_loads(data: bytes, *, check_duplicates: bool = True) -> Any | None:
    """What ``loads_strict(decode_utf8(data), finite_floats=False, check_depth=False)`` returns,
    from orjson, five times faster, when that is certain; None when the strict path must decide.

    orjson refuses everything the strict path refuses (bytes that are not UTF-8, a BOM, NaN,
    Infinity, 1e999, a lone surrogate) and more, and reads every float to the same double.
    Where the two could differ, None: an integer of 19 digits or more (orjson may make it a
    float), and, with ``check_duplicates``, a repeated key, which orjson silently overwrites:
    the keys of the top object and of the objects down to two levels below it are counted
    against the places in the text where a key ends, and only a file where the two agree (so
    no key at all is repeated, nor hidden deeper) is taken.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if _LONG_DIGITS in data.translate(_DIGIT_TO_ZERO):
        return None
    if check_duplicates:
        colons = data.count(b":")
        ends = data.count(b'":')
        if ends != colons:  # a colon in a string, or a space before one: count exactly
            ends = len(_KEY_END.findall(data))
        if ends != _known_keys(obj):
            return None
    return obj


def _known_keys(obj: Any) -> int:
    """Keys in ``obj``, in the objects among its values and in the objects among theirs: a
    lower bound on the keys in the whole document (all of them, for a submission)."""
    if type(obj) is not dict:
        return 0
    count = len(obj)
    for value in obj.values():
        if type(value) is dict:
            count += len(value)
            for inner in value.values():
                if type(inner) is dict:
                    count += len(inner)
    return count


def read_bytes(
    path: str | os.PathLike, max_bytes: int = MAX_INPUT_BYTES, dir_fd: int | None = None, regular_only: bool = False
) -> tuple[bytes, int]:
    """A file's bytes and modification time ('-' reads standard input, time 0); anything over
    ``max_bytes`` is refused unread. With ``dir_fd``, ``path`` is relative to that open folder
    (no path to walk for each of thousands of files). A pipe is read to its end (a file given
    as <(...)), unless ``regular_only``: a folder of submissions may hold a pipe that some
    process keeps open and never ends, and one file must not stop the run."""
    if str(path) == "-":
        data = sys.stdin.buffer.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise InputError(None, f"input is over the limit of {max_bytes:,} bytes")
        return data, 0
    try:
        # Non-blocking open: a FIFO with no writer must not stop the run (it reads as empty).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        raise InputError(None, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)  # of the file opened, so that it cannot change between the two calls
        if st.st_size > max_bytes:
            raise InputError(None, f"file is {st.st_size:,} bytes; the limit is {max_bytes:,} (not read)")
        if regular_only and not stat.S_ISREG(st.st_mode):
            raise InputError(None, "not a regular file (a pipe, a device or a socket); not read")
        if not stat.S_ISREG(st.st_mode):
            os.set_blocking(fd, True)  # a pipe with a writer is read to its end
        # Read to the end of the file, or to one byte past the limit: the first read asks for
        # its size and one byte more, which an unchanged file answers with its size; any other
        # answer (a file that changed, a pipe) is read on until an empty read.
        chunks = [os.read(fd, st.st_size + 1)]
        size = len(chunks[0])
        # Exactly the size: the file as it was when it was looked at. (Fewer bytes may be a
        # short read, which some file systems give before the end.)
        at_end = size == st.st_size and stat.S_ISREG(st.st_mode)
        while not at_end and chunks[-1] and size <= max_bytes:
            chunks.append(os.read(fd, max_bytes + 1 - size))
            size += len(chunks[-1])
    except OSError as exc:
        raise InputError(None, f"cannot read the file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) > max_bytes:  # it grew after the stat
        raise InputError(None, f"file is over the limit of {max_bytes:,} bytes")
    return data, st.st_mtime_ns


def decode_utf8(data: bytes) -> str:
    """Bytes as UTF-8 text, or an InputError saying where they are not; a leading BOM (from
    Windows editors) is dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(None, f"not UTF-8 text (byte {exc.start} is invalid)") from None
    return text.removeprefix("\ufeff")


def read_text(path: str | os.PathLike, *, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """A file's text as UTF-8, refusing (unread) anything over ``max_bytes``; '-' reads stdin."""
    return decode_utf8(read_bytes(path, max_bytes)[0])


def load_json_file(path: str | os.PathLike, *, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    """``read_text`` then ``loads_strict``."""
    return loads_strict(read_text(path, max_bytes=max_bytes))


def _shape_of(value: Any, field: str) -> tuple[int, ...]:
    """The shape of a nested list of numbers, or an InputError saying where it goes wrong."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, dict)):
        kind = {bool: "a boolean", str: "a string", dict: "an object"}.get(type(value), "null")
        raise InputError(field, f"expected a number, got {kind}")
    if isinstance(value, (int, float)):
        return ()
    if not isinstance(value, list):
        raise InputError(field, f"expected a number or a list, got {type(value).__name__}")
    if not value:
        raise InputError(field, "is an empty list")
    shapes = [_shape_of(item, f"{field}[{n}]") for n, item in enumerate(value)]
    if any(s != shapes[0] for s in shapes):
        raise InputError(field, "is ragged: its rows have different lengths")
    return (len(value), *shapes[0])


def to_array(value: Any, field: str, ndim: int) -> np.ndarray:
    """A JSON value as a finite float64 array with ``ndim`` dimensions, or an InputError."""
    shape = _shape_of(value, field)
    if len(shape) != ndim:
        want = {0: "a number", 1: "a list of numbers", 2: "a list of rows (a matrix)"}[ndim]
        raise InputError(field, f"expected {want}, got {len(shape)} levels of nesting")
    try:
        array = np.array(value, dtype=np.float64)
    except OverflowError:  # an integer of 310 digits or more, which no float holds
        raise InputError(_too_large_entry(value, field) or field, "the number is too large to be finite") from None
    if not np.isfinite(array).all():  # a 1e999, read as infinity by a reader that leaves it here
        where = np.argwhere(~np.isfinite(array))[0]
        raise InputError(field + "".join(f"[{n}]" for n in where), "the number is too large to be finite")
    return array


def _too_large_entry(value: Any, field: str) -> str:
    """Where in ``value`` (a number or nested lists, as _shape_of accepted) the first integer
    beyond float range sits, e.g. x[2]."""
    if isinstance(value, list):
        for n, item in enumerate(value):
            where = _too_large_entry(item, f"{field}[{n}]")
            if where:
                return where
        return ""
    return field if not -sys.float_info.max <= value <= sys.float_info.max else ""


def _is_flat_list(value: Any) -> bool:
    return isinstance(value, list) and not any(isinstance(item, (list, dict)) for item in value)


def _encode(value: Any, indent: str) -> str:
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = (f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_encode(v, inner)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and value and not _is_flat_list(value):
        return "[\n" + ",\n".join(inner + _encode(v, inner) for v in value) + "\n" + indent + "]"
    # Numbers, strings, null, and lists of them stay on one line: a matrix reads as its rows.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


def dumps(obj: Any) -> str:
    """Deterministic, readable JSON: objects indented, each row of numbers on one line."""
    return _encode(obj, "") + "\n"


def encode_text(text: str) -> bytes:
    """UTF-8, with any lone surrogate from a hostile file written as its escape, never a crash."""
    return text.encode("utf-8", "backslashreplace")


def write_atomic(path: str | os.PathLike, text: str | bytes) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    with AtomicFile(path) as handle:
        handle.write(text)
        handle.commit()


class AtomicFile:
    """A file written piece by piece into a temporary file beside it, and put in place whole by
    ``commit()`` (flushed to disk, then renamed over the old one); if the block it is used in
    ends without a commit, the temporary file is removed and the old one left as it was."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self._handle = os.fdopen(fd, "wb")

    def write(self, text: str | bytes) -> None:
        self._handle.write(encode_text(text) if isinstance(text, str) else text)

    def commit(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, *exc_info) -> None:
        if not self._handle.closed:  # no commit: leave the old file whole
            self._handle.close()
        Path(self._tmp).unlink(missing_ok=True)


def tolist(array: np.ndarray) -> Any:
    """An array as nested lists of Python floats (full precision), turning -0.0 into 0.0."""
    return (np.asarray(array, dtype=np.float64) + 0.0).tolist()
