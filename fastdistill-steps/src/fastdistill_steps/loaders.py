"""Loaders: stream rows from JSON Lines files and Parquet files on any fsspec URL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any, ClassVar

from fastdistill.context import StepContext
from fastdistill.errors import MissingDependencyError
from fastdistill.rows import Reason, Row
from fastdistill.step import GeneratorStep, RuntimeParameter

from fastdistill_steps._util import require_runtime, step_label


def _check_exists(step: GeneratorStep, ctx: StepContext | None, url: str) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        raise FileNotFoundError(f"{step_label(step, ctx)}: input file not found: {url}")


def _open_text(url: str) -> IO[str]:
    import fsspec

    handle: IO[str] = fsspec.open(url, "rt", encoding="utf-8", compression="infer").open()
    return handle


class _FileLoader(GeneratorStep):
    """Shared parts of the file loaders: the ``path`` runtime parameter and its resolution."""

    path_params: ClassVar[tuple[str, ...]] = ("path",)

    path: Annotated[
        str | None,
        RuntimeParameter("Input file: a path (relative to the pipeline document) or fsspec URL.",
                         required=True),
    ] = None

    def _url(self, ctx: StepContext) -> str:
        url = ctx.resolve_path(require_runtime(self, ctx, "path"))
        _check_exists(self, ctx, url)
        return url

    def fingerprint(self, base_dir: Path) -> str | None:
        """sha256 of the input file's bytes (part of the step signature, so edited input data
        is never served from a checkpoint); ``None`` when the file cannot be read."""
        if not self.path:
            return None
        import hashlib

        import fsspec

        text = str(self.path)
        p = Path(text).expanduser()
        url = text if "://" in text or p.is_absolute() else str((base_dir / p).resolve())
        try:
            fs, fpath = fsspec.core.url_to_fs(url)
            digest = hashlib.sha256()
            with fs.open(fpath, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        except (OSError, ValueError):
            return None
        return digest.hexdigest()

    def _peek_url(self) -> str | None:
        """The file to peek at for :meth:`output_columns`, or ``None`` when it cannot be known.

        Absolute paths and URLs must exist (a missing one raises ``FileNotFoundError``); a
        relative path that does not exist from the working directory is left to run time,
        when the context knows the pipeline's base directory.
        """
        if self.path in (None, ""):
            return None
        url = self.resolve_path(str(self.path))
        import fsspec

        fs, fpath = fsspec.core.url_to_fs(url)
        if not fs.exists(fpath):
            raise FileNotFoundError(
                f"{step_label(self)}: input file not found: {url} (relative paths are relative "
                "to the pipeline document's folder); fix the path or set --param "
                f"{self.name or 'load'}.path=..."
            )
        return url


class LoadJsonl(_FileLoader):
    """Stream rows from a JSON Lines file (``.jsonl``, also compressed, on any fsspec URL).

    Each non-blank line must be one JSON object.  A malformed line does not stop the load: it is
    rejected (``invalid_input``) with its line number and the start of its text.
    """

    #: lines read to learn the columns before the run
    PEEK_LINES: ClassVar[int] = 50

    def output_columns(self) -> list[str] | None:  # type: ignore[override]
        """Union of the keys of the first valid lines, so one odd row does not decide the
        columns (``None`` when unknown: no path yet, or no valid line to learn from)."""
        url = self._peek_url()
        if url is None:
            return None
        keys: dict[str, None] = {}
        seen = 0
        with _open_text(url) as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    keys.update(dict.fromkeys(obj))
                    seen += 1
                    if seen >= self.PEEK_LINES:
                        break
        return list(keys) if keys else None

    def total_rows(self, ctx: StepContext) -> int | None:
        """Number of non-blank lines (capped by ``ctx.limit``), counted by streaming the file."""
        url = self._url(ctx)
        n = 0
        with _open_text(url) as fh:
            for line in fh:
                if line.strip():
                    n += 1
                    if ctx.limit is not None and n >= ctx.limit:
                        break
        return n

    def generate(self, ctx: StepContext) -> Iterator[list[Row]]:
        """Yield batches of ``batch_size`` rows, at most ``ctx.limit`` rows in all."""
        url = self._url(ctx)
        if ctx.limit is not None and ctx.limit <= 0:
            return
        produced = 0
        batch: list[Row] = []
        with _open_text(url) as fh:
            for lineno, line in enumerate(fh, 1):
                if ctx.cancelled:
                    break
                text = line.strip()
                if not text:
                    continue
                row = self._parse(text, lineno, url, ctx)
                if row is None:
                    continue
                batch.append(row)
                produced += 1
                if ctx.limit is not None and produced >= ctx.limit:
                    break
                if len(batch) >= self.batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    @staticmethod
    def _parse(text: str, lineno: int, url: str, ctx: StepContext) -> Row | None:
        try:
            obj: Any = json.loads(text)
        except ValueError as exc:
            error = f"invalid JSON: {exc}"
        else:
            if isinstance(obj, dict):
                return obj
            error = f"expected a JSON object, got {type(obj).__name__}"
        ctx.reject({"_line": lineno, "_raw": text[:500]}, Reason.INVALID_INPUT, f"{url}:{lineno}: {error}")
        return None


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError(
            "load_parquet needs pyarrow: pip install 'fastdistill-steps[parquet]'"
        ) from exc
    return pq


class LoadParquet(_FileLoader):
    """Stream rows from a Parquet file, record batch by record batch (needs pyarrow).

    ``columns`` selects columns to read (default: all).
    """

    columns: list[str] | None = None

    def output_columns(self) -> list[str] | None:  # type: ignore[override]
        """Column names from the file's schema (``None`` when the file is not known yet)."""
        url = self._peek_url()
        if url is None:
            return None
        if self.columns is not None:
            return list(self.columns)
        pq = _pyarrow_parquet()
        import fsspec

        with fsspec.open(url, "rb") as fh:
            return list(pq.ParquetFile(fh).schema_arrow.names)

    def total_rows(self, ctx: StepContext) -> int | None:
        """Row count from the file's metadata (capped by ``ctx.limit``)."""
        pq = _pyarrow_parquet()
        import fsspec

        with fsspec.open(self._url(ctx), "rb") as fh:
            n = int(pq.ParquetFile(fh).metadata.num_rows)
        return n if ctx.limit is None else min(n, ctx.limit)

    def generate(self, ctx: StepContext) -> Iterator[list[Row]]:
        """Yield batches of ``batch_size`` rows, at most ``ctx.limit`` rows in all."""
        pq = _pyarrow_parquet()
        import fsspec

        url = self._url(ctx)
        remaining = ctx.limit
        if remaining is not None and remaining <= 0:
            return
        with fsspec.open(url, "rb") as fh:
            pfile = pq.ParquetFile(fh)
            for record_batch in pfile.iter_batches(batch_size=self.batch_size, columns=self.columns):
                if ctx.cancelled:
                    break
                rows: list[Row] = record_batch.to_pylist()
                if remaining is not None:
                    rows = rows[:remaining]
                    remaining -= len(rows)
                if rows:
                    yield rows
                if remaining is not None and remaining <= 0:
                    break
