"""Grading a class on every core (grader.pipeline, grader.parallel) gives what one process gives.

Worker processes are forced on tiny classes here (PARALLEL_FROM 1, CHUNK 2, three workers), so
every chunk boundary and hand-over is exercised; the figures for real class sizes are in
benchmarks/, not in timed tests.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from grader import grading, parallel, pipeline
from grader.grading import INVALID, grade_files
from grader.manifest import Manifest, StudentRecord
from grader.params import HW2, Params, answers_to_json, solve_one
from grader.reports import write_reports

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes are forked on Linux only")


@pytest.fixture()
def many_workers(monkeypatch):
    monkeypatch.setenv("HWGEN_WORKERS", "3")
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 1)
    monkeypatch.setattr(parallel, "CHUNK", 2)


def folder_bytes(root: Path) -> dict:
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def small_network(seed: int) -> Params:
    """A 2-3-2 instance: not HW#2's size, so its files are read again once the manifest is known."""
    rng = np.random.default_rng(seed)
    return Params(
        x=np.round(rng.uniform(-2, 2, 2), 1),
        v=np.round(rng.uniform(-2, 2, (3, 2)), 1),
        w=np.round(rng.uniform(-2, 2, (2, 3)), 1),
        target=np.array([0.0, 1.0]),
        lr=0.1,
    )


@pytest.fixture()
def mixed_class(tmp_path):
    """A manifest of HW#2-sized and 2-3-2 students, with right, wrong-shaped, unknown, doubled and missing files."""
    records = [StudentRecord(f"h{k}", f"h{k}", HW2, {"Student": f"H {k}"}) for k in range(4)]
    records += [StudentRecord(f"s{k}", f"s{k}", small_network(k), {"Student": f"S {k}"}) for k in range(3)]
    manifest = Manifest("fp", tuple(records))
    folder = tmp_path / "in"
    folder.mkdir()

    def put(name: str, obj) -> None:
        (folder / name).write_text(json.dumps(obj))

    for record in records[:-1]:  # the last student hands in nothing
        put(f"{record.student_id}.json", {"student_id": record.student_id, "answers": answers_to_json(solve_one(record.params))})
    put("s0-hw2-shapes.json", {"student_id": "s0", "answers": answers_to_json(solve_one(HW2))})  # a second file, wrong shapes
    os.utime(folder / "s0-hw2-shapes.json", ns=(2 * 10**18, 2 * 10**18))  # the newer of s0's two
    put("stranger.json", {"student_id": "nobody", "answers": answers_to_json(solve_one(HW2))})
    (folder / "broken.json").write_text("{")
    files, _ = grading.collect_files([folder])
    return manifest, files


def test_reading_while_the_manifest_loads_gives_what_reading_against_it_gives(mixed_class, many_workers):
    manifest, files = mixed_class
    manifest_back, results = grading.read_class(files, lambda: manifest)
    expected = [grading.read_submission(f, grading._manifest_layouts(manifest)) for f in files]
    assert manifest_back.to_json() == manifest.to_json()  # read in a process of its own: a copy
    assert [type(r) for r in results] == [type(r) for r in expected]
    assert [getattr(r, "problems", None) for r in results] == [getattr(r, "problems", None) for r in expected]
    assert all(np.array_equal(a.values, b.values, equal_nan=True) for a, b in zip(results, expected) if hasattr(a, "values"))


def test_a_file_of_another_network_size_is_checked_against_its_students_own(mixed_class, many_workers):
    manifest, files = mixed_class
    _, results = grading.read_class(files, lambda: manifest)
    by_source = {Path(r.source).name: r for r in results}
    assert by_source["s1.json"].layout.sizes == (2, 3, 2)
    assert "answers.u: expected 3 numbers, got 4" in by_source["s0-hw2-shapes.json"].problems
    assert "not in the manifest" in by_source["stranger.json"].problems[0]


def test_a_class_graded_in_workers_writes_what_one_process_writes(mixed_class, many_workers, tmp_path, monkeypatch):
    manifest, files = mixed_class
    written, rows = pipeline.grade_class(files, manifest, tmp_path / "workers")
    monkeypatch.setenv("HWGEN_WORKERS", "1")
    write_reports(grade_files(files, manifest), tmp_path / "one")
    assert folder_bytes(tmp_path / "workers") == folder_bytes(tmp_path / "one")
    statuses = {row.student_id: row.status for row in rows}
    assert statuses["s0"] == INVALID and statuses["s2"] == "missing" and statuses["h0"] == "graded"
    assert written.feedback_files == len(manifest.students)


