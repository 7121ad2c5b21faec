"""CUDA device placement for fastdistill.

``pip install fastdistill-cuda`` registers the placement strategies ``cuda_round_robin`` and
``cuda_auto``; ``pip install 'fastdistill-cuda[nvml]'`` adds the NVML device inventory.
"""

from __future__ import annotations

from fastdistill_cuda.inventory import (
    CudaPlacementError,
    DeviceInfo,
    DeviceInventory,
    EmptyInventory,
    FakeInventory,
    NoFreeDeviceError,
    NvmlInventory,
    TorchInventory,
    detect_inventory,
)
from fastdistill_cuda.placement import (
    CudaFreeMemoryPlacement,
    CudaRoundRobinPlacement,
    parse_visible_devices,
)

__version__ = "0.1.0"

__all__ = [
    "CudaFreeMemoryPlacement",
    "CudaPlacementError",
    "CudaRoundRobinPlacement",
    "DeviceInfo",
    "DeviceInventory",
    "EmptyInventory",
    "FakeInventory",
    "NoFreeDeviceError",
    "NvmlInventory",
    "TorchInventory",
    "detect_inventory",
    "parse_visible_devices",
]
