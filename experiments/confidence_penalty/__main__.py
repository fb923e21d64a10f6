"""``python -m experiments.confidence_penalty [flags]``: the command line of the experiment."""

import sys

from experiments.confidence_penalty import main

sys.exit(main())
