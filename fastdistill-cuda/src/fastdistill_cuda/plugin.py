"""The ``cuda`` entry point of fastdistill-cuda.  Cheap to import: no torch, no pynvml.

The strategies are registered lazily by their ``module:Class`` targets: discovery imports no
placement module until a strategy is used.
"""

from __future__ import annotations

from typing import Any

from fastdistill.hookspecs import hookimpl


@hookimpl
def register_placements(register: Any) -> None:
    """``cuda_round_robin`` and ``cuda_auto`` (most free memory first)."""
    register("fastdistill_cuda.placement:CudaRoundRobinPlacement", name="cuda_round_robin")
    register("fastdistill_cuda.placement:CudaFreeMemoryPlacement", name="cuda_auto")
