"""``python -m experiments.information_bottleneck [flags]``: the experiment's command line."""

import sys

from experiments.information_bottleneck import main

sys.exit(main())
