"""Grade the derivation answers (HW2 parts 1 and 3) by randomized identity testing.

A student's ``derivations`` block holds the general entry of each derived quantity as an
expression in the language of ``grader.expr``: u_j, h_j, z_k, o_k, dL/dw_kj and dL/dv_ji
(keys ``u``, ``h``, ``z``, ``o``, ``grad_w``, ``grad_v``), and optionally the loss L (``loss``).

Two expressions are taken to be the same function when they agree at every one of
NUM_POINTS random points (x, v, w, one-hot t, and the u, h, z, o computed from them). The
points are drawn once from a fixed seed (they are not student variants, so nothing is gained
by varying them) so that every hidden pre-activation u_j takes both signs across the points
and stays at least U_MARGIN away from 0: ELU's two branches are both exercised and the kink
at 0 never decides an answer. A wrong answer agreeing with the right one at 32 generic points
would be a coincidence of probability zero; an answer written differently but equal in exact
arithmetic (a sum expanded, ELU written with where, e^x for exp) differs by rounding only.

A formula may use only the givens (x, v, w, t) and the quantities computed before its own
(ALLOWED_SYMBOLS): ``u[j]`` for u_j is true but circular, and is refused like an unknown name.

A wrong answer is compared with a small table of known mistakes written in the same language
(MISTAKES) and, if it matches one, the mistake is named and explained.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import numpy as np

from grader import core
from grader.expr import DEFAULT_SIZES, HIDDEN, INPUT, OUTPUT, Expr, ExprError, evaluate, parse, symbols

# --- What is asked ------------------------------------------------------------------------

# The hidden activation the references are written for: HW#2's. A problem with another one
# (a manifest may give any of core.ACTIVATIONS) has other right answers for h and dL/dv.
ACTIVATION = "elu"

REFERENCE: dict[str, str] = {
    "u": "sum(v[j,i] * x[i], i)",
    "h": "ELU(u[j])",
    "z": "sum(w[k,j] * h[j], j)",
    "o": "exp(z[k]) / sum(exp(z[m]), m)",
    "grad_w": "(o[k] - t[k]) * h[j]",
    "grad_v": "sum((o[k] - t[k]) * w[k,j], k) * dELU(u[j]) * x[i]",
}
FREE_INDICES: dict[str, tuple[str, ...]] = {
    "u": ("j",),
    "h": ("j",),
    "z": ("k",),
    "o": ("k",),
    "grad_w": ("k", "j"),
    "grad_v": ("j", "i"),
}
REQUIRED_KEYS: tuple[str, ...] = tuple(REFERENCE)

# The loss is optional: graded when a submission gives it, never reported missing.
LOSS_KEY = "loss"
LOSS_REFERENCE = "-sum(t[k] * log(o[k]), k)"

_REFERENCES = {**REFERENCE, LOSS_KEY: LOSS_REFERENCE}
_FREE = {**FREE_INDICES, LOSS_KEY: ()}
GRADED_KEYS: tuple[str, ...] = tuple(_REFERENCES)

# The symbols each formula may be written in: the givens and the quantities computed before
# it. The quantity itself, or one computed from it, would make the formula circular: "u_j = u[j]"
# or "u_j = where(h[j] >= 0, h[j], log(1 + h[j]))" is true, but it is not a derivation.
_GIVENS = ("x", "v", "w", "t")
ALLOWED_SYMBOLS: dict[str, tuple[str, ...]] = {
    "u": _GIVENS,
    "h": (*_GIVENS, "u"),
    "z": (*_GIVENS, "u", "h"),
    "o": (*_GIVENS, "u", "h", "z"),
    "grad_w": (*_GIVENS, "u", "h", "z", "o"),
    "grad_v": (*_GIVENS, "u", "h", "z", "o"),
    LOSS_KEY: (*_GIVENS, "u", "h", "z", "o"),
}

# How each quantity is named in feedback.
LABELS: dict[str, str] = {
    "u": "u_j",
    "h": "h_j",
    "z": "z_k",
    "o": "o_k",
    "grad_w": "dL/dw_kj",
    "grad_v": "dL/dv_ji",
    LOSS_KEY: "L",
}


# --- Known mistakes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Mistake:
    """A wrong formula students write, recognised when an answer equals it at every point."""

    id: str  # stable identifier, the same as the numeric grader's where both name a mistake
    key: str  # the derivation it spoils
    expression: str  # the wrong formula, in the expression language
    explanation: str  # one sentence of feedback


_SIGN = "dL/dz_k was taken as o*_k - o_k; it is o_k - o*_k, so the gradient has the wrong sign."

MISTAKES: tuple[Mistake, ...] = (
    Mistake(
        "relu-for-elu",
        "h",
        "where(u[j] >= 0, u[j], 0)",
        "A negative u_j was sent to 0 as ReLU would; ELU gives e^u - 1 for u < 0.",
    ),
    Mistake(
        "relu-for-elu",
        "z",
        "sum(w[k,j] * max(u[j], 0), j)",
        "h_j was taken as ReLU(u_j), sending a negative u_j to 0; ELU gives e^u - 1 for u < 0.",
    ),
    Mistake(
        "relu-for-elu",
        "grad_w",
        "(o[k] - t[k]) * max(u[j], 0)",
        "h_j was taken as ReLU(u_j), sending a negative u_j to 0; ELU gives e^u - 1 for u < 0.",
    ),
    Mistake(
        "sigmoid-output",
        "o",
        "sigmoid(z[k])",
        "o_k was written with the sigmoid; the output layer is a softmax, "
        "o_k = e^{z_k} / sum_m e^{z_m}.",
    ),
    Mistake("target-minus-output", "grad_w", "(t[k] - o[k]) * h[j]", _SIGN),
    Mistake("target-minus-output", "grad_v", "sum((t[k] - o[k]) * w[k,j], k) * dELU(u[j]) * x[i]", _SIGN),
    Mistake(
        "elu-derivative-one",
        "grad_v",
        "sum((o[k] - t[k]) * w[k,j], k) * x[i]",
        "ELU'(u) was taken as 1 for negative u; for u < 0 it is e^u.",
    ),
    Mistake(
        "elu-derivative-zero",
        "grad_v",
        "sum((o[k] - t[k]) * w[k,j], k) * where(u[j] >= 0, 1, 0) * x[i]",
        "ELU'(u) was taken as 0 for negative u (as for ReLU); for u < 0 it is e^u.",
    ),
    Mistake(
        "elu-derivative-expm1",
        "grad_v",
        "sum((o[k] - t[k]) * w[k,j], k) * where(u[j] >= 0, 1, exp(u[j]) - 1) * x[i]",
        "ELU'(u) was taken as e^u - 1 (the ELU itself) for negative u; its derivative is e^u.",
    ),
    Mistake(
        "elu-derivative-expm1",
        "grad_v",
        "sum((o[k] - t[k]) * w[k,j], k) * ELU(u[j]) * x[i]",
        "ELU(u) was used where its derivative belongs; ELU'(u) is 1 for u >= 0 and e^u for u < 0.",
    ),
    Mistake(
        "log10-loss",
        LOSS_KEY,
        "-sum(t[k] * log10(o[k]), k)",
        "The loss was written with log base 10; the cross-entropy uses the natural log (ln).",
    ),
)

# --- The test points ----------------------------------------------------------------------

NUM_POINTS = 32  # points every answer is evaluated at
MIN_POINTS = 20  # fewer usable points than this would be a bug in the point generator
POINTS_SEED = 20_240_202  # fixed: the points are part of the grader, not of a student's variant
U_MARGIN = 0.05  # |u_j| at least this, so where(u >= 0, ...) and where(u > 0, ...) agree
_DRAW_RANGE = 1.5  # givens drawn from [-1.5, 1.5]: exp and softmax stay far from overflow

# Right when |answer - reference| <= IDENTITY_RTOL * |reference| + IDENTITY_ATOL * scale at
# every point and entry, with scale = max(1, largest |reference| of that key). An equivalent
# answer differs from the reference by floating-point rounding, about 1e-16 of the size of
# the terms it adds; the terms are of order max(1, |result|) since the givens are O(1). The
# relative part covers results of ordinary size with eight digits of headroom; the absolute
# part covers results that are zero or nearly cancel (sum_k (o_k - o*_k) w_kj can), where no
# relative tolerance works. A real mistake changes values by far more than either.
IDENTITY_RTOL = 1e-8
IDENTITY_ATOL = 1e-10

# Keys whose reference has ELU's two branches in it, so a hint can say which branch is wrong.
_PIECEWISE_KEYS = ("h", "grad_v")


def _forward(x: np.ndarray, v: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """u, h, z, o of a batch of networks (leading axis: points), by the numeric core."""
    u = np.einsum("pji,pi->pj", v, x)
    h = core.ACTIVATIONS["elu"].f(u)
    z = np.einsum("pkj,pj->pk", w, h)
    return {"u": u, "h": h, "z": z, "o": core.softmax(z)}


def _weights_with_margin(rng: np.random.Generator, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """v with every |u_j| = |v_j . x| >= U_MARGIN: redraw the rows that fall too close to 0."""
    v = rng.uniform(-_DRAW_RANGE, _DRAW_RANGE, shape)
    for _ in range(1_000):
        too_small = np.abs(np.einsum("pji,pi->pj", v, x)) < U_MARGIN
        if not too_small.any():
            return v
        v[too_small] = rng.uniform(-_DRAW_RANGE, _DRAW_RANGE, (int(too_small.sum()), shape[-1]))
    raise RuntimeError("could not draw pre-activations away from 0")


def draw_points(count: int, seed: int = POINTS_SEED, sizes: Mapping[str, int] = DEFAULT_SIZES) -> dict[str, np.ndarray]:
    """``count`` consistent points: x, v, w, one-hot t, and u, h, z, o computed from them.

    Each hidden unit's u_j is positive at point 0, negative at point 1 and of random sign
    elsewhere (so both ELU branches are exercised at every unit), with |u_j| >= U_MARGIN.
    """
    inputs, hidden, outputs = sizes[INPUT], sizes[HIDDEN], sizes[OUTPUT]
    rng = np.random.default_rng(seed)
    # |x_i| >= 0.2 so that no point has all inputs near 0 (then every u_j would be too).
    x = rng.uniform(0.2, _DRAW_RANGE, (count, inputs)) * rng.choice([-1.0, 1.0], (count, inputs))
    v = _weights_with_margin(rng, x, (count, hidden, inputs))
    wanted_signs = rng.choice([-1.0, 1.0], (count, hidden))
    wanted_signs[0:1] = 1.0
    wanted_signs[1:2] = -1.0
    # Negating row j of v negates u_j and keeps its magnitude.
    v *= (wanted_signs * np.sign(np.einsum("pji,pi->pj", v, x)))[:, :, None]
    w = rng.uniform(-_DRAW_RANGE, _DRAW_RANGE, (count, outputs, hidden))
    t = np.eye(outputs)[rng.integers(outputs, size=count)]
    return {"x": x, "v": v, "w": w, "t": t, **_forward(x, v, w)}


@dataclass(frozen=True)
class _Bench:
    """The fixed points and every expected value on them, computed once."""

    env: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]  # key -> (P, *free sizes)
    scale: dict[str, float]  # key -> max(1, largest |reference|), for the absolute tolerance
    mistakes: dict[str, tuple[tuple[Mistake, np.ndarray], ...]]  # key -> (mistake, its values)


def _values_at(env: Mapping[str, np.ndarray], key: str, text: str) -> np.ndarray:
    return evaluate(parse(text, _FREE[key]), env, _FREE[key])


def _finite_per_point(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)


@lru_cache(maxsize=1)
def _bench() -> _Bench:
    # Draw twice as many points as needed and keep the first NUM_POINTS at which every
    # reference and every catalogued mistake is finite: "redraw where not finite".
    candidates = draw_points(2 * NUM_POINTS)
    reference = {key: _values_at(candidates, key, text) for key, text in _REFERENCES.items()}
    mistaken = [(m, _values_at(candidates, m.key, m.expression)) for m in MISTAKES]
    usable = np.ones(2 * NUM_POINTS, dtype=bool)
    for values in [*reference.values(), *(values for _, values in mistaken)]:
        usable &= _finite_per_point(values)
    keep = np.flatnonzero(usable)[:NUM_POINTS]
    if len(keep) < MIN_POINTS:
        raise RuntimeError(f"only {len(keep)} usable test points; at least {MIN_POINTS} are needed")
    return _Bench(
        env={name: values[keep] for name, values in candidates.items()},
        reference={key: values[keep] for key, values in reference.items()},
        scale={key: max(1.0, float(np.max(np.abs(values[keep])))) for key, values in reference.items()},
        mistakes={
            key: tuple((m, values[keep]) for m, values in mistaken if m.key == key) for key in _REFERENCES
        },
    )


def identity_points() -> dict[str, np.ndarray]:
    """A copy of the points every derivation is evaluated at (for tests and reports)."""
    return {name: values.copy() for name, values in _bench().env.items()}


def _agrees(values: np.ndarray, expected: np.ndarray, scale: float) -> np.ndarray:
    """Entry by entry: within the identity tolerance? NaN and inf never agree with a finite."""
    with np.errstate(invalid="ignore"):
        return np.abs(values - expected) <= IDENTITY_RTOL * np.abs(expected) + IDENTITY_ATOL * scale


# --- Results ------------------------------------------------------------------------------

RIGHT, WRONG, INVALID, MISSING = "right", "wrong", "invalid", "missing"


@dataclass(frozen=True)
class DerivationResult:
    """The grade of one derivation.

    key:      which derivation: "u", "h", "z", "o", "grad_w", "grad_v" or "loss".
    status:   "right", "wrong", "invalid" (not a string, does not parse, or circular: uses
              its own quantity or a later one) or "missing"
              (absent, null, or only whitespace).
    fraction: 1.0 when right, else 0.0.
    mistake:  the id of the catalogued mistake the answer equals, else None.
    message:  one line of feedback. "" when right; for a named mistake its explanation; for
              another wrong answer a hint that does not give the answer away; for invalid and
              missing a reason prefixed with the key ("grad_v: unexpected ')' at column 27").
    text:     the student's string unchanged, or None when the value was not a string.
    """

    key: str
    status: str
    fraction: float
    mistake: str | None
    message: str
    text: str | None


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


@dataclass(frozen=True)
class _Reading:
    """What a submitted value is, before grading: a parsed tree, or why there is none."""

    status: str | None  # None when parsed; else INVALID or MISSING
    tree: Expr | None
    message: str


def is_given(value: object) -> bool:
    """Was a derivation written? Null and a blank string are not (the blank answer file's)."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def not_given(derivations: Mapping[str, object]) -> list[str]:
    """The required keys of a derivations block left out, null or blank, in order."""
    return [key for key in REQUIRED_KEYS if not is_given(derivations.get(key))]


def _read(key: str, value: object) -> _Reading:
    if not is_given(value):
        return _Reading(MISSING, None, f"{key}: no expression given")
    if not isinstance(value, str):
        return _Reading(INVALID, None, f"{key}: expected an expression as a string, got {_json_type(value)}")
    try:
        tree = parse(value, _FREE[key])
        _check_symbols(key, tree)
    except ExprError as error:
        return _Reading(INVALID, None, error.for_field(key))
    return _Reading(None, tree, "")


def _check_symbols(key: str, tree: Expr) -> None:
    """Refuse a circular formula: one that uses its own quantity or a later one."""
    allowed = ALLOWED_SYMBOLS[key]
    for node in symbols(tree):
        if node.name in allowed:
            continue
        label = LABELS[key]
        why = "is the quantity this formula defines" if node.name == key else f"is computed from {label}"
        raise ExprError(
            f"{node.name} at column {node.col} {why}, so it cannot be used here; "
            f"write {label} with {', '.join(allowed)}",
            node.col,
        )


# --- Hints for wrong answers --------------------------------------------------------------


def _hint(key: str, values: np.ndarray, bench: _Bench) -> str:
    """A short nudge for a wrong answer: what kind of wrong, never what is right."""
    label = LABELS[key]
    reference, scale = bench.reference[key], bench.scale[key]
    agrees = _agrees(values, reference, scale)
    if not np.isfinite(values).all():
        return f"{label} is not a finite number at some test points (a division by 0, or the log of a number <= 0?)."
    if _agrees(values, np.zeros_like(values), scale).all():
        return f"{label} is 0 at every test point, but it is not 0 in general."
    if _agrees(values, -reference, scale).all():
        return f"{label} has the wrong sign."
    if _off_by_constant_factor(values, reference, scale):
        return f"{label} is off by a constant factor."
    branch_hint = _branch_hint(key, agrees, bench)
    if branch_hint:
        return f"{label} {branch_hint}"
    for axis, letter in enumerate(_FREE[key]):
        if _constant_along(values, 1 + axis, scale) and not _constant_along(reference, 1 + axis, scale):
            return f"{label} does not depend on {letter}, but it should."
    wrong_points = int((~agrees.reshape(len(agrees), -1).all(axis=1)).sum())
    return f"{label} does not match the correct expression at {wrong_points} of {len(agrees)} test points."


def _off_by_constant_factor(values: np.ndarray, reference: np.ndarray, scale: float) -> bool:
    sizable = np.abs(reference) > 1e-3 * scale
    if not sizable.any():
        return False
    factor = float(np.median(values[sizable] / reference[sizable]))
    return abs(factor) > 1e-6 and bool(_agrees(values, factor * reference, scale).all())


def _branch_hint(key: str, agrees: np.ndarray, bench: _Bench) -> str:
    """For answers with ELU's branches: right on one side of u_j = 0 only?"""
    if key not in _PIECEWISE_KEYS:
        return ""
    free = _FREE[key]
    negative_u = bench.env["u"] < 0  # (P, J); put J where the key's j axis is
    shape = (negative_u.shape[0], *(negative_u.shape[1] if letter == "j" else 1 for letter in free))
    negative = np.broadcast_to(negative_u.reshape(shape), agrees.shape)
    if agrees[~negative].all() and not agrees[negative].all():
        return "is right where u_j >= 0 but not where u_j < 0."
    if agrees[negative].all() and not agrees[~negative].all():
        return "is right where u_j < 0 but not where u_j >= 0."
    return ""


def _constant_along(values: np.ndarray, axis: int, scale: float) -> bool:
    first = np.take(values, [0], axis=axis)
    return bool(_agrees(values, np.broadcast_to(first, values.shape), scale).all())


# --- Public API ---------------------------------------------------------------------------


def grade_derivation(key: str, value: object) -> DerivationResult:
    """Grade one derivation; ``key`` is one of GRADED_KEYS, ``value`` the submitted value."""
    text = value if isinstance(value, str) else None
    reading = _read(key, value)
    if reading.tree is None:
        return DerivationResult(key, reading.status, 0.0, None, reading.message, text)
    # A student's expression may be huge (1/1e-308*x[i]): comparing it and looking for a hint
    # then overflows to inf, which grades it wrong, and must print no warning on stderr.
    with np.errstate(all="ignore"):
        return _judge(key, reading.tree, text)


def _judge(key: str, tree: Expr, text: str | None) -> DerivationResult:
    """A parsed derivation's result: right, a named mistake, or wrong with a hint."""
    bench = _bench()
    values = evaluate(tree, bench.env, _FREE[key])
    scale = bench.scale[key]
    if _agrees(values, bench.reference[key], scale).all():
        return DerivationResult(key, RIGHT, 1.0, None, "", text)
    for mistake, mistaken in bench.mistakes[key]:
        if _agrees(values, mistaken, scale).all():
            return DerivationResult(key, WRONG, 0.0, mistake.id, mistake.explanation, text)
    return DerivationResult(key, WRONG, 0.0, None, _hint(key, values, bench), text)


def grade_derivations(derivations: Mapping[str, object]) -> dict[str, DerivationResult]:
    """Grade a submission's ``derivations`` block.

    Returns one result per required key (REQUIRED_KEYS, in that order), plus ``loss`` when
    the block has that key. Other keys are ignored (the caller warns about them). A block
    that is not a mapping makes every required key invalid.
    """
    if not isinstance(derivations, Mapping):
        reason = f"derivations should be an object of expression strings, got {_json_type(derivations)}"
        return {key: DerivationResult(key, INVALID, 0.0, None, f"{key}: {reason}", None) for key in REQUIRED_KEYS}
    keys = REQUIRED_KEYS + ((LOSS_KEY,) if LOSS_KEY in derivations else ())
    return {key: grade_derivation(key, derivations.get(key)) for key in keys}


def check_derivations(derivations: Mapping[str, object]) -> list[str]:
    """Form problems only, for ``hwgen check``: values that are not strings and expressions
    that do not parse, one line each, prefixed with the key. Says nothing about whether an
    answer is right, and nothing about absent answers."""
    if not isinstance(derivations, Mapping):
        return [f"derivations should be an object of expression strings, got {_json_type(derivations)}"]
    problems = []
    for key in GRADED_KEYS:
        reading = _read(key, derivations.get(key))
        if reading.status == INVALID:
            problems.append(reading.message)
    return problems


__all__ = [
    "ALLOWED_SYMBOLS",
    "FREE_INDICES",
    "GRADED_KEYS",
    "IDENTITY_ATOL",
    "IDENTITY_RTOL",
    "LABELS",
    "LOSS_KEY",
    "LOSS_REFERENCE",
    "MIN_POINTS",
    "MISTAKES",
    "NUM_POINTS",
    "POINTS_SEED",
    "REFERENCE",
    "REQUIRED_KEYS",
    "U_MARGIN",
    "DerivationResult",
    "Mistake",
    "check_derivations",
    "draw_points",
    "grade_derivation",
    "grade_derivations",
    "identity_points",
]
