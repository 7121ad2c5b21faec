"""CUDA placement strategies: ``cuda_round_robin`` and ``cuda_auto`` (most free memory first).

A strategy is built once per pipeline run.  It reads the parent's environment once, when it is
constructed (``env``, default a copy of ``os.environ``), and never changes ``os.environ``: each
:class:`~fastdistill.placement.DeviceAssignment` carries the ``CUDA_VISIBLE_DEVICES`` that the
replica's worker must start with.

Device names are the tokens ``CUDA_VISIBLE_DEVICES`` uses: physical indices (``"6"``) or UUIDs
(``"GPU-..."``).  If the parent environment sets ``CUDA_VISIBLE_DEVICES``, only those devices are
used, and a worker given one of them gets the same token (parent ``"6"`` -> worker ``"6"``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from fastdistill.placement import DeviceAssignment

from fastdistill_cuda.inventory import (
    CudaPlacementError,
    DeviceInfo,
    DeviceInventory,
    NoFreeDeviceError,
    detect_inventory,
)

VISIBLE = "CUDA_VISIBLE_DEVICES"
ORDER = "CUDA_DEVICE_ORDER"


def parse_visible_devices(value: str) -> list[str]:
    """The tokens of a ``CUDA_VISIBLE_DEVICES`` value, as CUDA reads them.

    CUDA stops at the first invalid entry, so ``"2,-1,3"`` means ``["2"]`` and ``""`` or ``"-1"``
    means no device.
    """
    tokens: list[str] = []
    for raw in value.split(","):
        token = raw.strip()
        if not token or token.startswith("-"):
            break
        tokens.append(token)
    return tokens


def _normalise_devices(devices: str | int | Sequence[str | int]) -> list[str] | None:
    """``None`` for ``"auto"``, else the list of device tokens (validated)."""
    if isinstance(devices, str):
        if devices.strip().lower() == "auto":
            return None
        items: Sequence[str | int] = devices.split(",")
    elif isinstance(devices, int) and not isinstance(devices, bool):
        items = [devices]
    else:
        items = list(devices)
    tokens = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise TypeError(f"CUDA devices must be ints or strings, got {item!r}")
        token = str(item).strip()
        if not (token.isdigit() or token.startswith(("GPU-", "MIG-"))):
            raise ValueError(
                f"invalid CUDA device {item!r} in devices={devices!r}: use an index (0, '3') or "
                "a UUID ('GPU-...', 'MIG-...')"
            )
        tokens.append(token)
    if not tokens:
        raise ValueError("devices is empty: pass 'auto' or at least one CUDA device")
    dupes = sorted({t for t in tokens if tokens.count(t) > 1})
    if dupes:
        raise ValueError(f"devices lists {', '.join(dupes)} more than once: {devices!r}")
    return tokens


class CudaRoundRobinPlacement:
    """Assigns CUDA devices to replicas in round-robin order.

    :param devices: ``"auto"`` (default): the devices this process may see, i.e. the parent's
        ``CUDA_VISIBLE_DEVICES`` if set, else every device the inventory lists.  Or an explicit
        list (``[0, 3]``, ``"0,3"``, UUIDs), which must lie within ``CUDA_VISIBLE_DEVICES`` when
        that is set.
    :param exclusive: ``True`` (default): a device serves one replica at a time, and a replica
        that finds none free fails at once with :class:`NoFreeDeviceError`.  ``False``: devices
        are shared, the least loaded first.
    :param inventory: lists the devices (default: :func:`detect_inventory`, asked only when it
        is needed, i.e. not when ``CUDA_VISIBLE_DEVICES`` already says which devices to use).
    :param env: the parent environment (default: a copy of ``os.environ`` taken now).
    """

    component_name = "cuda_round_robin"

    def __init__(
        self,
        *,
        devices: str | int | Sequence[str | int] = "auto",
        exclusive: bool = True,
        inventory: DeviceInventory | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._env = dict(os.environ if env is None else env)
        self._explicit = _normalise_devices(devices)
        self.exclusive = bool(exclusive)
        self._inventory = inventory
        self._raw_visible = self._env.get(VISIBLE)
        self._visible = None if self._raw_visible is None else parse_visible_devices(
            self._raw_visible
        )
        if self._explicit is not None and self._visible is not None:
            hidden = [t for t in self._explicit if t not in self._visible]
            if hidden:
                raise CudaPlacementError(
                    f"CUDA device(s) {', '.join(hidden)} are not visible to this process: "
                    f"{VISIBLE}={self._raw_visible!r}; list only devices among "
                    f"{self._visible} or unset {VISIBLE}"
                )
        self._lock = threading.Lock()
        self._pool: list[str] | None = None
        self._source = ""
        self._extra_env: dict[str, str] = {}
        self._cursor = 0
        self._held: dict[tuple[str, int], DeviceAssignment] = {}

    # ------------------------------------------------------------------ pool
    def inventory(self) -> DeviceInventory:
        """The device inventory (detected on first use unless one was given)."""
        if self._inventory is None:
            self._inventory = detect_inventory()
        return self._inventory

    def _physical(self) -> bool:
        return bool(getattr(self.inventory(), "physical", True))

    def pool(self) -> list[str]:
        """The device tokens this strategy assigns from, in round-robin order."""
        if self._pool is not None:
            return self._pool
        if self._explicit is not None:
            pool, source = list(self._explicit), f"devices={self._explicit}"
            self._check_exists(pool)
        elif self._visible is not None:
            pool, source = list(self._visible), f"{VISIBLE}={self._raw_visible!r}"
        else:
            inv = self.inventory()
            pool = [str(d.index) for d in inv.devices()]
            source = f"{VISIBLE} unset, {inv!r} lists {len(pool)} device(s)"
            if self._physical() and ORDER not in self._env:
                # NVML numbers devices in PCI bus order; make the worker's CUDA agree.
                self._extra_env[ORDER] = "PCI_BUS_ID"
        self._pool, self._source = pool, source
        return pool

    def _check_exists(self, tokens: list[str]) -> None:
        """Explicit numeric devices must exist when a physical inventory lists any device."""
        if self._visible is not None and not self._physical():
            return  # a logical (torch) inventory cannot check physical numbers
        known = {str(d.index) for d in self.inventory().devices()}
        if not known:
            return  # nothing to check against: trust the list
        missing = [t for t in tokens if t.isdigit() and t not in known]
        if missing:
            raise CudaPlacementError(
                f"CUDA device(s) {', '.join(missing)} do not exist: {self.inventory()!r} lists "
                f"{', '.join(sorted(known, key=int))}"
            )

    def info(self, token: str) -> DeviceInfo | None:
        """What the inventory knows about one device token (by index or UUID), if anything."""
        devices = self.inventory().devices()
        if self._visible is not None and not self._physical():
            # torch numbers the devices the parent can see: k-th visible token == index k
            if token in self._visible:
                pos = self._visible.index(token)
                return next((d for d in devices if d.index == pos), None)
            return None
        for d in devices:
            if (token.isdigit() and d.index == int(token)) or (
                token.startswith("GPU-") and d.uuid.startswith(token)
            ):
                return d
        return None

    # ------------------------------------------------------------ protocol
    def assign(
        self, step_name: str, replica: int, *, needs_device: bool, count: int = 1
    ) -> DeviceAssignment:
        """Devices for one replica: ``count`` distinct CUDA devices, or the CPU if it needs none.

        Assigning the same replica twice without :meth:`release` returns the same assignment.
        """
        if not needs_device:
            return DeviceAssignment.cpu()
        if count < 1:
            raise ValueError(f"step {step_name!r} replica {replica}: count must be >= 1")
        key = (step_name, replica)
        with self._lock:
            if key in self._held:
                return self._held[key]
            pool = self.pool()
            who = f"step {step_name!r} replica {replica}"
            if not pool:
                raise NoFreeDeviceError(
                    f"no free CUDA device for {who}: no CUDA device is visible ({self._source})"
                )
            if count > len(pool):
                raise NoFreeDeviceError(
                    f"{who} needs {count} CUDA devices but only {len(pool)} are visible: "
                    f"{', '.join(pool)} ({self._source})"
                )
            holders = self._holders()
            candidates = [t for t in pool if not holders[t]] if self.exclusive else list(pool)
            if len(candidates) < count:
                taken = "; ".join(
                    f"{t} by " + ", ".join(f"{s!r} replica {r}" for s, r in holders[t])
                    for t in pool
                    if holders[t]
                )
                raise NoFreeDeviceError(
                    f"no free CUDA device for {who}: needs {count}, {len(candidates)} free; "
                    f"devices {', '.join(pool)} are taken ({taken}). Release a replica, run fewer "
                    "device steps at once, make more devices visible, or pass exclusive=False to "
                    "share devices"
                )
            chosen = self._choose(candidates, count, holders, who)
            self._cursor = (pool.index(chosen[-1]) + 1) % len(pool)
            assignment = DeviceAssignment(
                kind="cuda",
                devices=tuple(chosen),
                env={VISIBLE: ",".join(chosen), **self._extra_env},
            )
            self._held[key] = assignment
            return assignment

    def release(self, step_name: str, replica: int) -> None:
        """Return the replica's devices to the pool (nothing happens if it holds none)."""
        with self._lock:
            self._held.pop((step_name, replica), None)

    # ------------------------------------------------------------ helpers
    def _holders(self) -> dict[str, list[tuple[str, int]]]:
        holders: dict[str, list[tuple[str, int]]] = {t: [] for t in self.pool()}
        for key, assignment in self._held.items():
            for token in assignment.devices:
                holders.setdefault(token, []).append(key)
        return holders

    def _rotation(self, token: str) -> int:
        pool = self.pool()
        return (pool.index(token) - self._cursor) % len(pool)

    def _choose(
        self,
        candidates: list[str],
        count: int,
        holders: Mapping[str, list[tuple[str, int]]],
        who: str,
    ) -> list[str]:
        """Least loaded first, then round-robin order from the cursor."""
        ranked = sorted(candidates, key=lambda t: (len(holders[t]), self._rotation(t)))
        return ranked[:count]

    def held(self) -> dict[tuple[str, int], tuple[str, ...]]:
        """``{(step, replica): devices}`` currently assigned."""
        with self._lock:
            return {key: a.devices for key, a in self._held.items()}

    def check(self, demands: Mapping[str, int]) -> None:
        """Fail before anything loads if steps loaded together need more devices than exist.

        :param demands: ``{step name: devices it needs}`` for steps that will hold devices at the
            same time (one load stage).  Only exclusive placement can run short.
        """
        with self._lock:
            pool = self.pool()
            free = len([t for t, h in self._holders().items() if not h])
        too_big = {s: n for s, n in demands.items() if n > len(pool)}
        if too_big:
            raise NoFreeDeviceError(
                "steps need more CUDA devices than are visible: "
                + ", ".join(f"{s!r} needs {n}" for s, n in too_big.items())
                + f"; {len(pool)} visible ({self._source})"
            )
        need = sum(demands.values())
        if self.exclusive and need > free:
            raise NoFreeDeviceError(
                "steps loaded together need more CUDA devices than are free: "
                + ", ".join(f"{s!r} needs {n}" for s, n in demands.items())
                + f" = {need}, {free} free of {len(pool)} ({self._source}); short by "
                f"{need - free}. Load them in separate stages or make more devices visible"
            )

    def __repr__(self) -> str:
        devices = "auto" if self._explicit is None else self._explicit
        return (
            f"{type(self).__name__}(devices={devices!r}, exclusive={self.exclusive}, "
            f"{VISIBLE}={self._raw_visible!r})"
        )


