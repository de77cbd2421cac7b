"""The OpenAI chat-completions request the front accepts, checked before anything reaches an engine.

Every problem becomes a 4xx with OpenAI's error shape (``{"error": {"message", "type", "param", "code"}}``) naming
the parameter; unknown extra fields are ignored, as OpenAI's own API does for fields it does not use.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ApiError(Exception):
    """An error answered to the client in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class _Open(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)


class TextPart(_Open):
    type: Literal["text"]
    text: str


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class JsonSchemaFormat(_Open):
    name: str = "output"
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class ChatRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    n: int = Field(1, ge=1, le=1)

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences")
        return stop

    @property
    def completion_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))

    def schema(self) -> dict[str, Any] | None:
        """The JSON Schema the output must follow (``json_object``: any object), or ``None`` for free text."""
        if self.response_format is None or self.response_format.type == "text":
            return None
        if self.response_format.type == "json_object":
            return {"type": "object"}
        assert self.response_format.json_schema is not None
        return self.response_format.json_schema.schema_


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Parse and check a request body.

    Raises:
        ApiError: 400 for malformed JSON, a wrong type or value (``param`` names it), an invalid JSON Schema.
    """
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the request body is not valid JSON: {error}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        param = _param(first["loc"])
        raise ApiError(400, f"{param}: {first['msg']}", param=param, code="invalid_value") from None
    format_ = request.response_format
    if format_ is not None and format_.type == "json_schema":
        if format_.json_schema is None:
            raise ApiError(400, "response_format.json_schema is required", param="response_format.json_schema")
        check_schema(format_.json_schema.schema_)
    return request


def _param(loc: tuple[Any, ...]) -> str | None:
    """``("messages", 0, "content", "str")`` -> ``messages[0].content`` (pydantic's union-member names dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "int", "float", "bool") or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or None


def check_schema(schema: dict[str, Any]) -> None:
    """Raises :class:`ApiError` (400) when ``schema`` is not a valid JSON Schema."""
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(p) for p in error.path)
        raise ApiError(
            400,
            f"response_format.json_schema.schema is not a valid JSON Schema{f' at {where}' if where else ''}: "
            f"{error.message}",
            param="response_format.json_schema.schema",
            code="invalid_json_schema",
        ) from None


def output_validity(text: str, schema: dict[str, Any] | None) -> tuple[bool | None, bool | None]:
    """``(parses as JSON, validates against schema)``; ``(None, None)`` when no structured output was asked for."""
    if schema is None:
        return None, None
    try:
        value = json.loads(text)
    except ValueError:
        return False, False
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        return True, False
    return True, True
