"""Benchmarks, each a module run with ``python -m``; all share :mod:`.common` (one command line,
one interleaved timer, one environment block, one JSON writer, one table printer).

* ``python -m experiments.benchmarks.bench_losses`` — entjax's cross-entropy, entropy and KL
  against optax and plain ``jnp`` on materialised logits, beside memory-bound baselines
  (``--groups plain,fused``; ``fused`` adds the rows of ``bench_fused``).
* ``python -m experiments.benchmarks.bench_fused`` — fused linear + cross-entropy / entropy
  against ``hidden @ weight`` + the loss: time, XLA scratch and peak RSS in fresh subprocesses.
* ``python -m experiments.benchmarks.bench_ensemble`` — one vmapped K-member train step against
  K jitted single-member steps in a loop.

Every benchmark takes ``--out PATH`` (the JSON file), ``--quick`` (alias ``--smoke``: seconds),
``--reps N`` and ``--markdown`` (print the table as Markdown, followed by the command and the
JSON file it came from, for the README). Bad arguments print one line ``error: ...`` and exit
with status 2.
"""
