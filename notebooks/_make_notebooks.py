"""Regenerate the notebooks in this folder: ``python notebooks/_make_notebooks.py``.

The notebooks are written from the cell lists below with ``nbformat``, with empty outputs, so
the repository stays diffable; ``tests/test_notebooks.py`` executes them. Edit the cells here
(or edit a notebook in Jupyter, clear its outputs and keep this file in sync).
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import nbformat
from nbformat import v4

HERE = pathlib.Path(__file__).resolve().parent

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def _cells(spec: list[tuple[str, str]]) -> list[nbformat.NotebookNode]:
    cells = []
    for kind, source in spec:
        source = source.strip("\n")
        cells.append(v4.new_markdown_cell(source) if kind == "md" else v4.new_code_cell(source))
    return cells


def _write(name: str, spec: list[tuple[str, str]]) -> pathlib.Path:
    nb = v4.new_notebook(cells=_cells(spec))
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    # Deterministic cell ids keep regenerated notebooks diffable.
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name.split('_')[0]}-{i:02d}"
    nbformat.validate(nb)
    path = HERE / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


# ---------------------------------------------------------------------------------------------
# 01: entropy basics (core library only)
# ---------------------------------------------------------------------------------------------

ENTROPY_BASICS = [
    (
        "md",
        r"""
# 01 · Entropy, cross-entropy, KL and JS from first principles

This notebook builds the four basic quantities by hand with NumPy, checks `entjax` against them,
and then looks at the places where the naive formula breaks: `-inf` logits (masked classes),
exact zero probabilities and huge logits. Every claim is checked with an `assert`, so running the
notebook (the test suite does) is also a test.

| quantity | definition |
|---|---|
| entropy | $H(p) = -\sum_c p_c \log p_c$ |
| cross-entropy | $H(y, p) = -\sum_c y_c \log p_c$ |
| KL divergence | $\mathrm{KL}(p\,\|\,q) = \sum_c p_c \log (p_c / q_c) = H(p, q) - H(p)$ |
| Jensen–Shannon | $\tfrac12 \mathrm{KL}(p\|m) + \tfrac12 \mathrm{KL}(q\|m)$, $m = \tfrac12(p+q)$ |

`entjax` takes **logits** (any unnormalised log-probabilities) for categorical inputs, works per
example (no reduction), and reports nats unless you pass `base=2` for bits.
""",
    ),
    (
        "code",
        """
import jax
import jax.numpy as jnp
import numpy as np
import optax

import entjax

np.set_printoptions(precision=4, suppress=True)
""",
    ),
    (
        "md",
        r"""
## Entropy: the textbook value

The softmax of the logits $[2, 1, 0.1]$ is about $[0.659, 0.242, 0.099]$. Its entropy is
$0.8467$ nats. First by hand, then with `entjax.entropy` (which takes the logits directly and
works in log space).
""",
    ),
    (
        "code",
        """
logits = np.array([2.0, 1.0, 0.1])
p = np.exp(logits - logits.max())
p /= p.sum()
h_by_hand = -np.sum(p * np.log(p))
h = entjax.entropy(jnp.asarray(logits, jnp.float32))
print("p =", p)
print(f"by hand: {h_by_hand:.4f} nats   entjax: {float(h):.4f} nats")
assert abs(h_by_hand - 0.8467) < 1e-4
assert abs(float(h) - h_by_hand) < 1e-5
""",
    ),
    (
        "md",
        r"""
## Nats and bits

$\log_2 x = \ln x / \ln 2$, so one bit is $\ln 2 \approx 0.693$ nats. A fair coin has 1 bit of
entropy, a uniform choice among 8 has 3 bits, among the 10 digit classes $\log_2 10 \approx 3.32$
bits ($\ln 10 \approx 2.303$ nats), the maximum for 10 classes.
""",
    ),
    (
        "code",
        """
