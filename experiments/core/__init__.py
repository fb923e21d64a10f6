"""The one stack every experiment runs on; see ``experiments/core/README.md`` for who owns what."""
