"""``python -m experiments.ensemble_entropy [flags]``: the one runner's command line."""

import sys

from experiments.ensemble_entropy import main

sys.exit(main())
