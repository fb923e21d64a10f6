"""Shared test configuration: float64 references, strict promotion, small fixed shapes."""

import jax
import numpy as np
import pytest

# Float64 lets numpy/scipy references and finite differences be compared tightly; library
# functions are still exercised in float32/bf16 explicitly where precision is the subject.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
