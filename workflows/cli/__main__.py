"""``python -m workflows.cli``: the ``genmatch`` command line without the console script."""

import sys

from workflows.cli import main

sys.exit(main())
