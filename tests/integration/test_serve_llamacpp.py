"""``tunewise serve`` on the llama.cpp engine with the embedded model: the official ``openai`` client against it,
grammar-enforced JSON, adapters per request, an engine killed under load, 64 clients for a minute, SIGTERM drain."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.support.adapters import make_adapter
from tunewise.config import EMBEDDED_MODEL, Project, load_project
from tunewise.examples import load_examples
from tunewise.llamacpp.server import free_port
from tunewise.models.embedded import resolve_model_path
from tunewise.serve import RunningServer, start_server
from tunewise.serve.requestlog import RequestLog, default_log_path

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The receipts example (its data), with one adapter on the embedded model (random LoRA weights: no training)."""
    root = tmp_path_factory.mktemp("receipts")
    shutil.copytree(
        ROOT / "examples" / "receipts", root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".tunewise")
    )
    project = load_project(root)
    adapters = project.state_dir / "adapters"
    make_adapter(
        resolve_model_path(EMBEDDED_MODEL), adapters / "random-lora", seed=3, base_model=EMBEDDED_MODEL, rank=8
    )
    return project


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[RunningServer]:
    with start_server(project, port=0, parallel=4, max_queue=8) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def test_base_and_adapter_through_the_openai_client(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list().data} == {EMBEDDED_MODEL, "random-lora"}
    messages = [{"role": "user", "content": "Name three colours."}]
    base = client.chat.completions.create(model=EMBEDDED_MODEL, messages=messages, max_tokens=24, temperature=0)
    again = client.chat.completions.create(model=EMBEDDED_MODEL, messages=messages, max_tokens=24, temperature=0)
    tuned = client.chat.completions.create(
        model="random-lora", messages=messages, max_tokens=24, temperature=0, response_format={"type": "text"}
    )
    assert base.choices[0].message.content == again.choices[0].message.content  # greedy is deterministic
    assert tuned.choices[0].message.content != base.choices[0].message.content  # the LoRA is applied per request
    assert base.usage.prompt_tokens > 10 and 0 < base.usage.completion_tokens <= 24
    stream = client.chat.completions.create(
        model=EMBEDDED_MODEL, messages=messages, max_tokens=24, temperature=0, stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == base.choices[0].message.content


def test_every_structured_answer_parses_and_validates(client: openai.OpenAI, project: Project) -> None:
    # The task's schema with bounded strings, so that even the untuned base model must finish its object in time
    schema = json.loads(json.dumps(project.output_schema))
    for field in schema["properties"].values():
        field["maxLength"] = 40
    format_ = {"type": "json_schema", "json_schema": {"name": "receipt", "schema": schema, "strict": True}}
    examples = load_examples(project, project.split_path("dev"), limit=4)
    for example in examples:
        reply = client.chat.completions.create(
            model=EMBEDDED_MODEL, messages=example.messages, max_tokens=256, temperature=0, response_format=format_
        )
        assert reply.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(reply.choices[0].message.content), schema)
    # the adapter of an extract project gets the task's schema without asking
    schema = project.output_schema
    default = client.chat.completions.create(
        model="random-lora", messages=examples[0].messages, max_tokens=256, temperature=0
    )
    if default.choices[0].finish_reason == "stop":
        jsonschema.validate(json.loads(default.choices[0].message.content), schema)
    else:
        assert default.choices[0].message.content.lstrip().startswith("{")


def test_a_prompt_over_the_context_is_a_400(server: RunningServer) -> None:
    body = {"model": EMBEDDED_MODEL, "messages": [{"role": "user", "content": "word " * 6000}], "max_tokens": 8}
    response = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    assert "context" in response.json()["error"]["message"]