fair_coin = entjax.binary_entropy(jnp.float32(0.0), base=2)  # logit 0 <=> p = 1/2
uniform8 = entjax.entropy(jnp.zeros(8), base=2)
uniform10_nats = entjax.entropy(jnp.zeros(10))
uniform10_bits = entjax.entropy(jnp.zeros(10), base=2)
print(f"fair coin: {float(fair_coin):.4f} bit   uniform over 8: {float(uniform8):.4f} bits")
print(f"uniform over 10: {float(uniform10_nats):.4f} nats = {float(uniform10_bits):.4f} bits")
print(f"[2, 1, 0.1]: {float(h):.4f} nats = {float(entjax.entropy(logits, base=2)):.4f} bits")
assert abs(float(fair_coin) - 1.0) < 1e-6
assert abs(float(uniform8) - 3.0) < 1e-6
assert abs(float(uniform10_nats) - np.log(10)) < 1e-6
assert abs(float(entjax.entropy(logits, base=2)) - h_by_hand / np.log(2)) < 1e-5
""",
    ),
    (
        "md",
        r"""
## Cross-entropy

With a hard label $y$ the cross-entropy is just $-\log p_y$: for label 0,
$-\log 0.659 = 0.4170$. With a soft target distribution it is $-\sum_c y_c \log p_c$.
`entjax.softmax_cross_entropy_with_integer_labels` and `entjax.softmax_cross_entropy` have the
same signatures as their `optax.losses` namesakes, so swapping the import is safe.
""",
    ),
    (
        "code",
        """
ce0 = entjax.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits), 0)
print(f"CE(label 0) = {float(ce0):.4f} = -log p_0 = {-np.log(p[0]):.4f}")
assert abs(float(ce0) - 0.4170) < 1e-4

soft = np.array([0.8, 0.1, 0.1])
ce_soft = entjax.softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(soft))
print(f"CE(soft target) = {float(ce_soft):.4f}  by hand: {-np.sum(soft * np.log(p)):.4f}")
assert abs(float(ce_soft) - (-np.sum(soft * np.log(p)))) < 1e-5

# Same numbers as optax, per example, on a batch.
batch = jax.random.normal(jax.random.key(0), (4, 10))
labels = jnp.array([0, 3, 9, 1])
ours = entjax.softmax_cross_entropy_with_integer_labels(batch, labels)
theirs = optax.losses.softmax_cross_entropy_with_integer_labels(batch, labels)
print("entjax:", np.asarray(ours))
print("optax: ", np.asarray(theirs))
assert np.allclose(ours, theirs, atol=1e-6)
""",
    ),
    (
        "md",
        r"""
## KL divergence = cross-entropy − entropy

$\mathrm{KL}(p\,\|\,q) = H(p, q) - H(p) \ge 0$, zero only when $p = q$, and not symmetric.
`entjax.kl_divergence(p_logits, q_logits)` is $\mathrm{KL}(p\,\|\,q)$ in the order the
mathematics is written.

**The optax trap:** `optax.kl_divergence(log_predictions, targets)` computes
$\mathrm{KL}(\text{targets}\,\|\,\text{predictions})$ — the *second* argument is the first
distribution. The cell below shows both orders.
""",
    ),
    (
        "code",
        """
q_logits = np.array([-1.0, 0.0, 3.0])
q = np.exp(q_logits) / np.exp(q_logits).sum()
kl_pq = entjax.kl_divergence(logits, q_logits)
kl_qp = entjax.kl_divergence(q_logits, logits)
ce_pq = entjax.softmax_cross_entropy(q_logits, p)  # H(p, q): targets p, predictions q
print(f"KL(p||q) = {float(kl_pq):.4f}   H(p,q) - H(p) = {float(ce_pq - h):.4f}")
print(f"KL(q||p) = {float(kl_qp):.4f}   (not symmetric)")
assert abs(float(kl_pq) - np.sum(p * np.log(p / q))) < 1e-5
assert abs(float(kl_pq) - float(ce_pq - h)) < 1e-5
assert abs(float(kl_pq) - float(kl_qp)) > 0.5

# optax: the first argument is the log of the *second* distribution of the KL.
optax_kl = optax.kl_divergence(jnp.log(jnp.asarray(q)), jnp.asarray(p))
print(f"optax.kl_divergence(log q, p) = {float(optax_kl):.4f}  = KL(p||q)")
assert abs(float(optax_kl) - float(kl_pq)) < 1e-5
""",
    ),
    (
        "md",
        r"""
## Jensen–Shannon divergence

JS is symmetric and bounded by $\ln 2$ nats = 1 bit, reached when the supports are disjoint.
Disjoint supports are expressed with `-inf` logits.
""",
    ),
    (
        "code",
        """
