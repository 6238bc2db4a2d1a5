"""File-name stems (grader.filenames), and the shortcuts a large manifest takes through them."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

import pytest

from grader.filenames import _distinct_one_by_one, all_safe_stems, assign_stems, distinct_stems, is_safe_stem, safe_stem
from grader.grading import _without_stored_answers

STEM_TEXT = st.text(alphabet="aZ09._-/\n é\r", max_size=8)


@given(st.lists(st.one_of(STEM_TEXT, st.text(max_size=3), st.integers(), st.none()), max_size=5))
@example(["0\n0"])  # a line break inside one stem, not between two
@example(["a" * 129])
@example([".hidden"])
@example(["ok", "nul.txt"])  # a name Windows reserves, with an extension
@example(["ok", "-rf"])  # read as an option by shell tools
@example(["Com0"])
def test_all_safe_stems_is_is_safe_stem_for_every_item(stems):
    assert all_safe_stems(stems) == (bool(stems) and all(type(s) is str and is_safe_stem(s) for s in stems))


@pytest.mark.parametrize("student_id", ["nul.txt", "NUL.tar.gz", "con", "lpt1.x", "-rf", "--", ".-x"])
def test_a_reserved_or_dash_led_id_gets_a_stem_that_is_neither(student_id):
    stem = safe_stem(student_id)
    assert is_safe_stem(stem) and not stem.startswith("-") and stem.split(".")[0].lower() not in {"nul", "con", "lpt1"}
    assert not is_safe_stem(student_id)


def test_a_stem_changed_for_being_reserved_stays_distinct_from_the_id_it_looks_like():
    stems = assign_stems(["nul.txt", "_nul.txt", "-rf", "_-rf"])
    assert len({stem.lower() for stem in stems.values()}) == 4


@given(st.text(alphabet="nulNUL.-_a/ ", max_size=10))
def test_safe_stem_always_makes_a_stem_is_safe_stem_accepts(student_id):
    assert is_safe_stem(safe_stem(student_id))


@given(st.dictionaries(st.text(max_size=4), st.text(alphabet="aAbB", min_size=1, max_size=3), max_size=6), st.sampled_from([(), ("keys",), ("A",)]))
def test_distinct_stems_is_the_one_by_one_rule(stems, reserved):
    """Its shortcut for a class where no two stems clash changes nothing."""
    assert distinct_stems(stems, reserved) == _distinct_one_by_one(stems, reserved)


def _without_answers_by_split(data: bytes) -> bytes:
    """The rule as first written: split at every stored answers object."""
    pieces = data.split(b'"answers": {')
    out = [pieces[0]]
    for piece in pieces[1:]:
        end = piece.find(b"}")
        if end < 0 or piece.find(b"{", 0, end) >= 0:
            return data
        out += [b'"answers": null', piece[end + 1 :]]
    return b"".join(out)


@given(st.lists(st.sampled_from([b'"answers": {', b"}", b"{", b'"u": [1, 2]', b", ", b'"answers": null', b"x"]), max_size=12))
def test_stored_answers_are_cut_as_the_split_rule_cuts_them(pieces):
    data = b"".join(pieces)
    assert _without_stored_answers(data) == _without_answers_by_split(data)
