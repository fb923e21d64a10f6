"""The optimiser and the train step: one member's step, ``jit(vmap(...))`` over the member axis.

Batches are gathered on device from a replicated data dict with per-member index arrays, so a
step of all K members is a single dispatch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from experiments.core.cli import ConfigError
from experiments.core.training.mesh import member_sharding, replicated

LossFn = Callable[..., tuple[jax.Array, Mapping[str, jax.Array]]]
StepFn = Callable[..., tuple[nnx.State, optax.OptState, jax.Array, Mapping[str, jax.Array]]]

SCHEDULES = ("constant", "cosine")
OPTIMIZER_INPUTS = "optimizer"  # the member inputs that go to ``tx.update``, not to the loss


def make_optimizer(
    learning_rate: float,
    *,
    steps: int,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    snapshot_cycles: int | None = None,
) -> optax.GradientTransformation:
    """Adam (AdamW when ``weight_decay`` > 0) with a ``constant`` or ``cosine`` schedule.

    With ``snapshot_cycles`` M, the members whose optimizer input ``snapshot`` is true follow a
    snapshot run's cyclic cosine schedule of M cycles instead, and every member's parameters at
    the cycles' ends are kept in the optimizer state (:mod:`.snapshots`; the others' updates are
    those of the optimizer without it)."""
    if schedule == "constant":
        lr: float | optax.Schedule = learning_rate
        if warmup_steps:
            lr = optax.linear_schedule(0.0, learning_rate, warmup_steps)
    elif schedule == "cosine":
        lr = optax.warmup_cosine_decay_schedule(
            0.0 if warmup_steps else learning_rate,
            learning_rate,
            warmup_steps,
            max(steps, warmup_steps + 1),
        )
    else:
        raise ConfigError(f"unknown schedule {schedule!r}; expected one of {list(SCHEDULES)}")
    if snapshot_cycles is None:
        if weight_decay:
            return optax.adamw(lr, weight_decay=weight_decay)
        return optax.adam(lr)
    from experiments.core.training import snapshots

    base = lr if callable(lr) else optax.constant_schedule(lr)
    cyclic = snapshots.cyclic_cosine(learning_rate, steps=steps, cycles=snapshot_cycles)
    return optax.chain(
        optax.scale_by_adam(),
        optax.add_decayed_weights(weight_decay) if weight_decay else optax.identity(),
        snapshots.member_schedule(base, cyclic),
        snapshots.keep_snapshots(steps=steps, cycles=snapshot_cycles),
    )


def init_opt_state(
    tx: optax.GradientTransformation, params: nnx.State, mesh: Mesh
) -> optax.OptState:
    """``tx.init`` vmapped over the member axis (each member has its own moments and count)."""
    return jax.jit(jax.vmap(tx.init), out_shardings=member_sharding(mesh))(params)


def gather_batch(data: Mapping[str, jax.Array], indices: jax.Array) -> dict[str, jax.Array]:
    """Default batch builder: rows ``indices`` of every array in ``data``, plus an all-True mask."""
    batch = {k: jnp.take(v, indices, axis=0) for k, v in data.items()}
    batch["mask"] = jnp.ones(indices.shape, bool)
    return batch


def make_member_step(
    loss_fn: LossFn,
    tx: optax.GradientTransformation,
    make_batch: Callable[..., Mapping[str, jax.Array]] = gather_batch,
) -> StepFn:
    """One optimisation step of ONE member (un-jitted, un-vmapped).

    ``step(params, opt_state, data, indices, member_inputs, step) -> (params, opt_state, loss,
    aux)`` where ``loss_fn(params, batch, step) -> (loss, aux)`` (an entjax objective) and
    ``batch = {**make_batch(data, indices), **member_inputs}`` (``member_inputs`` carries per-member
    values such as a regularisation weight; ``{}`` when there are none). Its ``"optimizer"``
    entry, a dict, goes to ``tx.update`` as optax's extra keyword arguments instead (a
    per-member optimizer setting, e.g. which members follow a snapshot run's cyclic schedule:
    :func:`experiments.core.training.snapshots.member_schedule`).
    """
    tx = optax.with_extra_args_support(tx)

    def step_fn(params, opt_state, data, indices, member_inputs, step):
        extra = dict(member_inputs.get(OPTIMIZER_INPUTS, {}))
        inputs = {k: v for k, v in member_inputs.items() if k != OPTIMIZER_INPUTS}
        batch = {**make_batch(data, indices), **inputs}
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, step)
        updates, opt_state = tx.update(grads, opt_state, params, **extra)
        return optax.apply_updates(params, updates), opt_state, loss, aux

    return step_fn


def make_train_step(
    loss_fn: LossFn,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    make_batch: Callable[..., Mapping[str, jax.Array]] = gather_batch,
    *,
    donate: bool = True,
) -> StepFn:
    """All members' step in one compiled call: ``jit(vmap(member_step))``, member axis sharded.

    Signature ``(params, opt_state, data, indices, member_inputs, step)``: ``params``,
    ``opt_state``, ``indices`` ``(K, batch)`` and ``member_inputs`` carry the member axis;
    ``data`` (replicated) and ``step`` are shared. Returns stacked params, opt states, losses
    ``(K,)`` and aux ``{name: (K,)}``.
    """
    vstep = jax.vmap(make_member_step(loss_fn, tx, make_batch), in_axes=(0, 0, None, 0, 0, None))
    ms, rep = member_sharding(mesh), replicated(mesh)
    return jax.jit(
        vstep,
        in_shardings=(ms, ms, rep, ms, ms, rep),
        out_shardings=ms,
        donate_argnums=(0, 1) if donate else (),
    )
