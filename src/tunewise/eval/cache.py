"""An append-only prediction cache: identical inputs are never generated twice, and long evals resume.

One JSONL file per (backend identity, generation config); each line maps a conversation hash to its completion.
A crash can only leave a torn last line, which is ignored on read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tunewise.records import Completion, Message


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


class PredictionCache:
    """Completions keyed by conversation, for one backend identity and generation config."""

    def __init__(self, directory: Path, identity: dict[str, Any], generation: dict[str, Any]) -> None:
        self.key = stable_hash({"identity": identity, "generation": generation})
        self.path = directory / f"{self.key[:32]}.jsonl"
        self._entries: dict[str, tuple[Completion, float]] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._entries[row["key"]] = (Completion(**row["completion"]), float(row["wall_share_s"]))
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn line from an interrupted run

    @staticmethod
    def conversation_key(conversation: list[Message]) -> str:
        return stable_hash(conversation)

    def get(self, conversation: list[Message]) -> tuple[Completion, float] | None:
        """The cached completion and its share of the generation wall time (seconds), or None."""
        return self._entries.get(self.conversation_key(conversation))

    def put_many(self, conversations: list[list[Message]], completions: list[Completion], wall_s: float) -> None:
        """Store completions generated together in ``wall_s`` seconds (split evenly, for throughput figures)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        share = wall_s / max(len(completions), 1)
        lines = []
        for conversation, completion in zip(conversations, completions, strict=True):
            key = self.conversation_key(conversation)
            self._entries[key] = (completion, share)
            row = {"key": key, "completion": dataclasses.asdict(completion), "wall_share_s": share}
            lines.append(json.dumps(row, ensure_ascii=False))
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
