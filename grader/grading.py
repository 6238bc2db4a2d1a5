"""Is it right? Grading well-formed submissions entry by entry, batched for a whole class.

Every entry of every answer gets one status:

    right           within tolerance of the key; or within tolerance of the value recomputed
                    from the student's own earlier answers when those were right themselves
                    (a student who rounds every step and carries the rounded values forward)
    follow-through  wrong against the key, but right when recomputed from the student's own
                    earlier answers, some of which were wrong (an error carried forward)
    mistake:<id>    wrong, and equal to what a catalogued mistake (grader/mistakes.py) gives on
                    the key's chain or on the student's own chain, in a student whose answer
                    matches that mistake at most of the entries it visibly changes
    cancelled:<id>  right against the key, full credit, but only because this mistake undid an
                    earlier one: w + eta dL/dw on a dL/dw whose sign o* - o flipped. The
                    mistake is named, as it was made
    wrong           none of the above
    missing         not given (null or absent)

in that order of precedence. A gradient given in the shape of its transpose is read transposed
back; its entries that would have earned credit are the transposed-gradient mistake instead.

The chain a quantity is recomputed from: h from u; z from h; o from z; loss from o; grad_w
from o and h; grad_v from o, u and the given w; w_new from grad_w; v_new from grad_v. The given
data (x, v, w, target, lr) always come from the student's own variant, never from the file.

Students are grouped by activation and network size; each group is graded with one
``core.solve`` call and whole-array NumPy for every entry of every student at once.
"""

from __future__ import annotations

import functools
import itertools
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence, Union

import numpy as np

from grader import core, derivations, mistakes
from grader.parallel import chunked_map, start_forked, workers_for
from grader.filenames import all_safe_stems, assign_stems, distinct_stems, is_safe_stem, safe_stem
from grader.quoting import shown_path
from grader.jsonio import InputError, NonFiniteError
from grader.manifest import MAX_MANIFEST_BYTES, Manifest, StudentRecord
from grader.params import HW2, MAX_MAGNITUDE, PARAM_KEYS, Params, batch_groups, stack
from grader.rubric import DEFAULT_RUBRIC, Rubric
from grader.jsonio import read_bytes
from grader.submission import DERIVATION_KEYS, InvalidSubmission, Layout, Submission, layout_for, layout_of, missing_answers, parse_json, read_submission, submissions_from_bytes
from grader.tolerance import Tolerance

GRADED, INVALID, MISSING = "graded", "invalid", "missing"  # a student's status

# An entry's status is stored as a small integer code; mistakes follow the fixed codes.
MISSING_CODE, WRONG_CODE, RIGHT_CODE, FOLLOW_CODE = 0, 1, 2, 3
MISTAKE_BASE = 4
CANCELLED_BASE = MISTAKE_BASE + len(mistakes.MISTAKE_IDS)
STATUS_NAMES = (
    "missing",
    "wrong",
    "right",
    "follow-through",
    *(f"mistake:{m}" for m in mistakes.MISTAKE_IDS),
    # One for every mistake, though only gradient-ascent cancels another today (o* - o): a
    # catalogue entry added later may too, and the codes stay in step with the ids.
    *(f"cancelled:{m}" for m in mistakes.MISTAKE_IDS),
)
TRANSPOSED_CODE = MISTAKE_BASE + mistakes.MISTAKE_IDS.index("transposed-gradient")


def mistake_of(code: int) -> str | None:
    """The mistake id a status code names (mistake:<id> or cancelled:<id>), else None."""
    return (STATUS_NAMES[code].partition(":")[2] or None) if code >= MISTAKE_BASE else None


@dataclass(frozen=True)
class EntryResult:
    """One entry of one answer, as the feedback shows it."""

    name: str  # as the problem writes it: u_1, L, dL/dw_12
    status: str  # one of STATUS_NAMES
    answer: float | None  # the student's value; None when missing
    expected: float  # the key's value
    credit: float  # points earned for this entry
    mistake: str | None = None  # the mistake id when the status is mistake:<id> or cancelled:<id>


@dataclass(frozen=True, eq=False)
class QuantityResult:
    """One answer of one student: every entry's status and the points it earned."""

    key: str  # an answer key of core.ANSWER_KEYS
    part: str  # the rubric part grading it
    points: float  # what the whole answer is worth
    codes: np.ndarray  # (entries,) int8 status codes, flat (row-major) in the expected shape
    answer: np.ndarray  # (entries,) the student's values, NaN where missing
    expected: np.ndarray  # (entries,) the key's values
    credit: np.ndarray  # (entries,) points earned by each entry
    names: tuple[str, ...]  # each entry's name as the problem writes it
    transposed: bool = False  # the student wrote it in the shape of its transpose

    @property
    def score(self) -> float:
        return float(self.credit.sum())

    @property
    def statuses(self) -> list[str]:
        return [STATUS_NAMES[c] for c in self.codes.tolist()]

    def entries(self) -> list[EntryResult]:
        """Every entry with its name, status, values and credit."""
        return [
            EntryResult(name, STATUS_NAMES[code], None if answer != answer else answer, expected, credit, mistake_of(code))  # NaN -> None
            for name, code, answer, expected, credit in zip(
                self.names, self.codes.tolist(), self.answer.tolist(), self.expected.tolist(), self.credit.tolist()
            )
        ]


class PartScore(NamedTuple):
    """A part's score; ``score`` and ``max_score`` are None when the part is not graded.
    (A named tuple: reports share a few score patterns, which are looked up by it.)"""

    part: str  # "1" .. "5"
    score: float | None
    max_score: float | None

    @property
    def graded(self) -> bool:
        return self.score is not None


@dataclass(frozen=True, eq=False)
class GradeReport:
    """Everything about one student (or one file no student could be matched to).

    A graded report keeps its entries as rows of the batch's arrays (``codes``, ``answers``,
    ``expected``, ``credit``, flat in ``layout`` order); ``quantities`` views them per answer.
    """

    student_id: str | None  # None for a file that says no usable id
    status: str  # "graded", "invalid" or "missing"
    score: float  # sum of the graded parts (0 when invalid or missing)
    max_score: float  # sum of the graded parts' maxima
    parts: tuple[PartScore, ...]  # every rubric part, in order; ungraded ones with None scores
    misconceptions: tuple[str, ...] = ()  # mistake ids named, in catalogue order
    follow_through: tuple[str, ...] = ()  # answer keys with an entry earning follow-through
    errors: tuple[str, ...] = ()  # why the file is invalid, one line each; graded: the answers not given
    warnings: tuple[str, ...] = ()  # unknown keys, numeric id, a second file, ...
    source: str | None = None  # the file graded
    other_sources: tuple[str, ...] = ()  # older files for the same student, not graded
    layout: Layout | None = None  # where each answer's entries are in the rows below
    codes: np.ndarray | None = None  # (entries,) int8 status codes (see STATUS_NAMES)
    answers: np.ndarray | None = None  # (entries,) the student's values, NaN where missing
    expected: np.ndarray | None = None  # (entries,) the key's values
    credit: np.ndarray | None = None  # (entries,) points earned by each entry
    transposed: frozenset[str] = frozenset()  # answers written in the shape of their transpose
    part_of: Mapping[str, str] = field(default_factory=dict)  # answer key -> rubric part
    points: Mapping[str, float] = field(default_factory=dict)  # answer key -> its points
    derivations: Mapping[str, Any] = field(default_factory=dict)  # key -> derivations.DerivationResult
    roster: Mapping[str, str] = field(default_factory=dict)  # kept roster columns (manifest)
    file_stem: str | None = None  # for feedback/<stem>.md; None: no feedback file

    @property
    def quantities(self) -> tuple[QuantityResult, ...]:
        """Per answer, in ANSWER_KEYS order; empty unless graded."""
        if self.codes is None or self.layout is None:
            return ()
        return tuple(self.quantity(key) for key in core.ANSWER_KEYS)

    def quantity(self, key: str) -> QuantityResult:
        s = self.layout.slices[key]
        return QuantityResult(
            key, self.part_of[key], self.points[key], self.codes[s], self.answers[s], self.expected[s], self.credit[s],
            self.layout.entry_names(key), key in self.transposed,
        )

    def statuses(self, key: str) -> list[str]:
        """The statuses of answer ``key``'s entries, flat in row-major order."""
        return [STATUS_NAMES[c] for c in self.codes[self.layout.slices[key]].tolist()]


