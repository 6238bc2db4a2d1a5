"""Rosters: plain CSV files and Canvas gradebook exports, as they come, and every way they go wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader.jsonio import InputError
from grader.roster import id_problem, numbered_roster, parse_roster, read_roster

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

CANVAS = (
    "Student,ID,SIS User ID,SIS Login ID,Section,HW2 Backpropagation (812346),Current Score\r\n"
    "    Points Possible,,,,,60.00,(read only)\r\n"
    ',,,,,Manual Posting,\r\n'
    '"Kim, Minjun",48210,2020173471,mkim51,NN 01,,90.00\r\n'
    '"Müller, Jonas",48217,2018172186,jmuller2,NN 02,,80.00\r\n'
    '"Student, Test",48999,,8f2c0a1e,NN 01,,\r\n'
)


def test_plain_roster_keeps_every_other_column():
    roster = parse_roster("student_id,name,section,email\na1,Alice Smith,01,alice@example.edu\nb2,Bob,02,\n")
    assert roster.student_ids == ["a1", "b2"]
    assert roster.entries[0].columns == {"name": "Alice Smith", "section": "01", "email": "alice@example.edu"}
    assert roster.id_column == "student_id" and roster.skipped == ()


def test_canvas_export_as_it_comes():
    roster = parse_roster(CANVAS)
    assert roster.id_column == "SIS User ID"
    assert roster.student_ids == ["2020173471", "2018172186"]
    # The identity columns a Canvas import needs, not the scores.
    assert roster.entries[1].columns == {"Student": "Müller, Jonas", "ID": "48217", "SIS User ID": "2018172186", "SIS Login ID": "jmuller2", "Section": "NN 02"}
    assert roster.skipped == ((2, "Points Possible"), (3, "no student (a Canvas settings row)"), (6, "Canvas test student"))


def test_id_column_can_be_chosen():
    roster = parse_roster(CANVAS, id_column="ID")
    assert roster.student_ids == ["48210", "48217"]  # the test student is still not a student
    with pytest.raises(InputError, match=r"--id-column: no column 'Email'; the roster has columns 'Student', 'ID'"):
        parse_roster(CANVAS, id_column="Email")


def test_default_id_column_falls_back_to_canvas_id():
    assert parse_roster("Student,ID,Section\n\"A, B\",17,01\n").student_ids == ["17"]


def test_missing_id_column_names_the_columns():
    with pytest.raises(InputError, match=r"no student id column: expected one of 'student_id', 'SIS User ID', 'ID'; the roster has columns 'name', 'email'\. Choose one with --id-column"):
        parse_roster("name,email\nAlice,a@x\n")


@pytest.mark.parametrize("sid,why", [("a\tb", r"contains a control character \(\\t\)"), ("a\u200bb", r"contains a character that is not printable \(\\u200b\)"), ("x" * 201, "is 201 characters long; an id has at most 200")])
def test_an_id_no_submission_could_give_back_is_refused_with_its_row(sid, why):
    with pytest.raises(InputError, match=rf"^student_id: in row 3 {why}: a student's file could not give that id back$"):
        parse_roster(f'student_id\nok\n"{sid}"\n')


def test_duplicate_ids_name_the_rows():
    with pytest.raises(InputError, match=r"^student_id: has duplicate student ids: 'a' in rows 2, 4; 'b' in rows 3, 5$"):
        parse_roster("student_id\na\nb\na\nb\nc\n")


def test_duplicates_after_trimming_spaces_are_duplicates():
    with pytest.raises(InputError, match=r"'a' in rows 2, 3"):
        parse_roster("student_id\na\n  a \n")


def test_empty_ids_name_the_rows():
    with pytest.raises(InputError, match=r"^SIS User ID: is empty in rows 3, 4; every student needs an id$"):
        parse_roster('Student,ID,SIS User ID\n"A, B",1,s1\n"C, D",2,\n"E, F",3,  \n')


def test_many_bad_rows_are_counted_not_listed():
    text = "student_id,name\n" + "".join(f",n{k}\n" for k in range(15))
    with pytest.raises(InputError, match=r"is empty in rows 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 5 more;"):
        parse_roster(text)


def test_blank_lines_are_ignored():
    assert parse_roster("student_id\n\na\n\n,\nb\n\n").student_ids == ["a", "b"]


def test_byte_order_mark_of_excel_is_ignored(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("\ufeffstudent_id,name\r\na,Alice\r\n".encode("utf-8"))
    assert read_roster(path).student_ids == ["a"]
    assert read_roster(path).entries[0].columns == {"name": "Alice"}


def test_semicolons_and_tabs_of_some_spreadsheets():
    assert parse_roster("student_id;name\na;Alice\n").entries[0].columns == {"name": "Alice"}
    assert parse_roster("student_id\tname\na\tAlice\n").entries[0].columns == {"name": "Alice"}


def test_short_rows_are_padded_and_long_rows_refused():
    assert parse_roster("student_id,name,section\na\n").entries[0].columns == {"name": "", "section": ""}
    with pytest.raises(InputError, match=r"^row 3 has more cells than the header has columns$"):
        parse_roster("student_id,name\na,A\nb,B,extra\n")


OPEN_CELL = 'is a " missing or one too many?'


@pytest.mark.parametrize(
    "text, message",
    [
        # The quote after "1," swallows every later student into one name.
        ('student_id,name\n1,"Kim, A\n2,Lee\n3,Park\n4,Choi\n', f'row 2: a " opens a cell that is never closed ({OPEN_CELL})'),
        ('student_id,name\n1,A\n"unterminated,A\n', f'row 3: a " opens a cell that is never closed ({OPEN_CELL})'),
        ('student_id,name\n1,A\n"unterminated,A', f'row 3: a " opens a cell that is never closed ({OPEN_CELL})'),
        ('student_id,name\n1,"Kim, A\n2,"Lee"\n3,Park\n', f"row 2: a quoted cell runs over lines that look like further rows ({OPEN_CELL})"),
        ('student_id;name\r\n1;Kim\r\n2;"Lee\r\n3;B"\r\n', f"row 3: a quoted cell runs over lines that look like further rows ({OPEN_CELL})"),
    ],
)
def test_an_unbalanced_quote_swallowing_rows_is_refused_naming_the_row(text, message):
    with pytest.raises(InputError) as caught:
        parse_roster(text)
    assert str(caught.value) == message


def test_a_note_typed_over_two_lines_is_kept_and_rows_are_numbered_as_a_spreadsheet_does():
    roster = parse_roster('student_id,name,notes\n1,Kim,"late\r\nexcused"\n2,Lee,\n3,"Park",x\n')
    assert roster.student_ids == ["1", "2", "3"]
    assert roster.entries[0].columns["notes"] == "late\r\nexcused" and [e.row for e in roster.entries] == [2, 3, 4]


def test_a_stray_character_after_a_closing_quote_is_read_as_it_always_was():
    assert [e.columns["name"] for e in parse_roster('student_id,name\n1,"Kim" A\n2,Lee\n').entries] == ["Kim A", "Lee"]


def test_quotes_that_balance_on_their_line_are_fine():
    roster = parse_roster('student_id,name\n1,"Kim, ""Min"" A"\n2,Lee "B" C\n"3",\n')
    assert roster.student_ids == ["1", "2", "3"]
    assert [e.columns["name"] for e in roster.entries] == ['Kim, "Min" A', 'Lee "B" C', ""]


def test_empty_and_headless_rosters():
    for text in ("", "\n\n", " , \n"):
        with pytest.raises(InputError, match="the roster is empty"):
            parse_roster(text)
    with pytest.raises(InputError, match="the roster has no students"):
        parse_roster("student_id,name\n")


def test_repeated_header_columns_are_refused():
    with pytest.raises(InputError, match=r"the header names column 'name' more than once"):
        parse_roster("student_id,name,name\na,b,c\n")


def test_an_id_that_is_not_utf8_is_refused_with_the_byte(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"student_id,name\na,Alice\n\xff,Bob\n")
    with pytest.raises(InputError, match=r"^not UTF-8 text \(byte 24 is invalid\)$"):
        read_roster(path)


def test_unreadable_files():
    with pytest.raises(InputError, match=r"^cannot read the file: "):
        read_roster("nope.csv")


def test_numbered_roster():
    assert numbered_roster(3).student_ids == ["student-001", "student-002", "student-003"]
    assert numbered_roster(1200).student_ids[-1] == "student-1200"


# Any id a submission can give back (printable: see roster.id_problem).
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=200).map(str.strip).filter(str.isprintable).filter(bool), min_size=1, max_size=20, unique=True))
def test_any_ids_survive_a_round_trip_through_csv(ids):
    import csv
    import io

    out = io.StringIO()
    csv.writer(out).writerows([["student_id", "name"], *[[sid, f"name {n}"] for n, sid in enumerate(ids)]])
    assert parse_roster(out.getvalue()).student_ids == ids


def test_the_shipped_examples():
    canvas = read_roster(EXAMPLES / "roster.csv")
    plain = read_roster(EXAMPLES / "roster_plain.csv")
    assert len(canvas.entries) == len(plain.entries) == 30
    assert canvas.student_ids == plain.student_ids
    assert [why for _, why in canvas.skipped] == ["Points Possible", "Canvas test student"]


def test_a_lone_surrogate_in_an_id_is_called_what_it_is():
    assert id_problem("ab\udc80") == "contains a lone surrogate (\\udc80), half of a UTF-16 pair and not a character"
