"""``python -m fastdistill.cli``."""

import sys

from fastdistill.cli import main

sys.exit(main())
