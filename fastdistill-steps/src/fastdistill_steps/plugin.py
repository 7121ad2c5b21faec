"""The ``steps`` plugin of fastdistill: registers every step of this package.

Cheap to import, and cheap to run: every step is registered lazily by its ``module:Class``
target, so discovery imports no step module (no pydantic class is built) until a step is used,
and no optional dependency (pyarrow) is imported until a step that needs it runs.
"""

from __future__ import annotations

from typing import Any

from fastdistill.hookspecs import hookimpl

#: registered name -> ``module:Class`` (imported on first use)
STEPS = {
    "load_jsonl": "fastdistill_steps.loaders:LoadJsonl",
    "load_parquet": "fastdistill_steps.loaders:LoadParquet",
    "canonicalize": "fastdistill_steps.canonical:Canonicalize",
    "compute_hash": "fastdistill_steps.canonical:ComputeHash",
    "dedup_exact": "fastdistill_steps.dedup:DedupExact",
    "sqlite_schema": "fastdistill_steps.sql.schema:SqliteSchema",
    "extract_sql": "fastdistill_steps.sql.extract:ExtractSql",
    "rule_filter": "fastdistill_steps.sql.rules:RuleFilter",
    "sqlite_exec_eval": "fastdistill_steps.sql.exec_eval:SqliteExecEval",
    "score_exec": "fastdistill_steps.scoring:ScoreExec",
    "quality_gate": "fastdistill_steps.scoring:QualityGate",
    "export_jsonl": "fastdistill_steps.export:ExportJsonl",
    "export_chat": "fastdistill_steps.export:ExportChat",
}


@hookimpl
def register_steps(register: Any) -> None:
    """Loaders, canonicalisation, dedup, SQL extraction and gates, scoring and exporters."""
    for name, target in STEPS.items():
        register(target, name=name)
