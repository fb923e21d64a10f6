"""Train a 5-member Flax NNX ensemble on digits 0-7, evaluate it and its members (8, 9: OOD)."""

import jax.numpy as jnp
import optax
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import entjax
import entjax.nnx

x, y = load_digits(return_X_y=True)  # train / validation / test: 60 / 20 / 20 % of digits 0-7
xtr, xva, ytr, yva = train_test_split(x[y < 8], y[y < 8], test_size=0.4, random_state=0)
xva, xte, yva, yte = train_test_split(xva, yva, test_size=0.5, random_state=0)
mean, sd = xtr.mean(0), xtr.std(0).clip(1.0)  # pixels are 0-16: a floor for near-constant ones
xtr, xva, xte, xood = (((a - mean) / sd).astype("float32") for a in (xtr, xva, xte, x[y > 7]))
ce = entjax.term(entjax.softmax_cross_entropy_with_integer_labels, "output", "y")
loss_fn = entjax.make_objective(lambda model, batch: model(batch["x"]), {"ce": ce})
mlp = lambda r: nnx.Sequential(nnx.Linear(64, 64, rngs=r), nnx.relu, nnx.Linear(64, 8, rngs=r))
members = entjax.nnx.stack(mlp, 5, rngs=0)
opt = entjax.nnx.optimizer(members, optax.adam(1e-3))
step = nnx.jit(entjax.nnx.train_step, static_argnames=("loss_fn", "shared_batch"))
for i in nnx.Rngs(1).randint((600, 5, 64), 0, len(xtr)):  # each member its own minibatches
    step(members, opt, {"x": xtr[i], "y": ytr[i]}, loss_fn, shared_batch=False)
logits = [entjax.nnx.predict(members, a) for a in (xva, xte, xood)]  # [5, N, 8] each
table, ood_metrics = {}, {"AUROC": entjax.auroc, "AUPR": entjax.aupr, "FPR@95": entjax.fpr_at_tpr}
for name, idx in [(f"member {i}", [i]) for i in range(5)] + [("ensemble", list(range(5)))]:
    va, te, ood = (a[jnp.array(idx)] for a in logits)  # the members idx, [len(idx), N, 8]
    lp, lp_va = entjax.ensemble_log_probs(te), entjax.ensemble_log_probs(va)
    ok, t = lp.argmax(-1) == yte, entjax.fit_temperature(lp_va, yva)  # T fitted on validation
    ece, nll = entjax.expected_calibration_error, entjax.negative_log_likelihood(lp, yte).mean()
    ev = table[name] = {"accuracy": ok.mean(), "NLL": nll, "ECE": ece(lp, yte)}
    ev |= {"ECE (T-scaled)": ece(lp / t, yte), "AURC": entjax.aurc(lp.max(-1), ok)}
    u, v = entjax.ensemble_uncertainty(te), entjax.ensemble_uncertainty(ood)
    scores = {"entropy": (u.total, v.total), "MI": (u.epistemic, v.epistemic)}
    scores["energy"] = [entjax.energy_score(a).mean(0) for a in (te, ood)]  # mean over members
    ev |= {f"{m} {s}": f(*scores[s]) for s in scores for m, f in ood_metrics.items()}
print(f"{'':14}" + "".join(f"{name:>10}" for name in table))  # one member's MI is 0: chance
for row in table["ensemble"]:
    print(f"{row:14}" + "".join(f"{ev[row]:10.4f}" for ev in table.values()))
