"""``report.md`` of ``elbo``, from the results alone."""

from __future__ import annotations

from typing import Any

from experiments.core import outputs
from experiments.elbo.config import LABELS, MEASURES


def _main_table(r: dict[str, Any]) -> str:
    headers = ["trained with", *(LABELS[m] for m in MEASURES)]
    rows = [
        [arm, *(outputs.interval_at(r["measures"][m], i) for m in MEASURES)]
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
            outputs.interval_at(r["test_elbo"], i),
            *(outputs.interval_at(r["test_bounds"][n], i) for n in names),
            outputs.interval_at(r["test_log_likelihood"], i),
        ]
        for i, arm in enumerate(r["arms"])
    ]
    return outputs.markdown_table(headers, rows, digits=2)


def _direction(d: dict[str, Any], up: str = "higher", down: str = "lower") -> str:
    """A paired difference with its direction in words where the interval excludes 0."""
    if not d["significant"]:
        return f"{outputs.fmt(d, 2)} (no significant difference)"
    return f"{outputs.fmt(d, 2)} ({up if d['mean'] > 0 else down})"


def _sized(d: dict[str, Any]) -> str:
    """A test log p(x) difference: a direction only where it also exceeds the remaining rise."""
    if not d["significant"]:
        return _direction(d)
    if d.get("exceeds_rise", True):
        return _direction(d)
    return f"{outputs.fmt(d, 2)} (within the remaining rise of the estimate: not claimed)"


def _comparison_lines(r: dict[str, Any]) -> list[str]:
    lines = []
    for row in r["comparisons"]:
        parts = []
        for m in MEASURES:
            if m == "active_units":
                text = _direction(row[m], "more", "fewer")
            elif m == "test_log_px":
                text = _sized(row[m])
            else:
                text = _direction(row[m])
            parts.append(f"{LABELS[m]} {text}")
        lines.append(f"- **{row['a']} − {row['b']}**: " + "; ".join(parts) + ".")
    return lines


def _convergence(r: dict[str, Any]) -> list[str]:
    c = r["convergence"]
    top, ref, first = c["top_k"], c["reference_k"], c["ks"][0]
    headers = ["trained with", *(f"IWAE-{k}" for k in c["ks"])]
    headers += [f"rise {ref} → {top}", f"rise {first} → {top}"]
    rows = [
        [
            arm,
            *(outputs.fmt(c["arms"][arm]["estimates"][f"k{k}"], 2) for k in c["ks"]),
            outputs.fmt(c["arms"][arm]["rise"], 2),
            outputs.fmt(c["arms"][arm]["rise_from_first"], 2),
        ]
        for arm in r["arms"]
    ]
    lines = [
        "## Convergence of the log p(x) estimate",
        "",
        f"IWAE-k on the first {c['num_images']} test images, for every trained model: each k "
        f"is the mean over the {top} // k disjoint blocks of the same {top} importance samples "
        "per image (an unbiased estimate of E[IWAE-k], a lower bound on log p(x) that rises "
        "towards it with k). Nats per image; mean [95% interval over seeds and images together, "
        "hierarchical bootstrap]. A rise is the per-image difference between two k.",
        "",
        outputs.markdown_table(headers, rows),
        "",
        f"log p(x) compared at k = {top} on these images. A direction is claimed only where the "
        "interval excludes 0 *and* its near end exceeds the upper end of the losing arm's rise "
        f"{ref} → {top}: that arm's estimate was still rising by about that much. The rise left "
        f"beyond k = {top} is not measured (were the bias ∝ 1/k, it would be "
        f"{ref / (top - ref):.2g} × the rise {ref} → {top}).",
        "",
    ]
    for row in c["comparisons"]:
        d = row["difference"]
        if row["claimed"]:
            verdict = "higher" if d["mean"] > 0 else "lower"
        elif d["significant"]:
            verdict = (
                f"not claimed: within the losing arm's rise (up to {row['loser_rise_high']:.2f})"
            )
        else:
            verdict = "no significant difference"
        lines.append(f"- **{row['a']} − {row['b']}**: {outputs.fmt(d, 2)} ({verdict}).")
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
            f"IWAE-{r['final_k']} (a lower bound in expectation; its convergence is checked "
            "below), on the test split and on as many training images; active "
            f"units: Var_x(E_q[z_j]) > {r['active_threshold']} over the test images, of "
            f"{config['latent_dim']}. Mean [95% interval] over seeds (Student t, ddof = 1).",
            "",
            _main_table(r),
            "",
            "## Paired differences (same init, batches and noise per seed)",
            "",
            "Test log p(x) and test ELBO: the per-image differences, with a 95% interval over "
            "seeds and test images together (hierarchical bootstrap); the other measures: the "
            "per-seed differences, Student t over seeds. A direction is claimed only where the "
            "interval excludes 0; for the test log p(x) (IWAE-"
            f"{r['final_k']}) also only where its near end exceeds the losing arm's remaining "
            f"rise of the estimate (IWAE-{r['convergence']['top_k']} − "
            f"IWAE-{r['convergence']['reference_k']} on the check images, upper end; next "
            "section). The train log p(x) and the train − test gap compare IWAE-"
            f"{r['final_k']} bounds, not converged log-likelihoods.",
            "",
            *_comparison_lines(r),
            "",
            "## Check: ELBO ≤ IWAE-k ≤ log p(x) on the test split",
            "",
            _bounds_table(r),
            "",
            f"The order (Burda et al.'s theorem, in expectation) {order} for every member "
            "within 0.05 nats of Monte-Carlo error.",
            "",
            *_convergence(r),
            "",
            "Entropies below are those of the decoder's 64 Bernoulli outputs at the posterior "
            "mean, in nats per image; the max entropy (the ceiling) is 64 ln 2 = "
            f"{r['max_entropy']:.2f} nats, that of 64 fair binary pixels.",
        ]
    )
