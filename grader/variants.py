"""Per-student variants of HW#2: reproducible forever from a secret seed and a student id.

The random stream is HMAC-SHA256 in counter mode, keyed by the secret seed, over the student
id: it depends on nothing but those two strings, so a variant is the same on every machine,
every Python and every NumPy, forever (NumPy promises fixed streams only for a bit generator's
raw output, not for ``Generator.integers``; we map the HMAC words onto the grids ourselves).
Changing anything here that moves a variant must also bump ``STREAM_VERSION``; the golden test
in tests/test_variants.py fails loudly if a variant moves.

A student's variant is the first *attempt* (0, 1, 2, ...) whose draw is a good problem by every
rule in ``good_problems``; the attempt a student lands on depends only on their own stream.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Iterable

import numpy as np

from grader import core, mistakes
from grader.params import Params
from grader.tolerance import Tolerance

STREAM_VERSION = b"hwgen-variant-v1"
SIZES = (3, 4, 2)  # inputs, hidden units, outputs: the shape of HW#2
LEARNING_RATE = 0.1

# Hand-computable grids, like the original: x on multiples of 0.5, weights on multiples of 0.1,
# magnitudes within [-2, 2]. x is never 0 so that every weight v_ji matters to the answer.
X_GRID = np.array([k / 2 for k in range(-4, 5) if k != 0])  # -2.0 ... 2.0, no 0
WEIGHT_GRID = np.array([k / 10 for k in range(-20, 21)])  # -2.0, -1.9, ..., 2.0

# The rules of a good problem (see good_problems). GRID_SLACK absorbs float error in u = v x,
# so that a u of exactly 0.1 on paper is not rejected for being 0.09999999999999998.
MIN_ABS_U = 0.1
TARGET_PROB_RANGE = (0.1, 0.9)
MIN_OUTPUT_WEIGHT_GAP = 0.2
GRID_SLACK = 1e-9
# A mistake must move some entry by this many times the grading allowance, so that a student
# who makes it and rounds is still told apart from a student who is right.
MISTAKE_MARGIN = 3.0
GRADING_TOLERANCE = Tolerance()
# The ways students round by hand: to 3 significant figures, and to the 4 decimals keys print.
CARRIED_ROUNDINGS = (core.round_significant(3), core.round_decimals(4))

ATTEMPTS_PER_ROUND = 16  # the chosen attempt does not depend on this, only the speed
MAX_ATTEMPTS = 4096  # far beyond need (about 1 draw in 5 is good); a bound so nothing loops forever

_WORDS_PER_ATTEMPT = SIZES[0] + SIZES[1] * SIZES[0] + SIZES[2] * SIZES[1] + 1  # x, v, w, target
_WORDS_PER_DIGEST = 4  # 32 bytes of HMAC-SHA256 = four 64-bit words


def seed_fingerprint(seed: str) -> str:
    """A short public fingerprint of the secret: tells two seeds apart, reveals nothing of it."""
    return hmac.new(seed.encode(), STREAM_VERSION + b"\0fingerprint", hashlib.sha256).hexdigest()[:16]


def _words(seed: str, student_id: str, first_attempt: int, attempts: int) -> np.ndarray:
    """The raw 64-bit words of ``attempts`` consecutive attempts: (attempts, _WORDS_PER_ATTEMPT)."""
    key = seed.encode()
    prefix = STREAM_VERSION + b"\0" + student_id.encode() + b"\0"
    digests_per_attempt = -(-_WORDS_PER_ATTEMPT // _WORDS_PER_DIGEST)
    first = first_attempt * digests_per_attempt
    blob = b"".join(
        hmac.digest(key, prefix + str(counter).encode(), "sha256")
        for counter in range(first, first + attempts * digests_per_attempt)
    )
    words = np.frombuffer(blob, dtype="<u8").reshape(attempts, -1)
    return words[:, :_WORDS_PER_ATTEMPT]


def _pick(words: np.ndarray, grid: np.ndarray) -> np.ndarray:
    # A 64-bit word modulo a grid of under 50 points: the bias is below 1e-17, far below any use.
    return grid[(words % np.uint64(len(grid))).astype(np.intp)]


def _draw(words: np.ndarray) -> dict[str, np.ndarray]:
    """Candidate parameters, batched, from raw words (A, _WORDS_PER_ATTEMPT)."""
    n_in, n_hidden, n_out = SIZES
    a = words.shape[0]
    x_end = n_in
    v_end = x_end + n_hidden * n_in
    w_end = v_end + n_out * n_hidden
    target_class = (words[:, w_end] % np.uint64(n_out)).astype(np.intp)  # (A,)
    return {
        "x": _pick(words[:, :x_end], X_GRID),  # (A, I)
        "v": _pick(words[:, x_end:v_end], WEIGHT_GRID).reshape(a, n_hidden, n_in),  # (A, J, I)
        "w": _pick(words[:, v_end:w_end], WEIGHT_GRID).reshape(a, n_out, n_hidden),  # (A, K, J)
        "target": np.eye(n_out)[target_class],  # (A, K)
        "lr": np.full(a, LEARNING_RATE),  # (A,)
    }


def good_problems(params: dict[str, np.ndarray]) -> np.ndarray:
    """Which instances of a batch are good problems: a boolean (N,). Every rule is here."""
    sol = core.solve(**params, activation="elu")
    u = sol.u  # (N, J)
    # The ELU's negative branch must be exercised, and its positive branch too.
    both_signs = (u < 0).any(axis=1) & (u > 0).any(axis=1)
    # No pre-activation near the kink at 0, where a hand computation could land on either branch.
    away_from_kink = (np.abs(u) >= MIN_ABS_U - GRID_SLACK).all(axis=1)
    # The softmax is not saturated: the target-class probability is neither near 0 nor near 1.
    p_target = (sol.o * params["target"]).sum(axis=1)
    unsaturated = (p_target >= TARGET_PROB_RANGE[0]) & (p_target <= TARGET_PROB_RANGE[1])
    # For a negative u_j, dL/dv_j. is proportional to (o_1 - o*_1)(w_1j - w_2j) ELU'(u_j) x (two
    # outputs); a gap in w keeps that row visibly non-zero, so a wrong ELU' changes it visibly.
    w_gap = np.abs(params["w"][:, 0, :] - params["w"][:, 1, :])  # (N, J)
    gap_where_negative = ((u >= 0) | (w_gap >= MIN_OUTPUT_WEIGHT_GAP - GRID_SLACK)).all(axis=1)
    return (
        both_signs
        & away_from_kink
        & unsaturated
        & gap_where_negative
        & mistakes_distinguishable(params, sol)
        & rounding_forgiven(params, sol)
    )


def rounding_forgiven(params: dict[str, np.ndarray], sol: core.Solution) -> np.ndarray:
    """(N,) True where a student who rounds every step and carries it forward is right at once.

    Follow-through credit would forgive them anyway; this rule makes the key itself forgive
    them, so they get full marks with follow-through turned off too.
    """
    ok = np.ones(len(sol), dtype=bool)
    for rounding in CARRIED_ROUNDINGS:
        with np.errstate(all="ignore"):  # a saturated candidate rounds some o to 0; it fails anyway
            by_hand = core.solve(**params, activation="elu", round_each_step=rounding)
        for key in core.ANSWER_KEYS:
            close = GRADING_TOLERANCE.close(getattr(by_hand, key), getattr(sol, key))
            ok &= close.reshape(len(sol), -1).all(axis=1)
    return ok


def mistakes_distinguishable(params: dict[str, np.ndarray], sol: core.Solution) -> np.ndarray:
    """(N,) True where every catalogued mistake moves some entry well outside the tolerance."""
    chain = mistakes.chain_from(params, sol)
    ok = np.ones(len(sol), dtype=bool)
    for mistake in mistakes.for_activation("elu"):
        right = getattr(sol, mistake.quantity)
        wrong = mistakes.spoiled(chain, mistake)
        if wrong.shape != right.shape:
            continue  # a transposed matrix of another shape is told apart by its shape
        excess = np.abs(wrong - right) / GRADING_TOLERANCE.allowance(right)
        ok &= excess.reshape(len(sol), -1).max(axis=1) > MISTAKE_MARGIN
    return ok


def variants(seed: str, student_ids: Iterable[str]) -> list[Params]:
    """Each student's variant, in the order given. Rules are checked for all students at once."""
    ids = list(student_ids)
    if not seed:
        raise ValueError("the seed must be a non-empty string")
    chosen: list[Params | None] = [None] * len(ids)
    pending = list(range(len(ids)))
    first_attempt = 0
    while pending:
        if first_attempt >= MAX_ATTEMPTS:
            raise RuntimeError(f"no good variant within {MAX_ATTEMPTS} attempts for {len(pending)} students")
        words = np.concatenate([_words(seed, ids[n], first_attempt, ATTEMPTS_PER_ROUND) for n in pending])
        candidates = _draw(words)
        good = good_problems(candidates).reshape(len(pending), ATTEMPTS_PER_ROUND)
        still_pending = []
        for row, n in enumerate(pending):
            hits = np.flatnonzero(good[row])
            if hits.size == 0:
                still_pending.append(n)
                continue
            pick = row * ATTEMPTS_PER_ROUND + hits[0]
            chosen[n] = Params(
                x=candidates["x"][pick],
                v=candidates["v"][pick],
                w=candidates["w"][pick],
                target=candidates["target"][pick],
                lr=float(candidates["lr"][pick]),
                activation="elu",
            )
        pending = still_pending
        first_attempt += ATTEMPTS_PER_ROUND
    return chosen  # type: ignore[return-value]


def variant(seed: str, student_id: str) -> Params:
    """One student's variant."""
    return variants(seed, [student_id])[0]
