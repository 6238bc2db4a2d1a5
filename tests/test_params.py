"""Parameters JSON: what is accepted, and the one-line reason for what is not."""

from __future__ import annotations

import json

import numpy as np
import pytest

from grader.jsonio import InputError, loads_strict
from grader.params import HW2, Params


def hw2_json(**changes):
    obj = HW2.to_json()
    obj.update(changes)
    return obj


def test_hw2_round_trips_through_json():
    again = Params.from_json(json.loads(json.dumps(HW2.to_json())))
    for key in ("x", "v", "w", "target"):
        np.testing.assert_array_equal(getattr(again, key), getattr(HW2, key))
    assert (again.lr, again.activation) == (HW2.lr, HW2.activation)


def test_activation_defaults_to_elu():
    obj = hw2_json()
    del obj["activation"]
    assert Params.from_json(obj).activation == "elu"


def test_integers_are_accepted_as_numbers():
    assert Params.from_json(hw2_json(x=[1, 2, -1])).x.dtype == np.float64


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"x": [1.0, 1.5]}, "v: has 3 columns but x has 2 entries; v must be (hidden, inputs)"),
        ({"w": [[1.0, 1.0, 0.5], [0.3, 0.4, 0.5]]}, "w: has 3 columns but v has 4 rows; w must be (outputs, hidden)"),
        ({"target": [1, 0, 0]}, "target: has 3 entries but w has 2 rows (outputs)"),
        ({"target": [1, 1]}, "target: must be one-hot: a single 1 and 0 elsewhere"),
        ({"target": [0.5, 0.5]}, "target: must be one-hot: a single 1 and 0 elsewhere"),
        ({"activation": "softplus"}, "activation: must be one of elu, relu, leaky_relu, sigmoid, tanh; got 'softplus'"),
        ({"lr": 0}, "lr: must be a positive number"),
        ({"lr": "0.1"}, "lr: expected a number, got a string"),
        ({"x": [1.0, True, 0.5]}, "x[1]: expected a number, got a boolean"),
        ({"v": [[1.0, 2.0, 0.0], [0.5, -1.0], [1.5, 2.0, -0.4], [0.2, 0.1, 0.3]]}, "v: is ragged: its rows have different lengths"),
        ({"x": [[1.0, 1.5, -0.5]]}, "x: expected a list of numbers, got 2 levels of nesting"),
        ({"v": None}, "v: expected a number, got null"),
        ({"x": []}, "x: is an empty list"),
    ],
)
def test_bad_parameters_name_the_field(changes, message):
    with pytest.raises(InputError) as info:
        Params.from_json(hw2_json(**changes))
    assert str(info.value) == message


def test_missing_key_is_named():
    obj = hw2_json()
    del obj["w"]
    with pytest.raises(InputError, match="^w: is missing$"):
        Params.from_json(obj)


def test_unknown_keys_are_warned_about_not_fatal():
    warnings = []
    Params.from_json(hw2_json(activaton="relu"), warn=warnings.append)
    assert warnings == ["ignoring unknown parameter keys: activaton"]


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"x": NaN}', "x: NaN is not a number JSON allows; write a finite number"),
        ('{"x": -Infinity}', "x: -Infinity is not a number JSON allows; write a finite number"),
        ('{"x": 1e999}', "x: 1e999 is too large to be a finite number"),
        ('{"x": 1, "x": 2}', "x: appears twice in the same object; keep one"),
        ('{"x": [1, 2', "not valid JSON: Expecting ',' delimiter at line 1 column 12"),
        ("[" * 100 + "]" * 100, "arrays or objects nest deeper than 32 levels"),
    ],
)
def test_strict_json_refuses_what_is_not_a_finite_number(text, message):
    with pytest.raises(InputError) as info:
        loads_strict(text)
    assert str(info.value) == message


def test_deep_nesting_is_refused_without_recursion_error():
    with pytest.raises(InputError):
        loads_strict("[" * 1_000_000)


def _columns(instances: list[Params]) -> tuple:
    """Instances as a manifest's columns hold them (grading.ManifestParts)."""
    return ([p.activation for p in instances], *(np.array([getattr(p, k) for p in instances], dtype=np.float64) for k in ("x", "v", "w", "target", "lr")))


def test_rows_of_columns_stack_as_their_params_do():
    from grader import variants
    from grader.params import ParamsRow, batch_groups, stack

    instances = variants.variants("seed", [f"s{n}" for n in range(7)])
    rows = [ParamsRow(_columns(instances), n) for n in (3, 0, 6, 6, 2)]
    as_params = [row.params() for row in rows]
    gathered, built = stack(rows), stack(as_params)
    assert all(np.array_equal(gathered[k], built[k]) for k in ("x", "v", "w", "target", "lr"))
    assert batch_groups(rows) == batch_groups(as_params) == {("elu", (3, 4, 2)): [0, 1, 2, 3, 4]}
    mixed = [rows[0], HW2, rows[1]]  # rows and Params together: stacked one by one
    assert np.array_equal(stack(mixed)["v"], np.array([rows[0].v, HW2.v, rows[1].v]))
