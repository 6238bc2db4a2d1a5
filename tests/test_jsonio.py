"""grader.jsonio: orjson's reading is taken only when it is exactly the strict reader's
(fast_loads), and files are written whole or not at all (AtomicFile, write_atomic)."""

import json
import math
import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from grader.jsonio import AtomicFile, InputError, decode_utf8, fast_loads, loads_strict, to_array, write_atomic

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**25), max_value=10**25),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
KEYS = st.sampled_from(["u", "h", "loss", "student_id", "a:b", 'q"', "é"])
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.lists(st.tuples(KEYS, inner), max_size=4),  # pairs: objects, maybe with repeated keys
    max_leaves=20,
)


def _object_text(value) -> str:
    """JSON text for VALUES, where a list of (key, value) pairs becomes an object that may repeat keys."""
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        return "{" + ", ".join(f"{json.dumps(k)}: {_object_text(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_object_text(v) for v in value) + "]"
    if isinstance(value, tuple):  # a pair inside a mixed list: write it as a two-item array
        return "[" + ", ".join(_object_text(v) for v in value) + "]"
    return json.dumps(value)


def _strict(data: bytes, check_duplicates: bool):
    try:
        return loads_strict(decode_utf8(data), check_duplicates=check_duplicates, check_depth=False, finite_floats=False)
    except InputError:
        return InputError


