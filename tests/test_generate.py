"""`hwgen generate`: the class bundle, its agreement with `hwgen solve` and `hwgen variant`,
determinism to the byte, safe file names, and what it refuses to overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader import generate, render, variants
from grader.cli import cli
from grader.filenames import safe_stem
from grader.jsonio import InputError, dumps
from grader.manifest import Manifest, StudentRecord, load_manifest
from grader.params import Params
from grader.roster import RosterEntry, numbered_roster

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEED = "s3cret-seed-of-the-class"
needs_pdflatex = pytest.mark.skipif(generate.pdflatex_path() is None, reason="pdflatex is not installed (Debian: texlive-latex-recommended)")


def run(*args, input=None, env=None):
    return CliRunner().invoke(cli, list(args), input=input, env={"HWGEN_SEED": None, **(env or {})}, catch_exceptions=False)


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def canvas_class(tmp_path_factory) -> Path:
    """The shipped Canvas example, generated once (with PDFs when pdflatex is there)."""
    out = tmp_path_factory.mktemp("canvas") / "class"
    result = run("generate", "--roster", str(EXAMPLES / "roster.csv"), "--out", str(out), env={"HWGEN_SEED": SEED})
    assert result.exit_code == 0, result.output
    return out


# --- What it writes --------------------------------------------------------------------------------


def test_the_bundle_has_every_file(canvas_class):
    manifest = load_manifest(canvas_class / "manifest.json")
    assert len(manifest.students) == 30
    for student in manifest.students:
        folder = canvas_class / "students" / student.file_stem
        assert sorted(p.name for p in folder.iterdir()) == ["problem.md", "problem.tex", "submission.json"]
        for ext in ("md", "tex") + (("pdf",) if generate.pdflatex_path() else ()):
            assert (canvas_class / "keys" / f"{student.file_stem}.{ext}").is_file()
    assert (canvas_class / "keys" / "all.pdf").is_file() == (generate.pdflatex_path() is not None)
    assert not [p for p in canvas_class.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_manifest_keeps_the_canvas_identity_columns_and_only_a_fingerprint(canvas_class):
    obj = json.loads((canvas_class / "manifest.json").read_text())
    assert obj["seed_fingerprint"] == variants.seed_fingerprint(SEED)
    first = obj["students"][0]
    assert first["student_id"] == "2020173471"
    assert first["roster"] == {"Student": "Kim, Minjun", "ID": "48210", "SIS User ID": "2020173471", "SIS Login ID": "mkim51", "Section": "Neural Networks (2024 Fall) - 01"}
    assert "HW1 Perceptrons (812345)" not in json.dumps(obj)


def test_every_students_params_are_hwgen_variant_and_answers_are_hwgen_solve(canvas_class):
    obj = json.loads((canvas_class / "manifest.json").read_text())
    for student in obj["students"]:
        variant = run("variant", "--student", student["student_id"], "--seed", SEED)
        assert json.loads(variant.stdout) == student["params"]
        solved = run("solve", "--params", "-", "--format", "json", input=variant.stdout)
        assert json.loads(solved.stdout) == student["answers"]


def test_the_secret_is_in_no_file_a_student_receives_nor_in_the_keys(canvas_class):
    for name, data in files_of(canvas_class).items():
        assert SEED.encode() not in data, name
    for name, data in files_of(canvas_class / "students").items():
        assert variants.seed_fingerprint(SEED).encode() not in data, name


def test_submission_json_is_the_blank_answer_file(canvas_class):
    manifest = load_manifest(canvas_class / "manifest.json")
    student = manifest.students[3]
    blank = json.loads((canvas_class / "students" / student.file_stem / "submission.json").read_text())
    assert blank == render.blank_submission(student.params, student.student_id)
    assert blank["answers"]["grad_v"] == [[None] * 3] * 4


def test_sheets_and_keys_are_the_rendered_ones(canvas_class):
    manifest = load_manifest(canvas_class / "manifest.json")
    student = manifest.students[7]
    roster = dict(student.roster)
    sheet = (canvas_class / "students" / student.file_stem / "problem.md").read_text()
    assert sheet == render.render_problem(student.params, student.student_id, "md", roster=roster)
    key = (canvas_class / "keys" / f"{student.file_stem}.tex").read_text()
    assert key == render.render_key(student.params, student.student_id, "tex", roster=roster, seed_fingerprint=manifest.seed_fingerprint)
    assert f"- **Student:** `{student.student_id}` ({roster['Student']})" in sheet


def test_manifest_text_is_what_manifest_write_writes():
    entries = numbered_roster(4).entries
    instances = variants.variants(SEED, [e.student_id for e in entries])
    records = tuple(StudentRecord(e.student_id, e.student_id, p, {"name": f"N{n}"}) for n, (e, p) in enumerate(zip(entries, instances)))
    expected = dumps(Manifest("ab12", records).to_json())
    assert generate.manifest_text("ab12", [dumps(r.to_json()) for r in records]) == expected
    assert generate.manifest_text("ab12", []) == dumps(Manifest("ab12", ()).to_json())


# --- Determinism -----------------------------------------------------------------------------------------


@needs_pdflatex
def test_two_runs_write_the_same_bytes_pdf_included(canvas_class, tmp_path):
    again = tmp_path / "again"
    assert run("generate", "--roster", str(EXAMPLES / "roster.csv"), "--out", str(again), "--seed", SEED).exit_code == 0
    first, second = files_of(canvas_class), files_of(again)
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []
    assert any(name.endswith(".pdf") for name in first)


def test_worker_processes_write_what_one_process_writes(tmp_path, monkeypatch):
    entries = numbered_roster(12).entries
    generate.generate_class(SEED, entries, tmp_path / "one", pdf=False, workers=1)
    monkeypatch.setattr(generate, "MIN_STUDENTS_PER_WORKER", 2)
    generate.generate_class(SEED, entries, tmp_path / "many", pdf=False, workers=3)
    assert files_of(tmp_path / "one") == files_of(tmp_path / "many")


def test_a_template_error_in_a_worker_is_reported_and_nothing_is_written(tmp_path, monkeypatch):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "problem.md.j2").write_text("{{ oops }}\n")
    monkeypatch.setattr(generate, "MIN_STUDENTS_PER_WORKER", 2)
    result = run("generate", "--count", "6", "--out", str(tmp_path / "out"), "--seed", SEED, "--no-pdf", "--templates", str(templates))
    assert result.exit_code == 1
    assert result.stderr == "Error: template problem.md.j2: 'oops' is undefined\n"
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    "template, message",
    [
        (b"\xff\xfe", "Error: template problem.md.j2: not UTF-8 text (byte 0 is invalid)"),
        (b'{% include "problem.md.j2" %}', "Error: template problem.md.j2: endless recursion (a template that includes itself, or a macro that calls itself): problem.md.j2 line 1 -> problem.md.j2 again"),
    ],
)
def test_a_template_not_utf8_or_including_itself_in_a_worker_is_one_error_line(template, message, tmp_path, monkeypatch):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "problem.md.j2").write_bytes(template)
    monkeypatch.setattr(generate, "MIN_STUDENTS_PER_WORKER", 2)
    result = run("generate", "--count", "6", "--out", str(tmp_path / "out"), "--seed", SEED, "--no-pdf", "--templates", str(templates))
    assert result.exit_code == 1
    assert result.stderr == message + "\n"
    assert list((tmp_path / "out").iterdir()) == []


# --- File names ------------------------------------------------------------------------------------------

HOSTILE = ["../../etc/passwd", "/abs/path", "CON", "a b", "ALL", "all", "Ünï", ".hidden", "x" * 300, "A", "a", "..", "semi;colon"]


def test_hostile_ids_get_safe_distinct_file_names_inside_the_folder(tmp_path):
    entries = [RosterEntry(sid, {}, n + 2) for n, sid in enumerate(HOSTILE)]
    generate.generate_class(SEED, entries, tmp_path / "out", pdf=False)
    manifest = load_manifest(tmp_path / "out" / "manifest.json")
    stems = [s.file_stem for s in manifest.students]
    assert [s.student_id for s in manifest.students] == HOSTILE
    assert len({stem.lower() for stem in stems}) == len(stems)
    assert "all" not in {stem.lower() for stem in stems}  # keys/all.pdf is the combined document
    for stem in stems:
        assert safe_stem(stem) == stem or "/" not in stem
        assert (tmp_path / "out" / "students" / stem / "submission.json").is_file()
    written = {p.resolve() for p in (tmp_path / "out").rglob("*")}
    assert all(p.is_relative_to((tmp_path / "out").resolve()) for p in written)
    assert not (tmp_path / "etc").exists()


# --- Refusing to overwrite ------------------------------------------------------------------------------


def test_an_earlier_output_is_replaced_only_with_force(tmp_path):
    out = tmp_path / "class"
    assert run("generate", "--count", "3", "--out", str(out), "--seed", SEED, "--no-pdf").exit_code == 0
    before = files_of(out)
    result = run("generate", "--count", "2", "--out", str(out), "--seed", SEED, "--no-pdf")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {out} holds an earlier hwgen output; pass --force to replace it\n"
    assert files_of(out) == before
    result = run("generate", "--count", "2", "--out", str(out), "--seed", SEED, "--no-pdf", "--force")
    assert result.exit_code == 0
    # Replaced, not merged: the third student of the earlier run is gone.
    assert sorted(p.name for p in (out / "students").iterdir()) == ["student-001", "student-002"]
    assert not (out / "keys" / "student-003.md").exists()


def test_force_replaces_only_what_generate_writes(tmp_path):
    out = tmp_path / "clsF"
    assert run("generate", "--count", "3", "--out", str(out), "--seed", SEED, "--no-pdf").exit_code == 0
    (out / "inbox").mkdir()
    (out / "inbox" / "student-001.json").write_text('{"student_id": "student-001"}')
    (out / "grades" / "feedback").mkdir(parents=True)
    (out / "grades" / "results.json").write_text("[]")
    (out / "syllabus.md").write_text("# NN 2024")
    theirs = {name: data for name, data in files_of(out).items() if not name.startswith(generate.OWNED)}
    result = run("generate", "--count", "4", "--out", str(out), "--seed", SEED, "--no-pdf", "--force")
    assert result.exit_code == 0, result.output
    assert {name: data for name, data in files_of(out).items() if not name.startswith(generate.OWNED)} == theirs
    assert (out / "grades" / "feedback").is_dir()  # an empty folder of theirs too
    assert sorted(p.name for p in out.iterdir()) == ["grades", "inbox", "keys", "manifest.json", "students", "syllabus.md"]
    assert len(load_manifest(out / "manifest.json").students) == 4
    assert sorted(p.name for p in (out / "students").iterdir()) == [f"student-00{n}" for n in range(1, 5)]


def test_force_refuses_to_delete_files_put_inside_students_or_keys(tmp_path):
    out = tmp_path / "cls"
    assert run("generate", "--count", "2", "--out", str(out), "--seed", SEED, "--no-pdf").exit_code == 0
    (out / "keys" / "notes.md").write_text("grade part 3 by hand")
    (out / "students" / "student-001" / "scan.pdf").write_bytes(b"%PDF")
    (out / "students" / ".DS_Store").write_bytes(b"")  # hidden: let go
    before = files_of(out)
    result = run("generate", "--count", "2", "--out", str(out), "--seed", SEED, "--no-pdf", "--force")
    assert result.exit_code == 1
    assert result.stderr == f"Error: --force would delete students/student-001/scan.pdf, keys/notes.md in {out}, which no earlier run wrote; move them out first\n"
    assert files_of(out) == before
    (out / "keys" / "notes.md").unlink()
    (out / "students" / "student-001" / "scan.pdf").unlink()
    assert run("generate", "--count", "2", "--out", str(out), "--seed", SEED, "--no-pdf", "--force").exit_code == 0


def test_force_over_a_copied_manifest_keeps_the_instructors_files(tmp_path):
    first = tmp_path / "first"
    assert run("generate", "--count", "2", "--out", str(first), "--seed", SEED, "--no-pdf").exit_code == 0
    out = tmp_path / "course"
    (out / "lectures").mkdir(parents=True)
    (out / "lectures" / "01.md").write_text("backprop")
    (out / "syllabus.md").write_text("# NN 2024")
    (out / "manifest.json").write_bytes((first / "manifest.json").read_bytes())
    result = run("generate", "--count", "2", "--out", str(out), "--seed", SEED, "--no-pdf", "--force")
    assert result.exit_code == 0, result.output
    assert (out / "syllabus.md").read_text() == "# NN 2024"
    assert (out / "lectures" / "01.md").read_text() == "backprop"
    assert files_of(out / "students") == files_of(first / "students")


def test_a_run_interrupted_while_publishing_is_finished_by_the_next_with_force(tmp_path):
    out = tmp_path / "class"
    assert run("generate", "--count", "2", "--out", str(out), "--seed", SEED, "--no-pdf").exit_code == 0
    (out / "inbox").mkdir()
    # Interrupted after the old manifest was moved aside and before the new one was in place.
    trash = out / f"{generate.TRASH_PREFIX}xyz"
    trash.mkdir()
    (out / "manifest.json").rename(trash / "manifest.json")
    result = run("generate", "--count", "2", "--out", str(out), "--seed", SEED, "--no-pdf")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {out} holds an earlier hwgen output; pass --force to replace it\n"
    assert run("generate", "--count", "2", "--out", str(out), "--seed", SEED, "--no-pdf", "--force").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["inbox", "keys", "manifest.json", "students"]


def test_a_folder_that_is_not_an_hwgen_output_is_never_touched(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    (out / "manifest.json").write_text('{"students": []}')  # a manifest, but not hwgen's
    for force in ([], ["--force"]):
        result = run("generate", "--count", "1", "--out", str(out), "--seed", SEED, "--no-pdf", *force)
        assert result.exit_code == 1
        assert result.stderr == f"Error: {out} is not empty and holds no hwgen output; it is left alone: choose a new folder\n"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "thesis.tex"]


def test_an_empty_folder_or_a_file_as_out(tmp_path):
    (tmp_path / "empty").mkdir()
    assert run("generate", "--count", "1", "--out", str(tmp_path / "empty"), "--seed", SEED, "--no-pdf").exit_code == 0
    (tmp_path / "file").write_text("x")
    result = run("generate", "--count", "1", "--out", str(tmp_path / "file"), "--seed", SEED, "--no-pdf")
    assert result.exit_code == 2  # click: the path is a file


def test_leftovers_of_an_interrupted_run_do_not_block_the_next(tmp_path):
    out = tmp_path / "class"
    (out / f"{generate.STAGING_PREFIX}abc" / "students").mkdir(parents=True)
    assert run("generate", "--count", "1", "--out", str(out), "--seed", SEED, "--no-pdf").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["keys", "manifest.json", "students"]


# --- The command line -------------------------------------------------------------------------------------


def test_generate_messages_and_exit_code(tmp_path):
    result = run("generate", "--roster", str(EXAMPLES / "roster.csv"), "--out", str(tmp_path / "c"), "--no-pdf", env={"HWGEN_SEED": SEED})
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Skipped rows that are not students: 2 (Points Possible), 33 (Canvas test student)",
        f"Wrote 30 students to {tmp_path / 'c'}: manifest.json, problem sheets and answer files, keys (Markdown and LaTeX).",
    ]


def test_generate_reads_a_roster_from_standard_input(tmp_path):
    result = run("generate", "--roster", "-", "--out", str(tmp_path / "c"), "--seed", SEED, "--no-pdf", input="\ufeffstudent_id,name\nalice,Alice\n")
    assert result.exit_code == 0
    assert load_manifest(tmp_path / "c" / "manifest.json").students[0].roster == {"name": "Alice"}


def test_generate_with_the_plain_example_gives_the_same_variants(tmp_path):
    assert run("generate", "--roster", str(EXAMPLES / "roster_plain.csv"), "--out", str(tmp_path / "p"), "--seed", SEED, "--no-pdf").exit_code == 0
    plain = load_manifest(tmp_path / "p" / "manifest.json")
    assert plain.students[0].roster == {"name": "Minjun Kim", "section": "01", "email": "mkim51@example.edu"}
    expected = variants.variants(SEED, [s.student_id for s in plain.students])
    assert all(Params.to_json(s.params) == e.to_json() for s, e in zip(plain.students, expected))


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--out", "x"], 2, "Error: give either --roster FILE or --count N"),
        (["--out", "x", "--count", "2", "--roster", "r.csv"], 2, "Error: give either --roster FILE or --count N"),
        (["--out", "x", "--count", "2", "--id-column", "ID"], 2, "Error: --id-column needs --roster"),
        (["--out", "x", "--count", "0"], 2, "Error: Invalid value for '--count': 0 is not from 1 to 100,000, the most students hwgen writes in one class"),
        (["--out", "x", "--count", "100000000000"], 2, "Error: Invalid value for '--count': 100000000000 is not from 1 to 100,000, the most students hwgen writes in one class"),
        (["--out", "x", "--roster", "-"], 1, "Error: standard input: student_id: has duplicate student ids: 'a' in rows 2, 3"),
    ],
)
def test_generate_errors(args, code, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("generate", "--seed", SEED, "--no-pdf", *args, input="student_id\na\na\n")
    assert result.exit_code == code
    assert result.stderr.splitlines()[-1] == message
    assert not (tmp_path / "x").exists()


def test_an_unbalanced_quote_in_the_roster_is_an_error_naming_the_row_not_one_student(tmp_path):
    roster = tmp_path / "unbal.csv"
    roster.write_text('student_id,name\n1,"Kim, A\n2,Lee\n3,Park\n4,Choi\n')
    result = run("generate", "--seed", SEED, "--roster", str(roster), "--out", str(tmp_path / "g"), "--no-pdf")
    assert result.exit_code == 1
    assert result.stderr == f'Error: {roster}: row 2: a " opens a cell that is never closed (is a " missing or one too many?)\n'
    assert not (tmp_path / "g").exists()


def test_the_largest_class_is_the_one_help_and_the_readme_give():
    from grader.roster import MAX_STUDENTS

    assert f"1 to {MAX_STUDENTS:,}" in " ".join(run("generate", "--help").stdout.split())
    assert f"at most {MAX_STUDENTS:,} students" in (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert len(numbered_roster(MAX_STUDENTS).entries) == MAX_STUDENTS
    with pytest.raises(InputError, match=r"^--count: must be from 1 to 100,000$"):
        numbered_roster(MAX_STUDENTS + 1)


def test_a_roster_longer_than_the_largest_class_is_refused_at_the_first_row_past_it(monkeypatch):
    from grader import roster

    monkeypatch.setattr(roster, "MAX_STUDENTS", 3)
    assert roster.parse_roster("student_id\na\nb\nc\n").student_ids == ["a", "b", "c"]
    with pytest.raises(InputError, match=r"^row 5: the roster has more than 3 students, more than hwgen takes in one class$"):
        roster.parse_roster("student_id\na\nb\nc\nd\n")


def test_generate_needs_a_seed(tmp_path):
    result = run("generate", "--count", "1", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert "Missing option '--seed'" in result.stderr


def test_pdf_demanded_without_pdflatex_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(generate, "pdflatex_path", lambda: None)
    result = run("generate", "--count", "1", "--out", str(tmp_path / "x"), "--seed", SEED, "--pdf")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --pdf: pdflatex is not installed")
    result = run("generate", "--count", "1", "--out", str(tmp_path / "y"), "--seed", SEED)
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0].startswith("Warning: pdflatex is not installed, so the keys have no PDF")


@needs_pdflatex
def test_a_latex_failure_names_the_document(tmp_path):
    templates = tmp_path / "t"
    templates.mkdir()
    (templates / "_header.tex.j2").write_text("\\undefinedcommand\n")
    result = run("generate", "--count", "1", "--out", str(tmp_path / "x"), "--seed", SEED, "--templates", str(templates))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: keys/student-001.tex: pdflatex failed: ! Undefined control sequence.")
    assert not (tmp_path / "x" / "manifest.json").exists()


def test_the_document_of_all_keys_has_every_key_on_its_own_pages():
    entries = numbered_roster(3).entries
    instances = variants.variants(SEED, [e.student_id for e in entries])
    contexts = [render.key_context(p, w, e.student_id) for p, w, e in zip(instances, render.solve_batch(instances), entries)]
    tex = render.render_all_keys(contexts)
    assert tex.count(r"\begin{document}") == 1 and tex.count(r"\hwgenfor{Answer key: ") == 3
    for entry in entries:
        assert f"Student: & \\texttt{{{entry.student_id}}}" in tex


@needs_pdflatex
@pytest.mark.skipif(not __import__("shutil").which("pdfinfo"), reason="pdfinfo (poppler-utils) is not installed")
def test_all_pdf_holds_every_key(canvas_class):
    import subprocess

    def pages(path):
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
        return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))

    stems = [s.file_stem for s in load_manifest(canvas_class / "manifest.json").students]
    assert pages(canvas_class / "keys" / "all.pdf") == sum(pages(canvas_class / "keys" / f"{stem}.pdf") for stem in stems)


def test_manifest_keeps_a_long_case_collision_stem(tmp_path):
    from grader.filenames import assign_stems
    from grader.manifest import Manifest, StudentRecord, load_manifest
    from grader.params import HW2

    ids = ["a" * 64, "A" * 64]  # the second gets a suffix past 64 characters
    stems = assign_stems(ids)
    Manifest("f", tuple(StudentRecord(i, stems[i], HW2) for i in ids)).write(tmp_path / "m.json")
    assert [s.file_stem for s in load_manifest(tmp_path / "m.json").students] == [stems[i] for i in ids]
