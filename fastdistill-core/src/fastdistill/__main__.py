"""``python -m fastdistill``: the CLI."""

import sys

from fastdistill.cli import main

sys.exit(main())
