"""The class bundle: every student's problem sheet and answer file, and the TAs' answer keys.

    DIR/manifest.json                     the instructor's record (grader/manifest.py)
    DIR/students/<stem>/problem.md, .tex  the student's own problem sheet
    DIR/students/<stem>/submission.json   their blank answer file
    DIR/keys/<stem>.md, .tex, .pdf        their answer key
    DIR/keys/all.pdf                      every key in one document, for printing

Everything is written into a staging folder inside DIR and moved into place at the end, the
manifest last: a run that fails or is interrupted leaves what DIR held untouched, and a DIR
with a manifest is complete. (Writing each of 100,000 files with its own fsync, as
``jsonio.write_atomic`` does for single files, would take minutes; renaming a few folders
gives the same all-or-nothing guarantee for the whole bundle.) Replacing an earlier output
replaces only what a run writes (``OWNED``): anything else in DIR, such as the students'
submissions or the grades, stays as it is.

The same seed, roster, templates and hwgen version give byte-identical files, PDFs included.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from grader import render, variants
from grader.filenames import assign_stems
from grader.jsonio import InputError, dumps
from grader.manifest import MANIFEST_NAME, Manifest, StudentRecord
from grader.params import Params
from grader.progress import ProgressFactory, no_progress
from grader.roster import RosterEntry

STUDENTS_DIR = "students"
KEYS_DIR = "keys"
ALL_KEYS_PDF = "all.pdf"
STAGING_PREFIX = ".hwgen-staging-"
TRASH_PREFIX = ".hwgen-old-"
# What a run writes at the top of DIR, and so all that --force replaces: an instructor keeps
# the class's inbox/, grades/ and their own notes beside these. The manifest comes first:
# _publish moves the old one aside before anything else.
OWNED = (MANIFEST_NAME, STUDENTS_DIR, KEYS_DIR)
PDFLATEX_TIMEOUT = 120.0  # seconds for one key; a key compiles in well under 1 s
PDFLATEX_SECONDS_PER_KEY = 2.0  # added to the timeout of all.pdf for each key in it

class PdfError(RuntimeError):
    """pdflatex failed or timed out; the message says which document and why."""


@dataclass(frozen=True)
class GenerateResult:
    """What a run wrote."""

    out_dir: Path
    students: int
    pdf: bool  # whether PDF keys (and all.pdf) were built


# --- The output folder ----------------------------------------------------------------------


def _manifest_object(manifest: Path) -> dict | None:
    """An earlier run's manifest, parsed; None if it is missing or not a JSON object."""
    try:
        obj = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _is_hwgen_manifest(manifest: Path) -> bool:
    obj = _manifest_object(manifest)
    return obj is not None and isinstance(obj.get("hwgen_version"), str)


