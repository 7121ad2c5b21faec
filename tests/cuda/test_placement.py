"""fastdistill-cuda placement with a fake inventory of 8 GPUs (no GPU, no NVML needed)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import fastdistill
import pytest
from fastdistill.errors import FastDistillError
from fastdistill.placement import DeviceAssignment, PlacementStrategy
from fastdistill_cuda.inventory import (
    CudaPlacementError,
    DeviceInfo,
    FakeInventory,
    NoFreeDeviceError,
)
from fastdistill_cuda.placement import (
    CudaFreeMemoryPlacement,
    CudaRoundRobinPlacement,
    parse_visible_devices,
)


@pytest.fixture
def gpus8() -> FakeInventory:
    return FakeInventory.gpus(8)


def rr(inventory: FakeInventory, env: dict[str, str] | None = None, **opts: object):
    return CudaRoundRobinPlacement(inventory=inventory, env={} if env is None else env, **opts)


def test_is_a_placement_strategy(gpus8: FakeInventory) -> None:
    assert isinstance(rr(gpus8), PlacementStrategy)
    assert isinstance(CudaFreeMemoryPlacement(inventory=gpus8, env={}), PlacementStrategy)


def test_explicit_list_round_robin_over_replicas(gpus8: FakeInventory) -> None:
    p = rr(gpus8, devices=[1, "3", 5], exclusive=False)
    got = [p.assign("gen", r, needs_device=True).devices for r in range(7)]
    assert got == [("1",), ("3",), ("5",), ("1",), ("3",), ("5",), ("1",)]
    a = p.assign("gen", 0, needs_device=True)
    assert a == DeviceAssignment(kind="cuda", devices=("1",), env={"CUDA_VISIBLE_DEVICES": "1"})


def test_round_robin_continues_across_steps(gpus8: FakeInventory) -> None:
    p = rr(gpus8, devices="0,1", exclusive=False)
    assert p.assign("a", 0, needs_device=True).devices == ("0",)
    assert p.assign("b", 0, needs_device=True).devices == ("1",)
    assert p.assign("c", 0, needs_device=True).devices == ("0",)


def test_exclusive_exhaustion_names_the_step_and_holders(gpus8: FakeInventory) -> None:
    p = rr(gpus8, devices=[0, 1], exclusive=True)
    p.assign("teacher", 0, needs_device=True)
    p.assign("teacher", 1, needs_device=True)
    with pytest.raises(NoFreeDeviceError) as err:
        p.assign("judge", 0, needs_device=True)
    msg = str(err.value)
    assert "no free CUDA device for step 'judge' replica 0" in msg
    assert "0, 1" in msg and "'teacher' replica 0" in msg and "'teacher' replica 1" in msg
    assert isinstance(err.value, FastDistillError)


def test_release_returns_devices_to_the_pool(gpus8: FakeInventory) -> None:
    p = rr(gpus8, devices=[0, 1])
    p.assign("a", 0, needs_device=True)
    b = p.assign("b", 0, needs_device=True)
    p.release("a", 0)
    p.release("a", 0)  # twice is harmless
    p.release("never", 3)
    assert p.assign("c", 0, needs_device=True).devices == ("0",)
    assert p.held() == {("b", 0): b.devices, ("c", 0): ("0",)}


def test_same_replica_twice_gets_the_same_assignment(gpus8: FakeInventory) -> None:
    p = rr(gpus8, devices=[0, 1])
    assert p.assign("a", 0, needs_device=True) is p.assign("a", 0, needs_device=True)


def test_c09_parent_visible_devices_single(gpus8: FakeInventory) -> None:
    p = rr(gpus8, env={"CUDA_VISIBLE_DEVICES": "6"})
    a = p.assign("llm", 0, needs_device=True)
    assert a.kind == "cuda"
    assert a.devices == ("6",)
    assert dict(a.env) == {"CUDA_VISIBLE_DEVICES": "6"}
    # exclusive by default: a second device step does not silently share GPU 6
    with pytest.raises(NoFreeDeviceError, match="no free CUDA device for step 'other'"):
        p.assign("other", 0, needs_device=True)


@pytest.mark.parametrize("cls", [CudaRoundRobinPlacement, CudaFreeMemoryPlacement])
def test_c09_two_visible_devices_two_steps_third_fails_fast(
    gpus8: FakeInventory, cls: type[CudaRoundRobinPlacement]
) -> None:
    p = cls(inventory=gpus8, env={"CUDA_VISIBLE_DEVICES": "2,5"})
    a = p.assign("gen_a", 0, needs_device=True)
    b = p.assign("gen_b", 0, needs_device=True)
    assert {a.env["CUDA_VISIBLE_DEVICES"], b.env["CUDA_VISIBLE_DEVICES"]} == {"2", "5"}
    assert (a.devices, b.devices) == (("2",), ("5",))
    with pytest.raises(NoFreeDeviceError) as err:
        p.assign("gen_c", 0, needs_device=True)
    assert "no free CUDA device for step 'gen_c' replica 0" in str(err.value)
    assert "'gen_a'" in str(err.value) and "'gen_b'" in str(err.value)


def test_os_environ_is_never_modified(gpus8: FakeInventory, monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    before = dict(os.environ)
    p = CudaRoundRobinPlacement(inventory=gpus8)  # env defaults to a copy of os.environ
    a = p.assign("a", 0, needs_device=True)
    p.assign("b", 0, needs_device=True)
    p.release("a", 0)
    p.assign("c", 0, needs_device=True)
    assert dict(os.environ) == before
    assert a.env["CUDA_VISIBLE_DEVICES"] == "2"
    # the copy is taken at construction: later changes do not leak into this run
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    p.release("b", 0)
    assert p.assign("d", 0, needs_device=True).devices == ("5",)


def test_cpu_only_replica_gets_cpu(gpus8: FakeInventory) -> None:
    p = rr(gpus8, env={"CUDA_VISIBLE_DEVICES": "6"})
    a = p.assign("filter", 0, needs_device=False)
    assert a == DeviceAssignment.cpu()
    assert a.kind == "cpu" and a.devices == () and dict(a.env) == {}
    # a CPU replica takes nothing from the pool
    assert p.assign("llm", 0, needs_device=True).devices == ("6",)


def test_auto_without_visible_devices_uses_inventory(gpus8: FakeInventory) -> None:
    p = rr(gpus8)
    got = [p.assign("s", r, needs_device=True) for r in range(8)]
    assert [a.devices[0] for a in got] == [str(i) for i in range(8)]
    # NVML numbering is PCI bus order: the worker's CUDA is told to number the same way
    assert dict(got[0].env) == {"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    with pytest.raises(NoFreeDeviceError, match="step 's' replica 8"):
        p.assign("s", 8, needs_device=True)
    kept = rr(gpus8, env={"CUDA_DEVICE_ORDER": "FASTEST_FIRST"})
    assert dict(kept.assign("s", 0, needs_device=True).env) == {"CUDA_VISIBLE_DEVICES": "0"}


def test_no_visible_device_is_a_clear_error(gpus8: FakeInventory) -> None:
    for env in ({"CUDA_VISIBLE_DEVICES": ""}, {"CUDA_VISIBLE_DEVICES": "-1"}):
        with pytest.raises(NoFreeDeviceError, match="step 'llm' replica 0.*no CUDA device"):
            rr(gpus8, env=env).assign("llm", 0, needs_device=True)
    with pytest.raises(NoFreeDeviceError, match="no CUDA device is visible"):
        rr(FakeInventory([])).assign("llm", 0, needs_device=True)


def test_explicit_devices_must_be_visible_and_exist(gpus8: FakeInventory) -> None:
    with pytest.raises(CudaPlacementError, match="not visible.*CUDA_VISIBLE_DEVICES='2,5'"):
        rr(gpus8, env={"CUDA_VISIBLE_DEVICES": "2,5"}, devices=[2, 3])
    p = rr(gpus8, env={"CUDA_VISIBLE_DEVICES": "2,5"}, devices=[5])
    assert p.assign("a", 0, needs_device=True).env["CUDA_VISIBLE_DEVICES"] == "5"
    with pytest.raises(CudaPlacementError, match="9 do not exist"):
        rr(gpus8, devices=[0, 9]).assign("a", 0, needs_device=True)
    for bad in ([], [0, 0], [-1], "auto,0", ["cuda:0"]):
        with pytest.raises(ValueError):
            rr(gpus8, devices=bad)
    with pytest.raises(TypeError):
        rr(gpus8, devices=[1.5])
    with pytest.raises(TypeError):
        rr(gpus8, gpus=2)  # unknown option


def test_multi_device_replica_gets_distinct_devices(gpus8: FakeInventory) -> None:
    p = rr(gpus8)
    a = p.assign("vllm", 0, needs_device=True, count=4)
    assert a.devices == ("0", "1", "2", "3")
    assert a.env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"
    assert p.assign("vllm2", 0, needs_device=True, count=4).devices == ("4", "5", "6", "7")
    with pytest.raises(NoFreeDeviceError, match="step 'vllm3' replica 0: needs 4, 0 free"):
        p.assign("vllm3", 0, needs_device=True, count=4)
    with pytest.raises(NoFreeDeviceError, match="needs 9 CUDA devices but only 8"):
        p.assign("huge", 0, needs_device=True, count=9)


def test_check_reports_shortfall_before_loading(gpus8: FakeInventory) -> None:
    p = rr(gpus8)
    p.check({"a": 4, "b": 4})
    with pytest.raises(NoFreeDeviceError) as err:
        p.check({"magpie": 4, "assign_1": 4, "assign_2": 4})
    msg = str(err.value)
    assert "'magpie' needs 4" in msg and "'assign_2' needs 4" in msg and "short by 4" in msg
    assert p.held() == {}  # checking assigns nothing
    rr(gpus8, exclusive=False).check({"a": 8, "b": 8})


def test_cuda_auto_prefers_most_free_memory() -> None:
    inv = FakeInventory(
        DeviceInfo(index=i, uuid=f"GPU-{i}", name="fake", total_mb=80000, free_mb=free)
        for i, free in enumerate([1000, 70000, 30000, 79000])
    )
    p = CudaFreeMemoryPlacement(inventory=inv, env={})
    assert [p.assign("s", r, needs_device=True).devices[0] for r in range(4)] == [
        "3", "1", "2", "0"
    ]
    q = CudaFreeMemoryPlacement(inventory=inv, env={}, min_free_mb=20000)
    assert q.assign("s", 0, needs_device=True, count=3).devices == ("3", "1", "2")
    with pytest.raises(NoFreeDeviceError, match=">= 20000 MiB"):
        q.assign("t", 0, needs_device=True)
    # honours the parent's CUDA_VISIBLE_DEVICES too
    r = CudaFreeMemoryPlacement(inventory=inv, env={"CUDA_VISIBLE_DEVICES": "0,2"})
    assert r.assign("s", 0, needs_device=True).devices == ("2",)


def test_uuid_tokens_pass_through(gpus8: FakeInventory) -> None:
    p = CudaFreeMemoryPlacement(inventory=gpus8, env={"CUDA_VISIBLE_DEVICES": "GPU-fake-3"})
    a = p.assign("s", 0, needs_device=True)
    assert a.env["CUDA_VISIBLE_DEVICES"] == "GPU-fake-3"
    assert p.info("GPU-fake-3") == gpus8.devices()[3]


def test_parse_visible_devices() -> None:
    assert parse_visible_devices("6") == ["6"]
    assert parse_visible_devices(" 2, 5 ") == ["2", "5"]
    assert parse_visible_devices("2,-1,3") == ["2"]
    assert parse_visible_devices("") == []


def test_concurrent_exclusive_assignments_never_share(gpus8: FakeInventory) -> None:
    p = rr(gpus8)
    results: list[tuple[str, ...]] = []
    errors: list[Exception] = []

    def take(i: int) -> None:
        try:
            results.append(p.assign("s", i, needs_device=True).devices)
        except NoFreeDeviceError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(d for (d,) in results) == [str(i) for i in range(8)]
    assert len(errors) == 4


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, fastdistill_cuda.plugin\n"
        "bad = [m for m in ('torch', 'pynvml') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registered_through_a_fresh_registry() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTDISTILL_")}
    registry = fastdistill.Registry(env=env)
    info = registry.get("placement", "cuda_round_robin")
    assert info.distribution == "fastdistill-cuda"
    assert info.version == "0.1.0"
    assert info.obj is CudaRoundRobinPlacement
    assert registry.placement("cuda_auto") is CudaFreeMemoryPlacement
    plugin = next(p for p in registry.plugins() if p.distribution == "fastdistill-cuda")
    assert plugin.error is None and plugin.hooks == ["register_placements"]
    # built from options, as an engine would
    strategy = registry.placement("cuda_round_robin")(
        devices=[0], inventory=FakeInventory.gpus(8), env={}
    )
    assert strategy.assign("s", 0, needs_device=True).devices == ("0",)
