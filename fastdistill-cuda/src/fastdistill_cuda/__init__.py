"""CUDA device placement for fastdistill.

``pip install fastdistill-cuda`` registers the placement strategies ``cuda_round_robin`` and
``cuda_auto``; ``pip install 'fastdistill-cuda[nvml]'`` adds the NVML device inventory.

Import from the defining modules: the strategies
(:class:`~fastdistill_cuda.placement.CudaRoundRobinPlacement`,
:class:`~fastdistill_cuda.placement.CudaFreeMemoryPlacement`,
:func:`~fastdistill_cuda.placement.parse_visible_devices`) from :mod:`fastdistill_cuda.placement`,
the device inventories and errors (``DeviceInfo``, ``DeviceInventory``, ``FakeInventory``,
``NvmlInventory``, ``TorchInventory``, ``EmptyInventory``, ``detect_inventory``,
``CudaPlacementError``, ``NoFreeDeviceError``) from :mod:`fastdistill_cuda.inventory`.  The
package root re-exports nothing, so plugin discovery imports no placement module.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