def is_hwgen_output(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds an earlier hwgen output: a manifest.json that says so, or one
    that a run interrupted while publishing had already moved aside (see _publish)."""
    if _is_hwgen_manifest(out_dir / MANIFEST_NAME):
        return True
    return any(_is_hwgen_manifest(entry / MANIFEST_NAME) for entry in out_dir.glob(TRASH_PREFIX + "*"))


def _ours(entry: Path) -> bool:
    """A staging or trash folder an interrupted run of ours left behind."""
    return entry.name.startswith((STAGING_PREFIX, TRASH_PREFIX))


def check_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse a DIR whose content is not ours to replace: anything but an earlier hwgen output,
    and an earlier output too unless ``force``."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise InputError(None, f"{out_dir} is a file, not a folder")
    if not any(not _ours(entry) for entry in out_dir.iterdir()):
        return
    if not is_hwgen_output(out_dir):
        raise InputError(None, f"{out_dir} is not empty and holds no hwgen output; it is left alone: choose a new folder")
    if not force:
        raise InputError(None, f"{out_dir} holds an earlier hwgen output; pass --force to replace it")
    foreign = _not_written_by_generate(out_dir)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise InputError(None, f"--force would delete {shown} in {out_dir}, which no earlier run wrote; move {'it' if len(foreign) == 1 else 'them'} out first")


def _not_written_by_generate(out_dir: Path) -> list[str]:
    """What --force would delete in ``students/`` and ``keys/`` that no earlier run wrote there,
    as its manifest tells (an instructor's notes in keys/, a scan in a student's folder).
    Hidden files (.DS_Store) are let go."""
    stems: set[str] = set()
    for manifest in [out_dir / MANIFEST_NAME, *(entry / MANIFEST_NAME for entry in out_dir.iterdir() if _ours(entry))]:
        stems |= _stems_in(manifest)
    student_files = {*(f"problem.{fmt}" for fmt in render.FORMATS), "submission.json"}
    key_files = {ALL_KEYS_PDF, *(f"{stem}.{ext}" for stem in stems for ext in (*render.FORMATS, "pdf"))}
    foreign: list[str] = []
    students = out_dir / STUDENTS_DIR
    for entry in _shown_entries(students):
        if entry.name not in stems or entry.is_symlink() or not entry.is_dir():
            foreign.append(f"{STUDENTS_DIR}/{entry.name}")
        else:
            foreign += [f"{STUDENTS_DIR}/{entry.name}/{f.name}" for f in _shown_entries(entry) if f.name not in student_files]
    foreign += [f"{KEYS_DIR}/{f.name}" for f in _shown_entries(out_dir / KEYS_DIR) if f.name not in key_files]
    return foreign


def _shown_entries(folder: Path) -> list[Path]:
    if folder.is_symlink() or not folder.is_dir():
        return []
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def _stems_in(manifest: Path) -> set[str]:
    """The file stems of a manifest's students; none if it cannot be read."""
    obj = _manifest_object(manifest)
    students = obj.get("students") if obj is not None else None
    if not isinstance(students, list):
        return set()
    return {s["file_stem"] for s in students if isinstance(s, dict) and isinstance(s.get("file_stem"), str)}


def _publish(staging: Path, out_dir: Path) -> None:
    """Replace what an earlier run wrote in ``out_dir`` (``OWNED``) by the staged files, the
    manifest last, and clear what interrupted runs left; nothing else in ``out_dir`` is touched.

    The old manifest is moved aside first, so that a DIR with a manifest is always complete; a
    run interrupted before the new one is in place leaves it in the trash folder, where
    is_hwgen_output still finds it, so the next run with --force finishes the job.
    """
    staged = sorted(p.name for p in staging.iterdir())
    assert set(staged) <= set(OWNED), f"generate wrote {staged}; add the new names to OWNED"
    trash = Path(tempfile.mkdtemp(prefix=TRASH_PREFIX, dir=out_dir))
    for name in OWNED:
        old = out_dir / name
        if old.exists() or old.is_symlink():
            old.rename(trash / name)
    for name in [n for n in staged if n != MANIFEST_NAME] + [MANIFEST_NAME]:
        (staging / name).rename(out_dir / name)
    staging.rmdir()
    leftovers = [entry for entry in out_dir.iterdir() if _ours(entry) and entry != trash]
    for folder in [trash, *sorted(leftovers)]:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _staging(out_dir: Path) -> Iterator[Path]:
    """A fresh folder inside ``out_dir`` (so moving out of it is a rename), removed on failure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
    try:
        for folder in (STUDENTS_DIR, KEYS_DIR):
            (staging / folder).mkdir()
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(root: Path, relative: str, data: str | bytes) -> None:
    """Write a file under ``root``, whose folder exists (creating folders once per student,
    not once per file, saves a system call per file: 100,000 of them for a large class)."""
    # Stems come from filenames.assign_stems; this guards the guarantee, not the common case.
    if ".." in Path(relative).parts or Path(relative).is_absolute():
        raise ValueError(f"refusing to write {relative!r} outside the output folder")
    (root / relative).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


# --- PDF ----------------------------------------------------------------------------------------


def pdflatex_path() -> str | None:
    """The pdflatex on PATH, if any."""
    return shutil.which("pdflatex")


def _latex_errors(log: str) -> str:
    """The error lines of a pdflatex log ('! ...' and the line number that follows), short."""
    lines = log.splitlines()
    picked = []
    for n, line in enumerate(lines):
        if line.startswith("!"):
            picked.append(line.strip())
            picked.extend(m.strip() for m in lines[n + 1 : n + 4] if re.match(r"l\.\d+", m))
    return "; ".join(picked[:4]) or (lines[-1].strip() if lines else "no log")


def build_pdf(tex: str, name: str, timeout: float = PDFLATEX_TIMEOUT, pdflatex: str | None = None) -> bytes:
    """Compile one LaTeX document with pdflatex in a private folder and return the PDF's bytes.

    Reproducible: the dates come from SOURCE_DATE_EPOCH=0 and the trailer /ID is empty, so the
    same source gives the same bytes. pdflatex may read only files under the current folder
    and TeX's own trees (openin_any=p), runs no shell commands, and is stopped after ``timeout``.
    """
    exe = pdflatex or pdflatex_path()
    if exe is None:
        raise PdfError("pdflatex is not installed")
    env = {
        **os.environ,
        "SOURCE_DATE_EPOCH": "0",
        "FORCE_SOURCE_DATE": "1",
        "openin_any": "p",
        "openout_any": "p",
    }
    with tempfile.TemporaryDirectory(prefix="hwgen-pdf-") as tmp:
        Path(tmp, "doc.tex").write_text(tex, encoding="utf-8")
        command = [
            exe,
            "-interaction=nonstopmode",
            "-halt-on-error",
            "-no-shell-escape",
            "-jobname=doc",
            # Set here rather than in the template so an instructor's template stays reproducible.
            r"\pdftrailerid{}\input{doc.tex}",
        ]
        try:
            proc = subprocess.run(
                command, cwd=tmp, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise PdfError(f"{name}: pdflatex did not finish within {timeout:g} s") from None
        pdf = Path(tmp, "doc.pdf")
        if proc.returncode != 0 or not pdf.exists():
            log_path = Path(tmp, "doc.log")
            log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
            raise PdfError(f"{name}: pdflatex failed: {_latex_errors(log)}")
        return pdf.read_bytes()


def _build_pdfs(
    jobs: Sequence[tuple[str, str]], progress: ProgressFactory, label: str, pdflatex: str
) -> list[bytes]:
    """Compile (name, tex) documents in parallel, one pdflatex per CPU; results in input order."""
    results: list[bytes] = []
    with progress(label, len(jobs)) as bar, ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for pdf in pool.map(lambda job: build_pdf(job[1], job[0], pdflatex=pdflatex), jobs):
            results.append(pdf)
            bar.update(1)
    return results


# --- The bundle ---------------------------------------------------------------------------------


def file_stems(student_ids: list[str]) -> dict[str, str]:
    """filenames.assign_stems, keeping clear of keys/all.pdf: a student whose id is "all" gets a
    suffixed stem instead of being overwritten by the combined document."""
    return assign_stems(student_ids, reserved=(Path(ALL_KEYS_PDF).stem,))


def generate_class(
    seed: str,
    roster_entries: Sequence[RosterEntry],
    out_dir: str | Path,
    templates_dir: str | Path | None = None,
    pdf: bool | None = None,
    force: bool = False,
    progress: ProgressFactory | None = None,
    workers: int | None = None,
) -> GenerateResult:
    """Write the whole class bundle to ``out_dir`` (see the module docstring).

    ``pdf``: True builds PDF keys and fails without pdflatex; None builds them when pdflatex is
    installed; False never does. ``progress`` reports the long steps (see ProgressFactory).
    ``workers``: processes that write students in parallel (default: one per CPU).
    """
    out_dir = Path(out_dir)
    progress = progress or no_progress
    if not seed:
        raise InputError("--seed", "must not be empty")
    if not roster_entries:
        raise InputError("roster", "has no students")
    check_out_dir(out_dir, force)
    pdflatex = pdflatex_path() if pdf is not False else None
    if pdf is True and pdflatex is None:
        raise InputError("--pdf", "pdflatex is not installed; install it (Debian: texlive-latex-recommended) or pass --no-pdf")
    if templates_dir is not None:
        render.environment("md", str(templates_dir))  # a wrong --templates fails before any work

    ids = [entry.student_id for entry in roster_entries]
    stems = file_stems(ids)
    fingerprint = variants.seed_fingerprint(seed)
    with _staging(out_dir) as staging:
        chunks = [
            _Chunk(seed, tuple(part), tuple(stems[e.student_id] for e in part), fingerprint, str(staging), _str(templates_dir))
            for part in _split(list(roster_entries), workers or os.cpu_count() or 1)
        ]
        instances, records = _write_chunks(chunks, progress, workers)
        if pdflatex is not None:
            _write_pdfs(staging, [stems[i] for i in ids], instances, fingerprint, roster_entries, templates_dir, progress, pdflatex)
        _write(staging, MANIFEST_NAME, manifest_text(fingerprint, records))
        _publish(staging, out_dir)
    return GenerateResult(out_dir, len(ids), pdflatex is not None)


def _str(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


# Below this many students a class is written in this process: starting workers costs more.
MIN_STUDENTS_PER_WORKER = 200
CHUNKS_PER_WORKER = 8  # smaller chunks keep the progress bar moving and the workers balanced


def _split(entries: list[RosterEntry], workers: int) -> list[list[RosterEntry]]:
    """The roster in consecutive chunks, enough to keep ``workers`` processes busy."""
    useful = max(1, min(workers, len(entries) // MIN_STUDENTS_PER_WORKER))
    count = 1 if useful == 1 else useful * CHUNKS_PER_WORKER
    size = -(-len(entries) // count)
    return [entries[n : n + size] for n in range(0, len(entries), size)]


@dataclass(frozen=True)
class _Chunk:
    """Consecutive students of the roster, written by one worker; everything in it pickles."""

    seed: str
    entries: tuple[RosterEntry, ...]
    stems: tuple[str, ...]
    fingerprint: str
    staging: str
    templates_dir: str | None


@dataclass(frozen=True)
class _ChunkFailure:
    """An InputError from a worker (InputError itself does not survive pickling)."""

    field: str | None
    reason: str


def manifest_text(fingerprint: str, records: Sequence[str]) -> str:
    """The manifest as ``Manifest(...).write`` writes it, from each student's record already
    encoded (``dumps(StudentRecord.to_json())``, done by the workers: for a large class,
    encoding and solving per record is most of the manifest's cost)."""
    empty = dumps(Manifest(fingerprint, ()).to_json())
    placeholder = '"students": []'
    assert empty.count(placeholder) == 1, "the manifest layout changed; update manifest_text"
    items = ",\n".join("    " + record.rstrip("\n").replace("\n", "\n    ") for record in records)
    return empty.replace(placeholder, '"students": [\n' + items + "\n  ]" if records else placeholder)


def _write_chunks(chunks: list[_Chunk], progress: ProgressFactory, workers: int | None) -> tuple[list[Params], list[str]]:
    """Write every chunk, in parallel processes when there are several; the students' variants
    and their encoded manifest records."""
    instances: list[Params] = []
    records: list[str] = []
    with progress("Writing sheets and keys", sum(len(c.entries) for c in chunks)) as bar:
        if len(chunks) == 1:
            results: Iterator[tuple[list[Params], list[str]] | _ChunkFailure] = map(_write_chunk, chunks)
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=min(len(chunks), workers or os.cpu_count() or 1))
            results = pool.map(_write_chunk, chunks)
        try:
            for chunk, result in zip(chunks, results):
                if isinstance(result, _ChunkFailure):
                    raise InputError(result.field, result.reason)
                instances.extend(result[0])
                records.extend(result[1])
                bar.update(len(chunk.entries))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return instances, records


def _write_chunk(chunk: _Chunk) -> tuple[list[Params], list[str]] | _ChunkFailure:
    """One chunk's variants, solutions, sheets, keys and manifest records (runs in a worker)."""
    try:
        instances = variants.variants(chunk.seed, [e.student_id for e in chunk.entries])
        worked = render.solve_batch(instances)
        wrong = render.wrong_values(instances, worked)
        staging = Path(chunk.staging)
        for n, entry in enumerate(chunk.entries):
            key = render.key_context(instances[n], worked[n], entry.student_id, dict(entry.columns), chunk.fingerprint, wrong[n])
            _write_student(staging, chunk.stems[n], entry, instances[n], key, chunk.templates_dir)
        records = [
            dumps(StudentRecord(e.student_id, stem, p, dict(e.columns)).to_json())
            for e, stem, p in zip(chunk.entries, chunk.stems, instances)
        ]
        return instances, records
    except InputError as exc:
        return _ChunkFailure(exc.field, exc.reason)


def _write_student(
    staging: Path, stem: str, entry: RosterEntry, params: Params, key: dict[str, Any], templates_dir: str | None
) -> None:
    """One student's problem sheets, blank answer file and keys."""
    problem = render.problem_context(params, entry.student_id, dict(entry.columns))
    folder = f"{STUDENTS_DIR}/{stem}"
    (staging / folder).mkdir()
    for fmt in render.FORMATS:
        _write(staging, f"{folder}/problem.{fmt}", render.render(fmt, render.problem_template(fmt), problem, templates_dir))
        _write(staging, f"{KEYS_DIR}/{stem}.{fmt}", render.render(fmt, render.key_template(fmt), key, templates_dir))
    _write(staging, f"{folder}/submission.json", problem["submission_json"])


def _write_pdfs(
    staging: Path,
    stems: list[str],
    instances: list[Params],
    fingerprint: str,
    entries: Sequence[RosterEntry],
    templates_dir: str | Path | None,
    progress: ProgressFactory,
    pdflatex: str,
) -> None:
    """Each key's PDF from its .tex, then all.pdf from one document holding every key."""
    jobs = [(f"{KEYS_DIR}/{stem}.tex", (staging / KEYS_DIR / f"{stem}.tex").read_text(encoding="utf-8")) for stem in stems]
    for stem, pdf in zip(stems, _build_pdfs(jobs, progress, "Compiling PDF keys", pdflatex)):
        _write(staging, f"{KEYS_DIR}/{stem}.pdf", pdf)
    # The key contexts again, here rather than kept from the workers: they are quick to rebuild.
    worked = render.solve_batch(instances)
    wrong = render.wrong_values(instances, worked)
    contexts = [
        render.key_context(p, s, e.student_id, dict(e.columns), fingerprint, w)
        for p, s, e, w in zip(instances, worked, entries, wrong)
    ]
    everything = render.render_all_keys(contexts, templates_dir)
    timeout = PDFLATEX_TIMEOUT + PDFLATEX_SECONDS_PER_KEY * len(stems)
    with progress(f"Compiling {KEYS_DIR}/{ALL_KEYS_PDF}", 1) as bar:
        _write(staging, f"{KEYS_DIR}/{ALL_KEYS_PDF}", build_pdf(everything, f"{KEYS_DIR}/{ALL_KEYS_PDF}", timeout, pdflatex))
        bar.update(1)
