"""The methods side by side (issue 22): single model, deep ensemble, snapshot ensemble and MC
dropout, trained in one vmapped program and each evaluated as R ensembles of K members.

Training (one program, :attr:`~experiments.ensemble_entropy.config.Config.slots`): the deep
ensemble's R·K members, then per selected cheap method one run per ensemble (R runs):

* **snapshot** (Huang et al. 2017): the cyclic cosine learning rate of K cycles over the same S
  steps (:mod:`experiments.core.training.snapshots`); its K members are the parameters at the
  cycles' ends, kept in the optimizer state;
* **MC dropout** (Gal & Ghahramani 2016): dropout at ``--dropout`` on the inputs of the dense
  layers in training (:func:`experiments.core.models.dropout`); its K members are K test-time
  passes, each with one fixed dropout mask per unit (:meth:`~experiments.core.models.MLP.thinned`:
  a deterministic network, so its penultimate features and k-NN score are defined as for any
  member; each input sees a random mask per pass, as in MC dropout). The penultimate features are
  taken before the head's mask, so the passes' features differ through the earlier masks only
  (the CNN's channel masks; an MLP's hidden layers but the last).

Every method then has the deep ensemble's shape (R ensembles of K members, K test-time passes)
and goes through the same :func:`~experiments.ensemble_entropy.evalsets.predict`, so its scores,
calibration, AURC and the seed's claim are computed by the same code. The budget: the deep
ensemble trains K models for S steps each, a snapshot or MC-dropout ensemble one model for S
steps, a single model one; :func:`budget` states it in gradient steps × parameters.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.core import stats, training
from experiments.core.models import dropout as dropout_hook
from experiments.core.training.optim import OPTIMIZER_INPUTS
from experiments.core.training.snapshots import snapshots_of
from experiments.ensemble_entropy import evaluate, selective, significance
from experiments.ensemble_entropy.config import (
    METHOD_LABELS,
    METHOD_SCORES,
    PER_EXAMPLE,
    Config,
)
from experiments.ensemble_entropy.evalsets import Predictions
from experiments.ensemble_entropy.seed_claim import seed_claim_section

# Stream tags of the dropout keys (training masks, test-time masks), folded into key(seed): far
# above any member index, because under JAX's partitionable threefry ``fold_in(k, i)`` equals
# ``split(k, N)[i]``, the initialisation key of member i.
TRAIN_MASKS, TEST_MASKS = 2**31 - 2, 2**31 - 1


def padded_size(num_models: int, devices: int) -> int:
    """The trained member axis: ``num_models`` rounded up to a multiple of ``devices`` (the axis
    is sharded evenly; the padding members train like deep members and are never read)."""
    return -(-num_models // devices) * devices


def trained_size(config: Config) -> int:
    """:func:`padded_size` of the config's models over this run's devices (all hosts). The deep
    ensemble's R·K members must themselves divide over the devices (a :class:`ConfigError`,
    before any training: they are evaluated on a member axis of their own)."""
    training.make_mesh(config.layout.size)
    return padded_size(config.num_models, jax.device_count())


def member_inputs(config: Config, size: int) -> dict[str, Any]:
    """The per-member training inputs of a member axis of ``size`` (:func:`trained_size`): which
    members follow the snapshot schedule (an optimizer input) and each member's dropout rate
    (0 except on the MC-dropout runs) and index."""
    slots, n = config.slots, size
    inputs: dict[str, Any] = {}
    if "snapshot" in slots:
        snapshot = np.zeros(n, bool)
        snapshot[slots["snapshot"]] = True
        inputs[OPTIMIZER_INPUTS] = {"snapshot": snapshot}
    if "mc_dropout" in slots:
        rate = np.zeros(n, np.float32)
        rate[slots["mc_dropout"]] = config.dropout
        inputs["dropout_rate"] = rate
        inputs["member"] = np.arange(n, dtype=np.int32)
    return inputs


def objective(ensemble: training.Ensemble, config: Config) -> training.LossFn:
    """The training loss: mean cross-entropy, through dropout at each member's rate when the run
    has MC-dropout members (rate 0 leaves the others' values and gradients unchanged)."""
    if "mc_dropout" not in config.methods:
        return training.classification_objective(ensemble)
    import entjax

    root = jax.random.fold_in(jax.random.key(config.seed), TRAIN_MASKS)

    def apply_fn(params, batch):
        key = jax.random.fold_in(jax.random.fold_in(root, batch["member"]), batch["step"])
        hook = dropout_hook(key, batch["dropout_rate"])
        return {"logits": ensemble.module(params)(batch["image"], dropout=hook)}

    ce = entjax.term(entjax.softmax_cross_entropy_with_integer_labels, "logits", "label")
    loss = entjax.make_objective(apply_fn, {"ce": ce}, mask="mask", reduction="mean")

    def loss_fn(params, batch, step=0):
        return loss(params, {**batch, "step": step}, step)

    return loss_fn


def _as_members(members: training.Members, params: Any, mesh) -> training.Members:
    size = int(jax.tree.leaves(params)[0].shape[0])
    ensemble = training.Ensemble(members.ensemble.graphdef, params, size)
    return training.Members(ensemble, mesh)


def method_members(
    members: training.Members, params: Any, opt_state: Any, config: Config
) -> dict[str, tuple[training.Members, Any]]:
    """Per method, R·K deterministic members in the ensemble layout (member ``r·K + j`` is
    member ``j`` of ensemble ``r``) and their parameters."""
    slots, r, k = config.slots, config.seeds, config.members
    mesh = training.make_mesh(r * k)  # every method: R·K members

    def on_members(fn):  # jitted, its output on the member sharding of the R·K members
        return jax.jit(fn, out_shardings=training.member_sharding(mesh))

    out = {}
    deep = np.asarray(slots["deep"])
    out["deep"] = on_members(lambda p: jax.tree.map(lambda a: a[deep], p))(params)
    if "snapshot" in slots:
        idx = np.asarray(slots["snapshot"])

        def snapshot_members(state):  # (N, K, ...) -> (R·K, ...), run-major
            buf = snapshots_of(state)
            return jax.tree.map(lambda a: a[idx].reshape(r * k, *a.shape[2:]), buf)

        out["snapshot"] = on_members(snapshot_members)(opt_state)
    if "mc_dropout" in slots:
        idx = np.asarray(slots["mc_dropout"])
        root = jax.random.fold_in(jax.random.key(config.seed), TEST_MASKS)
        graphdef, rate = members.ensemble.graphdef, config.dropout

        def thin(p, key):
            model = nnx.merge(graphdef, p)
            masks = [
                jax.random.bernoulli(jax.random.fold_in(key, i), 1.0 - rate, (units,)).astype(
                    jnp.float32
                )
                for i, units in enumerate(model.dropout_units())
            ]
            model.thinned(masks, rate)
            return nnx.state(model)

        def passes(p):  # R runs × K fixed-mask passes -> (R·K, ...)
            runs = jax.tree.map(lambda a: a[idx], p)
            keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(root, i), k))(
                jnp.arange(r)
            )
            thinned = jax.vmap(jax.vmap(thin, in_axes=(None, 0)))(runs, keys)
            return jax.tree.map(lambda a: a.reshape(r * k, *a.shape[2:]), thinned)

        out["mc_dropout"] = on_members(passes)(params)
    return {m: (_as_members(members, p, mesh), p) for m, p in out.items()}


