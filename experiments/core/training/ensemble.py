"""Stacked NNX init: K members' parameters on one sharded leading axis, and their standard loss.

:func:`init_ensemble` runs ``nnx.split`` once (on an abstract model) for the graph definition,
then ``jax.vmap`` over K PRNG keys to create K independent parameter states stacked on axis 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
from flax import nnx
from jax.sharding import Mesh

from experiments.core.training.mesh import member_sharding
from experiments.core.training.optim import LossFn


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """Graph definition shared by all members and their stacked parameters ``(K, ...)``."""

    graphdef: nnx.GraphDef
    params: nnx.State
    num_members: int

    def module(self, params: nnx.State) -> nnx.Module:
        """Rebuild one member's module from its (unstacked) params; use inside jit/vmap."""
        return nnx.merge(self.graphdef, params)

    def apply(self, params: nnx.State, x: jax.Array) -> jax.Array:
        """One member's forward pass (logits)."""
        return self.module(params)(x)

    def member(self, index: int) -> nnx.State:
        """Member ``index``'s parameters (unstacked)."""
        return jax.tree.map(lambda a: a[index], self.params)


def init_ensemble(
    model_fn: Callable[[nnx.Rngs], nnx.Module], num_members: int, *, seed: int, mesh: Mesh
) -> Ensemble:
    """Initialise ``num_members`` models with independent keys, stacked and sharded on axis 0.

    ``model_fn(rngs)`` builds one model. ``nnx.split`` runs once, on an abstract model
    (``nnx.eval_shape``), for the graph definition; the parameters are created by
    ``jax.vmap`` over ``jax.random.split(jax.random.key(seed), num_members)``.
    """
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: model_fn(nnx.Rngs(0))))

    def init_one(key: jax.Array) -> nnx.State:
        return nnx.state(model_fn(nnx.Rngs(params=key)))

    keys = jax.random.split(jax.random.key(seed), num_members)
    params = jax.jit(jax.vmap(init_one), out_shardings=member_sharding(mesh))(keys)
    return Ensemble(graphdef=graphdef, params=params, num_members=num_members)


def classification_objective(ensemble: Ensemble, *, image_key: str = "image") -> LossFn:
    """Mean softmax cross-entropy of one member, as an entjax objective.

    ``loss_fn(params, batch, step) -> (loss, aux)`` with ``batch[image_key]``,
    ``batch["label"]`` (int) and ``batch["mask"]`` (masked mean over the batch).
    """
    import entjax

    def apply_fn(params: nnx.State, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        return {"logits": ensemble.apply(params, batch[image_key])}

    ce = entjax.term(entjax.softmax_cross_entropy_with_integer_labels, "logits", "label")
    return entjax.make_objective(apply_fn, {"ce": ce}, mask="mask", reduction="mean")
