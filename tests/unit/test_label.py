"""tunewise label: queue scoring and coverage, the durable label store, the page's API validation, agreement on an
overlap, and the import as a content-addressed dataset version."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tunewise.cli.main import app
from tunewise.config import Project, project_from_dict
from tunewise.data import cohen_kappa, load_version, prepare
from tunewise.data.agreement import krippendorff_alpha_nominal
from tunewise.errors import InputError
from tunewise.label import (
    build_queue,
    create_label_app,
    import_labels,
    label_agreement,
    labelled_examples,
    labelled_targets,
    latest_label_version,
    read_queue,
)
from tunewise.label.record import LabelEntry, LabelQueue
from tunewise.label.store import append_label, gold_targets, labels_path, read_labels
from tunewise.models.mock import MockBackend

SCHEMA = {
    "type": "object",
    "properties": {"company": {"type": ["string", "null"]}, "total": {"type": ["number", "null"]}},
    "required": ["company", "total"],
    "additionalProperties": False,
}
LABELS = ["refund", "card_arrival", "transfer"]
TOPICS = ["receipt", "invoice", "poem"]


def embed(texts: list[str]) -> np.ndarray:
    """Injected embeddings: one axis per topic word, a little deterministic jitter per text."""
    vectors = []
    for text in texts:
        base = np.array([float(topic in text) for topic in TOPICS] + [0.0])
        seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
        vectors.append(base + np.random.default_rng(seed).normal(0, 0.05, 4))
    return np.array(vectors)


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def extract_project(root: Path, traffic: list[dict[str, Any]], **label: Any) -> Project:
    """An extract project: receipts as reference, ``traffic`` as production (``id``, ``text``, ``output``)."""
    root.mkdir(parents=True, exist_ok=True)
    train = [
        {
            "id": f"r{i}",
            "text": f"receipt {i} from shop {i} total {i}.50",
            "target": {"company": f"shop {i}", "total": i},
        }
        for i in range(12)
    ]
    _write(root / "train.jsonl", train)
    rows = [{"created": 1_700_000_000 + i, **row} for i, row in enumerate(traffic)]
    for row in rows:
        if isinstance(row.get("output"), dict):
            row["output"] = json.dumps(row["output"])
    _write(root / "traffic.jsonl", rows)
    spec = {
        "name": "label-extract",
        "task": {"kind": "extract", "instructions": "Extract the fields.", "output_schema": SCHEMA},
        "data": {"train": "train.jsonl"},
        "monitor": {"traffic": "traffic.jsonl"},
        "label": {"seed": 0, **label},
    }
    return project_from_dict(spec, root)


def classify_project(root: Path, traffic: list[dict[str, Any]], **label: Any) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    _write(root / "train.jsonl", [{"id": f"r{i}", "text": f"receipt {i} refund", "label": "refund"} for i in range(6)])
    _write(root / "traffic.jsonl", [{"created": 1_700_000_000 + i, **row} for i, row in enumerate(traffic)])
    spec = {
        "name": "label-classify",
        "task": {"kind": "classify", "instructions": "Name the intent.", "labels": LABELS},
        "data": {"train": "train.jsonl", "target_field": "label"},
        "monitor": {"traffic": "traffic.jsonl"},
        "models": {"tm": {"backend": "mock", "outputs": ["refund"]}},
        "candidates": [{"name": "teach", "model": "tm"}],
        "label": {"seed": 0, **label},
    }
    return project_from_dict(spec, root)


def receipt(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"q{i}",
        "text": f"receipt {i} from shop {i} total {i}.50",
        "output": {"company": f"shop {i}", "total": i},
        **extra,
    }


# --- queue ---------------------------------------------------------------------------------------------------


def test_invalid_output_and_new_input_outrank_typical_ones(tmp_path: Path) -> None:
    traffic = [receipt(i) for i in range(5)]
    traffic.append({"id": "broken", "text": "receipt 9 from shop 9 total 9.50", "output": "Sorry, I cannot read it"})
    traffic.append({"id": "far", "text": "a poem about the sea", "output": {"company": None, "total": 3}})
    project = extract_project(tmp_path, traffic, queue_size=2, diverse_share=0.0)
    queue = build_queue(project, embed=embed)
    assert {item.id for item in queue.items} == {"broken", "far"}
    by_id = {item.id: item for item in queue.items}
    assert "invalid: not JSON" in by_id["broken"].reasons
    assert "new input" in by_id["far"].reasons
    assert by_id["far"].novelty > queue.novelty_threshold > 0
    assert by_id["broken"].prefill == {"company": None, "total": None}
    assert by_id["far"].prefill == {"company": None, "total": 3}
    # written atomically, and read back identically
    assert (queue.path / "queue.jsonl").is_file() and (queue.path / "queue.json").is_file()
    assert read_queue(project).items == queue.items


def test_inputs_where_the_drift_is_outrank_familiar_ones_though_none_is_far(tmp_path: Path) -> None:
    """Receipts of a new store look like receipts: no input is beyond the novelty cut, yet the domain classifier
    tells them from the reference, and the informative share goes to them."""
    offset = np.array([0.0, 0.0, 0.0, 0.06])

    def shifted(texts: list[str]) -> np.ndarray:
        return np.array([v + (offset if "NEW" in t else 0.0) for v, t in zip(embed(texts), texts, strict=True)])

    traffic = [receipt(i) for i in range(20)]
    traffic += [{**receipt(100 + i), "id": f"new{i}", "text": f"receipt {i} from NEW shop"} for i in range(20)]
    project = extract_project(tmp_path, traffic, queue_size=8, diverse_share=0.0)
    queue = build_queue(project, embed=shifted)
    assert sum(item.id.startswith("new") for item in queue.items) >= 7
    assert any(reason.startswith("drifted") for item in queue.items for reason in item.reasons)


def test_diverse_share_covers_the_clusters(tmp_path: Path) -> None:
    traffic = [
        {"id": f"{topic}-{i}", "text": f"{topic} number {i}", "output": {"company": "x", "total": 1}}
        for topic in TOPICS
        for i in range(6)
    ]
    project = extract_project(tmp_path, traffic, queue_size=3, diverse_share=1.0)
    queue = build_queue(project, embed=embed)
    assert len(queue.items) == 3 and queue.diverse == 3
    assert {item.id.split("-")[0] for item in queue.items} == set(TOPICS)
    assert all("coverage" in item.reasons for item in queue.items)


def test_queue_size_seed_determinism_and_overlap(tmp_path: Path) -> None:
    traffic = [
        {"id": f"{t}-{i}", "text": f"{t} {i}", "output": {"company": "a", "total": i}} for t in TOPICS for i in range(5)
    ]
    project = extract_project(tmp_path, traffic, queue_size=4, diverse_share=0.5, overlap=2)
    first = build_queue(project, embed=embed)
    second = build_queue(project, embed=embed)
    assert len(first.items) == 4
    assert [i.id for i in first.items] == [i.id for i in second.items]
    assert [i.overlap for i in first.items] == [True, True, False, False]
    assert first.diverse == 2


def test_teacher_disagreement_is_a_reason(tmp_path: Path) -> None:
    traffic = [{"id": f"c{i}", "text": f"receipt {i} please refund", "output": "refund"} for i in range(4)]
    project = classify_project(tmp_path, traffic, queue_size=2, diverse_share=0.0, teacher="teach")
    teacher = MockBackend(respond=lambda messages: "transfer" if "receipt 3" in messages[-1]["content"] else "refund")
    queue = build_queue(project, embed=embed, backends={"tm": teacher})
    assert queue.items[0].id == "c3"
    assert "disagrees with teach" in queue.items[0].reasons
    assert queue.items[0].teacher_output == "transfer"
    assert queue.items[0].prefill == "refund"


def test_no_traffic_in_the_window_is_an_error(tmp_path: Path) -> None:
    project = extract_project(tmp_path, [receipt(1)])
    with pytest.raises(InputError, match="no production inputs"):
        build_queue(project, since=2_000_000_000, embed=embed)


# --- store ---------------------------------------------------------------------------------------------------


def entry(item: str, labeller: str, action: str, target: Any, t: float = 0.0) -> LabelEntry:
    return LabelEntry(item=item, labeller=labeller, action=action, target=target, time=t)


def test_latest_answer_wins(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    append_label(path, entry("a", "ann", "accept", "refund"))
    append_label(path, entry("a", "ann", "correct", "transfer"))
    append_label(path, entry("b", "ann", "accept", "refund"))
    append_label(path, entry("b", "ann", "skip", None))
    assert gold_targets(read_labels(path)) == {"a": ("transfer", ["ann"])}


def test_a_torn_trailing_line_is_ignored_and_nothing_earlier_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    append_label(path, entry("a", "ann", "accept", "refund"))
    append_label(path, entry("b", "ann", "accept", "transfer"))
    with open(path, "ab") as handle:  # what a process killed mid-write leaves
        handle.write(b'{"item": "c", "labeller": "ann", "act')
    assert [e.item for e in read_labels(path)] == ["a", "b"]
    append_label(path, entry("d", "ann", "accept", "refund"))  # starts on a fresh line, not glued to the fragment
    assert [e.item for e in read_labels(path)] == ["a", "b", "d"]


def test_concurrent_writes_from_threads_all_land(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"

    def write(worker: int) -> None:
        for n in range(25):
            append_label(path, entry(f"i{worker}-{n}", f"w{worker}", "accept", "refund"))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = read_labels(path)
    assert len(entries) == 200
    assert len(path.read_text().splitlines()) == 200
    assert {e.item for e in entries} == {f"i{w}-{n}" for w in range(8) for n in range(25)}


# --- the page's API ------------------------------------------------------------------------------------------


@pytest.fixture
def extract_queue(tmp_path: Path) -> tuple[Project, LabelQueue]:
    traffic = [receipt(i) for i in range(3)]
    traffic.append({"id": "broken", "text": "receipt 7 shop 7", "output": "no idea"})
    project = extract_project(tmp_path, traffic, queue_size=4, diverse_share=0.0, overlap=1)
    return project, build_queue(project, embed=embed)


def test_post_validation_names_the_field(extract_queue: tuple[Project, LabelQueue]) -> None:
    project, queue = extract_queue
    client = TestClient(create_label_app(project, queue))
    item = queue.items[0].id

    def post(**body: Any) -> Any:
        return client.post("/api/labels", json={"item": item, "labeller": "ann", **body})

    cases = [
        ({"action": "correct", "target": {"company": "x", "total": "1", "tip": "2"}}, "target.tip"),
        ({"action": "correct", "target": {"company": "x"}}, "target.total"),
        ({"action": "correct", "target": {"company": "x", "total": "twelve"}}, "target.total"),
        ({"action": "correct", "target": "shop 1"}, "target"),
        ({"action": "maybe", "target": None}, "action"),
        ({"action": "accept", "target": {"company": "x", "total": 1}, "item": "nope"}, "item"),
        ({"action": "accept", "target": {"company": "x", "total": 1}, "labeller": ""}, "labeller"),
    ]
    for body, field in cases:
        response = post(**body)
        assert response.status_code == 400, body
        assert response.json()["field"] == field, (body, response.json())
    assert not labels_path(queue).exists()  # nothing invalid was written

    ok = post(action="correct", target={"company": " Shop One ", "total": "12.5"})
    assert ok.status_code == 200
    assert read_labels(labels_path(queue))[-1].target == {"company": " Shop One ", "total": 12.5}
    listed = client.get("/api/items", params={"labeller": "ann"}).json()
    assert (listed["done"], listed["total"]) == (1, len(queue.items))
    assert listed["items"][0]["answer"]["action"] == "correct"
    assert client.get("/api/items").status_code == 400
    assert "<script" in client.get("/", params={"labeller": "ann"}).text


def test_classify_post_needs_a_label_of_the_task(tmp_path: Path) -> None:
    project = classify_project(tmp_path, [{"id": "c0", "text": "receipt 0 refund", "output": "refund"}])
    queue = build_queue(project, embed=embed)
    client = TestClient(create_label_app(project, queue))
    bad = client.post("/api/labels", json={"item": "c0", "labeller": "ann", "action": "correct", "target": "cake"})
    assert bad.status_code == 400 and bad.json()["field"] == "target" and "cake" in bad.json()["error"]
    good = client.post("/api/labels", json={"item": "c0", "labeller": "ann", "action": "correct", "target": "transfer"})
    assert good.status_code == 200
    assert labelled_targets(project) == {"c0": "transfer"}


def test_items_split_between_labellers_except_the_overlap(extract_queue: tuple[Project, LabelQueue]) -> None:
    project, queue = extract_queue
    client = TestClient(create_label_app(project, queue))
    ids = [item.id for item in queue.items]
    for item in ids[:2]:  # ann answers the overlap item and one more
        client.post(
            "/api/labels",
            json={"item": item, "labeller": "ann", "action": "accept", "target": {"company": "a", "total": 1}},
        )
    bob = [row["id"] for row in client.get("/api/items", params={"labeller": "bob"}).json()["items"]]
    assert bob == [ids[0], *ids[2:]]  # the overlap item, and what nobody has labelled


# --- agreement -----------------------------------------------------------------------------------------------


def test_agreement_on_a_crafted_overlap(tmp_path: Path) -> None:
    traffic = [{"id": f"c{i}", "text": f"receipt {i} refund", "output": "refund"} for i in range(5)]
    project = classify_project(tmp_path, traffic, queue_size=5, overlap=5)
    queue = build_queue(project, embed=embed)
    ann = {"c0": "refund", "c1": "refund", "c2": "transfer", "c3": "card_arrival", "c4": "refund"}
    bob = {"c0": "refund", "c1": "transfer", "c2": "transfer", "c3": "card_arrival"}
    for who, answers in (("ann", ann), ("bob", bob)):
        for item, label in answers.items():
            append_label(labels_path(queue), entry(item, who, "correct", label))
    append_label(labels_path(queue), entry("c4", "bob", "skip", None))
    result = label_agreement(project)
    assert result.items == 4
    shared = sorted(bob)
    expected = cohen_kappa([ann[i] for i in shared], [bob[i] for i in shared])
    label = result.agreement.per_field["label"]
    assert label.cohen_kappa == pytest.approx(round(expected, 4))
    assert label.krippendorff_alpha == pytest.approx(
        round(krippendorff_alpha_nominal([[ann[i], bob[i]] for i in shared]), 4)
    )
    assert result.agreement.disagreements == 1


def test_agreement_without_an_overlap_is_an_error(tmp_path: Path) -> None:
    project = classify_project(tmp_path, [{"id": "c0", "text": "receipt refund", "output": "refund"}])
    queue = build_queue(project, embed=embed)
    append_label(labels_path(queue), entry("c0", "ann", "accept", "refund"))
    with pytest.raises(InputError, match="two labellers"):
        label_agreement(project)


# --- import --------------------------------------------------------------------------------------------------


def test_import_writes_a_content_addressed_version_with_its_diff(tmp_path: Path) -> None:
    traffic = [receipt(i) for i in range(3)]
    project = extract_project(tmp_path, traffic, queue_size=3, diverse_share=0.0)
    previous = prepare(project, progress=False).version
    queue = build_queue(project, embed=embed)
    first, second, third = (item.id for item in queue.items)
    path = labels_path(queue)
    append_label(path, entry(first, "ann", "accept", queue.items[0].prefill))
    append_label(path, entry(second, "ann", "correct", {"company": "Shop Two Ltd", "total": 2.5}))
    append_label(path, entry(third, "ann", "skip", None))

    result = import_labels(project)
    version = load_version(project, result.version)
    train = {e.id: e for e in version.read_split("train")}
    assert set(train) == {first, second}
    assert train[second].target == {"company": "Shop Two Ltd", "total": 2.5}
    assert train[first].meta["source"] == "label"
    assert version.splits == ["train"]
    assert version.manifest["origin"] == "label"
    assert result.created and result.previous == previous.hash
    assert result.diff is not None and result.diff["splits"]["train"]["added"] == sorted([first, second])
    stored = json.loads((queue.path / "import.json").read_text())
    assert stored["diff"]["splits"]["train"]["added"] == sorted([first, second])
    assert latest_label_version(project).hash == version.hash
    assert [e.id for e in labelled_examples(project)] == [first, second]

    files = {p.name: p.read_bytes() for p in version.path.iterdir()}
    again = import_labels(project)
    assert again.version == result.version and not again.created
    assert {p.name: p.read_bytes() for p in version.path.iterdir()} == files  # nothing stored was rewritten


def test_import_without_labels_is_an_error(extract_queue: tuple[Project, LabelQueue]) -> None:
    project, queue = extract_queue
    append_label(labels_path(queue), entry(queue.items[0].id, "ann", "skip", None))
    with pytest.raises(InputError, match="no labels to import"):
        import_labels(project)


def test_cli_queue_agreement_and_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    traffic = [{"id": f"c{i}", "text": f"receipt {i} refund", "output": "refund"} for i in range(3)]
    project = classify_project(tmp_path, traffic, queue_size=3)
    (tmp_path / "tunewise.yaml").write_text(
        json.dumps(
            {
                "name": "label-cli",
                "task": {"kind": "classify", "labels": LABELS},
                "data": {"train": "train.jsonl", "target_field": "label"},
                "monitor": {"traffic": "traffic.jsonl"},
                "label": {"queue_size": 3},
            }
        )
    )
    monkeypatch.setattr("tunewise.embeddings.embed_texts", embed)
    runner = CliRunner()
    made = runner.invoke(app, ["label", "queue", "-c", str(tmp_path)])
    assert made.exit_code == 0, made.output
    assert "c0" in made.output and "queue" in made.output
    queue = read_queue(project)
    for who in ("ann", "bob"):
        append_label(labels_path(queue), entry("c0", who, "accept", "refund"))
    agreement = runner.invoke(app, ["label", "agreement", "-c", str(tmp_path), "--json"])
    assert agreement.exit_code == 0, agreement.output
    assert json.loads(agreement.output)["items"] == 1
    imported = runner.invoke(app, ["label", "import", "-c", str(tmp_path)])
    assert imported.exit_code == 0, imported.output
    assert "1 labelled rows" in imported.output
    missing = runner.invoke(app, ["label", "import", "-c", str(tmp_path), "--queue", "nope"])
    assert missing.exit_code == 1 and "no queue matches" in missing.output
