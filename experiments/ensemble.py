"""Training core: K Flax NNX members trained together in one jitted, vmapped, sharded step.

The pieces, each reusable on its own:

* :func:`make_mesh` — a 1-D :class:`jax.sharding.Mesh` with an ``"ensemble"`` axis over all
  devices; the member axis of parameters, optimizer states and batches is sharded over it
  (``P("ensemble")``), so the same code runs on 1 CPU, 8 GPUs or a TPU slice.
* :func:`init_ensemble` — ``nnx.split`` once (on an abstract model) for the graph definition, then
  ``jax.vmap`` over K PRNG keys to create K independent parameter states, stacked on axis 0.
* :func:`make_member_step` / :func:`make_train_step` — one optimisation step for one member, and
  its ``jax.jit(jax.vmap(...))`` over the member axis. Batches are gathered on device from a
  replicated data dict with per-member index arrays, so a step is a single dispatch.
* :func:`train` — the loop: progress bar with live loss, periodic orbax checkpoints of params,
  optimizer state, step and loss history, ``resume``. The data order is a pure function of
  ``(seed, step)`` (see :func:`experiments.data.batch_indices`), so a resumed run is bitwise
  identical to an uninterrupted one.
* :func:`make_eval_fn` — vmapped forward pass of all members on shared inputs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "ensemble"

PyTree = Any
LossFn = Callable[..., tuple[jax.Array, Mapping[str, jax.Array]]]


# --------------------------------------------------------------------------- devices


class ConfigError(ValueError):
    """An invalid run configuration (scripts print its message and exit with status 2)."""


def maybe_initialize_distributed(force: bool = False) -> bool:
    """Call :func:`jax.distributed.initialize` when launched multi-host.

    Multi-host means ``force`` (the scripts' ``--distributed`` flag) or the environment variable
    ``JAX_COORDINATOR_ADDRESS`` is set; on a single host this is a no-op. On TPU pods and SLURM
    clusters ``jax.distributed.initialize()`` discovers the coordinator itself, so pass ``force``.
    Must run before any other JAX call. Returns whether it initialised.
    """
    address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if not (force or address):
        return False
    kwargs: dict[str, Any] = {}
    if address:
        kwargs["coordinator_address"] = address
        if "JAX_NUM_PROCESSES" in os.environ:
            kwargs["num_processes"] = int(os.environ["JAX_NUM_PROCESSES"])
        if "JAX_PROCESS_ID" in os.environ:
            kwargs["process_id"] = int(os.environ["JAX_PROCESS_ID"])
    jax.distributed.initialize(**kwargs)
    return True


def make_mesh(num_members: int, devices: list[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``"ensemble"`` over ``devices`` (default: all devices, all hosts).

    Raises:
      ConfigError: (a ValueError) if ``num_members`` is not a positive multiple of the number
        of devices (each device must hold the same number of members).
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if num_members < 1 or num_members % n:
        raise ConfigError(
            f"the number of ensemble members ({num_members}) must be a positive multiple of the "
            f"number of devices ({n}) so the member axis can be sharded evenly; use "
            f"--members {max(n, n * round(max(num_members, 1) / n))} or fewer devices "
            "(e.g. CUDA_VISIBLE_DEVICES / XLA_FLAGS=--xla_force_host_platform_device_count)"
        )
    return Mesh(np.asarray(devices), (AXIS,))


def member_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of arrays with a leading member axis: split over the ``"ensemble"`` mesh axis."""
    return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding of arrays every member reads (data, step counters): a full copy per device."""
    return NamedSharding(mesh, P())


def to_host(tree: PyTree) -> PyTree:
    """Fetch arrays (possibly spread over hosts) to numpy on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


# --------------------------------------------------------------------------- models


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

    ``loss_fn(params, batch, step=...) -> (loss, {"ce": loss})`` with ``batch[image_key]``,
    ``batch["label"]`` (int) and ``batch["mask"]`` (masked mean over the batch).
    """
    import entjax

    def apply_fn(params: nnx.State, batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        return {"logits": ensemble.apply(params, batch[image_key])}

    ce = entjax.term(entjax.softmax_cross_entropy_with_integer_labels, "logits", "label")
    return entjax.make_objective(apply_fn, {"ce": ce}, mask="mask", reduction="mean")


# --------------------------------------------------------------------------- optimisation


def make_optimizer(
    learning_rate: float,
    *,
    steps: int,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """Adam (AdamW when ``weight_decay`` > 0) with a ``constant`` or ``cosine`` schedule."""
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
        raise ValueError(f"unknown schedule {schedule!r}; expected 'constant' or 'cosine'")
    if weight_decay:
        return optax.adamw(lr, weight_decay=weight_decay)
    return optax.adam(lr)


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
) -> Callable[..., tuple[nnx.State, optax.OptState, jax.Array, Mapping[str, jax.Array]]]:
    """One optimisation step of ONE member (un-jitted, un-vmapped).

    ``step(params, opt_state, data, indices, member_inputs, step) -> (params, opt_state, loss,
    aux)`` where ``loss_fn(params, batch, step=step) -> (loss, aux)`` (an entjax objective) and
    ``batch = {**make_batch(data, indices), **member_inputs}`` (``member_inputs`` carries per-member
    values such as a regularisation weight; pass ``{}`` when there are none).
    """

    def step_fn(params, opt_state, data, indices, member_inputs, step):
        batch = {**make_batch(data, indices), **member_inputs}
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, step=step)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, aux

    return step_fn


def make_train_step(
    loss_fn: LossFn,
    tx: optax.GradientTransformation,
    mesh: Mesh,
    make_batch: Callable[..., Mapping[str, jax.Array]] = gather_batch,
    *,
    donate: bool = True,
) -> Callable[..., tuple[nnx.State, optax.OptState, jax.Array, Mapping[str, jax.Array]]]:
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


def make_eval_fn(
    apply_fn: Callable[[nnx.State, jax.Array], jax.Array], mesh: Mesh
) -> Callable[[nnx.State, jax.Array], jax.Array]:
    """``(stacked_params, x) -> (K, n, ...)``: every member's output on the same inputs."""
    return jax.jit(
        jax.vmap(apply_fn, in_axes=(0, None)),
        in_shardings=(member_sharding(mesh), replicated(mesh)),
        out_shardings=member_sharding(mesh),
    )


def predict(
    eval_fn: Callable[[nnx.State, jax.Array], jax.Array],
    params: nnx.State,
    x: np.ndarray,
    mesh: Mesh,
    *,
    chunk: int = 4096,
) -> np.ndarray:
    """Host array ``(K, n, ...)`` of ``eval_fn`` on ``x``, in fixed-size chunks (one compile)."""
    n = len(x)
    size = min(chunk, n)
    outs = []
    for start in range(0, n, size):
        part = x[start : start + size]
        pad = size - len(part)
        if pad:
            part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
        out = eval_fn(params, jax.device_put(part, replicated(mesh)))
        outs.append(np.asarray(to_host(out))[:, : size - pad])
    return np.concatenate(outs, axis=1)


# --------------------------------------------------------------------------- loop


@dataclasses.dataclass
class TrainResult:
    params: nnx.State
    opt_state: optax.OptState
    loss_history: np.ndarray  # (steps, K) float32, per-step per-member training loss
    completed_steps: int
    resumed_from_step: int | None
    stopped_early: bool


def _checkpoint_manager(directory: str, keep: int):
    import orbax.checkpoint as ocp

    return ocp.CheckpointManager(
        os.path.abspath(directory),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False),
    )


