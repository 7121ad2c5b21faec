"""fastdistill-steps: data steps for fastdistill (loaders, canonicalisation, SQL gates, exporters).

The plugin entry point is :mod:`fastdistill_steps.plugin`.  Importing this package imports
nothing: each step is imported from the module that defines it, e.g.
``from fastdistill_steps.loaders import LoadJsonl`` (:mod:`~fastdistill_steps.loaders`,
:mod:`~fastdistill_steps.canonical`, :mod:`~fastdistill_steps.dedup`,
:mod:`~fastdistill_steps.scoring`, :mod:`~fastdistill_steps.export`,
:mod:`~fastdistill_steps.sql.schema`, :mod:`~fastdistill_steps.sql.extract`,
:mod:`~fastdistill_steps.sql.rules`, :mod:`~fastdistill_steps.sql.exec_eval`).  The package
root re-exports nothing so that plugin discovery, which imports
:mod:`fastdistill_steps.plugin`, builds no step class; pyarrow is imported only when a Parquet
file is read.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
