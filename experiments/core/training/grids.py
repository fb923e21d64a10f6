"""A sweep's members as a grid: one dict of settings per member, and readable member names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def member_grid(**axes: Sequence[Any]) -> list[dict[str, Any]]:
    """The Cartesian product of named axes as a list of member descriptions, first axis slowest.

    >>> member_grid(lam=(0.0, 1.0), seed=(0, 1))[1:3]
    [{'lam': 0.0, 'seed': 1}, {'lam': 1.0, 'seed': 0}]
    """
    rows: list[dict[str, Any]] = [{}]
    for name, values in axes.items():
        rows = [{**row, name: v} for row in rows for v in values]
    return rows


def member_names(grid: Sequence[Mapping[str, Any]]) -> list[str]:
    """Readable names of the members of a :func:`member_grid`, for error messages."""
    return [
        f"member {i} ({', '.join(f'{k}={v}' for k, v in m.items())})" for i, m in enumerate(grid)
    ]
