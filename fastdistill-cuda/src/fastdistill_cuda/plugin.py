"""The ``cuda`` entry point of fastdistill-cuda.  Cheap to import: no torch, no pynvml."""

from __future__ import annotations

from typing import Any

from fastdistill.hookspecs import hookimpl


@hookimpl
def register_placements(register: Any) -> None:
    """``cuda_round_robin`` and ``cuda_auto`` (most free memory first)."""
    from fastdistill_cuda.placement import CudaFreeMemoryPlacement, CudaRoundRobinPlacement

    register(CudaRoundRobinPlacement, name="cuda_round_robin")
    register(CudaFreeMemoryPlacement, name="cuda_auto")
