"""File names made from student ids: safe on every file system, never outside the output folder."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_STEM = 64
# A stem is letters, digits and ._- and starts with none of . and - (a dot-file is hidden; rm, ls
# and the rest read a leading dash as an option). Nor is it a name Windows refuses whatever the
# extension (nul, nul.txt, NUL.tar.gz), as a shared course drive may well be.
_RESERVED = r"(?i:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:[.\n]|\Z)"
_STEM = rf"(?!{_RESERVED})[A-Za-z0-9_][A-Za-z0-9._-]*"
_SAFE_STEM = re.compile(_STEM)


def safe_stem(student_id: str) -> str:
    """A file-name stem for ``student_id``: the id itself when it is already safe.

    Anything else (slashes, '..', spaces, non-ASCII, a reserved, dash-led or over-long name)
    becomes underscores plus 8 hex digits of the id's SHA-256, so two different ids never share
    a name; an underscore goes in front of what would still start like that (_nul.txt-1a2b3c4d).
    """
    stem = _UNSAFE.sub("_", student_id).strip("._") or "student"
    if stem == student_id and len(stem) <= MAX_STEM and _SAFE_STEM.fullmatch(stem):
        return stem
    digest = hashlib.sha256(student_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    stem = f"{stem[:MAX_STEM]}-{digest}"
    return stem if _SAFE_STEM.fullmatch(stem) else f"_{stem}"


def is_safe_stem(stem: str) -> bool:
    """Whether ``stem`` is one safe_stem or assign_stems could have made (no path, no dot-file,
    no reserved or dash-led name)."""
    return len(stem) <= 2 * MAX_STEM and _SAFE_STEM.fullmatch(stem) is not None


_SAFE_LINES = re.compile(rf"{_STEM}(?:\n{_STEM})*")


def all_safe_stems(stems: list) -> bool:
    """Whether every item of ``stems`` is a str that is_safe_stem accepts, checked at once: a
    manifest names thousands, nearly always all safe."""
    if not stems or set(map(type, stems)) != {str} or max(map(len, stems)) > 2 * MAX_STEM:
        return False
    joined = "\n".join(stems)
    return joined.count("\n") == len(stems) - 1 and _SAFE_LINES.fullmatch(joined) is not None


def distinct_stems(stems: dict[str, str], reserved: tuple[str, ...] = ()) -> dict[str, str]:
    """``stems`` (student id -> stem) with every stem that repeats an earlier one, also in case
    only (macOS and Windows folders ignore case), or one of the ``reserved`` names (a file of the
    tool's own, like keys/all.pdf), made distinct by a hash of the id: no two students may share
    a file. A hand-edited manifest can repeat a stem."""
    lowered = {stem.lower() for stem in stems.values()}
    if len(lowered) == len(stems) and lowered.isdisjoint(name.lower() for name in reserved):
        return dict(stems)  # the usual class: nothing to change
    return _distinct_one_by_one(stems, reserved)


def _distinct_one_by_one(stems: dict[str, str], reserved: tuple[str, ...]) -> dict[str, str]:
    """distinct_stems' rule, applied stem by stem in order."""
    taken: set[str] = {name.lower() for name in reserved}
    out: dict[str, str] = {}
    for student_id, stem in stems.items():
        if stem.lower() in taken:
            stem = f"{stem}-{hashlib.sha256(student_id.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
        taken.add(stem.lower())
        out[student_id] = stem
    return out


def assign_stems(student_ids: list[str], reserved: tuple[str, ...] = ()) -> dict[str, str]:
    """A distinct safe stem for every id (see distinct_stems)."""
    return distinct_stems({student_id: safe_stem(student_id) for student_id in student_ids}, reserved)