def test_an_error_while_the_manifest_loads_stops_the_workers_and_is_raised(mixed_class, many_workers):
    _, files = mixed_class

    def broken():
        raise ValueError("the manifest is broken")

    with pytest.raises(ValueError, match="broken"):
        grading.read_class(files, broken)
    assert parallel._FORKED == ()  # nothing left behind for a later run


def test_chunks_come_back_in_order_with_their_sizes(many_workers):
    chunks = list(parallel.map_chunks(lambda items: [x * x for x in items], list(range(7))))
    assert chunks == [(2, [0, 1]), (2, [4, 9]), (2, [16, 25]), (1, [36])]


def test_two_students_given_one_file_stem_get_a_feedback_file_each(tmp_path, many_workers):
    records = (StudentRecord("a", "same", HW2, {}), StudentRecord("b", "SAME", HW2, {}))
    files = []
    for record in records:
        path = tmp_path / f"{record.student_id}.json"
        path.write_text(json.dumps({"student_id": record.student_id, "answers": answers_to_json(solve_one(HW2))}))
        files.append(str(path))
    written, _ = pipeline.grade_class(files, Manifest("fp", records), tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out" / "feedback").iterdir())
    assert written.feedback_files == 2 and "same.md" in names and [n for n in names if n != "same.md"][0].startswith("SAME-")


def test_a_regrade_replaces_a_fifo_put_in_the_feedback_folder_instead_of_waiting_on_it(mixed_class, tmp_path):
    import subprocess

    manifest, files = mixed_class
    out = tmp_path / "out"
    pipeline.grade_class(files, manifest, out)
    fifo = out / "feedback" / "h0.md"
    fifo.unlink()
    os.mkfifo(fifo)
    code = (
        "import sys, pickle; from grader import pipeline; "
        "files, manifest = pickle.load(open(sys.argv[1], 'rb')); pipeline.grade_class(files, manifest, sys.argv[2])"
    )
    import pickle

    (tmp_path / "args.pickle").write_bytes(pickle.dumps((files, manifest)))
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "args.pickle"), str(out)], check=True, timeout=120)
    assert fifo.is_file() and fifo.read_text().startswith("# HW#2: feedback for h0")


def test_grading_the_same_tasks_twice_writes_the_same_outputs(mixed_class, tmp_path, monkeypatch):
    monkeypatch.setenv("HWGEN_WORKERS", "1")
    manifest, files = mixed_class
    tasks = grading.assign(grading.read_files(files, manifest), manifest, pipeline.Settings().rubric)
    pipeline.write_graded(tasks, True, tmp_path / "first")
    pipeline.write_graded(tasks, True, tmp_path / "second")
    assert folder_bytes(tmp_path / "first") == folder_bytes(tmp_path / "second")
    assert b"2 files for this student" in (tmp_path / "second" / "feedback" / "s0.md").read_bytes()


def test_a_folder_per_student_does_not_run_out_of_file_descriptors(tmp_path):
    """Submissions downloaded as one folder per student: a chunk holds hundreds of folders."""
    import resource

    for k in range(300):
        (tmp_path / f"stu{k:03d}").mkdir()
        (tmp_path / f"stu{k:03d}" / "hw2.json").write_text(json.dumps({"student_id": f"s{k}", "answers": answers_to_json(solve_one(HW2))}))
    files, _ = grading.collect_files([tmp_path])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
    try:
        results = grading._read_chunk(files, grading.layout_of(HW2))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [type(r).__name__ for r in results] == ["Submission"] * 300


def test_a_submission_read_in_a_worker_is_like_one_read_here(mixed_class, many_workers):
    manifest, files = mixed_class
    results = grading.read_files(files, manifest)
    values = next(r.values for r in results if hasattr(r, "values"))
    assert values.flags.writeable and values.dtype == np.float64


# --- pipeline.run: a crew of workers reads the files and grades the students it read ----------------


