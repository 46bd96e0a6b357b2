"""Answer shapes of OpenAI's API, shared by the vendors whose APIs copy it (infrai's core, OctoAI's
text API): a chat completion and the model list.

Answers keep unknown fields and tolerate what either vendor leaves out, since vendor objects grow.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Lenient(BaseModel):
    """Vendor answers grow fields; keep unknown ones rather than fail."""

    model_config = ConfigDict(extra="allow")


class Usage(Lenient):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    #: Assumed: what the call cost, when the gateway says (infrai's ``core_cost``).
    cost_usd: float | None = None


class ChatMessage(Lenient):
    role: str
    content: Any = None
    refusal: str | None = None


class ChatChoice(Lenient):
    index: int = 0
    message: ChatMessage
    logprobs: Any = None
    finish_reason: str | None = None


class ChatCompletion(Lenient):
    id: str
    object: str | None = "chat.completion"
    created: int | None = None
    model: str | None = None
    choices: list[ChatChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None

    @property
    def text(self) -> str | None:
        """The first choice's text, the common case."""
        if not self.choices:
            return None
        content = self.choices[0].message.content
        return content if isinstance(content, str) else None


class ModelInfo(Lenient):
    """OpenAI's model object."""

    id: str
    object: str | None = "model"
    created: int | None = None
    owned_by: str | None = None


class ModelList(Lenient):
    object: str | None = "list"
    data: list[ModelInfo] = Field(default_factory=list)
