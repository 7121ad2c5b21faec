"""Checks against the real machine: run only where NVML sees a CUDA device."""

from __future__ import annotations

import os

import pytest
from fastdistill.errors import MissingDependencyError
from fastdistill_cuda.inventory import CudaPlacementError, NvmlInventory, detect_inventory
from fastdistill_cuda.placement import CudaFreeMemoryPlacement, CudaRoundRobinPlacement


def _real_devices():
    try:
        return NvmlInventory().devices()
    except (MissingDependencyError, CudaPlacementError):
        return []


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _real_devices(), reason="no CUDA device visible through NVML"),
]


def test_nvml_lists_real_devices() -> None:
    devices = _real_devices()
    assert [d.index for d in devices] == list(range(len(devices)))
    for d in devices:
        assert d.uuid.startswith(("GPU-", "MIG-")), d
        assert d.name
        assert d.total_mb > 0 and 0 <= d.free_mb <= d.total_mb
    assert isinstance(detect_inventory(), NvmlInventory)


def test_placement_over_real_inventory() -> None:
    devices = _real_devices()
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    p = CudaRoundRobinPlacement(env=env)
    a = p.assign("s", 0, needs_device=True)
    assert a.devices == ("0",) and a.env["CUDA_VISIBLE_DEVICES"] == "0"
    last = str(devices[-1].index)
    q = CudaFreeMemoryPlacement(env={**env, "CUDA_VISIBLE_DEVICES": last})
    b = q.assign("s", 0, needs_device=True)
    assert b.devices == (last,) and dict(b.env) == {"CUDA_VISIBLE_DEVICES": last}
    assert q.info(last) is not None and q.info(last).uuid == devices[-1].uuid
