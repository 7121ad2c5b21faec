"""fastdistill-steps: data steps for fastdistill (loaders, canonicalisation, SQL gates, exporters).

Import step classes from their modules (``fastdistill_steps.loaders.LoadJsonl`` ...); the plugin
entry point is :mod:`fastdistill_steps.plugin`.  Importing this package imports nothing heavy.
"""

from __future__ import annotations

__version__ = "0.1.0"
