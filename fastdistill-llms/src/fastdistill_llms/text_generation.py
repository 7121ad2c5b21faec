"""``text_generation``: fill a prompt template from each row and ask an LLM.

A failed request rejects exactly that row, with a typed reason (``provider_error``, ``timeout``,
``empty_output``, ``length``) and the same metadata keys as a successful row (case C02); the
other rows of the batch are kept (cases C12, C13).
"""

from __future__ import annotations

import re
import string
import time
from typing import TYPE_CHECKING

from fastdistill import LLM, Generation, Reason, Task
from fastdistill.models import Message
from pydantic import Field, field_validator

if TYPE_CHECKING:
    from fastdistill import Row, StepContext

_REASONS = {
    "provider_error": Reason.PROVIDER_ERROR,
    "timeout": Reason.TIMEOUT,
    "empty_output": Reason.EMPTY_OUTPUT,
    "length": Reason.LENGTH,
}
_REASON_RE = re.compile(r"[a-z][a-z0-9_]*")


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


def is_timeout(exc: BaseException) -> bool:
    """True for asyncio/httpx/provider timeouts (any exception class named ``*Timeout*``)."""
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError on 3.11+
        return True
    import asyncio

    if isinstance(exc, asyncio.TimeoutError):
        return True
    return any("timeout" in cls.__name__.lower() for cls in type(exc).__mro__)


class TextGeneration(Task):
    """Ask ``llm`` for one completion per row, with a prompt built from ``template``.

    :param llm: any :class:`fastdistill.LLM` (e.g. ``openai_compat`` or ``embedded``).
    :param template: Python format string over row columns, e.g. ``"Question: {question}"``.
    :param system_prompt: optional system message sent before the user message.
    :param few_shot: example turns sent between the system and the user message, each
        ``{"role": "user" | "assistant", "content": "..."}``.
    :param output_column: column receiving the text (``None`` on rejected rows).
    :param meta_column: column receiving :meth:`fastdistill.Generation.meta` (on every row).
    :param reject_truncated: reject answers cut off by the token limit (``finish_reason=length``)
        with reason ``length`` even when they contain text.

    Metrics: counters ``requests`` and ``ok``; observations ``prompt_tokens``,
    ``completion_tokens`` and ``latency_s``.
    """

    component_name = "text_generation"

    llm: LLM
    template: str = Field(min_length=1)
    system_prompt: str | None = None
    few_shot: list[dict[str, str]] = Field(default_factory=list)
    output_column: str = "generation"
    meta_column: str = "generation_meta"
    reject_truncated: bool = True

    @field_validator("few_shot")
    @classmethod
    def _check_few_shot(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        for i, turn in enumerate(value):
            if turn.get("role") not in ("user", "assistant") or not isinstance(
                turn.get("content"), str
            ):
                raise ValueError(
                    f"few_shot[{i}] must be {{role: user|assistant, content: text}}, got {turn!r}"
                )
        return value

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        try:
            template_columns(value)
        except ValueError as exc:
            raise ValueError(f"invalid template: {exc}") from None
        return value

    def input_columns(self) -> list[str]:
        """The columns the template uses."""
        return template_columns(self.template)

    def output_columns(self) -> list[str]:
        """The output and metadata columns."""
        return [self.output_column, self.meta_column]

    def load(self, ctx: StepContext) -> None:
        """Load the model (clients, weights)."""
        self.llm.load()

    def unload(self) -> None:
        """Release the model."""
        self.llm.unload()

    def format_input(self, row: Row) -> list[Message]:
        """The chat messages for ``row``.  Raises ``KeyError`` for a missing column."""
        missing = [c for c in self.input_columns() if c not in row]
        if missing:
            raise KeyError(", ".join(missing))
        prompt = string.Formatter().vformat(self.template, (), row)
        messages: list[Message] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.extend({"role": m["role"], "content": m["content"]} for m in self.few_shot)
        messages.append({"role": "user", "content": prompt})
        return messages

    async def aprocess_row(self, row: Row, ctx: StepContext) -> Row | None:
        """Generate for one row; reject it (with full metadata) when the request fails."""
        try:
            messages = self.format_input(row)
        except KeyError as exc:
            detail = f"missing column(s) {exc.args[0]} used by the template"
            return self._reject(row, ctx, Reason.INVALID_INPUT, detail, None)
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            detail = f"template could not be filled: {type(exc).__name__}: {exc}"
            return self._reject(row, ctx, Reason.INVALID_INPUT, detail, None)

        ctx.metrics.incr("requests")
        start = time.perf_counter()
        try:
            gen = await self.llm.agenerate(messages)
        except Exception as exc:  # a model that raises: isolate it to this row (C12)
            kind = "timeout" if is_timeout(exc) else "provider_error"
            detail = f"{type(exc).__name__}: {exc}"
            ctx.logger.warning(
                "%s: %s raised %s during generation: %s",
                ctx.row_label(row),
                type(self.llm).__name__,
                type(exc).__name__,
                exc,
            )
            gen = Generation(
                text=None,
                model=self.llm.model_name,
                latency_s=time.perf_counter() - start,
                error_kind=kind,
                error=detail,
            )
        self._observe(gen, ctx)

        reason = self._failure(gen)
        if reason is not None:
            detail = gen.error or f"finish_reason={gen.finish_reason}"
            if gen.error_kind is not None:
                ctx.logger.warning("%s: %s: %s", ctx.row_label(row), reason, detail)
            return self._reject(row, ctx, reason, detail, gen)
        ctx.metrics.incr("ok")
        return {**row, self.output_column: gen.text, self.meta_column: gen.meta()}

    # ------------------------------------------------------------------ helpers
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
        for key in ("prompt_tokens", "completion_tokens"):
            if gen.usage.get(key) is not None:
                ctx.metrics.observe(key, gen.usage[key])
        ctx.metrics.observe("latency_s", gen.latency_s)

    def _reject(
        self, row: Row, ctx: StepContext, reason: Reason | str, detail: str, gen: Generation | None
    ) -> None:
        """Reject ``row`` carrying ``output_column=None`` and the full metadata dict (C02)."""
        if gen is None:
            gen = Generation(
                text=None, model=self.llm.model_name, error_kind=str(reason), error=detail
            )
        meta = gen.meta()
        ctx.reject({**row, self.output_column: None, self.meta_column: meta}, reason, detail)
        return None
