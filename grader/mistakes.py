"""The catalogue of common mistakes, each a small variation of one step of the core computation.

A mistake says which answer it spoils and how to compute the spoiled value from a ``Chain``:
the given data of the instance plus the earlier quantities. The grader evaluates it twice,
on the key's chain and on the student's own earlier answers, and names the mistake when a
wrong entry matches either. Adding a mistake is adding one entry to ``CATALOGUE``; two that
spoil the same answer and are often made together also get an entry in ``COMBINED``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable

import numpy as np

from grader import core


@dataclass(frozen=True)
class Chain:
    """What a mistaken step is computed from; every array has the leading batch axis N."""

    x: np.ndarray  # (N, I)     given
    v: np.ndarray  # (N, J, I)  given
    w: np.ndarray  # (N, K, J)  given
    target: np.ndarray  # (N, K) given
    lr: np.ndarray  # (N,)      given
    u: np.ndarray  # (N, J)
    h: np.ndarray  # (N, J)
    z: np.ndarray  # (N, K)
    o: np.ndarray  # (N, K)
    grad_w: np.ndarray  # (N, K, J)
    grad_v: np.ndarray  # (N, J, I)
    activation: str = "elu"  # the hidden activation, a key of core.ACTIVATIONS


@dataclass(frozen=True)
class Mistake:
    """A named mistake and the wrong value it produces for one answer."""

    id: str  # stable identifier, reported in results.json
    quantity: str  # the answer key it spoils (one of core.ANSWER_KEYS)
    explanation: str  # one sentence for the student's feedback
    compute: Callable[[Chain], np.ndarray]  # the spoiled quantity, batched
    activations: tuple[str, ...] | None = None  # where it applies; None: every activation
    # For a mistake made together with another (COMBINED): the other's id. Where the two
    # together give what the other alone gives, the entries are that other mistake's.
    also: str | None = None
    # Made unit by unit (ELU' at each negative u_j): one row of the answer (a hidden unit's),
    # matching in every entry it changes, shows it, though other rows are right.
    per_unit: bool = False


def _dh(c: Chain) -> np.ndarray:
    return np.einsum("nk,nkj->nj", c.o - c.target, c.w)  # (N, J)  dL/dh_j


def _grad_v_with(df: Callable[[np.ndarray], np.ndarray]):
    """dL/dv computed with ``df`` standing in for the activation's derivative."""
    return lambda c: (_dh(c) * df(c.u))[:, :, None] * c.x[:, None, :]  # (N, J, I)


def _negative_branch(value_for_negative: Callable[[np.ndarray], np.ndarray]):
    """ELU' with the negative branch replaced; the positive branch stays 1."""
    return lambda u: np.where(u >= 0, 1.0, value_for_negative(np.minimum(u, 0.0)))


ELU_ONLY = ("elu",)

CATALOGUE: tuple[Mistake, ...] = (
    Mistake(
        "log10-loss",
        "loss",
        "The loss was computed with log base 10; the cross-entropy uses the natural log (ln).",
        lambda c: -(c.target * np.log10(c.o)).sum(axis=-1),
    ),
    Mistake(
        "relu-for-elu",
        "h",
        "A negative u_j was sent to 0 as ReLU would; ELU gives e^u - 1 for u < 0.",
        lambda c: np.maximum(c.u, 0.0),
        ELU_ONLY,
    ),
    Mistake(
        "sigmoid-output",
        "o",
        "The outputs were squashed one by one with the sigmoid; the output layer is a softmax, "
        "o_k = e^{z_k} / sum_m e^{z_m}.",
        lambda c: core.ACTIVATIONS["sigmoid"].f(c.z),
    ),
    Mistake(
        "target-minus-output",
        "grad_w",
        "dL/dz was taken as o* - o; it is o - o*, so every gradient had the wrong sign.",
        lambda c: -(c.o - c.target)[:, :, None] * c.h[:, None, :],
    ),
    Mistake(
        "target-minus-output",
        "grad_v",
        "dL/dz was taken as o* - o; it is o - o*, so every gradient had the wrong sign.",
        lambda c: -_grad_v_with(core.ACTIVATIONS[c.activation].df)(c),
    ),
    Mistake(
        "elu-derivative-zero",
        "grad_v",
        "ELU'(u) was taken as 0 for negative u; for u < 0 it is e^u.",
        _grad_v_with(_negative_branch(np.zeros_like)),
        ELU_ONLY,
        per_unit=True,
    ),
    Mistake(
        "elu-derivative-one",
        "grad_v",
        "ELU'(u) was taken as 1 for negative u; for u < 0 it is e^u.",
        _grad_v_with(_negative_branch(np.ones_like)),
        ELU_ONLY,
        per_unit=True,
    ),
    Mistake(
        "elu-derivative-expm1",
        "grad_v",
        "ELU'(u) was taken as e^u - 1 (the ELU itself) for negative u; its derivative is e^u.",
        _grad_v_with(_negative_branch(np.expm1)),
        ELU_ONLY,
        per_unit=True,
    ),
    Mistake(
        "gradient-ascent",
        "w_new",
        "The update added the gradient; gradient descent subtracts it: w_new = w - eta dL/dw.",
        lambda c: c.w + c.lr[:, None, None] * c.grad_w,
    ),
    Mistake(
        "gradient-ascent",
        "v_new",
        "The update added the gradient; gradient descent subtracts it: v_new = v - eta dL/dv.",
        lambda c: c.v + c.lr[:, None, None] * c.grad_v,
    ),
    Mistake(
        "transposed-gradient",
        "grad_w",
        "dL/dw was written transposed; it has the shape of w (outputs x hidden), entry (k, j) = dL/dw_kj.",
        lambda c: c.grad_w.swapaxes(-1, -2),
    ),
    Mistake(
        "transposed-gradient",
        "grad_v",
        "dL/dv was written transposed; it has the shape of v (hidden x inputs), entry (j, i) = dL/dv_ji.",
        lambda c: c.grad_v.swapaxes(-1, -2),
    ),
)

