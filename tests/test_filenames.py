"""File-name stems (grader.filenames), and the shortcuts a large manifest takes through them."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from grader.filenames import _distinct_one_by_one, all_safe_stems, distinct_stems, is_safe_stem
from grader.grading import _without_stored_answers

STEM_TEXT = st.text(alphabet="aZ09._-/\n é\r", max_size=8)


@given(st.lists(st.one_of(STEM_TEXT, st.text(max_size=3), st.integers(), st.none()), max_size=5))
@example(["0\n0"])  # a line break inside one stem, not between two
@example(["a" * 129])
@example([".hidden"])
def test_all_safe_stems_is_is_safe_stem_for_every_item(stems):
    assert all_safe_stems(stems) == (bool(stems) and all(type(s) is str and is_safe_stem(s) for s in stems))


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
