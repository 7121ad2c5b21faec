"""The ``steps`` plugin of fastdistill: registers every step of this package.

Cheap to import: step modules are imported only when the hook runs, and no optional dependency
(pyarrow) is imported until a step that needs it runs.
"""

from __future__ import annotations

from typing import Any

from fastdistill.hookspecs import hookimpl


@hookimpl
def register_steps(register: Any) -> None:
    """Loaders, canonicalisation, dedup, SQL extraction and gates, scoring and exporters."""
    from fastdistill_steps.canonical import Canonicalize, ComputeHash
    from fastdistill_steps.dedup import DedupExact
    from fastdistill_steps.export import ExportChat, ExportJsonl
    from fastdistill_steps.loaders import LoadJsonl, LoadParquet
    from fastdistill_steps.scoring import QualityGate, ScoreExec
    from fastdistill_steps.sql.exec_eval import SqliteExecEval
    from fastdistill_steps.sql.extract import ExtractSql
    from fastdistill_steps.sql.rules import RuleFilter
    from fastdistill_steps.sql.schema import SqliteSchema

    register(LoadJsonl, name="load_jsonl")
    register(LoadParquet, name="load_parquet")
    register(Canonicalize, name="canonicalize")
    register(ComputeHash, name="compute_hash")
    register(DedupExact, name="dedup_exact")
    register(SqliteSchema, name="sqlite_schema")
    register(ExtractSql, name="extract_sql")
    register(RuleFilter, name="rule_filter")
    register(SqliteExecEval, name="sqlite_exec_eval")
    register(ScoreExec, name="score_exec")
    register(QualityGate, name="quality_gate")
    register(ExportJsonl, name="export_jsonl")
    register(ExportChat, name="export_chat")
