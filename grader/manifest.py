"""The manifest: the instructor's record of a generated class, enough to grade without the secret.

    {"hwgen_version": "0.1.0", "seed_fingerprint": "3f2a...",
     "students": [{"student_id": "...", "file_stem": "...", "roster": {"Section": "...", ...},
                   "params": {...}, "answers": {...}}, ...]}

``params`` is the parameters JSON of ``hwgen solve``; ``answers`` has the keys of
``hwgen solve --format json``. ``roster`` keeps the roster columns worth keeping for grade
exports, under their original column names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import __version__
from grader.filenames import is_safe_stem, safe_stem
from grader.jsonio import InputError, dumps, load_json_file, write_atomic
from grader.params import Params, answers_to_json, solve_one
from grader.quoting import clip

MANIFEST_NAME = "manifest.json"
# A manifest holds about 2 kB a student: a class of 100,000 fits with room to spare.
MAX_MANIFEST_BYTES = 1024**3


@dataclass(frozen=True)
class StudentRecord:
    """One student of the class: who they are and the instance they were given."""

    student_id: str  # exactly as in the roster
    file_stem: str  # the safe file-name stem used for their files (grader.filenames)
    params: Params  # their variant
    roster: dict[str, str] = field(default_factory=dict)  # kept roster columns (name, section, SIS ids)

    def to_json(self) -> dict[str, Any]:
        return {
            "student_id": self.student_id,
            "file_stem": self.file_stem,
            "roster": dict(self.roster),
            "params": self.params.to_json(),
            # Stored for the TAs' convenience; grading recomputes from params, the source of truth.
            "answers": answers_to_json(solve_one(self.params)),
        }


@dataclass(frozen=True)
class Manifest:
    """A generated class."""

    seed_fingerprint: str  # grader.variants.seed_fingerprint of the secret seed
    students: tuple[StudentRecord, ...]
    hwgen_version: str = __version__  # the version that generated it

    def by_id(self) -> dict[str, StudentRecord]:
        return {s.student_id: s for s in self.students}

    def to_json(self) -> dict[str, Any]:
        return {
            "hwgen_version": self.hwgen_version,
            "seed_fingerprint": self.seed_fingerprint,
            "students": [s.to_json() for s in self.students],
        }

    def write(self, path: str | Path) -> None:
        write_atomic(path, dumps(self.to_json()))


def student_from_json(obj: Any, n: int) -> StudentRecord:
    where = f"students[{n}]"
    if not isinstance(obj, dict):
        raise InputError(where, "must be an object")
    student_id = obj.get("student_id")
    if not isinstance(student_id, str) or not student_id:
        raise InputError(f"{where}.student_id", "must be a non-empty string")
    roster = obj.get("roster", {})
    if not isinstance(roster, dict) or not all(isinstance(v, str) for v in roster.values()):
        raise InputError(f"{where}.roster", "must be an object of strings")
    try:
        params = Params.from_json(obj.get("params"))
    except InputError as exc:
        raise InputError(f"{where}.params.{exc.field}" if exc.field else f"{where}.params", exc.reason) from None
    file_stem = obj.get("file_stem")
    if not isinstance(file_stem, str) or not is_safe_stem(file_stem):
        file_stem = safe_stem(student_id)  # never trust a hand-edited manifest with a path
    return StudentRecord(student_id, file_stem, params, dict(roster))


def load_manifest(path: str | Path) -> Manifest:
    """A manifest from disk, validated; an InputError names the field that is wrong."""
    obj = load_json_file(path, max_bytes=MAX_MANIFEST_BYTES)
    if not isinstance(obj, dict) or not isinstance(obj.get("students"), list):
        raise InputError("students", "a manifest is an object with a list of students")
    return manifest_of(obj, tuple(student_from_json(s, n) for n, s in enumerate(obj["students"])))


def manifest_of(obj: dict[str, Any], students: tuple[StudentRecord, ...]) -> Manifest:
    """The Manifest of a parsed manifest object whose students are already validated."""
    seen: set[str] = set()
    for s in students:
        if s.student_id in seen:
            raise InputError("students", f"student id '{clip(s.student_id)}' appears twice")
        seen.add(s.student_id)
    return Manifest(
        seed_fingerprint=str(obj.get("seed_fingerprint", "")),
        students=students,
        hwgen_version=str(obj.get("hwgen_version", "")),
    )
