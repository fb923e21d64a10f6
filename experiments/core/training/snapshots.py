"""Snapshot ensembles (Huang et al. 2017) inside the one vmapped training program.

A snapshot run trains one model with a learning rate that restarts ``M`` times: cycle ``j``
covers steps ``[b_j, b_{j+1})`` with ``b_j = ⌊j·S/M⌋`` and

.. math::

    \\eta(t) = \\frac{\\eta_0}{2}\\left(1 + \\cos\\frac{\\pi (t - b_j)}{b_{j+1} - b_j}\\right),

and the parameters at the end of every cycle (steps ``b_1, …, b_M = S``) are the ``M`` members of
its ensemble: ``M`` models for the training cost of one. Here the snapshot runs are members of the
same vmapped step as the deep ensemble's members, so two optax transformations do the work:

* :func:`member_schedule` scales the updates by ``-η(t)``, the ordinary schedule for most members
  and the cyclic one for the members whose optimizer input ``snapshot`` is true (a per-member
  extra argument of ``tx.update``: :data:`~experiments.core.training.optim.OPTIMIZER_INPUTS`);
* :func:`keep_snapshots` (last in the chain) copies the new parameters into slot ``j`` of a
  buffer in the optimizer state at the end of cycle ``j``, so the snapshots are checkpointed and
  restored with the rest of the state and an interrupted run loses none of them.

:func:`snapshots_of` reads the buffer back: ``(members, M, ...)``.

References:
  Huang, Li, Pleiss, Liu, Hopcroft and Weinberger, "Snapshot Ensembles: Train 1, Get M for
  Free", ICLR 2017. Loshchilov and Hutter, "SGDR: Stochastic Gradient Descent with Warm
  Restarts", ICLR 2017.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax


def cycle_bounds(steps: int, cycles: int) -> np.ndarray:
    """The cycle boundaries ``b_0 = 0 < b_1 < … < b_M = S``, ``b_j = ⌊j·S/M⌋`` (int ``(M+1,)``).

    Raises:
      ValueError: unless ``1 <= cycles <= steps`` (every cycle needs a step).
    """
    if not 1 <= cycles <= steps:
        raise ValueError(f"cycle_bounds: need 1 <= cycles <= steps, got {cycles} and {steps}")
    return np.asarray([(j * steps) // cycles for j in range(cycles + 1)], np.int32)


def cyclic_cosine(peak: float, *, steps: int, cycles: int) -> optax.Schedule:
    """The snapshot learning rate ``η(t)`` above: ``cycles`` cosine decays from ``peak`` to 0
    over ``steps`` steps (``cycles = 1`` is optax's cosine decay to 0)."""
    bounds = jnp.asarray(cycle_bounds(steps, cycles))

    def schedule(count: jax.Array) -> jax.Array:
        j = jnp.clip(jnp.searchsorted(bounds[1:], count, side="right"), 0, cycles - 1)
        start, end = bounds[j], bounds[j + 1]
        phase = (count - start).astype(jnp.float32) / (end - start).astype(jnp.float32)
        return 0.5 * peak * (1.0 + jnp.cos(jnp.pi * phase))

    return schedule


class MemberScheduleState(NamedTuple):
    count: jax.Array


def member_schedule(
    schedule: optax.Schedule, snapshot_schedule: optax.Schedule
) -> optax.GradientTransformationExtraArgs:
    """Scale updates by ``-schedule(t)``, or by ``-snapshot_schedule(t)`` for a member whose
    extra argument ``snapshot`` is true (``optax.scale_by_learning_rate`` otherwise).

    ``tx.update`` must be given ``snapshot=`` (a misspelt or missing optimizer input is a
    ``TypeError``, not a run that silently follows the ordinary schedule)."""

    def init(params: Any) -> MemberScheduleState:
        del params
        return MemberScheduleState(jnp.zeros([], jnp.int32))

    def update(updates, state, params=None, *, snapshot, **extra):
        del params, extra
        step = jnp.where(snapshot, -snapshot_schedule(state.count), -schedule(state.count))
        updates = jax.tree.map(lambda g: jnp.array(step, dtype=g.dtype) * g, updates)
        return updates, MemberScheduleState(optax.safe_int32_increment(state.count))

    return optax.GradientTransformationExtraArgs(init, update)


class SnapshotState(NamedTuple):
    count: jax.Array
    snapshots: Any  # the parameters' pytree, each leaf with a leading cycle axis (M, ...)


def keep_snapshots(*, steps: int, cycles: int) -> optax.GradientTransformation:
    """Keep the parameters after steps ``b_1, …, b_M`` (:func:`cycle_bounds`) in the state.

    Must be the last transformation of a chain: it sees the final updates, forms the new
    parameters ``params + updates`` as ``optax.apply_updates`` does and stores them at a cycle's
    end; the updates pass through unchanged. The buffer costs ``M`` copies of the parameters.
    """
    ends = jnp.asarray(cycle_bounds(steps, cycles)[1:])

    def init(params: Any) -> SnapshotState:
        buffer = jax.tree.map(lambda p: jnp.zeros((cycles, *p.shape), p.dtype), params)
        return SnapshotState(jnp.zeros([], jnp.int32), buffer)

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("keep_snapshots: tx.update needs the parameters (params=...)")
        hit = state.count + 1 == ends
        slot, store = jnp.argmax(hit), jnp.any(hit)
        new = optax.apply_updates(params, updates)
        snapshots = jax.tree.map(
            lambda buf, p: buf.at[slot].set(jnp.where(store, p, buf[slot])), state.snapshots, new
        )
        return updates, SnapshotState(optax.safe_int32_increment(state.count), snapshots)

    return optax.GradientTransformation(init, update)


def snapshots_of(opt_state: Any) -> Any:
    """The snapshot buffer of an optimizer state with a :func:`keep_snapshots` (vmapped over
    members: leaves ``(members, M, ...)``)."""
    found = optax.tree_utils.tree_get(opt_state, "snapshots")
    if found is None:
        raise ValueError("snapshots_of: this optimizer state has no keep_snapshots buffer")
    return found
