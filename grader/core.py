"""The batched backpropagation core: forward pass, backward pass, one gradient-descent step.

Every array carries a leading batch axis N, so a whole class is solved in one call and a
single instance is a batch of one. Sizes follow the arrays (3-4-2 in HW#2):

    x (N, I)   input                  v (N, J, I)  input -> hidden weights
    w (N, K, J) hidden -> output      target (N, K) one-hot o*     lr (N,)

The network has no biases, as in the problem:

    u = v x          h = f(u)          z = w h          o = softmax(z)
    L = -sum_k o*_k log o_k
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

# The answer keys, in the order the problem asks for them; shared by JSON output, keys and grading.
ANSWER_KEYS = ("u", "h", "z", "o", "loss", "grad_w", "grad_v", "w_new", "v_new")

LEAKY_RELU_SLOPE = 0.01  # the slope PyTorch and JAX use by default


@dataclass(frozen=True)
class Activation:
    """A hidden-layer activation f and its derivative f', both elementwise."""

    name: str
    f: Callable[[np.ndarray], np.ndarray]
    df: Callable[[np.ndarray], np.ndarray]
    # f'(u) written with h = f(u), as it is often computed by hand (ELU: h + 1 for u < 0;
    # sigmoid: h (1 - h); tanh: 1 - h^2); None where f' has no such form.
    df_from_h: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def _elu(u):
    # expm1 on min(u, 0) so the unused branch never overflows for large positive u.
    return np.where(u >= 0, u, np.expm1(np.minimum(u, 0.0)))


def _elu_prime(u):
    # The problem's convention: ELU'(u) = 1 for u >= 0, e^u for u < 0.
    return np.where(u >= 0, 1.0, np.exp(np.minimum(u, 0.0)))


def _sigmoid(u):
    # tanh form: exact for both signs and never overflows.
    return 0.5 * (1.0 + np.tanh(0.5 * u))


def _sigmoid_prime(u):
    s = _sigmoid(u)
    return s * (1.0 - s)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("elu", _elu, _elu_prime, lambda u, h: np.where(u >= 0, 1.0, h + 1.0)),
        # At u = 0 ReLU and leaky ReLU take the left derivative, as PyTorch and JAX do.
        Activation("relu", lambda u: np.maximum(u, 0.0), lambda u: np.where(u > 0, 1.0, 0.0)),
        Activation(
            "leaky_relu",
            lambda u: np.where(u > 0, u, LEAKY_RELU_SLOPE * u),
            lambda u: np.where(u > 0, 1.0, LEAKY_RELU_SLOPE),
        ),
        Activation("sigmoid", _sigmoid, _sigmoid_prime, lambda u, h: h * (1.0 - h)),
        Activation("tanh", np.tanh, lambda u: 1.0 - np.tanh(u) ** 2, lambda u, h: 1.0 - h**2),
    )
}


def log_softmax(z):
    """log o_k for z (N, K), shifted by max z so that |z| up to 1e300 neither overflows nor NaNs."""
    shifted = z - z.max(axis=-1, keepdims=True)  # (N, K), every entry <= 0
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(z):
    """o = softmax(z) along the last axis, stably."""
    return np.exp(log_softmax(z))


@dataclass(frozen=True)
class Solution:
    """Every quantity the problem asks for, each with the leading batch axis N.

    Fields are named as in the problem and as the JSON answer keys (see ``ANSWER_KEYS``).
    """

    u: np.ndarray  # (N, J)    hidden pre-activation, u_j = sum_i v_ji x_i
    h: np.ndarray  # (N, J)    hidden output, h_j = f(u_j)
    z: np.ndarray  # (N, K)    output pre-activation, z_k = sum_j w_kj h_j
    o: np.ndarray  # (N, K)    softmax output
    loss: np.ndarray  # (N,)   cross-entropy with the natural log
    grad_w: np.ndarray  # (N, K, J)  dL/dw
    grad_v: np.ndarray  # (N, J, I)  dL/dv
    w_new: np.ndarray  # (N, K, J)   w - lr dL/dw
    v_new: np.ndarray  # (N, J, I)   v - lr dL/dv
    # The steps in between, which an answer key shows on the way to the gradients.
    dz: np.ndarray  # (N, K)   dL/dz_k = o_k - o*_k
    dh: np.ndarray  # (N, J)   dL/dh_j = sum_k dL/dz_k w_kj
    df: np.ndarray  # (N, J)   f'(u_j)

    def __len__(self) -> int:
        return self.loss.shape[0]

    def item(self, n: int) -> dict[str, np.ndarray]:
        """Instance n's quantities, without the batch axis, keyed as ``ANSWER_KEYS``."""
        return {key: getattr(self, key)[n] for key in ANSWER_KEYS}


def solve(x, v, w, target, lr, activation: str = "elu", round_each_step=None) -> Solution:
    """Forward pass, backward pass and one gradient-descent step for a batch of instances.

    ``round_each_step`` (an elementwise function, optional) is applied to every intermediate
    result before it is used, to mimic a student who rounds as they go by hand.
    """
    x, v, w, target = (np.asarray(a, dtype=np.float64) for a in (x, v, w, target))
    lr = np.broadcast_to(np.asarray(lr, dtype=np.float64), x.shape[:1])  # (N,)
    act = ACTIVATIONS[activation]
    r = round_each_step or (lambda a: a)

    # Forward.
    u = r(np.einsum("nji,ni->nj", v, x))  # (N, J)
    h = r(act.f(u))  # (N, J)
    z = r(np.einsum("nkj,nj->nk", w, h))  # (N, K)
    if round_each_step is None:
        log_o = log_softmax(z)  # (N, K)
        o = np.exp(log_o)  # (N, K)
    else:  # by hand the loss is taken from the rounded o
        o = r(softmax(z))
        log_o = np.log(o)
    loss = r(-(target * log_o).sum(axis=-1))  # (N,)

    # Backward: the chain rule, one link per line.
    dz = o - target  # (N, K)     dL/dz_k = o_k - o*_k   (softmax + cross-entropy)
    grad_w = r(dz[:, :, None] * h[:, None, :])  # (N, K, J)  dL/dw_kj = dL/dz_k h_j
    dh = r(np.einsum("nk,nkj->nj", dz, w))  # (N, J)     dL/dh_j = sum_k dL/dz_k w_kj
    df = r(act.df(u))  # (N, J)     f'(u_j)
    du = dh * df  # (N, J)     dL/du_j = dL/dh_j f'(u_j)
    grad_v = r(du[:, :, None] * x[:, None, :])  # (N, J, I)  dL/dv_ji = dL/du_j x_i

    # One step of gradient descent.
    w_new = r(w - lr[:, None, None] * grad_w)  # (N, K, J)
    v_new = r(v - lr[:, None, None] * grad_v)  # (N, J, I)
    return Solution(u, h, z, o, loss, grad_w, grad_v, w_new, v_new, dz, dh, df)


def round_significant(figures: int):
    """An elementwise rounding to ``figures`` significant figures, for ``round_each_step``."""

    def rounding(a):
        a = np.asarray(a, dtype=np.float64)
        magnitude = np.abs(a)
        exponent = np.floor(np.log10(np.where(magnitude > 0, magnitude, 1.0)))
        scale = 10.0 ** (figures - 1 - exponent)
        return np.round(a * scale) / scale

    return rounding


def round_decimals(places: int):
    """An elementwise rounding to ``places`` decimal places, for ``round_each_step``."""
    return lambda a: np.round(a, places)
