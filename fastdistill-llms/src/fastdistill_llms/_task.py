"""``LLMTask``: the shared row lifecycle of every task that asks an LLM once per row.

A row goes: ``format_input`` (row -> chat messages; a bad row is rejected ``invalid_input``) ->
the model, through :meth:`fastdistill.StepContext.agenerate` (so the run's response cache is
used) -> ``format_output`` (generation -> new columns; an answer the task cannot use is rejected
``invalid_output``).  A failed request rejects exactly that row with a typed reason
(``provider_error``, ``timeout``, ``empty_output``, ``length``, ``invalid_output``); a model that
raises is isolated to its row (case C12).  Rejected rows carry every result column as ``None``
and a metadata dict with the same keys as kept rows (case C02).
"""

from __future__ import annotations

import asyncio
import re
import string
import time
from typing import TYPE_CHECKING, Any

from fastdistill import LLM, Generation, Reason, Task
from fastdistill.models import Message

if TYPE_CHECKING:
    from fastdistill import Row, StepContext

#: reject reason of an answer the task cannot use (unparseable, out of range, schema-invalid)
INVALID_OUTPUT = "invalid_output"

_REASONS: dict[str, Reason | str] = {
    "provider_error": Reason.PROVIDER_ERROR,
    "timeout": Reason.TIMEOUT,
    "empty_output": Reason.EMPTY_OUTPUT,
    "length": Reason.LENGTH,
    "invalid_output": INVALID_OUTPUT,
}
_REASON_RE = re.compile(r"[a-z][a-z0-9_]*")


