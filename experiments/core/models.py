"""Flax NNX models for 8×8×1 digit images, chosen by name with :func:`build_model`.

Models hold only parameters (no dropout or batch statistics), so a model is fully described by
``nnx.split(model) -> (graphdef, params)`` and applying it is a pure function of the params;
that is what lets :mod:`experiments.core.training` stack K members along a leading axis.

Both models expose ``features(x)``: the list of hidden activations, last element the logits,
for experiments that measure representations (e.g. information-plane estimates).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
}


class MLP(nnx.Module):
    """Fully connected classifier: flatten, ``depth`` hidden layers of ``width``, linear logits."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        width: int = 128,
        depth: int = 2,
        activation: str = "relu",
        rngs: nnx.Rngs,
    ):
        sizes = [in_features] + [width] * depth
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)])
        self.head = nnx.Linear(sizes[-1], num_classes, rngs=rngs)
        self.activation = activation

    def features(self, x: jax.Array) -> list[jax.Array]:
        act = ACTIVATIONS[self.activation]
        h = x.reshape(*x.shape[:-3], -1)
        outs = []
        for layer in self.hidden:
            h = act(layer(h))
            outs.append(h)
        outs.append(self.head(h))
        return outs

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.features(x)[-1]


class CNN(nnx.Module):
    """Small CNN: two 3×3 convs (the second with stride 2), a hidden dense layer, logits."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        width: int = 32,
        activation: str = "relu",
        spatial: tuple[int, int] = (8, 8),
        rngs: nnx.Rngs,
    ):
        c1, c2 = max(width // 2, 1), width
        self.conv1 = nnx.Conv(in_channels, c1, (3, 3), padding="SAME", rngs=rngs)
        self.conv2 = nnx.Conv(c1, c2, (3, 3), strides=(2, 2), padding="SAME", rngs=rngs)
        flat = c2 * ((spatial[0] + 1) // 2) * ((spatial[1] + 1) // 2)
        self.dense = nnx.Linear(flat, 2 * width, rngs=rngs)
        self.head = nnx.Linear(2 * width, num_classes, rngs=rngs)
        self.activation = activation

    def features(self, x: jax.Array) -> list[jax.Array]:
        act = ACTIVATIONS[self.activation]
        h1 = act(self.conv1(x))
        h2 = act(self.conv2(h1))
        h3 = act(self.dense(h2.reshape(*h2.shape[:-3], -1)))
        return [h1, h2, h3, self.head(h3)]

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.features(x)[-1]


MODELS = ("mlp", "cnn")


def build_model(
    name: str,
    *,
    num_classes: int,
    rngs: nnx.Rngs,
    width: int | None = None,
    depth: int = 2,
    activation: str = "relu",
    input_shape: tuple[int, int, int] = (8, 8, 1),
) -> nnx.Module:
    """Build ``"mlp"`` (default width 128) or ``"cnn"`` (default width 32) for ``input_shape``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {list(ACTIVATIONS)}")
    if name == "mlp":
        in_features = input_shape[0] * input_shape[1] * input_shape[2]
        return MLP(
            in_features,
            num_classes,
            width=width or 128,
            depth=depth,
            activation=activation,
            rngs=rngs,
        )
    if name == "cnn":
        return CNN(
            input_shape[2],
            num_classes,
            width=width or 32,
            activation=activation,
            spatial=input_shape[:2],
            rngs=rngs,
        )
    raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")