js_pq = entjax.js_divergence(logits, q_logits, base=2)
js_qp = entjax.js_divergence(q_logits, logits, base=2)
m = 0.5 * (p + q)
js_by_hand = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
print(f"JS(p,q) = {float(js_pq):.4f} bits  JS(q,p) = {float(js_qp):.4f}  by hand {js_by_hand:.4f}")
assert abs(float(js_pq) - js_by_hand) < 1e-5
assert abs(float(js_pq) - float(js_qp)) < 1e-6

left = jnp.array([0.0, 0.0, -jnp.inf, -jnp.inf])  # uniform on {0, 1}
right = jnp.array([-jnp.inf, -jnp.inf, 0.0, 0.0])  # uniform on {2, 3}
js_disjoint = entjax.js_divergence(left, right, base=2)
print(f"JS of disjoint supports: {float(js_disjoint):.4f} bit;"
      f" KL(left||right) = {float(entjax.kl_divergence(left, right))}")
assert abs(float(js_disjoint) - 1.0) < 1e-6
assert np.isposinf(float(entjax.kl_divergence(left, right)))
""",
    ),
    (
        "md",
        r"""
## Edge cases: where the naive formula fails

Three situations are routine in practice and mathematically harmless:

1. **`-inf` logits** mark impossible classes (padding, action masks, vocabulary masks). The
   softmax puts exactly 0 there and $0 \log 0 = 0$, so the entropy is finite.
2. **Exact zero probabilities** in a probability vector: same thing.
3. **Huge logits** ($\pm 10^4$): a near one-hot distribution with entropy $\approx 0$.

The naive code `-sum(p * log(p))` computes `0 * (-inf) = nan` in cases 1 and 2, and its gradient
is `nan` even when the value is protected with `jnp.where` (the "double where" problem of the JAX
FAQ). `entjax` returns finite values **and** finite gradients.
""",
    ),
    (
        "code",
        """
def naive_entropy(logits):
    p = jax.nn.softmax(logits)
    return -jnp.sum(p * jnp.log(p))


def where_entropy(logits):
    # Protects the value but not the gradient.
    p = jax.nn.softmax(logits)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(p), 0.0))


masked = jnp.array([2.0, 1.0, -jnp.inf])
rows = {
    "naive": naive_entropy,
    "jnp.where only": where_entropy,
    "entjax.entropy": entjax.entropy,
}
print(f"{'method':16s} {'H([2, 1, -inf])':>16s}  gradient")
for name, fn in rows.items():
    value, grad = jax.value_and_grad(fn)(masked)
    print(f"{name:16s} {float(value):16.4f}  {np.asarray(grad)}")

two = np.exp([2.0, 1.0]) / np.exp([2.0, 1.0]).sum()
h_two = -np.sum(two * np.log(two))
value, grad = jax.value_and_grad(entjax.entropy)(masked)
assert np.isnan(float(naive_entropy(masked)))
assert np.isnan(np.asarray(jax.grad(where_entropy)(masked))).any()
assert abs(float(value) - h_two) < 1e-6
assert np.isfinite(np.asarray(grad)).all()
""",
    ),
    (
        "code",
        """
# Exact zeros in a probability vector.
probs = jnp.array([0.5, 0.5, 0.0])
naive = -jnp.sum(probs * jnp.log(probs))
ours, grad = jax.value_and_grad(entjax.entropy_from_probs)(probs)
print(f"naive: {float(naive)}   entjax.entropy_from_probs: {float(ours):.4f} nats")
# d(-p log p)/dp = -log p - 1 is +inf at p = 0; entjax returns the finite stand-in
# -log(tiny) - 1 (tiny = smallest normal float32), so optimisers never see inf or nan.
print("gradient:", np.asarray(grad))
assert np.isnan(float(naive))
assert abs(float(ours) - np.log(2)) < 1e-6
assert np.isfinite(np.asarray(grad)).all()

# Cross-entropy against a zero-probability true class is +inf: that is the right answer.
print("H(y, p) with p_y = 0:", float(entjax.cross_entropy_from_probs(probs, 2)))
# ... while zero-probability classes with y_c = 0 contribute nothing.
print("H(y, p) with y = 0:", float(entjax.cross_entropy_from_probs(probs, 0)))
assert np.isposinf(float(entjax.cross_entropy_from_probs(probs, 2)))
assert abs(float(entjax.cross_entropy_from_probs(probs, 0)) - np.log(2)) < 1e-6
""",
    ),
    (
        "code",
        """
