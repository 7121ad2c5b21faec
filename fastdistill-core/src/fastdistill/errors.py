"""Exceptions raised by fastdistill.  Each message names the step, row, file or plugin at fault."""

from __future__ import annotations


class FastDistillError(Exception):
    """Base class of every fastdistill error."""


class PluginError(FastDistillError):
    """A plugin is broken, misspells a hook, or registers a name another plugin already has."""


class UnknownComponentError(FastDistillError, KeyError):
    """A component name that no installed plugin registers."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class PipelineValidationError(FastDistillError):
    """The pipeline cannot run: a cycle, a missing column or parameter, an unknown component."""


class DocumentError(FastDistillError):
    """A pipeline document (YAML/JSON) is malformed, too new, or references unknown names."""


class StepError(FastDistillError):
    """A step failed as a whole (not a single row): loading, or an error it chose to raise."""


class MissingDependencyError(FastDistillError, ImportError):
    """An optional dependency is not installed; the message says what to ``pip install``."""


class RunCancelled(FastDistillError):
    """The run was cancelled (Ctrl+C or ``Pipeline.cancel()``); finished work is kept."""


class OutputInUseError(FastDistillError):
    """Another run is writing to the same output folder right now."""
