"""When a student's number counts as the expected one.

An entry is right when |answer - expected| <= atol + rtol * |expected|. The relative part
forgives rounding at every step of a hand computation; the absolute part is what grades an
expected value of exactly zero (the third row of dL/dv in HW#2 is zero, and no relative
tolerance can accept a student's 0.0000 or -1e-17 there). An answer exactly on the boundary is
right on either side of an expected value that float64 computes as a hair off (BOUNDARY_SLACK).

With ``sigfigs`` N set, the relative part is 10^(1-N), one unit in the N-th significant figure
of a number whose first figure is 1: rounding a number to N figures errs by at most half of
that, relatively, and carrying rounded numbers forward by about as much again. (One unit in
the N-th figure of the expected value itself is not enough: 1.04 x -0.5 = -0.52, from 1.035
rounded to 3 figures, is 2.5 units of the third figure from -0.5175.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RTOL = 0.01  # 1%: three significant figures carried through every step still pass
DEFAULT_ATOL = 0.001  # the scale of the 4th decimal place, the precision the keys print
# An answer on the boundary is inside whatever float64 makes of it: a key entry that is exactly
# 0 computed as 5.6e-17 (two equal weights cancelling) would otherwise take -0.001 and refuse
# +0.001. A billionth of the allowance is far below anything a student writes.
BOUNDARY_SLACK = 1e-9


@dataclass(frozen=True)
class Tolerance:
    """The grading tolerance; ``sigfigs`` (when set) replaces ``rtol``."""

    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    sigfigs: int | None = None

    def allowance(self, expected: np.ndarray, units: np.ndarray | None = None, slack: float = 0.0) -> np.ndarray:
        """How far an answer may be from ``expected``, entry by entry.

        ``units``, where given, is for a sum of terms that cancel (z = 2.04 - 1.62 - ... = 0.12):
        the sum over its terms of each one's leading unit (10^floor(log10|t|): 1 for 2.04, 0.1
        for 0.37). A student who rounds each term to the tolerance's precision errs by at most
        half of ``relative`` of each unit, and rounding the sum by half of ``relative`` of it:
        so the sum may be off by relative * (units + |expected|) / 2, where that is more than
        the usual allowance. Only the rounding is forgiven: a slip of a percent in a sum whose
        terms are large is still a slip.

        ``slack`` widens the allowance by that fraction (close uses BOUNDARY_SLACK).
        """
        magnitude = np.abs(expected)
        if units is not None:
            magnitude = np.maximum(magnitude, (units + magnitude) / 2)
        scale = 1 + slack  # applied to the two scalars, not to an array of allowances
        return self.atol * scale + (self.relative * scale) * magnitude

    @property
    def relative(self) -> float:
        """The relative part of the allowance: rtol, or 10^(1 - sigfigs) when that is set."""
        return self.rtol if self.sigfigs is None else 10.0 ** (1 - self.sigfigs)

    def close(self, answer, expected, units=None) -> np.ndarray:
        """Elementwise: is ``answer`` within tolerance of ``expected`` (see allowance)? NaN is never close."""
        answer = np.asarray(answer, dtype=np.float64)
        expected = np.asarray(expected, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return np.abs(answer - expected) <= self.allowance(expected, units, BOUNDARY_SLACK)

    def describe(self) -> str:
        if self.sigfigs is not None:
            return f"{self.sigfigs} significant figures: |answer - expected| <= {self.atol:g} + {self.relative:g} * |expected|"
        return f"|answer - expected| <= {self.atol:g} + {self.rtol:g} * |expected|"

    def to_json(self) -> dict:
        """The tolerance as applied: with ``sigfigs``, the rtol is the one it sets."""
        return {**asdict(self), "rtol": self.relative}
