"""fastdistill-steps: data steps for fastdistill (loaders, canonicalisation, SQL gates, exporters).

The plugin entry point is :mod:`fastdistill_steps.plugin`.  Importing this package imports
nothing heavy (pyarrow only when a Parquet file is read).
"""

from __future__ import annotations

from fastdistill_steps.canonical import Canonicalize, ComputeHash
from fastdistill_steps.dedup import DedupExact
from fastdistill_steps.export import ExportChat, ExportJsonl
from fastdistill_steps.loaders import LoadJsonl, LoadParquet
from fastdistill_steps.scoring import QualityGate, ScoreExec
from fastdistill_steps.sql.exec_eval import SqliteExecEval
from fastdistill_steps.sql.extract import ExtractSql
from fastdistill_steps.sql.rules import RuleFilter
from fastdistill_steps.sql.schema import SqliteSchema

__version__ = "0.1.0"

__all__ = [
    "Canonicalize",
    "ComputeHash",
    "DedupExact",
    "ExportChat",
    "ExportJsonl",
    "ExtractSql",
    "LoadJsonl",
    "LoadParquet",
    "QualityGate",
    "RuleFilter",
    "ScoreExec",
    "SqliteExecEval",
    "SqliteSchema",
    "__version__",
]
