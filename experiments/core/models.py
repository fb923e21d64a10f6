"""Flax NNX models for 8×8×1 digit images, chosen by name with :func:`build_model`.

Models hold only parameters (no batch statistics or dropout state), so a model is fully described
by ``nnx.split(model) -> (graphdef, params)`` and applying it is a pure function of the params;
that is what lets :mod:`experiments.core.training` stack K members along a leading axis.

Dropout (Srivastava et al. 2014; MC dropout, Gal & Ghahramani 2016) is an argument of the forward
pass, ``model(x, dropout=hook)`` with a :func:`dropout` hook, applied to the inputs of the dense
layers (the MLP's hidden units; the CNN's conv channels and dense units). A test-time pass with
one dropout mask per unit for all inputs is the same network with the following layer's weight
rows scaled by ``mask / (1 − p)``: :meth:`MLP.thinned` / :meth:`CNN.thinned` build it, so the
passes of MC dropout are ordinary deterministic members.

Both models expose ``features(x)``: the list of hidden activations, last element the logits,
for experiments that measure representations (e.g. information-plane estimates).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
}

# ``hook(h, layer, mask_shape) -> h``: dropout of the activations ``h`` entering dense layer number
# ``layer``, one keep/drop draw per element of ``mask_shape`` (broadcast against ``h``).
DropoutHook = Callable[[jax.Array, int, tuple[int, ...]], jax.Array]


def dropout(key: jax.Array, rate: jax.Array | float) -> DropoutHook:
    """Inverted dropout at ``rate`` (a traced per-member value is fine): keep each unit with
    probability ``1 − rate`` and scale the kept ones by ``1 / (1 − rate)``. At ``rate = 0`` it
    keeps every unit and divides by 1, so values and gradients are exactly unchanged."""

    def hook(h: jax.Array, layer: int, mask_shape: tuple[int, ...]) -> jax.Array:
        keep = jax.random.bernoulli(jax.random.fold_in(key, layer), 1.0 - rate, mask_shape)
        return jnp.where(keep, h / (1.0 - rate), jnp.zeros((), h.dtype))

    return hook


def _scale_rows(layer: nnx.Linear, scale: jax.Array) -> None:
    """Multiply the input rows of ``layer``'s kernel ``(in, out)`` by ``scale`` ``(in,)``."""
    layer.kernel[...] = layer.kernel[...] * scale[:, None]


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

    def features(self, x: jax.Array, *, dropout: DropoutHook | None = None) -> list[jax.Array]:
        act = ACTIVATIONS[self.activation]
        h = x.reshape(*x.shape[:-3], -1)
        outs = []
        for i, layer in enumerate(self.hidden):
            h = act(layer(h))
            outs.append(h)
            if dropout is not None:  # the hidden units, before the next dense layer
                h = dropout(h, i, h.shape)
        outs.append(self.head(h))
        return outs

    def __call__(self, x: jax.Array, *, dropout: DropoutHook | None = None) -> jax.Array:
        return self.features(x, dropout=dropout)[-1]

    def dropout_units(self) -> list[int]:
        """The number of units of each dropout layer (the ``masks`` of :meth:`thinned`)."""
        return [layer.out_features for layer in self.hidden]

    def thinned(self, masks: Sequence[jax.Array], rate: float) -> None:
        """Make this model the network one dropout mask per unit (``masks``, 0/1, one per
        :meth:`dropout_units` layer) gives: scale the next layer's rows by ``mask / (1 − rate)``."""
        following = [*self.hidden[1:], self.head]
        for layer, mask in zip(following, masks, strict=True):
            _scale_rows(layer, mask / (1.0 - rate))


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

    def features(self, x: jax.Array, *, dropout: DropoutHook | None = None) -> list[jax.Array]:
        act = ACTIVATIONS[self.activation]
        h1 = act(self.conv1(x))
        h2 = act(self.conv2(h1))
        flat = h2
        if dropout is not None:  # whole channels (spatial dropout), before the dense layer
            flat = dropout(h2, 0, (*h2.shape[:-3], 1, 1, h2.shape[-1]))
        h3 = act(self.dense(flat.reshape(*h2.shape[:-3], -1)))
        top = h3 if dropout is None else dropout(h3, 1, h3.shape)
        return [h1, h2, h3, self.head(top)]

    def __call__(self, x: jax.Array, *, dropout: DropoutHook | None = None) -> jax.Array:
        return self.features(x, dropout=dropout)[-1]

    def dropout_units(self) -> list[int]:
        """The units of each dropout layer: conv2's channels, then the dense layer's units."""
        return [self.conv2.out_features, self.dense.out_features]

    def thinned(self, masks: Sequence[jax.Array], rate: float) -> None:
        """Make this model the network one dropout mask per unit gives (:meth:`MLP.thinned`):
        the dense kernel's rows of a dropped channel (every position) and the head's rows."""
        channels, units = (m / (1.0 - rate) for m in masks)
        kernel = self.dense.kernel[...]  # (H·W·C, out), NHWC flattened: channel fastest
        c = channels.shape[0]
        scaled = kernel.reshape(-1, c, kernel.shape[-1]) * channels[None, :, None]
        self.dense.kernel[...] = scaled.reshape(kernel.shape)
        _scale_rows(self.head, units)


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
