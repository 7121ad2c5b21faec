"""The third-party plugin in tests/plugins/fastdistill-example-plugin, through its real entry point.

Install it first: ``pip install -e tests/plugins/fastdistill-example-plugin``.
"""

from __future__ import annotations

import json
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastdistill import Pipeline, Registry
from fastdistill.cli import main

pytest.importorskip(
    "fastdistill_example_plugin",
    reason="pip install -e tests/plugins/fastdistill-example-plugin",
)


def test_a_fresh_registry_lists_the_plugin_with_its_distribution() -> None:
    registry = Registry(env={})
    plugin = next((p for p in registry.plugins() if p.name == "example"), None)
    assert plugin is not None, [p.name for p in registry.plugins()]
    assert plugin.error is None
    assert plugin.distribution == "fastdistill-example-plugin"
    assert plugin.version == metadata.version("fastdistill-example-plugin") == "0.1.0"
    assert plugin.hooks == ["register_steps"]
    info = registry.get("step", "reverse_text")
    assert (info.plugin, info.distribution) == ("example", "fastdistill-example-plugin")
    assert info.obj.__module__ == "fastdistill_example_plugin"


def test_the_plugin_can_be_blocked() -> None:
    registry = Registry(env={"FASTDISTILL_BLOCK_PLUGINS": "fastdistill-example-plugin"})
    assert "example" not in {p.name for p in registry.plugins()}
    with pytest.raises(KeyError, match="reverse_text"):
        registry.step("reverse_text")


def test_a_document_using_reverse_text_by_name_runs(tmp_path: Path) -> None:
    doc = {
        "schema_version": 2,
        "name": "reversed",
        "steps": [
            {"name": "load", "component": "load_from_dicts", "params": {"data": [
                {"id": 1, "text": "hello"},
                {"id": 2, "text": 42},
                {"id": 3, "text": "fastdistill"},
            ]}},
            {"name": "reverse", "component": "reverse_text", "params": {"column": "text"}},
        ],
    }
    path = tmp_path / "reversed.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    registry = Registry(env={"FASTDISTILL_LOAD_PLUGINS": "example"})

    pipeline = Pipeline.load(path, registry)
    box: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: box.setdefault("result", pipeline.run(tmp_path / "out", registry=registry)),
        daemon=True,
    )
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the run hung"
    result = box["result"]

    assert result.read_dataset() == [
        {"id": 1, "text": "olleh"},
        {"id": 3, "text": "llitsidtsaf"},
    ]
    (rejected,) = result.read_rejected()
    assert rejected["id"] == 2 and rejected["_rejection"]["reason"] == "invalid_input"
    assert rejected["_rejection"]["step"] == "reverse"
    saved = yaml.safe_load((tmp_path / "out" / "pipeline.yaml").read_text())
    assert saved["steps"][1]["component"] == "reverse_text"
    assert saved["plugins"]["fastdistill-example-plugin"] == "0.1.0"


def test_cli_lists_the_plugin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FASTDISTILL_LOAD_PLUGINS", "example")
    assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert set(plugins) == {"core", "example"}
    example = plugins["example"]
    assert example["distribution"] == "fastdistill-example-plugin"
    assert example["components"][0]["name"] == "reverse_text"
    assert example["location"].endswith("fastdistill_example_plugin/__init__.py")
