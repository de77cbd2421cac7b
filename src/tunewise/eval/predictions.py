"""Reading an evaluation run's ``predictions.jsonl`` back: what later stages compare candidates on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def scores_by_candidate(eval_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Per-example scores by candidate, in the evaluation's example order (``predictions.jsonl``)."""
    by_candidate: dict[str, list[dict[str, Any]]] = {}
    with open(eval_dir / "predictions.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                by_candidate.setdefault(row["candidate"], []).append(row["scores"])
    return by_candidate
