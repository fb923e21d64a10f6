"""Multi-process plumbing: initialisation, a barrier without a short timeout, host transfers.

On one host every function here is a no-op or a plain ``numpy`` conversion. Multi-host runs
(``jax.distributed.initialize``) train the member axis over the devices of all processes; every
process runs the same program, process 0 alone writes outputs (:mod:`experiments.core.outputs`),
and :func:`barrier` keeps the others from racing ahead to JAX's shutdown barrier (whose timeout
is fixed at initialisation) while process 0 is still computing the statistics (which an
experiment may leave to it) and writing the report and figures.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

BARRIER_TIMEOUT_S = 3600  # waiting for process 0's statistics and outputs, however slow
SHUTDOWN_TIMEOUT_ENV = "ENTJAX_SHUTDOWN_TIMEOUT_S"  # JAX's own default is 300 s


def maybe_initialize(force: bool = False) -> bool:
    """Call :func:`jax.distributed.initialize` when launched multi-host; return whether it did.

    Multi-host means ``force`` (the scripts' ``--distributed`` flag; on TPU pods and SLURM JAX
    discovers the coordinator itself) or ``JAX_COORDINATOR_ADDRESS`` set, with
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` beside it. Must run before any other JAX call.
    ``ENTJAX_SHUTDOWN_TIMEOUT_S`` sets JAX's shutdown-barrier timeout (the tests shorten it).
    Calling it again after a successful initialisation is a no-op.
    """
    address = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if not (force or address) or jax.distributed.is_initialized():
        return False
    kwargs: dict[str, Any] = {}
    if address:
        kwargs["coordinator_address"] = address
        if "JAX_NUM_PROCESSES" in os.environ:
            kwargs["num_processes"] = int(os.environ["JAX_NUM_PROCESSES"])
        if "JAX_PROCESS_ID" in os.environ:
            kwargs["process_id"] = int(os.environ["JAX_PROCESS_ID"])
    if SHUTDOWN_TIMEOUT_ENV in os.environ:
        kwargs["shutdown_timeout_seconds"] = int(os.environ[SHUTDOWN_TIMEOUT_ENV])
    jax.distributed.initialize(**kwargs)
    return True


def barrier(name: str, *, timeout_s: float = BARRIER_TIMEOUT_S) -> None:
    """Wait until every process reaches ``name`` (no-op with one process)."""
    if jax.process_count() == 1:
        return
    from jax._src import distributed  # the coordination client JAX itself uses for barriers

    client = distributed.global_state.client
    if client is None:  # initialised by a launcher we do not know: fall back to a collective
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
        return
    client.wait_at_barrier(name, int(timeout_s * 1000))


def to_host(tree: Any) -> Any:
    """Fetch arrays (possibly spread over hosts) to numpy, the full value on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)
