"""`hwgen solve` against reverse-mode autodiff: our own scalar one always, PyTorch where installed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings

from grader.cli import cli

from autodiff import gradients

try:  # PyTorch is an optional cross-check, never a dependency of hwgen
    import torch
except ImportError:
    torch = None
from test_core import as_lists, away_from_kinks, instances

# Both sides are exact float64 computations of the same quantities in a different order.
AUTODIFF_RTOL = 1e-9
AUTODIFF_ATOL = 1e-12


def solve_via_cli(inst) -> dict:
    params = {
        "x": inst["x"][0].tolist(),
        "v": inst["v"][0].tolist(),
        "w": inst["w"][0].tolist(),
        "target": inst["target"][0].tolist(),
        "lr": 0.1,
        "activation": inst["activation"],
    }
    result = CliRunner().invoke(cli, ["solve", "--params", "-", "--format", "json"], input=json.dumps(params))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@settings(max_examples=100, deadline=None)
@given(instances())
def test_solve_agrees_with_scalar_autodiff(inst):
    if not away_from_kinks(inst):
        return  # at a ReLU kink the derivative is a convention, not a fact
    answers = solve_via_cli(inst)
    loss, grad_w, grad_v = gradients(*as_lists(inst), name=inst["activation"])
    assert answers["loss"] == pytest.approx(loss, rel=AUTODIFF_RTOL, abs=AUTODIFF_ATOL)
    np.testing.assert_allclose(answers["grad_w"], grad_w, rtol=AUTODIFF_RTOL, atol=AUTODIFF_ATOL)
    np.testing.assert_allclose(answers["grad_v"], grad_v, rtol=AUTODIFF_RTOL, atol=AUTODIFF_ATOL)


@pytest.mark.skipif(torch is None, reason="PyTorch is not installed (an optional cross-check)")
@settings(max_examples=100, deadline=None)
@given(instances())
def test_solve_agrees_with_torch_autograd(inst):
    answers = solve_via_cli(inst)
    x = torch.tensor(inst["x"][0], dtype=torch.float64)
    v = torch.tensor(inst["v"][0], dtype=torch.float64, requires_grad=True)
    w = torch.tensor(inst["w"][0], dtype=torch.float64, requires_grad=True)
    target = torch.tensor(inst["target"][0], dtype=torch.float64)
    act = {
        "elu": torch.nn.functional.elu,
        "relu": torch.relu,
        "leaky_relu": torch.nn.functional.leaky_relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
    }[inst["activation"]]
    u = v @ x
    h = act(u)
    z = w @ h
    loss = -(target * torch.log_softmax(z, dim=0)).sum()
    loss.backward()
    for key, value in {"u": u, "h": h, "z": z, "o": torch.softmax(z, dim=0), "loss": loss}.items():
        np.testing.assert_allclose(answers[key], value.detach().numpy(), rtol=AUTODIFF_RTOL, atol=AUTODIFF_ATOL)
    np.testing.assert_allclose(answers["grad_w"], w.grad.numpy(), rtol=AUTODIFF_RTOL, atol=AUTODIFF_ATOL)
    np.testing.assert_allclose(answers["grad_v"], v.grad.numpy(), rtol=AUTODIFF_RTOL, atol=AUTODIFF_ATOL)
    with torch.no_grad():
        np.testing.assert_allclose(answers["w_new"], (w - 0.1 * w.grad).numpy(), rtol=AUTODIFF_RTOL, atol=AUTODIFF_ATOL)
        np.testing.assert_allclose(answers["v_new"], (v - 0.1 * v.grad).numpy(), rtol=AUTODIFF_RTOL, atol=AUTODIFF_ATOL)