# Huge logits: exponentiating first overflows; log-softmax does not.
big = jnp.array([1e4, 0.0, -1e4])


def exp_first_entropy(logits):
    e = jnp.exp(logits)
    p = e / e.sum()
    return -jnp.sum(p * jnp.log(p))


ours, grad = jax.value_and_grad(entjax.entropy)(big)
print(f"exp first: {float(exp_first_entropy(big))}   entjax: {float(ours):.4g}")
print("entjax gradient:", np.asarray(grad))
assert np.isnan(float(exp_first_entropy(big)))
assert 0.0 <= float(ours) < 1e-6
assert np.isfinite(np.asarray(grad)).all()

# The `where` argument masks classes without writing -inf yourself, and a fully masked row is 0.
x = jnp.array([[2.0, 1.0, 0.1], [2.0, 1.0, 0.1]])
mask = jnp.array([[True, True, False], [False, False, False]])
print("masked entropies:", np.asarray(entjax.entropy(x, where=mask)))
assert abs(float(entjax.entropy(x, where=mask)[0]) - h_two) < 1e-6
assert float(entjax.entropy(x, where=mask)[1]) == 0.0
""",
    ),
    (
        "md",
        r"""
## Summary

* Entropy of softmax$([2, 1, 0.1])$ is 0.8467 nats = 1.2216 bits; CE with label 0 is 0.4170.
* $\mathrm{KL}(p\,\|\,q) = H(p, q) - H(p)$, asymmetric; mind the argument order of
  `optax.kl_divergence`.
* JS is symmetric and at most 1 bit.
* Masked classes, zero probabilities and huge logits are finite in value and gradient with
  `entjax`; the naive formula gives `nan`.
""",
    ),
]


# ---------------------------------------------------------------------------------------------
# 02: ensembles (runs experiments.ensemble_entropy)
# ---------------------------------------------------------------------------------------------

ENSEMBLES = [
    (
        "md",
        r"""
# 02 · Does an ensemble know what it doesn't know?

A small run of the main experiment, `experiments/ensemble_entropy.py`: K MLPs trained together
in one vmapped step on digits with the classes 8 and 9 held out, then evaluated in distribution
(test digits 0–7) and out of distribution (held-out digits, pure noise, shifted images).

For member predictive distributions $p_1, \dots, p_K$ with mean $\bar p$, the entropy of the
ensemble's prediction splits into two parts:

$$
\underbrace{H(\bar p)}_{\text{total}}
= \underbrace{\tfrac1K \textstyle\sum_k H(p_k)}_{\text{aleatoric}}
+ \underbrace{H(\bar p) - \tfrac1K \textstyle\sum_k H(p_k)}_{\text{epistemic = mutual information}}
$$

The epistemic part is zero when the members agree and grows when they disagree, which is what
should happen off the training distribution. `entjax.ensemble_uncertainty` computes all three
in log space. This notebook uses a tiny configuration (a few seconds of training); the README
shows the default run.
""",
    ),
    (
        "code",
        """
import json
import os
import tempfile

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image, display

import entjax
from experiments import ensemble_entropy

out = tempfile.mkdtemp(prefix="entjax_nb02_")
argv = ["--smoke", "--members", "4", "--steps", "150", "--out", out, "--no-progress"]
status = ensemble_entropy.main(argv)
assert status == 0, status
print(sorted(os.listdir(out)))
""",
    ),
    (
        "md",
        r"""
## The decomposition, recomputed from the saved logits

The run saves every member's logits on every evaluation set (`predictions.npz`). Recomputing the
decomposition here with `entjax.ensemble_uncertainty` shows that total = aleatoric + epistemic,
and how each part moves out of distribution.
""",
    ),
    (
        "code",
        """
pred = np.load(os.path.join(out, "predictions.npz"))
member_logits = pred["member_logits"]  # (K, n_all, C)
sets = {
    str(name): slice(int(a), int(b))
    for name, a, b in zip(pred["set_names"], pred["set_start"], pred["set_stop"], strict=True)
}
u = entjax.ensemble_uncertainty(jnp.asarray(member_logits), axis=0)
total, aleatoric, epistemic = (np.asarray(x) for x in u)
assert np.allclose(total, aleatoric + epistemic, atol=1e-5)
assert (epistemic > -1e-6).all()
assert (total <= np.log(member_logits.shape[-1]) + 1e-5).all()