class RejectRow(Exception):
    """Raised by :meth:`LLMTask.format_output` to reject the row with ``reason``.

    ``columns`` (e.g. a judge's score under its threshold) are kept on the rejected row; result
    columns not given are ``None``.
    """

    def __init__(self, reason: str, detail: str, columns: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.columns = dict(columns or {})


class InvalidOutput(RejectRow, ValueError):
    """The answer is unusable (unparseable, out of range, off-schema): ``invalid_output``."""

    def __init__(self, detail: str, columns: dict[str, Any] | None = None) -> None:
        super().__init__(INVALID_OUTPUT, detail, columns)


def template_columns(template: str) -> list[str]:
    """Row columns a ``str.format`` template uses, in order of first use.

    ``{a.b}`` and ``{a[0]}`` use column ``a``.  Positional fields (``{}``, ``{0}``) are an error:
    rows are mappings.  Literal braces are written ``{{`` and ``}}``.
    """
    cols: list[str] = []
    for _, field, spec, _ in string.Formatter().parse(template):
        if field is None:
            continue
        base = field.split(".", 1)[0].split("[", 1)[0]
        if base == "" or base.isdigit():
            raise ValueError(
                f"template field {{{field}}} is positional; name a row column instead, "
                "e.g. {question} (write literal braces as {{ and }})"
            )
        if base not in cols:
            cols.append(base)
        if spec:  # nested fields in a format spec, e.g. {x:{width}}
            for col in template_columns(spec):
                if col not in cols:
                    cols.append(col)
    return cols


def fill_template(template: str, row: Row) -> str:
    """``template`` filled from ``row``; ``KeyError`` names missing columns."""
    try:
        return template.format_map(row)
    except KeyError:  # name every missing column, not only the first one
        missing = [c for c in template_columns(template) if c not in row]
        if missing:
            raise KeyError(", ".join(missing)) from None
        raise


def is_timeout(exc: BaseException) -> bool:
    """True for asyncio/aiohttp/provider timeouts (any exception class named ``*Timeout*``)."""
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return True
    return any("timeout" in cls.__name__.lower() for cls in type(exc).__mro__)


class LLMTask(Task):
    """Base of the tasks in this package: one LLM request per row, failures isolated per row.

    Subclasses implement :meth:`format_input`, :meth:`format_output` and
    :meth:`result_columns`.

    :param llm: any :class:`fastdistill.LLM`.
    :param system_prompt: system message sent first (tasks give a default where they need one).
    :param meta_column: column receiving :meth:`fastdistill.Generation.meta` (on every row).
    :param reject_truncated: reject answers cut at the token limit (``finish_reason=length``)
        with reason ``length`` even when they contain text.

    Metrics: counters ``requests`` and ``ok``; observations ``prompt_tokens``,
    ``completion_tokens`` and ``latency_s``.
    """

    llm: LLM
    system_prompt: str | None = None
    meta_column: str = "generation_meta"
    reject_truncated: bool = True

    # ------------------------------------------------------------------ contract
    def result_columns(self) -> list[str]:
        """Columns filled from the generation (``None`` on rejected rows)."""
        raise NotImplementedError

    def format_input(self, row: Row) -> list[Message]:
        """Chat messages for ``row``.  Raise ``KeyError``/``ValueError`` for an unusable row."""
        raise NotImplementedError

    def format_output(self, gen: Generation, row: Row) -> dict[str, Any]:
        """New columns from a successful generation.  Raise :class:`InvalidOutput` to reject."""
        raise NotImplementedError

    def observe_output(self, columns: dict[str, Any], ctx: StepContext) -> None:
        """Record metrics of a parsed answer (kept, or rejected with columns).  Default: none."""

    def output_columns(self) -> list[str]:
        """The result columns and the metadata column."""
        return [*self.result_columns(), self.meta_column]

    def system_messages(self) -> list[Message]:
        """The system message, when there is one."""
        return [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []

    # ------------------------------------------------------------------ lifecycle
    def load(self, ctx: StepContext) -> None:
        """Load the model (clients, weights)."""
        self.llm.load()

    def unload(self) -> None:
        """Release the model."""
        self.llm.unload()

    async def aprocess_row(self, row: Row, ctx: StepContext) -> Row | None:
        """Generate for one row; reject it (with full metadata) when anything fails."""
        try:
            messages = self.format_input(row)
        except KeyError as exc:
            detail = f"missing column(s) {exc.args[0] if exc.args else exc} needed by the task"
            return self._reject(row, ctx, Reason.INVALID_INPUT, detail, None)
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            detail = f"input could not be formatted: {type(exc).__name__}: {exc}"
            return self._reject(row, ctx, Reason.INVALID_INPUT, detail, None)

        ctx.metrics.incr("requests")
        gen = await self._generate(messages, row, ctx)
        self._observe(gen, ctx)
        reason = self._failure(gen)
        if reason is not None:
            detail = gen.error or f"finish_reason={gen.finish_reason}"
            if gen.error_kind is not None:
                ctx.logger.warning("%s: %s: %s", ctx.row_label(row), reason, detail)
            return self._reject(row, ctx, reason, detail, gen)
        try:
            columns = self.format_output(gen, row)
        except RejectRow as exc:
            if exc.columns:
                self.observe_output(exc.columns, ctx)
            if exc.reason == INVALID_OUTPUT:  # the answer failed, not the row's quality
                gen.error_kind, gen.error = INVALID_OUTPUT, exc.detail[:2000]
            return self._reject(row, ctx, exc.reason, exc.detail, gen, exc.columns)
        self.observe_output(columns, ctx)
        ctx.metrics.incr("ok")
        return {**row, **columns, self.meta_column: gen.meta()}

    # ------------------------------------------------------------------ helpers
    async def _generate(self, messages: list[Message], row: Row, ctx: StepContext) -> Generation:
        start = time.perf_counter()
        try:
            return await ctx.agenerate(self.llm, messages)
        except Exception as exc:  # a model that raises: isolate it to this row (C12)
            kind = "timeout" if is_timeout(exc) else "provider_error"
            ctx.logger.warning(
                "%s: %s raised %s during generation: %s",
                ctx.row_label(row),
                type(self.llm).__name__,
                type(exc).__name__,
                exc,
            )
            return Generation(
                text=None,
                model=self.llm.model_name,
                latency_s=time.perf_counter() - start,
                error_kind=kind,
                error=f"{type(exc).__name__}: {exc}",
            )

    def _failure(self, gen: Generation) -> Reason | str | None:
        if gen.error_kind is not None:
            if gen.error_kind in _REASONS:
                return _REASONS[gen.error_kind]
            return gen.error_kind if _REASON_RE.fullmatch(gen.error_kind) else "provider_error"
        if not (gen.text and gen.text.strip()):
            gen.error_kind, gen.error = "empty_output", "empty completion"
            return Reason.EMPTY_OUTPUT
        if self.reject_truncated and gen.finish_reason == "length":
            gen.error_kind = "length"
            gen.error = "answer truncated at the token limit (finish_reason=length)"
            return Reason.LENGTH
        return None

    def _observe(self, gen: Generation, ctx: StepContext) -> None:
        usage = gen.usage
        values = {k: usage[k] for k in ("prompt_tokens", "completion_tokens")
                  if usage.get(k) is not None}
        values["latency_s"] = gen.latency_s
        ctx.metrics.observe_many(values)

    def _reject(
        self,
        row: Row,
        ctx: StepContext,
        reason: Reason | str,
        detail: str,
        gen: Generation | None,
        columns: dict[str, Any] | None = None,
    ) -> None:
        """Reject ``row`` with result columns ``None`` (unless given) and full metadata (C02)."""
        if gen is None:
            gen = Generation(
                text=None, model=self.llm.model_name, error_kind=str(reason), error=detail
            )
        filled = {**dict.fromkeys(self.result_columns()), **(columns or {})}
        ctx.reject({**row, **filled, self.meta_column: gen.meta()}, reason, detail)
        return None
