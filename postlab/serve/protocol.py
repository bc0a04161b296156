"""The OpenAI chat-completions wire format: request validation and response bodies.

Field names and chunk semantics follow OpenAI's API (and vLLM's server, which follows it too); see
`docs/serving.md` for what is supported. Anything wrong with a request becomes an ``ApiError``
whose message names the field, answered as ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ROLES = ("system", "developer", "user", "assistant")
MAX_STOP_STRINGS = 4  # as OpenAI
SEED_RANGE = (-(2**63), 2**63 - 1)  # int64, as OpenAI documents and vLLM checks; torch.Generator rejects beyond
# Below this a temperature divides logits past float32's range (NaN probabilities): it is answered greedily,
# which is what such a temperature means anyway.
MIN_TEMPERATURE = 1e-3


class ApiError(Exception):
    """An error answered to the client with an HTTP status and an OpenAI-style body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class TextPart(BaseModel):
    """One part of a list-valued ``content``; only text parts are supported."""
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[TextPart]

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        return role

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields postlab reads; unknown fields are ignored, as OpenAI's clients send many."""
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)  # OpenAI's newer name for max_tokens
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1)  # one choice per request
    user: str | None = Field(None, max_length=256)  # whose memory adapter answers (postlab serve --memory)

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, stop: str | list[str] | None) -> str | list[str] | None:
        strings = [stop] if isinstance(stop, str) else stop or []
        if len(strings) > MAX_STOP_STRINGS or any(not s for s in strings):
            raise ValueError(f"at most {MAX_STOP_STRINGS} non-empty stop strings")
        return stop

    def stop_strings(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def conversation(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.text()} for m in self.messages]

    def sampling_temperature(self) -> float:
        """The temperature to sample at: 0 (greedy) for anything below ``MIN_TEMPERATURE``."""
        return 0.0 if self.temperature < MIN_TEMPERATURE else self.temperature

    def prompt_chars(self) -> int:
        return sum(len(m.text()) for m in self.messages)

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens if self.max_tokens is not None else self.max_completion_tokens

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


def _describe(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "body"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def parse_request(raw: bytes) -> ChatCompletionRequest:
    """Decode and validate a request body; raise a 400 ``ApiError`` naming what is wrong."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, f"request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        param = ".".join(str(p) for p in errors[0]["loc"]) or None
        raise ApiError(400, "; ".join(_describe(err) for err in errors[:3]), param=param) from None


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_body(*, id: str, model: str, created: int, text: str, finish_reason: str,
                    prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason, "logprobs": None}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def chunk_body(*, id: str, model: str, created: int, delta: dict[str, str] | None = None,
               finish_reason: str | None = None, usage_: dict | None = None, with_usage_field: bool = False) -> dict:
    """One ``chat.completion.chunk``. With ``usage_`` it is the usage chunk (no choices); when the
    client asked for usage, every other chunk carries ``"usage": null`` (as OpenAI does)."""
    body: dict[str, Any] = {"id": id, "object": "chat.completion.chunk", "created": created, "model": model}
    if usage_ is not None:
        body["choices"], body["usage"] = [], usage_
        return body
    body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}]
    if with_usage_field:
        body["usage"] = None
    return body


def sse(payload: dict | str) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def models_body(model: str, created: int) -> dict:
    return {"object": "list", "data": [{"id": model, "object": "model", "created": created, "owned_by": "postlab"}]}


def now() -> int:
    return int(time.time())
