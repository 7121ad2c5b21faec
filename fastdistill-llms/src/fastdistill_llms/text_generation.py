"""``text_generation``: fill a prompt template from each row and ask an LLM.

A failed request rejects exactly that row, with a typed reason (``provider_error``, ``timeout``,
``empty_output``, ``length``, ``invalid_output``) and the same metadata keys as a successful row
(case C02); the other rows of the batch are kept (cases C12, C13).  When the model asks for
structured output (``structured_output`` on ``openai_compat`` or ``embedded``), the validated
object also goes to ``parsed_column``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastdistill import Generation
from fastdistill.models import Message
from pydantic import Field, field_validator

from fastdistill_llms._task import (
    LLMTask,
    fill_template,
    is_timeout,
    template_columns,
)

if TYPE_CHECKING:
    from fastdistill import Row

__all__ = ["TextGeneration", "is_timeout", "template_columns"]


def check_turns(value: list[dict[str, str]], what: str) -> list[dict[str, str]]:
    """Validate example turns: each ``{"role": "user" | "assistant", "content": str}``."""
    for i, turn in enumerate(value):
        if turn.get("role") not in ("user", "assistant") or not isinstance(
            turn.get("content"), str
        ):
            raise ValueError(
                f"{what}[{i}] must be {{role: user|assistant, content: text}}, got {turn!r}"
            )
    return value


class TextGeneration(LLMTask):
    """Ask ``llm`` for one completion per row, with a prompt built from ``template``.

    :param llm: any :class:`fastdistill.LLM` (e.g. ``openai_compat`` or ``embedded``).
    :param template: Python format string over row columns, e.g. ``"Question: {question}"``.
    :param system_prompt: optional system message sent before the user message.
    :param few_shot: example turns sent between the system and the user message, each
        ``{"role": "user" | "assistant", "content": "..."}``.
    :param output_column: column receiving the text (``None`` on rejected rows).
    :param meta_column: column receiving :meth:`fastdistill.Generation.meta` (on every row).
    :param parsed_column: column receiving the validated object when the model has a
        ``structured_output`` schema (absent otherwise).
    :param reject_truncated: reject answers cut off by the token limit (``finish_reason=length``)
        with reason ``length`` even when they contain text.

    Metrics: counters ``requests`` and ``ok``; observations ``prompt_tokens``,
    ``completion_tokens`` and ``latency_s``.
    """

    component_name = "text_generation"

    template: str = Field(min_length=1)
    few_shot: list[dict[str, str]] = Field(default_factory=list)
    output_column: str = "generation"
    parsed_column: str = "parsed"

    @field_validator("few_shot")
    @classmethod
    def _check_few_shot(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        return check_turns(value, "few_shot")

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

    def structured(self) -> bool:
        """True when the model validates answers against a schema (adds ``parsed_column``)."""
        llm = self.llm
        cls = type(llm)
        # a field's value is in the instance's __dict__; anything else (a property, a class
        # attribute) in a class's: asked so because a missing attribute on a model raises
        # inside, and hasattr() on a pydantic class goes through its metaclass (once per row)
        if not (
            "structured_output" in getattr(llm, "__dict__", {})
            or "structured_output" in getattr(cls, "model_fields", {})
        ):
            for klass in cls.__mro__:
                if "structured_output" in vars(klass):
                    break
            else:
                return False
        return getattr(llm, "structured_output", None) is not None

    def result_columns(self) -> list[str]:
        """The text column, and the parsed column for structured output."""
        return [self.output_column, *([self.parsed_column] if self.structured() else [])]

    def format_input(self, row: Row) -> list[Message]:
        """System prompt, few-shot turns, the filled template.  ``KeyError``: missing column."""
        prompt = fill_template(self.template, row)
        messages = self.system_messages()
        messages.extend({"role": m["role"], "content": m["content"]} for m in self.few_shot)
        messages.append({"role": "user", "content": prompt})
        return messages

    def format_output(self, gen: Generation, row: Row) -> dict[str, Any]:
        """The text (and the validated object, for structured output)."""
        out: dict[str, Any] = {self.output_column: gen.text}
        if self.structured():
            out[self.parsed_column] = gen.parsed
        return out
