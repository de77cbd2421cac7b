"""How long the rest of the main job will take: the stage times of the last finished run with the same budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TIMINGS_FILE = "timings.json"


def load_previous_timings(pipeline_root: Path, budget_key: str) -> dict[str, float] | None:
    """The stage times of the newest run under ``pipeline_root`` with this budget, else ``None``."""
    if not pipeline_root.is_dir():
        return None
    for run in sorted(pipeline_root.iterdir(), reverse=True):
        try:
            data: dict[str, Any] = json.loads((run / TIMINGS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("budget") == budget_key and isinstance(data.get("timings_s"), dict):
            return {str(k): float(v) for k, v in data["timings_s"].items()}
    return None


def remaining_s(previous: dict[str, float] | None, stages_left: list[str]) -> float | None:
    """Seconds the stages still to run took last time (``None`` without a previous run that ran them all)."""
    if previous is None or any(stage not in previous for stage in stages_left):
        return None
    return sum(previous[stage] for stage in stages_left)


def clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
