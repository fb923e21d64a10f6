"""``python -m experiments.information_plane [flags]``: the command line of the experiment."""

import sys

from experiments.information_plane import main

sys.exit(main())
