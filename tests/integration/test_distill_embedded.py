"""tunewise distill on the real embedded model and real Banking77 messages: a 3-similar-shot teacher labels train
inputs (their gold labels unused), a student is trained a few steps and compared on dev (small sizes, ~2 min)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_embedded_teacher_labels_and_a_student_is_compared(tmp_path: Path, shared_data: Path) -> None:
    from tunewise.config import project_from_dict
    from tunewise.data import load_version
    from tunewise.distill import distill

    banking = shared_data / "banking77"
    spec = {
        "name": "banking77-distill",
        "task": {
            "kind": "classify",
            "labels_file": str(banking / "labels.json"),
            "instructions": "Classify the customer's message into exactly one banking intent. "
            "Answer with the intent label only.",
        },
        "data": {
            "train": str(banking / "train.jsonl"),
            "dev": str(banking / "dev.jsonl"),
            "input_field": "text",
            "target_field": "label",
        },
        "candidates": [{"name": "k3-similar", "prompt": "k_shot", "k": 3, "shot_selection": "similar"}],
        "distill": {"teacher": "k3-similar", "max_inputs": 16, "dev_examples": 8},
        "train": {
            "max_steps": 2,
            "micro_batch_size": 4,
            "gradient_accumulation": 1,
            "max_length": 128,
            "eval_every": 2,
            "eval_examples": 2,
            "eval_max_new_tokens": 12,
            "checkpoint_every": 2,
        },
        "eval": {"max_new_tokens": 12, "batch_size": 8, "bootstrap_samples": 200},
    }
    project = project_from_dict(spec, tmp_path)

    result = distill(project, name="b77", progress=False, track=False)

    labels = result.labels
    assert labels.inputs == 16 and labels.labelled + sum(labels.rejected.values()) == 16
    # Similar shots make the 135M model a near-neighbour classifier: far above the 1/77 of chance on train inputs,
    # although no input's own gold label is in its prompt (shots exclude the input and its exact twins).
    assert labels.gold_agreement is not None and labels.gold_agreement.value >= 0.5
    train_rows = load_version(project, result.dataset_hash or "").read_split("train")
    assert len(train_rows) == labels.labelled
    assert all(len(row.messages) == 2 for row in train_rows)  # the student's prompt: instructions + the message
    teacher, student = result.side("teacher"), result.side("student")
    assert teacher is not None and student is not None and teacher.quality.n == student.quality.n == 8
    assert result.prompt_tokens_ratio is not None and result.prompt_tokens_ratio < 0.5  # shots dropped with the teacher
    saved = json.loads((result.run_dir / "result.json").read_text())
    assert saved["status"] == "complete"