print(f"{'set':20s} {'total':>7s} {'aleatoric':>10s} {'epistemic':>10s}   (nats, mean)")
for name in ["test", "heldout_classes", "noise", "rotation@5", "gaussian_noise@5"]:
    if name in sets:
        sl = sets[name]
        print(
            f"{name:20s} {total[sl].mean():7.3f} {aleatoric[sl].mean():10.3f}"
            f" {epistemic[sl].mean():10.3f}"
        )
# Pure noise is far from the training data: more total entropy, more member disagreement.
assert total[sets["noise"]].mean() > total[sets["test"]].mean()
assert epistemic[sets["noise"]].mean() > epistemic[sets["test"]].mean()
""",
    ),
    (
        "code",
        """
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
bins = np.linspace(0, np.log(member_logits.shape[-1]), 30)
for name in ["test", "heldout_classes", "noise"]:
    sl = sets[name]
    axes[0].hist(total[sl], bins=bins, alpha=0.5, density=True, label=name)
    axes[1].hist(epistemic[sl], bins=30, alpha=0.5, density=True, label=name)
axes[0].set_xlabel("total predictive entropy (nats)")
axes[1].set_xlabel("epistemic part: mutual information (nats)")
axes[0].legend()
plt.tight_layout()
plt.show()
""",
    ),
    (
        "md",
        r"""
## Reliability diagram

Confidence (top-1 probability) against accuracy in equal-width bins, from
`entjax.reliability_bins`, for the ensemble's averaged prediction (`entjax.ensemble_log_probs`)
and for member 0 alone. A calibrated model sits on the diagonal; ECE is the count-weighted mean
gap.
""",
    ),
    (
        "code",
        """
sl = sets["test"]
labels = jnp.asarray(pred["labels"][sl])
ens_logp = entjax.ensemble_log_probs(jnp.asarray(member_logits[:, sl]), axis=0)
fig, ax = plt.subplots(figsize=(4, 4))
for name, logits in [("ensemble", ens_logp), ("member 0", jnp.asarray(member_logits[0, sl]))]:
    rb = entjax.reliability_bins(logits, labels, num_bins=10)
    ece = float(entjax.expected_calibration_error(logits, labels, num_bins=10))
    keep = np.asarray(rb.counts) > 0
    ax.plot(np.asarray(rb.confidence)[keep], np.asarray(rb.accuracy)[keep], "o-",
            label=f"{name} (ECE {ece:.3f})")
    assert 0.0 <= ece <= 1.0
ax.plot([0, 1], [0, 1], "k--", lw=0.8)
ax.set_xlabel("confidence")
ax.set_ylabel("accuracy")
ax.legend()
plt.show()
""",
    ),
    (
        "md",
        "The experiment's own plots and report (same run):",
    ),
    (
        "code",
        """
for png in ["entropy_histograms.png", "reliability.png"]:
    path = os.path.join(out, png)
    if os.path.exists(path):
        display(Image(filename=path))
with open(os.path.join(out, "results.json")) as f:
    results = json.load(f)
print(sorted(results))
""",
    ),
    (
        "code",
        """
import shutil

shutil.rmtree(out)  # the run's outputs were only needed for this notebook
""",
    ),
]


# ---------------------------------------------------------------------------------------------
# 03: information bottleneck (runs experiments.information_bottleneck)
# ---------------------------------------------------------------------------------------------

INFORMATION_BOTTLENECK = [
    (
        "md",
        r"""
# 03 · The variational information bottleneck

The information bottleneck asks for a representation $Z$ of the input $X$ that keeps what
predicts $Y$ and forgets the rest: maximise $I(Z;Y) - \beta\, I(X;Z)$. Alemi et al. (2017) make it
trainable with a stochastic encoder $p(z\mid x) = \mathcal N(\mu(x), \mathrm{diag}\,\sigma^2(x))$,
a decoder $q(y \mid z)$ and a fixed marginal $r(z) = \mathcal N(0, I)$:

$$
\mathcal J = \mathbb E\,[-\log q(y \mid z)] + \beta\, \mathrm{KL}(p(z\mid x)\,\|\,r(z)),
\qquad I(X;Z) \le \mathbb E\,\mathrm{KL}, \qquad I(Z;Y) \ge H(Y) - \mathbb E\,[-\log q(y\mid z)].
$$