def _same(a, b) -> bool:
    """Equal, of the same types all the way down, floats to the bit."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("d", a) == struct.pack("d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=400)
@given(VALUES, st.booleans(), st.sampled_from(["", " ", "\n  "]))
@example(["pairs"], True, "")
@example([("u", 1), ("u", 2)], True, "")
@example([("a", [("u", 1), ("u", 2)])], True, "")
@example([("a", [[("u", 1), ("u", 2)]])], True, "")
@example([("a", 10**20)], True, "")
def test_fast_loads_is_the_strict_reading_or_declines(value, check_duplicates, space_before_colon):
    data = _object_text(value).replace('": ', f'"{space_before_colon}: ').encode()
    fast = fast_loads(data, check_duplicates=check_duplicates)
    if fast is not None:
        assert _same(fast, _strict(data, check_duplicates))


def test_fast_loads_declines_a_repeated_key():
    assert fast_loads(b'{"u": 1, "u": 2}') is None
    assert fast_loads(b'{"a": {"u": 1, "u": 2}}') is None
    assert fast_loads(b'{"a": [{"u": 1, "u": 2}]}') is None  # deeper than it counts


def test_fast_loads_takes_a_repeated_key_when_not_asked_to_check():
    assert fast_loads(b'{"u": 1, "u": 2}', check_duplicates=False) == {"u": 2}


def test_fast_loads_declines_what_the_strict_reader_must_word():
    for data in (b'{"loss": NaN}', b'{"loss": 1e999}', b"\xef\xbb\xbf{}", b'{"a": "\\ud800"}', b"\xff", b"[1,"):
        assert fast_loads(data) is None


def test_fast_loads_declines_a_long_integer():
    assert fast_loads(b'{"loss": 12345678901234567890123}') is None  # Python reads an int, orjson a float


def test_fast_loads_reads_a_submission():
    assert fast_loads(b'{"student_id": "s1", "answers": {"loss": 0.31, "u": [1, -2.5e-3]}}') == {
        "student_id": "s1",
        "answers": {"loss": 0.31, "u": [1, -0.0025]},
    }
    assert math.isclose(fast_loads(b'{"x" :  0.1}')["x"], 0.1)


SUBMISSION = (
    b'{"student_id": "s1", "answers": {"u": [1.5, -2, 0.25, 3e-2], "loss": 0.31},'
    b' "derivations": {"h": "elu(u_j)", "o": null}}'
)


@settings(max_examples=400)
@given(st.integers(0, len(SUBMISSION) - 1), st.binary(min_size=0, max_size=3), st.integers(0, 3))
@example(10, b"\xef\xbb\xbf", 0)
@example(0, b"\xef\xbb\xbf", 0)
@example(40, b'"u": 1, ', 0)
def test_fast_loads_on_a_damaged_file_is_the_strict_reading_or_declines(where, inserted, removed):
    data = SUBMISSION[:where] + inserted + SUBMISSION[where + removed :]
    fast = fast_loads(data)
    if fast is not None:
        assert _same(fast, _strict(data, True))


# --- AtomicFile (write_atomic, streamed) ------------------------------------------------------------


def test_an_atomic_file_appears_whole_on_commit(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with AtomicFile(path) as handle:
        handle.write("new, ")
        handle.write(b"in pieces")
        assert path.read_text() == "old"  # nothing shows before the commit
        handle.commit()
    assert path.read_text() == "new, in pieces"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_an_atomic_file_left_without_commit_leaves_the_old_one(tmp_path):
    path = tmp_path / "grades.csv"
    path.write_text("old")
    try:
        with AtomicFile(path) as handle:
            handle.write("half of it")
            raise RuntimeError("a worker failed")
    except RuntimeError:
        pass
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["grades.csv"]


def test_write_atomic_writes_text_as_utf8_with_lone_surrogates_escaped(tmp_path):
    write_atomic(tmp_path / "f.md", "é \ud800")
    assert (tmp_path / "f.md").read_bytes() == "é ".encode() + b"\\ud800"


def test_to_array_names_an_integer_beyond_float_range_as_one_line():
    with pytest.raises(InputError) as info:
        to_array([[1, 2], [3, 10**310]], "v", 2)
    assert str(info.value) == "v[1][1]: the number is too large to be finite"


def test_too_deep_nesting_names_the_keys_down_to_it():
    deep = "[" * 40 + "1" + "]" * 40
    with pytest.raises(InputError) as info:
        loads_strict('{"ok": 1, "students": {"s1": {"x": ' + deep + "}}}")
    assert str(info.value) == "students.s1: arrays or objects nest deeper than 32 levels"
    with pytest.raises(InputError) as info:
        loads_strict(deep)
    assert str(info.value) == "arrays or objects nest deeper than 32 levels"  # at the top: no field


@pytest.mark.parametrize(
    "text,field",
    [
        ('{"x": NaN}', "x"),
        ('{"v": [[1, 2], [3, Infinity]]}', "v[1][1]"),
        ('{"students": [{}, {"params": {"x": [1, -Infinity]}}]}', "students[1].params.x[1]"),
        ('{"answers": {"2": {"u": NaN}}}', "answers.2.u"),
        ('{"a": "NaN", "b": [NaN]}', "b[0]"),  # the text of a string is no number
        ('{"u": 1, "u": NaN, "u": 2}', "u"),  # a repeated key: the value as written, not the last
        ('{"\\u001b[2J": NaN}', "\\x1b[2J"),  # a key is quoted escaped
        ("NaN", None),  # the whole document
        ('[1, {"k": [2, NaN]}]', "[1].k[1]"),
    ],
)
def test_the_field_of_a_refused_non_finite_number_is_named(text, field):
    with pytest.raises(InputError) as info:
        loads_strict(text)
    assert info.value.field == field


def test_a_number_too_large_for_a_float_is_named_where_the_reader_refuses_it():
    text = '{"a": [1e999], "b": NaN}'
    with pytest.raises(InputError) as info:
        loads_strict(text)
    assert str(info.value) == "a[0]: 1e999 is too large to be a finite number"
    with pytest.raises(InputError) as info:  # a reader that leaves 1e999 for later refuses the NaN
        loads_strict(text, finite_floats=False)
    assert str(info.value) == "b: NaN is not a number JSON allows; write a finite number"


def test_a_repeated_key_is_quoted_escaped_and_clipped():
    with pytest.raises(InputError) as info:
        loads_strict(json.dumps({"\x1b" + "k" * 100: 1}).replace("}", ', "\\u001b' + "k" * 100 + '": 2}'))
    assert str(info.value) == "\\x1b" + "k" * 39 + "...: appears twice in the same object; keep one"


@pytest.mark.parametrize("text", ["", "   ", "\n\t\r\n"])
def test_an_empty_text_is_said_to_be_empty(text):
    with pytest.raises(InputError) as info:
        loads_strict(text)
    assert str(info.value) == "the file is empty (no JSON in it)"


def test_an_entry_too_large_for_a_float_is_named_by_to_array():
    with pytest.raises(InputError) as info:
        to_array([[1.0, 2.0], [3.0, math.inf]], "v", 2)
    assert str(info.value) == "v[1][1]: the number is too large to be finite"
