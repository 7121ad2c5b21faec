"""Device placement: the ``PlacementStrategy`` protocol and the CPU default.

A strategy is created per pipeline run and assigns devices to step replicas.  It returns the
assignment (devices plus the environment a worker should start with); it never mutates the
parent process's environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class DeviceAssignment:
    """Devices given to one replica of a step, and the environment its worker should get."""

    kind: str = "cpu"
    devices: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def cpu(cls) -> DeviceAssignment:
        """The default: run on the CPU, no environment changes."""
        return cls()

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"kind": self.kind, "devices": list(self.devices), "env": dict(self.env)}


@runtime_checkable
class PlacementStrategy(Protocol):
    """Assigns devices to step replicas for one run."""

    def assign(self, step_name: str, replica: int, *, needs_device: bool) -> DeviceAssignment:
        """The assignment for ``replica`` of ``step_name``."""
        ...

    def release(self, step_name: str, replica: int) -> None:
        """Return the replica's devices to the pool."""
        ...


class CpuPlacement:
    """Everything runs on the CPU."""

    component_name = "cpu"

    def __init__(self, **options: object) -> None:
        if options:
            raise TypeError(f"cpu placement takes no options, got {sorted(options)}")

    def assign(self, step_name: str, replica: int, *, needs_device: bool) -> DeviceAssignment:
        """Always the CPU."""
        return DeviceAssignment.cpu()

    def release(self, step_name: str, replica: int) -> None:
        """Nothing to release."""