@dataclass(frozen=True)
class Gradebook:
    """The outcome of grading a class: one report per roster student and per unmatched file."""

    reports: tuple[GradeReport, ...]  # roster students by id, then unmatched files by path
    tolerance: Tolerance
    rubric: Rubric
    follow_through: bool
    manifest_used: bool  # False: everyone graded against the HW#2 instance
    skipped: tuple[str, ...] = ()  # files that are not *.json, listed and left alone

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.reports)


# --- The batched engine -----------------------------------------------------------------------------


def _close(tol: Tolerance, answer: np.ndarray, expected: np.ndarray, units: np.ndarray | None = None) -> np.ndarray:
    """Tolerance.close, except that a non-finite expected value (the log of a student's 0) is
    never matched: |a - inf| <= atol + rtol * inf would otherwise hold."""
    with np.errstate(invalid="ignore", over="ignore"):
        return tol.close(answer, expected, units) & np.isfinite(expected)


def _units(terms: np.ndarray) -> np.ndarray:
    """Each term's leading unit, 10^floor(log10|t|) (0 for 0): what rounding it to a number of
    significant figures is measured in (see Tolerance.allowance)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 ** np.floor(np.log10(np.abs(terms)))


def _recomputed(
    stu: dict[str, np.ndarray], given: dict[str, np.ndarray], activation: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Each quantity recomputed from the student's own earlier answers (NaN where one is
    missing), and for each sum the leading units of the terms it was summed from (see
    Tolerance.allowance): a student who rounds every product by hand is consistent with their
    own answers within the rounding of the terms, though the sum may cancel to far less
    (z = 2.04 - 1.62 - ... = 0.12).

    Also dL/dv recomputed with f'(u) written with their h (ELU: h + 1 for u < 0), with its
    term sizes: as right a route as e^u, but a rounded h carries its rounding into f', which
    for a very negative u (h = -0.976 for u = -3.75: 0.024 against e^u = 0.0235) is more than
    the tolerance of the key allows.
    """
    act = core.ACTIVATIONS[activation]
    x, v, w, target, lr = (given[k] for k in ("x", "v", "w", "target", "lr"))
    target_class = np.argmax(target, axis=1)[:, None]
    dz = stu["o"] - target  # (N, K)
    with np.errstate(all="ignore"):
        df = act.df(stu["u"])  # (N, J)
        values = {
            "h": act.f(stu["u"]),
            "z": np.einsum("nkj,nj->nk", w, stu["h"]),
            "o": core.softmax(stu["z"]),
            # Only o at the target class enters the loss, so a blank elsewhere does not matter.
            "loss": -np.log(np.take_along_axis(stu["o"], target_class, axis=1)[:, 0]),
            "grad_w": dz[:, :, None] * stu["h"][:, None, :],
            "grad_v": (np.einsum("nk,nkj->nj", dz, w) * df)[:, :, None] * x[:, None, :],
            "w_new": w - lr[:, None, None] * stu["grad_w"],
            "v_new": v - lr[:, None, None] * stu["grad_v"],
        }
        # dL/dh_j = sum_k dz_k w_kj is rounded term by term, then scaled by f'(u_j) x_i.
        dh_units = _units(dz[:, :, None] * w).sum(axis=1)  # (N, J)  sum_k unit(dz_k w_kj)
        units = {
            "z": _units(w * stu["h"][:, None, :]).sum(axis=2),  # (N, K)  sum_j unit(w_kj h_j)
            "grad_v": (dh_units * np.abs(df))[:, :, None] * np.abs(x)[:, None, :],  # (N, J, I)
            "w_new": _units(w) + _units(lr[:, None, None] * stu["grad_w"]),  # (N, K, J)
            "v_new": _units(v) + _units(lr[:, None, None] * stu["grad_v"]),  # (N, J, I)
        }
        via_h = {}
        if act.df_from_h is not None:
            df_h = act.df_from_h(stu["u"], stu["h"])  # (N, J)  f'(u_j) from their h_j
            dh = np.einsum("nk,nkj->nj", dz, w)  # (N, J)  dL/dh_j from their o
            via_h["grad_v"] = (
                (dh * df_h)[:, :, None] * x[:, None, :],  # (N, J, I)
                (dh_units * np.abs(df_h))[:, :, None] * np.abs(x)[:, None, :],
            )
    return values, units, via_h


