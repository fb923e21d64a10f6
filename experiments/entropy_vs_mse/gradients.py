"""Part 1: the gradient w.r.t. the true logit at a confidently wrong prediction (no training).

The three losses (also the training losses of part 2), their gradients from ``jax.grad`` in
float64, and the closed forms of the package docstring written out with numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import entjax
from experiments.entropy_vs_mse.config import LOSSES, WRONG_LOGITS


def square_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Square loss on the logits (Hui & Belkin 2021, k = M = 1):
    :math:`\\frac1C \\sum_c (z_c - \\mathbb 1[c = y])^2` per example."""
    one_hot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    return jnp.mean((logits - one_hot) ** 2, axis=-1)


LOSS_FNS = {
    "ce": entjax.softmax_cross_entropy_with_integer_labels,
    "mse": entjax.brier_score,
    "square": square_loss,
}


def _closed_forms(z: np.ndarray) -> dict[str, float]:
    """Gradients w.r.t. the true logit (class 0), written out with numpy in float64."""
    e = np.exp(z - z.max())
    p = e / e.sum()
    return {
        "wrong_prob": float(p[1]),
        "true_prob": float(p[0]),
        "grad_ce_closed_form": float(p[0] - 1.0),
        "grad_mse_closed_form": float(2 * p[0] * (2 * p[0] - 1 - np.sum(p**2))),
        "grad_square_closed_form": float(2.0 * (z[0] - 1.0) / len(z)),
    }


def gradient_table(wrong_logits: Sequence[float], num_classes: int = 10) -> dict[str, list[float]]:
    """CE, Brier and square-loss gradients w.r.t. the true logit (class 0) as the wrong class
    (1) grows, from ``jax.grad`` and in closed form."""
    rows: dict[str, list[float]] = {}
    with jax.enable_x64(True):
        for t in wrong_logits:
            z = jnp.zeros(num_classes, jnp.float64).at[1].set(t)
            row = {"wrong_logit": float(t), **_closed_forms(np.asarray(z))}
            for name in LOSSES:
                fn = lambda z_, f=LOSS_FNS[name]: f(z_, jnp.asarray(0))
                row[name] = float(fn(z))
                row[f"grad_{name}"] = float(jax.grad(fn)(z)[0])
            for key, value in row.items():
                rows.setdefault(key, []).append(value)
    return rows


def gradient_study(num_classes: int) -> dict[str, Any]:
    """:func:`gradient_table` over a range of wrong logits, with its largest error."""
    grads: dict[str, Any] = gradient_table(WRONG_LOGITS, num_classes)
    errors = [
        abs(a - b)
        for kind in LOSSES
        for a, b in zip(grads[f"grad_{kind}"], grads[f"grad_{kind}_closed_form"], strict=True)
    ]
    grads["max_abs_error"] = max(errors)
    return grads
