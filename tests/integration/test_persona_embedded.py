"""The persona consistency eval on the real embedded model (llama.cpp) and real PersonaChat dialogues: a few short
conversations replayed turn by turn, probed, scored and reported (~1 min)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_embedded_model_replays_personachat_turn_by_turn(tmp_path: Path, shared_data: Path) -> None:
    from tunewise.config import project_from_dict
    from tunewise.persona import persona_eval

    data = shared_data / "personachat"
    spec = {
        "name": "personachat-smoke",
        "task": {"kind": "chat", "instructions": "Stay in character as the person described below."},
        "data": {"train": str(data / "train.jsonl"), "dev": str(data / "dev.jsonl")},
        "models": {"smol": {"path": "smollm2-135m", "engine": "llamacpp", "concurrency": 4}},
        "candidates": [{"name": "base", "model": "smol"}],
        "persona": {"conversations": 4, "turns": 5, "probe_turns": [1, 5], "distractors": 3, "max_new_tokens": 24},
        "eval": {"bootstrap_samples": 200},
    }
    project = project_from_dict(spec, tmp_path)
    result = persona_eval(project, progress=False, track=False)

    base = result.candidate("base")
    assert base.conversations == 4 and base.truncated == 0
    assert [p.turn for p in base.curve("identifiability").points] == [1, 5]
    assert 0.0 <= base.curve("identifiability_rank").at(5).value <= 1.0
    assert base.seconds_per_conversation > 0 and base.completion_tokens_per_conversation > 0
    store = next((project.state_dir / "persona" / "transcripts").glob("*.jsonl"))
    rows = [json.loads(line) for line in store.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert len(row["answers"]) == 5 and all(a.strip() for a in row["answers"])
        assert set(row["probes"]) == {"1", "5"} and all(len(v) == 2 for v in row["probes"].values())
    assert "persona identifiability" in (result.run_dir / "report.md").read_text(encoding="utf-8")