def merged_scores(preds: dict[str, Predictions]) -> dict[str, np.ndarray]:
    """The deep predictions' scores plus every cheap method's ensemble scores as
    ``<method>/<name>`` (``(R, n)``, paired with the deep ensembles by replicate)."""
    scores = dict(preds["deep"].scores)
    for method, pred in preds.items():
        if method != "deep":
            scores.update({f"{method}/{k}": pred.scores[f"ensemble/{k}"] for k in METHOD_SCORES})
    return scores


def budget(config: Config, num_params: int) -> dict[str, dict[str, Any]]:
    """Training cost (models trained × steps, and × parameters) and test-time passes of one
    ensemble of each method."""
    s, k = config.steps, config.members
    rows = {"single": (1, 1), "deep": (k, k)}
    rows.update(dict.fromkeys(config.cheap_methods, (1, k)))
    return {
        m: {
            "models_trained": trained,
            "gradient_steps": trained * s,
            "gradient_steps_x_parameters": trained * s * num_params,
            "test_passes": passes,
        }
        for m, (trained, passes) in rows.items()
    }


def methods_section(
    preds: dict[str, Predictions],
    config: Config,
    *,
    num_params: int,
    deep_results: dict[str, Any],
) -> dict[str, Any]:
    """``results["methods"]``: per method the budget, the test metrics of its ensembles (raw and
    temperature-scaled; intervals over ensembles and test examples), deep − method differences
    per example (exploratory), AURC / E-AURC and misclassification AUROCs on the test set, and
    the seed's claim; the single model (a deep member) as the first row.

    The deep ensemble's rows are read from the sections the run has already computed for it
    (``deep_results``: ``results["in_distribution"]["test"]``, ``results["selective"]["test"]``
    and ``results["seed_claim"]``), not computed again; the cheap methods' by the same code."""
    deep = preds["deep"]
    t, labels = deep.sets.slices["test"], deep.sets.labels_of("test")
    out: dict[str, Any] = {
        "methods": ["single", *preds],
        "labels": {m: METHOD_LABELS[m] for m in ["single", *preds]},
        "num_params": num_params,
        "dropout": config.dropout if "mc_dropout" in preds else None,
        "budget": budget(config, num_params),
        "rows": {},
    }
    deep_values = significance.per_example(deep.log_probs["ensemble"][:, t], labels)
    for method, pred in preds.items():
        if method == "deep":
            table, sel = deep_results["test"], deep_results["selective"]
            claim = deep_results["seed_claim"]["sets"]
        else:
            table = evaluate.classification_table(
                pred, "test", config.num_bins, examples_seed=config.seed
            )
            sel = selective.selective_section(pred, config, names=["test"])["test"]
            claim = seed_claim_section(pred, config)["sets"]
        variants = ["single", "single_ts"] if method == "deep" else []
        row_names = {"single": "single", "single_ts": "single"}
        for variant in [*variants, "ensemble", "ensemble_ts"]:
            name = row_names.get(variant, method)
            row = out["rows"].setdefault(name, {})
            scaled = variant.endswith("_ts")
            row["scaled" if scaled else "raw"] = {
                m: evaluate.without_values(table[variant][m]) for m in table[variant]
            }
            if not scaled:
                row["aurc"] = evaluate.without_values(sel[variant]["aurc"])
                row["excess_aurc"] = evaluate.without_values(sel[variant]["excess_aurc"])
                row["misclassification_auroc"] = {
                    k: evaluate.without_values(v)
                    for k, v in sel[variant]["misclassification_auroc"].items()
                }
        if method != "deep":
            values = significance.per_example(pred.log_probs["ensemble"][:, t], labels)
            out["rows"][method]["deep_minus_method"] = {
                m: stats.seeds_and_examples(
                    deep_values[m] - values[m],
                    seed=config.seed,
                    num_resamples=significance.EXAMPLE_RESAMPLES,
                )
                for m in PER_EXAMPLE
            }
        out["rows"][method]["seed_claim"] = {
            name: {
                "above_max_member": evaluate.without_values(block["above_max_member"]),
                "verdict": block["verdict"],
                "jensen_violations": block["jensen_violations"],
            }
            for name, block in claim.items()
        }
    return out


def count_params(members: training.Members) -> int:
    """The parameters of one model."""
    return int(sum(math.prod(a.shape[1:]) for a in jax.tree.leaves(members.ensemble.params)))
