"""The grading rubric: points per answer and per derivation, and credit for follow-through and mistakes.

The default is the data file ``grader/rubric.toml`` beside this module; ``hwgen grade --rubric``
reads another one (TOML, or JSON when the name ends in ``.json``) of the same structure:

    follow_through = 1.0                       # fraction of an entry's points
    [answers.2]      u = 2 ... loss = 2         # part -> answer key -> points
    [derivations.1]  u = 2.5 ...                # part -> derivation key -> points
    [mistake_credit] transposed-gradient = 0.5  # mistake id -> fraction (others earn 0)

Every answer key must be in exactly one answers part, so a typo cannot silently drop an answer
from the grade. A quantity's points are split evenly over its entries.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from grader import core, mistakes
from grader.jsonio import InputError, loads_strict, read_text
from grader.quoting import clip

DEFAULT_RUBRIC_PATH = Path(__file__).with_name("rubric.toml")
DERIVATION_KEYS = ("u", "h", "z", "o", "grad_w", "grad_v")  # the expressions parts 1 and 3 ask for
TOP_LEVEL_KEYS = ("follow_through", "answers", "derivations", "mistake_credit")
# Far more than any homework is worth, and small enough that no score, total or class mean can
# overflow to infinity, which a JSON report cannot hold.
MAX_POINTS = 1_000_000


@dataclass(frozen=True)
class Rubric:
    """Points and credit fractions; parts are keyed by their number as a string ("1".."5")."""

    answers: Mapping[str, Mapping[str, float]]  # part -> answer key -> points
    derivations: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # part -> key -> points
    follow_through: float = 1.0  # fraction of an entry's points for follow-through
    mistake_credit: Mapping[str, float] = field(default_factory=dict)  # mistake id -> fraction

    def part_of(self, key: str) -> str:
        """The answers part that grades answer ``key``."""
        return next(part for part, points in self.answers.items() if key in points)

    def points(self, key: str) -> float:
        """The points of answer ``key`` (all its entries together)."""
        return self.answers[self.part_of(key)][key]

    def credit_for(self, mistake_id: str) -> float:
        return self.mistake_credit.get(mistake_id, 0.0)

    @property
    def parts(self) -> tuple[str, ...]:
        """Every part, answers and derivations, in numeric order."""
        return tuple(sorted({*self.answers, *self.derivations}, key=_part_order))

    def to_json(self) -> dict[str, Any]:
        return {
            "follow_through": self.follow_through,
            "answers": {part: dict(points) for part, points in self.answers.items()},
            "derivations": {part: dict(points) for part, points in self.derivations.items()},
            "mistake_credit": dict(self.mistake_credit),
        }

    @classmethod
    def from_json(cls, obj: Any) -> "Rubric":
        """A validated rubric from parsed TOML or JSON; an InputError names the offending field."""
        if not isinstance(obj, dict):
            raise InputError(None, "a rubric is a table (object) with " + ", ".join(TOP_LEVEL_KEYS))
        unknown = sorted(set(obj) - set(TOP_LEVEL_KEYS))
        if unknown:
            raise InputError(clip(unknown[0]), "is not a rubric setting; expected one of " + ", ".join(TOP_LEVEL_KEYS))
        if "answers" not in obj:
            raise InputError("answers", "is missing")
        answers = _parts(obj["answers"], "answers", core.ANSWER_KEYS)
        derivations = _parts(obj.get("derivations", {}), "derivations", DERIVATION_KEYS)
        seen = [key for points in answers.values() for key in points]
        for key in core.ANSWER_KEYS:
            if seen.count(key) != 1:
                where = "is in no answers part" if key not in seen else "is in more than one answers part"
                raise InputError(f"answers.{key}", f"{where}; each answer must be graded exactly once")
        shared = sorted(set(answers) & set(derivations))
        if shared:
            raise InputError(f"derivations.{shared[0]}", "is also an answers part; a part is one or the other")
        follow_through = _fraction(obj.get("follow_through", 1.0), "follow_through")
        credit = obj.get("mistake_credit", {})
        if not isinstance(credit, dict):
            raise InputError("mistake_credit", "must be a table of mistake id = fraction")
        for mistake_id, fraction in credit.items():
            if mistake_id not in mistakes.MISTAKE_IDS:
                raise InputError(f"mistake_credit.{clip(mistake_id)}", "is not a known mistake; known: " + ", ".join(mistakes.MISTAKE_IDS))
            _fraction(fraction, f"mistake_credit.{mistake_id}")
        return cls(
            answers=answers,
            derivations=derivations,
            follow_through=follow_through,
            mistake_credit={k: float(v) for k, v in credit.items()},
        )


def _part_order(part: str) -> tuple[int, str]:
    return (int(part), part) if part.isdigit() else (1 << 30, part)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(where, "must be a finite number")
    try:
        number = float(value)
    except OverflowError:  # an integer of 310 digits or more, which no float holds
        raise InputError(where, "the number is too large to be finite") from None
    if not math.isfinite(number):
        raise InputError(where, "must be a finite number")
    return number


def _fraction(value: Any, where: str) -> float:
    number = _number(value, where)
    if not 0.0 <= number <= 1.0:
        raise InputError(where, f"must be a fraction between 0 and 1; got {number:g}")
    return number


def _parts(obj: Any, section: str, allowed: tuple[str, ...]) -> dict[str, dict[str, float]]:
    if not isinstance(obj, dict):
        raise InputError(section, "must be a table of parts, e.g. [" + section + ".2]")
    parts: dict[str, dict[str, float]] = {}
    for part, points in obj.items():
        where = f"{section}.{clip(part)}"
        # ASCII digits only: str.isdigit takes a superscript 2 too, which int() refuses.
        if not (part.isascii() and part.isdigit()):
            raise InputError(where, "a part is named by its number, e.g. 2")
        if not isinstance(points, dict) or not points:
            raise InputError(where, "must be a table of key = points")
        for key, value in points.items():
            if key not in allowed:
                raise InputError(f"{where}.{clip(key)}", "is not gradable here; expected one of " + ", ".join(allowed))
            number = _number(value, f"{where}.{key}")
            if number < 0:
                raise InputError(f"{where}.{key}", "must not be negative")
            if number > MAX_POINTS:
                raise InputError(f"{where}.{key}", f"is over the limit of {MAX_POINTS:,} points")
        parts[part] = {key: float(value) for key, value in points.items()}
    return dict(sorted(parts.items(), key=lambda item: _part_order(item[0])))


def load_rubric(path: str | Path | None = None) -> Rubric:
    """The rubric in ``path`` (TOML, or JSON by extension), or the default rubric."""
    path = DEFAULT_RUBRIC_PATH if path is None else Path(path)
    text = read_text(path)
    if not text.strip():  # an empty file (or a FIFO with nothing written) is no rubric at all
        raise InputError(None, "the rubric is empty; it needs the answers tables, e.g. [answers.2]")
    if path.suffix.lower() == ".json":
        obj = loads_strict(text)
    else:
        try:
            obj = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(None, f"not valid TOML: {exc}") from None
    return Rubric.from_json(obj)


DEFAULT_RUBRIC = load_rubric()
