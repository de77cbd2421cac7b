"""Four receipts as an extraction project on disk, and a model that answers every one of them right."""

from __future__ import annotations

import json
from pathlib import Path

from tunewise.config import Project, project_from_dict
from tunewise.records import Message

SCHEMA = {
    "type": "object",
    "properties": {"company": {"type": "string"}, "total": {"type": "string"}},
    "required": ["company", "total"],
    "additionalProperties": False,
}
ROWS = [
    {"id": "a", "text": "ACME SDN BHD total 9.00", "fields": {"company": "ACME SDN BHD", "total": "9.00"}},
    {"id": "b", "text": "BETA TRADING total 12.50", "fields": {"company": "BETA TRADING", "total": "12.50"}},
    {"id": "c", "text": "GAMMA MART total 3.10", "fields": {"company": "GAMMA MART", "total": "3.10"}},
    {"id": "d", "text": "DELTA STORE total 100.00", "fields": {"company": "DELTA STORE", "total": "100.00"}},
]


def receipts_project(root: Path) -> Project:
    """ROWS as train and dev; candidates ``good`` (model ``echo``, zero-shot) and ``poor`` (model ``bad``, 2-shot)."""
    (root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    spec = {
        "name": "t",
        "task": {
            "kind": "extract",
            "instructions": "Extract.",
            "output_schema": SCHEMA,
            "field_normalizers": {"total": "money"},
        },
        "data": {"train": "train.jsonl", "dev": "dev.jsonl", "input_field": "text", "target_field": "fields"},
        "models": {"echo": {"backend": "mock", "outputs": ["x"]}, "bad": {"backend": "mock", "outputs": ["x"]}},
        "candidates": [{"name": "good", "model": "echo"}, {"name": "poor", "model": "bad", "prompt": "k_shot", "k": 2}],
        "eval": {"bootstrap_samples": 200},
    }
    return project_from_dict(spec, root)


def right_answer(conversation: list[Message]) -> str:
    """The receipt's fields as JSON in chatty prose, the total with a currency (the normalizers must cope)."""
    text = conversation[-1]["content"]
    company, total = text.split(" total ")
    return f'Sure! ```json\n{{"company": "{company}", "total": "RM {total}"}}\n```'
