"""Pipelines: composition, validation and running."""

from __future__ import annotations

from fastdistill.pipeline.compose import Chain, connect
from fastdistill.pipeline.core import Pipeline, RunResult

__all__ = ["Chain", "Pipeline", "RunResult", "connect"]