@pytest.fixture()
def uniform_class(tmp_path):
    """A generated class of one network size, its manifest on disk (read in columns), with
    right, slipped, doubled, unknown, broken and missing files, in two folders."""
    from grader import variants

    ids = [f"u{k:02d}" for k in range(9)]
    records = tuple(StudentRecord(sid, sid, p, {"Student": f"U {sid}", "Section": "A"}) for sid, p in zip(ids, variants.variants("crew-seed", ids)))
    manifest_path = tmp_path / "manifest.json"
    Manifest(variants.seed_fingerprint("crew-seed"), records).write(manifest_path)
    folders = [tmp_path / "in" / "one", tmp_path / "in" / "two"]
    for folder in folders:
        folder.mkdir(parents=True)
    for k, record in enumerate(records[:-1]):  # the last student hands in nothing
        answers = answers_to_json(solve_one(record.params))
        if k % 3 == 1:
            answers["u"][0] += 0.5  # a slip, carried forward by nobody: later entries wrong
        (folders[k % 2] / f"{record.student_id}.json").write_text(json.dumps({"student_id": record.student_id, "answers": answers}))
    twice = folders[1] / "u00-again.json"
    twice.write_text(json.dumps({"student_id": "u00", "answers": {"u": [1, 2, 3, 4]}}))
    os.utime(twice, ns=(2 * 10**18, 2 * 10**18))  # the newer of u00's two
    (folders[0] / "stranger.json").write_text(json.dumps({"student_id": "nobody", "answers": {}}))
    (folders[1] / "broken.json").write_text('{"student_id": "u02", "answers": NaN}')
    files, _ = grading.collect_files([tmp_path / "in"])
    return manifest_path, files


def _run(files, load, out, settings=pipeline.Settings()):
    return pipeline.run(files, load, out, settings)


@pytest.mark.parametrize("reveal", [False, True])
def test_a_class_run_by_a_crew_writes_what_one_process_writes(uniform_class, many_workers, tmp_path, monkeypatch, reveal):
    manifest_path, files = uniform_class
    settings = pipeline.Settings(reveal=reveal)
    written, rows = _run(files, lambda: grading.read_manifest_parts(manifest_path), tmp_path / "crew", settings)
    monkeypatch.setenv("HWGEN_WORKERS", "1")
    _run(files, lambda: grading.read_manifest_parts(manifest_path), tmp_path / "one", settings)
    assert folder_bytes(tmp_path / "crew") == folder_bytes(tmp_path / "one")
    statuses = {row.student_id: row.status for row in rows}
    assert statuses == {**{f"u{k:02d}": "graded" for k in range(8)}, "u02": INVALID, "u08": "missing", "nobody": INVALID}
    assert written.feedback_files == 9


def test_a_mixed_class_run_by_a_crew_writes_what_the_library_writes(mixed_class, many_workers, tmp_path, monkeypatch):
    """Two network sizes (a manifest kept whole, files read again against it), a doubled and an unknown file."""
    manifest, files = mixed_class
    _run(files, lambda: manifest, tmp_path / "crew")
    monkeypatch.setenv("HWGEN_WORKERS", "1")
    write_reports(grade_files(files, manifest), tmp_path / "one")
    assert folder_bytes(tmp_path / "crew") == folder_bytes(tmp_path / "one")


def test_a_class_without_a_manifest_run_by_a_crew_writes_what_one_process_writes(uniform_class, many_workers, tmp_path, monkeypatch):
    _, files = uniform_class
    _run(files, None, tmp_path / "crew")
    monkeypatch.setenv("HWGEN_WORKERS", "1")
    _run(files, None, tmp_path / "one")
    assert folder_bytes(tmp_path / "crew") == folder_bytes(tmp_path / "one")


def test_a_regrade_by_a_crew_rewrites_nothing_that_has_not_changed(uniform_class, many_workers, tmp_path):
    manifest_path, files = uniform_class
    load = lambda: grading.read_manifest_parts(manifest_path)  # noqa: E731
    _run(files, load, tmp_path / "out")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "feedback").iterdir()}
    first = folder_bytes(tmp_path / "out")
    _run(files, load, tmp_path / "out")
    assert folder_bytes(tmp_path / "out") == first
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "feedback").iterdir()} == before


def test_the_progress_of_a_run_counts_every_file_and_every_record(uniform_class, many_workers, tmp_path):
    import contextlib

    manifest_path, files = uniform_class
    counted: dict[str, list[int]] = {}

    @contextlib.contextmanager
    def bar(label, total):
        counts = counted.setdefault(label, [total])

        class Bar:
            def update(self, count):
                counts.append(count)

        yield Bar()

    _, rows = pipeline.run(files, lambda: grading.read_manifest_parts(manifest_path), tmp_path / "out", pipeline.Settings(), bar)
    reading, writing = counted["Reading files"], counted["Grading and writing"]
    assert reading[0] == sum(reading[1:]) == len(files)
    assert writing[0] == sum(writing[1:]) == len(rows)


