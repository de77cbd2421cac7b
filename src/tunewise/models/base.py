"""The one interface every model backend implements: a batch of conversations in, completions out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tunewise.records import Completion, Message

ProgressCallback = Callable[[int], None]
"""Called with the number of conversations just finished."""


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. Generation is greedy: evaluation must be deterministic."""

    max_new_tokens: int = 256
    json_schema: dict[str, Any] | None = None
    """When set, decoding is constrained to JSON matching this schema (local backend: xgrammar)."""
    batch_size: int = 8


@runtime_checkable
class Backend(Protocol):
    """A model that completes chat conversations."""

    name: str
    self_hosted: bool

    def generate(
        self,
        conversations: list[list[Message]],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[Completion]:
        """Complete every conversation, in order."""
        ...

    def identity(self) -> dict[str, Any]:
        """What determines this backend's outputs (model and adapter hashes, endpoint, scripted outputs).

        Used as part of the prediction cache key: equal identities must mean equal outputs.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under this model's tokenizer (an estimate for remote models)."""
        ...


def close_backend(backend: Backend) -> None:
    """Stop what a backend runs (a ``llama-server`` child); backends with nothing to stop have no ``close``."""
    close = getattr(backend, "close", None)
    if callable(close):
        close()
