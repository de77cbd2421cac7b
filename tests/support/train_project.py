"""A tiny extraction project on disk for the training tests (the model is the session's tiny random Llama)."""

from __future__ import annotations

import json
from pathlib import Path

from tunewise.config import Project, TrainSpec, project_from_dict

SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "string"}},
    "required": ["total"],
    "additionalProperties": False,
}


def make_project(root: Path, *, n_train: int = 12, n_dev: int = 4, long_rows: int = 0) -> Project:
    """Receipt-like rows ``TOTAL i.50 RM`` -> ``{"total": "i.50"}``; ``long_rows`` extra rows with a very long text."""
    root.mkdir(parents=True, exist_ok=True)
    rows = [
        {"id": f"r{i}", "text": f"SHOP {i} TOTAL {i}.50 RM", "fields": {"total": f"{i}.50"}} for i in range(n_train)
    ]
    rows += [{"id": f"long{i}", "text": "CASH CHANGE " * 300, "fields": {"total": "1.00"}} for i in range(long_rows)]
    dev = [{"id": f"d{i}", "text": f"SHOP {i} TOTAL {i}.50 RM", "fields": {"total": f"{i}.50"}} for i in range(n_dev)]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev), encoding="utf-8")
    raw = {
        "name": "tiny",
        "task": {"kind": "extract", "instructions": "Extract the total.", "output_schema": SCHEMA},
        "data": {"train": "train.jsonl", "dev": "dev.jsonl", "target_field": "fields"},
    }
    return project_from_dict(raw, root)


def tiny_spec(model_dir: Path, **overrides: object) -> TrainSpec:
    """Fast deterministic settings: fp32, small LoRA, a few steps, tiny evaluations."""
    settings: dict[str, object] = {
        "base_model": str(model_dir),
        "rank": 4,
        "alpha": 8,
        "dropout": 0.0,
        "learning_rate": 1e-2,
        "max_steps": 4,
        "micro_batch_size": 2,
        "gradient_accumulation": 2,
        "max_length": 128,
        "eval_every": 2,
        "eval_examples": 2,
        "eval_max_new_tokens": 6,
        "checkpoint_every": 2,
        "precision": "fp32",
        "warmup_ratio": 0.0,
    }
    settings.update(overrides)
    return TrainSpec(**settings)