def test_an_error_while_the_manifest_loads_in_a_run_stops_the_crew(uniform_class, many_workers, tmp_path):
    import multiprocessing

    _, files = uniform_class

    def broken():
        raise ValueError("the manifest is broken")

    with pytest.raises(ValueError, match="broken"):
        _run(files, broken, tmp_path / "out")
    assert multiprocessing.active_children() == []
    assert pipeline._JOB == ()  # nothing left behind for a later run
    assert not (tmp_path / "out").exists()


_READ_PART = pipeline._read_part


def _slow_read_part(start: int, stop: int):
    time.sleep(0.05)
    return _READ_PART(start, stop)


def test_a_manifest_that_loads_before_the_files_are_read_is_taken_during_the_read(uniform_class, many_workers, tmp_path, monkeypatch):
    manifest_path, files = uniform_class
    taken_at: list[int] = []
    monkeypatch.setattr(pipeline, "_read_part", _slow_read_part)
    roster = grading._roster
    monkeypatch.setattr(grading, "_roster", lambda manifest: (taken_at.append(time.monotonic_ns()), roster(manifest))[1])
    done_at: list[int] = []
    read_in = pipeline._read_in
    monkeypatch.setattr(pipeline, "_read_in", lambda *args: (read_in(*args), done_at.append(time.monotonic_ns()))[0])
    _run(files, lambda: grading.read_manifest_parts(manifest_path), tmp_path / "out")
    assert taken_at and taken_at[0] < done_at[0]


def _answer(value):
    return value


def test_a_forked_result_is_ready_once_it_is_in_and_the_same_when_asked_again():
    result = parallel.start_forked(lambda: _answer([1, 2]))
    deadline = time.monotonic() + 30
    while not result.ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert result.ready()
    assert result() == [1, 2]
    assert result() == [1, 2]


def test_a_forked_error_is_raised_each_time_it_is_asked_for():
    result = parallel.start_forked(lambda: _fail("no manifest"))
    for _ in range(2):
        with pytest.raises(KeyError, match="no manifest"):
            result()
    assert result.ready()


# --- parallel.Crew ----------------------------------------------------------------------------------

_KEPT: list = []


def _keep(value):
    _KEPT.append(value)
    return len(_KEPT)


def _kept():
    return list(_KEPT)


def _fail(message):
    raise KeyError(message)


def _die():
    os._exit(3)


def test_a_crew_worker_keeps_what_it_made_between_calls():
    with parallel.Crew(2) as crew:
        for value in "abc":
            crew.call(0, _keep, value)
        crew.call(1, _keep, "z")
        assert sorted(crew.replies()) == [(0, 1), (0, 2), (0, 3), (1, 1)]
        crew.call(0, _kept)
        crew.call(1, _kept)
        assert dict(crew.replies()) == {0: ["a", "b", "c"], 1: ["z"]}
    assert _KEPT == []  # nothing was made in this process


def test_a_crew_worker_s_exception_is_raised_here():
    with parallel.Crew(1) as crew:
        crew.call(0, _fail, "no such student")
        with pytest.raises(KeyError, match="no such student"):
            list(crew.replies())


def test_a_crew_worker_that_dies_is_an_error_not_a_hang():
    with parallel.Crew(1) as crew:
        crew.call(0, _die)
        with pytest.raises(RuntimeError, match="ended before its work was done"):
            list(crew.replies())


def _held() -> list[int]:
    return sorted(pipeline._HELD)


