"""decide's declared-needs cases on the real embedded model and real Banking77 messages (small probes, ~1 min)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _banking_project(tmp: Path, shared: Path, targets: dict, *, with_train: bool = True, **extra: object):  # type: ignore[no-untyped-def]
    from tunewise.config import project_from_dict

    spec = {
        "name": "banking77",
        "task": {
            "kind": "classify",
            "labels_file": str(shared / "banking77" / "labels.json"),
            "instructions": "Classify the customer's message into exactly one banking intent. "
            "Answer with the intent label only.",
        },
        "data": {
            "train": str(shared / "banking77" / "train.jsonl"),
            "dev": str(shared / "banking77" / "dev.jsonl"),
            "input_field": "text",
            "target_field": "label",
        },
        "targets": targets,
        "eval": {"max_new_tokens": 16, "batch_size": 8, "bootstrap_samples": 500},
        **extra,
    }
    if not with_train:  # zero-shot only: similar shots would make the small model a good nearest-neighbour classifier
        del spec["data"]["train"]
    return project_from_dict(spec, tmp)


def _probes(n: int):  # type: ignore[no-untyped-def]
    from tunewise.config import DecideSpec, ProbeSpec

    return DecideSpec(probes=ProbeSpec(chunk=n, max_examples=n, model="smollm2-135m"))


def test_residency_fires_and_no_dev_example_is_sent_to_the_hosted_candidate(tmp_path: Path, shared_data: Path) -> None:
    from tunewise.decide import decide

    hosted = {
        "backend": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "model": "big-hosted-model",
    }  # nothing listens there
    project = _banking_project(
        tmp_path,
        shared_data,
        {"threshold": 0.85, "self_hosted_only": True},
        with_train=False,
        models={"hosted": hosted},
        candidates=[{"name": "hosted-model", "model": "hosted"}],
    )
    d = decide(project, spec=_probes(8), track=False, sufficiency=False)
    residency = d.answer("residency")
    assert residency.answer == "yes" and "not probed, the data may not leave: hosted-model" in residency.reason
    assert all(p.error is None for p in d.probes)  # a request to the closed port would have failed a probe
    withheld = next(p for p in d.probes if p.name == "hosted candidates")
    assert withheld.candidates == ["hosted-model"] and withheld.n == 0
    assert "open_weight_fine_tune" in [d.recommendation, *d.also]


def test_a_prompt_that_already_meets_the_target_means_do_not_fine_tune(tmp_path: Path, shared_data: Path) -> None:
    """A team that accepts 60% automatic routing: 3-shot prompting with the most similar train messages as shots
    (the 135M model mostly copies the neighbours' intent) measures above that, so training buys nothing."""
    from tunewise.decide import decide

    project = _banking_project(tmp_path, shared_data, {"threshold": 0.6})
    d = decide(project, spec=_probes(16), track=False)
    best = max((e for e in d.answer("structured_output").evidence), key=lambda e: e.value or 0.0)
    assert best.label == "3-shot" and best.n == 16 and best.value is not None and best.value >= 0.6
    assert d.recommendation == "do_not_fine_tune" and d.path[-1] == "meets_target"
    assert d.sufficiency is None and d.cost is None  # nothing to train, nothing to price
    assert "3-shot" in d.next_command and "reaches the target" in d.summary