class CudaFreeMemoryPlacement(CudaRoundRobinPlacement):
    """Like ``cuda_round_robin``, but picks the devices with the most free memory first.

    Free memory is read from the inventory at each assignment.  Devices already assigned count
    as loaded first (a free-memory figure cannot see a model that has not loaded yet).

    :param min_free_mb: never pick a device with less free memory than this.
    """

    component_name = "cuda_auto"

    def __init__(self, *, min_free_mb: int = 0, **options: Any) -> None:
        super().__init__(**options)
        self.min_free_mb = int(min_free_mb)

    def _choose(
        self,
        candidates: list[str],
        count: int,
        holders: Mapping[str, list[tuple[str, int]]],
        who: str,
    ) -> list[str]:
        free = {}
        for t in candidates:
            info = self.info(t)
            free[t] = -1 if info is None else info.free_mb
        usable = [t for t in candidates if free[t] >= self.min_free_mb or free[t] < 0]
        if len(usable) < count:
            listed = ", ".join(f"{t} ({free[t]} MiB free)" for t in candidates)
            raise NoFreeDeviceError(
                f"no free CUDA device for {who}: needs {count} with >= {self.min_free_mb} MiB "
                f"free; candidates: {listed}"
            )
        ranked = sorted(usable, key=lambda t: (len(holders[t]), -free[t], self._rotation(t)))
        return ranked[:count]
