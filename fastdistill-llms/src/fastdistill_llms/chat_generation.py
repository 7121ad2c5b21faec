"""``chat_generation``: continue a multi-turn conversation held in a row's ``messages`` column.

The column is a list of ``{"role": ..., "content": ...}`` turns (roles ``system``, ``user``,
``assistant``) that ends with a ``user`` turn; the model writes the next ``assistant`` turn.  A
malformed conversation rejects only its row (``invalid_input``); request failures are handled as
in every task of this package (see :mod:`fastdistill_llms._task`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastdistill import Generation
from fastdistill.models import Message

from fastdistill_llms._task import LLMTask

if TYPE_CHECKING:
    from fastdistill import Row

ROLES = ("system", "user", "assistant")


def check_conversation(value: Any) -> list[Message]:
    """A clean copy of a conversation; ``ValueError`` says what is wrong with it."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"messages must be a non-empty list of turns, got {type(value).__name__}")
    out: list[Message] = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise ValueError(f"messages[{i}] must be a mapping, got {type(turn).__name__}")
        role, content = turn.get("role"), turn.get("content")
        if role not in ROLES:
            raise ValueError(f"messages[{i}].role must be one of {ROLES}, got {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"messages[{i}].content must be text, got {type(content).__name__}")
        if role == "system" and i != 0:
            raise ValueError(f"messages[{i}]: a system turn may only come first")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise ValueError(f"the last turn must be from the user, got {out[-1]['role']!r}")
    return out


class ChatGeneration(LLMTask):
    """Generate the next assistant turn of each row's conversation.

    :param messages_column: column holding the conversation (list of role/content turns).
    :param system_prompt: system message prepended when the conversation has none.
    :param output_column: column receiving the assistant's reply (``None`` on rejected rows).
    :param meta_column: column receiving the generation metadata (on every row).
    :param add_to_conversation: also write ``conversation_column``: the input turns plus the
        reply, ready for chat fine-tuning.
    """

    component_name = "chat_generation"

    messages_column: str = "messages"
    output_column: str = "generation"
    add_to_conversation: bool = False
    conversation_column: str = "conversation"

    def input_columns(self) -> list[str]:
        """The conversation column."""
        return [self.messages_column]

    def result_columns(self) -> list[str]:
        """The reply (and the extended conversation when asked)."""
        extra = [self.conversation_column] if self.add_to_conversation else []
        return [self.output_column, *extra]

    def format_input(self, row: Row) -> list[Message]:
        """The row's conversation, with the default system prompt when it has none."""
        if self.messages_column not in row:
            raise KeyError(self.messages_column)
        messages = check_conversation(row[self.messages_column])
        if messages[0]["role"] != "system":
            messages = self.system_messages() + messages
        return messages

    def format_output(self, gen: Generation, row: Row) -> dict[str, Any]:
        """The reply, and the conversation extended with it when ``add_to_conversation``."""
        out: dict[str, Any] = {self.output_column: gen.text}
        if self.add_to_conversation:
            turns = check_conversation(row[self.messages_column])
            out[self.conversation_column] = [*turns, {"role": "assistant", "content": gen.text}]
        return out
