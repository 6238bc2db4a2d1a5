"""The ``hwgen`` command line: each command parses options, calls the library and prints.

Data goes to standard output; progress, warnings and errors to standard error. A user error
is one line starting with ``Error:`` and exit code 1; a usage error exits with 2.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gc
import io
import os
import sys

# One BLAS thread, set before NumPy loads: hwgen's arrays are small and its parallel work is
# done by processes, beside which BLAS's own threads would only spin (seen in profiles).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import click  # noqa: E402 (after the BLAS setting)

from grader import __version__, formatting, variants
from grader.jsonio import InputError, dumps, load_json_file
from grader.params import HW2, Params, answers_to_json, solve_one
from grader.quoting import MAX_SHOWN_PATH, escaped, shown_path
from grader.tolerance import DEFAULT_ATOL, DEFAULT_RTOL

SEED_HELP = "The secret seed of the class (default: the HWGEN_SEED environment variable)."


def warn(message: str) -> None:
    click.echo(f"Warning: {escaped(message)}", err=True)


def shown_name(path: str) -> str:
    """A file named on the command line, as a message names it ('-' is standard input)."""
    return "standard input" if path == "-" else shown_path(path, MAX_SHOWN_PATH)


def load_params(path: str | None) -> Params:
    """The instance in ``path`` ('-' for stdin), or the HW#2 instance when no path is given."""
    if path is None:
        return HW2
    try:
        return Params.from_json(load_json_file(path), warn=warn)
    except InputError as exc:
        raise click.ClickException(f"{shown_name(path)}: {exc}") from None


def _utf8_text(ctx, param, value):
    # Python hands over command-line and environment bytes that are not UTF-8 as lone
    # surrogates (PEP 383); hashing or writing those fails far from the option that brought them.
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Click records where a value came from only after the callback has run.
            from_env = isinstance(param.envvar, str) and os.environ.get(param.envvar) == value
            where = f" (from the {param.envvar} environment variable)" if from_env else ""
            raise click.BadParameter(f"not valid UTF-8 text{where}") from None
    return value


def _seed(ctx, param, value):
    value = _utf8_text(ctx, param, value)
    if value is not None and not value:
        raise click.BadParameter("the seed must not be empty")
    return value


def _student_id(ctx, param, value):
    """--student as the roster and the answer files read an id: surrounding spaces removed
    (with a warning, as for a submission), so that " 1 " is the roster's student 1, and
    refused when no roster could hold it."""
    from grader.roster import id_problem

    value = _utf8_text(ctx, param, value)
    if value is None:
        return None
    stripped = value.strip()
    if not stripped:  # a variant of nobody on the roster
        raise click.BadParameter("must not be empty or only spaces")
    problem = id_problem(stripped)
    if problem is not None:
        raise click.BadParameter(f"{problem}; no roster or answer file could give that id")
    if stripped != value:
        warn(f"--student: surrounding spaces removed from {value!r}")
    return stripped


def _assignment(ctx, param, value):
    # The name is one header cell of canvas.csv: empty, it is a column of nothing; with a line
    # break, Canvas reads a header of two lines.
    value = _utf8_text(ctx, param, value)
    if value is not None and not value.strip():
        raise click.BadParameter("must not be empty or only spaces")
    if value is not None and not value.isprintable():
        raise click.BadParameter("contains control characters (a line break, a tab, ...); it is a column name of canvas.csv")
    return value


