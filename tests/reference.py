"""An independent reference for the core: plain Python scalars and loops, written from the
problem statement, sharing no code with grader/core.py. Slow and obvious on purpose."""

from __future__ import annotations

import math

LEAKY_SLOPE = 0.01


def act(name: str, u: float) -> float:
    if name == "elu":
        return u if u >= 0 else math.exp(u) - 1
    if name == "relu":
        return max(u, 0.0)
    if name == "leaky_relu":
        return u if u > 0 else LEAKY_SLOPE * u
    if name == "sigmoid":
        return 1 / (1 + math.exp(-u)) if u >= 0 else math.exp(u) / (1 + math.exp(u))
    if name == "tanh":
        return math.tanh(u)
    raise ValueError(name)


def forward_loss(x, v, w, target, name="elu") -> float:
    """L for one instance, from nested lists."""
    u = [sum(v[j][i] * x[i] for i in range(len(x))) for j in range(len(v))]
    h = [act(name, uj) for uj in u]
    z = [sum(w[k][j] * h[j] for j in range(len(h))) for k in range(len(w))]
    top = max(z)
    log_norm = top + math.log(sum(math.exp(zk - top) for zk in z))
    return -sum(t * (zk - log_norm) for t, zk in zip(target, z))


def numeric_gradients(x, v, w, target, name="elu", step=1e-6):
    """dL/dw and dL/dv by central differences, entry by entry."""

    def bumped(matrix, r, c, delta):
        copy = [row[:] for row in matrix]
        copy[r][c] += delta
        return copy

    def diff(loss_at):
        return (loss_at(step) - loss_at(-step)) / (2 * step)

    grad_w = [
        [diff(lambda d: forward_loss(x, v, bumped(w, k, j, d), target, name)) for j in range(len(w[0]))]
        for k in range(len(w))
    ]
    grad_v = [
        [diff(lambda d: forward_loss(x, bumped(v, j, i, d), w, target, name)) for i in range(len(v[0]))]
        for j in range(len(v))
    ]
    return grad_w, grad_v
