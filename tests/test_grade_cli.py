"""`hwgen grade` and `hwgen check` end to end, through click's CliRunner.

The golden files under tests/golden/grade/ are what `hwgen grade submissions/` writes for the
shipped samples. After an intended change, regenerate them with

    HWGEN_UPDATE_GOLDEN=1 python -m pytest tests/test_grade_cli.py

and review the diff.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader import variants
from grader.cli import cli
from grader.manifest import Manifest, StudentRecord
from grader.params import answers_to_json, solve_one

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "submissions"
GOLDEN = Path(__file__).resolve().parent / "golden" / "grade"
UPDATE = os.environ.get("HWGEN_UPDATE_GOLDEN") == "1"


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    """A working folder holding a copy of the shipped submissions/, as a TA would have."""
    shutil.copytree(SAMPLES, tmp_path / "submissions")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args, input=None):
    return CliRunner().invoke(cli, list(args), input=input)


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- grade on the shipped samples ---------------------------------------------------------------------


def test_grade_works_out_of_the_box_on_the_shipped_samples(workdir):
    result = run("grade", "submissions/")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (workdir / "grades").iterdir()) == ["canvas.csv", "feedback", "grades.csv", "results.json"]


def test_grade_says_on_stderr_when_there_is_no_manifest(workdir):
    result = run("grade", "submissions/")
    assert "No manifest: grading every file against the HW#2 instance" in result.stderr and result.stdout == ""


def test_grade_ends_with_a_summary(workdir):
    assert "records:" in run("grade", "submissions/").stderr.splitlines()[-2]


def test_the_real_hw2_student_gets_log10_loss_and_38(workdir):
    run("grade", "submissions/")
    record = next(s for s in json.loads((workdir / "grades/results.json").read_text())["students"] if s["student_id"] == "2018170622")
    assert (record["score"], record["misconceptions"]) == (38.0, ["log10-loss"])


@pytest.mark.parametrize(
    "sample,score,misconceptions,follow_through",
    [
        ("right_4_decimals.json", 40.0, [], []),
        ("rounded_3_sig_figs.json", 40.0, [], []),
        ("slip_then_follow_through.json", 39.5, [], ["z", "o", "loss", "grad_w", "grad_v", "w_new", "v_new"]),
        ("elu_derivative_one.json", 38.125, ["elu-derivative-one"], ["v_new"]),
        ("transposed_gradient.json", 36.25, ["transposed-gradient"], []),
        ("gradient_ascent.json", 28.125, ["gradient-ascent"], []),
        ("part5_blank.json", 25.0, [], []),
        ("with_derivations.json", 60.0, [], []),
    ],
)
def test_each_sample_is_graded_as_intended(workdir, sample, score, misconceptions, follow_through):
    run("grade", "submissions/")
    record = next(s for s in json.loads((workdir / "grades/results.json").read_text())["students"] if s["source"] == f"submissions/{sample}")
    assert (record["status"], record["score"], record["misconceptions"], record["follow_through"]) == ("graded", score, misconceptions, follow_through)


@pytest.mark.parametrize("sample", ["malformed_nan.json", "malformed_string.json"])
def test_malformed_samples_are_invalid_with_a_reason(workdir, sample):
    run("grade", "submissions/")
    record = next(s for s in json.loads((workdir / "grades/results.json").read_text())["students"] if s["source"] == f"submissions/{sample}")
    assert record["status"] == "invalid" and record["score"] == 0 and len(record["errors"]) == 1


def test_an_integer_of_thousands_of_digits_is_one_line_and_the_class_is_graded(workdir):
    big = json.loads((workdir / "submissions" / "right_4_decimals.json").read_text())
    big["student_id"], big["answers"]["loss"] = "big-1", 12345.5
    (workdir / "submissions" / "big.json").write_text(json.dumps(big).replace("12345.5", "1" + "0" * 5000))
    result = run("grade", "submissions/")
    assert result.exit_code == 0, result.output
    records = {r["source"]: r for r in json.loads((workdir / "grades" / "results.json").read_text())["students"]}
    assert records["submissions/big.json"]["errors"] == ["answers.loss: the number is too large to be finite"]
    assert records["submissions/right_4_decimals.json"]["score"] == 40.0
    checked = run("check", "submissions/big.json")
    assert checked.exit_code == 1 and "answers.loss: the number is too large to be finite" in checked.stdout


@pytest.mark.parametrize("literal,reason", [("NaN", "NaN, which is not a finite number (JSON allows only finite numbers)"), ("1e999", "the number is too large to be finite")])
def test_grade_and_check_refuse_a_non_finite_number_in_an_unknown_key_alike(workdir, literal, reason):
    sub = json.loads((workdir / "submissions" / "right_4_decimals.json").read_text())
    (workdir / "submissions" / "extra.json").write_text(json.dumps({**sub, "student_id": "x-1", "extra": 12345.5}).replace("12345.5", literal))
    run("grade", "submissions/")
    records = {r["source"]: r for r in json.loads((workdir / "grades" / "results.json").read_text())["students"]}
    assert (records["submissions/extra.json"]["status"], records["submissions/extra.json"]["errors"]) == ("invalid", [f"extra: {reason}"])
    checked = run("check", "submissions/extra.json")
    assert checked.exit_code == 1 and f"extra.json: error: extra: {reason}\n" in checked.stdout


def test_grade_output_matches_the_golden_files(workdir):
    assert run("grade", "submissions/").exit_code == 0
    out = workdir / "grades"
    if UPDATE:
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(out, GOLDEN)
    assert digest(out) == digest(GOLDEN), "outputs changed; see the module docstring to update the golden files"


def test_grade_twice_gives_byte_identical_outputs(workdir):
    run("grade", "submissions/", "--out", "a")
    run("grade", "submissions/", "--out", "b")
    assert digest(workdir / "a") == digest(workdir / "b")


def test_grade_never_modifies_its_inputs(workdir):
    before = digest(workdir / "submissions")
    run("grade", "submissions/")
    assert digest(workdir / "submissions") == before


def test_grade_reveal_shows_the_expected_values(workdir):
    run("grade", "submissions/", "--reveal")
    assert "| L | 0.1344 | 0.3095 | wrong: log10-loss |" in (workdir / "grades/feedback/2018170622.md").read_text()


def test_grade_assignment_names_the_canvas_column(workdir):
    run("grade", "submissions/", "--assignment", "HW#2 Problem 1")
    assert (workdir / "grades/canvas.csv").read_text().splitlines()[0].endswith(",HW#2 Problem 1")


@pytest.mark.parametrize(
    "name, why",
    [
        ('HW2 "B",\n(1)', "contains control characters (a line break, a tab, ...); it is a column name of canvas.csv"),
        ("HW2\tB", "contains control characters (a line break, a tab, ...); it is a column name of canvas.csv"),
        ("HW2\u2028B", "contains control characters (a line break, a tab, ...); it is a column name of canvas.csv"),
        ("HW2 \udcff", "not valid UTF-8 text"),
    ],
)
def test_an_assignment_name_with_control_characters_is_a_usage_error(workdir, name, why):
    result = run("grade", "submissions/", "--assignment", name)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"Error: Invalid value for '--assignment': {why}"
    assert not (workdir / "grades").exists()


def test_quotes_and_commas_in_an_assignment_name_are_one_csv_cell(workdir):
    assert run("grade", "submissions/", "--assignment", 'HW2 "B", (1)').exit_code == 0
    header = (workdir / "grades/canvas.csv").read_text().splitlines()[0]
    assert header.endswith(',"HW2 ""B"", (1)"')


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_assignment_name_is_a_usage_error(workdir, name):
    result = run("grade", "submissions/", "--assignment", name)
    assert result.exit_code == 2 and "'--assignment': must not be empty" in result.stderr
    assert not (workdir / "grades").exists()


def test_grade_lists_other_files_as_skipped(workdir):
    (workdir / "submissions" / "notes.txt").write_text("not a submission")
    result = run("grade", "submissions/")
    assert "Skipped (not .json): submissions/notes.txt" in result.stderr
    assert json.loads((workdir / "grades/results.json").read_text())["skipped"] == ["submissions/notes.txt"]


def test_grade_no_follow_through_gives_less(workdir):
    run("grade", "submissions/slip_then_follow_through.json", "--no-follow-through")
    (record,) = json.loads((workdir / "grades/results.json").read_text())["students"]
    assert record["score"] < 39.5 and record["follow_through"] == []


def test_grade_sigfigs_records_the_tolerance(workdir):
    run("grade", "submissions/", "--sigfigs", "3")
    assert json.loads((workdir / "grades/results.json").read_text())["tolerance"]["sigfigs"] == 3


def test_grade_sigfigs_records_the_rtol_it_sets(workdir):
    run("grade", "submissions/", "--sigfigs", "4")
    assert json.loads((workdir / "grades/results.json").read_text())["tolerance"] == {"rtol": 0.001, "atol": 0.001, "sigfigs": 4}


def test_grade_sigfigs_and_rtol_together_is_a_usage_error(workdir):
    result = run("grade", "submissions/", "--sigfigs", "3", "--rtol", "0.02")
    assert result.exit_code == 2 and "--rtol and --sigfigs both set the relative tolerance; give one of them" in result.stderr


def test_grade_sigfigs_below_2_is_a_usage_error(workdir):
    # One figure would be a relative tolerance of 100%: any answer of the right sign is right.
    assert run("grade", "submissions/", "--sigfigs", "1").exit_code == 2


def test_grade_with_a_rubric_file(workdir):
    rubric = (ROOT / "grader" / "rubric.toml").read_text().replace("transposed-gradient = 0.5", "transposed-gradient = 1.0")
    (workdir / "r.toml").write_text(rubric)
    run("grade", "submissions/transposed_gradient.json", "--rubric", "r.toml")
    assert json.loads((workdir / "grades/results.json").read_text())["students"][0]["score"] == 40.0


def test_two_files_for_one_student_are_both_reported_and_the_newer_graded(workdir):
    first = workdir / "submissions" / "right_4_decimals.json"
    second = workdir / "submissions" / "again.json"
    second.write_text(first.read_text().replace('"loss": 0.3095', '"loss": 9.0'))
    os.utime(first, ns=(10**18, 10**18))
    os.utime(second, ns=(2 * 10**18, 2 * 10**18))
    result = run("grade", "submissions/")
    record = next(s for s in json.loads((workdir / "grades/results.json").read_text())["students"] if s["student_id"] == "2019123456")
    assert record["source"] == "submissions/again.json" and record["other_sources"] == ["submissions/right_4_decimals.json"]
    assert "2019123456: several files" in result.stderr


# --- usage errors ---------------------------------------------------------------------------------------


def test_a_missing_manifest_is_a_usage_error(workdir):
    assert run("grade", "submissions/", "--manifest", "nope.json").exit_code == 2


def test_a_bad_option_is_a_usage_error(workdir):
    assert run("grade", "submissions/", "--rtol", "-1").exit_code == 2
    assert run("grade", "submissions/", "--rtol", "nan").exit_code == 2


def test_a_missing_submissions_path_is_a_usage_error(workdir):
    assert run("grade", "nowhere/").exit_code == 2


def test_a_bad_rubric_is_an_error_naming_the_field(workdir):
    (workdir / "r.toml").write_text("follow_through = 2\n[answers.2]\nu = 1\n")
    result = run("grade", "submissions/", "--rubric", "r.toml")
    assert result.exit_code == 1 and "r.toml: answers.h: is in no answers part" in result.stderr


def test_rubric_points_too_large_to_total_are_refused_in_one_line(workdir):
    text = (ROOT / "grader" / "rubric.toml").read_text()
    (workdir / "r.toml").write_text(text.replace("\nu = 2\n", "\nu = 1e308\n").replace("\nh = 2\n", "\nh = 1e308\n"))
    result = run("grade", "submissions/", "--rubric", "r.toml")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "Error: r.toml: answers.2.u: is over the limit of 1,000,000 points"


# --- with a manifest ----------------------------------------------------------------------------------------


@pytest.fixture()
def generated_class(tmp_path, monkeypatch):
    """A class of three with a manifest in the working folder, two of whom submitted."""
    monkeypatch.chdir(tmp_path)
    ids = ["alice", "bob", "carol"]
    params = variants.variants("seed", ids)
    roster = {"alice": {"Student": "Liddell, Alice", "ID": "11", "SIS User ID": "A1", "SIS Login ID": "alice", "Section": "S1"}}
    Manifest("fp", tuple(StudentRecord(s, s, p, roster.get(s, {})) for s, p in zip(ids, params))).write("manifest.json")
    (tmp_path / "in").mkdir()
    for sid, p in zip(ids[:2], params[:2]):
        (tmp_path / "in" / f"{sid}.json").write_text(json.dumps({"student_id": sid, "answers": answers_to_json(solve_one(p))}))
    return tmp_path


@pytest.mark.parametrize("workers", ["1", "3"])
def test_a_broken_manifest_is_one_line_and_exit_1_while_workers_read(generated_class, monkeypatch, workers):
    from grader import parallel

    monkeypatch.setenv("HWGEN_WORKERS", workers)
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 1)
    (generated_class / "manifest.json").write_text('{"students": [{"student_id": 5}]}')
    result = run("grade", "in")
    assert result.exit_code == 1 and not (generated_class / "grades" / "results.json").exists()
    assert result.stderr.splitlines()[-1].startswith("Error: manifest.json: students[0].student_id")


def test_an_integer_beyond_float_range_in_a_manifest_is_one_line_naming_the_field(generated_class):
    text = (generated_class / "manifest.json").read_text()
    (generated_class / "manifest.json").write_text(text.replace('"lr": 0.1', '"lr": 1' + "0" * 310, 1))
    for command in (["grade", "in"], ["check", "in/alice.json", "--manifest", "manifest.json"]):
        result = run(*command)
        assert result.exit_code == 1
        assert result.stderr.splitlines()[-1] == "Error: manifest.json: students[0].params.lr: the number is too large to be finite"


def test_grade_uses_manifest_json_in_the_working_folder(generated_class):
    result = run("grade", "in")
    assert result.exit_code == 0 and "No manifest" not in result.stderr
    students = json.loads((generated_class / "grades/results.json").read_text())["students"]
    assert [(s["student_id"], s["status"], s["score"]) for s in students] == [("alice", "graded", 40.0), ("bob", "graded", 40.0), ("carol", "missing", 0.0)]


def test_canvas_csv_is_filled_from_the_roster_columns(generated_class):
    run("grade", "in")
    lines = (generated_class / "grades/canvas.csv").read_text().splitlines()
    assert lines[0] == "Student,ID,SIS User ID,SIS Login ID,Section,HW2" and lines[1] == '"Liddell, Alice",11,A1,alice,S1,40'


def test_a_missing_student_gets_feedback_saying_so(generated_class):
    run("grade", "in")
    assert "No submission was found" in (generated_class / "grades/feedback/carol.md").read_text()


def test_an_answer_to_the_wrong_variant_is_not_full_marks(generated_class):
    alice = json.loads((generated_class / "in/alice.json").read_text())
    (generated_class / "in/bob.json").write_text(json.dumps({"student_id": "bob", "answers": alice["answers"]}))
    run("grade", "in")
    bob = json.loads((generated_class / "grades/results.json").read_text())["students"][1]
    assert bob["score"] < 40


# --- check --------------------------------------------------------------------------------------------------


def test_check_accepts_a_well_formed_file(workdir):
    result = run("check", "submissions/right_4_decimals.json")
    assert result.exit_code == 0 and result.stdout.endswith("well-formed; 53 of 53 answer entries given\n")


def test_check_lists_missing_answers_and_still_accepts(workdir):
    result = run("check", "submissions/part5_blank.json")
    assert result.exit_code == 0 and "missing: answers.w_new" in result.stdout


def test_check_rejects_a_malformed_file_with_one_line_per_problem(workdir):
    result = run("check", "submissions/malformed_string.json")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "submissions/malformed_string.json: error: answers.loss: expected a number, got a string",
        "submissions/malformed_string.json: not well-formed (1 problem)",
    ]


def test_check_reads_standard_input(workdir):
    result = run("check", "-", input=(workdir / "submissions/hw2_real_student.json").read_text())
    assert result.exit_code == 0 and result.stdout.startswith("standard input: well-formed")


def test_check_never_says_whether_an_answer_is_right(workdir):
    for sample in sorted((workdir / "submissions").glob("*.json")):
        lines = run("check", str(sample.relative_to(workdir))).stdout.lower().splitlines()
        out = "\n".join(line.split(": ", 1)[1] for line in lines)  # without the file name
        assert "right" not in out and "wrong" not in out and "log10" not in out and "score" not in out


def test_check_with_a_manifest_knows_each_students_id(generated_class):
    (generated_class / "x.json").write_text(json.dumps({"student_id": "mallory", "answers": {}}))
    result = run("check", "x.json")
    assert result.exit_code == 1 and "'mallory' is not in the manifest" in result.stdout


def test_check_reports_derivations_that_do_not_parse(workdir):
    obj = json.loads((workdir / "submissions/with_derivations.json").read_text())
    obj["derivations"]["u"] = "sum(v[j,i] * x[i], i"
    (workdir / "d.json").write_text(json.dumps(obj))
    result = run("check", "d.json")
    assert result.exit_code == 1 and "error: derivations" in result.stdout


def test_check_lists_the_derivations_left_out_once_one_is_written(workdir):
    obj = json.loads((workdir / "submissions/right_4_decimals.json").read_text())
    obj["derivations"] = {"o": "exp(z[k]) / sum(exp(z[m]), m)", "h": "  "}
    (workdir / "d.json").write_text(json.dumps(obj))
    result = run("check", "d.json")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        *(f"d.json: missing: derivations.{key}" for key in ("u", "h", "z", "grad_w", "grad_v")),
        "d.json: well-formed; 53 of 53 answer entries given",
    ]


@pytest.mark.parametrize("block", [{"u": "", "h": " ", "z": None}, {"hh": "x"}, {}], ids=["blank", "unknown-only", "empty"])
def test_blank_derivations_leave_parts_1_and_3_ungraded(workdir, block):
    obj = json.loads((workdir / "submissions/right_4_decimals.json").read_text())
    obj["derivations"] = block
    (workdir / "in").mkdir()
    (workdir / "in/d.json").write_text(json.dumps(obj))
    run("grade", "in")
    record = json.loads((workdir / "grades/results.json").read_text())["students"][0]
    assert (record["score"], record["max_score"]) == (40.0, 40.0)
    assert run("check", "in/d.json").stdout.splitlines()[-1] == "in/d.json: well-formed; 53 of 53 answer entries given"


# --- the output folder ----------------------------------------------------------------------------


def test_grade_leaves_a_folder_alone_that_is_not_its_output(workdir):
    notes = workdir / "notes"
    (notes / "feedback").mkdir(parents=True)
    (notes / "feedback" / "lecture1.md").write_text("my notes")
    (notes / "grades.csv").write_text("name,grade\n")
    before = digest(notes)
    result = run("grade", "submissions/", "--out", "notes")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == "Error: notes is not empty and holds no results.json of hwgen grade; it is left alone: choose a new or empty folder"
    assert digest(notes) == before


def test_grade_never_writes_into_the_submissions_folder(workdir):
    before = digest(workdir / "submissions")
    assert run("grade", "submissions/", "--out", "submissions").exit_code == 1
    assert digest(workdir / "submissions") == before


def test_grade_writes_into_an_empty_folder_and_regrades_into_its_own_output(workdir):
    (workdir / "empty").mkdir()
    assert run("grade", "submissions/", "--out", "empty").exit_code == 0
    first = digest(workdir / "empty")
    assert run("grade", "submissions/", "--out", "empty").exit_code == 0
    assert digest(workdir / "empty") == first


@pytest.mark.parametrize("out", ["out", "/dev/null"], ids=["a file", "a device"])
@pytest.mark.parametrize("command", [["grade", "submissions/"], ["generate", "--seed", "s", "--count", "2", "--no-pdf"]], ids=["grade", "generate"])
def test_an_output_folder_that_is_not_a_folder_is_a_usage_error(workdir, out, command):
    if out == "out":
        (workdir / "out").write_text("")
    elif not os.path.exists(out):
        pytest.skip(f"no {out} here")
    result = run(*command, "--out", out)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"Error: Invalid value for '--out': '{out}' exists and is not a folder"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_pipe_in_the_submissions_folder_kept_open_by_a_writer_is_refused_not_waited_on(workdir):
    import subprocess
    import sys

    os.mkfifo(workdir / "submissions" / "pipe.json")
    writer = os.open(workdir / "submissions" / "pipe.json", os.O_RDWR)  # a writer that never ends it
    try:
        done = subprocess.run([sys.executable, "-m", "grader", "grade", "submissions/"], cwd=workdir, capture_output=True, text=True, timeout=120)
    finally:
        os.close(writer)
    assert done.returncode == 0, done.stderr
    records = {r["source"]: r for r in json.loads((workdir / "grades" / "results.json").read_text())["students"]}
    assert records["submissions/pipe.json"]["errors"] == ["not a regular file (a pipe, a device or a socket); not read"]


def test_an_earlier_output_kept_among_the_submissions_is_not_read_as_submissions(workdir):
    assert run("grade", "submissions/", "--out", "submissions/old-grades").exit_code == 0
    first = json.loads((workdir / "submissions" / "old-grades" / "results.json").read_text())
    assert run("grade", "submissions/", "--out", "new-grades").exit_code == 0
    second = json.loads((workdir / "new-grades" / "results.json").read_text())
    assert len(second["students"]) == len(first["students"]) and second["skipped"] == []


def test_file_names_that_are_not_utf8_or_hold_a_newline_are_shown_escaped(workdir):
    source = (workdir / "submissions" / "right_4_decimals.json").read_bytes()
    folder = workdir / "odd"
    folder.mkdir()
    (folder / "b\nWarning: forged.json").write_bytes(source)
    with open(os.path.join(os.fsencode(folder), b"bad\xffname.json"), "wb") as handle:
        handle.write(source)
    for name in os.listdir(os.fsencode(folder)):  # unzipped together: one modification time
        os.utime(os.path.join(os.fsencode(folder), name), ns=(10**18, 10**18))
    result = run("grade", "odd", "--out", "out")
    assert result.exit_code == 0
    warning = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert warning == ["Warning: 2019123456: several files; graded odd/bad\\xffname.json (its warnings say why)"]
    record = json.loads((workdir / "out" / "results.json").read_bytes().decode("utf-8"))["students"][0]
    assert record["other_sources"] == ["odd/b\\nWarning: forged.json"]
    assert record["warnings"] == [
        "2 files for this student with the same modification time: graded odd/bad\\xffname.json, the last by name; not graded: odd/b\\nWarning: forged.json"
    ]


# --- messages: the field of a bad number, user text escaped, wording, a full disk ------------------------------


@pytest.mark.parametrize(
    "literal,reason",
    [("NaN", "NaN is not a number JSON allows; write a finite number"), ("1e999", "the number is too large to be finite")],
)
def test_a_non_finite_number_in_a_manifest_names_its_entry(generated_class, literal, reason):
    manifest = json.loads((generated_class / "manifest.json").read_text())
    manifest["students"][1]["params"]["x"][2] = 12345.5
    (generated_class / "m.json").write_text(json.dumps(manifest).replace("12345.5", literal))
    for command in (["grade", "in", "--manifest", "m.json"], ["check", "in/alice.json", "--manifest", "m.json"]):
        result = run(*command)
        assert result.exit_code == 1
        assert result.stderr.splitlines()[-1] == f"Error: m.json: students[1].params.x[2]: {reason}"


def test_the_normal_path_of_reading_a_manifest_never_looks_for_a_non_finite_number(generated_class, monkeypatch):
    from grader import jsonio

    def not_on_this_path(*args):
        raise AssertionError("a well-formed manifest was read twice")

    monkeypatch.setattr(jsonio, "non_finite_field", not_on_this_path)
    assert run("grade", "in").exit_code == 0
    jsonio.loads_strict((generated_class / "manifest.json").read_text())  # the strict reader's own normal path


@pytest.mark.parametrize("literal,reason", [("NaN", "NaN is not a number JSON allows; write a finite number"), ("1e999", "1e999 is too large to be a finite number")])
def test_a_non_finite_number_in_a_json_rubric_names_its_field(workdir, literal, reason):
    from grader.rubric import DEFAULT_RUBRIC

    rubric = DEFAULT_RUBRIC.to_json()
    rubric["answers"]["2"]["u"] = 12345.5
    (workdir / "r.json").write_text(json.dumps(rubric).replace("12345.5", literal))
    result = run("grade", "submissions/", "--rubric", "r.json")
    assert result.exit_code == 1
    assert result.stderr == f"Error: r.json: answers.2.u: {reason}\n"


def test_a_rubric_key_is_escaped_in_its_error(workdir):
    (workdir / "esc.toml").write_text('[answers.2]\n"\\u001b[2Jx" = 1\n')
    result = run("grade", "submissions/", "--rubric", "esc.toml")
    assert result.exit_code == 1
    assert result.stderr == "Error: esc.toml: answers.2.\\x1b[2Jx: is not gradable here; expected one of u, h, z, o, loss, grad_w, grad_v, w_new, v_new\n"


def test_a_rubric_part_named_by_a_digit_that_is_not_ascii_is_an_error_not_a_traceback(workdir):
    (workdir / "r.toml").write_text('[answers."\u00b2"]\nu = 1\n')
    result = run("grade", "submissions/", "--rubric", "r.toml")
    assert result.exit_code == 1
    assert result.stderr == "Error: r.toml: answers.\u00b2: a part is named by its number, e.g. 2\n"


def test_the_summary_of_one_file_is_in_the_singular(workdir):
    (workdir / "one").mkdir()
    shutil.copy(workdir / "submissions" / "right_4_decimals.json", workdir / "one")
    (workdir / "one" / "notes.txt").write_text("")
    result = run("grade", "one", "--out", "out")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[-2:] == [
        "1 record: 1 graded, 0 invalid, 0 missing; mean score 40.00 out of 40. 0 of the graded made a named mistake. Skipped 1 file that is not .json.",
        "Wrote out/results.json, out/grades.csv, out/canvas.csv and 1 feedback file in out/feedback.",
    ]


def test_an_output_folder_named_with_an_escape_is_shown_escaped(workdir):
    result = run("grade", "submissions/right_4_decimals.json", "--out", "g\x1b[31m")
    assert result.exit_code == 0
    assert result.stderr.splitlines()[-1] == "Wrote g\\x1b[31m/results.json, g\\x1b[31m/grades.csv, g\\x1b[31m/canvas.csv and 1 feedback file in g\\x1b[31m/feedback."


def test_an_error_worded_elsewhere_still_reaches_the_terminal_escaped(workdir):
    (workdir / "d\x1b[2J").mkdir()
    (workdir / "d\x1b[2J" / "notes.txt").write_text("")
    result = run("grade", "submissions/", "--out", "d\x1b[2J")
    assert result.exit_code == 1
    assert result.stderr == "Error: d\\x1b[2J is not empty and holds no results.json of hwgen grade; it is left alone: choose a new or empty folder\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_check_refuses_a_pipe_as_grade_does(workdir):
    os.mkfifo(workdir / "pipe.json")
    result = run("check", "pipe.json")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "pipe.json: error: not a regular file (a pipe, a device or a socket); not read",
        "pipe.json: not well-formed (1 problem)",
    ]


def test_check_shows_a_file_name_with_an_escape_escaped(workdir):
    shutil.copy(workdir / "submissions" / "right_4_decimals.json", workdir / "name\x1b[31mred.json")
    result = run("check", "name\x1b[31mred.json")
    assert result.exit_code == 0
    assert result.stdout == "name\\x1b[31mred.json: well-formed; 53 of 53 answer entries given\n"


def test_check_says_what_a_lone_surrogate_in_the_student_id_is(workdir):
    (workdir / "sur.json").write_text('{"student_id": "ab\\udc80", "answers": {}}')
    result = run("check", "sur.json")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "sur.json: error: contains a \\ud800-\\udfff escape that is not text (a lone surrogate)",
        "sur.json: error: student_id: contains a lone surrogate (\\udc80), half of a UTF-16 pair and not a character: 'ab\\udc80'",
        "sur.json: not well-formed (2 problems)",
    ]


def test_check_says_an_empty_file_is_empty(workdir):
    (workdir / "empty.json").write_text("")
    result = run("check", "empty.json")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["empty.json: error: the file is empty (no JSON in it)", "empty.json: not well-formed (1 problem)"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_check_on_a_full_disk_is_one_error_line(workdir):
    import subprocess
    import sys

    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "grader", "check", "submissions/right_4_decimals.json"], cwd=workdir, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (1, "Error: cannot write to standard output: No space left on device\n")