def batch_run(command):
    """Run ``command`` with Python's cyclic garbage collector paused.

    A class-sized run allocates millions of small lists and dicts (parsed JSON, report records)
    and frees few of them until it ends; the collector would scan them over and over, which
    cost about a tenth of ``hwgen grade`` on 20,000 files (5.8 s against 5.2 s). Reference
    counting still frees everything that is not in a cycle, and the collector is resumed
    afterwards (tests run commands in one process).
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return command(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return run


class _Commands(click.Group):
    """The command group, which makes sure that every error message is one line of printable
    text: whatever a message quotes should be quoting.clip'd or shown_path'd where it is
    worded, and what was missed (a path inside an OSError, a name in click's own messages) is
    escaped here rather than reaching a terminal as an escape sequence or a second line."""

    def make_context(self, *args, **kwargs):
        with _escaping_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _escaping_errors():
            return super().invoke(ctx)


@contextlib.contextmanager
def _escaping_errors():
    try:
        yield
    except click.ClickException as exc:
        # Line by line: a message of several lines (the help that a bare `hwgen` shows, as
        # click 8.2+ raises it) keeps its line breaks; no line can hold an escape sequence.
        exc.message = "\n".join(map(escaped, exc.message.split("\n")))
        raise


seed_option = click.option("--seed", envvar="HWGEN_SEED", required=True, callback=_seed, help=SEED_HELP)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hwgen")
def cli():
    """Generate, solve and grade the hand-computed backpropagation homework (HW#2).

    A 3-4-2 network with an ELU hidden layer, a softmax output, cross-entropy loss and
    one step of gradient descent. Every student gets a variant of their own, reproducible
    from a secret seed and their student id.

    Example:

        hwgen solve
    """


@cli.command()
@click.option(
    "--params",
    "params_path",
    metavar="FILE",
    help="Parameters JSON to solve ('-' for standard input). Default: the HW#2 instance.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    help="md: readable tables to 4 decimals; json: every answer at full precision.",
)
def solve(params_path, fmt):
    """Solve one instance: forward pass, gradients and one gradient-descent step.

    The parameters JSON has the keys x, v, w, target (one-hot), lr and, optionally,
    activation (elu, relu, leaky_relu, sigmoid or tanh; default elu).

    Example:

        hwgen solve

        hwgen solve --params my_instance.json --format json

        HWGEN_SEED=s3cret hwgen variant --student alice | hwgen solve --params -
    """
    params = load_params(params_path)
    answers = solve_one(params)
    if fmt == "json":
        click.echo(dumps(answers_to_json(answers)), nl=False)
    else:
        click.echo(formatting.markdown_solution(params, answers), nl=False)


@cli.command()
@seed_option
@click.option("--student", "student_id", required=True, callback=_student_id, help="The student's id, as in the roster (surrounding spaces are removed, as the roster's are).")
def variant(seed, student_id):
    """Print one student's parameters as JSON (the input of `hwgen solve --params`).

    The same seed and student id give the same variant on every machine, forever.

    Example:

        HWGEN_SEED=s3cret hwgen variant --student 2018170622
    """
    click.echo(dumps(variants.variant(seed, student_id).to_json()), nl=False)


# --- grade and check ------------------------------------------------------------------------------

PROGRESS_BAR_FROM = 500  # files; below this a run takes about a second and a bar is noise


def _progress_bar(label: str, total: int):
    """A progress bar on standard error (grader.progress's ProgressFactory)."""
    return click.progressbar(length=total, label=label, file=sys.stderr)


def _finite_non_negative(ctx, param, value):
    import math

    if value is not None and not (math.isfinite(value) and value >= 0):
        raise click.BadParameter("must be a finite number >= 0")
    return value


def _folder_or_new(ctx, param, value):
    # Anything there that is not a folder is refused alike, as a usage error: a file, and a
    # device such as /dev/null, which click.Path(file_okay=False) lets through.
    if value is not None and os.path.exists(value) and not os.path.isdir(value):
        raise click.BadParameter(f"'{shown_path(value, MAX_SHOWN_PATH)}' exists and is not a folder")
    return value


def _manifest_path(path):
    """The manifest to use: the one given, else ./manifest.json when it exists, else None."""
    from pathlib import Path

    from grader.manifest import MANIFEST_NAME

    if path is None and Path(MANIFEST_NAME).is_file():
        return MANIFEST_NAME
    return path


def _load_manifest(path):
    return None if path is None else _read_manifest_parts(path).manifest()


def _read_manifest_parts(path):
    """The manifest in ``path`` read and validated (grading.ManifestParts); a ClickException saying what is wrong."""
    from grader.grading import read_manifest_parts

    try:
        return read_manifest_parts(path)
    except InputError as exc:
        raise click.ClickException(f"{shown_name(path)}: {exc}") from None


def _default_manifest(path):
    """The manifest to use, loaded: the one given, else ./manifest.json when it exists, else None."""
    return _load_manifest(_manifest_path(path))


def _manifest_option(without: str):
    return click.option(
        "--manifest",
        "manifest_path",
        metavar="FILE",
        type=click.Path(exists=True, dir_okay=False),
        help=f"The class manifest written by `hwgen generate`. Default: ./manifest.json if it exists; without one, {without}.",
    )


@cli.command()
@click.argument("submissions", nargs=-1, required=True, type=click.Path(exists=True))
@_manifest_option("every file is graded against the HW#2 instance itself")
@click.option("--out", "out_dir", default="grades", show_default=True, metavar="DIRECTORY", callback=_folder_or_new, help="Folder for results.json, grades.csv, canvas.csv and feedback/.")
@click.option("--rtol", type=float, default=DEFAULT_RTOL, show_default=True, callback=_finite_non_negative, help="Relative tolerance: an entry is right when |answer - expected| <= atol + rtol * |expected|.")
@click.option("--atol", type=float, default=DEFAULT_ATOL, show_default=True, callback=_finite_non_negative, help="Absolute tolerance; it is what grades an expected value of exactly 0.")
@click.option("--sigfigs", type=click.IntRange(2, 15), default=None, metavar="N", help="Grade to N significant figures (2 to 15) instead of --rtol: the relative tolerance becomes 10^(1-N), so 3 is rtol 0.01.")
@click.option("--rubric", "rubric_path", metavar="FILE", type=click.Path(exists=True, dir_okay=False), help="Rubric (TOML, or JSON) replacing the default grader/rubric.toml.")
@click.option("--follow-through/--no-follow-through", default=True, show_default=True, help="Credit entries that are right for the student's own earlier (wrong) answers.")
@click.option("--reveal", is_flag=True, help="Show the expected values in the feedback files.")
@click.option("--assignment", default="HW2", show_default=True, callback=_assignment, help="The assignment column's name in canvas.csv (one line of printable text).")
@batch_run
def grade(submissions, manifest_path, out_dir, rtol, atol, sigfigs, rubric_path, follow_through, reveal, assignment):
    """Grade answer files entry by entry, with follow-through credit and named mistakes.

    SUBMISSIONS are *.json files or folders of them (searched recursively; other files are
    listed as skipped). An entry is right when |answer - expected| <= atol + rtol * |expected|
    (defaults: rtol 0.01, atol 0.001), or when it agrees with the student's own right earlier
    answers to within their rounding; an entry that is wrong against the key but right for the
    student's own earlier answers earns follow-through credit. Writes OUT/results.json,
    OUT/grades.csv, OUT/canvas.csv and OUT/feedback/<student>.md. Every file gets a result: a
    malformed one is reported as invalid with the reason, and a roster student without a file
    as missing. Exit code 0 unless the command line itself is wrong.

    Example:

        hwgen grade submissions/

        hwgen grade inbox/ --manifest class/manifest.json --reveal
    """
    from grader import parallel, reports
    from grader.rubric import load_rubric
    from grader.tolerance import Tolerance

    manifest_path = _manifest_path(manifest_path)
    try:
        rubric = load_rubric(rubric_path)
    except InputError as exc:
        raise click.ClickException(f"{shown_name(rubric_path)}: {exc}") from None
    if sigfigs is not None and click.get_current_context().get_parameter_source("rtol") is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--rtol and --sigfigs both set the relative tolerance; give one of them")
    tolerance = Tolerance(rtol=rtol, atol=atol, sigfigs=sigfigs)
    try:
        reports.check_out_dir(out_dir)
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    load = None if manifest_path is None else functools.partial(_read_manifest_parts, manifest_path)
    if load is not None and os.path.getsize(manifest_path) >= LOAD_APART_FROM:
        load = parallel.start_forked(load)  # a class's manifest loads while its files are found and read
    try:
        written, rows, skipped = _grade_class(submissions, load, out_dir, tolerance, rubric, follow_through, reveal, assignment)
    except BaseException:
        getattr(load, "cancel", lambda: None)()  # not taken yet: its process is stopped
        raise
    for row in rows:
        if row.other_sources:
            warn(f"{row.student_id}: several files; graded {row.source} (its warnings say why)")
    click.echo(reports.summary_of(rows, skipped), err=True)
    results, grades, canvas, feedback_dir = (shown_path(path, MAX_SHOWN_PATH) for path in (written.results, written.grades, written.canvas, written.feedback_dir))
    feedback = formatting.counted(written.feedback_files, "feedback file")
    click.echo(f"Wrote {results}, {grades}, {canvas} and {feedback} in {feedback_dir}.", err=True)


LOAD_APART_FROM = 256 * 1024  # bytes of manifest (about 100 students) worth a process of its own


def _grade_class(submissions, load, out_dir, tolerance, rubric, follow_through, reveal, assignment):
    """The files found and graded, as `grade` reports them: (what was written, the rows, the files skipped)."""
    from grader import grading, parallel, pipeline

    unreadable: list[str] = []
    files, skipped = grading.collect_files(submissions, exclude=[out_dir], unreadable=unreadable)
    for problem in unreadable:
        warn(f"cannot list the folder {problem}; its files are not graded")
    if load is None:
        click.echo("No manifest: grading every file against the HW#2 instance itself (the original homework).", err=True)
    for path in skipped:
        click.echo(f"Skipped (not .json): {shown_path(path)}", err=True)

    settings = pipeline.Settings(tolerance, rubric, follow_through, tuple(skipped), assignment, reveal)
    try:
        # The manifest loads while worker processes read the files.
        written, rows = pipeline.run(files, load, out_dir, settings, _progress_bar if len(files) >= PROGRESS_BAR_FROM else None)
    except parallel.WorkerError as exc:  # killed from outside (by the out-of-memory killer, say)
        raise click.ClickException(f"{exc}; nothing was lost, grade again (HWGEN_WORKERS=1 uses one process)") from None
    except OSError as exc:  # the output folder, not a submission: those never raise
        raise click.ClickException(f"cannot write the results in {shown_path(out_dir, MAX_SHOWN_PATH)}: {exc.strerror or exc}") from None
    return written, rows, skipped


@cli.command()
@click.argument("file")
@_manifest_option("answers must have the shapes of HW#2 (a 3-4-2 network)")
def check(file, manifest_path):
    """Check an answer file's form before submitting it ('-' reads standard input).

    Reports what is missing or malformed, one line each; never says whether an answer is
    right. Exit code 0 when the file is well-formed (blank answers are allowed), 1 when not.

    Example:

        hwgen check submission.json
    """
    from grader import submission as sub
    from grader.grading import has_derivations, known_layouts
    from grader.manifest import MANIFEST_NAME
    from grader.params import HW2 as hw2

    manifest = _default_manifest(manifest_path)
    if manifest is None:
        layouts = sub.layout_of(hw2)
    else:
        by_id = manifest.by_id()
        layouts = known_layouts(by_id, lambda student_id: sub.layout_of(by_id[student_id].params), shown_name(manifest_path or MANIFEST_NAME))

    name = shown_name(file)

    def report(line: str) -> None:
        click.echo(escaped(line))  # lines quote the file's keys and expressions: none reaches a terminal raw

    # A named file must be a regular one, as grade has it: a pipe with no writer would read as
    # an empty file, and one whose writer never ends would wait forever.
    result = sub.read_submission(file, layouts, regular_only=file != "-")
    problems = list(result.problems) if isinstance(result, sub.InvalidSubmission) else []
    derivations = None if isinstance(result, sub.InvalidSubmission) else result.derivations
    written = has_derivations(derivations)  # once one is written, parts 1 and 3 count
    if written:
        from grader.derivations import check_derivations

        problems += [p if p.startswith("derivations") else f"derivations.{p}" for p in check_derivations(derivations)]
    for line in result.warnings:
        report(f"{name}: warning: {line}")
    if not isinstance(result, sub.InvalidSubmission):
        for field in result.missing():
            report(f"{name}: missing: {field}")
        if written:
            from grader.derivations import not_given

            for key in not_given(derivations):
                report(f"{name}: missing: derivations.{key}")
    for problem in problems:
        report(f"{name}: error: {problem}")
    if problems:
        report(f"{name}: not well-formed ({formatting.counted(len(problems), 'problem')})")
        raise SystemExit(1)
    given = int((result.values == result.values).sum())  # NaN marks a missing entry
    report(f"{name}: well-formed; {given} of {result.layout.size} answer entries given")


# --- generate and key ---------------------------------------------------------------------------


def _progress_bars():
    """A progress-bar factory for grader.generate on a terminal; None (no output) otherwise."""
    return _progress_bar if sys.stderr.isatty() else None


def _class_size(ctx, param, value):
    # grader.roster is imported only by the commands that read a roster (as Jinja is), so
    # the bound is checked here rather than by the option's type; --help spells it out.
    from grader.roster import MAX_STUDENTS

    if value is not None and not 1 <= value <= MAX_STUDENTS:
        raise click.BadParameter(f"{value} is not from 1 to {MAX_STUDENTS:,}, the most students hwgen writes in one class")
    return value


def _load_roster(roster_path, count, id_column):
    from grader import roster

    if (roster_path is None) == (count is None):
        raise click.UsageError("give either --roster FILE or --count N")
    if count is not None:
        if id_column is not None:
            raise click.UsageError("--id-column needs --roster")
        return roster.numbered_roster(count)
    where = shown_name(roster_path)
    try:
        loaded = roster.read_roster(roster_path, id_column)
    except InputError as exc:
        raise click.ClickException(f"{where}: {exc}") from None
    if loaded.skipped:
        rows = ", ".join(f"{row} ({why})" for row, why in loaded.skipped)
        click.echo(f"Skipped rows that are not students: {rows}", err=True)
    return loaded


@cli.command()
@seed_option
@click.option("--roster", "roster_path", metavar="FILE", help="The class roster ('-' for standard input): a CSV with a student_id column, or a Canvas gradebook export as it comes.")
@click.option("--count", type=int, metavar="N", callback=_class_size, help="Instead of a roster, N made-up students student-001, student-002, ... for a quick try (N from 1 to 100,000).")
@click.option("--id-column", metavar="NAME", help="The roster column of student ids. Default: student_id, else SIS User ID, else ID.")
@click.option("--out", "out_dir", required=True, metavar="DIRECTORY", callback=_folder_or_new, help="The folder to write; created if missing.")
@click.option("--templates", "templates_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False), help="Templates that replace the defaults of the same file name.")
@click.option("--pdf/--no-pdf", default=None, help="Compile PDF keys with pdflatex. Default: when pdflatex is installed.")
@click.option("--force", is_flag=True, help="Replace an earlier hwgen output in --out: its manifest.json, students/ and keys/. Anything else in the folder stays as it is; a file put inside students/ or keys/ that no earlier run wrote stops it; a non-empty folder with no hwgen output is never touched.")
@batch_run
def generate(seed, roster_path, count, id_column, out_dir, templates_dir, pdf, force):
    """Write every student's problem sheet and answer file, and the TAs' answer keys.

    \b
    OUT/manifest.json                   the class record (the seed only as a fingerprint)
    OUT/students/<id>/problem.md, .tex  the student's own problem sheet
    OUT/students/<id>/submission.json   their blank answer file
    OUT/keys/<id>.md, .tex, .pdf        their worked answer key
    OUT/keys/all.pdf                    every key in one document, for printing

    The same seed and roster give byte-identical files. PDF keys need pdflatex and take
    about a second of one CPU each, so a large class takes a while; --no-pdf writes a
    class of hundreds in seconds.

    Example:

        HWGEN_SEED=s3cret hwgen generate --roster roster.csv --out class

        hwgen generate --seed s3cret --count 5 --out try --no-pdf
    """
    from grader import generate as bundle

    loaded = _load_roster(roster_path, count, id_column)
    if pdf is None and bundle.pdflatex_path() is None:
        warn("pdflatex is not installed, so the keys have no PDF (Debian: apt-get install texlive-latex-recommended)")
    try:
        result = bundle.generate_class(seed, loaded.entries, out_dir, templates_dir, pdf, force, _progress_bars())
    except (InputError, bundle.PdfError) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # the output folder: not writable, on a full disk, ...
        raise click.ClickException(f"cannot write {exc.filename or out_dir}: {exc.strerror or exc}") from None
    students = formatting.counted(result.students, "student")
    keys = "keys (Markdown, LaTeX and PDF)" if result.pdf else "keys (Markdown and LaTeX)"
    click.echo(f"Wrote {students} to {shown_path(out_dir, MAX_SHOWN_PATH)}: manifest.json, problem sheets and answer files, {keys}.", err=True)


@cli.command()
@click.option("--seed", envvar="HWGEN_SEED", callback=_utf8_text, help=SEED_HELP + " Needed with --student.")
@click.option("--student", "student_id", callback=_student_id, help="Print this student's key (their variant of the seed).")
@click.option("--params", "params_path", metavar="FILE", help="Print the key of the instance in this parameters JSON ('-' for standard input).")
@click.option("--format", "fmt", type=click.Choice(["md", "tex"]), default="md", show_default=True, help="md: Markdown with $-math (GitHub, Jupyter); tex: a LaTeX document for pdflatex.")
@click.option("--templates", "templates_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False), help="Templates that replace the defaults of the same file name.")
def key(seed, student_id, params_path, fmt, templates_dir):
    """Print one answer key: a worked model solution of all five parts.

    With --student, the key of that student's variant; with --params, of any instance (any
    sizes, any activation: elu, relu, leaky_relu, sigmoid, tanh); with neither, of the HW#2
    instance itself.

    Example:

        hwgen key

        HWGEN_SEED=s3cret hwgen key --student 2018170622 --format tex > key.tex

        hwgen key --params my_instance.json
    """
    from grader import render

    if student_id is not None and params_path is not None:
        raise click.UsageError("give --student or --params, not both")
    fingerprint = None
    if student_id is not None:
        if not seed:
            raise click.UsageError("--student needs --seed (or the HWGEN_SEED environment variable)")
        params = variants.variant(seed, student_id)
        fingerprint = variants.seed_fingerprint(seed)
    else:
        params = load_params(params_path)
    try:
        text = render.render_key(params, student_id, fmt, templates_dir, seed_fingerprint=fingerprint)
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(text, nl=False)


class OutputError(click.ClickException):
    """Standard output could not be written (a full disk, a quota, an I/O error)."""

    def __init__(self, error: OSError):
        super().__init__(f"cannot write to standard output: {error.strerror or error}")


class _GuardedBuffer(io.BufferedWriter):
    """Standard output's bytes, whose write errors are an OutputError, which click shows as one
    Error line, instead of a traceback. Guarded at the bytes, so that a text wrapper click builds
    over it (for an ASCII terminal, say) is guarded too. A closed pipe (| head) stays an OSError,
    which click ends quietly: the reader has gone, and has all it wanted."""

    def write(self, data):
        with _as_output_error():
            return super().write(data)

    def flush(self):
        with _as_output_error():
            super().flush()


@contextlib.contextmanager
def _as_output_error():
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            raise
        raise OutputError(exc) from None


def _guard_stdout() -> None:
    """Every command's data, and click's --help and --version, reach standard output through
    sys.stdout: put over a guarded buffer here, a failed write is a user's error whatever wrote it."""
    stdout = sys.stdout
    if type(stdout) is not io.TextIOWrapper:
        return  # not the process's own (a test's capture): left as it is
    # The file itself: under a buffer, or bare when Python runs unbuffered (PYTHONUNBUFFERED).
    raw = stdout.buffer.raw if type(stdout.buffer) is io.BufferedWriter else stdout.buffer
    if type(raw) is io.FileIO:
        # The old wrappers, kept by sys.__stdout__, never close the file all of them share.
        sys.stdout = io.TextIOWrapper(
            _GuardedBuffer(raw),
            encoding=stdout.encoding,
            errors=stdout.errors,
            line_buffering=stdout.line_buffering,
            write_through=stdout.write_through,
        )


def main(**kwargs):
    """The console script (and ``python -m grader``): the command line, then a prompt exit.

    Python's own exit frees every object one by one, a fifth of a second after grading 20,000
    students, for memory the system takes back at once anyway: once the command has finished
    and its output is flushed, the process ends without it. (CliRunner calls ``cli`` itself.)
    """
    _guard_stdout()
    try:
        cli(**kwargs)
        code = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): printed, as Python's exit would
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OutputError as exc:  # the output's last piece, unless a failed write was reported
            if not code:
                exc.show()
                code = 1
        except (OSError, ValueError):  # a closed pipe (| head): nothing more can be said there
            code = code or 1
    os._exit(code)
