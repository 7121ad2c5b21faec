"""fastdistill: build teacher-to-student distillation datasets with a plugin ecosystem.

``import fastdistill`` is cheap: it imports no plugin and no heavy library.
"""

from __future__ import annotations

from fastdistill.context import StepContext, StepMetrics
from fastdistill.errors import (
    DocumentError,
    FastDistillError,
    MissingDependencyError,
    OutputInUseError,
    PipelineValidationError,
    PluginError,
    RunCancelled,
    StepError,
    UnknownComponentError,
)
from fastdistill.hookspecs import hookimpl, hookspec
from fastdistill.models import LLM, Generation
from fastdistill.pipeline import Pipeline, RunResult
from fastdistill.placement import DeviceAssignment
from fastdistill.registry import ComponentInfo, PluginInfo, Registry
from fastdistill.rows import ROW_ID, Reason, Rejection, Row
from fastdistill.step import GeneratorStep, GlobalStep, RuntimeParameter, Step, Task
from fastdistill.storage import StorageBackend

__version__ = "0.1.0"

__all__ = [
    "LLM",
    "ROW_ID",
    "ComponentInfo",
    "DeviceAssignment",
    "DocumentError",
    "FastDistillError",
    "Generation",
    "GeneratorStep",
    "GlobalStep",
    "MissingDependencyError",
    "OutputInUseError",
    "Pipeline",
    "PipelineValidationError",
    "PluginError",
    "PluginInfo",
    "Reason",
    "Registry",
    "Rejection",
    "Row",
    "RunCancelled",
    "RunResult",
    "RuntimeParameter",
    "Step",
    "StepContext",
    "StepError",
    "StepMetrics",
    "StorageBackend",
    "Task",
    "UnknownComponentError",
    "__version__",
    "hookimpl",
    "hookspec",
]
