"""``python -m fleet.load``: the same as ``fleet load``."""

import sys

from fleet.load.cli import main

sys.exit(main())