`entjax.vib_loss` returns the loss and both bounds. First one batch by hand, then a small
$\beta$ sweep with `experiments/information_bottleneck.py`.
""",
    ),
    (
        "code",
        """
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from IPython.display import Image, display

import entjax
from experiments import information_bottleneck as ib

key_mean, key_logits, key_z = jax.random.split(jax.random.key(0), 3)
mean = jax.random.normal(key_mean, (4, 3))
log_var = jnp.full((4, 3), -1.0)
z = entjax.reparameterize(key_z, mean, log_var)  # one sample per example
W = jax.random.normal(key_logits, (3, 10))
labels = jnp.array([0, 1, 2, 3])
out = entjax.vib_loss(z @ W, labels, mean, log_var, beta=1e-2, base=2)
for field, value in out._asdict().items():
    print(f"{field:10s}", np.asarray(value).round(3))

# The KL of N(mu, sigma^2) from N(0, 1), summed over dimensions, written out (nats -> bits):
kl = 0.5 * np.sum(np.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1) / np.log(2)
assert np.allclose(out.izx_upper, kl, atol=1e-5)
assert np.allclose(out.izy_lower, np.log2(10) - np.asarray(out.ce) / np.log(2), atol=1e-5)
""",
    ),
    (
        "md",
        r"""
## A small β sweep

Three values of β, one seed, a few hundred steps (the default script sweeps six decades with two
seeds). All members train together in one vmapped step; β is a per-member input of the objective.
""",
    ),
    (
        "code",
        """
config = ib.Config(
    betas=(1e-4, 1e-2, 1.0),
    seeds=1,
    latent_dim=8,
    width=64,
    steps=200,
    learning_rate=3e-3,
    eval_every=100,
    eval_samples=4,
)
out_dir = tempfile.mkdtemp(prefix="entjax_nb03_")
results = ib.run(config, out_dir, progress=False)
print(ib.report(results))
""",
    ),
    (
        "code",
        """
r = results["ib"]
izx = r["test"]["izx_bits"]["mean"]
izy = r["test"]["izy_bits"]["mean"]
acc = r["test"]["accuracy"]["mean"]
for beta, a, b, c in zip(r["betas"], izx, izy, acc, strict=True):
    print(f"beta={beta:<7g} I(X;Z) <= {a:7.2f} bits   I(Z;Y) >= {b:5.2f} bits   accuracy {c:.3f}")
# The compression side of the trade-off: the I(X;Z) bound falls as beta grows.
assert izx[0] > izx[1] > izx[2] >= 0
assert all(b_ <= r["h_y_bits"] + 1e-6 for b_ in izy)
display(Image(filename=os.path.join(out_dir, "information_plane.png")))
""",
    ),
    (
        "md",
        r"""
Reading the plot: each point is one β. Small β keeps many bits about $X$ (far right) with
$I(Z;Y)$ near its ceiling $H(Y) = \log_2 10$; large β squeezes $I(X;Z)$ towards 0 and, past some
point, $I(Z;Y)$ and the accuracy collapse with it. Test points lie a little below the training
points (the crosses): the generalisation gap in bits.
""",
    ),
    (
        "code",
        """
import shutil

shutil.rmtree(out_dir)  # the run's outputs were only needed for this notebook
""",
    ),
]


# ---------------------------------------------------------------------------------------------
# 04: ELBO and IWAE (runs experiments.elbo)
# ---------------------------------------------------------------------------------------------

ELBO = [
    (
        "md",
        r"""
# 04 · The ELBO and importance-weighted bounds

For a latent-variable model $p(x, z) = p(z)\,p(x \mid z)$ and any $q(z \mid x)$,

$$
\log p(x) \;\ge\; \mathcal L_k = \mathbb E \log \frac1k \sum_{i=1}^k
\frac{p(x, z_i)}{q(z_i \mid x)}, \quad z_i \sim q,
\qquad \mathcal L_1 = \mathrm{ELBO} \le \mathcal L_k \le \mathcal L_{k+1} \le \log p(x).
$$

First a one-dimensional model where $\log p(x)$ is known exactly, then a small VAE on binarised
digits with `experiments/elbo.py`.
""",
    ),
    (
        "code",
        """