MISTAKE_IDS = tuple(dict.fromkeys(m.id for m in CATALOGUE))


def _with_target_minus_output(mistake: Mistake) -> Mistake:
    """``mistake`` (a dL/dv computed with a wrong ELU') made with o* - o for o - o* as well.
    dL/dv is linear in dL/dz, so the pair's value is the mistake's with its sign flipped.
    o* - o flips every row, so one row is no evidence of the pair (not per_unit)."""
    return replace(mistake, compute=lambda c: -mistake.compute(c), also="target-minus-output", per_unit=False)


# Mistakes made together in one answer, where neither alone explains it: a wrong ELU' and
# o* - o both spoil dL/dv, and a student who makes both writes neither's value. (Mistakes in
# different answers need no entry here: a later answer is checked against the student's own
# earlier ones, mistakes and all.)
COMBINED: tuple[Mistake, ...] = tuple(
    _with_target_minus_output(m) for m in CATALOGUE if m.quantity == "grad_v" and m.id.startswith("elu-derivative-")
)


def _applies(mistake: Mistake, activation: str) -> bool:
    return mistake.activations is None or activation in mistake.activations


def for_activation(activation: str) -> tuple[Mistake, ...]:
    """The mistakes that can be made in a network with this hidden activation."""
    return tuple(m for m in CATALOGUE if _applies(m, activation))


def applicable(quantity: str, activation: str) -> tuple[Mistake, ...]:
    """The mistakes that can spoil ``quantity`` for a network with this hidden activation."""
    return tuple(m for m in for_activation(activation) if m.quantity == quantity)


def combined(quantity: str, activation: str) -> tuple[Mistake, ...]:
    """The pairs of mistakes (COMBINED) that can spoil ``quantity`` together."""
    return tuple(m for m in COMBINED if m.quantity == quantity and _applies(m, activation))


def alone(mistake_id: str, quantity: str) -> Mistake:
    """The catalogue's entry for ``mistake_id`` made in ``quantity``."""
    return next(m for m in CATALOGUE if m.id == mistake_id and m.quantity == quantity)


def explanation(mistake_id: str) -> str:
    """The feedback sentence for a mistake id (the first entry's, when it spoils two answers)."""
    return next(m.explanation for m in CATALOGUE if m.id == mistake_id)


def chain_from(params: dict[str, np.ndarray], values, activation: str = "elu") -> Chain:
    """A Chain from batched given data and batched earlier quantities (key's or student's).

    ``values`` is a mapping or an object with the quantities as attributes (a core.Solution).
    """
    get = values.__getitem__ if isinstance(values, dict) else lambda key: getattr(values, key)
    given = {key: params[key] for key in ("x", "v", "w", "target", "lr")}
    earlier = {key: get(key) for key in ("u", "h", "z", "o", "grad_w", "grad_v")}
    return Chain(**given, **earlier, activation=activation)


def chain_rows(chain: Chain, rows: np.ndarray) -> Chain:
    """The chain of the instances at ``rows`` of the batch."""
    return Chain(**{name: getattr(chain, name)[rows] for name in _CHAIN_ARRAYS}, activation=chain.activation)


_CHAIN_ARRAYS = tuple(f.name for f in fields(Chain) if f.name != "activation")


def spoiled(chain: Chain, mistake: Mistake) -> np.ndarray:
    """The mistaken value; floating-point warnings are expected (log of a student's 0)."""
    with np.errstate(all="ignore"):
        return mistake.compute(chain)
