"""Core's own plugin: built-in transports, placement, engine and generic steps.

Registered through core's ``fastdistill`` entry point and the same hooks as any other plugin.
"""

from __future__ import annotations

from typing import Any

from fastdistill.hookspecs import hookimpl


@hookimpl
def register_transports(register: Any) -> None:
    """The in-memory and filesystem batch transports."""
    from fastdistill.transport import FilesystemTransport, MemoryTransport

    register(MemoryTransport, name="memory")
    register(FilesystemTransport, name="filesystem")


@hookimpl
def register_placements(register: Any) -> None:
    """The CPU placement (the default)."""
    from fastdistill.placement import CpuPlacement

    register(CpuPlacement, name="cpu")


@hookimpl
def register_engines(register: Any) -> None:
    """The local streaming engine (registered lazily: discovery imports no engine module)."""
    register("fastdistill.engine.local:LocalEngine", name="local")


@hookimpl
def register_steps(register: Any) -> None:
    """Generic steps every pipeline may need: load rows from a list, keep columns."""
    register("fastdistill.builtins.steps:LoadFromDicts", name="load_from_dicts")
    register("fastdistill.builtins.steps:KeepColumns", name="keep_columns")


@hookimpl
def register_migrations(register: Any) -> None:
    """Core's pipeline-document migrations."""
    from fastdistill.serialization.migrations import v1_to_v2

    register(v1_to_v2, name="core.v1_to_v2", from_version=1)
