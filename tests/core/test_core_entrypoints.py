"""``fastdistill.entrypoints`` reads entry points exactly as ``importlib.metadata`` does."""

from __future__ import annotations

import importlib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from fastdistill import entrypoints
from fastdistill.entrypoints import EntryPoint, entry_points


def _reference(group: str) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (ep.name, ep.value, ep.dist.metadata["Name"], ep.dist.version)
        for ep in metadata.entry_points(group=group)
    ]


def _ours(group: str) -> list[tuple[str, str, str | None, str | None]]:
    return [(ep.name, ep.value, ep.dist_name, ep.dist_version) for ep in entry_points(group)]


def _dist(site: Path, folder: str, name: str, version: str, entry_points_txt: str) -> None:
    info = site / folder
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: x\n\nName: body\n",
        encoding="utf-8",
    )
    (info / "entry_points.txt").write_text(entry_points_txt, encoding="utf-8")


@pytest.mark.parametrize("group", ["fastdistill", "console_scripts", "pytest11", "no-such-group"])
def test_same_entry_points_as_importlib_metadata(group: str) -> None:
    assert _ours(group) == _reference(group)


def test_same_order_precedence_and_parsing_as_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "Fd.Dup-1.0.dist-info", "Fd.Dup", "1.0", "[fastdistill]\ndup = mod_a\n")
    # same normalized name further down sys.path: shadowed, as in importlib.metadata
    _dist(second, "fd_dup-2.0.dist-info", "fd-dup", "2.0", "[fastdistill]\ndup = mod_b\n")
    _dist(
        second,
        "fd_rich-0.1.dist-info",
        "fd-rich",
        "0.1",
        "# comment\n[console_scripts]\nx = y:z\n\n[fastdistill]\n  a = pkg.mod:obj.attr [extra]\n"
        "b=pkg.other\n[other]\nc = d\n",
    )
    _dist(second, "fd_egg.egg-info", "fd-egg", "3", "[fastdistill]\negg = egg_mod\n")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    importlib.invalidate_caches()
    ours = _ours("fastdistill")
    assert ours == _reference("fastdistill")
    assert ("dup", "mod_a", "Fd.Dup", "1.0") in ours
    assert ("a", "pkg.mod:obj.attr [extra]", "fd-rich", "0.1") in ours
    assert not any(value == "mod_b" for _, value, _, _ in ours)


def test_a_zip_on_sys_path_is_left_to_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fd_zipped-1.0.dist-info/METADATA", "Name: fd-zipped\nVersion: 1.0\n")
        zf.writestr("fd_zipped-1.0.dist-info/entry_points.txt", "[fastdistill]\nz = zmod\n")
    monkeypatch.syspath_prepend(str(archive))
    importlib.invalidate_caches()
    assert entrypoints._distribution_folders() is None
    ours = _ours("fastdistill")
    assert ("z", "zmod", "fd-zipped", "1.0") in ours
    assert ours == _reference("fastdistill")


def test_load_imports_the_module_and_resolves_attributes() -> None:
    ep = EntryPoint("x", "fastdistill.entrypoints:EntryPoint.load", "g", None, None)
    assert ep.load() is EntryPoint.load
    assert EntryPoint("x", "fastdistill.entrypoints", "g", None, None).load() is entrypoints
    with pytest.raises(ValueError, match="invalid entry point"):
        EntryPoint("x", "not valid!", "g", None, None).load()



def test_entry_points_compare_by_value() -> None:
    a = EntryPoint("x", "m:o", "g", "d", "1")
    assert a == EntryPoint("x", "m:o", "g", "d", "1")
    assert a != EntryPoint("x", "m:o", "g", "d", "2")
    assert len({a, EntryPoint("x", "m:o", "g", "d", "1")}) == 1
    assert "dist_version='1'" in repr(a)
