"""The device mesh: one ``"ensemble"`` axis over all devices, and the two shardings on it.

The member axis of parameters, optimizer states and batches is sharded over the mesh
(``P("ensemble")``) and the data every member reads is replicated (``P()``), so the same code runs
on 1 CPU, 8 GPUs or a TPU slice, and across hosts.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from experiments.core.cli import ConfigError

AXIS = "ensemble"


def make_mesh(num_members: int, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``"ensemble"`` over ``devices`` (default: all devices, all hosts).

    Raises:
      ConfigError: if ``num_members`` is not a positive multiple of the number of devices (each
        device must hold the same number of members).
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if num_members < 1 or num_members % n:
        raise ConfigError(
            f"the number of ensemble members ({num_members}) must be a positive multiple of the "
            f"number of devices ({n}) so the member axis can be sharded evenly; change the "
            "member count (members, seeds, methods or sweep values) or the devices "
            "(CUDA_VISIBLE_DEVICES, XLA_FLAGS=--xla_force_host_platform_device_count)"
        )
    return Mesh(np.asarray(devices), (AXIS,))


def member_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of arrays with a leading member axis: split over the ``"ensemble"`` mesh axis."""
    return NamedSharding(mesh, P(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding of arrays every member reads (data, step counters): a full copy per device."""
    return NamedSharding(mesh, P())