import os
import tempfile

import jax
import jax.numpy as jnp
from IPython.display import Image, display

import entjax
from experiments import elbo as elbo_exp


def log_normal(x, m, v):
    return -0.5 * (jnp.log(2 * jnp.pi * v) + (x - m) ** 2 / v)


# z ~ N(0, 1), x | z ~ N(z, 1), observed x = 1.5: log p(x) = log N(1.5; 0, 2).
# q(z) = N(0.5, 1) is deliberately not the exact posterior N(0.75, 0.5).
x = 1.5
log_px = float(log_normal(x, 0.0, 2.0))
q_mean, q_log_var = jnp.float32(0.5), jnp.float32(0.0)
z = entjax.reparameterize(jax.random.key(0), q_mean, q_log_var, num_samples=200_000)
log_w = log_normal(x, z, 1.0) + log_normal(z, 0.0, 1.0) - log_normal(z, q_mean, 1.0)

elbo = float(entjax.elbo(log_normal(x, z, 1.0), mean=q_mean[None], log_var=q_log_var[None]).elbo)
print(f"log p(x) = {log_px:.4f}   ELBO = {elbo:.4f}")
bounds = {}
for k in (1, 5, 50):
    # 200,000 samples in groups of k: the mean of L_k over the groups.
    bounds[k] = float(entjax.iwae_bound(log_w.reshape(-1, k), axis=1).mean())
    print(f"IWAE k={k:<3d} {bounds[k]:.4f}")
assert elbo < bounds[5] < bounds[50] < log_px + 1e-3
assert abs(bounds[1] - elbo) < 0.01  # L_1 is the (Monte-Carlo) ELBO
""",
    ),
    (
        "md",
        r"""
## A small VAE on binarised digits

Members trained with the ELBO (k = 1) and with the IWAE bound (k = 5) share one vmapped step: the
sample count is a per-member input, implemented with `entjax.iwae_bound(..., where=mask)`. The
test bounds are recorded during training; at the end $\log p(x)$ is estimated with many
importance samples. A tiny configuration; see the README for the default run.
""",
    ),
    (
        "code",
        """
config = elbo_exp.Config(
    train_ks=(1, 5),
    seeds=1,
    latent_dim=4,
    width=64,
    steps=200,
    learning_rate=3e-3,
    eval_every=100,
    eval_ks=(1, 5, 50),
    final_k=100,
)
out_dir = tempfile.mkdtemp(prefix="entjax_nb04_")
results = elbo_exp.run(config, out_dir, progress=False)
print(elbo_exp.report(results))
""",
    ),
    (
        "code",
        """
r = results["vae"]
for i, k in enumerate(r["train_ks"]):
    b = [r["test_bounds"][f"k{e}"]["mean"][i] for e in r["eval_ks"]]
    ll = r["test_log_likelihood"]["mean"][i]
    print(f"trained with k={k}: ELBO {b[0]:.2f} <= IWAE-5 {b[1]:.2f} <= IWAE-50 {b[2]:.2f}"
          f" <= log p(x) ~ {ll:.2f}")
    # The bounds tighten with k (up to the Monte-Carlo error of each estimate).
    assert b[0] < b[2]
    assert b[0] <= b[1] + 0.05
    assert b[1] <= b[2] + 0.05
    assert b[2] <= ll + 0.05
display(Image(filename=os.path.join(out_dir, "curves.png")))
display(Image(filename=os.path.join(out_dir, "samples.png")))
display(Image(filename=os.path.join(out_dir, "reconstructions.png")))
""",
    ),
    (
        "code",
        """
import shutil

shutil.rmtree(out_dir)  # the run's outputs were only needed for this notebook
""",
    ),
]


NOTEBOOKS = {
    "01_entropy_basics": ENTROPY_BASICS,
    "02_ensembles": ENSEMBLES,
    "03_information_bottleneck": INFORMATION_BOTTLENECK,
    "04_elbo": ELBO,
}


def main() -> None:
    paths = [_write(name, spec) for name, spec in NOTEBOOKS.items()]
    ruff = shutil.which("ruff")
    if ruff:  # keep the committed cells in ruff's format (ruff formats notebooks too)
        subprocess.run([ruff, "format", "--quiet", *map(str, paths)], check=False)
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
