"""The labelling journal: an append-only, fsynced record written ahead of every teacher call.

Three events per call key: ``sent`` (before the request leaves), then ``done`` (with the completion and what it
cost) or ``failed`` (with the reason). Replaying the journal after a crash, even a SIGKILL, tells every input apart:
labelled (``done``: never sent again, its cost already in the ledger), failed (tried again on the next run), or in
doubt (``sent`` without an outcome: re-sent under the same ``Idempotency-Key``, so an endpoint that honours the
header does not charge it twice). A crash can only tear the last line, which replay ignores.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.records import Completion


@dataclass
class JournalState:
    """What a journal says about each call key."""

    done: dict[str, tuple[Completion, float, bool]] = field(default_factory=dict)
    """key -> (completion, dollars paid, whether it came from the cache)."""
    failed: dict[str, str] = field(default_factory=dict)
    """key -> the last failure's reason (cleared by a later ``done``)."""
    in_doubt: set[str] = field(default_factory=set)
    """Keys sent without an outcome: the process died while the request was in flight."""

    @property
    def usd(self) -> float:
        return sum(cost for _, cost, cached in self.done.values() if not cached)


class Journal:
    """One run's journal file; safe to append to from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def replay(self) -> JournalState:
        state = JournalState()
        if not self.path.is_file():
            return state
        last: dict[str, str] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                key, event = row["key"], row["event"]
                if event == "done":
                    completion = Completion.from_dict(row["completion"])
                    state.done[key] = (completion, float(row["usd"]), bool(row.get("cached", False)))
                elif event == "failed":
                    state.failed[key] = str(row["reason"])
                last[key] = event
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # the torn last line of a killed run
        state.failed = {k: reason for k, reason in state.failed.items() if last[k] == "failed" and k not in state.done}
        state.in_doubt = {k for k, event in last.items() if event == "sent" and k not in state.done}
        return state

    def sent(self, key: str, example_id: str) -> None:
        self._append({"event": "sent", "key": key, "id": example_id})

    def done(self, key: str, example_id: str, completion: Completion, usd: float) -> None:
        self._append({"event": "done", "key": key, "id": example_id, "completion": completion.to_dict(), "usd": usd})

    def cached(self, entries: list[tuple[str, str, Completion]]) -> None:
        """Answers found in the teacher cache, ``(key, id, completion)``: one append and one fsync for all of them."""
        self._append_many(
            [
                {"event": "done", "key": k, "id": i, "completion": c.to_dict(), "usd": 0.0, "cached": True}
                for k, i, c in entries
            ]
        )

    def failed(self, key: str, example_id: str, reason: str) -> None:
        self._append({"event": "failed", "key": key, "id": example_id, "reason": reason})

    def _append(self, row: dict[str, Any]) -> None:
        self._append_many([row])

    def _append_many(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        line = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
