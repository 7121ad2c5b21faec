"""What CUDA devices exist: NVML, torch, or a fake list for tests.

Nothing here imports ``pynvml`` or ``torch`` at module import time; each inventory imports its
library when it is first asked for devices.

An inventory reports **physical** devices (``physical = True``: the numbering that
``CUDA_VISIBLE_DEVICES`` uses, as NVML does) or devices already filtered by this process's
``CUDA_VISIBLE_DEVICES`` (``physical = False``: torch's logical numbering).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from fastdistill.errors import FastDistillError, MissingDependencyError

NVML_HINT = "pip install 'fastdistill-cuda[nvml]'  (or: pip install nvidia-ml-py)"


class CudaPlacementError(FastDistillError):
    """A CUDA device cannot be listed or assigned; the message names the step and devices."""


class NoFreeDeviceError(CudaPlacementError):
    """Every usable device is taken (exclusive placement) or too few devices are visible."""


@dataclass(frozen=True)
class DeviceInfo:
    """One CUDA device.  Memory in MiB; ``free_mb`` is a snapshot taken when it was listed."""

    index: int
    uuid: str = ""
    name: str = ""
    total_mb: int = 0
    free_mb: int = 0


@runtime_checkable
class DeviceInventory(Protocol):
    """Lists CUDA devices.  Called again for fresh free-memory figures."""

    def devices(self) -> list[DeviceInfo]:
        """The devices, in index order."""
        ...


class FakeInventory:
    """A fixed list of devices, for tests (``FakeInventory.gpus(8)`` makes eight 80 GB GPUs)."""

    physical = True

    def __init__(self, devices: Iterable[DeviceInfo] = ()) -> None:
        self._devices = list(devices)

    @classmethod
    def gpus(
        cls, count: int, *, total_mb: int = 81920, free_mb: int | None = None
    ) -> FakeInventory:
        """``count`` identical devices with UUIDs ``GPU-fake-<index>``."""
        return cls(
            DeviceInfo(
                index=i,
                uuid=f"GPU-fake-{i}",
                name="Fake GPU",
                total_mb=total_mb,
                free_mb=total_mb if free_mb is None else free_mb,
            )
            for i in range(count)
        )

    def devices(self) -> list[DeviceInfo]:
        """The given devices."""
        return list(self._devices)

    def __repr__(self) -> str:
        return f"FakeInventory({len(self._devices)} devices)"


class EmptyInventory(FakeInventory):
    """No devices: what :func:`detect_inventory` returns when neither NVML nor torch sees one."""

    def __init__(self) -> None:
        super().__init__(())

    def __repr__(self) -> str:
        return "EmptyInventory()"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlInventory:
    """Physical devices through NVML (``nvidia-ml-py``, imported on first use).

    NVML ignores ``CUDA_VISIBLE_DEVICES`` and numbers devices in PCI bus order; the placement
    strategies apply the parent's ``CUDA_VISIBLE_DEVICES`` themselves.
    """

    physical = True

    @staticmethod
    def _module() -> Any:
        try:
            import pynvml
        except ImportError as exc:
            raise MissingDependencyError(
                f"NvmlInventory needs the NVML bindings (module 'pynvml'): {NVML_HINT}"
            ) from exc
        return pynvml

    def devices(self) -> list[DeviceInfo]:
        """Every physical device with its UUID, name and memory."""
        nvml = self._module()
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            raise CudaPlacementError(
                f"NVML could not be initialised ({type(exc).__name__}: {exc}); is an NVIDIA "
                "driver installed and a GPU present on this machine?"
            ) from exc
        try:
            found = []
            for i in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                mem = nvml.nvmlDeviceGetMemoryInfo(handle)
                found.append(
                    DeviceInfo(
                        index=i,
                        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                        name=_text(nvml.nvmlDeviceGetName(handle)),
                        total_mb=int(mem.total) // 2**20,
                        free_mb=int(mem.free) // 2**20,
                    )
                )
            return found
        except Exception as exc:
            raise CudaPlacementError(
                f"NVML failed while listing devices ({type(exc).__name__}: {exc})"
            ) from exc
        finally:
            try:
                nvml.nvmlShutdown()
            except Exception:  # pragma: no cover - shutdown failure changes nothing
                pass

    def __repr__(self) -> str:
        return "NvmlInventory()"


class TorchInventory:
    """Devices through ``torch.cuda`` (optional; imported on first use).

    Devices are numbered as this process sees them (already filtered by its
    ``CUDA_VISIBLE_DEVICES``), and listing them initialises CUDA in this process; prefer
    :class:`NvmlInventory` where ``nvidia-ml-py`` is installed.
    """

    physical = False

    def devices(self) -> list[DeviceInfo]:
        """Every device torch can see, with free memory from ``torch.cuda.mem_get_info``."""
        try:
            import torch
        except ImportError as exc:
            raise MissingDependencyError(
                "TorchInventory needs torch; install it, or use NVML instead: " + NVML_HINT
            ) from exc
        if not torch.cuda.is_available():
            return []
        found = []
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            uuid = getattr(props, "uuid", "")
            found.append(
                DeviceInfo(
                    index=i,
                    uuid=f"GPU-{uuid}" if uuid and not str(uuid).startswith("GPU-") else str(uuid),
                    name=str(props.name),
                    total_mb=int(total) // 2**20,
                    free_mb=int(free) // 2**20,
                )
            )
        return found

    def __repr__(self) -> str:
        return "TorchInventory()"


def detect_inventory() -> DeviceInventory:
    """NVML if it is installed and works, else torch if it sees a device, else no devices."""
    try:
        nvml = NvmlInventory()
        nvml.devices()
        return nvml
    except (MissingDependencyError, CudaPlacementError):
        pass
    if importlib.util.find_spec("torch") is not None:
        try:
            torch_inv = TorchInventory()
            if torch_inv.devices():
                return torch_inv
        except Exception:  # a broken torch install must not break CPU-only placement
            pass
    return EmptyInventory()
