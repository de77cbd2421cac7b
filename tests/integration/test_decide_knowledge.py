"""The answer-likelihood knowledge probe on the embedded model: facts the documents hold, and documents that hold
none."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.support.decisions import WORDS

pytestmark = pytest.mark.integration

TOPICS = WORDS[:16]


def _project(tmp: Path, doc_topics: list[str]):  # type: ignore[no-untyped-def]
    from tunewise.config import project_from_dict

    def code(topic: str) -> str:
        rng = random.Random(topic)
        return f"{rng.choice('KQXZ')}{rng.randint(100, 999)}-{rng.choice(['vela', 'orin', 'tusk', 'mira'])}"

    codes = {t: code(t) for t in {*TOPICS, *doc_topics}}
    docs = [
        {
            "id": f"doc-{t}",
            "title": f"Project {t}",
            "text": f"Internal memo. The access code of project {t} is {codes[t]}.",
        }
        for t in doc_topics
    ]
    rows = [
        {"id": f"q-{t}", "question": f"What is the access code of project {t}?", "answer": codes[t]} for t in TOPICS
    ]
    for name, content in (("docs.jsonl", docs), ("dev.jsonl", rows)):
        (tmp / name).write_text("".join(json.dumps(r) + "\n" for r in content), encoding="utf-8")
    spec = {
        "name": "codes",
        "task": {"kind": "generate", "instructions": "Answer with the code only.", "input_template": "{question}"},
        "data": {"dev": "dev.jsonl", "documents": "docs.jsonl", "target_field": "answer"},
        "targets": {"threshold": 0.5},
    }
    return project_from_dict(spec, tmp)


def _probe(project):  # type: ignore[no-untyped-def]
    from tunewise.config import ProbeSpec
    from tunewise.decide.likelihood_probe import likelihood_probe
    from tunewise.examples import load_examples
    from tunewise.models.local import LocalBackend

    examples = load_examples(project, project.split_path("dev"))
    spec = ProbeSpec(chunk=8, max_examples=16, retriever="bm25", retrieval_k=1)
    return likelihood_probe(project, examples, LocalBackend("smollm2-135m"), spec)


def test_passages_holding_the_answers_make_them_far_likelier_than_placebo_passages(tmp_path: Path) -> None:
    result, record = _probe(_project(tmp_path, TOPICS))
    assert record.error is None and result is not None and record.stopped.startswith("CIs settled at n=8")
    assert result.gain_vs_placebo.ci_low > 1.0  # nats per answer token: the model copies the code it is shown
    assert result.placebo > result.retrieved and result.closed_book > result.retrieved


def test_passages_about_other_things_show_no_missing_knowledge(tmp_path: Path) -> None:
    other = [f"{t}-annex" for t in TOPICS]  # the same kind of memo, about projects nobody asks for
    project = _project(tmp_path, other)
    result, record = _probe(project)
    assert record.error is None and result is not None
    gain = result.gain_vs_placebo
    assert not (gain.ci_low > 0 and gain.value >= 0.1)  # the knowledge rule (probes.min_nll_gain 0.1) does not fire
