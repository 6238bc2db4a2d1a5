"""The whole of ``hwgen grade`` for a class: read every file, grade, write every output.

Two passes over the class, each on every core (grader.parallel):

1. read: every file is parsed and checked for form (grader.submission);
2. grade and write: the students are matched to their files (grading.assign), then chunk by
   chunk graded in one batch (grading.complete_in_groups), their feedback written and their rows of the
   gradebook files built (reports.write_outputs), which this process puts together at the end.

Between the two, this process decides which file is each student's, which needs all of them.
The outputs are byte for byte those of grading.grade_files followed by reports.write_reports,
which keep the whole gradebook in one process (for the library and the tests).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Callable, Sequence

from grader import grading, reports
from grader.grading import Gradebook
from grader.manifest import Manifest
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
    s = settings
    context = Gradebook((), s.tolerance, s.rubric, s.follow_through, manifest_used, tuple(s.skipped))
    grade = functools.partial(grading.complete_in_groups, tolerance=s.tolerance, rubric=s.rubric, follow_through=s.follow_through)
    return reports.write_outputs(context, out_dir, tasks, grade, s.assignment, s.reveal, progress)