def train(
    *,
    step_fn: Callable[..., tuple[nnx.State, optax.OptState, jax.Array, Mapping[str, jax.Array]]],
    params: nnx.State,
    opt_state: optax.OptState,
    data: Mapping[str, np.ndarray],
    indices_fn: Callable[[int], np.ndarray],
    num_steps: int,
    mesh: Mesh,
    member_inputs: Mapping[str, np.ndarray] | None = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    run_config: Mapping[str, Any] | None = None,
    stop_after_step: int | None = None,
    progress: bool = True,
    log_every: int = 25,
    description: str = "train",
) -> TrainResult:
    """Run ``num_steps`` steps of ``step_fn`` with checkpoints, resume and a progress bar.

    ``indices_fn(step) -> (K, batch)`` int indices into ``data`` must be a pure function of the
    step (and the run's seed) — that is what makes ``resume`` exact. Checkpoints (every
    ``checkpoint_every`` steps and at the end) hold params, opt state, step and the loss history;
    ``run_config`` is stored next to them and a resume with a different config is refused.
    ``stop_after_step`` simulates an interruption: training stops after that many steps, without
    a final checkpoint (tests use it to kill and resume).
    """
    from tqdm.auto import tqdm

    ms, rep = member_sharding(mesh), replicated(mesh)
    num_members = int(jax.tree.leaves(params)[0].shape[0])
    history = np.full((num_steps, num_members), np.nan, np.float32)
    member_inputs = jax.device_put(dict(member_inputs or {}), ms)
    data_dev = jax.device_put(dict(data), rep)
    start, resumed_from = 0, None

    mngr = None
    if checkpoint_dir is not None and (checkpoint_every > 0 or resume):
        import orbax.checkpoint as ocp

        config_path = os.path.join(checkpoint_dir, "run_config.json")
        config_text = json.dumps(run_config or {}, sort_keys=True, indent=1)
        if resume and os.path.isdir(checkpoint_dir):
            if os.path.exists(config_path):
                with open(config_path) as f:
                    saved = f.read()
                if saved != config_text:
                    raise ConfigError(
                        f"cannot resume: the checkpoint in {checkpoint_dir} was written with a "
                        f"different configuration.\nsaved: {saved}\nnow:   {config_text}"
                    )
        elif os.path.isdir(checkpoint_dir):
            shutil.rmtree(checkpoint_dir)  # a fresh run never mixes with old checkpoints
        os.makedirs(checkpoint_dir, exist_ok=True)
        if jax.process_index() == 0:
            with open(config_path, "w") as f:
                f.write(config_text)
        mngr = _checkpoint_manager(checkpoint_dir, keep=2)
        latest = mngr.latest_step() if resume else None
        if latest is not None:
            target = {
                "params": params,
                "opt_state": opt_state,
                "step": np.asarray(0, np.int64),
                "loss_history": history,
            }
            abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
            restored = mngr.restore(latest, args=ocp.args.StandardRestore(abstract))
            params = jax.device_put(restored["params"], ms)
            opt_state = jax.device_put(restored["opt_state"], ms)
            history = np.array(restored["loss_history"], np.float32)
            start = resumed_from = int(restored["step"])

    def save(step: int) -> None:
        if mngr is None:
            return
        import orbax.checkpoint as ocp

        state = {
            "params": params,
            "opt_state": opt_state,
            "step": np.asarray(step, np.int64),
            "loss_history": history,
        }
        mngr.save(step, args=ocp.args.StandardSave(state), force=True)
        mngr.wait_until_finished()

    end = num_steps if stop_after_step is None else min(num_steps, stop_after_step)
    bar = tqdm(
        total=num_steps,
        initial=start,
        desc=description,
        disable=not (progress and sys.stderr.isatty()),
        dynamic_ncols=True,
    )
    pending: list[tuple[int, jax.Array]] = []

    def flush() -> None:
        for s, loss in pending:
            history[s] = np.asarray(to_host(loss))
        pending.clear()

    step_array = lambda s: jax.device_put(np.asarray(s, np.int32), rep)
    for step in range(start, end):
        idx = jax.device_put(np.asarray(indices_fn(step), np.int32), ms)
        params, opt_state, loss, _ = step_fn(
            params, opt_state, data_dev, idx, member_inputs, step_array(step)
        )
        pending.append((step, loss))
        done = step + 1
        if done % log_every == 0 or done == end:
            flush()
            bar.set_postfix(loss=f"{float(np.mean(history[step])):.4f}", refresh=False)
        bar.update(1)
        if checkpoint_every and done % checkpoint_every == 0 and done < num_steps:
            flush()
            save(done)
    bar.close()
    flush()
    stopped = end < num_steps
    if not stopped and mngr is not None:
        save(num_steps)
    if mngr is not None:
        mngr.close()
    return TrainResult(
        params=params,
        opt_state=opt_state,
        loss_history=history,
        completed_steps=end,
        resumed_from_step=resumed_from,
        stopped_early=stopped,
    )
