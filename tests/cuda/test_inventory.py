"""Device inventories: NVML without its bindings or a GPU, detection fallbacks."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from fastdistill.errors import MissingDependencyError
from fastdistill_cuda import inventory as inventory_mod
from fastdistill_cuda.inventory import (
    CudaPlacementError,
    DeviceInfo,
    DeviceInventory,
    EmptyInventory,
    FakeInventory,
    NvmlInventory,
    TorchInventory,
    detect_inventory,
)


def _nvml_works() -> bool:
    try:
        return bool(NvmlInventory().devices())
    except (MissingDependencyError, CudaPlacementError):
        return False


def test_fake_inventory() -> None:
    inv = FakeInventory.gpus(8)
    assert isinstance(inv, DeviceInventory)
    devices = inv.devices()
    assert [d.index for d in devices] == list(range(8))
    assert devices[6] == DeviceInfo(6, "GPU-fake-6", "Fake GPU", 81920, 81920)
    assert EmptyInventory().devices() == []


def test_nvml_inventory_without_bindings_or_gpu() -> None:
    """Missing nvidia-ml-py -> pip hint; installed but no GPU/driver -> a clear error."""
    if _nvml_works():
        pytest.skip("a GPU is visible through NVML; see test_real_gpu.py")
    if importlib.util.find_spec("pynvml") is None:
        with pytest.raises(MissingDependencyError, match=r"pip install 'fastdistill-cuda\[nvml\]'"):
            NvmlInventory().devices()
    else:
        with pytest.raises((CudaPlacementError, MissingDependencyError), match="NVML|nvml"):
            NvmlInventory().devices()


def test_nvml_missing_module_is_missing_dependency(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    with pytest.raises(MissingDependencyError, match="nvidia-ml-py") as err:
        NvmlInventory().devices()
    assert isinstance(err.value, ImportError)


class _FakeNvml:
    class NVMLError(Exception):
        pass

    def __init__(self, fail_init: bool = False) -> None:
        self.fail_init = fail_init
        self.shutdown = False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.shutdown = True

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetUUID(self, h: int) -> bytes:
        return f"GPU-{h}".encode()

    def nvmlDeviceGetName(self, h: int) -> str:
        return "NVIDIA H200"

    def nvmlDeviceGetMemoryInfo(self, h: int):
        class Mem:
            total = 1024 * 2**20
            free = (512 + h) * 2**20

        return Mem()


def test_nvml_inventory_reads_devices(monkeypatch) -> None:
    fake = _FakeNvml()
    monkeypatch.setattr(NvmlInventory, "_module", staticmethod(lambda: fake))
    assert NvmlInventory().devices() == [
        DeviceInfo(0, "GPU-0", "NVIDIA H200", 1024, 512),
        DeviceInfo(1, "GPU-1", "NVIDIA H200", 1024, 513),
    ]
    assert fake.shutdown


def test_nvml_without_driver_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(NvmlInventory, "_module", staticmethod(lambda: _FakeNvml(True)))
    with pytest.raises(CudaPlacementError, match="NVML could not be initialised.*Driver Not"):
        NvmlInventory().devices()


def test_torch_inventory_without_torch(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match="torch"):
        TorchInventory().devices()


def test_detect_falls_back_to_empty(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(inventory_mod.importlib.util, "find_spec", lambda name: None)
    assert isinstance(detect_inventory(), EmptyInventory)


def test_detect_prefers_nvml(monkeypatch) -> None:
    monkeypatch.setattr(NvmlInventory, "_module", staticmethod(lambda: _FakeNvml()))
    inv = detect_inventory()
    assert isinstance(inv, NvmlInventory) and len(inv.devices()) == 2
