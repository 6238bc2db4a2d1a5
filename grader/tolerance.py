"""When a student's number counts as the expected one.

An entry is right when |answer - expected| <= atol + rtol * |expected|. The relative part
forgives rounding at every step of a hand computation; the absolute part is what grades an
expected value of exactly zero (the third row of dL/dv in HW#2 is zero, and no relative
tolerance can accept a student's 0.0000 or -1e-17 there).

With ``sigfigs`` set, the relative part is replaced by one unit in the N-th significant figure
of the expected value: a student who rounds to N figures is off by at most half a unit, and
carrying rounded values forward costs at most about another half.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RTOL = 0.01  # 1%: three significant figures carried through every step still pass
DEFAULT_ATOL = 0.001  # the scale of the 4th decimal place, the precision the keys print


@dataclass(frozen=True)
class Tolerance:
    """The grading tolerance; ``sigfigs`` (when set) replaces ``rtol``."""

    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    sigfigs: int | None = None

    def allowance(self, expected: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
        """How far an answer may be from ``expected``, entry by entry.

        ``scale``, where given, is the size of the terms ``expected`` was summed from: rounding
        each term by hand errs in proportion to the terms, not to a sum they cancel down to.
        """
        magnitude = np.abs(expected) if scale is None else np.maximum(np.abs(expected), scale)
        if self.sigfigs is None:
            return self.atol + self.rtol * magnitude
        with np.errstate(divide="ignore"):
            exponent = np.floor(np.log10(np.where(magnitude > 0, magnitude, 1.0)))
        unit = np.where(magnitude > 0, 10.0 ** (exponent - self.sigfigs + 1), 0.0)
        return self.atol + unit

    def close(self, answer, expected, scale=None) -> np.ndarray:
        """Elementwise: is ``answer`` within tolerance of ``expected``? NaN is never close."""
        answer = np.asarray(answer, dtype=np.float64)
        expected = np.asarray(expected, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return np.abs(answer - expected) <= self.allowance(expected, scale)

    def describe(self) -> str:
        if self.sigfigs is not None:
            return f"{self.sigfigs} significant figures (plus atol {self.atol:g})"
        return f"|answer - expected| <= {self.atol:g} + {self.rtol:g} * |expected|"

    def to_json(self) -> dict:
        return asdict(self)
