"""A problem instance's given data (x, v, w, target, lr, activation): validation, JSON, solving.

The parameters JSON, read by ``hwgen solve --params`` and written by ``hwgen variant``:

    {"x": [...], "v": [[...], ...], "w": [[...], ...], "target": [...], "lr": 0.1,
     "activation": "elu"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from grader import core
from grader.jsonio import InputError, to_array, tolist
from grader.quoting import clip

PARAM_KEYS = ("x", "v", "w", "target", "lr", "activation")
# Far beyond any homework, and small enough that every quantity of any instance stays finite
# in float64 (products of three such numbers, summed, are about 1e24).
MAX_MAGNITUDE = 1e6
MAX_KEYS_SHOWN = 10  # unknown keys a warning names; a file of thousands would flood the terminal


@dataclass(frozen=True)
class Params:
    """One instance of the problem, exactly as the student sees it (no batch axis)."""

    x: np.ndarray  # (I,)    input
    v: np.ndarray  # (J, I)  input -> hidden weights
    w: np.ndarray  # (K, J)  hidden -> output weights
    target: np.ndarray  # (K,)  one-hot ground truth o*
    lr: float  # learning rate eta
    activation: str = "elu"  # hidden activation, a key of core.ACTIVATIONS

    @property
    def sizes(self) -> tuple[int, int, int]:
        """(inputs I, hidden units J, outputs K)."""
        return self.x.shape[0], self.v.shape[0], self.w.shape[0]

    @property
    def target_class(self) -> int:
        """The 0-based index of the 1 in the one-hot target."""
        return int(np.argmax(self.target))

    def to_json(self) -> dict[str, Any]:
        return {
            "x": tolist(self.x),
            "v": tolist(self.v),
            "w": tolist(self.w),
            "target": tolist(self.target),
            "lr": float(self.lr),
            "activation": self.activation,
        }

    @classmethod
    def from_json(cls, obj: Any, *, warn=None) -> "Params":
        """Validated parameters from parsed JSON, or an InputError naming the field."""
        if not isinstance(obj, dict):
            raise InputError(None, "parameters must be a JSON object with keys " + ", ".join(PARAM_KEYS))
        for key in ("x", "v", "w", "target", "lr"):
            if key not in obj:
                raise InputError(key, "is missing")
        unknown = sorted(set(obj) - set(PARAM_KEYS))
        if unknown and warn is not None:
            shown = ", ".join(map(clip, unknown[:MAX_KEYS_SHOWN]))
            more = f" and {len(unknown) - MAX_KEYS_SHOWN} more" if len(unknown) > MAX_KEYS_SHOWN else ""
            warn(f"ignoring unknown parameter keys: {shown}{more}")
        x = to_array(obj["x"], "x", 1)
        v = to_array(obj["v"], "v", 2)
        w = to_array(obj["w"], "w", 2)
        target = to_array(obj["target"], "target", 1)
        lr = float(to_array(obj["lr"], "lr", 0))
        activation = obj.get("activation", "elu")
        return cls.checked(x, v, w, target, lr, activation)

    @classmethod
    def checked(cls, x, v, w, target, lr, activation="elu") -> "Params":
        """Parameters whose shapes agree, target is one-hot and activation is known."""
        if v.shape[1] != x.shape[0]:
            raise InputError("v", f"has {v.shape[1]} columns but x has {x.shape[0]} entries; v must be (hidden, inputs)")
        if w.shape[1] != v.shape[0]:
            raise InputError("w", f"has {w.shape[1]} columns but v has {v.shape[0]} rows; w must be (outputs, hidden)")
        if target.shape[0] != w.shape[0]:
            raise InputError("target", f"has {target.shape[0]} entries but w has {w.shape[0]} rows (outputs)")
        # One-hot is a statement about exact values the user typed, so exact comparison is meant.
        if not (np.isin(target, (0.0, 1.0)).all() and target.sum() == 1.0):
            raise InputError("target", "must be one-hot: a single 1 and 0 elsewhere")
        if not lr > 0:
            raise InputError("lr", "must be a positive number")
        for name, values in (("x", x), ("v", v), ("w", w), ("lr", np.array(lr))):
            if np.abs(values).max() > MAX_MAGNITUDE:
                raise InputError(name, f"has a number larger than {MAX_MAGNITUDE:g} in size")
        if not isinstance(activation, str) or activation not in core.ACTIVATIONS:
            allowed = ", ".join(core.ACTIVATIONS)
            raise InputError("activation", f"must be one of {allowed}; got {_shown_value(activation)}")
        return cls(x, v, w, target, lr, activation)


def _shown_value(value: Any) -> str:
    """A JSON value as a message quotes it: a string in quotes, others as JSON writes them (null, not None)."""
    if isinstance(value, str):
        return f"'{clip(value)}'"
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "an object"
    return clip(json.dumps(value))


def answer_shapes(sizes: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
    """The shape of each answer, keyed as ``core.ANSWER_KEYS``, for sizes (I, J, K)."""
    n_in, n_hidden, n_out = sizes
    return {
        "u": (n_hidden,),
        "h": (n_hidden,),
        "z": (n_out,),
        "o": (n_out,),
        "loss": (),
        "grad_w": (n_out, n_hidden),
        "grad_v": (n_hidden, n_in),
        "w_new": (n_out, n_hidden),
        "v_new": (n_hidden, n_in),
    }


def solve_one(params: Params) -> dict[str, np.ndarray]:
    """The answers to one instance, keyed as ``core.ANSWER_KEYS``, without the batch axis."""
    return core.solve(
        params.x[None], params.v[None], params.w[None], params.target[None], params.lr, params.activation
    ).item(0)


def answers_to_json(answers: dict[str, np.ndarray]) -> dict[str, Any]:
    """Answers as JSON: nested lists of full-precision floats, the loss a plain number."""
    return {key: tolist(answers[key]) for key in core.ANSWER_KEYS}


def batch_groups(instances: list[Params]) -> dict[tuple[str, tuple[int, int, int]], list[int]]:
    """Indices of the instances that can share one core.solve batch: same activation and sizes."""
    groups: dict[tuple[str, tuple[int, int, int]], list[int]] = {}
    columns = _shared_columns(instances)
    if columns is not None:  # rows of one set of columns: one size, activations in a column
        activations, sizes = columns[0], instances[0].sizes
        for n, p in enumerate(instances):
            groups.setdefault((activations[p.row], sizes), []).append(n)
        return groups
    for n, p in enumerate(instances):
        groups.setdefault((p.activation, p.sizes), []).append(n)
    return groups


def _shared_columns(instances: list) -> tuple | None:
    """The columns that every one of ``instances`` is a ParamsRow of; None if there are none such."""
    columns = getattr(instances[0], "columns", None) if instances else None
    if columns is not None and all(type(p) is ParamsRow and p.columns is columns for p in instances):
        return columns
    return None


class ParamsRow(NamedTuple):
    """A student's Params as row ``row`` of a class's params held in columns (activations, then
    x, v, w, target and lr stacked with a row per student, as grading.ManifestParts keeps them):
    everything grading asks of Params, without building one per student, and ``stack`` takes a
    batch of rows with one index per column."""

    columns: tuple  # (activations, x, v, w, target, lr)
    row: int
    # Like Params, not for comparing or hashing: the columns hold arrays (== would raise).

    @property
    def activation(self) -> str:
        return self.columns[0][self.row]

    @property
    def sizes(self) -> tuple[int, int, int]:
        _, x, v, w = self.columns[:4]
        return x.shape[1], v.shape[1], w.shape[1]

    x = property(lambda self: self.columns[1][self.row], doc="(I,) input")
    v = property(lambda self: self.columns[2][self.row], doc="(J, I) input -> hidden weights")
    w = property(lambda self: self.columns[3][self.row], doc="(K, J) hidden -> output weights")
    target = property(lambda self: self.columns[4][self.row], doc="(K,) one-hot o*")
    lr = property(lambda self: float(self.columns[5][self.row]), doc="learning rate eta")

    def params(self) -> Params:
        return Params(self.x, self.v, self.w, self.target, self.lr, self.activation)


def stack(instances: list[Params] | list[ParamsRow]) -> dict[str, Any]:
    """Parameters of many instances of one size and activation as batched arrays for core.solve."""
    columns = _shared_columns(instances)
    if columns is not None:
        rows = np.fromiter((p.row for p in instances), dtype=np.intp, count=len(instances))
        _, x, v, w, target, lr = columns
        return {"x": x[rows], "v": v[rows], "w": w[rows], "target": target[rows], "lr": lr[rows]}
    # np.array stacks a list of equal arrays as np.stack does, in half the time.
    return {
        "x": np.array([p.x for p in instances], dtype=np.float64),
        "v": np.array([p.v for p in instances], dtype=np.float64),
        "w": np.array([p.w for p in instances], dtype=np.float64),
        "target": np.array([p.target for p in instances], dtype=np.float64),
        "lr": np.array([p.lr for p in instances], dtype=np.float64),
    }


# The instance of the original homework (HW2.md, part 2).
HW2 = Params(
    x=np.array([1.0, 1.5, -0.5]),
    v=np.array([[-1.0, 2.0, 0.0], [0.5, -1.0, 1.0], [1.5, 2.0, -0.4], [0.2, 0.1, 0.3]]),
    w=np.array([[1.0, 1.0, 0.5, 0.5], [0.3, 0.4, 0.5, 0.1]]),
    target=np.array([1.0, 0.0]),
    lr=0.1,
    activation="elu",
)