def _inputs_right(key: str, right: dict[str, np.ndarray], target: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Per entry of ``key`` (batched ``shape``): were the answers it is recomputed from all right?"""
    if key == "h":
        return right["u"]
    if key == "z":
        return np.broadcast_to(right["h"].all(axis=1)[:, None], shape)
    if key == "o":
        return np.broadcast_to(right["z"].all(axis=1)[:, None], shape)
    if key == "loss":
        return (right["o"] & (target > 0)).any(axis=1)
    if key == "grad_w":
        return right["o"][:, :, None] & right["h"][:, None, :]
    if key == "grad_v":
        return right["o"].all(axis=1)[:, None, None] & right["u"][:, :, None]
    if key == "w_new":
        return right["grad_w"]
    if key == "v_new":
        return right["grad_v"]
    raise KeyError(key)


def _made(tol: Tolerance, answer: np.ndarray, wrong_value: np.ndarray, correct: np.ndarray, given: np.ndarray, per_unit: bool = False) -> np.ndarray:
    """Entries that show a mistake made: wrong entries matching its value, in the students whose
    answer matches it at half or more of the given entries it visibly changes, and at more of
    them than are right.

    Asking for most of the pattern, not a single entry, is what tells mistakes apart where one
    entry coincides: with e^u = 0.5, ELU' taken as e^u - 1 flips the sign of that row of dL/dv
    exactly as o* - o does, but o* - o flips the other rows too. Asking for half, not all of
    it, still names a mistake made alongside a slip in one of its entries (sigmoid outputs with
    a slip in o_2); asking for more matches than right entries keeps a slip that lands on one
    of them from naming it (o_1 slipped onto sigmoid(z_1), o_2 the softmax's, right).

    ``per_unit`` (a mistake made unit by unit, see mistakes.Mistake): one hidden unit's whole row
    matching is enough too (see _whole_row_made).
    """
    n = answer.shape[0]
    changed = given & np.isfinite(wrong_value) & np.isfinite(correct) & ~_close(tol, wrong_value, correct)
    right = _close(tol, answer, correct)
    near_wrong = _close(tol, answer, wrong_value)
    matches = changed & near_wrong & ~right
    # An entry the mistake moves by little more than the tolerance can be within it of both
    # values once rounded (sigmoid(z_1) = 0.1801 against the softmax's 0.1769, written 0.179):
    # it tells nothing either way, and is counted neither for the mistake nor against it.
    telling = changed & ~(right & near_wrong)
    n_changed = telling.reshape(n, -1).sum(axis=1)
    n_matched = matches.reshape(n, -1).sum(axis=1)
    n_against = (telling & right).reshape(n, -1).sum(axis=1)  # entries the mistake would change, left right
    coherent = (n_matched >= 1) & (2 * n_matched >= n_changed) & (n_matched > n_against)
    if per_unit:
        coherent |= _whole_row_made(telling, matches)
    return matches & coherent.reshape((n,) + (1,) * (answer.ndim - 1))


def _whole_row_made(changed: np.ndarray, matches: np.ndarray) -> np.ndarray:
    """(N,): does some row of dL/dv (a hidden unit) match the mistake in every entry it
    changes, two or more? ELU' taken as 1 for u_1 but rightly as e^u for u_3 is the mistake
    made for one unit, named though as many entries are right as match: a slip that scales a
    whole row onto the mistake's values, in every entry, is no slip."""
    n_changed = changed.sum(axis=2)  # (N, rows)
    return ((n_changed >= 2) & (matches.sum(axis=2) == n_changed)).any(axis=1)


def entry_codes(
    stu: dict[str, np.ndarray],
    given: dict[str, np.ndarray],
    activation: str,
    tolerance: Tolerance,
    follow_through: bool = True,
    transposed: Mapping[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], core.Solution]:
    """Status codes of every entry, batched: ``stu`` maps answer keys to (N, *shape) arrays with
    NaN where missing; ``given`` is the batched given data (params.stack). Returns the codes per
    key, (N, *shape) int8, and the key's solution."""
    key_sol = core.solve(**given, activation=activation)
    n = len(key_sol)
    ft_values, ft_units, ft_via_h = _recomputed(stu, given, activation)
    search = _MistakeSearch(mistakes.chain_from(given, key_sol, activation), mistakes.chain_from(given, stu, activation), activation, tolerance)
    right: dict[str, np.ndarray] = {}
    codes: dict[str, np.ndarray] = {}
    for key in core.ANSWER_KEYS:
        answer = stu[key]
        expected = getattr(key_sol, key)
        is_right = _close(tolerance, answer, expected)
        ft_value = ft_values.get(key)
        is_follow = np.zeros_like(is_right)
        consistent = np.zeros_like(is_right)
        cancels = np.zeros_like(is_right)
        if ft_value is not None:
            consistent = _close(tolerance, answer, ft_value, ft_units.get(key))
            inputs_right = _inputs_right(key, right, given["target"], answer.shape)
            if key in _STEPPED:  # an update right against the key, though not from the student's gradient
                cancels = is_right & ~consistent & _sign_flipped(tolerance, stu[_STEPPED[key]], getattr(key_sol, _STEPPED[key]))
            is_right |= consistent & inputs_right
            if key in ft_via_h:  # f'(u) written with h, where h is right or a slip (not a named mistake)
                h_usable = (codes["h"] < MISTAKE_BASE)[:, :, None]
                via_h = _close(tolerance, answer, *ft_via_h[key]) & h_usable
                is_right |= via_h & inputs_right & right["h"][:, :, None]
                consistent |= via_h
            if follow_through:
                is_follow = consistent & ~is_right
        code = np.full(answer.shape, WRONG_CODE, dtype=np.int8)
        code[is_follow] = FOLLOW_CODE
        code[is_right] = RIGHT_CODE
        # Open to a named mistake: wrong entries, unless they follow from the student's own earlier
        # answers (the mistake is there, not here: so with --no-follow-through too).
        search.name(code, (code == WRONG_CODE) & ~consistent, key, answer, expected, ft_value, cancels)
        right[key] = is_right
        if transposed is not None and key in transposed:
            # Values right, layout wrong: the entries that would have earned credit are the mistake.
            flip = transposed[key].reshape((n,) + (1,) * (answer.ndim - 1)) & ((code == RIGHT_CODE) | (code == FOLLOW_CODE))
            code[flip] = TRANSPOSED_CODE
        code[np.isnan(answer)] = MISSING_CODE
        codes[key] = code
    return codes, key_sol


_STEPPED = {"w_new": "grad_w", "v_new": "grad_v"}  # an update -> the gradient it steps along


def _sign_flipped(tol: Tolerance, gradient: np.ndarray, key_gradient: np.ndarray) -> np.ndarray:
    """(N, 1, 1): is the student's gradient, wherever given, the key's with its sign flipped
    (o* - o for o - o*), and not zero? Then w + eta dL/dw, gradient ascent on it, gives the
    key's w_new: a right-looking update made of two mistakes. Only the whole gradient flipped
    says so; a row flipped by a slip, followed by the key's update, is an update that is right."""
    n = gradient.shape[0]
    blank = np.isnan(gradient)
    flipped = (_close(tol, gradient, -key_gradient) | blank).reshape(n, -1).all(axis=1)
    unchanged = (_close(tol, gradient, key_gradient) | blank).reshape(n, -1).all(axis=1)
    return (flipped & ~unchanged)[:, None, None]  # (a gradient left blank is unchanged)


class _MistakeSearch(NamedTuple):
    """Where entry_codes looks for catalogued mistakes: each computed on the key's chain of
    earlier values and on the student's own."""

    key_chain: mistakes.Chain
    student_chain: mistakes.Chain
    activation: str
    tolerance: Tolerance

    def name(
        self,
        code: np.ndarray,
        open_: np.ndarray,
        key: str,
        answer: np.ndarray,
        expected: np.ndarray,
        ft_value: np.ndarray | None,
        cancels: np.ndarray | None = None,
    ) -> None:
        """Mark in ``code`` the ``open_`` entries of answer ``key`` that show a catalogued mistake
        (or two made together, mistakes.COMBINED). ``ft_value`` is the answer recomputed from the
        student's own earlier answers, what the mistake on their chain is told apart from.
        ``cancels``: entries right against the key only because a mistake undid an earlier one
        (see _sign_flipped); a mistake found there is marked cancelled:<id>, which keeps the credit.

        Per student, the mistakes are tried in the order of how many of the open entries each
        explains (the catalogue's order on a tie), so that the one explaining the whole answer
        is named: o* - o with ELU' taken as 1 gives, for a very negative u, the row that ELU'
        taken as e^u - 1 alone gives, but the other rows only the pair explains.
        """
        candidates = mistakes.applicable(key, self.activation) + mistakes.combined(key, self.activation)
        cancels = cancels if cancels is not None and cancels.any() else None
        if not candidates or not (open_.any() or cancels is not None):
            return
        n = code.shape[0]
        searched = open_.reshape(n, -1).any(axis=1)  # (N,)
        if cancels is not None:
            searched |= cancels.reshape(n, -1).any(axis=1)
        if not searched.all():
            # Everything here is student by student, and most students leave nothing open:
            # the search runs on the others' rows alone (a fifth of the work, in a class).
            rows = np.flatnonzero(searched)
            part = code[rows]
            self._of_rows(rows).name(
                part, open_[rows], key, answer[rows], expected[rows], None if ft_value is None else ft_value[rows], None if cancels is None else cancels[rows]
            )
            code[rows] = part
            return
        found, labels = zip(*(self._found(mistake, key, answer, expected, ft_value) for mistake in candidates))
        found_all, labels_all = np.stack(found), np.stack(labels)  # (M, N, *shape)
        _mark_found(code, open_, found_all, labels_all)
        if cancels is not None:
            named = code.copy()
            _mark_found(named, cancels, found_all, labels_all)
            cancelled = cancels & (named >= MISTAKE_BASE)
            code[cancelled] = named[cancelled] - MISTAKE_BASE + CANCELLED_BASE

    def _of_rows(self, rows: np.ndarray) -> "_MistakeSearch":
        """The search on the students at ``rows`` alone."""
        return self._replace(key_chain=mistakes.chain_rows(self.key_chain, rows), student_chain=mistakes.chain_rows(self.student_chain, rows))

    def _found(self, mistake: mistakes.Mistake, key: str, answer: np.ndarray, expected: np.ndarray, ft_value: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Where ``mistake`` shows (see _made) on either chain, and the code of each entry: the
        mistake's, or for a pair, the other mistake's where that one alone explains the entry."""
        given_entries = ~np.isnan(answer)
        made = np.zeros(answer.shape, dtype=bool)
        as_other = np.zeros(answer.shape, dtype=bool)
        for chain, correct in ((self.key_chain, expected), (self.student_chain, ft_value)):
            if correct is None:
                continue
            wrong_value = mistakes.spoiled(chain, mistake)
            if wrong_value.shape != answer.shape:
                continue  # a transposed non-square matrix: told apart by its shape (entry_codes)
            here = _made(self.tolerance, answer, wrong_value, correct, given_entries, mistake.per_unit)
            if mistake.also is not None:
                as_other |= here & _close(self.tolerance, wrong_value, mistakes.spoiled(chain, mistakes.alone(mistake.also, key)))
            made |= here
        label = np.full(answer.shape, MISTAKE_BASE + mistakes.MISTAKE_IDS.index(mistake.id), dtype=np.int8)
        if mistake.also is not None:
            label[as_other] = MISTAKE_BASE + mistakes.MISTAKE_IDS.index(mistake.also)
        return made, label


def _mark_found(code: np.ndarray, open_: np.ndarray, found: np.ndarray, labels: np.ndarray) -> None:
    """Mark the ``open_`` entries in ``code`` with the ``labels`` of the candidate mistakes
    ``found`` there, (M, N, *shape) each: per student, the candidate explaining most of the
    open entries first, then the catalogue's order."""
    n = code.shape[0]
    explained = (found & open_).reshape(len(found), n, -1).sum(axis=2)  # (M, N)
    order = np.argsort(-explained, axis=0, kind="stable")  # (M, N)
    students = np.arange(n)
    open_ = open_.copy()
    for rank in range(len(found)):
        pick = order[rank]  # (N,) each student's candidate of this rank
        hit = open_ & found[pick, students]
        code[hit] = labels[pick, students][hit]
        open_ &= ~hit


def credit_table(rubric: Rubric, follow_through: bool = True) -> np.ndarray:
    """The fraction of an entry's points earned, indexed by status code."""
    table = np.zeros(len(STATUS_NAMES))
    table[RIGHT_CODE] = 1.0
    table[CANCELLED_BASE:] = 1.0  # right against the key: the mistakes cancelling are named, not charged
    table[FOLLOW_CODE] = rubric.follow_through if follow_through else 0.0
    for n, mistake_id in enumerate(mistakes.MISTAKE_IDS):
        table[MISTAKE_BASE + n] = rubric.credit_for(mistake_id)
    return table


class _Student(NamedTuple):  # a named tuple: tens of thousands are made per class
    """A student to grade: their submission and the instance they were given."""

    submission: Submission
    params: Params  # (an int from assign with ManifestParts: a row of its columns, see _roster)
    extra: dict  # further GradeReport fields (roster, stem, other sources, warnings)


DERIVATION_CACHE = 4096  # distinct (key, text) pairs remembered per process


@functools.lru_cache(maxsize=DERIVATION_CACHE)
def _grade_text(key: str, text: str | None) -> Any:
    return derivations.grade_derivation(key, text)


def _grade_derivations(block: Any) -> dict[str, Any]:
    """grader.derivations.grade_derivations, remembering the texts already graded.

    Grading one expression costs milliseconds and a class writes few distinct ones, so each
    (key, text) is graded once per process. That relies on a derivation's grade depending on
    its own text only, which is how grader.derivations grades (grade_derivation(key, value)).
    """
    if not isinstance(block, dict):
        return derivations.grade_derivations(block)
    if all(type(value) is str or value is None for value in block.values()):
        # Many students write the same derivations (a third of a class, in a few dozen forms):
        # their whole block is looked up once, not each of its texts. (Texts only: as keys,
        # 1, 1.0 and True are one.)
        return _graded_block(tuple(block.items()))
    return _graded_texts(block)


@functools.lru_cache(maxsize=DERIVATION_CACHE)
def _graded_block(items: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """_graded_texts of the block with these items. (The dict is shared: copy it to change it.)"""
    return _graded_texts(dict(items))


def _graded_texts(block: dict) -> dict[str, Any]:
    keys = (*derivations.REQUIRED_KEYS, *((derivations.LOSS_KEY,) if derivations.LOSS_KEY in block else ()))
    out = {}
    for key in keys:
        value = block.get(key)
        if isinstance(value, (str, type(None))):
            out[key] = _grade_text(key, value)
        else:  # a list or a number: not hashable as is, and refused at once
            out[key] = derivations.grade_derivation(key, value)
    return out


def task_warnings(student: "_Student") -> tuple[str, ...]:
    """A student's warnings before grading adds any: their file's, then their task's (a second
    file, say)."""
    noted = student.extra.get("warnings")
    return (*student.submission.warnings, *noted) if noted else student.submission.warnings


def has_derivations(block: Any) -> bool:
    """Did the student write any derivation? A block of nulls or blank strings (as in the blank
    answer file), or of unknown keys only, is none: parts 1 and 3 are then left ungraded and out
    of the maximum, so a class that answers them on paper is not marked 0 on them. One written
    derivation makes both parts count."""
    return isinstance(block, dict) and any(key in DERIVATION_KEYS and derivations.is_given(value) for key, value in block.items())


# Scores are kept and shown to this many decimals: enough for every share the default rubric
# makes exact (7.5 points over 8 entries, at half credit, is 0.46875 an entry), so a record's
# parts add up to its total as printed; float noise (14.999999999999998) is rounded away.
SCORE_DECIMALS = 6


def _round(x: float) -> float:
    return round(float(x), SCORE_DECIMALS) + 0.0


def grade_students(
    students: Sequence[_Student],
    tolerance: Tolerance,
    rubric: Rubric = DEFAULT_RUBRIC,
    follow_through: bool = True,
) -> list[GradeReport]:
    """Grade well-formed submissions, one group of equal activation and size at a time."""
    reports: list[GradeReport | None] = [None] * len(students)
    for members, group in grade_groups(students, tolerance, rubric, follow_through):
        for row, slot in enumerate(members):
            reports[slot] = group.report(row)
    return reports  # type: ignore[return-value]


def grade_groups(
    students: Sequence[_Student], tolerance: Tolerance, rubric: Rubric = DEFAULT_RUBRIC, follow_through: bool = True
) -> list[tuple[list[int], GroupGrades]]:
    """The students graded in groups of equal activation and size: each group's indices into
    ``students`` and its grades, one row per student."""
    groups = batch_groups([s.params for s in students])
    credit = credit_table(rubric, follow_through)
    grade_derivations = _grade_derivations if rubric.derivations else None
    return [
        (members, _grade_group([students[n] for n in members], activation, tolerance, rubric, follow_through, credit, grade_derivations))
        for (activation, sizes), members in groups.items()
    ]


@dataclass(frozen=True, eq=False)
class GroupGrades:
    """A group of students (one activation, one network size) graded as one batch: a row each.

    The arrays say everything the entries earned; ``report(row)`` builds one student's
    GradeReport from them. Students whose rows have equal ``codes``, ``transposed`` and
    ``derivations`` have equal reports except for who they are, what they wrote and their
    warnings (grader.reports builds a report's texts once per such pattern).
    """

    students: list[_Student]
    layout: Layout
    codes: np.ndarray  # (N, entries) int8 status codes (see STATUS_NAMES)
    answers: np.ndarray  # (N, entries) the students' values, NaN where missing
    expected: np.ndarray  # (N, entries) the key's values
    credit: np.ndarray  # (N, entries) points earned by each entry
    answer_scores: list[tuple[float, ...]]  # per row, each answer part's score, in rubric.answers order
    mistake_hits: list[list[bool]]  # per row, per mistakes.MISTAKE_IDS: named in the answers?
    follow_hits: list[list[bool]]  # per row, per core.ANSWER_KEYS: an entry earned follow-through?
    derivations: list[dict[str, Any]]  # per row, key -> DerivationResult; empty when none written
    warnings: list[tuple[str, ...]]  # per row, every warning about the student's file
    rubric: Rubric
    part_of: Mapping[str, str]  # answer key -> rubric part
    points: Mapping[str, float]  # answer key -> its points
    _patterns: dict = field(default_factory=dict)  # answer scores -> (parts, score, max_score)

    def taken(self, rows: Sequence[int]) -> "GroupGrades":
        """The grades of ``rows`` alone, as a group of their own that pickles small: the
        students keep what their texts need (not their params, which are rows of the whole
        class's columns)."""
        at = np.asarray(rows, dtype=np.intp)
        return GroupGrades(
            students=[self.students[r]._replace(params=None) for r in rows],
            layout=self.layout,
            codes=self.codes[at],
            answers=self.answers[at],
            expected=self.expected[at],
            credit=self.credit[at],
            answer_scores=[self.answer_scores[r] for r in rows],
            mistake_hits=[self.mistake_hits[r] for r in rows],
            follow_hits=[self.follow_hits[r] for r in rows],
            derivations=[self.derivations[r] for r in rows],
            warnings=[self.warnings[r] for r in rows],
            rubric=self.rubric,
            part_of=self.part_of,
            points=self.points,
        )

    def answer_row(self, row: int) -> list[float]:
        """A row's answers as Python floats (NaN where missing, a -0.0 as 0.0), converted when
        asked for: a whole group at once would be tens of MB, made long before use."""
        return (self.answers[row] + 0.0).tolist()

    def report(self, row: int) -> GradeReport:
        student = self.students[row]
        sub = student.submission
        rubric = self.rubric
        hits = self.mistake_hits[row]
        misconceptions = [mid for mid, hit in zip(mistakes.MISTAKE_IDS, hits) if hit] if any(hits) else []
        derivation_results = self.derivations[row]
        if derivation_results:
            part_max = {part: sum(p.values()) for part, p in rubric.answers.items()}
            parts = {part: PartScore(part, score, part_max[part]) for part, score in zip(rubric.answers, self.answer_scores[row])}
            for part, part_points in rubric.derivations.items():
                got = sum(p * float(getattr(derivation_results.get(k), "fraction", 0.0)) for k, p in part_points.items())
                parts[part] = PartScore(part, _round(got), sum(part_points.values()))
            ordered = tuple(parts[p] for p in rubric.parts)
            total = (_round(sum(p.score for p in ordered if p.score is not None)), _round(sum(p.max_score for p in ordered if p.max_score is not None)))
            for result in derivation_results.values():
                if result.mistake and result.mistake not in misconceptions:
                    misconceptions.append(result.mistake)
        else:
            # Most students share a few score patterns: their parts and totals are built once each.
            pattern = self._patterns.get(self.answer_scores[row])
            if pattern is None:
                part_max = {part: sum(p.values()) for part, p in rubric.answers.items()}
                parts = {part: PartScore(part, score, part_max[part]) for part, score in zip(rubric.answers, self.answer_scores[row])}
                parts.update({part: PartScore(part, None, None) for part in rubric.derivations})
                ordered = tuple(parts[p] for p in rubric.parts)
                pattern = self._patterns[self.answer_scores[row]] = (
                    ordered,
                    _round(sum(p.score for p in ordered if p.score is not None)),
                    _round(sum(p.max_score for p in ordered if p.max_score is not None)),
                )
            ordered, total = pattern[0], pattern[1:]
        follow = self.follow_hits[row]
        return GradeReport(
            student_id=sub.student_id,
            status=GRADED,
            score=total[0],
            max_score=total[1],
            parts=ordered,
            misconceptions=tuple(_catalogue_order(misconceptions)) if len(misconceptions) > 1 else tuple(misconceptions),
            follow_through=tuple(key for key, hit in zip(core.ANSWER_KEYS, follow) if hit) if any(follow) else (),
            errors=answers_not_given(self.layout, self.codes[row]),
            warnings=self.warnings[row],
            source=sub.source,
            layout=self.layout,
            codes=self.codes[row],
            answers=sub.values,
            expected=self.expected[row],
            credit=self.credit[row],
            transposed=sub.transposed,
            part_of=self.part_of,
            points=self.points,
            derivations=derivation_results,
            **{key: value for key, value in student.extra.items() if key != "warnings"},
        )


def answers_not_given(layout: Layout, codes: np.ndarray) -> tuple[str, ...]:
    """A graded file's errors: one line per answer with entries not given (left out or null),
    which score 0 while the rest is graded."""
    missing = codes == MISSING_CODE
    if not missing.any():
        return ()
    lines = []
    for key, fields in missing_answers(layout, missing):
        part = missing[layout.slices[key]]
        if part.all():
            lines.append(f"answers.{key}: not given; " + ("it scores 0" if part.size == 1 else f"its {part.size} entries score 0"))
        else:
            lines.append(f"{', '.join(fields)}: not given; " + ("it scores 0" if len(fields) == 1 else "they score 0"))
    return tuple(lines)


_OTHER_ACTIVATION = f"derivations: graded for an {derivations.ACTIVATION.upper()} hidden layer, as in HW#2; this problem's is %s, so parts 1 and 3 are left ungraded"


def _grade_group(group, activation, tolerance, rubric, follow_through, credit, grade_derivations) -> GroupGrades:
    layout = group[0].submission.layout
    n = len(group)
    given = stack([s.params for s in group])
    flat = np.stack([s.submission.values for s in group])  # (N, entries)
    stu = {key: flat[:, layout.slices[key]].reshape((n, *layout.shapes[key])) for key in core.ANSWER_KEYS}
    transposed = {key: np.array([key in s.submission.transposed for s in group]) for key in ("grad_w", "grad_v")}
    codes, key_sol = entry_codes(stu, given, activation, tolerance, follow_through, transposed)

    all_codes = np.concatenate([codes[key].reshape(n, -1) for key in core.ANSWER_KEYS], axis=1)  # (N, entries)
    expected = np.concatenate([getattr(key_sol, key).reshape(n, -1) for key in core.ANSWER_KEYS], axis=1)
    share = np.concatenate([np.full(s.stop - s.start, rubric.points(key) / (s.stop - s.start)) for key, s in layout.slices.items()])
    entry_credit = credit[all_codes] * share  # (N, entries) points earned per entry
    part_scores = {
        part: np.round(sum(entry_credit[:, layout.slices[key]].sum(axis=1) for key in keys), 6).tolist()
        for part, keys in rubric.answers.items()
    }
    mistake_hits = np.stack(
        [((all_codes == MISTAKE_BASE + m) | (all_codes == CANCELLED_BASE + m)).any(axis=1) for m in range(len(mistakes.MISTAKE_IDS))], axis=1
    )
    mistake_hits[:, TRANSPOSED_CODE - MISTAKE_BASE] |= transposed["grad_w"] | transposed["grad_v"]
    follow_hits = np.stack([(codes[key].reshape(n, -1) == FOLLOW_CODE).any(axis=1) for key in core.ANSWER_KEYS], axis=1)

    derivation_rows: list[dict[str, Any]] = []
    warning_rows: list[tuple[str, ...]] = []
    for student in group:
        sub = student.submission
        results: dict[str, Any] = {}
        warnings = task_warnings(student)
        if grade_derivations is not None and sub.derivations and has_derivations(sub.derivations):
            if activation != derivations.ACTIVATION:  # its h and dL/dv are not the references'
                warnings += (_OTHER_ACTIVATION % activation,)
            else:
                try:
                    results = dict(grade_derivations(sub.derivations))
                except Exception as exc:  # one student's odd derivations must not stop the class
                    warnings += (f"derivations: could not be graded ({type(exc).__name__}: {exc}); parts left ungraded",)
        derivation_rows.append(results)
        warning_rows.append(warnings)
    return GroupGrades(
        students=list(group),
        layout=layout,
        codes=all_codes,
        answers=flat,
        expected=expected,
        credit=entry_credit,
        answer_scores=list(zip(*(part_scores[part] for part in rubric.answers))),
        mistake_hits=mistake_hits.tolist(),
        follow_hits=follow_hits.tolist(),
        derivations=derivation_rows,
        warnings=warning_rows,
        rubric=rubric,
        part_of={key: rubric.part_of(key) for key in core.ANSWER_KEYS},
        points={key: rubric.points(key) for key in core.ANSWER_KEYS},
    )


def _catalogue_order(ids: Iterable[str]) -> list[str]:
    known = list(mistakes.MISTAKE_IDS)
    return sorted(set(ids), key=lambda i: (known.index(i) if i in known else len(known), i))


def _ungraded_parts(rubric: Rubric) -> tuple[PartScore, ...]:
    """Every part at 0 out of its maximum for answers; derivation parts ungraded."""
    answers = {part: PartScore(part, 0.0, sum(p.values())) for part, p in rubric.answers.items()}
    return tuple(answers.get(part, PartScore(part, None, None)) for part in rubric.parts)


def _empty_report(rubric: Rubric, status: str, **fields) -> GradeReport:
    parts = _ungraded_parts(rubric)
    return GradeReport(status=status, score=0.0, max_score=_round(sum(p.max_score for p in parts if p.graded)), parts=parts, **fields)


# --- Files to reports ---------------------------------------------------------------------------------


def is_grade_output(results: str | os.PathLike) -> bool:
    """Does the file ``results`` begin as hwgen grade begins a results.json?"""
    try:
        with open(results, "rb") as handle:
            head = handle.read(200)
    except OSError:
        return False
    return head.startswith(b'{\n  "hwgen_version": ') and b'"graded_against": ' in head


def collect_files(
    paths: Iterable[str | os.PathLike], exclude: Iterable[str | os.PathLike] = (), unreadable: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """The *.json files among ``paths`` (folders searched recursively, in sorted order) and the
    other files found there, which are skipped. Folders in ``exclude`` (the output folder), and
    any other output of hwgen grade found there, are not searched; a file reached twice (a
    folder and a file in it both given) counts once. A folder that cannot be listed is added
    to ``unreadable`` (if given) as "path: reason"."""

    def cannot_list(error: OSError) -> None:
        if unreadable is not None:
            unreadable.append(f"{shown_path(str(error.filename))}: {error.strerror or error}")

    excluded = {os.path.realpath(p) for p in exclude}
    found: list[str] = []
    skipped: list[str] = []
    seen: set[str] = set()

    for path in map(os.fspath, paths):
        if not os.path.isdir(path):
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                (found if path.lower().endswith(".json") else skipped).append(path)
            continue
        real_root = os.path.realpath(path)
        for root, dirs, files in os.walk(path, onerror=cannot_list):  # symlinked folders are not followed: no loops
            if "results.json" in files and is_grade_output(os.path.join(root, "results.json")):
                dirs.clear()  # an earlier run's output, kept beside the submissions: not theirs
                continue
            real = os.path.normpath(os.path.join(real_root, os.path.relpath(root, path)))
            dirs[:] = sorted(d for d in dirs if os.path.join(real, d) not in excluded)
            # A name from a folder listing has no separator and is never "." or "..": joined to
            # a normal path, it is one (no normpath for each of thousands of files). Joining
            # with "" ends a folder with its separator as os.path.join would put it, so that
            # the folder's files are each a concatenation.
            folder, real_folder = os.path.join(root, ""), os.path.join(real, "")
            for name in sorted(files):
                key = real_folder + name
                if key not in seen:
                    seen.add(key)
                    (found if name.lower().endswith(".json") else skipped).append(folder + name)
    return found, skipped


_STORED_ANSWERS = b'"answers": {'


def _without_stored_answers(data: bytes) -> bytes:
    """The manifest text with each stored answers object replaced by null (see load_class_manifest);
    the text unchanged if any of them holds a brace, which hwgen never writes there."""
    out = []
    find, skip = data.find, len(_STORED_ANSWERS)
    done = 0
    start = find(_STORED_ANSWERS)
    while start >= 0:
        end = find(b"}", start + skip)
        if end < 0 or find(b"{", start + skip, end) >= 0:
            return data
        out += (data[done:start], b'"answers": null')
        done = end + 1
        start = find(_STORED_ANSWERS, done)
    out.append(data[done:])
    return b"".join(out)


def load_class_manifest(path: str | os.PathLike) -> Manifest:
    """manifest.load_manifest, for classes of any size, and fast (see read_manifest_parts)."""
    return read_manifest_parts(path).manifest()


@dataclass(frozen=True)
class ManifestParts:
    """A manifest read and validated, in columns: cheap to hand from the process that read it to
    the one that grades (a few MB, against a tuple of StudentRecords ten times as costly to
    pickle). ``manifest()`` builds the Manifest. An unusual manifest is kept ``whole`` instead."""

    seed_fingerprint: str
    hwgen_version: str
    columns: tuple | None  # (ids, stems, rosters, activations, x, v, w, target, lr): see _columns_fast
    whole: Manifest | None = None

    def manifest(self) -> Manifest:
        if self.whole is not None:
            return self.whole
        from grader import manifest as manifest_module

        ids, stems, rosters, acts, x, v, w, t, lr = self.columns  # type: ignore[misc]
        # list(array) makes every row's view at once, a tenth of the cost of indexing row by row.
        students = tuple(
            StudentRecord(sid, stem, Params(xk, vk, wk, tk, lrk, act), roster)
            for sid, stem, roster, act, xk, vk, wk, tk, lrk in zip(ids, stems, rosters, acts, list(x), list(v), list(w), list(t), lr.tolist())
        )
        return manifest_module.manifest_of({"seed_fingerprint": self.seed_fingerprint, "hwgen_version": self.hwgen_version}, students)


def read_manifest_parts(path: str | os.PathLike) -> ManifestParts:
    """manifest.load_manifest's checks, for classes of any size, and fast.

    load_manifest validates student by student (a few seconds per ten thousand). This reads the
    file itself and validates the usual manifest (one network size, plain numbers) in whole
    arrays; anything unusual goes through the manifest module's own per-student validation, so
    the errors are its errors.
    """
    from grader import manifest as manifest_module

    data = read_bytes(path, MAX_MANIFEST_BYTES)[0]
    # The answers stored in a manifest are for people; grading recomputes them from params. They
    # are over half the file and most of its parsing time, so they are cut out before parsing
    # (an answers object holds no braces: the pattern ends at its own). If that leaves anything
    # but valid JSON, the file is parsed whole, so that any error is the file's own.
    slim = _without_stored_answers(data)
    # The instructor's own file, written by hwgen: the C parser's recursion guard is enough,
    # and walking every node for depth or repeated keys would cost a second per 10,000 students.
    try:
        obj = parse_json(slim, check_duplicates=False, check_depth=False)
    except NonFiniteError:
        raise  # it stands where it stands in the whole file too (only answers were cut): no second look
    except InputError:
        obj = parse_json(data, check_duplicates=False, check_depth=False)
    del data, slim  # 40 MB for 20,000 students, no longer needed
    if not isinstance(obj, dict) or not isinstance(obj.get("students"), list):
        raise InputError("students", "a manifest is an object with a list of students")
    fingerprint, version = str(obj.get("seed_fingerprint", "")), str(obj.get("hwgen_version", ""))
    columns = _columns_fast(obj["students"])
    if columns is not None:
        if len(set(columns[0])) < len(columns[0]):  # manifest_of words the error
            manifest_module.manifest_of(obj, tuple(StudentRecord(sid, sid, HW2) for sid in columns[0]))
        return ManifestParts(fingerprint, version, columns)
    students = tuple(manifest_module.student_from_json(s, n) for n, s in enumerate(obj["students"]))
    return ManifestParts(fingerprint, version, None, manifest_module.manifest_of(obj, students))


_PARAM_KEYS = frozenset(PARAM_KEYS)
_REQUIRED_PARAMS = frozenset(("x", "v", "w", "target", "lr"))
_NUMBER = frozenset((int, float))


def _stacked(values: list, depth: int) -> np.ndarray | None:
    """``values``, one nested list per student (``depth`` levels of lists of plain numbers, every
    student of the same shape), as one float64 array of shape (students, ...); None otherwise.

    Flattened and type-checked level by level with C-speed builtins: numpy converting the
    nested lists itself costs ten times as much, and would turn "1.5" or true into numbers.
    """
    shape = [len(values)]
    items: list = values
    for _ in range(depth):
        if set(map(type, items)) - {list} or len(set(map(len, items))) > 1:
            return None
        shape.append(len(items[0]) if items else 0)
        items = list(itertools.chain.from_iterable(items))
    if set(map(type, items)) - _NUMBER:
        return None
    try:
        with np.errstate(over="ignore"):
            return np.array(items, dtype=np.float64).reshape(shape)
    except OverflowError:  # an int beyond float
        return None


def _columns_fast(entries: list) -> tuple | None:
    """The students of a manifest of one network size and plain values, validated in whole
    arrays and columns: (ids, stems, rosters, activations, x, v, w, target, lr), the last five
    stacked with a row per student; None as soon as anything is unusual (the caller then
    validates one by one)."""
    if not entries or set(map(type, entries)) != {dict}:
        return None
    ids = [entry.get("student_id") for entry in entries]
    rosters = [entry.get("roster", {}) for entry in entries]
    params = [entry.get("params") for entry in entries]
    if set(map(type, ids)) != {str} or "" in ids or set(map(type, rosters)) != {dict} or set(map(type, params)) != {dict}:
        return None
    if set(map(type, itertools.chain.from_iterable(r.values() for r in rosters))) - {str}:
        return None
    if not all(_REQUIRED_PARAMS <= keys <= _PARAM_KEYS for keys in {frozenset(p) for p in params}):
        return None
    acts = [p.get("activation", "elu") for p in params]
    if set(map(type, acts)) != {str} or not set(acts) <= core.ACTIVATIONS.keys():
        return None
    lrs = [p["lr"] for p in params]
    if set(map(type, lrs)) - _NUMBER:
        return None
    stems = [entry.get("file_stem") for entry in entries]
    if not all_safe_stems(stems):
        stems = [stem if type(stem) is str and is_safe_stem(stem) else safe_stem(sid) for stem, sid in zip(stems, ids)]
    x, v, w, t, lr = (_stacked([p[k] for p in params], depth) for k, depth in (("x", 1), ("v", 2), ("w", 2), ("target", 1), ("lr", 0)))
    if x is None or v is None or w is None or t is None or lr is None or min(x.size, v.size, w.size, t.size) == 0:
        return None
    if x.ndim != 2 or v.ndim != 3 or w.ndim != 3 or t.ndim != 2:
        return None
    if v.shape[2] != x.shape[1] or w.shape[2] != v.shape[1] or t.shape[1] != w.shape[1]:
        return None
    if not all(np.isfinite(a).all() for a in (x, v, w, t, lr)) or not (lr > 0).all():
        return None
    # Params.checked's bound, so that a manifest it refuses is never taken here unchecked.
    if max(np.abs(a).max() for a in (x, v, w, lr)) > MAX_MAGNITUDE:
        return None
    # One-hot is about the exact values written, as in Params.checked.
    if not (np.isin(t, (0.0, 1.0)).all() and (t.sum(axis=1) == 1.0).all()):
        return None
    return ids, stems, [dict(roster) for roster in rosters], acts, x, v, w, t, lr


def _read_chunk(paths: list[str], layout: Layout) -> list[Submission | InvalidSubmission]:
    """read_submission for each path, each file opened by name in its folder, and the files
    that read checked together (submission.submissions_from_bytes). The files come sorted by
    folder (collect_files), so one folder is open at a time: a class handed in as a folder per
    student must not run out of file descriptors."""
    out: list = [None] * len(paths)
    read: list[tuple[str, bytes, int]] = []
    positions: list[int] = []
    folder, folder_fd = None, None
    try:
        for position, path in enumerate(paths):
            if os.path.dirname(path) != folder:
                if folder_fd is not None:
                    os.close(folder_fd)
                folder, folder_fd = os.path.dirname(path), None
                try:
                    folder_fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY)
                except OSError:  # said for each file, as read_submission does, by path
                    pass
            if folder_fd is None:
                out[position] = read_submission(path, layout, regular_only=True)
                continue
            try:
                data, mtime_ns = read_bytes(os.path.basename(path), dir_fd=folder_fd, regular_only=True)
            except InputError as exc:
                out[position] = InvalidSubmission([str(exc)], source=path)
                continue
            read.append((path, data, mtime_ns))
            positions.append(position)
    finally:
        if folder_fd is not None:
            os.close(folder_fd)
    for position, result in zip(positions, submissions_from_bytes(read, layout)):
        out[position] = result
    return out


def _manifest_layouts(manifest: Manifest | ManifestParts):
    return known_layouts(*_roster(manifest))


def known_layouts(students: Mapping[str, Any], layout_of_student: Callable[[str], Layout], manifest_name: str = ""):
    """A student id -> layout function for read_submission, refusing ids not in ``students``
    (the manifest ``manifest_name``, when that is worth saying). An id reaching it is one
    submission._student_id took: printable, and at most roster.MAX_ID_LENGTH long."""
    where = f" {manifest_name}" if manifest_name else ""

    def layout(student_id: str) -> Layout:
        if student_id not in students:
            raise InputError("student_id", f"{student_id!r} is not in the manifest{where}")
        return layout_of_student(student_id)

    return layout


def _roster(manifest: Manifest | ManifestParts) -> tuple[dict[str, tuple[str, dict, Params | int]], Callable[[str], Layout]]:
    """The manifest's students by id, each as (file stem, roster columns, params), and a
    function from an id in it to that student's layout. ManifestParts in columns give each
    student's row in the columns for params (pipeline.run's workers build the Params from
    it), and need no StudentRecord built, which for a large class is worth it. The last
    manifest's roster is kept: recheck and assign both ask for it."""
    if _LAST_ROSTER and _LAST_ROSTER[0] is manifest:
        return _LAST_ROSTER[1]
    roster = _roster_of(manifest)
    _LAST_ROSTER[:] = [manifest, roster]
    return roster


_LAST_ROSTER: list = []  # [a manifest, its _roster]


def _roster_of(manifest: Manifest | ManifestParts) -> tuple[dict[str, tuple[str, dict, Params | int]], Callable[[str], Layout]]:
    if isinstance(manifest, ManifestParts) and manifest.columns is not None:
        ids, stems, rosters, _, x, v, w = manifest.columns[:7]
        usual = layout_for((x.shape[1], v.shape[1], w.shape[1]))
        return {sid: (stem, roster, n) for n, (sid, stem, roster) in enumerate(zip(ids, stems, rosters))}, lambda _: usual
    if isinstance(manifest, ManifestParts):
        manifest = manifest.manifest()
    by_id = manifest.by_id()
    return {s.student_id: (s.file_stem, s.roster, s.params) for s in manifest.students}, lambda sid: layout_of(by_id[sid].params)


def read_files(files: Sequence[str], manifest: Manifest | None, progress: Callable[[int], None] | None = None) -> list[Submission | InvalidSubmission]:
    """Every file read and checked for form, in the order given (on every core for many files)."""
    return read_class(files, lambda: manifest, progress, apart=False)[1]


def read_class(
    files: Sequence[str],
    load_manifest: Callable[[], Manifest | ManifestParts | None],
    progress: Callable[[int], None] | None = None,
    apart: bool = True,
) -> tuple[Manifest | None, list[Submission | InvalidSubmission]]:
    """The manifest (``load_manifest()``, which gives a Manifest, its ManifestParts or None for
    none, and may raise) and every file read and checked for form, in the order given, the two
    at once: for a large class, and unless not ``apart``, ``load_manifest`` runs in a process
    of its own (see parallel.start_forked), and ManifestParts is the cheap thing for it to hand
    back (a manifest already loaded is not worth sending through a pipe: ``apart=False``).

    A large class's manifest takes as long to load as a core takes to read a third of the files,
    so the workers start on the files first, checking answers against HW#2's network size, which
    is every generated variant's. Once both are done, a file whose student the manifest does not
    know, or gives another size, is read again against the manifest; every result is then the
    one reading against the manifest from the start gives.
    """
    usual = layout_of(HW2)
    files = list(files)
    # With many files, the manifest is read in a process of its own, alongside the workers.
    loading = start_forked(load_manifest) if apart and workers_for(len(files)) > 1 else load_manifest
    loaded: list[Manifest | None] = []

    def take_manifest() -> None:
        result = loading()
        loaded.append(result.manifest() if isinstance(result, ManifestParts) else result)

    results: list[Submission | InvalidSubmission] = chunked_map(_read_chunk, files, (usual,), progress, meanwhile=take_manifest)
    manifest = loaded[0]
    recheck(results, manifest)
    return manifest, results


def recheck(results: list, manifest: Manifest | ManifestParts | None) -> None:
    """Read again, against ``manifest``, each file of ``results`` (read against HW#2's network
    size, see read_class) whose student the manifest does not know or gives another size."""
    if manifest is None:
        return
    usual = layout_of(HW2)
    students, layout_of_student = _roster(manifest)
    layouts = known_layouts(students, layout_of_student)
    for n, result in enumerate(results):
        sid = result.student_id
        if sid is None:
            continue  # no id: the file was refused before any layout was asked for
        if sid not in students or layout_of_student(sid) is not usual:
            results[n] = read_submission(result.source, layouts, regular_only=True)


Task = Union[GradeReport, "_Student"]  # a finished report (missing, invalid), or a student to grade


def assign(results: Sequence[Submission | InvalidSubmission], manifest: Manifest | ManifestParts | None, rubric: Rubric) -> list[Task]:
    """What each record of the class needs, in the order results.json lists them: roster
    students by id (to grade, or already invalid or missing), then files matched to no student,
    by path.

    Without a manifest the roster is the set of ids found. Two files for one student: the newer
    is graded (by modification time, then by path), and both are named in the report. (A
    result needs only the fields of its student id, modification time and source here.)
    """
    records, _ = _roster(manifest) if manifest is not None else ({}, None)
    roster_ids = records.keys() if manifest is not None else None
    by_student: dict[str, list] = {}
    unmatched: list[InvalidSubmission] = []
    for result in results:
        sid = result.student_id
        if sid is None or (roster_ids is not None and sid not in roster_ids):
            unmatched.append(result)  # type: ignore[arg-type]
        else:
            by_student.setdefault(sid, []).append(result)

    if manifest is not None:
        student_ids = sorted(records)
        stems = distinct_stems({sid: records[sid][0] for sid in student_ids})
    else:
        student_ids = sorted(by_student)
        stems = assign_stems(student_ids)

    tasks: list[Task] = []
    append = tasks.append
    no_record = (None, {}, HW2)  # a student found without a manifest: no roster, HW#2's numbers
    for sid in student_ids:  # the loop runs once per student of the class: kept lean
        record = records.get(sid, no_record)
        extra: dict[str, Any] = {"roster": dict(record[1]), "file_stem": stems[sid]}
        files_for = by_student.get(sid)
        if files_for is None:
            append(_empty_report(rubric, MISSING, student_id=sid, **extra))
            continue
        chosen = files_for[0]
        notes = []
        if len(files_for) > 1:
            files_for.sort(key=lambda r: (r.mtime_ns, r.source))
            chosen, older = files_for[-1], files_for[:-1]
            extra["other_sources"] = tuple(r.source for r in older)
            notes.append(_several_files_note(chosen, older))
        if isinstance(chosen, InvalidSubmission):
            append(
                _empty_report(
                    rubric, INVALID, student_id=sid, errors=chosen.problems, warnings=(*chosen.warnings, *notes), source=chosen.source, **extra
                )
            )
            continue
        extra["warnings"] = notes
        append(_Student(chosen, record[2], extra))

    for result in sorted(unmatched, key=lambda r: r.source):
        tasks.append(
            _empty_report(rubric, INVALID, student_id=result.student_id, errors=result.problems, warnings=result.warnings, source=result.source)
        )
    return tasks


def _several_files_note(chosen: Any, older: list) -> str:
    """What a report says of a student's files beside the one graded (the last by modification
    time, then by path: files unzipped together share their time, and then none is newer)."""
    not_graded = ", ".join(shown_path(r.source) for r in older)
    count = len(older) + 1
    if chosen.mtime_ns == older[-1].mtime_ns:
        return f"{count} files for this student with the same modification time: graded {shown_path(chosen.source)}, the last by name; not graded: {not_graded}"
    return f"{count} files for this student: graded the newer {shown_path(chosen.source)}; not graded: {not_graded}"


def complete(tasks: Sequence[Task], tolerance: Tolerance, rubric: Rubric, follow_through: bool) -> list[GradeReport]:
    """The tasks' reports, in order: the students among them graded as one batch."""
    return [item if isinstance(item, GradeReport) else item[0].report(item[1]) for item in complete_in_groups(tasks, tolerance, rubric, follow_through)]


Graded = Union[GradeReport, tuple["GroupGrades", int]]  # a finished report, or a row of a graded group


def complete_in_groups(tasks: Sequence[Task], tolerance: Tolerance, rubric: Rubric, follow_through: bool) -> list[Graded]:
    """The tasks graded, in order, the students among them as one batch: each student is left
    as (its group's grades, its row), from which its report can be built, or only its texts
    (grader.reports), which for a large class is most of the cost saved."""
    slots = [n for n, task in enumerate(tasks) if isinstance(task, _Student)]
    out: list[Graded] = list(tasks)  # type: ignore[arg-type]
    for members, group in grade_groups([tasks[n] for n in slots], tolerance, rubric, follow_through):
        for row, member in enumerate(members):
            out[slots[member]] = (group, row)
    return out


def grade_files(
    files: Sequence[str],
    manifest: Manifest | None = None,
    tolerance: Tolerance = Tolerance(),
    rubric: Rubric = DEFAULT_RUBRIC,
    follow_through: bool = True,
    skipped: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> Gradebook:
    """Read and grade every file; one report per roster student and per file matched to no one
    (see ``assign``). Without a manifest every file is graded against the HW#2 instance."""
    tasks = assign(read_files(files, manifest, progress), manifest, rubric)
    reports = complete(tasks, tolerance, rubric, follow_through)
    return Gradebook(tuple(reports), tolerance, rubric, follow_through, manifest is not None, tuple(skipped))
