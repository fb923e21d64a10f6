"""``python -m experiments.entropy_vs_mse [flags]``: the command line of the experiment."""

import sys

from experiments.entropy_vs_mse import main

sys.exit(main())
