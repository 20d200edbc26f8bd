"""``python -m loopwave``: the same command line as the ``loopwave`` script."""

import sys

from .cli import main

sys.exit(main())
