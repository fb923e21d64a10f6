"""``python -m experiments.elbo [flags]``: the command line of the experiment."""

import sys

from experiments.elbo import main

sys.exit(main())
