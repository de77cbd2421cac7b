"""The closed loop on the tiny model: serve the champion alias → the request log → monitor → a labelling queue →
labels → a dataset version; promotion moves the alias and the running server answers with the new weights without
a restart; a rollback moves it back; monitor then compares only the rows of the version being watched."""

from __future__ import annotations

import json
import time
from pathlib import Path

import openai
from starlette.testclient import TestClient

from tests.support.adapters import make_adapter
from tunewise.config import Project, project_from_dict
from tunewise.data.versions import load_version
from tunewise.label import build_queue, create_label_app, import_labels
from tunewise.models.local import directory_sha256
from tunewise.monitor import load_traffic, monitor
from tunewise.refresh import promote, rollback
from tunewise.refresh.registry import register
from tunewise.serve import start_server

SCHEMA = {"type": "object", "properties": {"total": {"type": "string"}}, "required": ["total"]}


def _project(root: Path, model_dir: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 12), ("dev", 6)):
        rows = [
            {"id": f"{split}{i}", "text": f"SHOP {i} TOTAL {i}.50", "fields": {"total": f"{i}.50"}} for i in range(n)
        ]
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = {
        "name": "loop",
        "task": {"kind": "extract", "instructions": "Extract the total.", "output_schema": SCHEMA},
        "data": {"train": "train.jsonl", "dev": "dev.jsonl", "target_field": "fields"},
        "train": {"base_model": str(model_dir)},
        "eval": {"max_new_tokens": 6, "bootstrap_samples": 200},
        "serve": {
            "engine": "transformers",
            "port": 0,
            "context_length": 256,
            "default_max_tokens": 6,
            "reload_interval_s": 0.2,
        },
        "monitor": {"min_examples": 5, "reference_outputs": 0, "permutations": 200, "bootstrap": 200},
        "label": {"queue_size": 4},
    }
    return project_from_dict(raw, root)


def _ask(client: openai.OpenAI, text: str) -> str:
    answer = client.chat.completions.create(
        model="loop-lora@champion", messages=[{"role": "user", "content": text}], max_tokens=4
    )
    return str(answer.system_fingerprint)


def _until_served(client: openai.OpenAI, version: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while _ask(client, "ping") != version[:16]:  # the response's system_fingerprint: the version's first 16 hex
        assert time.monotonic() < deadline, f"the server did not pick up version {version[:12]}"
        time.sleep(0.2)


def test_promotion_is_served_without_restart_and_monitor_watches_one_version(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    project = _project(tmp_path / "p", tiny_model_dir)
    adapters = project.state_dir / "adapters"
    one = make_adapter(tiny_model_dir, adapters / "one", seed=1)
    two = make_adapter(tiny_model_dir, adapters / "two", seed=2)
    first = register(project, one, None, {"dataset": "none"})
    second = register(project, two, None, {"dataset": "none"})
    promote(project, version=first.version)
    sha_one, sha_two = directory_sha256(one), directory_sha256(two)

    with start_server(project) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        _until_served(client, sha_one)
        for i in range(8):
            _ask(client, f"NEW STORE {i} GRAND TOTAL RM {i}.90")
        promote(project, version=second.version)
        _until_served(client, sha_two)  # the moved alias, same process: no restart
        for i in range(6):
            _ask(client, f"NEW STORE {i} TOTAL {i}.10")
        rollback(project)
        _until_served(client, sha_one)

    traffic = load_traffic(project)  # the champion alias names version one again
    assert traffic.model_version == sha_one
    assert traffic.skipped["other_version"] >= 7  # version two's rows: counted, never compared
    assert all(row.model_version == sha_one for row in traffic.rows) and len(traffic.rows) >= 9
    report = monitor(project, track=False, progress=False)
    assert report.skipped["other_version"] == traffic.skipped["other_version"]
    assert report.n_window == len(traffic.rows) and report.verdict != "too_few"
    assert (report.run_dir / "report.html").is_file()

    queue = build_queue(project)
    assert 0 < len(queue.items) <= 4
    assert {item.id for item in queue.items} <= {row.id for row in traffic.rows}
    with TestClient(create_label_app(project, queue)) as page:
        for index, item in enumerate(queue.items):
            answer = page.post(
                "/api/labels",
                json={"item": item.id, "labeller": "ana", "action": "correct", "target": {"total": f"{index}.90"}},
            )
            assert answer.status_code == 200, answer.text
    imported = import_labels(project)
    version = load_version(project, imported.version)
    labelled = version.read_split("train")
    assert imported.rows == len(queue.items) == len(labelled)
    assert sorted(e.target["total"] for e in labelled) == sorted(f"{i}.90" for i in range(len(queue.items)))
