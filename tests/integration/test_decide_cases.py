"""decide's declared-needs cases on the real embedded model and real Banking77 messages (small probes, ~1 min)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _banking_project(tmp: Path, shared: Path, targets: dict, **extra: object):  # type: ignore[no-untyped-def]
    from tunewise.io.examples import spread_order
    from tunewise.records import Example
    from tunewise.spec import project_from_dict

    rows = [json.loads(line) for line in (shared / "banking77" / "train.jsonl").read_text().splitlines()]
    order = spread_order([Example(r["id"], [], r["label"]) for r in rows])
    keep = {e.id for e in order[:600]}  # a sample of the 9,000 keeps the similar-shot pool quick to embed
    (tmp / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["id"] in keep))
    spec = {
        "name": "banking77", "task": {"kind": "classify", "labels_file": str(shared / "banking77" / "labels.json"),
                                      "instructions": "Classify the customer's message into exactly one banking intent. "
                                                      "Answer with the intent label only."},
        "data": {"train": "train.jsonl", "dev": str(shared / "banking77" / "dev.jsonl"), "input_field": "text", "target_field": "label"},
        "targets": targets, "eval": {"max_new_tokens": 16, "batch_size": 8, "bootstrap_samples": 500}, **extra,
    }
    return project_from_dict(spec, tmp)


def _probes(n: int):  # type: ignore[no-untyped-def]
    from tunewise.decide import DecideSpec
    from tunewise.decide.config import ProbeSpec

    return DecideSpec(probes=ProbeSpec(chunk=n, max_examples=n, model="smollm2-135m"))


def test_residency_fires_and_no_dev_example_is_sent_to_the_hosted_candidate(tmp_path: Path, shared_data: Path) -> None:
    from tunewise.decide import decide

    hosted = {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "big-hosted-model"}  # nothing listens there
    project = _banking_project(tmp_path, shared_data, {"threshold": 0.85, "self_hosted_only": True},
                               models={"hosted": hosted}, candidates=[{"name": "hosted-model", "model": "hosted"}])
    d = decide(project, spec=_probes(8), track=False, sufficiency=False)
    residency = d.answer("residency")
    assert residency.answer == "yes" and "not probed, the data may not leave: hosted-model" in residency.reason
    assert all(p.error is None for p in d.probes)  # a request to the closed port would have failed a probe
    withheld = next(p for p in d.probes if p.name == "hosted candidates")
    assert withheld.candidates == ["hosted-model"] and withheld.n == 0
    assert "open_weight_fine_tune" in [d.recommendation, *d.also]
