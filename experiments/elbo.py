"""A small VAE on binarised digits: IWAE-k against its VAE-k control (Burda et al. 2016).

Data: scikit-learn's ``load_digits`` (8×8), pixels binarised at ``--threshold``, so the Bernoulli
decoder gives a proper likelihood and bounds are comparable numbers in nats per image.

Model: encoder :math:`q(z \\mid x) = \\mathcal N(\\mu(x), \\mathrm{diag}\\, e^{v(x)})`, decoder
:math:`p(x \\mid z) = \\prod_{i=1}^{64} \\mathrm{Bernoulli}(\\sigma(f_i(z)))`, both MLPs from
:mod:`experiments.core.models`; prior :math:`\\mathcal N(0, I)`. With
:math:`\\log w_s = \\log p(x \\mid z_s) + \\log p(z_s) - \\log q(z_s \\mid x)`,
:math:`z_s \\sim q`, the training objectives are (Burda, Grosse & Salakhutdinov 2016, §5):

* **ELBO** (k = 1): :math:`\\log p(x \\mid z_1) - \\mathrm{KL}(q \\,\\|\\, p)`
  (``entjax.elbo``, analytic KL);
* **VAE-k**, the control: the same ELBO with its reconstruction term averaged over k samples,
  :math:`\\frac1k \\sum_s \\log p(x \\mid z_s) - \\mathrm{KL}` — k samples, the *same* bound;
* **IWAE-k**: :math:`\\mathcal L_k = \\log \\frac1k \\sum_s w_s` (``entjax.iwae_bound``) — k
  samples, a tighter bound.

VAE-k and IWAE-k spend the same samples, so a difference between them is the bound, not the
sample count. Every (objective, k) is its own :class:`~experiments.core.training.Members` of
``--seeds`` members drawing exactly its own k samples per example (no member computes samples it
discards). Member ``s`` of every arm starts from the same initialisation and sees the same
minibatches and the same sampling noise, so the per-seed differences between arms are paired
with common random numbers.

At the end, per member: :math:`\\log p(x)` estimated by IWAE-``--final-k`` on the test split
and on a training subset of the same size (their difference is the generalisation gap), the
ELBO (reconstruction term over ``--final-k`` samples, analytic KL), the test IWAE-k for
k ∈ ``--eval-ks``, and the number of **active latent units**: dimensions j with
:math:`\\mathrm{Cov}_x(\\mathbb E_{q(z \\mid x)}[z_j]) = \\mathrm{Var}_x(\\mu_j(x)) > 0.01`
over the test images (Burda et al.'s criterion). Every number is a mean with a Student-t 95%
interval over seeds; arms are compared by the paired difference over seeds, and a difference is
claimed only where its interval excludes 0. During training the bounds are recorded on the
validation split. Nothing is tuned, so nothing is selected on any split.

Expected (Burda et al.): IWAE-k reaches a higher log p(x) than VAE-k, with more active units
and a lower ELBO. ELBO ≤ IWAE-5 ≤ IWAE-50 ≤ IWAE-1000 for every model is their theorem (in
expectation), a check of the estimates rather than a finding.

Run ``python -m experiments.elbo`` (``--smoke`` for a seconds-long check). Writes
``results.json``, ``report.md``, ``curves.png``, ``samples.png`` and ``reconstructions.png``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import entjax
from experiments.core import (
    cli,
    data as data_lib,
    entropy_curves,
    models,
    outputs,
    sweeps,
    training,
)
from experiments.core.cli import option
from experiments.core.distributed import to_host
from experiments.core.runner import Experiment, Outcome

NAME = "elbo"
NUM_PIXELS = 64
ACTIVE_THRESHOLD = 0.01  # Burda et al.: a unit is active when Cov_x(E_q[z_j]) > 0.01
MEASURES = ("test_log_px", "train_log_px", "gap", "test_elbo", "active_units")


@dataclasses.dataclass(frozen=True)
class Config(training.SweepConfig):
    train_ks: tuple[int, ...] = option(
        (1, 5, 50), "sample counts: 1 trains the ELBO; each k > 1 trains VAE-k and IWAE-k"
    )
    seeds: int = option(5, "members (seeds) per (objective, k)")
    latent_dim: int = option(16, "dimension of z")
    width: int = option(64, "encoder / decoder MLP width")
    steps: int = option(2000, "Adam steps")
    learning_rate: float = option(3e-3, "peak Adam learning rate (cosine schedule)")
    eval_every: int = option(250, "steps between evaluations (and checkpoints)")
    eval_ks: tuple[int, ...] = option((1, 5, 50), "IWAE-k recorded on the validation split")
    final_k: int = option(1000, "importance samples of the final log p(x) estimates")
    threshold: float = option(0.5, "binarisation threshold of the pixels")

    def __post_init__(self):
        super().__post_init__()
        cli.require_all_positive(self, "train_ks", "eval_ks")
        cli.require(len(set(self.train_ks)) == len(self.train_ks), "--train-ks must be distinct")
        for name in ("latent_dim", "width"):
            cli.require(getattr(self, name) >= 1, f"{cli.flag(name)} must be >= 1")
        cli.require(self.final_k >= 1, "--final-k must be >= 1")
        cli.require(0.0 < self.threshold < 1.0, "--threshold must lie in (0, 1)")

    def arms(self) -> list[tuple[str, int]]:
        """``(objective, k)`` of every trained arm: ``("elbo", 1)``, ``("vae", k)``, ..."""
        out = []
        for k in self.train_ks:
            out += [("elbo", 1)] if k == 1 else [("vae", k), ("iwae", k)]
        return out


SMOKE = {
    "train_ks": (3,),
    "seeds": 2,
    "latent_dim": 2,
    "width": 16,
    "steps": 20,
    "batch_size": 32,
    "eval_every": 10,
    "eval_ks": (1, 3),
    "final_k": 20,
}


def arm_name(objective: str, k: int) -> str:
    return "ELBO" if objective == "elbo" else f"{objective.upper()}-{k}"


def log_normal_diag(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """:math:`\\log \\mathcal N(z; \\mu, e^{v})`, summed over the last axis."""
    return -0.5 * jnp.sum(
        math.log(2 * math.pi) + log_var + (z - mean) ** 2 * jnp.exp(-log_var), axis=-1
    )


class VAE(nnx.Module):
    """MLP encoder to (mean, log-variance) and MLP decoder to 64 Bernoulli logits."""

    def __init__(self, *, latent_dim: int, width: int, rngs: nnx.Rngs):
        self.encoder = models.build_model("mlp", num_classes=2 * latent_dim, width=width, rngs=rngs)
        self.decoder = models.build_model(
            "mlp",
            num_classes=NUM_PIXELS,
            width=width,
            input_shape=(1, latent_dim, 1),
            rngs=rngs,
        )
        self.latent_dim = latent_dim

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = self.encoder(x)
        return h[..., : self.latent_dim], h[..., self.latent_dim :]

    def reconstruct(self, x: jax.Array) -> jax.Array:
        """Bernoulli logits of the decoder at the posterior mean: the model's output for ``x``."""
        return self.decode(self.encode(x)[0])

    def decode(self, z: jax.Array) -> jax.Array:
        """Bernoulli logits, shape ``z.shape[:-1] + (64,)``."""
        return self.decoder(z[..., None, :, None])

    def __call__(self, x: jax.Array, key: jax.Array, num_samples: int) -> dict[str, jax.Array]:
        """Samples ``z`` (S, n, d), log-likelihoods and importance log-weights, both (S, n)."""
        mean, log_var = self.encode(x)
        z = entjax.reparameterize(key, mean, log_var, num_samples=num_samples)
        pixels = x.reshape(*x.shape[:-3], NUM_PIXELS)
        bce = entjax.sigmoid_binary_cross_entropy(self.decode(z), pixels)
        log_lik = -jnp.sum(bce, axis=-1)
        log_prior = log_normal_diag(z, 0.0, jnp.zeros_like(z))
        log_q = log_normal_diag(z, mean, log_var)
        return {
            "log_lik": log_lik,
            "log_weights": log_lik + log_prior - log_q,
            "mean": mean,
            "log_var": log_var,
        }


