"""Inference engines behind the server: llama.cpp (CPU default), vLLM (GPU), transformers (in-process fallback).

Every engine takes OpenAI chat-completions bodies the front has validated, and returns OpenAI-shaped responses
(or streamed chunks); the front owns ids, names, logging and limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from tunewise.serve.catalog import ServedModel


class EngineUnavailable(Exception):
    """The engine cannot answer now (starting, restarting after a crash): the client should retry."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EngineRejected(Exception):
    """The engine refused the request as invalid (a prompt over the context, a schema it cannot compile)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Engine(Protocol):
    name: str

    async def start(self, models: Sequence[ServedModel]) -> None:
        """Load the base and every adapter; return when requests can be answered."""
        ...

    async def update(self, models: Sequence[ServedModel]) -> None:
        """Serve this set of models from now on (new adapters, moved aliases) without dropping requests."""
        ...

    async def stop(self) -> None: ...

    def ready(self) -> bool: ...

    async def chat(self, body: dict[str, Any], model: ServedModel) -> dict[str, Any]:
        """One non-streaming chat completion (an OpenAI ``chat.completion`` object)."""
        ...

    def chat_stream(self, body: dict[str, Any], model: ServedModel) -> AsyncIterator[dict[str, Any]]:
        """The ``chat.completion.chunk`` objects of one streamed completion (the last one carries ``usage``)."""
        ...