def _hammer(url: str, stop: threading.Event, results: list[tuple[float, int, str]], body: dict[str, Any]) -> None:
    with httpx.Client(timeout=60) as http:
        while not stop.is_set():
            try:
                response = http.post(url, json=body)
                results.append((time.monotonic(), response.status_code, response.headers.get("x-request-id", "")))
                if response.status_code == 429:
                    time.sleep(min(float(response.headers["retry-after"]), 0.2))
            except httpx.TransportError:
                results.append((time.monotonic(), -1, ""))


def _log_rows(project: Project) -> list[tuple[str, int]]:
    with sqlite3.connect(default_log_path(project.state_dir)) as db:
        return db.execute("SELECT request_id, status FROM requests").fetchall()


def test_engine_killed_under_load_answers_503_then_recovers(server: RunningServer, project: Project) -> None:
    body = {"model": EMBEDDED_MODEL, "messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 48}
    url = f"{server.base_url}/chat/completions"
    stop, results = threading.Event(), []
    threads = [threading.Thread(target=_hammer, args=(url, stop, results, body)) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    old_pid = server.state.engine.pid
    killed_at = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    deadline = killed_at + 60
    while not any(t > killed_at + 0.5 and code == 200 for t, code, _ in results) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join()
    after = [(t - killed_at, code) for t, code, _ in results if t >= killed_at]
    assert any(code == 503 for _, code in after), after[:20]
    assert min(t for t, code in after if code == 503) < 1.0  # clients learn within a second
    assert any(code == 200 for _, code in after), "the engine was not restarted"
    assert server.state.engine.pid != old_pid and server.state.engine.restarts >= 1
    assert {code for _, code, _ in results} <= {200, 429, 503}  # never a 500, never a dropped connection
    with RequestLog(default_log_path(project.state_dir)) as log:
        assert log.integrity_ok()
    logged = [request_id for request_id, _ in _log_rows(project)]
    answered = [request_id for _, code, request_id in results if code in (200, 503)]
    assert len(logged) == len(set(logged))
    assert set(answered) <= set(logged)


def test_sixty_seconds_of_64_clients(project: Project) -> None:
    with start_server(project, port=0, parallel=4, max_queue=16) as server:
        url = f"{server.base_url}/chat/completions"
        body = {"model": "random-lora", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 16}
        body["response_format"] = {"type": "text"}
        stop, results = threading.Event(), []
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            for _ in range(64):
                pool.submit(_hammer, url, stop, results, body)
            time.sleep(60)
            stop.set()
        codes = [code for _, code, _ in results]
        assert codes.count(200) > 50
        assert codes.count(429) > 0  # over capacity the server says so instead of queueing forever
        assert set(codes) <= {200, 429}, {c: codes.count(c) for c in set(codes)}
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'tunewise_requests_total{model="random-lora",status="200"}' in metrics
    rows = _log_rows(project)
    ids = [request_id for request_id, _ in rows]
    assert len(ids) == len(set(ids))
    ok = {request_id for _, code, request_id in results if code == 200}
    assert ok <= set(ids)


def test_cli_serves_and_drains_on_sigterm(project: Project) -> None:
    port = free_port()
    command = [sys.executable, "-m", "tunewise.cli.main", "serve", "-c", str(project.root), "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        answer: dict[str, Any] = {}
        body = {"model": EMBEDDED_MODEL, "messages": [{"role": "user", "content": "Write a long poem."}]}
        body["max_tokens"] = 64  # finishes well within the 30 s drain even on a busy machine

        def ask() -> None:
            answer["response"] = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=120)

        asker = threading.Thread(target=ask)
        asker.start()
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        asker.join(120)
        assert answer["response"].status_code == 200  # the request in flight finished
        assert process.wait(60) == 0
        lines = [json.loads(line) for line in process.stderr.read().splitlines() if line.startswith("{")]
        access = [line for line in lines if line.get("logger") == "tunewise.serve.access"]
        assert access and all("Write a long poem" not in json.dumps(line) for line in lines)
        assert {"request_id", "status", "latency_ms", "model"} <= set(access[-1])
    finally:
        if process.poll() is None:
            process.kill()
