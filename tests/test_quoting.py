"""grader.quoting: what a message quotes of a file or an argument is escaped and kept short."""

from __future__ import annotations

import os

import pytest

from grader.formatting import counted
from grader.quoting import clip, escaped, shown_path


@pytest.mark.parametrize(
    "text,shown",
    [
        ("plain", "plain"),
        ("\x1b[2Jevil", "\\x1b[2Jevil"),
        ("two\nlines", "two\\nlines"),
        ("half \ud800 pair", "half \\ud800 pair"),
        ("\u202egnp.exe", "\\u202egnp.exe"),
        ("Ünïcode 학생 C:\\path", "Ünïcode 학생 C:\\path"),  # printable text, backslashes too, as it is
    ],
)
def test_escaped_writes_only_what_is_not_printable_as_its_escape(text, shown):
    assert escaped(text) == shown
    assert escaped(shown) == shown  # escaping twice changes nothing


def test_clip_cuts_then_escapes():
    assert clip("k" * 5000) == "k" * 40 + "..."
    assert clip("\x1b" * 50, 3) == "\\x1b\\x1b\\x1b..."
    assert clip("short") == "short"


def test_a_path_keeps_the_bytes_of_a_name_that_is_not_utf8_as_hex():
    assert shown_path(os.fsdecode(b"odd/bad\xffname.json")) == "odd/bad\\xffname.json"
    assert shown_path(b"odd/bad\xffname.json") == "odd/bad\\xffname.json"


def test_a_long_path_keeps_both_its_ends_in_a_message():
    assert shown_path("a" * 300 + "/name.json", 20) == "aaaaaaaaaa.../name.json"
    assert shown_path("a" * 300) == "a" * 300  # whole where no limit is asked for (the outputs)


def test_a_long_path_is_cut_before_it_is_escaped_so_no_escape_is_cut_in_two():
    assert shown_path("a" * 9 + "\udcff" + "b" * 30, 20) == "a" * 9 + "\\xff..." + "b" * 10  # a byte not UTF-8


@pytest.mark.parametrize("count,text", [(0, "0 records"), (1, "1 record"), (2, "2 records")])
def test_counted_is_singular_for_one(count, text):
    assert counted(count, "record") == text


def test_counted_takes_an_irregular_plural():
    assert counted(2, "index", "indices") == "2 indices" and counted(1, "index", "indices") == "1 index"
