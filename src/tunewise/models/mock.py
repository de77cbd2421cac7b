"""A scripted backend: a first-class model for tests and dry runs (outputs used in order, cycled)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tunewise.models.base import GenerationConfig, ProgressCallback
from tunewise.records import Completion, Message


class MockBackend:
    """Returns scripted outputs; or, given ``respond``, computes each output from the conversation."""

    self_hosted = True

    def __init__(
        self,
        outputs: list[str] | None = None,
        *,
        respond: Callable[[list[Message]], str] | None = None,
        name: str = "mock",
        latency_ms: float = 0.0,
    ) -> None:
        if outputs is None and respond is None:
            raise ValueError("MockBackend needs outputs or respond")
        self.outputs = list(outputs or [])
        self.respond = respond
        self.name = name
        self.latency_ms = latency_ms
        self._cursor = 0
        self.calls: list[list[Message]] = []

    def generate(
        self,
        conversations: list[list[Message]],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[Completion]:
        completions = []
        for conversation in conversations:
            start = time.perf_counter()
            self.calls.append(conversation)
            if self.respond is not None:
                text = self.respond(conversation)
            else:
                text = self.outputs[self._cursor % len(self.outputs)]
                self._cursor += 1
            prompt_tokens = sum(self.count_tokens(m["content"]) for m in conversation)
            words, finish = text.split(" "), "stop"
            if len(words) > config.max_new_tokens:  # a word is a token here: cut like a real model at max_new_tokens
                text, finish = " ".join(words[: config.max_new_tokens]), "length"
            elapsed = (time.perf_counter() - start) * 1000 + self.latency_ms
            completions.append(Completion(text, prompt_tokens, self.count_tokens(text), elapsed, finish))
            if progress:
                progress(1)
        return completions

    def identity(self) -> dict[str, Any]:
        return {"backend": "mock", "outputs": self.outputs, "respond": getattr(self.respond, "__qualname__", None)}

    def count_tokens(self, text: str) -> int:
        return len(text.split())
