"""A scalar reverse-mode autodiff in the style of micrograd: an independent check of the core.

It knows nothing of backpropagation formulas; it differentiates whatever expression the
forward pass builds, so agreeing with it checks the core's hand-derived chain rule.
"""

from __future__ import annotations

import math


class Value:
    """A scalar that remembers how it was computed, to push gradients back through it."""

    def __init__(self, data: float, parents=(), local_grads=()):
        self.data = float(data)
        self.grad = 0.0
        self._parents = parents
        self._local_grads = local_grads  # d(self)/d(parent), one per parent

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    __radd__ = __add__

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)

    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def log(self):
        return Value(math.log(self.data), (self,), (1.0 / self.data,))

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), (1.0 - t * t,))

    def backward(self):
        order, seen = [], set()

        def visit(node):  # iterative would be safer; these graphs are a few hundred nodes deep at most
            if id(node) not in seen:
                seen.add(id(node))
                for parent in node._parents:
                    visit(parent)
                order.append(node)

        visit(self)
        self.grad = 1.0
        for node in reversed(order):
            for parent, local in zip(node._parents, node._local_grads):
                parent.grad += local * node.grad


def activate(name: str, u: Value) -> Value:
    """The hidden activations, built from primitive operations only."""
    if name == "elu":
        return u if u.data >= 0 else u.exp() - 1.0
    if name == "relu":
        return u if u.data > 0 else u * 0.0
    if name == "leaky_relu":
        return u if u.data > 0 else u * 0.01
    if name == "sigmoid":
        return (u * 0.5).tanh() * 0.5 + 0.5
    if name == "tanh":
        return u.tanh()
    raise ValueError(name)


def gradients(x, v, w, target, name="elu"):
    """(loss, dL/dw, dL/dv) of one instance given as nested lists, by reverse-mode autodiff."""
    vv = [[Value(a) for a in row] for row in v]
    ww = [[Value(a) for a in row] for row in w]
    u = [sum((vv[j][i] * x[i] for i in range(len(x))), Value(0.0)) for j in range(len(vv))]
    h = [activate(name, uj) for uj in u]
    z = [sum((ww[k][j] * h[j] for j in range(len(h))), Value(0.0)) for k in range(len(ww))]
    shift = max(zk.data for zk in z)  # a constant: shifting z leaves softmax unchanged
    log_norm = sum(((zk - shift).exp() for zk in z), Value(0.0)).log() + shift
    loss = sum(((zk - log_norm) * (-t) for zk, t in zip(z, target)), Value(0.0))
    loss.backward()
    return loss.data, [[a.grad for a in row] for row in ww], [[a.grad for a in row] for row in vv]