def test_uneven_shares_are_evened_out_with_their_submissions(uniform_class, many_workers):
    """A worker that read every file hands the last half of its students to the other."""
    from grader.submission import layout_of

    _, files = uniform_class
    pipeline._JOB = (files, layout_of(HW2))
    try:
        with parallel.Crew(2) as crew:
            crew.call(0, pipeline._read_part, 0, len(files))
            ((_, (_, part)),) = crew.replies()
            held = [n for n, item in enumerate(part) if type(item) is tuple]
            shares = [[(n, index, None, {}) for n, index in enumerate(held)], []]
            pipeline._balance(crew, shares)
            assert [len(s) for s in shares] == [(len(held) + 1) // 2, len(held) // 2]
            assert [e[0] for e in shares[0] + shares[1]] == list(range(len(held)))  # each in task order
            crew.call(0, _held)
            crew.call(1, _held)
            holding = {worker: value for worker, value in crew.replies() if value is not None}
            assert holding == {0: [e[1] for e in shares[0]], 1: [e[1] for e in shares[1]]}
    finally:
        pipeline._JOB = ()


def _fail_reading(start, stop):
    raise OSError("the disk went away")


def test_a_crew_error_while_the_manifest_still_loads_stops_that_process_too(uniform_class, many_workers, tmp_path, monkeypatch):
    import multiprocessing
    import time

    _, files = uniform_class
    monkeypatch.setattr(pipeline, "_read_part", _fail_reading)

    def slow():
        time.sleep(60)

    with pytest.raises(OSError, match="went away"):
        _run(files, slow, tmp_path / "out")
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("sizes", [(5, 5, 0), (0, 9, 0), (7, 0, 0, 1)])
def test_shares_of_many_workers_are_evened_out(tmp_path, sizes):
    """Two workers above the even share, a giver after its taker, four workers."""
    from grader.submission import layout_of

    for k in range(sum(sizes)):
        (tmp_path / f"s{k:02d}.json").write_text(json.dumps({"student_id": f"s{k:02d}", "answers": answers_to_json(solve_one(HW2))}))
    files, _ = grading.collect_files([tmp_path])
    pipeline._JOB = (files, layout_of(HW2))
    try:
        with parallel.Crew(len(sizes)) as crew:
            shares, start = [], 0
            for worker, size in enumerate(sizes):
                if size:
                    crew.call(worker, pipeline._read_part, start, start + size)
                shares.append([(n, n, None, {}) for n in range(start, start + size)])
                start += size
            list(crew.replies())
            pipeline._balance(crew, shares)
            assert max(map(len, shares)) - min(map(len, shares)) <= 1
            assert sorted(e[0] for share in shares for e in share) == list(range(sum(sizes)))  # none lost, none twice
            assert all([e[0] for e in share] == sorted(e[0] for e in share) for share in shares)
            for worker in range(len(sizes)):
                crew.call(worker, _held)
            holding = {worker: value for worker, value in crew.replies() if value is not None}
            assert {w: holding.get(w, []) for w in range(len(sizes))} == {w: [e[1] for e in share] for w, share in enumerate(shares)}
    finally:
        pipeline._JOB = ()


def _die_reading(start, stop):
    os._exit(9)  # as the out-of-memory killer would end it


def test_grade_says_in_one_line_that_a_worker_died(uniform_class, many_workers, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from grader.cli import cli

    manifest_path, files = uniform_class
    monkeypatch.setattr(pipeline, "_read_part", _die_reading)
    result = CliRunner().invoke(cli, ["grade", *files, "--manifest", str(manifest_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: a worker process ended before its work was done; nothing was lost, grade again (HWGEN_WORKERS=1 uses one process)"
    )


def test_a_workers_share_is_one_batch_of_the_manifests_columns(monkeypatch):
    """The tasks a worker makes of its share (pipeline._take_share) all hold rows of one tuple
    of params columns: params.stack then takes them in one indexing, not one student at a time
    (a slip here once cost a tenth of the run and changed no output)."""
    from grader.params import ParamsRow, _shared_columns
    from grader.submission import Submission, layout_of

    import pickle

    x, v, w, t = (np.stack([getattr(HW2, k)] * 3) for k in ("x", "v", "w", "target"))
    columns = (["s0", "s2", "s1"], ["s0", "s1", "s2"], [{"Student": "A"}, {}, {}], ["elu"] * 3, x, v, w, t, np.full(3, 0.1))
    monkeypatch.setattr(pipeline, "_COLUMNS", [])
    pipeline._take_columns(pickle.dumps(columns))
    held = {n: Submission(f"s{n}", np.zeros(layout_of(HW2).size), layout_of(HW2)) for n in range(3)}
    monkeypatch.setattr(pipeline, "_HELD", dict(held))
    seen = []
    args = (lambda tasks: seen.extend(tasks) or list(tasks), None, False, "", True)
    pipeline._take_share([(0, 0, 0), (1, 1, 2), (2, 2, 1, {"roster": {}, "file_stem": "x", "warnings": ["two files"]})], args)
    assert [task.submission for task in seen] == [held[0], held[1], held[2]]
    assert [task.params.row for task in seen] == [0, 2, 1] and all(type(task.params) is ParamsRow for task in seen)
    assert _shared_columns([task.params for task in seen]) is not None
    assert seen[0].extra == {"roster": {"Student": "A"}, "file_stem": "s0", "warnings": []}
    assert seen[2].extra["warnings"] == ["two files"]


def test_a_file_graded_early_is_taken_only_as_its_task_says_with_the_tasks_fields(monkeypatch):
    """pipeline._pregrade grades a worker's files before the share is known; _take_share takes
    those grades where the task is the one graded (the same row of the columns), with the
    task's own fields: its notes join the file's warnings, before any grading added."""
    import functools
    import pickle

    from grader.submission import Submission, layout_of
    from grader.tolerance import Tolerance

    x, v, w, t = (np.stack([getattr(HW2, k)] * 2) for k in ("x", "v", "w", "target"))
    columns = (["s0", "s1"], ["s0", "s1"], [{"Student": "A"}, {"Student": "B"}], ["elu"] * 2, x, v, w, t, np.full(2, 0.1))
    monkeypatch.setattr(pipeline, "_COLUMNS", [])
    monkeypatch.setattr(pipeline, "_JOB", ([], layout_of(HW2)))
    pipeline._take_columns(pickle.dumps(columns))
    right = np.concatenate([np.ravel(a) for a in solve_one(HW2).values()])
    held = {7: Submission("s0", right.copy(), layout_of(HW2), warnings=("w1",)), 8: Submission("s1", right.copy(), layout_of(HW2))}
    monkeypatch.setattr(pipeline, "_HELD", dict(held))
    monkeypatch.setattr(pipeline, "_PREGRADED", {})
    grade = functools.partial(grading.complete_in_groups, tolerance=Tolerance(), rubric=grading.DEFAULT_RUBRIC, follow_through=True)
    pipeline._pregrade(grade)
    assert set(pipeline._PREGRADED) == {7, 8}
    group, r = pipeline._PREGRADED[7][0]
    group.warnings[r] += ("added by grading",)
    extra = {"roster": {"Student": "A"}, "file_stem": "s0-2", "warnings": ["2 files for this student"], "other_sources": ("old.json",)}
    args = (grade, None, False, "", True)
    pipeline._take_share([(0, 7, 0, extra), (1, 8, 0)], args)  # file 8 is s1's, at row 1: graded again
    (g0, r0), (g1, r1) = pipeline._GRADED
    assert (g0, r0) == (group, r) and g0.students[r0].extra == extra
    assert g0.warnings[r0] == ("w1", "2 files for this student", "added by grading")
    assert g1 is not group and g1.students[r1].params.row == 0
    assert pipeline._HELD == {} and pipeline._PREGRADED == {}


def test_a_worker_done_early_takes_over_rows_of_a_slow_one_and_the_outputs_are_the_same(many_workers, tmp_path, monkeypatch):
    import time

    folder = tmp_path / "in"
    folder.mkdir()
    right = answers_to_json(solve_one(HW2))
    for k in range(40):
        answers = json.loads(json.dumps(right))
        if k % 4 == 1:
            answers["z"][0] += 0.3  # a slip: a pattern of its own
        (folder / f"s{k:02d}.json").write_text(json.dumps({"student_id": f"s{k:02d}", "answers": answers}))
    files, _ = grading.collect_files([folder])
    marks = tmp_path / "marks"
    marks.mkdir()
    grade_part, give_up = pipeline._grade_part, pipeline._give_up

    def slow_grade_part(lo, hi):  # the worker graded task 0 is slow: the others finish first
        if 0 in pipeline._SHARE:
            time.sleep(0.2)
        return grade_part(lo, hi)

    def marked_give_up(lo, hi):
        (marks / f"{os.getpid()}-{lo}").touch()
        return give_up(lo, hi)

    for name, func in (("_grade_part", slow_grade_part), ("_give_up", marked_give_up)):
        func.__name__ = func.__qualname__ = name
        func.__module__ = pipeline.__name__
        monkeypatch.setattr(pipeline, name, func)
    _run(files, None, tmp_path / "crew")
    assert any(marks.iterdir()), "no rows were given up"
    monkeypatch.setenv("HWGEN_WORKERS", "1")
    _run(files, None, tmp_path / "one")
    assert folder_bytes(tmp_path / "crew") == folder_bytes(tmp_path / "one")
