"""The whole of ``hwgen grade`` for a class: read every file, grade, write every output.

Two passes over the class, each on every core (grader.parallel):

1. read: every file is parsed and checked for form (grader.submission);
2. grade and write: the students are matched to their files (grading.assign) and graded in
   one batch (grading.complete_in_groups), then chunk by chunk their feedback is written and
   their rows of the gradebook files built (reports.report_chunk), which this process puts
   together as they come.

Between the two, this process decides which file is each student's, which needs all of them;
meanwhile each worker grades the files it holds as their students' tasks will most likely be
(_pregrade), and a task finds its grades made already. A worker done with its share takes
over rows another has not been asked for yet (_give_up, _take_up).
For a large class (``run``) both passes are done by one crew of workers (parallel.Crew): a
worker grades the files it read, so that only a few fields of each file travel to this
process, and only a student's manifest row and roster back. The outputs are byte for byte
those of grading.grade_files followed by reports.write_reports, which keep the whole gradebook
in one process (for the library and the tests).
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
import pickle
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from grader import grading, parallel, reports
from grader.grading import Gradebook, ManifestParts
from grader.manifest import Manifest
from grader.params import HW2, ParamsRow
from grader.progress import ProgressFactory, no_progress
from grader.submission import InvalidSubmission, layout_for, layout_of
from grader.rubric import DEFAULT_RUBRIC, Rubric
from grader.tolerance import Tolerance


@dataclass(frozen=True)
class Settings:
    """How a class is graded and what its outputs say (the options of ``hwgen grade``)."""

    tolerance: Tolerance = Tolerance()
    rubric: Rubric = DEFAULT_RUBRIC
    follow_through: bool = True  # credit entries right for the student's own earlier answers
    skipped: tuple[str, ...] = ()  # files found that are not .json, listed in results.json
    assignment: str = reports.TITLE  # the assignment column's name in canvas.csv
    reveal: bool = False  # show the expected values in the feedback


def grade_class(
    files: Sequence[str], manifest: Manifest | None, out_dir: str | os.PathLike, settings: Settings = Settings()
) -> tuple[reports.Written, list[reports.Row]]:
    """Grade ``files`` and write results.json, grades.csv, canvas.csv and feedback/ in ``out_dir``.

    Returns what was written and one row per record (roster students by id, then files
    matched to no student), for the summary.
    """
    tasks = grading.assign(grading.read_files(files, manifest), manifest, settings.rubric)
    return write_graded(tasks, manifest is not None, out_dir, settings)


def write_graded(
    tasks: Sequence[grading.Task],
    manifest_used: bool,
    out_dir: str | os.PathLike,
    settings: Settings = Settings(),
    progress: Callable[[int], None] | None = None,
) -> tuple[reports.Written, list[reports.Row]]:
    """The second pass: grade the students among ``tasks`` (grading.assign) chunk by chunk and
    write every output."""
    context, grade = _grading(settings, manifest_used)
    return reports.write_outputs(context, out_dir, tasks, grade, settings.assignment, settings.reveal, progress)


def _grading(s: Settings, manifest_used: bool) -> tuple[Gradebook, Callable[[Sequence[grading.Task]], list[grading.Graded]]]:
    """The settings as the reports need them, and the function that grades a chunk of tasks."""
    context = Gradebook((), s.tolerance, s.rubric, s.follow_through, manifest_used, tuple(s.skipped))
    grade = functools.partial(grading.complete_in_groups, tolerance=s.tolerance, rubric=s.rubric, follow_through=s.follow_through)
    return context, grade


def run(
    files: Sequence[str],
    load_manifest: Callable[[], Manifest | ManifestParts] | None,
    out_dir: str | os.PathLike,
    settings: Settings = Settings(),
    progress: ProgressFactory | None = None,
) -> tuple[reports.Written, list[reports.Row]]:
    """Everything ``hwgen grade`` does once the files are found: the manifest loaded with
    ``load_manifest()`` (None: no manifest; see grading.read_class), every file read, every
    student graded and every output written under ``out_dir``. ``progress(label, total)``, if
    given, makes a progress bar (a context manager giving an object with ``update(count)``)
    for each of the two passes.

    A large class goes to a crew of workers (one per core) that read the files and then grade
    the students whose files they read; the manifest loads in a process of its own meanwhile
    (``load_manifest`` may be one started already, by parallel.start_forked).
    """
    bar = progress or no_progress
    s = settings
    if parallel.workers_for(len(files)) == 1:
        with bar("Reading files", len(files)) as reading:
            manifest, results = grading.read_class(files, load_manifest or _none, reading.update, apart=False)
        tasks = grading.assign(results, manifest, s.rubric)
        with bar("Grading and writing", len(tasks)) as writing:
            return write_graded(tasks, manifest is not None, out_dir, s, writing.update)
    if hasattr(load_manifest, "ready"):  # started already (parallel.start_forked)
        loading = load_manifest
    else:
        loading = parallel.start_forked(load_manifest) if load_manifest is not None else _none
    global _JOB
    _JOB = (list(files), layout_of(HW2))  # what the workers inherit
    try:
        with parallel.Crew(parallel.workers_for(len(files))) as crew:
            with bar("Reading files", len(files)) as reading:
                results, sent = _read_in(crew, len(files), reading.update, loading)
                manifest = loading()
            columns = manifest.columns if isinstance(manifest, ManifestParts) else None
            if columns is not None and not sent:
                _send_columns(crew, columns, loading)
            context, grade = _grading(s, manifest is not None)
            if columns is not None or manifest is None:
                # The workers grade what they hold while this process decides whose file is whose.
                for worker in range(crew.size):
                    crew.call(worker, _pregrade, grade)
            grading.recheck(results, manifest)
            tasks = grading.assign(results, manifest, s.rubric)
            shares = _shares(tasks, crew.size, columns)
            _balance(crew, shares)

            def produce(folder: str, fresh: bool) -> Iterator[tuple[int, list[reports.Row]]]:
                return _grade_in(crew, shares, len(tasks), (grade, context, s.reveal, folder, fresh))

            with bar("Grading and writing", len(tasks)) as writing:
                written, rows = reports.write_gradebook(context, out_dir, produce, s.assignment, writing.update)
    except BaseException:
        getattr(loading, "cancel", _none)()  # a manifest not yet taken: its process is stopped
        raise
    finally:
        _JOB = ()
    return written, rows


def _none() -> None:
    return None


# --- The crew's two passes, as this process drives them --------------------------------------------


class Held(NamedTuple):
    """A well-formed file as this process knows it while a worker holds the Submission: what
    grading.assign needs of it, and where it is."""

    student_id: str
    mtime_ns: int
    source: str
    worker: int
    index: int  # in the list of files


def _read_in(crew: parallel.Crew, count: int, progress: Callable[[int], None] | None, loading: Callable[[], Any] = _none) -> tuple[list, bool]:
    """Every file read by the crew, in order: an InvalidSubmission, or a Held for a Submission
    the worker keeps; and whether the manifest's columns were sent to the workers meanwhile.
    Chunks are handed out as workers finish, two at a time each.

    The manifest (``loading()``, see parallel.start_forked) is taken as soon as it is in, its
    roster built and its columns sent to the workers (_send_columns), while the workers read
    on: this process would otherwise do all three after the last file, with every worker
    waiting."""
    files = _JOB[0]
    ready = getattr(loading, "ready", None)
    results: list = [None] * count
    sent = False
    starts = iter(range(0, count, parallel.CHUNK))
    for worker in range(crew.size):
        for start in itertools.islice(starts, 2):
            crew.call(worker, _read_part, start, min(start + parallel.CHUNK, count))
    for worker, reply in crew.replies():
        if reply is None:  # the columns were taken
            continue
        start, part = reply
        for index, item in enumerate(part, start):
            results[index] = item if isinstance(item, InvalidSubmission) else Held(item[0], item[1], files[index], worker, index)
        if progress is not None:
            progress(len(part))
        start = next(starts, None)
        if start is not None:
            crew.call(worker, _read_part, start, min(start + parallel.CHUNK, count))
        if ready is not None and ready():
            manifest = loading()
            if manifest is not None:
                grading._roster(manifest)  # kept for recheck and assign
            if isinstance(manifest, ManifestParts) and manifest.columns is not None:
                _send_columns(crew, manifest.columns, loading)
                sent = True
            ready = None
    return results, sent


def _send_columns(crew: parallel.Crew, columns: tuple, loading: Any = None) -> None:
    """The manifest's columns (see ManifestParts) to every worker, from which a student's share
    entry is made whole there (see _shares), and its files graded early (_pregrade): the
    manifest as it came from the process that read it (``loading.pickled()``, see
    parallel.start_forked), else the columns pickled once."""
    pickled = getattr(loading, "pickled", None)
    blob = pickled() if pickled is not None else pickle.dumps(columns, protocol=pickle.HIGHEST_PROTOCOL)
    for worker in range(crew.size):
        crew.call(worker, _take_columns, blob, pickled is not None)


def _shares(tasks: Sequence[grading.Task], workers: int, columns: tuple | None = None) -> list[list[tuple]]:
    """Each worker's share of the second pass, in the order of ``tasks``: (index in tasks, what
    to make of it). A student whose file a worker holds is that worker's, and travels as
    (where the file is, their row of the manifest's ``columns``) when the rest of their task
    is what that row says (the usual case, made whole by the worker, which has the columns),
    else as (where the file is, their params: None for HW#2's, a row of the columns or Params,
    the report's fields); any other task (a report already made, a file read here) travels
    whole to the worker with the least to do."""
    shares: list[list[tuple]] = [[] for _ in range(workers)]
    stems = columns[1] if columns is not None else ()
    for n, task in enumerate(tasks):
        sub = getattr(task, "submission", None)
        if type(sub) is Held:
            params, extra = task.params, task.extra
            if type(params) is int and len(extra) == 3 and not extra["warnings"] and extra["file_stem"] == stems[params]:
                shares[sub.worker].append((n, sub.index, params))
            else:
                shares[sub.worker].append((n, sub.index, None if params is HW2 else params, extra))
        else:
            min(shares, key=len).append((n, task))
    return shares


def _balance(crew: parallel.Crew, shares: list[list[tuple]]) -> None:
    """Even out the shares, moving the last students of a worker with more than its part, with
    their submissions, to the workers with the least.

    A worker's share is what it read, and the workers read at different speeds (the manifest
    loads beside them): shares of 8,000 and 12,000 were seen, which left one core idle for a
    tenth of the run. Moving a submission costs a few microseconds.
    """
    workers = range(len(shares))
    order = sorted(workers, key=lambda k: -len(shares[k]))
    base, extra = divmod(sum(map(len, shares)), len(shares))
    target = {k: base + (n < extra) for n, k in enumerate(order)}  # the busiest keep the odd ones
    for giver in order:
        share = shares[giver]
        while len(share) > target[giver]:
            taker = max(workers, key=lambda k: target[k] - len(shares[k]))
            count = min(len(share) - target[giver], target[taker] - len(shares[taker]))
            held = [pos for pos in range(len(share) - 1, -1, -1) if len(share[pos]) > 2][:count]  # its held students, last first
            if count <= 0 or not held:
                break
            moved = [share[pos] for pos in reversed(held)]
            leaving = set(held)
            share[:] = [entry for pos, entry in enumerate(share) if pos not in leaving]
            crew.call(giver, _hand_over, [entry[1] for entry in moved])
            submissions = [value for worker, value in crew.replies() if worker == giver and value is not None][0]
            crew.call(taker, _take_over, submissions)  # its reply (None) is taken with the next ones
            shares[taker] = sorted(shares[taker] + moved, key=operator.itemgetter(0))


def _grade_in(crew: parallel.Crew, shares: list[list[tuple]], count: int, args: tuple) -> Iterator[tuple[int, list[reports.Row]]]:
    """The second pass: each worker given its share, then asked for it chunk by chunk (two
    chunks waiting each); the rows are yielded in the order of the tasks, as soon as every
    earlier one is in.

    A worker that has done its share takes over half of what another has not been asked for
    yet (_give_up, _take_up): the shares are even in students, not in work (a pattern of
    results met first costs several times a pattern met again), and a core left idle for the
    last tenth of a second is a tenth of a second."""
    for worker, share in enumerate(shares):
        crew.call(worker, _take_share, share, args)
    chunks = [_chunks(0, len(share)) for share in shares]  # each worker's, not yet asked for
    asked = [0] * crew.size  # chunks asked for and not yet done, per worker
    takers: list[list[int]] = [[] for _ in range(crew.size)]  # per giver: who takes what it gives up, in order

    def ask(worker: int) -> None:
        while chunks[worker] and asked[worker] < 2:
            crew.call(worker, _grade_part, *chunks[worker].pop(0))
            asked[worker] += 1

    for worker in range(crew.size):
        ask(worker)
    rows: list = [None] * count
    done = 0
    for worker, reply in crew.replies():
        if type(reply) is bytes:  # rows given up, for the worker waiting for them
            crew.call(takers[worker].pop(0), _take_up, reply)
        elif type(reply) is tuple:  # rows taken up: [lo, hi) of this worker's list
            chunks[worker] += _chunks(*reply)
        elif reply is not None:  # (None: the share was taken, or its files graded early)
            asked[worker] -= 1
            for n, row in reply:
                rows[n] = row
        ask(worker)
        if crew.pending(worker) == 0:  # nothing left for it: half of the busiest one's rest
            giver = max(range(crew.size), key=lambda k: len(chunks[k]))
            if len(chunks[giver]) >= 2:
                half = len(chunks[giver]) // 2
                given, chunks[giver] = chunks[giver][half:], chunks[giver][:half]
                crew.call(giver, _give_up, given[0][0], given[-1][1])
                takers[giver].append(worker)
        start = done
        while done < count and rows[done] is not None:
            done += 1
        if done > start:
            yield done - start, rows[start:done]
    if done < count:  # every task is some worker's: a row missing is a bug, never a short gradebook
        raise RuntimeError(f"{count - done} of {count} rows were not made")


def _chunks(lo: int, hi: int) -> list[tuple[int, int]]:
    return [(start, min(start + parallel.CHUNK, hi)) for start in range(lo, hi, parallel.CHUNK)]


# --- In a worker ------------------------------------------------------------------------------------

_JOB: tuple = ()  # (files, the usual layout): set before the crew starts, inherited by its workers
_HELD: dict[int, Any] = {}  # index in files -> the Submission this worker read
_COLUMNS: list = []  # [the manifest's (row of each id, stems, rosters, params columns)] (see _take_columns)
_PREGRADED: dict[int, tuple] = {}  # index in files -> ((group, row) of its grades, the manifest's row used; None: HW#2's)
_SHARE: list = []  # the task indices of this worker's share of the second pass
_SHARE_WITH: list = []  # [report_chunk's arguments, the first of them the grading function]
_GRADED: list = []  # the share, graded (grading.complete_in_groups)


def _read_part(start: int, stop: int) -> tuple[int, list]:
    """Files [start, stop) read and checked: each Submission is kept here, and only its student
    id and modification time go back (an InvalidSubmission goes back whole)."""
    files, usual = _JOB
    out: list = []
    for index, result in enumerate(grading._read_chunk(files[start:stop], usual), start):
        if isinstance(result, InvalidSubmission):
            out.append(result)
        else:
            _HELD[index] = result
            out.append((result.student_id, result.mtime_ns))
    return start, out


def _hand_over(indices: list[int]) -> bytes:
    """The Submissions at ``indices`` of the files, given up, pickled for another worker."""
    for index in indices:
        _PREGRADED.pop(index, None)
    return pickle.dumps({index: _HELD.pop(index) for index in indices}, protocol=pickle.HIGHEST_PROTOCOL)


def _take_over(submissions: bytes) -> None:
    _HELD.update(pickle.loads(submissions))


def _take_columns(blob: bytes, whole: bool = False) -> None:
    """The manifest's columns from _send_columns: pickled, or (``whole``) the manifest as
    parallel.start_forked received it, (True, ManifestParts)."""
    ids, stems, rosters, *params = pickle.loads(blob)[1].columns if whole else pickle.loads(blob)
    # One tuple of params for every task made of them: params.stack batches rows of one tuple.
    _COLUMNS[:] = [({sid: row for row, sid in enumerate(ids)}, stems, rosters, tuple(params))]


def _pregrade(grade: Callable[[list], list]) -> None:
    """Grade every file this worker holds, as its student's task will most likely be (their row
    of the manifest's columns, or HW#2's numbers without a manifest), while this process
    decides whose file is whose; _take_share then uses these grades where the task is that.
    A file of a student the columns do not have, or of another network size, is left: this
    process reads it again (grading.recheck)."""
    _PREGRADED.clear()
    if _COLUMNS:
        row_of, stems, rosters, params = _COLUMNS[0]
        if layout_for(ParamsRow(params, 0).sizes) is not _JOB[1]:
            return  # every file is read again (grading.recheck)
        held = [(index, sub, row_of.get(sub.student_id)) for index, sub in _HELD.items()]
        held = [(index, sub, row) for index, sub, row in held if row is not None]
        tasks = [grading._Student(sub, ParamsRow(params, row), {"roster": rosters[row], "file_stem": stems[row], "warnings": []}) for _, sub, row in held]
    else:
        held = [(index, sub, None) for index, sub in _HELD.items()]
        tasks = [grading._Student(sub, HW2, {"roster": {}, "file_stem": None, "warnings": []}) for _, sub, _ in held]
    for (index, _, row), graded in zip(held, grade(tasks)):
        _PREGRADED[index] = (graded, row)


def _take_share(share: list, args: tuple) -> None:
    """This worker's share of the second pass: its grades from _pregrade where they are the
    task's, the rest graded as one batch (grading.complete_in_groups: numpy's fixed cost per
    call is paid once, not per chunk). The texts and files are made chunk by chunk
    (_grade_part), so that rows flow back while the rest is written."""
    reports._forget_patterns()
    grade = args[0]
    columns = _COLUMNS[0] if _COLUMNS else (None, None, None, ())
    _SHARE[:] = [entry[0] for entry in share]  # their indices in the tasks
    _SHARE_WITH[:] = [args]
    graded: list = [_pregraded(entry) for entry in share]
    left = [n for n, item in enumerate(graded) if item is None]
    for n, item in zip(left, grade([_task(share[n], columns) for n in left])):
        graded[n] = item
    _PREGRADED.clear()
    _GRADED[:] = graded


def _pregraded(entry: tuple) -> Any:
    """The grades _pregrade gave a task of the share, if it graded that file with these params
    (its fields made the task's); None if it did not."""
    if len(entry) == 2 or entry[1] not in _PREGRADED:
        return None
    (group, r), row = _PREGRADED.pop(entry[1])
    if len(entry) == 3:
        if entry[2] != row:
            return None
        _HELD.pop(entry[1])
        return group, r
    _, index, given, extra = entry
    if not (given is None and row is None or type(given) is int and given == row):
        return None
    student = group.students[r]
    group.students[r] = student._replace(extra=extra)
    # The warnings as _grade_group makes them: the task's own, then any grading added.
    graded_with = len(grading.task_warnings(student))
    group.warnings[r] = (*grading.task_warnings(group.students[r]), *group.warnings[r][graded_with:])
    _HELD.pop(index)
    return group, r


def _task(entry: tuple, columns: tuple) -> Any:
    """A task of the share (see _shares) as grading.complete_in_groups takes it; ``columns``
    as _take_columns keeps them (row of each id, stems, rosters, params), params being
    (activations, x, v, w, target, lr)."""
    _, stems, rosters, params = columns
    if len(entry) == 2:
        task = entry[1]
        if type(getattr(task, "params", None)) is int:  # a file read here, of a student in the columns
            task = grading._Student(task.submission, ParamsRow(params, task.params), task.extra)
        return task
    if len(entry) == 3:  # the task its row of the columns says
        _, index, row = entry
        extra = {"roster": rosters[row], "file_stem": stems[row], "warnings": []}
        return grading._Student(_HELD.pop(index), ParamsRow(params, row), extra)
    _, index, given, extra = entry
    if given is None:
        given = HW2
    elif type(given) is int:
        given = ParamsRow(params, given)
    return grading._Student(_HELD.pop(index), given, extra)


def _give_up(lo: int, hi: int) -> bytes:
    """Rows [lo, hi) of this worker's share, graded, given up to another worker (_take_up):
    pickled as their task indices and their grades, each group's rows as a group of their own."""
    items = _GRADED[lo:hi]
    _GRADED[lo:hi] = [None] * (hi - lo)
    rows_of: dict[int, tuple[Any, list[int]]] = {}  # id of a group -> (the group, its rows given up)
    for item in items:
        if type(item) is tuple:  # (group, row); anything else is a report made already
            rows_of.setdefault(id(item[0]), (item[0], []))[1].append(item[1])
    moved = {}  # id of a group -> (the group of the rows given up, a row's place in it)
    for key, (group, rows) in rows_of.items():
        moved[key] = (group.taken(rows), {row: n for n, row in enumerate(rows)})
    portable = []
    for item in items:
        if type(item) is tuple:
            group, place = moved[id(item[0])]
            item = (group, place[item[1]])
        portable.append(item)
    return pickle.dumps((_SHARE[lo:hi], portable), protocol=pickle.HIGHEST_PROTOCOL)


def _take_up(blob: bytes) -> tuple[int, int]:
    """Rows given up by another worker, added to this worker's share: where they are in it."""
    indices, items = pickle.loads(blob)
    start = len(_GRADED)
    _SHARE.extend(indices)
    _GRADED.extend(items)
    return start, len(_GRADED)


def _grade_part(lo: int, hi: int) -> list[tuple[int, reports.Row]]:
    """Rows [lo, hi) of this worker's share, graded already, as texts, their feedback written:
    (task index, Row) each."""
    _, context, reveal, folder, fresh = _SHARE_WITH[0]
    rows = reports.report_chunk(_GRADED[lo:hi], reports._as_they_are, context, reveal, folder, fresh)
    _GRADED[lo:hi] = [None] * (hi - lo)  # done with: their groups' arrays can go once all are
    return list(zip(_SHARE[lo:hi], rows))
