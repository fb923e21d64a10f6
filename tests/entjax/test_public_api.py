"""The public surface: every name in ``entjax.__all__`` exists and is documented.

Generic over ``__all__`` so that names added by later modules are checked too.
"""

import inspect
import pathlib

import pytest

import entjax

PUBLIC = list(entjax.__all__)

CORE = [
    "entropy",
    "entropy_from_probs",
    "binary_entropy",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "cross_entropy_from_probs",
    "sigmoid_binary_cross_entropy",
    "kl_divergence",
    "categorical_kl",
    "js_divergence",
    "perplexity",
    "mutual_information",
    "conditional_entropy",
    "validate_probs",
    "validate_labels",
    "checked",
]

# Names shared with optax.losses accept `axis` and `where` positionally, as optax does.
OPTAX_SHARED = {
    "kl_divergence",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "sigmoid_binary_cross_entropy",
}


def test_all_is_sorted_unique_and_public():
    assert sorted(set(PUBLIC)) == PUBLIC
    assert all(not name.startswith("_") for name in PUBLIC)


def test_core_names_are_exported():
    missing = sorted(set(CORE) - set(PUBLIC))
    assert not missing, missing


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_is_documented(name):
    obj = getattr(entjax, name)  # AttributeError if __all__ lists a missing name
    assert callable(obj) or inspect.getdoc(obj), f"{name} is neither callable nor documented"
    assert not inspect.ismodule(obj), f"{name} re-exports a module"
    doc = inspect.getdoc(obj) or ""
    summary = doc.strip().splitlines()[0] if doc.strip() else ""
    assert summary.endswith("."), f"{name}: the docstring needs a one-line summary"
    if inspect.isclass(obj):
        return  # result types (NamedTuples) are documented with the function returning them
    assert "Examples:" in doc, f"{name}: the docstring has no `Examples:` section"
    assert ">>>" in doc.split("Examples:", 1)[1], f"{name}: `Examples:` has no doctest"
    assert "References:" in doc, f"{name}: the docstring has no `References:` section"


@pytest.mark.parametrize("name", [n for n in PUBLIC if inspect.isfunction(getattr(entjax, n))])
def test_public_functions_are_typed_with_keyword_only_options(name):
    fn = getattr(entjax, name)
    sig = inspect.signature(fn)
    hints = {k for k, p in sig.parameters.items() if p.annotation is not inspect.Parameter.empty}
    untyped = [
        k
        for k, p in sig.parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and k not in hints
    ]
    assert not untyped, f"{name}: parameters without type hints: {untyped}"
    assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return annotation"
    if name in CORE and name not in OPTAX_SHARED:
        # Data first, options keyword-only: every parameter with a default is keyword-only.
        positional_defaults = [
            k
            for k, p in sig.parameters.items()
            if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not inspect.Parameter.empty
        ]
        assert not positional_defaults, f"{name}: options must be keyword-only"


@pytest.mark.parametrize("name", sorted(OPTAX_SHARED))
def test_optax_shared_names_take_optax_arguments(name):
    """Swapping the import is safe: optax's parameters, in optax's order, come first."""
    import optax

    ours = list(inspect.signature(getattr(entjax, name)).parameters)
    theirs = list(inspect.signature(getattr(optax.losses, name)).parameters)
    assert ours[: len(theirs)] == theirs


def test_kl_names_follow_the_optax_rule():
    """A name shared with optax takes optax's arguments; KL from two logits has its own name."""
    assert list(inspect.signature(entjax.kl_divergence).parameters)[:4] == [
        "log_predictions",
        "targets",
        "axis",
        "where",
    ]
    assert list(inspect.signature(entjax.categorical_kl).parameters)[:2] == [
        "p_logits",
        "q_logits",
    ]
    assert "categorical_kl" in inspect.getdoc(entjax.kl_divergence)
    assert "optax" in inspect.getdoc(entjax.kl_divergence).lower()


def test_package_is_typed():
    assert (pathlib.Path(entjax.__file__).parent / "py.typed").is_file()
    assert isinstance(entjax.__version__, str)
