"""The OpenAI-compatible server end to end on loopback, driven by the official ``openai`` client.

Engine: transformers in-process on the tiny random model (fast); the llama.cpp engine is tested with the embedded
model in tests/integration/test_serve_llamacpp.py.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.support.adapters import make_adapter
from tunewise.config import Project, project_from_dict
from tunewise.errors import InputError
from tunewise.serve import RunningServer, start_server
from tunewise.serve.keys import ApiKeys, default_keys_path
from tunewise.serve.requestlog import RequestLog, default_log_path

SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "string"}},
    "required": ["total"],
    "additionalProperties": False,
}
SECRET_PROMPT = "my card is 4111 1111 1111 1111 and the TOTAL is 9.50"


def tiny_serve_project(root: Path, model_dir: Path, **serve: Any) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"r{i}", "text": f"SHOP {i} TOTAL {i}.50", "fields": {"total": f"{i}.50"}} for i in range(4)]
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = {
        "name": "tiny-serve",
        "task": {"kind": "extract", "instructions": "Extract the total.", "output_schema": SCHEMA},
        "data": {"train": "train.jsonl", "target_field": "fields"},
        "train": {"base_model": str(model_dir)},
        "serve": {"engine": "transformers", "port": 0, "context_length": 256, "default_max_tokens": 12, **serve},
    }
    return project_from_dict(raw, root)


@pytest.fixture(scope="module")
def project(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = tiny_serve_project(tmp_path_factory.mktemp("serve"), tiny_model_dir, reload_interval_s=0.2)
    make_adapter(tiny_model_dir, project.state_dir / "adapters" / "receipts-a", seed=1)
    return project


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[RunningServer]:
    with start_server(project) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def logged(project: Project) -> list[Any]:
    with RequestLog(default_log_path(project.state_dir)) as log:
        return list(log.entries())


def logged_soon(project: Project, request_id: str) -> Any:
    """A streamed request is logged when its stream ends, just after the client has read the last chunk."""
    deadline = time.monotonic() + 10
    while True:
        rows = [r for r in logged(project) if r.request_id == request_id]
        if rows or time.monotonic() > deadline:
            assert len(rows) == 1
            return rows[0]
        time.sleep(0.05)


def test_models_list_the_base_and_the_adapter_with_lineage(client: openai.OpenAI, tiny_model_dir: Path) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {str(tiny_model_dir), "receipts-a"}
    adapter = models["receipts-a"].model_dump()
    assert adapter["tunewise"]["kind"] == "adapter"
    assert adapter["tunewise"]["base"] == str(tiny_model_dir)
    assert adapter["tunewise"]["structured_output"] is True  # trained on an extract task: its schema by default
    assert len(adapter["tunewise"]["version"]) == 64
    assert client.models.retrieve("receipts-a").id == "receipts-a"


def test_completion_is_openai_shaped_and_logged_once(client: openai.OpenAI, project: Project, tiny_model_dir) -> None:
    response = client.chat.completions.create(
        model=str(tiny_model_dir), messages=[{"role": "user", "content": "hello there"}], max_tokens=5, temperature=0
    )
    choice = response.choices[0]
    assert response.object == "chat.completion" and response.model == str(tiny_model_dir)
    assert choice.finish_reason in ("stop", "length") and isinstance(choice.message.content, str)
    assert response.usage.completion_tokens <= 5 + 1 and response.usage.prompt_tokens > 3
    rows = [r for r in logged(project) if r.request_id == response.id.removeprefix("chatcmpl-")]
    assert len(rows) == 1
    row = rows[0]
    assert row.messages == [{"role": "user", "content": "hello there"}] and row.output == choice.message.content
    assert row.status == 200 and row.json_valid is None and row.completion_tokens == response.usage.completion_tokens


def test_greedy_is_deterministic_and_the_adapter_changes_the_answer(client: openai.OpenAI, tiny_model_dir) -> None:
    def ask(model: str) -> str:
        messages = [{"role": "user", "content": "SHOP 3 TOTAL 3.50"}]
        reply = client.chat.completions.create(
            model=model, messages=messages, max_tokens=8, temperature=0, response_format={"type": "text"}
        )
        return reply.choices[0].message.content or ""

    base = ask(str(tiny_model_dir))
    assert ask(str(tiny_model_dir)) == base
    assert ask("receipts-a") != base


def test_streaming_yields_chunks_and_usage(client: openai.OpenAI, project: Project, tiny_model_dir) -> None:
    stream = client.chat.completions.create(
        model=str(tiny_model_dir),
        messages=[{"role": "user", "content": "stream please"}],
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    row = logged_soon(project, chunks[0].id.removeprefix("chatcmpl-"))
    assert row.stream and row.output == text and row.ttft_ms is not None


def test_json_schema_is_enforced_and_the_adapter_schema_applies_by_default(
    client: openai.OpenAI, project: Project
) -> None:
    asked = client.chat.completions.create(
        model="receipts-a",
        messages=[{"role": "user", "content": "SHOP 1 TOTAL 1.50"}],
        max_tokens=40,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "receipt", "schema": SCHEMA, "strict": True}},
    )
    by_default = client.chat.completions.create(
        model="receipts-a", messages=[{"role": "user", "content": "SHOP 2 TOTAL 2.50"}], max_tokens=40, temperature=0
    )
    for response in (asked, by_default):
        if response.choices[0].finish_reason == "stop":
            jsonschema.validate(json.loads(response.choices[0].message.content), SCHEMA)
        row = next(r for r in logged(project) if r.request_id == response.id.removeprefix("chatcmpl-"))
        assert row.json_valid is (response.choices[0].finish_reason == "stop")


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "model"),
        ({"model": "receipts-a", "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content"),
        ({"model": "receipts-a", "messages": []}, 400, "messages"),
        (
            {"model": "receipts-a", "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"},
            400,
            "max_tokens",
        ),
        (
            {"model": "receipts-a", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10_000},
            400,
            "max_tokens",
        ),
        ({"model": "receipts-a", "messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "n"),
        ({"model": "receipts-a", "messages": [{"role": "user", "content": "x"}], "temperature": 9}, 400, "temperature"),
        (
            {
                "model": "receipts-a",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "a", "schema": {"type": "nonsense"}},
                },
            },
            400,
            "response_format.json_schema.schema",
        ),
    ],
)
def test_bad_requests_get_openai_shaped_4xx(server: RunningServer, body: Any, status: int, param: str | None) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f"{server.base_url}/chat/completions", content=content, timeout=30)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    assert "Traceback" not in response.text


def test_a_huge_body_is_refused_before_it_is_read(server: RunningServer) -> None:
    big = b'{"model": "x", "messages": [{"role": "user", "content": "' + b"a" * (50 * 1024 * 1024) + b'"}]}'
    response = httpx.post(f"{server.base_url}/chat/completions", content=big, timeout=60)
    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"


def test_unknown_routes_and_methods_are_openai_shaped(server: RunningServer) -> None:
    missing = httpx.get(f"{server.url}/v1/nothing")
    wrong = httpx.get(f"{server.base_url}/chat/completions")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "invalid_request_error"
    assert missing.headers["x-request-id"] != wrong.headers["x-request-id"]


def test_health_ready_and_metrics(server: RunningServer, client: openai.OpenAI, tiny_model_dir: Path) -> None:
    client.chat.completions.create(model="receipts-a", messages=[{"role": "user", "content": "m"}], max_tokens=2)
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/ready").json()["status"] == "ready"
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'tunewise_requests_total{model="receipts-a",status="200"}' in metrics
    assert "tunewise_request_latency_seconds_bucket" in metrics and "tunewise_requests_queued" in metrics


def test_prompt_text_never_reaches_the_access_log(
    client: openai.OpenAI, caplog: pytest.LogCaptureFixture, tiny_model_dir: Path
) -> None:
    with caplog.at_level(logging.INFO, logger="tunewise"):
        client.chat.completions.create(
            model=str(tiny_model_dir), messages=[{"role": "user", "content": SECRET_PROMPT}], max_tokens=3
        )
    lines = [record.getMessage() + json.dumps(getattr(record, "fields", {})) for record in caplog.records]
    assert any("request" in line for line in lines)
    assert not any("4111" in line or "TOTAL is" in line for line in lines)


def test_a_new_adapter_is_served_without_a_restart(
    client: openai.OpenAI, project: Project, tiny_model_dir: Path
) -> None:
    target = project.state_dir / "adapters" / "receipts-b"
    staging = project.state_dir / "staging-b"
    make_adapter(tiny_model_dir, staging, seed=2)
    shutil.move(staging, target)  # appear complete, as tunewise train publishes adapters
    try:
        deadline = time.monotonic() + 20
        while "receipts-b" not in {m.id for m in client.models.list().data}:
            assert time.monotonic() < deadline, "the new adapter was not picked up"
            time.sleep(0.1)
        reply = client.chat.completions.create(
            model="receipts-b", messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
        assert reply.model == "receipts-b"
    finally:
        shutil.rmtree(target)


def test_api_keys_rate_limits_and_overload(tiny_model_dir: Path, tmp_path: Path) -> None:
    project = tiny_serve_project(
        tmp_path / "p", tiny_model_dir, require_api_key=True, parallel=1, max_queue=0, default_max_tokens=200
    )
    keys = ApiKeys(default_keys_path(project.state_dir))
    _, secret = keys.create("tests")
    _, limited = keys.create("limited", rate_limit_per_min=2)
    with start_server(project) as server:
        url = f"{server.base_url}/chat/completions"
        body = {"model": str(tiny_model_dir), "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert httpx.post(url, json=body).status_code == 401
        assert httpx.post(url, json=body, headers={"Authorization": "Bearer tw-bogus"}).status_code == 401
        assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        statuses = [httpx.post(url, json=body, headers={"Authorization": f"Bearer {limited}"}) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert int(statuses[-1].headers["retry-after"]) >= 1
        assert statuses[-1].json()["error"]["type"] == "rate_limit_error"
        # one slot, no queue: of requests sent together, the ones that find the slot taken get 429 at once
        slow = {**body, "max_tokens": 150, "response_format": {"type": "text"}}
        with httpx.Client(timeout=60) as http:
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                answers = list(
                    pool.map(
                        lambda _: http.post(url, json=slow, headers={"Authorization": f"Bearer {secret}"}), range(6)
                    )
                )
        codes = sorted(a.status_code for a in answers)
        assert 200 in codes and 429 in codes and set(codes) <= {200, 429}
        assert all(int(a.headers["retry-after"]) >= 1 for a in answers if a.status_code == 429)


def test_a_public_address_needs_api_keys(tiny_model_dir: Path, tmp_path: Path) -> None:
    project = tiny_serve_project(tmp_path / "p", tiny_model_dir, host="0.0.0.0")
    with pytest.raises(InputError, match="needs API keys"):
        start_server(project)


def test_check_serves_an_adapter_only_after_its_parity_check(tiny_model_dir: Path, tmp_path: Path) -> None:
    project = tiny_serve_project(tmp_path / "p", tiny_model_dir, reload_interval_s=0.2)
    rows = [{"id": f"d{i}", "text": f"SHOP {i} TOTAL {i}.50", "fields": {"total": f"{i}.50"}} for i in range(3)]
    (project.root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = project.spec.model_dump(mode="json", exclude_none=True)
    raw["data"]["dev"] = "dev.jsonl"
    raw["eval"] = {"max_new_tokens": 12}
    project = project_from_dict(raw, project.root)
    make_adapter(tiny_model_dir, project.state_dir / "adapters" / "checked", seed=4)
    with start_server(project, check_examples=3) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        deadline = time.monotonic() + 120
        while not server.state.verdicts:
            assert time.monotonic() < deadline, "the parity check did not finish"
            with pytest.raises(openai.APIStatusError) as pending:  # not served while it is being checked
                client.chat.completions.create(model="checked", messages=[{"role": "user", "content": "x"}])
            assert pending.value.status_code in (503,)
            time.sleep(0.2)
        verdict = next(iter(server.state.verdicts.values()))
        assert verdict.passed and verdict.n == 3 and verdict.identical_outputs == 3  # one engine: same greedy text
        assert "checked" in {m.id for m in client.models.list().data}
        client.chat.completions.create(model="checked", messages=[{"role": "user", "content": "x"}], max_tokens=2)


def test_check_refuses_an_adapter_whose_check_cannot_pass(tiny_model_dir: Path, tmp_path: Path) -> None:
    project = tiny_serve_project(tmp_path / "p", tiny_model_dir, reload_interval_s=0.2)  # no dev split to check on
    make_adapter(tiny_model_dir, project.state_dir / "adapters" / "unchecked", seed=5)
    with start_server(project, check_examples=3) as server:
        deadline = time.monotonic() + 60
        while not server.state.verdicts:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        response = httpx.post(
            f"{server.base_url}/chat/completions",
            json={"model": "unchecked", "messages": [{"role": "user", "content": "x"}]},
        )
        assert response.status_code == 404 and response.json()["error"]["code"] == "failed_parity_check"
        assert "unchecked" not in {m["id"] for m in httpx.get(f"{server.base_url}/models").json()["data"]}