def bounds(out: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Per example, from one set of k samples: ``elbo`` (reconstruction averaged over the
    samples, analytic KL: the VAE-k objective; the ELBO itself for k = 1) and ``iwae``
    (:math:`\\log \\frac1k \\sum_s w_s`)."""
    elbo = entjax.elbo(out["log_lik"], mean=out["mean"], log_var=out["log_var"]).elbo
    return {"elbo": elbo, "iwae": entjax.iwae_bound(out["log_weights"], axis=0)}


def make_loss_fn(ensemble: training.Ensemble, seed: int, objective: str, k: int):
    """``−bound`` of one arm, drawing exactly ``k`` samples; the key depends on (member, step)
    only, so member ``s`` of every arm sees the same noise."""
    which = "iwae" if objective == "iwae" else "elbo"

    def apply_fn(params, batch):
        return bounds(ensemble.module(params)(batch["image"], batch["key"], k))

    objective_fn = entjax.make_objective(
        apply_fn, {"neg_bound": entjax.term(lambda b: -b, which)}, mask="mask"
    )

    def loss_fn(params, batch, step=0):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), batch["member"]), step)
        return objective_fn(params, {**batch, "key": key}, step)

    return loss_fn


def make_evaluator(ensemble: training.Ensemble, ks: Sequence[int], seed: int, chunk: int = 512):
    """``(params, x) -> {"elbo_k", "iwae_k" for k in ks}``: mean bounds (nats per image) per
    member, each k from its own fresh samples, in equal-sized chunks (one compilation)."""
    ks = tuple(sorted(set(ks)))

    def one(params, x, key):
        model = ensemble.module(params)
        out = {}
        for i, k in enumerate(ks):
            b = bounds(model(x, jax.random.fold_in(key, i), k))
            out[f"elbo_{k}"], out[f"iwae_{k}"] = b["elbo"], b["iwae"]
        return out

    @jax.jit
    def chunk_bounds(params, x, start):
        key = jax.random.fold_in(jax.random.key(seed + 104729), start)
        return jax.vmap(one, in_axes=(0, None, None))(params, x, key)

    def evaluate(params, x: np.ndarray) -> dict[str, np.ndarray]:
        n = len(x)
        size = min(chunk, n)
        pad = -n % size
        xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
        sums: dict[str, np.ndarray] = {}
        for start in range(0, len(xp), size):
            out = chunk_bounds(params, jnp.asarray(xp[start : start + size]), start)
            valid = min(size, n - start)
            for name, v in out.items():
                v = np.asarray(to_host(v), np.float64)[:, :valid]
                sums[name] = sums.get(name, 0.0) + v.sum(-1)
        return {name: s_ / n for name, s_ in sums.items()}

    return evaluate


def active_units(posterior_means: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> np.ndarray:
    """Burda et al.'s count per member: dimensions j with :math:`\\mathrm{Var}_x(\\mu_j(x)) >`
    ``threshold`` (sample variance, ``ddof=1``), for means ``(K, n, d)``; returns ``(K,)``."""
    return (np.var(posterior_means, axis=1, ddof=1) > threshold).sum(axis=-1)


def binarize(images: np.ndarray, threshold: float) -> np.ndarray:
    return (images > threshold).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Splits:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_subset: np.ndarray  # as many training images as test images, for the train log p(x)


def load(config: Config) -> Splits:
    data = data_lib.load_digits_dataset(seed=config.seed, heldout_classes=())
    x_train = binarize(data.x_train, config.threshold)
    x_test = binarize(data.x_test, config.threshold)
    pick = np.random.default_rng([config.seed, 5000]).permutation(len(x_train))[: len(x_test)]
    return Splits(x_train, binarize(data.x_val, config.threshold), x_test, x_train[np.sort(pick)])


@dataclasses.dataclass(frozen=True)
class Evaluators:
    """Compiled once and shared by every arm (all arms have the same graph and member count)."""

    bounds: Any  # IWAE-k and VAE-k for k in eval_ks: validation curves, test bounds at the end
    final: Any  # from final_k samples: the log p(x) estimate and the ELBO
    posterior_mean: Any  # (params, x) -> E_q[z] = mu(x), for the active units

    @classmethod
    def build(cls, ensemble: training.Ensemble, config: Config) -> Evaluators:
        return cls(
            make_evaluator(ensemble, config.eval_ks, config.seed, chunk=EVAL_CHUNK),
            make_evaluator(ensemble, (config.final_k,), config.seed + 1, chunk=FINAL_CHUNK),
            lambda params, x: ensemble.module(params).encode(x)[0],
        )


EVAL_CHUNK, FINAL_CHUNK = 128, 20  # fixed chunk shapes: one compilation for every split


def train_arm(
    arm: tuple[str, int],
    members: training.Members,
    evaluators: Evaluators,
    config: Config,
    splits: Splits,
    options: cli.RunOptions,
) -> dict[str, Any]:
    """Train the ``config.seeds`` members of one arm; their final measures, curves, params."""
    objective, k = arm
    name = f"{objective}{k}"
    result = members.train_sweep(
        make_loss_fn(members.ensemble, config.seed, objective, k),
        config,
        options,
        data={"image": splits.train},
        run_config={**dataclasses.asdict(config), "arm": name},
        name=name,
        description=f"{NAME}/{arm_name(objective, k)}",
        member_inputs={"member": np.arange(config.seeds, dtype=np.int32)},
        evaluate=lambda p: evaluators.bounds(p, splits.val),
        probe=entropy_curves.EntropyProbe(
            splits.train,
            splits.val,
            apply=lambda params, x: members.ensemble.module(params).reconstruct(x),
            entropy=entropy_curves.bernoulli_entropy,
        ),
    )
    return {
        "final": final_measures(members, result.params, evaluators, config, splits),
        "curves": result.curves,
        "loss_history": result.loss_history,
        "params": result.params,
    }


def final_measures(
    members: training.Members, params: Any, evaluators: Evaluators, config: Config, splits: Splits
) -> dict[str, np.ndarray]:
    """Per member ``(K,)``: log p(x) and the ELBO on the test split and the training subset,
    the test IWAE-k, the active units."""
    test, train = (
        evaluators.final(params, splits.test),
        evaluators.final(params, splits.train_subset),
    )
    k = config.final_k
    out = {
        "test_log_px": test[f"iwae_{k}"],
        "train_log_px": train[f"iwae_{k}"],
        "gap": train[f"iwae_{k}"] - test[f"iwae_{k}"],
        "test_elbo": test[f"elbo_{k}"],
        "train_elbo": train[f"elbo_{k}"],
    }
    now = evaluators.bounds(params, splits.test)
    out.update({f"test_iwae_{e}": now[f"iwae_{e}"] for e in config.eval_ks})
    means = members.predict(params, splits.test, evaluators.posterior_mean)
    out["active_units"] = active_units(means)
    return out


def train_and_evaluate(config: Config, options: cli.RunOptions) -> Outcome:
    """Train every arm; per-arm intervals, paired comparisons, samples of the last arm."""
    splits = load(config)
    arms = config.arms()

    def model_fn(rngs: nnx.Rngs) -> nnx.Module:
        return VAE(latent_dim=config.latent_dim, width=config.width, rngs=rngs)

    # One initialisation for every arm: member s of each arm starts from the same parameters.
    base = training.Members.create(model_fn, config.seeds, seed=config.seed)
    members = {arm: sweeps.members_from(base, range(config.seeds)) for arm in arms}
    evaluators = Evaluators.build(base.ensemble, config)
    runs = {arm: train_arm(arm, members[arm], evaluators, config, splits, options) for arm in arms}
    grid = [{"objective": o, "k": k, "seed": s} for (o, k) in arms for s in range(config.seeds)]
    values = {
        m: np.concatenate([runs[arm]["final"][m] for arm in arms]) for m in runs[arms[0]]["final"]
    }
    vae = summarise(values, grid, config, runs)
    shown = arms[-1]  # the largest k's IWAE arm by construction; not chosen by a test number
    images = sample_images(members[shown], runs[shown]["params"], splits.test, config)
    images["image_arm"] = arm_name(*shown)
    curves = {
        arm_name(*arm): entropy_curves.summarise(
            runs[arm]["curves"], runs[arm]["loss_history"], max_entropy=NUM_PIXELS * math.log(2.0)
        )
        for arm in arms
    }
    return Outcome({"vae": vae, "entropy_curves": curves}, arrays=images)


def comparisons(values: dict[str, np.ndarray], grid: list[dict], config: Config) -> list[dict]:
    """IWAE-k − VAE-k for each k > 1 and VAE-k / IWAE-k − ELBO, on every measure."""
    pairs = []
    for k in (k for k in config.train_ks if k > 1):
        pairs.append((("iwae", k), ("vae", k)))
        if 1 in config.train_ks:
            pairs += [(("vae", k), ("elbo", 1)), (("iwae", k), ("elbo", 1))]
    out = []
    for a, b in pairs:
        names = (arm_name(*a), arm_name(*b))
        row = {"a": names[0], "b": names[1]}
        for m in MEASURES:
            row[m] = sweeps.compare(
                values[m],
                grid,
                {"objective": a[0], "k": a[1]},
                {"objective": b[0], "k": b[1]},
                names=names,
                higher_is_better=m != "gap",
            )
        out.append(row)
    return out


def summarise(
    values: dict[str, np.ndarray], grid: list[dict], config: Config, runs: dict
) -> dict[str, Any]:
    """Per arm: intervals over seeds of every measure; comparisons; the bound-order check."""
    arms = config.arms()

    def per_arm(m: str) -> dict[str, list]:
        # log-probabilities of binary images are <= 0; at most latent_dim units are active.
        bounds = {"active_units": (0, config.latent_dim), "gap": (None, None)}.get(m, (None, 0))
        cols = [sweeps.interval(values[m], grid, bounds=bounds, objective=o, k=k) for o, k in arms]
        return {key: [c[key] for c in cols] for key in sweeps.FIELDS}

    eval_ks = sorted(set(config.eval_ks))
    # ELBO <= IWAE-k (k > 1) <= IWAE-final_k, member by member; IWAE-1 is the one-sample ELBO.
    ordered = np.stack(
        [
            values["test_elbo"],
            *(values[f"test_iwae_{e}"] for e in eval_ks if 1 < e < config.final_k),
            values["test_log_px"],
        ]
    )
    return {
        "arms": [arm_name(*a) for a in arms],
        "arm_ks": [k for _, k in arms],
        "train_ks": list(config.train_ks),
        "eval_ks": eval_ks,
        "final_k": config.final_k,
        "active_threshold": ACTIVE_THRESHOLD,
        "measures": {m: per_arm(m) for m in values},
        "test_log_likelihood": per_arm("test_log_px"),
        "test_elbo": per_arm("test_elbo"),
        "test_bounds": {f"k{e}": per_arm(f"test_iwae_{e}") for e in eval_ks},
        "comparisons": comparisons(values, grid, config),
        "bound_order_holds": bool(np.all(np.diff(ordered, axis=0) >= -0.05)),
        "eval_steps": runs[arms[0]]["curves"].steps,
        "val_curves": {
            arm_name(*a): {
                n: runs[a]["curves"].metrics[n].mean(1)
                for n in runs[a]["curves"].metrics
                if n.startswith(("elbo_", "iwae_"))
            }
            for a in arms
        },
        "members": [
            {**m, **{k_: float(v[i]) for k_, v in values.items()}} for i, m in enumerate(grid)
        ],
    }


def sample_images(
    members: training.Members, params: Any, x_test: np.ndarray, config: Config
) -> dict[str, np.ndarray]:
    """Decoded prior samples and test reconstructions of seed 0 of an arm, for the figures."""
    model = members.ensemble.module(members.member_params(params, 0))
    z = jax.random.normal(jax.random.key(config.seed + 3), (32, config.latent_dim))
    samples = np.asarray(jax.nn.sigmoid(model.decode(z))).reshape(-1, 8, 8)
    mean, _ = model.encode(jnp.asarray(x_test[:16]))
    recon = np.asarray(jax.nn.sigmoid(model.decode(mean))).reshape(-1, 8, 8)
    return {"samples": samples, "originals": x_test[:16, ..., 0], "reconstructions": recon}


# --------------------------------------------------------------------------- outputs

LABELS = {
    "test_log_px": "test log p(x)",
    "train_log_px": "train log p(x)",
    "gap": "train − test",
    "test_elbo": "test ELBO",
    "active_units": "active units",
}


def _main_table(r: dict[str, Any]) -> str:
    headers = ["trained with", *(LABELS[m] for m in MEASURES)]
    rows = [
        [arm, *(sweeps.entry(r["measures"][m], i) for m in MEASURES)]
        for i, arm in enumerate(r["arms"])
    ]
    return outputs.markdown_table(headers, rows, digits=2)


def _bounds_table(r: dict[str, Any]) -> str:
    names = [f"k{e}" for e in r["eval_ks"] if 1 < e < r["final_k"]]
    headers = ["trained with", "test ELBO", *(f"test IWAE-{n[1:]}" for n in names)]
    headers.append(f"test IWAE-{r['final_k']} ≈ log p(x)")
    rows = [
        [
            arm,
            sweeps.entry(r["test_elbo"], i),
            *(sweeps.entry(r["test_bounds"][n], i) for n in names),
            sweeps.entry(r["test_log_likelihood"], i),
        ]
        for i, arm in enumerate(r["arms"])
    ]
    return outputs.markdown_table(headers, rows, digits=2)


def _direction(d: dict[str, Any], up: str = "higher", down: str = "lower") -> str:
    """A paired difference with its direction in words where the interval excludes 0."""
    if not d["significant"]:
        return f"{outputs.fmt(d, 2)} (no significant difference)"
    return f"{outputs.fmt(d, 2)} ({up if d['mean'] > 0 else down})"


def _comparison_lines(r: dict[str, Any]) -> list[str]:
    lines = []
    for row in r["comparisons"]:
        parts = [
            f"{LABELS[m]} "
            + (_direction(row[m], "more", "fewer") if m == "active_units" else _direction(row[m]))
            for m in MEASURES
        ]
        lines.append(f"- **{row['a']} − {row['b']}**: " + "; ".join(parts) + ".")
    return lines


def report(results: dict[str, Any]) -> str:
    r, config = results["vae"], results["config"]
    order = "holds" if r["bound_order_holds"] else "**fails**"
    return "\n".join(
        [
            "# VAE on binarised digits: IWAE-k against its VAE-k control",
            "",
            f"Latent dim {config['latent_dim']}, MLP width {config['width']}, {config['steps']} "
            f"Adam steps (lr {config['learning_rate']}, cosine), {config['seeds']} seeds per arm; "
            "nats per 8×8 image (log p(x) and the ELBO: higher is better). log p(x) is "
            f"IWAE-{r['final_k']}, on the test split and on as many training images; active "
            f"units: Var_x(E_q[z_j]) > {r['active_threshold']} over the test images, of "
            f"{config['latent_dim']}. Mean [95% interval] over seeds (Student t, ddof = 1).",
            "",
            _main_table(r),
            "",
            "## Paired differences over seeds (same init, batches and noise per seed)",
            "",
            "A direction is claimed only where the 95% interval of the per-seed difference "
            "excludes 0.",
            "",
            *_comparison_lines(r),
            "",
            "## Check: ELBO ≤ IWAE-k ≤ log p(x) on the test split",
            "",
            _bounds_table(r),
            "",
            f"The order (Burda et al.'s theorem, in expectation) {order} for every member "
            "within 0.05 nats of Monte-Carlo error.",
        ]
    )


def _grid(ax: Any, images: np.ndarray, cols: int) -> None:
    images = np.asarray(images)
    rows = math.ceil(len(images) / cols)
    canvas = np.full((rows * 9 + 1, cols * 9 + 1), 0.35)  # grey separators
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[1 + r * 9 : 1 + r * 9 + 8, 1 + c * 9 : 1 + c * 9 + 8] = img
    ax.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _curves_figure(r: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, len(r["arms"]), size=(3.4, 3.0))
    steps = r["eval_steps"][1:]  # step 0 (random init) is far below and would squash the rest
    for ax, arm in zip(axes[0], r["arms"], strict=True):
        curves = r["val_curves"][arm]
        for e in r["eval_ks"]:
            label = f"IWAE-{e}" if e > 1 else "IWAE-1 (MC ELBO)"
            ax.plot(steps, np.asarray(curves[f"iwae_{e}"], float)[1:], label=label)
        ax.set_title(f"trained with {arm}", fontsize=10)
        ax.set_xlabel("step")
    axes[0, 0].set_ylabel("validation bound (nats / image)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Validation bounds during training (mean over seeds; from the first evaluation)")
    fig.tight_layout()
    return fig


def _comparison_figure(r: dict[str, Any]) -> Any:
    fig, axes = outputs.new_figure(1, 3, size=(3.6, 3.0))
    for ax, m in zip(axes[0], ("test_log_px", "test_elbo", "active_units"), strict=True):
        cols = r["measures"][m]
        x = np.arange(len(r["arms"]))
        mean = np.asarray(cols["mean"], float)
        err = np.stack([mean - np.asarray(cols["low"], float), np.asarray(cols["high"]) - mean])
        ax.errorbar(x, mean, yerr=err, fmt="o", capsize=3)
        ax.set_xticks(x, r["arms"], rotation=30, fontsize=8)
        ax.set_title(LABELS[m], fontsize=10)
    fig.suptitle("Test measures per arm (mean, 95% interval over seeds)")
    fig.tight_layout()
    return fig


def figures(results: dict[str, Any], images: dict[str, Any]) -> dict[str, Any]:
    r = results["vae"]
    out = {"curves": _curves_figure(r), "comparison": _comparison_figure(r)}
    fig, axes = outputs.new_figure(1, 1, size=(4.0, 2.2))
    _grid(axes[0, 0], images["samples"], 8)
    axes[0, 0].set_title(f"Samples ({images['image_arm']}, seed 0): decoded z ~ N(0, I)")
    out["samples"] = fig
    fig, axes = outputs.new_figure(2, 1, size=(4.0, 1.3))
    _grid(axes[0, 0], images["originals"], 16)
    axes[0, 0].set_title("test images (binarised)")
    _grid(axes[1, 0], images["reconstructions"], 16)
    axes[1, 0].set_title("reconstructions (decoder at the posterior mean)")
    out["reconstructions"] = fig
    return out


EXPERIMENT = Experiment(NAME, __doc__, Config, SMOKE, train_and_evaluate, report, figures)
main, run = EXPERIMENT.main, EXPERIMENT.run

if __name__ == "__main__":
    sys.exit(main())
